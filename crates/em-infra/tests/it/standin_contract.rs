//! The k3s stand-in accepts what real k3s accepts: a lab where nothing but systemd units as k3s'
//! `install.sh` writes them start it — the server from flags and `K3S_TOKEN` in the unit's `.env`
//! file (no config.yaml, a `config.yaml.d` drop-in), the agent as the official k3s-ansible
//! playbooks start it (`k3s agent --server URL`, `K3S_TOKEN` in `k3s-agent.service.env`,
//! `Type=notify`). Then the full token's CA hash pins the server (a token naming another CA never
//! joins, with k3s' error), a short token joins unpinned with k3s' warning, `K3S_URL` /
//! `K3S_TOKEN_FILE` work, `k3s completion bash` sources in bash, and an unknown flag fails with
//! Go's flag error.

use std::fs;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{k3s_binary, sha256_hex};

const CP: (&str, &str) = ("lab-cp-1", "10.231.0.11");
const WORKER: (&str, &str) = ("lab-worker-1", "10.231.0.21");
const URL: &str = "https://10.231.0.11:6443";

/// The systemd unit k3s' install.sh writes (`create_systemd_service_file`), for `exec`.
fn install_sh_unit(name: &str, exec: &str) -> String {
    format!(
        "[Unit]\nDescription=Lightweight Kubernetes\nDocumentation=https://k3s.io\n\
         Wants=network-online.target\nAfter=network-online.target\n\n\
         [Install]\nWantedBy=multi-user.target\n\n\
         [Service]\nType=notify\nEnvironmentFile=-/etc/default/%N\nEnvironmentFile=-/etc/sysconfig/%N\n\
         EnvironmentFile=-/etc/systemd/system/{name}.service.env\nKillMode=process\nDelegate=yes\n\
         User=root\nLimitNOFILE=1048576\nLimitNPROC=infinity\nLimitCORE=infinity\nTasksMax=infinity\n\
         TimeoutStartSec=0\nRestart=always\nRestartSec=5s\n\
         ExecStartPre=-/sbin/modprobe br_netfilter\nExecStartPre=-/sbin/modprobe overlay\n\
         ExecStart=/usr/local/bin/k3s \\\n    {exec}\n"
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ssh(lab: &testlab::Lab, host: &str, script: &str) -> Output {
    lab.ssh(host).arg(script).output().unwrap()
}

fn ssh_ok(lab: &testlab::Lab, host: &str, script: &str) -> String {
    let out = ssh(lab, host, script);
    assert!(out.status.success(), "{host}: {script}\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `content` to `path` on `host` with `mode`.
fn put(lab: &testlab::Lab, host: &str, path: &str, content: &[u8], mode: &str) {
    use std::io::Write;
    let mut child = lab
        .ssh(host)
        .arg(format!(
            "mkdir -p \"$(dirname {path})\" && cat > {path} && chmod {mode} {path}"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(content).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{host}: writing {path}: {}",
        text(&out)
    );
}

fn runtime(lab: &testlab::Lab, host: &str, which: &str) -> Value {
    let raw = ssh_ok(
        lab,
        host,
        &format!("cat /var/lib/rancher/k3s/{which}/standin-runtime.json"),
    );
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

#[test]
fn standin_starts_from_install_sh_units_and_pins_the_server_ca() {
    if !testlab::require_root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (bin, _) = k3s_binary(tmp.path());
    if std::env::var_os("EM_INFRA_TEST_K3S_BINARY").is_some() {
        // This test reads the stand-in's own record files.
        eprintln!("SKIPPED: checks stand-in records; EM_INFRA_TEST_K3S_BINARY is a real k3s");
        return;
    }
    let mut spec = testlab::LabSpec::new(tmp.path().join("lab"));
    for (name, ip) in [CP, WORKER] {
        spec = spec.host(name, ip.parse().unwrap());
    }
    let mut lab = testlab::Lab::up(spec).expect("lab up");
    let k3s = fs::read(&bin).unwrap();
    for (host, _) in [CP, WORKER] {
        put(&lab, host, "/usr/local/bin/k3s", &k3s, "755");
    }

    // Server: flags on ExecStart, the token and a proxy in the unit's .env (install.sh's
    // create_env_file), a node label from a config.yaml.d drop-in, no config.yaml.
    let short = "labsecret0123456789";
    put(
        &lab,
        CP.0,
        "/etc/systemd/system/k3s.service",
        install_sh_unit(
            "k3s",
            &format!("server --node-ip={} --write-kubeconfig-mode 600", CP.1),
        )
        .as_bytes(),
        "644",
    );
    put(
        &lab,
        CP.0,
        "/etc/systemd/system/k3s.service.env",
        format!(
            "K3S_TOKEN={short}\nHTTP_PROXY=http://10.231.0.1:3128\nNO_PROXY=127.0.0.0/8,10.42.0.0/16,10.43.0.0/16\n"
        )
        .as_bytes(),
        "600",
    );
    put(
        &lab,
        CP.0,
        "/etc/rancher/k3s/config.yaml.d/10-labels.yaml",
        b"node-label:\n  - from=dropin\n",
        "600",
    );
    // `systemctl start` of a Type=notify unit returns only after READY=1.
    ssh_ok(&lab, CP.0, "systemctl daemon-reload && systemctl start k3s");
    assert_eq!(
        ssh_ok(
            &lab,
            CP.0,
            "systemctl show -P Type k3s; systemctl is-active k3s"
        ),
        "notify\nactive\n"
    );
    let full = ssh_ok(&lab, CP.0, "cat /var/lib/rancher/k3s/server/token")
        .trim()
        .to_string();
    let ca = ssh_ok(
        &lab,
        CP.0,
        "cat /var/lib/rancher/k3s/server/tls/server-ca.crt",
    );
    assert_eq!(
        full,
        format!("K10{}::server:{short}", sha256_hex(ca.as_bytes())),
        "the full token pins the server's CA"
    );
    assert_eq!(
        ssh_ok(
            &lab,
            CP.0,
            "readlink /var/lib/rancher/k3s/server/node-token"
        ),
        "/var/lib/rancher/k3s/server/token\n"
    );
    let server = runtime(&lab, CP.0, "server");
    assert_eq!(server["tokenSource"], "env", "{server:#}");
    assert_eq!(server["proxyEnv"]["HTTP_PROXY"], "http://10.231.0.1:3128");

    // Agent as k3s-ansible starts it.
    put(
        &lab,
        WORKER.0,
        "/etc/systemd/system/k3s-agent.service",
        install_sh_unit("k3s-agent", &format!("agent --server {URL}")).as_bytes(),
        "644",
    );
    put(
        &lab,
        WORKER.0,
        "/etc/systemd/system/k3s-agent.service.env",
        format!("K3S_TOKEN={full}\nNO_PROXY=10.231.0.0/24\n").as_bytes(),
        "600",
    );
    let started = Instant::now();
    ssh_ok(
        &lab,
        WORKER.0,
        "systemctl daemon-reload && systemctl start k3s-agent",
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let agent = runtime(&lab, WORKER.0, "agent");
    assert_eq!(agent["caHashVerified"], true, "{agent:#}");
    assert_eq!(agent["tokenSource"], "env");
    assert_eq!(agent["server"], URL);
    assert_eq!(agent["proxyEnv"]["NO_PROXY"], "10.231.0.0/24");
    let nodes = ssh_ok(&lab, CP.0, "k3s kubectl get nodes -o json");
    let nodes: Value = serde_json::from_str(&nodes).unwrap();
    let mut names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, [CP.0, WORKER.0]);
    let cp_node = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["metadata"]["name"] == CP.0)
        .unwrap();
    assert_eq!(cp_node["metadata"]["labels"]["from"], "dropin");

    // A token whose CA hash names another server never joins: k3s' error, retried, no READY.
    let forged = format!(
        "K10{}::server:{short}",
        sha256_hex(b"some other cluster CA")
    );
    let out = ssh(
        &lab,
        WORKER.0,
        &format!("timeout 7 k3s agent --node-name probe -s {URL} -t '{forged}'"),
    );
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(124),
        "still retrying after 7 s:\n{t}"
    );
    assert!(
        t.contains(&format!(
            "level=error msg=\"Failed to validate connection to cluster at {URL}: token CA hash does not match the Cluster CA certificate hash: "
        )),
        "{t}"
    );
    assert!(!t.contains("up and running"), "{t}");

    // A short token (from K3S_TOKEN_FILE, server from K3S_URL) joins, unpinned, with k3s' warning.
    put(
        &lab,
        WORKER.0,
        "/root/short-token",
        format!("{short}\n").as_bytes(),
        "600",
    );
    let out = ssh(
        &lab,
        WORKER.0,
        &format!(
            "K3S_URL={URL} K3S_TOKEN_FILE=/root/short-token timeout 7 k3s agent --node-name probe"
        ),
    );
    let t = text(&out);
    assert!(
        t.contains("level=warning msg=\"Cluster CA certificate is not trusted by the host CA bundle, but the token does not include a CA hash."),
        "{t}"
    );
    assert!(t.contains("k3s agent is up and running"), "{t}");
    let probe = runtime(&lab, WORKER.0, "agent");
    assert_eq!(probe["caHashVerified"], false, "{probe:#}");
    assert_eq!(probe["tokenSource"], "token-file");
    ssh_ok(&lab, CP.0, "k3s kubectl delete node probe");

    // k3s-ansible's `.bashrc` line, and Go's error for a flag k3s does not have.
    let out = ssh_ok(
        &lab,
        WORKER.0,
        "bash -c '. <(k3s completion bash) && complete -p k3s'",
    );
    assert!(out.contains("-F _cli_bash_autocomplete k3s"), "{out}");
    let out = ssh(&lab, WORKER.0, "k3s agent --bogus");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("msg=\"Error: flag provided but not defined: -bogus\""),
        "{}",
        text(&out)
    );

    lab.down().expect("lab down");
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
}
