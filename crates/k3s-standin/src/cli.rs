//! `k3s server|agent [flags]`: the command line, the config file and the environment, merged the
//! way k3s merges them.
//!
//! k3s (`pkg/configfilearg`) turns the config file and its `config.yaml.d/*.yaml` drop-ins into
//! `--key=value` arguments inserted before the command line's own flags, then urfave/cli parses
//! the lot: a later scalar wins (so the command line beats the file), a repeatable flag collects
//! every occurrence, and a flag given nowhere falls back to its environment variable (`K3S_URL`,
//! `K3S_TOKEN`, … — what install.sh writes into the unit's `.env` file). For `server`, config
//! keys k3s does not know are skipped with a warning; `agent` has no such filter in k3s, so an
//! unknown key fails like an unknown flag.

use crate::config;
use crate::flags::{self, Command, Kind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) const DEFAULT_CONFIG: &str = "/etc/rancher/k3s/config.yaml";

/// Where a flag's value came from (recorded for tests; never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    ConfigFile,
    Flag,
    Env,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::ConfigFile => "config",
            Source::Flag => "flag",
            Source::Env => "env",
        }
    }
}

/// The merged options of one `k3s server` or `k3s agent` run, by canonical flag name.
#[derive(Debug, Default)]
pub(crate) struct Options {
    values: BTreeMap<&'static str, (Vec<String>, Source)>,
    /// Messages k3s logs at level warning while parsing.
    pub warnings: Vec<String>,
}

impl Options {
    /// The value of a scalar flag (the last one given).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|(v, _)| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeatable flag; empty when absent.
    pub(crate) fn list(&self, name: &str) -> &[String] {
        self.values
            .get(name)
            .map(|(v, _)| v.as_slice())
            .unwrap_or(&[])
    }

    pub(crate) fn source(&self, name: &str) -> Option<Source> {
        self.values.get(name).map(|(_, s)| *s)
    }

    /// `node-label` entries as `key=value` pairs (a label without `=` gets an empty value).
    pub(crate) fn labels(&self) -> Vec<(String, String)> {
        self.list("node-label")
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect()
    }
}

/// The config file k3s reads: `$K3S_CONFIG_FILE`, else `--config/-c`, else the default.
pub(crate) fn config_path(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(v) = env("K3S_CONFIG_FILE").filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        for flag in ["--config", "-c"] {
            if a == flag {
                return it.next().map_or_else(PathBuf::new, PathBuf::from);
            }
            if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return PathBuf::from(v);
            }
        }
    }
    PathBuf::from(DEFAULT_CONFIG)
}

/// Parses a command's arguments with its config file (read from disk) and the process
/// environment.
pub(crate) fn parse(command: Command, args: &[String]) -> Result<Options, String> {
    let env = |k: &str| std::env::var(k).ok();
    let path = config_path(args, &env);
    let from_file = if path.as_os_str().is_empty() {
        None
    } else {
        config::load(&path)?
    };
    parse_with(command, from_file.as_deref(), args, &env)
}

/// [`parse`] with the config file's merged entries and the environment given.
pub(crate) fn parse_with(
    command: Command,
    from_file: Option<&[(String, Vec<String>)]>,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Options, String> {
    let mut opts = Options::default();
    for (key, values) in from_file.unwrap_or(&[]) {
        let Some(flag) = flags::lookup(command, key) else {
            if command == Command::Server {
                // k3s: Parser.stripInvalidFlags.
                opts.warnings.push(format!(
                    "Unknown flag --{key} found in config.yaml, skipping"
                ));
                continue;
            }
            return Err(undefined(key));
        };
        for v in values {
            set(&mut opts, flag, v.clone(), Source::ConfigFile)?;
        }
    }
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(stripped) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|s| !s.is_empty() && !s.starts_with('-'))
        else {
            return Err(format!(
                "unexpected argument {arg:?}: `k3s {}` takes flags only",
                command.name()
            ));
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (stripped, None),
        };
        let flag = flags::lookup(command, name).ok_or_else(|| undefined(name))?;
        let value = match (flag.kind, inline) {
            (_, Some(v)) => v,
            (Kind::Bool, None) => "true".to_string(),
            (_, None) => it
                .next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        set(&mut opts, flag, value, Source::Flag)?;
    }
    for flag in flags::FLAGS {
        let canonical = flag.names[0];
        if opts.values.contains_key(canonical) || flags::lookup(command, canonical).is_none() {
            continue;
        }
        if let Some(v) = flag.env.and_then(env).filter(|v| !v.is_empty()) {
            // urfave/cli splits a slice flag's environment value at commas.
            let vals: Vec<String> = if flag.kind == Kind::List {
                v.split(',').map(|s| s.trim().to_string()).collect()
            } else {
                vec![v]
            };
            for v in vals {
                set(&mut opts, flag, v, Source::Env)?;
            }
        }
    }
    Ok(opts)
}

/// Go's flag package: "flag provided but not defined: -name".
fn undefined(name: &str) -> String {
    format!("flag provided but not defined: -{name}")
}

