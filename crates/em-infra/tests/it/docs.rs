//! The docs against the repository and the real binary: every relative link in a tracked
//! Markdown file reaches a file (and, with `#anchor`, a heading) that exists; every `em-infra`
//! command the docs show names a real subcommand and only flags that subcommand accepts; and
//! every `docs/*.md` is reachable from the root README by following links.
//!
//! Commands are read from inline code and code blocks, where `em-infra` (or a `scripts/` wrapper)
//! stands in command position: first, after `$`, `&&`, `;`, `|`, `(` or environment assignments.
//! Placeholders (`ID`, `<NAME>`, `[--x]`, `…`) stop the subcommand lookup; `a | b` is read as
//! alternatives when `b` is a sibling subcommand, and as a pipe otherwise.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::support;

/// Options every subcommand accepts (clap's global arguments, `--help` and `--version`).
const GLOBAL_OPTIONS: &[&str] = &[
    "--json",
    "--no-color",
    "--root",
    "--state-dir",
    "--help",
    "--version",
];

/// Code that starts with `em-infra` but is not a command: the marker `prepare` writes into the
/// template VM's description.
const NOT_COMMANDS: &[&str] = &["em-infra template;"];

/// Wrapper scripts and the subcommand each runs (their arguments follow it).
const WRAPPERS: &[(&str, &[&str])] = &[
    ("scripts/em-infra.sh", &[]),
    ("scripts/provision_dev_env.sh", &["up"]),
    ("scripts/prepare_template.sh", &["up"]),
    ("scripts/destroy_dev_env.sh", &["down"]),
];

/// One tracked Markdown file, read into what the checks need.
struct Doc {
    /// Relative to the repository root.
    path: PathBuf,
    /// GitHub-style anchors of its headings (duplicates numbered as GitHub does).
    anchors: BTreeSet<String>,
    /// `(line, target)` of every link and image, and of every reference definition.
    links: Vec<(usize, String)>,
    /// `(line, text)` of every inline code span and every (continuation-joined) code block line.
    code: Vec<(usize, String)>,
}

fn tracked_markdown() -> Vec<Doc> {
    let root = support::repo_root();
    let out = Command::new("git")
        .args(["ls-files", "-z", "*.md"])
        .current_dir(&root)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed: {out:?}");
    let names = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Doc> = names
        .split('\0')
        .filter(|n| !n.is_empty())
        .map(|n| {
            let text = std::fs::read_to_string(root.join(n)).unwrap();
            parse(Path::new(n), &text)
        })
        .collect();
    assert!(
        docs.iter().any(|d| d.path == Path::new("README.md")),
        "no README.md among the tracked Markdown files"
    );
    docs
}

fn parse(path: &Path, text: &str) -> Doc {
    let mut doc = Doc {
        path: path.to_path_buf(),
        anchors: BTreeSet::new(),
        links: Vec::new(),
        code: Vec::new(),
    };
    let mut slug_counts: HashMap<String, usize> = HashMap::new();
    let lines: Vec<&str> = text.lines().collect();
    // A paragraph: consecutive non-blank lines outside fences (inline code may wrap lines).
    let mut para: Vec<(usize, &str)> = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        let fence_run = |t: &str| {
            let c = t.chars().next()?;
            if c != '`' && c != '~' {
                return None;
            }
            let len = t.chars().take_while(|&x| x == c).count();
            (len >= 3).then_some((c, len))
        };
        if let Some((c, len)) = fence {
            if fence_run(trimmed).is_some_and(|(c2, l2)| {
                c2 == c && l2 >= len && trimmed.trim_start_matches(c).trim().is_empty()
            }) {
                fence = None;
                if let Some(p) = pending.take() {
                    doc.code.push(p);
                }
                continue;
            }
            // Shell continuation lines join into one command.
            let (body, continues) = match line.trim_end().strip_suffix('\\') {
                Some(b) => (b, true),
                None => (*line, false),
            };
            let entry = pending.get_or_insert_with(|| (n, String::new()));
            entry.1.push_str(body);
            entry.1.push(' ');
            if !continues {
                doc.code.push(pending.take().unwrap());
            }
            continue;
        }
        if let Some(open) = fence_run(trimmed) {
            inline(&para, &mut doc);
            para.clear();
            fence = Some(open);
            continue;
        }
        if trimmed.is_empty() {
            inline(&para, &mut doc);
            para.clear();
            continue;
        }
        if let Some(heading) = heading_text(trimmed) {
            inline(&para, &mut doc);
            para.clear();
            let base = slug(heading);
            let count = slug_counts.entry(base.clone()).or_insert(0);
            let anchor = if *count == 0 {
                base.clone()
            } else {
                format!("{base}-{count}")
            };
            *count += 1;
            doc.anchors.insert(anchor);
            inline(&[(n, heading)], &mut doc);
            continue;
        }
        para.push((n, line));
    }
    inline(&para, &mut doc);
    doc
}

