//! The language server's message loop on sessions made from the bytes (initialize, document
//! changes, every request it answers, shutdown and exit in any order, unknown methods, params
//! of the wrong shape): no handler panics, every request gets exactly one response, and the
//! loop ends. The sessions and the checks: `fuzz/common/lsp_session.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../common/lsp_session.rs"]
mod lsp_session;

fuzz_target!(|data: &[u8]| {
    let steps = lsp_session::decode(data);
    let outcome = lsp_session::run(steps.clone(), std::time::Duration::from_secs(20));
    if let Err(problem) = lsp_session::check(&steps, &outcome) {
        panic!("{problem}");
    }
});
