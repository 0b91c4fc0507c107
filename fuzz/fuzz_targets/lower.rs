//! Lowering of every flow of a workspace that checks clean, and the plan's JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut workspace = wvflow::workspace::Workspace::default();
    workspace.add("fuzz.wv".into(), text);
    if workspace.diagnostics().next().is_some() {
        return;
    }
    let report = wvflow::check::check(&workspace);
    if report.diagnostics.iter().any(|d| d.is_error()) {
        return;
    }
    let index = wvflow::check::Index::new(&workspace);
    for &def in &index.flows {
        let plan = wvflow::plan::lower(&workspace, &index, def);
        let _ = serde_json::to_string(&plan);
    }
});