/// The text of an ATX heading (`# Title`), without its markers.
fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim_end())
}

/// GitHub's heading anchor: the rendered text lowercased, every character that is not a letter,
/// digit, space, `-` or `_` removed, each space turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    // Links render as their text.
    let mut rest = heading;
    while let Some(start) = rest.find('[') {
        let Some(mid) = rest[start..].find("](") else {
            break;
        };
        let Some(end) = rest[start + mid..].find(')') else {
            break;
        };
        text.push_str(&rest[..start]);
        text.push_str(&rest[start + 1..start + mid]);
        rest = &rest[start + mid + end + 1..];
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Inline code spans and links of one paragraph (`(line number, line)` pairs).
fn inline(para: &[(usize, &str)], doc: &mut Doc) {
    if para.is_empty() {
        return;
    }
    let mut text = String::new();
    let mut line_at = Vec::new(); // line number of each byte of `text`
    for (n, line) in para {
        text.push_str(line);
        text.push('\n');
        line_at.resize(text.len(), *n);
    }
    // Code spans: a run of N backticks up to the next run of exactly N; masked for link search.
    let bytes = text.as_bytes();
    let mut masked = text.clone().into_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
        let mut j = i + run;
        let mut close = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let r = bytes[j..].iter().take_while(|&&b| b == b'`').count();
                if r == run {
                    close = Some(j);
                    break;
                }
                j += r;
            } else {
                j += 1;
            }
        }
        let Some(close) = close else {
            i += run;
            continue;
        };
        let content = text[i + run..close].replace('\n', " ");
        doc.code.push((line_at[i], content.trim().to_string()));
        for b in &mut masked[i..close + run] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        i = close + run;
    }
    let masked = String::from_utf8_lossy(&masked).into_owned();
    // Inline links and images: `](target)` or `](target "title")`.
    let mut from = 0;
    while let Some(pos) = masked[from..].find("](") {
        let start = from + pos + 2;
        let mut depth = 0usize;
        let mut end = None;
        for (k, c) in masked[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(start + k);
                    break;
                }
                ')' => depth -= 1,
                '\n' => break,
                _ => {}
            }
        }
        from = start;
        let Some(end) = end else { continue };
        let target = masked[start..end].trim();
        let target = target.split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        doc.links.push((line_at[start], target.to_string()));
        from = end;
    }
    // Reference definitions: `[label]: target`.
    for (n, line) in para {
        let t = line.trim_start();
        if let Some(close) = t.strip_prefix('[').and_then(|r| r.find("]:"))
            && let Some(target) = t[close + 3..].split_whitespace().next()
        {
            doc.links.push((*n, target.to_string()));
        }
    }
}

