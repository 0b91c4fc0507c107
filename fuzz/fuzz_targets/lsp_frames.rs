//! The language server's framing reader on any bytes: frames or skips, never a panic, a hang
//! or an allocation the input asks for.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let mut frames = 0;
    while let Ok(Some(_)) = wvflow::lsp::transport::next_frame(&mut input) {
        frames += 1;
        assert!(frames <= data.len() + 1, "a frame was read from no input");
    }
});
