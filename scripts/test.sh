#!/usr/bin/env bash
# The test command: installs what the tests need beyond Cargo, then runs them.
#  - Graphviz `dot`, to check that `wvflow plan --format dot` renders (Debian package).
#  - Mermaid's own parser (npm, pinned in tests/mermaid/package-lock.json), to check that
#    `wvflow plan --format mermaid` is valid flowchart syntax.
#  - VS Code's TextMate engine (npm, pinned in tests/textmate/package-lock.json), to check
#    the editor grammar in grammar/ against the lexer.
#  - Neovim (Debian package), a real editor client for `wvflow lsp`.
#  - PostgreSQL (Debian package `postgresql`): the tests of stages on a postgres connector
#    start a server of their own with its `initdb` and `pg_ctl` (tests/it/common/postgres.rs).
#  - Chromium (Debian package) and Playwright's driver for it (npm, pinned in
#    tests/ui/package-lock.json), to use `wvflow ui` in a real browser.
#  - DuckDB's library (libduckdb.so 1.5.6, from its Node bindings package on npm, pinned in
#    scripts/duckdb.sh) into target/duckdb/: the tests are built with the `duckdb` feature,
#    which links it (docs/connectors.md, "Building with DuckDB").
#  - Apache Airflow 3.3 in a Python venv (PyPI, every package pinned in
#    tests/export/requirements.txt), to import and run exported DAGs (`airflow dags test`,
#    and a LocalExecutor scheduler with its dag-processor and API server on its SQLite
#    database: nothing more to install); its jsonschema and PyYAML validate exported Argo
#    manifests.
set -euo pipefail
cd "$(dirname "$0")/.."

# A Debian package that provides a command, installed when the command is missing.
need() {
  local command=$1 package=$2
  command -v "$command" >/dev/null && return
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing $package"
    (apt-get install -y -qq "$package" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "$package" >/dev/null; })
  else
    echo "test: '$command' is missing; install the $package package" >&2
    exit 1
  fi
}

need dot graphviz
need nvim neovim
need chromium chromium
# Debian keeps PostgreSQL's server programs off the PATH, under /usr/lib/postgresql/*/bin.
if ! command -v initdb >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  need initdb postgresql
fi

# An npm package set pinned in a folder under tests/, installed when it is not yet.
need_npm() {
  local folder=$1 what=$2
  [ -d "$folder/node_modules" ] && return
  command -v npm >/dev/null || { echo "test: npm is missing; install Node.js" >&2; exit 1; }
  echo "== installing $what ($folder)"
  npm ci --prefix "$folder" --no-audit --no-fund --loglevel=error
}

need_npm tests/mermaid "the Mermaid parser"
need_npm tests/textmate "the TextMate engine"
need_npm tests/ui "Playwright's driver for the system Chromium"

# A Python venv under tests/, made from its pinned requirements when it is not yet there.
need_venv() {
  local folder=$1 what=$2
  [ -x "$folder/.venv/bin/python" ] && [ -f "$folder/.venv/installed" ] && return
  echo "== installing $what ($folder/.venv)"
  rm -rf "$folder/.venv"
  python3 -m venv "$folder/.venv"
  "$folder/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$folder/requirements.txt"
  touch "$folder/.venv/installed"
}

need_venv tests/export "Apache Airflow"

scripts/duckdb.sh

cargo test --locked --features duckdb "$@"
