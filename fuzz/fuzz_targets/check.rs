//! The whole checker (and the binder) on any text that parses, or not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut workspace = wvflow::workspace::Workspace::default();
    workspace.add("fuzz.wv".into(), text);
    let report = wvflow::check::check(&workspace);
    let _ = wvflow::diagnostics::render_short(&report.diagnostics, &workspace.sources);
});
