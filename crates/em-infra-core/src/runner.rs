//! The one way an external program runs: output captured line by line into the stage log with
//! secrets redacted, a tail kept for error reports, a timeout, and Ctrl-C/SIGTERM forwarded.
//!
//! Children run in their own process group, so a Ctrl-C in the terminal reaches only em-infra;
//! em-infra forwards it once to the whole group (terraform treats a second SIGINT as "abort now",
//! so double delivery must not happen), waits a grace period, then kills the group.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Replaces every known secret with a marker before text is written anywhere.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

pub const REDACTED: &str = "[REDACTED]";

impl Redactor {
    /// Secrets shorter than 6 characters are ignored: redacting them would mangle ordinary text.
    pub fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if secret.len() >= 6 && !self.secrets.contains(&secret) {
            // Longest first, so a secret containing another is replaced whole.
            self.secrets.push(secret);
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Secrets from the environment that em-infra and its tools read (the bpg provider's names).
    pub fn from_env() -> Self {
        let mut r = Redactor::default();
        for var in [
            "PROXMOX_VE_API_TOKEN",
            "PROXMOX_VE_PASSWORD",
            "PROXMOX_VE_SSH_PASSWORD",
        ] {
            if let Ok(value) = std::env::var(var) {
                r.add(value.clone());
                // An API token is `user@realm!id=secret`: the secret part alone must go too.
                if let Some((_, secret)) = value.split_once('=') {
                    r.add(secret);
                }
            }
        }
        r
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

/// Set by the signal handlers; every running child is told once.
#[derive(Debug, Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    /// Install SIGINT/SIGTERM handlers that record the signal instead of killing em-infra, so a
    /// stage can be recorded as interrupted and the child can shut down cleanly.
    pub fn install() -> anyhow::Result<Self> {
        let me = Interrupt::detached();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let flag = me.flag.clone();
            let signal = me.signal.clone();
            // SAFETY: the handler only stores into atomics, which is async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    signal.store(sig, Ordering::SeqCst);
                    flag.store(true, Ordering::SeqCst);
                })
            }
            .context("installing the signal handler")?;
        }
        Ok(me)
    }

    /// A flag not connected to any signal (tests, and commands that must not be interrupted).
    pub fn detached() -> Self {
        Interrupt {
            flag: Arc::new(AtomicBool::new(false)),
            signal: Arc::new(AtomicI32::new(0)),
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn signal(&self) -> i32 {
        match self.signal.load(Ordering::SeqCst) {
            0 => libc::SIGINT,
            s => s,
        }
    }
}

/// One external program to run, described for humans.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    /// What this does, e.g. "terraform plan": used in progress and error messages.
    pub what: String,
    pub timeout: Option<Duration>,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>, what: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            what: what.into(),
            timeout: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The command line as a user would type it (for `--dry-run` and logs). Never holds secrets:
    /// secrets reach tools through files and environment variables only.
    pub fn display(&self) -> String {
        let mut parts = vec![shell_quote(&self.program.to_string_lossy())];
        parts.extend(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())));
        let line = parts.join(" ");
        match &self.cwd {
            Some(dir) => format!("(cd {} && {line})", shell_quote(&dir.to_string_lossy())),
            None => line,
        }
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How to install a program em-infra runs, on Debian/Ubuntu (the workstation the docs assume).
pub fn install_hint(program: &str) -> String {
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| program.to_string(), |n| n.to_string_lossy().into_owned());
    match name.as_str() {
        "terraform" | "tofu" => "install Terraform ≥ 1.9 from HashiCorp's apt repository \
             (https://developer.hashicorp.com/terraform/install: `sudo apt install terraform`) or \
             OpenTofu (`sudo apt install tofu` from its repository)"
            .to_string(),
        "python3" => {
            "install Python 3 with venv: `sudo apt install python3 python3-venv`".to_string()
        }
        "ssh" | "ssh-keygen" => {
            "install the OpenSSH client: `sudo apt install openssh-client`".to_string()
        }
        n if n.starts_with("ansible") => {
            "em-infra installs the pinned ansible-core into .venv on its \
             first run (`em-infra up`); or `python3 -m venv .venv && .venv/bin/pip install -r \
             requirements-runtime.txt`, or point EM_INFRA_ANSIBLE_BIN_DIR at an existing install"
                .to_string()
        }
        _ => "install it".to_string(),
    }
}

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code; None when killed by a signal.
    pub code: Option<i32>,
    pub interrupted: bool,
    pub timed_out: bool,
    pub duration: Duration,
    /// The last lines of output (already redacted), for error reports.
    pub tail: Vec<String>,
    /// The whole stdout (redacted) when requested with [`Capture::Stdout`].
    pub stdout: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.interrupted && !self.timed_out
    }

    /// How the program ended, in the one wording every report uses: `exited with code 1` or
    /// `exited with a signal`.
    pub fn exited_with(&self) -> String {
        match self.code {
            Some(c) => format!("exited with code {c}"),
            None => "exited with a signal".to_string(),
        }
    }

    /// Why a failed run of `what` failed: `terraform apply exited with code 1`, or
    /// `… timed out after 900s`.
    pub fn failure_text(&self, what: &str) -> String {
        if self.timed_out {
            format!("{what} timed out after {:.0}s", self.duration.as_secs_f64())
        } else {
            format!("{what} {}", self.exited_with())
        }
    }
}

