//! Shell conventions: `em-infra completions bash|zsh|fish` and `em-infra man`, generated from the
//! same clap definitions as `--help`, work outside any repository and cover every command that
//! `--help` lists (the list is read from `--help`, so a new command is covered without editing
//! this file).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{NotARepo, code, on_path, stderr, stdout};

/// Every command `--help` lists, as its path of names, depth first in `--help` order:
/// `["check"]`, …, `["state"]`, `["state", "backup"]`, … (without clap's `help`).
fn command_tree(here: &NotARepo) -> Vec<Vec<String>> {
    fn walk(here: &NotARepo, path: &[String], tree: &mut Vec<Vec<String>>) {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = here.run(&args);
        assert_eq!(code(&out), 0, "em-infra {args:?}: {}", stderr(&out));
        for name in listed_commands(&stdout(&out)) {
            let mut sub = path.to_vec();
            sub.push(name);
            tree.push(sub.clone());
            walk(here, &sub, tree);
        }
    }
    let mut tree = Vec::new();
    walk(here, &[], &mut tree);
    for known in [
        &["up"][..],
        &["down"],
        &["doctor"],
        &["completions"],
        &["man"],
        &["state", "restore"],
    ] {
        assert!(
            tree.iter().any(|path| path == known),
            "{known:?} is not among the commands read from --help: {tree:?}"
        );
    }
    tree
}

