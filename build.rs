//! Links the `wvflow` program at a fixed address on Linux (not position-independent), unless
//! `WVFLOW_PIE` is set. A position-independent program has its 1.2 MB of pointer tables
//! relocated, page by page, at every start: 0.7 ms of the 1.8 ms that `wvflow --version` took,
//! paid by every short command and by every task of an exported flow. The price is that the
//! program's own code is not placed at a random address (libraries, stack and heap still are);
//! packagers whose policy requires PIE build with `WVFLOW_PIE=1`. See docs/performance.md.
//!
//! With the `duckdb` feature, every program (wvflow, tests, benches) is linked with an rpath to
//! the folder of DuckDB's library (`DUCKDB_LIB_DIR`, set by `.cargo/config.toml` to where
//! scripts/duckdb.sh installs it), so that it runs without `LD_LIBRARY_PATH`.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=WVFLOW_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var_os("WVFLOW_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if std::env::var_os("CARGO_FEATURE_DUCKDB").is_some() {
        duckdb_rpath();
    }
}

fn duckdb_rpath() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR") else {
        panic!("the `duckdb` feature needs DUCKDB_LIB_DIR, the folder of libduckdb.so");
    };
    let dir = Path::new(&dir);
    if !dir.join("libduckdb.so").is_file() {
        panic!(
            "the `duckdb` feature links DuckDB 1.5.6's libduckdb.so, not found in {}: \
             run scripts/duckdb.sh to install it there, or set DUCKDB_LIB_DIR to its folder",
            dir.display()
        );
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
