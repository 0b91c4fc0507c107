//! The layering of `src/`: each top-level module may use only the modules of the layers below
//! its own. A new import that goes up (and so any cycle between modules) fails here, naming
//! the file that made it. `docs/architecture.md` draws the same table.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. A module may use any module of an earlier layer, none of its own or later.
const LAYERS: &[&[&str]] = &[
    // Facts with no wvflow dependency.
    &[
        "source",
        "span",
        "human",
        "cron",
        "parallel",
        "retry_rule",
        "vocabulary",
        "policy",
        "file_format",
        "terminal",
        "value",
    ],
    &["diagnostics"],
    &["syntax", "connectors"],
    &["arguments", "workspace", "format"],
    &["check"],
    &["plan"],
    &["session"],
    &["runtime"],
    &["export", "testing"],
    &["lsp", "ui"],
    &["cli"],
];

/// The modules a source text names as `crate::module` (or `crate::{module, ...}`), outside
/// comments.
fn used_modules(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // Each item's first segment, at the group's own depth.
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            used.extend(first_segment(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                used.extend(first_segment(&item));
            } else {
                used.extend(first_segment(after));
            }
            rest = after;
        }
    }
    used
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every `.rs` file under `path` (or `path` itself).
fn sources(path: &Path, found: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            sources(&entry.path(), found);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        found.push(path.to_path_buf());
    }
}

#[test]
fn modules_use_only_the_layers_below_their_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (*n, i)))
        .collect();
    let mut wrong = Vec::new();
    let mut modules = 0;
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let Some(&layer) = layer_of.get(name.as_str()) else {
            wrong.push(format!("`{name}` is in no layer: add it to LAYERS"));
            continue;
        };
        modules += 1;
        let mut files = Vec::new();
        sources(&path, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in used_modules(&text) {
                if used == name {
                    continue;
                }
                match layer_of.get(used.as_str()) {
                    Some(&other) if other < layer => {}
                    _ => wrong.push(format!(
                        "{} uses `crate::{used}`, which `{name}` may not use",
                        file.strip_prefix(&src).unwrap().display()
                    )),
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every directory and file of `src/` was looked at (less `lib.rs` and `main.rs`).
    let listed: usize = LAYERS.iter().map(|l| l.len()).sum();
    assert_eq!(modules, listed, "a module in LAYERS is not in src/");
}

#[test]
fn the_reader_of_imports_sees_groups_and_skips_comments() {
    let text = "use crate::plan::ir;\nuse crate::{check::Index, runtime::{a, b}, value};\n// crate::ui\nlet x = crate::syntax::parse(); // crate::lsp\n";
    assert_eq!(
        used_modules(text),
        ["plan", "check", "runtime", "value", "syntax"]
    );
}
