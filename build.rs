//! Links the `wvflow` program at a fixed address on Linux (not position-independent), unless
//! `WVFLOW_PIE` is set. A position-independent program has its 1.2 MB of pointer tables
//! relocated, page by page, at every start: 0.7 ms of the 1.8 ms that `wvflow --version` took,
//! paid by every short command and by every task of an exported flow. The price is that the
//! program's own code is not placed at a random address (libraries, stack and heap still are);
//! packagers whose policy requires PIE build with `WVFLOW_PIE=1`. See docs/performance.md.

fn main() {
    println!("cargo:rerun-if-env-changed=WVFLOW_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var_os("WVFLOW_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
