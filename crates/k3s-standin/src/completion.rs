//! `k3s completion bash|zsh [-i]`, as k3s' `pkg/cli/completion` does it: print the urfave/cli
//! completion script, or with `-i` append a line sourcing it to `~/.bashrc` / `~/.zshrc`.
//! (k3s-ansible adds `. <(k3s completion bash)` to the user's `.bashrc`.)

use crate::sys::log;

fn script(shell: &str) -> Result<String, String> {
    match shell {
        "bash" => Ok(r#"#! /bin/bash
_cli_bash_autocomplete() {
if [[ "${COMP_WORDS[0]}" != "source" ]]; then
	local cur opts base
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == "-"* ]]; then
	opts=$( ${COMP_WORDS[@]:0:$COMP_CWORD} ${cur} --generate-bash-completion )
	else
	opts=$( ${COMP_WORDS[@]:0:$COMP_CWORD} --generate-bash-completion )
	fi
	COMPREPLY=( $(compgen -W "${opts}" -- ${cur}) )
	return 0
fi
}

complete -o bashdefault -o default -o nospace -F _cli_bash_autocomplete k3s
"#
        .to_string()),
        "zsh" => Ok(r#"#compdef k3s
_cli_zsh_autocomplete() {

	local -a opts
	local cur
	cur=${words[-1]}
	if [[ "$cur" == "-"* ]]; then
	opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
	else
	opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[@]:0:#words[@]-1} --generate-bash-completion)}")
	fi

	if [[ "${opts[1]}" != "" ]]; then
	_describe 'values' opts
	else
	_files
	fi

	return
}

compdef _cli_zsh_autocomplete k3s"#
            .to_string()),
        other => Err(format!("unknown shell: {other}")),
    }
}

pub(crate) fn run(args: &[String]) -> i32 {
    let install = args.iter().any(|a| a == "-i" || a == "--i");
    let shells: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let result = match shells.first() {
        None => Err("must provide a valid SHELL argument".to_string()),
        Some(shell) => script(shell).and_then(|s| {
            if install {
                install_rc(shell)
            } else {
                println!("{s}");
                Ok(())
            }
        }),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            log("fatal", &format!("Error: {e}"));
            1
        }
    }
}

fn install_rc(shell: &str) -> Result<(), String> {
    use std::io::Write;
    let home = std::env::var("HOME").map_err(|_| "HOME is not set".to_string())?;
    let rc = format!("{home}/.{shell}rc");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&rc)
        .map_err(|e| format!("{rc}: {e}"))?;
    write!(
        f,
        "# >> k3s command completion (start)\n. <(k3s completion {shell})\n# >> k3s command completion (end)"
    )
    .map_err(|e| format!("{rc}: {e}"))?;
    println!("Autocomplete for {shell} added to: {rc}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_for_bash_and_zsh_only() {
        assert!(script("bash").unwrap().contains("complete -o bashdefault"));
        assert!(
            script("bash")
                .unwrap()
                .ends_with("_cli_bash_autocomplete k3s\n")
        );
        assert!(script("zsh").unwrap().starts_with("#compdef k3s"));
        assert_eq!(script("fish").unwrap_err(), "unknown shell: fish");
    }
}
