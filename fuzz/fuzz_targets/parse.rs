//! The lexer and parser on any text: diagnostics, never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut workspace = wvflow::workspace::Workspace::default();
    workspace.add("fuzz.wv".into(), text);
    for d in workspace.diagnostics() {
        let _ = d.message.len();
    }
});
