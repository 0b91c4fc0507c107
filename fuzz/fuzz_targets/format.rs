//! The formatter's round trip: what parses formats to text that parses to the same tree, and
//! formatting that text again changes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = wvflow::syntax::parse(text, wvflow::source::FileId(0));
    if !parsed.diagnostics.is_empty() {
        return;
    }
    let file = wvflow::source::FileId(0);
    let Ok(once) = wvflow::format::format(text, file) else {
        return;
    };
    let again = wvflow::format::format(&once, file).expect("formatted text parses");
    assert_eq!(once, again, "formatting is idempotent");
    let reparsed = wvflow::syntax::parse(&once, wvflow::source::FileId(0));
    assert!(reparsed.diagnostics.is_empty(), "formatted text parses cleanly");
    assert_eq!(
        wvflow::syntax::sexpr::file(&parsed.ast),
        wvflow::syntax::sexpr::file(&reparsed.ast),
        "formatting keeps the tree"
    );
});
