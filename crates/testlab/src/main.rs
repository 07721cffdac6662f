//! `em-testlab`: start, use and stop a lab of SSH hosts by hand or from scripts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use testlab::{HostSpec, Lab, LabSpec};

#[derive(Parser)]
#[command(
    name = "em-testlab",
    version,
    about = "A lab of real SSH hosts (systemd-nspawn containers in network namespaces) for Ansible tests",
    long_about = "A lab of real SSH hosts: systemd-nspawn containers with systemd as PID 1, each in its own \
network namespace on a bridge inside a controller namespace that holds the .1 address. Needs root. \
Run programs against the hosts with `em-testlab exec` (inside the controller namespace)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a lab, wait until every host accepts SSH, print it as JSON and leave it running.
    Up {
        /// A host as NAME=IPV4; repeat. All on one /24; the controller gets .1.
        #[arg(long = "host", value_name = "NAME=IPV4", required = true)]
        hosts: Vec<HostSpec>,
        /// Work directory (created; must be empty or absent). Holds keys, ssh_config, overlays.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Extra Debian packages for the rootfs (a separate cached rootfs); repeat.
        #[arg(long = "package", value_name = "PKG")]
        packages: Vec<String>,
        /// Seconds to wait until every host accepts SSH.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
        /// Extra systemd-nspawn argument for every host (e.g. --nspawn-arg=--capability=all); repeat.
        #[arg(long = "nspawn-arg", value_name = "ARG", allow_hyphen_values = true)]
        nspawn_args: Vec<String>,
    },
    /// Stop a lab and remove everything it created (including its work directory).
    Down {
        /// Work directory given to `up`.
        #[arg(long, value_name = "DIR", required_unless_present_any = ["id", "all"], conflicts_with_all = ["id", "all"])]
        dir: Option<PathBuf>,
        /// A lab id from `em-testlab list` (works even when its work dir is gone).
        #[arg(long, conflicts_with = "all")]
        id: Option<String>,
        /// Stop EVERY lab registered on this machine, including other users' running labs.
        #[arg(long)]
        all: bool,
    },
    /// List the labs registered on this machine (JSON), and reap orphans: labs whose owning
    /// test process died without tearing them down.
    List,
    /// Run a command inside the lab's controller namespace, with the Ansible environment set
    /// (ANSIBLE_PRIVATE_KEY_FILE, ANSIBLE_SSH_ARGS, ...) and EM_TESTLAB_SSH_CONFIG. Exits with
    /// the command's status.
    Exec {
        /// Work directory given to `up`.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Print a running lab as JSON, with anything left over or missing.
    Status {
        /// Work directory given to `up`.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Build (or find) the cached rootfs and print its path.
    Rootfs {
        /// Extra Debian packages; repeat.
        #[arg(long = "package", value_name = "PKG")]
        packages: Vec<String>,
    },
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Up {
            hosts,
            dir,
            packages,
            timeout,
            nspawn_args,
        } => {
            let mut spec = LabSpec::new(dir);
            spec.hosts = hosts;
            spec.extra_packages = packages;
            spec.ready_timeout = Duration::from_secs(timeout);
            spec.nspawn_args = nspawn_args;
            let lab = Lab::up(spec)?;
            println!("{}", serde_json::to_string_pretty(&lab.info())?);
            lab.detach();
        }
        Cmd::Down { dir, id, all } => {
            let labs = if all {
                testlab::registered_labs()
                    .iter()
                    .map(|id| Lab::attach_id(id))
                    .collect::<Result<Vec<_>>>()?
            } else if let Some(id) = id {
                vec![Lab::attach_id(&id)?]
            } else {
                let dir = dir.context("--dir is required")?;
                vec![Lab::attach(&dir)?]
            };
            let mut failed = false;
            for mut lab in labs {
                match lab.down() {
                    Ok(()) => eprintln!("lab {} is down", lab.id()),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("teardown incomplete; see above");
            }
        }
        Cmd::Exec { dir, cmd } => {
            let lab = Lab::attach(&dir)?;
            let status = lab
                .command(&cmd[0])
                .args(&cmd[1..])
                .envs(lab.ansible_env())
                .env("EM_TESTLAB_SSH_CONFIG", lab.ssh_config())
                .status()
                .with_context(|| format!("cannot run {:?}", cmd[0]))?;
            return Ok(ExitCode::from(
                status.code().unwrap_or(128).clamp(0, 255) as u8
            ));
        }
        Cmd::List => {
            for id in testlab::reap_orphans() {
                eprintln!("reaped orphaned lab {id}");
            }
            let labs: Vec<serde_json::Value> = testlab::registered_labs()
                .iter()
                .filter_map(|id| Lab::attach_id(id).ok())
                .map(|lab| {
                    serde_json::json!({
                        "id": lab.id(),
                        "work_dir": lab.work_dir(),
                        "owner_pid": lab.owner_pid(),
                        "hosts": lab.hosts().iter().map(|h| format!("{}={}", h.name, h.addr)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&labs)?);
        }
        Cmd::Status { dir } => {
            let lab = Lab::attach(&dir)?;
            let mut info = lab.info();
            info["present"] = serde_json::json!(lab.leftovers());
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        Cmd::Rootfs { packages } => {
            println!("{}", testlab::ensure_rootfs(&packages)?.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
