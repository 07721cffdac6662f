//! em-infra's integration tests, linked once: the real binary end to end (with fake or real
//! programs on PATH), the library against local HTTP(S) servers that speak the Proxmox and
//! Kubernetes API shapes, real Ansible over SSH against lab hosts, and the docs against the
//! repository and the binary's `--help`.
//!
//! Shared support: [`support`] (a throwaway repository around the offline fixture, running the
//! binary), [`test_ca`] (a private CA), [`pve_server`] and [`kube_server`] (the API test
//! servers; [`pve_access`]: PVE's permission model behind `GET /access/permissions`;
//! [`pve_snapshots`]: VM snapshots on the Proxmox one).

mod support;
mod test_ca;

mod kube_server;
mod privilege_lab;
mod pve_access;
mod pve_server;
mod pve_snapshots;

mod access;
mod ansible_lab;
mod check;
mod docs;
mod doctor;
mod doctor_placement;
mod doctor_privileges;
mod drain;
mod fault_injection;
mod first_run;
mod gpu_lab;
mod inventory;
mod k3s_leftovers;
mod lab_e2e;
mod lock;
mod prepare;
mod prepare_lab;
mod rotate;
mod runs;
mod scale_lab;
mod shell;
mod snapshots;
mod ssh_wait_lab;
mod standin_contract;
mod state_backup;
mod status;
mod up;
mod verify;
