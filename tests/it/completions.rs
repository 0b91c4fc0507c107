//! `wvflow completions SHELL` and `wvflow man` as a user meets them: the bash script loaded
//! in a real bash completes commands, and the man page is a roff page naming every command.

use crate::common::wvflow;
use std::process::Command;

/// What bash offers after `words`, the cursor at the end of the last word, with the script
/// `wvflow completions bash` prints loaded as a user loads it.
fn bash_offers(words: &[&str]) -> Vec<String> {
    let script = wvflow(&["completions", "bash"]);
    assert!(script.status.success());
    let dir = crate::common::scratch("completions-bash", &[]);
    let file = dir.join("wvflow.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let cursor = words.len() - 1;
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cursor}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; _wvflow wvflow '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        words.join(" "),
        words.join(" "),
        words[cursor],
        words[cursor.saturating_sub(1)],
    );
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_and_options() {
    let offered = bash_offers(&["wvflow", "ru"]);
    assert_eq!(offered, ["run", "runs"]);
    let offered = bash_offers(&["wvflow", "schedule", "--on"]);
    assert_eq!(offered, ["--once"]);
}

#[test]
fn every_shell_has_a_script_and_an_unknown_shell_is_a_usage_error() {
    for (shell, marker) in [
        ("bash", "complete -F _wvflow"),
        ("zsh", "#compdef wvflow"),
        ("fish", "complete -c wvflow"),
        ("elvish", "edit:completion:arg-completer[wvflow]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let o = wvflow(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("schedule"), "{shell}");
    }
    let o = wvflow(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid value 'tcsh'"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_man_page_is_roff_and_names_every_command() {
    let o = wvflow(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq \\(aq"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("\n.TH wvflow 1 "), "{page}");
    assert!(
        page.contains("\n.SH NAME\nwvflow \\- Compile, check and run wvlet\\-style flows"),
        "{page}"
    );
    for command in [
        "check",
        "plan",
        "run",
        "runs",
        "schedule",
        "backfill",
        "fmt",
        "lsp",
        "explain",
        "export",
        "stage",
        "ui",
        "completions",
        "man",
    ] {
        assert!(
            page.contains(&format!("wvflow\\-{command}(1)")),
            "{command} missing from:\n{page}"
        );
    }
    // Each command has the page wvflow(1) names.
    let o = wvflow(&["man", "schedule"]);
    assert_eq!(o.status.code(), Some(0));
    let schedule = String::from_utf8_lossy(&o.stdout);
    assert!(
        schedule.contains("\n.TH wvflow-schedule 1  \"wvflow "),
        "{schedule}"
    );
    assert!(schedule.contains("\\fB\\-\\-once\\fR"), "{schedule}");
    let o = wvflow(&["man", "runs", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .starts_with("error: `wvflow-runs` has no command `nope`; it has: list, show,"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = crate::common::scratch("man-pages", &[]);
    let pages = dir.join("man1");
    let o = wvflow(&["man", "--out-dir", pages.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    for name in [
        "wvflow.1",
        "wvflow-check.1",
        "wvflow-runs-list.1",
        "wvflow-man.1",
    ] {
        let text = std::fs::read_to_string(pages.join(name)).unwrap_or_default();
        assert!(text.starts_with(".ie \\n(.g"), "{name}: {text}");
    }
    // `man` itself reads it.
    if let Ok(man) = Command::new("man").arg("--version").output()
        && man.status.success()
    {
        let dir = crate::common::scratch("man-page", &[("wvflow.1", &page)]);
        let o = Command::new("man")
            .arg(dir.join("wvflow.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("wvflow-schedule(1)"), "{text}");
    }
}