/// Whether stdout is kept in memory besides being logged (for `terraform show -json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    LogOnly,
    Stdout,
}

const TAIL_LINES: usize = 30;
/// How long a child gets to stop after the forwarded signal before its group is killed.
const GRACE: Duration = Duration::from_secs(30);

/// Kills a tool's process group when em-infra dies, however it dies (SIGKILL and OOM included,
/// which no handler sees): a `sh` in a process group of its own blocks reading a pipe whose only
/// writer is em-infra. The kernel closes that writer when em-infra exits, the read returns, and
/// the watchdog sends the tool's group SIGTERM and, a second later, SIGKILL. When the tool ends
/// normally, em-infra stops the watchdog first.
struct Watchdog {
    process: std::process::Child,
    /// Never written: its closing is the signal.
    _writer: std::io::PipeWriter,
}

/// The watchdog's script; `$1` is the tool's process group.
const WATCHDOG_SCRIPT: &str =
    r#"read -r _; kill -s TERM -- "-$1" 2>/dev/null; sleep 1; kill -s KILL -- "-$1" 2>/dev/null"#;

impl Watchdog {
    fn start(tool_pgid: i32) -> std::io::Result<Watchdog> {
        // Both ends are close-on-exec: no other child inherits the writer.
        let (reader, writer) = std::io::pipe()?;
        let process = Command::new("/bin/sh")
            .args(["-c", WATCHDOG_SCRIPT, "em-infra-watchdog"])
            .arg(tool_pgid.to_string())
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: Ctrl-C at the terminal must not stop it, and killing the tool's
            // group must not either.
            .process_group(0)
            .spawn()?;
        Ok(Watchdog {
            process,
            _writer: writer,
        })
    }

    /// The tool ended while em-infra lives: stop the watchdog before its pipe closes, so it never
    /// signals a process group that no longer is the tool's.
    fn stand_down(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

enum Line {
    Out(String),
    Err(String),
}

/// What a caller hears while a tool runs.
pub trait Observer {
    /// The tool started as process (and process group) `pid`.
    fn spawned(&mut self, _pid: u32) {}
    /// One line of its output, already redacted.
    fn line(&mut self, _line: &str) {}
    /// The tool's process group is gone.
    fn ended(&mut self) {}
}

/// Hears nothing.
impl Observer for () {}

/// A closure hears the lines.
impl<F: FnMut(&str)> Observer for F {
    fn line(&mut self, line: &str) {
        self(line);
    }
}

/// Run `cmd`, writing its redacted output to `log` and telling `observer` what happens.
pub fn run(
    cmd: &Cmd,
    log: &mut dyn Write,
    redactor: &Redactor,
    interrupt: &Interrupt,
    capture: Capture,
    observer: &mut dyn Observer,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    writeln!(log, "$ {}", redactor.redact(&cmd.display()))?;
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.process_group(0);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    let mut child = command.spawn().map_err(|e| {
        let program = cmd.program.to_string_lossy();
        if e.kind() == std::io::ErrorKind::NotFound {
            crate::failure::Failure::Preflight(format!(
                "{program} not found on PATH (needed for {}): {}",
                cmd.what,
                install_hint(&program)
            ))
            .into()
        } else {
            anyhow::Error::new(e).context(format!("starting {program} for {}", cmd.what))
        }
    })?;
    let pid = child.id() as i32;
    observer.spawned(child.id());
    // Started right after the tool: if em-infra dies from here on, however it dies, the tool's
    // whole process group goes with it.
    let watchdog = Watchdog::start(pid);
    if let Err(e) = &watchdog {
        writeln!(
            log,
            "[em-infra] no watchdog for {} ({e}); it would outlive a killed em-infra",
            cmd.what
        )?;
    }

    let (tx, rx) = mpsc::channel();
    let readers = [
        spawn_reader(
            child.stdout.take().expect("piped stdout"),
            tx.clone(),
            Line::Out,
        ),
        spawn_reader(child.stderr.take().expect("piped stderr"), tx, Line::Err),
    ];

    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut stdout = String::new();
    let mut forwarded_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut handle = |line: Line, log: &mut dyn Write| -> anyhow::Result<()> {
        let (text, is_out) = match line {
            Line::Out(t) => (t, true),
            Line::Err(t) => (t, false),
        };
        let text = redactor.redact(&text);
        writeln!(log, "{text}")?;
        if is_out && capture == Capture::Stdout {
            stdout.push_str(&text);
            stdout.push('\n');
        }
        observer.line(&text);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
        Ok(())
    };

    let status = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => handle(line, log)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed; the child is exiting.
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(status) = child.try_wait()? {
            // Drain what the readers still hold.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                handle(line, log)?;
            }
            break status;
        }
        let over_time = cmd.timeout.is_some_and(|t| started.elapsed() > t);
        if (interrupt.is_set() || over_time) && forwarded_at.is_none() {
            timed_out = over_time && !interrupt.is_set();
            let sig = if timed_out {
                libc::SIGTERM
            } else {
                interrupt.signal()
            };
            writeln!(
                log,
                "[em-infra] sending signal {sig} to {} (pid {pid})",
                cmd.what
            )?;
            // SAFETY: plain syscall on the child's own process group.
            unsafe { libc::kill(-pid, sig) };
            forwarded_at = Some(Instant::now());
        }
        if forwarded_at.is_some_and(|t| t.elapsed() > GRACE) {
            writeln!(
                log,
                "[em-infra] {} did not stop within {GRACE:?}; killing it",
                cmd.what
            )?;
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            forwarded_at = Some(Instant::now() + Duration::from_secs(3600));
        }
    };
    if let Ok(watchdog) = watchdog {
        watchdog.stand_down();
    }
    observer.ended();
    for reader in readers {
        let _ = reader.join();
    }
    let outcome = Outcome {
        code: status.code(),
        interrupted: interrupt.is_set(),
        timed_out,
        duration: started.elapsed(),
        tail: tail.into(),
        stdout,
    };
    writeln!(
        log,
        "[em-infra] {} {} after {:.1}s",
        cmd.what,
        outcome.exited_with(),
        outcome.duration.as_secs_f64()
    )?;
    log.flush()?;
    Ok(outcome)
}