/// The names under `Commands:` in a `--help` text (a description's continuation lines are
/// indented further than the names).
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter(|line| line.starts_with("  ") && !line[2..].starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The whole words of a text (names may hold `-` and `_`).
fn words(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// `em-infra completions SHELL` from outside any repository, written to a file there.
fn completion_script(here: &NotARepo, shell: &str, file: &str) -> (String, PathBuf) {
    let out = here.run(&["completions", shell]);
    assert_eq!(code(&out), 0, "completions {shell}: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "completions {shell} wrote to stderr");
    let script = stdout(&out);
    assert!(
        !script.trim().is_empty(),
        "completions {shell}: empty output"
    );
    let path = here.path().join(file);
    fs::write(&path, &script).unwrap();
    (script, path)
}

fn assert_ran(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// What bash offers after `words` (the last word is the one being completed), the way bash calls
/// the function the script registers for `em-infra` with `complete -F`.
fn bash_complete(script: &Path, words: &[&str]) -> BTreeSet<String> {
    const DRIVER: &str = r#"
source "$1" || exit 1
shift
spec=$(complete -p em-infra) || exit 1
fn=${spec#*-F }
fn=${fn%% *}
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
"$fn" em-infra "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", DRIVER, "bash"])
        .arg(script)
        .args(words)
        .output()
        .unwrap();
    assert_ran(&out, &format!("bash completion of {words:?}"));
    stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What fish offers for a command line (`complete -C`), with the script sourced.
fn fish_complete(script: &Path, line: &str) -> BTreeSet<String> {
    let out = Command::new("fish")
        .args(["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"])
        .arg(script)
        .arg(line)
        .output()
        .unwrap();
    assert_ran(&out, &format!("fish completion of {line:?}"));
    stdout(&out)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn completions_bash_is_valid_bash_and_completes_every_command() {
    let here = NotARepo::new();
    let (script, script_path) = completion_script(&here, "bash", "em-infra.bash");

    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script_path)
        .output()
        .unwrap();
    assert_ran(&syntax, "bash -n on the completion script");
    assert!(
        script.contains("complete -F ") && script.contains(" em-infra\n"),
        "the script registers no completion for em-infra"
    );

    // Every command is offered after its parent's words (`em-infra `, `em-infra state `, …).
    let tree = command_tree(&here);
    let script_words = words(&script);
    for path in &tree {
        let (name, parent) = path.split_last().unwrap();
        assert!(
            script_words.contains(name.as_str()),
            "{name} is not in the script"
        );
        let mut line = vec!["em-infra"];
        line.extend(parent.iter().map(String::as_str));
        line.push("");
        let offered = bash_complete(&script_path, &line);
        assert!(
            offered.contains(name),
            "{line:?} does not offer {name}: {offered:?}"
        );
    }
    // Values and flags after a subcommand.
    assert_eq!(
        bash_complete(&script_path, &["em-infra", "up", "--only", ""]),
        set(&["preflight", "prepare", "provision", "configure", "verify"])
    );
    assert!(set(&["bash", "zsh", "fish"]).is_subset(&bash_complete(
        &script_path,
        &["em-infra", "completions", ""]
    )));
    assert_eq!(
        bash_complete(&script_path, &["em-infra", "state", "restore", "--f"]),
        set(&["--force"])
    );
}

#[test]
fn completions_zsh_and_fish_name_em_infra_and_every_command() {
    let here = NotARepo::new();
    let tree = command_tree(&here);
    let (zsh, zsh_path) = completion_script(&here, "zsh", "_em-infra");
    let (fish, fish_path) = completion_script(&here, "fish", "em-infra.fish");

    // The first line is what zsh's compinit reads to bind the file to the command.
    assert!(
        zsh.starts_with("#compdef em-infra\n"),
        "zsh: {}",
        zsh.lines().next().unwrap_or("")
    );
    assert!(
        fish.contains("complete -c em-infra "),
        "fish: no `complete -c em-infra`"
    );
    let (zsh_words, fish_words) = (words(&zsh), words(&fish));
    for path in &tree {
        let name = path.last().unwrap().as_str();
        assert!(zsh_words.contains(name), "zsh: {name} is missing");
        assert!(fish_words.contains(name), "fish: {name} is missing");
    }

    if on_path("zsh") {
        let syntax = Command::new("zsh")
            .arg("-n")
            .arg(&zsh_path)
            .output()
            .unwrap();
        assert_ran(&syntax, "zsh -n on the completion script");
        // Installed as the README says (a file `_em-infra` in a directory on fpath), compinit
        // binds it to em-infra.
        let bound = Command::new("zsh")
            .args([
                "-f",
                "-c",
                "fpath=($1 $fpath); autoload -Uz compinit; compinit -u -d $2; print -r -- ${_comps[em-infra]}",
                "zsh",
            ])
            .arg(here.path())
            .arg(here.path().join("zcompdump"))
            .output()
            .unwrap();
        assert_ran(&bound, "compinit with the script on fpath");
        assert_eq!(stdout(&bound).trim(), "_em-infra");
    } else {
        eprintln!("zsh is not on PATH: its syntax and compinit checks skipped");
    }

    if on_path("fish") {
        let syntax = Command::new("fish")
            .arg("--no-execute")
            .arg(&fish_path)
            .output()
            .unwrap();
        assert_ran(&syntax, "fish --no-execute on the completion script");
        for path in &tree {
            let (name, parent) = path.split_last().unwrap();
            let line = format!(
                "em-infra {}",
                parent.iter().map(|p| format!("{p} ")).collect::<String>()
            );
            let offered = fish_complete(&fish_path, &line);
            assert!(
                offered.contains(name),
                "fish: {line:?} does not offer {name}: {offered:?}"
            );
        }
        assert_eq!(
            fish_complete(&fish_path, "em-infra up --only "),
            set(&["preflight", "prepare", "provision", "configure", "verify"])
        );
    } else {
        eprintln!("fish is not on PATH: its syntax and completion checks skipped");
    }
}

#[test]
fn completions_and_man_work_outside_a_repository() {
    let here = NotARepo::new();
    // A command that needs the repository fails here, so the directory is no repository.
    let status = here.run(&["status"]);
    assert_eq!(code(&status), 2, "{}", stderr(&status));
    assert!(
        stderr(&status).contains("no em-infra repository found"),
        "{}",
        stderr(&status)
    );

    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["man"],
    ] {
        let out = here.run(args);
        assert_eq!(code(&out), 0, "em-infra {args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "em-infra {args:?} wrote to stderr");
        assert!(!out.stdout.is_empty(), "em-infra {args:?}: empty output");
    }
}

#[test]
fn man_page_is_roff_with_a_page_for_every_command() {
    let here = NotARepo::new();
    let out = here.run(&["man"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let roff = stdout(&out);

    // The header comes first: before it only clap_mangen's definition of the apostrophe
    // string (`.ie \n(.g .ds Aq \(aq` / `.el .ds Aq '`), no text and no section.
    let lines: Vec<&str> = roff.lines().collect();
    let th = lines
        .iter()
        .position(|l| l.starts_with(".TH "))
        .expect("no .TH header");
    assert!(
        lines[..th]
            .iter()
            .all(|l| l.starts_with(".ie ") || l.starts_with(".el ")),
        "text before the .TH header: {:?}",
        &lines[..th]
    );
    assert!(lines[th].starts_with(".TH em-infra 1 "), "{}", lines[th]);

    // One page per command, in --help order, each nested command after its parent.
    let tree = command_tree(&here);
    let titles: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(".TH "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let mut expected = vec!["em-infra".to_string()];
    expected.extend(
        tree.iter()
            .map(|path| format!("em-infra-{}", path.join("-"))),
    );
    assert_eq!(titles, expected);

    // The first page's SUBCOMMANDS section names every top-level command.
    let first_page: String = lines[th..]
        .iter()
        .skip(1)
        .take_while(|l| !l.starts_with(".TH "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        first_page.contains(".SH SUBCOMMANDS\n"),
        "no SUBCOMMANDS section"
    );
    for path in tree.iter().filter(|path| path.len() == 1) {
        // roff escapes every hyphen of the name (`rotate-ssh-key` → `rotate\-ssh\-key`).
        let entry = format!("em\\-infra\\-{}(1)", path[0].replace('-', "\\-"));
        assert!(
            first_page.contains(&entry),
            "the first page does not list {entry}"
        );
    }

    // groff reads it without a warning, as man does on a UTF-8 terminal (`-k`: the text through
    // preconv; `-Tutf8`: a device that has the `→` and `✗` of the help texts).
    if on_path("groff") {
        let file = here.path().join("em-infra.1");
        fs::write(&file, &roff).unwrap();
        let lint = Command::new("groff")
            .args(["-k", "-Tutf8", "-man", "-ww", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert_ran(&lint, "groff -k -Tutf8 -man -ww -z");
        assert_eq!(stderr(&lint), "", "groff warnings");
    } else {
        eprintln!("groff is not on PATH: the man page's lint skipped");
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let here = NotARepo::new();
    let out = here.run(&["completions", "nushell"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "wrote to stdout: {}", stdout(&out));
    assert!(
        stderr(&out).contains("invalid value 'nushell'"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("[possible values: bash, zsh, fish]"),
        "{}",
        stderr(&out)
    );

    let missing = here.run(&["completions"]);
    assert_eq!(code(&missing), 2, "{}", stderr(&missing));
    assert!(missing.stdout.is_empty());
}
