//! Benchmark (prints figures; asserts nothing about time): `em-infra doctor` against the Proxmox
//! API test server for the two-node 1 server + 2 workers + 1 GPU worker plan (the fixture of the
//! privilege tests), on a PVE 8 and a PVE 9 host — the whole command's wall time, the number of
//! API requests it made, and the token-privilege check's share (its `GET /access/permissions`
//! calls timed alone through the library's client).
//!
//!     cargo bench -p em-infra --bench doctor
//!
//! `BENCH_RUNS` (default 10) runs per release; the median and the slowest are reported.

use std::time::{Duration, Instant};

#[allow(dead_code)] // the bench uses a few of the helpers
#[path = "../tests/it/test_ca.rs"]
mod test_ca;

#[allow(dead_code)]
#[path = "../tests/it/pve_access.rs"]
mod pve_access;

#[allow(dead_code)]
#[path = "../tests/it/pve_server.rs"]
mod pve_server;

#[allow(dead_code)]
#[path = "../tests/it/privilege_lab.rs"]
mod privilege_lab;

use em_infra_core::proxmox::{ApiToken, Client, Settings, TlsMode, normalize_endpoint};
use privilege_lab::ClusterLab;

/// The ACL paths doctor asks about for this plan (the template, four VMs, storage, bridge,
/// mapping and `/`).
const PATHS: &[&str] = &[
    "/",
    "/vms/9000",
    "/vms/9100",
    "/vms/9110",
    "/vms/9111",
    "/vms/9140",
    "/storage/local-lvm",
    "/sdn/zones/localnetwork/vmbr0",
    "/mapping/pci/gpu0",
];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_and_max(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    (ms(samples[samples.len() / 2]), ms(*samples.last().unwrap()))
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    println!(
        "em-infra doctor, 1 server + 2 workers + 1 GPU worker on two Proxmox nodes ({runs} runs):"
    );
    for major in [8, 9] {
        let lab = ClusterLab::new(major);
        let mut walls = Vec::new();
        let mut requests = 0;
        for _ in 0..runs {
            let before = lab.server.requests().len();
            let start = Instant::now();
            let (code, report) = lab.doctor();
            walls.push(start.elapsed());
            assert_eq!(code, 0, "doctor failed on PVE {major}: {report:#}");
            requests = lab.server.requests().len() - before;
        }
        let (median, max) = median_and_max(walls);

        let client = Client::new(Settings {
            endpoint: normalize_endpoint(&lab.server.url()).unwrap(),
            token: ApiToken::parse(&privilege_lab::token()).unwrap(),
            tls: TlsMode::PinnedCa(lab.server.write_ca(lab.root())),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        let mut checks = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            for path in PATHS {
                client.permissions(path).unwrap();
            }
            checks.push(start.elapsed());
        }
        let (check_median, check_max) = median_and_max(checks);
        println!(
            "  PVE {major}: doctor {median:.0} ms median, {max:.0} ms slowest, {requests} API requests; \
             the privilege check's {} permission calls {check_median:.1} ms median, {check_max:.1} ms slowest",
            PATHS.len()
        );
    }
}
