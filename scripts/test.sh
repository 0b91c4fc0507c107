#!/usr/bin/env bash
# The test command: installs what the tests need beyond Cargo, then runs them.
#  - Graphviz `dot`, to check that `wvflow plan --format dot` renders (Debian package).
#  - Mermaid's own parser (npm, pinned in tests/mermaid/package-lock.json), to check that
#    `wvflow plan --format mermaid` is valid flowchart syntax.
#  - VS Code's TextMate engine (npm, pinned in tests/textmate/package-lock.json), to check
#    the editor grammar in grammar/ against the lexer.
#  - Neovim (Debian package), a real editor client for `wvflow lsp`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dot >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing graphviz"
    (apt-get install -y -qq graphviz >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq graphviz >/dev/null; })
  else
    echo "test: Graphviz 'dot' is missing; install the graphviz package" >&2
    exit 1
  fi
fi

if ! command -v nvim >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "== installing neovim"
    (apt-get install -y -qq neovim >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq neovim >/dev/null; })
  else
    echo "test: Neovim 'nvim' is missing; install the neovim package" >&2
    exit 1
  fi
fi

if [ ! -d tests/mermaid/node_modules ]; then
  command -v npm >/dev/null || { echo "test: npm is missing; install Node.js" >&2; exit 1; }
  echo "== installing the Mermaid parser (tests/mermaid)"
  npm ci --prefix tests/mermaid --no-audit --no-fund --loglevel=error
fi

if [ ! -d tests/textmate/node_modules ]; then
  command -v npm >/dev/null || { echo "test: npm is missing; install Node.js" >&2; exit 1; }
  echo "== installing the TextMate engine (tests/textmate)"
  npm ci --prefix tests/textmate --no-audit --no-fund --loglevel=error
fi

cargo test --locked "$@"