fn set(opts: &mut Options, flag: &flags::Flag, value: String, src: Source) -> Result<(), String> {
    let name = flag.names[0];
    if flag.kind == Kind::Bool && !matches!(value.as_str(), "true" | "false" | "1" | "0") {
        return Err(format!(
            "invalid boolean value {value:?} for -{name}: parse error"
        ));
    }
    let value = match value.as_str() {
        "1" if flag.kind == Kind::Bool => "true".to_string(),
        "0" if flag.kind == Kind::Bool => "false".to_string(),
        _ => value,
    };
    let entry = opts.values.entry(name).or_insert_with(|| (Vec::new(), src));
    if flag.kind == Kind::List {
        entry.0.push(value);
    } else {
        entry.0 = vec![value];
    }
    entry.1 = src;
    Ok(())
}

/// The token the command uses: `--token-file` (k3s reads it and trims it) over `--token`.
/// Returns the token and where it came from.
pub(crate) fn token(opts: &Options) -> Result<Option<(String, &'static str)>, String> {
    if let Some(file) = opts.get("token-file").filter(|f| !f.is_empty()) {
        let text = std::fs::read_to_string(Path::new(file)).map_err(|e| format!("{file}: {e}"))?;
        return Ok(Some((text.trim().to_string(), "token-file")));
    }
    Ok(opts.get("token").filter(|t| !t.is_empty()).map(|t| {
        (
            t.to_string(),
            opts.source("token").map_or("", Source::as_str),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn agent_flags_as_k3s_ansible_passes_them() {
        // k3s-ansible: ExecStart=k3s agent --server https://… ; K3S_TOKEN in k3s-agent.service.env.
        let env = |k: &str| (k == "K3S_TOKEN").then(|| "K10abc::server:pw".to_string());
        let o = parse_with(
            Command::Agent,
            None,
            &args(&[
                "--server",
                "https://10.0.0.1:6443",
                "-i=10.0.0.2",
                "--with-node-id",
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(o.get("server"), Some("https://10.0.0.1:6443"));
        assert_eq!(o.source("server"), Some(Source::Flag));
        assert_eq!(o.get("token"), Some("K10abc::server:pw"));
        assert_eq!(o.source("token"), Some(Source::Env));
        assert_eq!(o.list("node-ip"), ["10.0.0.2"]);
        assert_eq!(o.get("with-node-id"), Some("true"));
    }

    #[test]
    fn command_line_beats_config_beats_environment() {
        let file = vec![
            ("token".to_string(), vec!["from-file".to_string()]),
            ("node-label".to_string(), vec!["a=1".to_string()]),
            ("server".to_string(), vec!["https://file:6443".to_string()]),
        ];
        let env = |k: &str| match k {
            "K3S_TOKEN" => Some("from-env".to_string()),
            "K3S_URL" => Some("https://env:6443".to_string()),
            "K3S_NODE_NAME" => Some("env-name".to_string()),
            _ => None,
        };
        let o = parse_with(
            Command::Agent,
            Some(&file),
            &args(&["-t", "from-flag", "--node-label", "b=2"]),
            &env,
        )
        .unwrap();
        assert_eq!(o.get("token"), Some("from-flag"));
        assert_eq!(o.get("server"), Some("https://file:6443"));
        assert_eq!(o.get("node-name"), Some("env-name"));
        assert_eq!(o.list("node-label"), ["a=1", "b=2"]);
    }

    #[test]
    fn unknown_flags_fail_and_unknown_server_keys_warn() {
        let e = parse_with(Command::Agent, None, &args(&["--tls-san", "x"]), &no_env).unwrap_err();
        assert_eq!(e, "flag provided but not defined: -tls-san");
        let file = vec![("disable".to_string(), vec!["traefik".to_string()])];
        assert_eq!(
            parse_with(Command::Agent, Some(&file), &[], &no_env).unwrap_err(),
            "flag provided but not defined: -disable"
        );
        let file = vec![("no-such-key".to_string(), vec!["x".to_string()])];
        let o = parse_with(Command::Server, Some(&file), &[], &no_env).unwrap();
        assert_eq!(
            o.warnings,
            ["Unknown flag --no-such-key found in config.yaml, skipping"]
        );
        assert!(parse_with(Command::Server, None, &args(&["--token"]), &no_env).is_err());
        assert!(parse_with(Command::Server, None, &args(&["stray"]), &no_env).is_err());
        assert!(
            parse_with(
                Command::Server,
                None,
                &args(&["--cluster-init=maybe"]),
                &no_env
            )
            .is_err()
        );
    }

    #[test]
    fn config_file_location_follows_k3s() {
        let env = |k: &str| (k == "K3S_CONFIG_FILE").then(|| "/env.yaml".to_string());
        assert_eq!(
            config_path(&args(&["-c", "/x.yaml"]), &env),
            Path::new("/env.yaml")
        );
        assert_eq!(
            config_path(&args(&["--config=/x.yaml"]), &no_env),
            Path::new("/x.yaml")
        );
        assert_eq!(config_path(&[], &no_env), Path::new(DEFAULT_CONFIG));
    }
}
