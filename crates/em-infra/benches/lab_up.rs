//! Benchmark (prints figures; asserts nothing about time): `em-infra up` on lab hosts — a first
//! run, a no-op rerun, and em-infra's own overhead per stage (stage wall time minus the time of
//! the tools it ran, from the run's `events.jsonl`). Needs root, like the lab tests.
//!
//!     cargo bench -p em-infra --bench lab_up
//!
//! `BENCH_RUNS` (default 3) no-op reruns are measured; the median is reported.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

#[allow(dead_code)] // the bench uses a few of the helpers
#[path = "../tests/it/support.rs"]
mod support;

/// Per stage: (stage wall ms, tool ms).
type StageTimes = BTreeMap<String, (u64, u64)>;

/// The stage times of one run directory.
fn stage_times(run_dir: &Path) -> StageTimes {
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap();
    let mut out = StageTimes::new();
    for s in summary["stages"].as_array().unwrap() {
        let ms = s["duration_ms"].as_u64().unwrap_or(0);
        out.insert(s["stage"].as_str().unwrap().to_string(), (ms, 0));
    }
    for line in fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap()
        .lines()
    {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["event"] == "command_finished"
            && let Some(entry) = e["stage"].as_str().and_then(|s| out.get_mut(s))
        {
            entry.1 += e["duration_ms"].as_u64().unwrap_or(0);
        }
    }
    out
}

fn timed_up(lab: &testlab::Lab, repo: &support::Repo) -> (f64, StageTimes) {
    let start = Instant::now();
    let out = support::em_in_lab(lab, repo, &["up"]);
    let wall = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "em-infra up failed");
    (wall, stage_times(&repo.runs().pop().unwrap()))
}

fn print_run(label: &str, wall: f64, stages: &StageTimes) {
    println!("{label}: {wall:.1} s wall");
    for stage in ["preflight", "prepare", "provision", "configure", "verify"] {
        if let Some((ms, tools)) = stages.get(stage) {
            println!(
                "  {stage:<10} {:>7.2} s   tools {:>7.2} s   em-infra overhead {:>4} ms",
                *ms as f64 / 1000.0,
                *tools as f64 / 1000.0,
                ms.saturating_sub(*tools)
            );
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    if !testlab::require_root_or_skip() || !support::terraform_available() {
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let repo = support::Repo::new();
    let mut lab = support::lab_for_fixture(&repo);

    let (first_wall, first) = timed_up(&lab, &repo);
    let mut reruns: Vec<(f64, StageTimes)> = (0..runs).map(|_| timed_up(&lab, &repo)).collect();
    reruns.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median_wall, median) = &reruns[reruns.len() / 2];

    println!(
        "em-infra up on {} lab hosts (stand-in k3s):",
        support::LAB_NODES.len()
    );
    print_run("first up", first_wall, &first);
    print_run(
        &format!("no-op up (median of {runs})"),
        *median_wall,
        median,
    );
    let walls: Vec<String> = reruns.iter().map(|(w, _)| format!("{w:.1}")).collect();
    println!("no-op up wall times: {} s", walls.join(", "));

    let _ = support::em_in_lab(&lab, &repo, &["down", "--yes"]);
    lab.down().expect("lab down");
}
