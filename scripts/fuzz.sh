#!/usr/bin/env bash
# Long fuzzing campaigns with `cargo fuzz` (libFuzzer): each target for SECONDS (default 1800)
# on a seed corpus made of the examples and the test inputs. Needs the nightly toolchain and
# cargo-fuzz, which this script installs with rustup and cargo when they are missing. Leak
# detection is off: the checker's worker threads leave glibc's per-thread destructor record
# (32 bytes) behind, which LeakSanitizer reports on every input. The
# stable test suite runs its own short form (tests/it/fuzz.rs); this is the long form.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#     targets: parse check format lower lsp_frames lsp_session
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-1800}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse check format lower lsp_frames lsp_session)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seeds: every example, one file each (for `lsp_session`, whose bytes choose the messages of
# a session, they are just bytes to start from), and a framed message for `lsp_frames`.
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  if [ "$target" = lsp_frames ]; then
    printf 'Content-Length: 52\r\n\r\n{"jsonrpc": "2.0", "method": "initialized", "params": {}}' > "$corpus/seed"
  else
    cp examples/*.wv "$corpus/" 2>/dev/null || true
  fi
done

for target in "${targets[@]}"; do
  echo "== $target for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -detect_leaks=0 2>&1 | tail -n 5
done
