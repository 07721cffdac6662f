//! em-infra's library: everything the `em-infra` binary does, without a terminal. It takes plain
//! option structs, reports progress as typed [`engine::events::Event`]s to a
//! [`engine::events::Frontend`] the caller implements (which also answers its questions), and
//! returns typed results and [`failure::Failure`]s. It never prints, never reads stdin and never
//! chooses an exit code. One module per concern:
//!
//! - [`config`]: repository and environment discovery, tfvars reading, the input rules (`check`)
//! - [`inventory`]: Terraform state outputs → Ansible inventory JSON
//! - [`engine`]: stages, `state.json`, the lock, run records, events, state backups, bug-report
//!   bundles
//! - [`runner`]: the one way an external program runs (capture, redact, signals)
//! - [`terraform`], [`ansible`]: the commands each stage runs
//! - [`proxmox`]: the typed Proxmox VE API client; [`doctor`]: checks before a run
//! - [`prepare`]: the template on the Proxmox host; [`kube`]: verification through the Kubernetes API
//! - [`status`]: Proxmox and Kubernetes views of the nodes, joined
//! - [`init`]: an environment's tfvars from its example and the Proxmox host
//! - [`rotate`]: `rotate-ssh-key`, a new SSH key on every node and in the tfvars
//! - [`failure`]: the typed failures; [`text`]: plain-text columns for records; [`fsutil`]: atomic,
//!   private files

pub mod ansible;
pub mod config;
pub mod doctor;
pub mod engine;
pub mod failure;
pub mod fsutil;
pub mod init;
pub mod inventory;
pub mod kube;
pub mod prepare;
pub mod proxmox;
pub mod rotate;
pub mod runner;
pub mod status;
pub mod terraform;
pub mod text;