/// `path` relative to the repository root, `.` and `..` resolved lexically.
fn resolve(from: &Path, target: &str) -> PathBuf {
    let mut out = PathBuf::new();
    let joined = if let Some(abs) = target.strip_prefix('/') {
        PathBuf::from(abs)
    } else {
        from.parent().unwrap_or(Path::new("")).join(target)
    };
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    lower.is_empty()
        || lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("mailto:")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn relative_links_reach_existing_files_and_headings() {
    let root = support::repo_root();
    let docs = tracked_markdown();
    let by_path: HashMap<&Path, &Doc> = docs.iter().map(|d| (d.path.as_path(), d)).collect();
    let mut problems = Vec::new();
    for doc in &docs {
        for (line, target) in &doc.links {
            if is_external(target) {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let where_ = format!("{}:{line}", doc.path.display());
            let resolved = if file.is_empty() {
                doc.path.clone()
            } else {
                let resolved = resolve(&doc.path, &percent_decode(file));
                if !root.join(&resolved).exists() {
                    problems.push(format!(
                        "{where_}: link `{target}`: {} does not exist",
                        resolved.display()
                    ));
                    continue;
                }
                resolved
            };
            let Some(anchor) = anchor else { continue };
            if resolved.extension().is_none_or(|e| e != "md") {
                continue;
            }
            match by_path.get(resolved.as_path()) {
                Some(target_doc) if target_doc.anchors.contains(&percent_decode(anchor)) => {}
                Some(_) => problems.push(format!(
                    "{where_}: link `{target}`: {} has no heading with anchor #{anchor}",
                    resolved.display()
                )),
                None => problems.push(format!(
                    "{where_}: link `{target}`: {} is not a tracked Markdown file",
                    resolved.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links in the docs:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_doc_under_docs_is_reachable_from_the_readme() {
    let root = support::repo_root();
    let docs = tracked_markdown();
    let by_path: HashMap<&Path, &Doc> = docs.iter().map(|d| (d.path.as_path(), d)).collect();
    let mut seen = BTreeSet::from([PathBuf::from("README.md")]);
    let mut queue = VecDeque::from([PathBuf::from("README.md")]);
    while let Some(path) = queue.pop_front() {
        let Some(doc) = by_path.get(path.as_path()) else {
            continue;
        };
        for (_, target) in &doc.links {
            let file = target.split('#').next().unwrap_or("");
            if is_external(target) || file.is_empty() {
                continue;
            }
            let mut next = resolve(&path, &percent_decode(file));
            if root.join(&next).is_dir() {
                // A directory link shows the directory's README.
                next.push("README.md");
            }
            if by_path.contains_key(next.as_path()) && seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    let unreachable: Vec<String> = docs
        .iter()
        .filter(|d| d.path.starts_with("docs") && !seen.contains(&d.path))
        .map(|d| d.path.display().to_string())
        .collect();
    assert!(
        unreachable.is_empty(),
        "docs not reachable from README.md by following links: {}",
        unreachable.join(", ")
    );
}

/// What `em-infra <path> --help` says: its subcommands, its options (and which take a value).
struct Help {
    commands: BTreeSet<String>,
    /// Option name → whether it takes a value.
    options: HashMap<String, bool>,
}

struct Cli {
    cache: HashMap<Vec<String>, Help>,
}

impl Cli {
    fn help(&mut self, path: &[String]) -> &Help {
        self.cache.entry(path.to_vec()).or_insert_with(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_em-infra"))
                .args(path)
                .arg("--help")
                .env("NO_COLOR", "1")
                .env("COLUMNS", "200")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "em-infra {} --help failed: {out:?}",
                path.join(" ")
            );
            parse_help(&String::from_utf8(out.stdout).unwrap())
        })
    }
}

fn parse_help(text: &str) -> Help {
    let mut help = Help {
        commands: BTreeSet::new(),
        options: HashMap::new(),
    };
    let mut section = "";
    for line in text.lines() {
        if line.trim().is_empty() {
            // Long help separates entries with blank lines.
            continue;
        }
        if !line.starts_with(' ') {
            section = line.trim();
            continue;
        }
        // Entries start at a small indent; their wrapped descriptions are indented further.
        let indent = line.len() - line.trim_start().len();
        if indent > 6 {
            continue;
        }
        let head = line.trim().split("  ").next().unwrap_or("");
        match section {
            "Commands:" => {
                help.commands.insert(head.to_string());
            }
            "Options:" => {
                for part in head.split(", ") {
                    if let Some(long) = part.strip_prefix("--") {
                        let (name, value) = match long.split_once(' ') {
                            Some((n, _)) => (n, true),
                            None => (long, false),
                        };
                        help.options.insert(format!("--{name}"), value);
                    }
                }
            }
            _ => {}
        }
    }
    help
}

/// Every em-infra invocation in a piece of code: the arguments after `em-infra` (or after a
/// wrapper script, prefixed with the subcommand it runs).
fn invocations(code: &str) -> Vec<Vec<String>> {
    // In a table cell `\|` is a literal `|`.
    let code = code.replace("\\|", "|");
    if NOT_COMMANDS.iter().any(|n| code.starts_with(n)) {
        return Vec::new();
    }
    let tokens: Vec<&str> = code.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        // Only a token in command position runs a program: not `cargo test -p em-infra`, not
        // "everything em-infra does" in a diagram.
        let in_command_position = i == 0
            || token.starts_with(['(', '`'])
            || token.starts_with("$(")
            || matches!(
                tokens[i - 1],
                "$" | "&&" | "||" | ";" | "|" | "sudo" | "exec" | "time" | "watch" | "then" | "do"
            )
            || tokens[i - 1].ends_with(';')
            || is_env_assignment(tokens[..i].iter().copied());
        if !in_command_position {
            continue;
        }
        let token = token.trim_start_matches(['(', '`', '"', '\'']);
        let token = token.strip_prefix("$(").unwrap_or(token);
        let prefix: Option<&[&str]> = if token == "em-infra" || token.ends_with("/em-infra") {
            Some(&[])
        } else {
            WRAPPERS
                .iter()
                .find(|(script, _)| {
                    token == *script
                        || token
                            .strip_suffix(script)
                            .is_some_and(|p| p.is_empty() || p.ends_with('/') || p == "./")
                })
                .map(|(_, sub)| *sub)
        };
        let Some(prefix) = prefix else { continue };
        let mut args: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        for t in &tokens[i + 1..] {
            if matches!(*t, "&&" | "||" | ";" | ">" | ">>" | "2>&1" | "<" | "&")
                || t.starts_with('#')
                || t.starts_with('>')
                || t.starts_with("2>")
            {
                break;
            }
            let ends = t.ends_with([';', ')', '`']);
            let t = t.trim_end_matches([';', ')', '`', ',']);
            if !t.is_empty() {
                args.push(t.to_string());
            }
            if ends {
                break;
            }
        }
        found.push(args);
    }
    found
}

/// True when every token before the command is a `NAME=value` environment assignment.
fn is_env_assignment<'a>(mut before: impl Iterator<Item = &'a str>) -> bool {
    before.all(|t| {
        t.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
    })
}

/// A token standing for something the reader fills in: `ID`, `<NAME>`, `…`, `[--x]`.
fn is_placeholder(token: &str) -> bool {
    token.starts_with(['<', '[', '{', '$'])
        || token.contains('…')
        || token.contains("...")
        || (token.chars().any(|c| c.is_ascii_uppercase())
            && !token.chars().any(|c| c.is_ascii_lowercase()))
}

fn check_invocation(cli: &mut Cli, args: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut path: Vec<String> = Vec::new();
    // Subcommands are resolved until a leaf, a placeholder or a positional argument.
    let mut resolving = true;
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        let arg = arg.trim_start_matches('[').trim_end_matches(']');
        if arg.starts_with("--") {
            let name = arg.split('=').next().unwrap();
            if name == "--" {
                break;
            }
            let help = cli.help(&path);
            match help.options.get(name) {
                Some(&takes_value) => {
                    if takes_value && !arg.contains('=') {
                        iter.next();
                    }
                }
                None if GLOBAL_OPTIONS.contains(&name) => {
                    if matches!(name, "--root" | "--state-dir") && !arg.contains('=') {
                        iter.next();
                    }
                }
                None => problems.push(format!(
                    "`em-infra {}` has no option {name}",
                    path.join(" ")
                )),
            }
            continue;
        }
        if arg.starts_with('-') || arg.is_empty() {
            continue;
        }
        if arg == "|" {
            // `list | show`: an alternative subcommand in the same place; otherwise a pipe.
            let Some(next) = iter.peek() else { break };
            if path.is_empty() {
                break;
            }
            let parent = path[..path.len() - 1].to_vec();
            if cli.help(&parent).commands.contains(next.as_str()) {
                path.pop();
                resolving = true;
                continue;
            }
            break;
        }
        if !resolving {
            continue;
        }
        let help = cli.help(&path);
        if help.commands.is_empty() || is_placeholder(arg) {
            resolving = false;
            continue;
        }
        let alternatives: Vec<&str> = arg.split('|').filter(|a| !a.is_empty()).collect();
        let unknown: Vec<&str> = alternatives
            .iter()
            .copied()
            .filter(|a| !help.commands.contains(*a))
            .collect();
        if !unknown.is_empty() {
            let full = if path.is_empty() {
                "em-infra".to_string()
            } else {
                format!("em-infra {}", path.join(" "))
            };
            problems.push(format!("`{full}` has no subcommand {}", unknown.join(", ")));
            break;
        }
        // With `a|b`, the flags that follow are checked against the first.
        path.push(alternatives[0].to_string());
    }
    problems
}

#[test]
fn documented_commands_and_flags_exist() {
    let docs = tracked_markdown();
    let mut cli = Cli {
        cache: HashMap::new(),
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        for (line, code) in &doc.code {
            for args in invocations(code) {
                checked += 1;
                for problem in check_invocation(&mut cli, &args) {
                    problems.push(format!("{}:{line}: {problem}", doc.path.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} em-infra commands found in the docs"
    );
    assert!(
        problems.is_empty(),
        "the docs name commands or flags em-infra does not have:\n{}",
        problems.join("\n")
    );
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Day 2"), "day-2");
    assert_eq!(slug("`em-infra up` → verify"), "em-infra-up--verify");
    assert_eq!(
        slug("2. Terraform outputs (every environment, including X)"),
        "2-terraform-outputs-every-environment-including-x"
    );
    assert_eq!(
        slug("[Runbooks](docs/runbooks.md): gpu_workers"),
        "runbooks-gpu_workers"
    );
}

#[test]
fn parsing_finds_links_code_and_commands() {
    let doc = parse(
        Path::new("docs/x.md"),
        "# Top\n\nSee [a](../README.md#top) and `em-infra\nstatus --json`.\n\n```sh\n\
         em-infra up \\\n  --resume   # [not](a-link.md)\n```\n\n# Top\n",
    );
    assert_eq!(
        doc.anchors,
        BTreeSet::from(["top".to_string(), "top-1".to_string()])
    );
    assert_eq!(doc.links, vec![(3, "../README.md#top".to_string())]);
    assert_eq!(
        resolve(&doc.path, "../README.md"),
        PathBuf::from("README.md")
    );
    let commands: Vec<Vec<String>> = doc.code.iter().flat_map(|(_, c)| invocations(c)).collect();
    assert_eq!(
        commands,
        vec![vec!["status", "--json"], vec!["up", "--resume"]]
    );
    assert!(invocations("cargo test -p em-infra --test it").is_empty());
    assert_eq!(
        invocations("NO_COLOR=1 ./scripts/provision_dev_env.sh --resume && echo done"),
        vec![vec!["up", "--resume"]]
    );
}

#[test]
fn invocations_are_checked_against_the_binary() {
    let mut cli = Cli {
        cache: HashMap::new(),
    };
    let mut check = |code: &str| -> Vec<String> {
        invocations(code)
            .iter()
            .flat_map(|args| check_invocation(&mut cli, args))
            .collect()
    };
    assert!(check("em-infra state backup \\| list \\| restore ID [--force]").is_empty());
    assert!(check("em-infra --json runs show <ID> | jq .").is_empty());
    assert!(check("em-infra completions bash|zsh|fish").is_empty());
    assert_eq!(
        check("em-infra state backup --force"),
        vec!["`em-infra state backup` has no option --force"]
    );
    assert_eq!(
        check("em-infra frob"),
        vec!["`em-infra` has no subcommand frob"]
    );
    assert_eq!(
        check("em-infra runs list|frob"),
        vec!["`em-infra runs` has no subcommand frob"]
    );
}
