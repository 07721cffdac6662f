//! em-infra's integration tests, linked once: the real binary end to end (with fake or real
//! programs on PATH), the library against local HTTP(S) servers that speak the Proxmox and
//! Kubernetes API shapes, real Ansible over SSH against lab hosts, and the docs against the
//! repository and the binary's `--help`.
//!
//! Shared support: [`support`] (a throwaway repository around the offline fixture, running the
//! binary), [`test_ca`] (a private CA), [`pve_server`] and [`kube_server`] (the API test servers).

mod support;
mod test_ca;

mod kube_server;
mod pve_server;

mod access;
mod ansible_lab;
mod check;
mod docs;
mod doctor;
mod drain;
mod fault_injection;
mod first_run;
mod inventory;
mod k3s_leftovers;
mod lab_e2e;
mod lock;
mod prepare;
mod rotate;
mod runs;
mod scale_lab;
mod shell;
mod standin_contract;
mod state_backup;
mod status;
mod up;
mod verify;
