//! Every example under `examples/` checks clean (no syntax or semantic diagnostic, not even a
//! warning), and every one is documented by a comment header.

use std::path::Path;
use wvflow::workspace::{Workspace, discover};

#[test]
fn every_example_checks_clean_and_has_a_header() {
    let files = discover(Path::new("examples")).expect("examples/ exists");
    assert!(
        files.len() >= 12,
        "SPEC asks for at least 12 examples, found {}",
        files.len()
    );
    let (workspace, errors) = Workspace::load(&[Path::new("examples").to_path_buf()]);
    assert!(errors.is_empty(), "{errors:?}");
    let diagnostics: Vec<_> = workspace.diagnostics().collect();
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let semantic = wvflow::check::check(&workspace).diagnostics;
    assert!(semantic.is_empty(), "{semantic:#?}");
    for (_, file) in workspace.sources.iter() {
        assert!(
            file.text.starts_with("--"),
            "{} has no comment header",
            file.name
        );
    }
    for parsed in &workspace.parsed {
        assert!(!parsed.ast.items.is_empty());
    }
}