fn spawn_reader<R: Read + Send + 'static>(
    pipe: R,
    tx: mpsc::Sender<Line>,
    wrap: fn(String) -> Line,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if tx.send(wrap(text)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new("sh", "test script").arg("-c").arg(script)
    }

    #[test]
    fn captures_both_streams_redacted_and_keeps_exit_code() {
        let mut r = Redactor::default();
        r.add("s3cr3t-value");
        let mut log = Vec::new();
        let mut seen = Vec::new();
        let out = run(
            &sh("echo token=s3cr3t-value; echo oops >&2; exit 3"),
            &mut log,
            &r,
            &Interrupt::detached(),
            Capture::Stdout,
            &mut |l: &str| seen.push(l.to_string()),
        )
        .unwrap();
        let log = String::from_utf8(log).unwrap();
        assert_eq!(out.code, Some(3));
        assert!(!out.success());
        assert!(!log.contains("s3cr3t-value"), "{log}");
        assert!(log.contains("token=[REDACTED]"));
        assert!(log.contains("oops"));
        assert_eq!(out.stdout, "token=[REDACTED]\n");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn interrupt_is_forwarded_to_the_child_group() {
        let interrupt = Interrupt::detached();
        let trigger = interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            trigger.signal.store(libc::SIGTERM, Ordering::SeqCst);
            trigger.flag.store(true, Ordering::SeqCst);
        });
        let started = Instant::now();
        let out = run(
            &sh("trap 'echo got-term; exit 7' TERM; while true; do sleep 0.1; done"),
            &mut Vec::new(),
            &Redactor::default(),
            &interrupt,
            Capture::LogOnly,
            &mut (),
        )
        .unwrap();
        assert!(out.interrupted);
        assert_eq!(out.code, Some(7));
        assert!(out.tail.iter().any(|l| l == "got-term"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn timeout_stops_the_child() {
        let out = run(
            &sh("sleep 30").timeout(Duration::from_millis(200)),
            &mut Vec::new(),
            &Redactor::default(),
            &Interrupt::detached(),
            Capture::LogOnly,
            &mut (),
        )
        .unwrap();
        assert!(out.timed_out);
        assert!(!out.success());
    }

    #[test]
    fn missing_program_is_a_preflight_failure() {
        let err = run(
            &Cmd::new("definitely-not-installed-xyz", "a tool"),
            &mut Vec::new(),
            &Redactor::default(),
            &Interrupt::detached(),
            Capture::LogOnly,
            &mut (),
        )
        .unwrap_err();
        assert_eq!(
            crate::failure::kind_of(&err),
            Some(crate::failure::FailureKind::Preflight)
        );
    }

    #[test]
    fn display_quotes_what_needs_quoting() {
        let cmd = Cmd::new("terraform", "plan")
            .arg("-var-file=a b.tfvars")
            .arg("plan")
            .cwd("/tmp/x");
        assert_eq!(
            cmd.display(),
            "(cd /tmp/x && terraform '-var-file=a b.tfvars' plan)"
        );
    }
}
