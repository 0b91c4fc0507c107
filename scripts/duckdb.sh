#!/usr/bin/env bash
# Installs DuckDB's own release library (libduckdb.so of DuckDB 1.5.6, Linux x86-64) into
# target/duckdb/, where the `duckdb` cargo feature links it (.cargo/config.toml points
# DUCKDB_LIB_DIR there, and build.rs gives the programs an rpath to it). The library ships
# inside DuckDB's Node bindings package on npm, pinned here to the release whose C API the
# `duckdb` crate (=1.10506.0) is written for. Nothing is compiled: building DuckDB's C++ from
# source (the crate's `bundled` feature) takes over 25 minutes on a 2-core machine.
# See docs/connectors.md, "Building with DuckDB".
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
FOLDER=target/duckdb
LIB="$FOLDER/node_modules/@duckdb/node-bindings-linux-x64/libduckdb.so"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "duckdb: this script installs the Linux x86-64 library; on $(uname -s)-$(uname -m), set DUCKDB_LIB_DIR to a folder holding DuckDB 1.5.6's library" >&2
  exit 1
fi
[ -f "$LIB" ] && exit 0
command -v npm >/dev/null || { echo "duckdb: npm is missing; install Node.js" >&2; exit 1; }
echo "== installing DuckDB's library ($PACKAGE, into $FOLDER)"
mkdir -p "$FOLDER"
npm install --prefix "$FOLDER" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$PACKAGE"
[ -f "$LIB" ] || { echo "duckdb: $PACKAGE has no libduckdb.so" >&2; exit 1; }
