#!/usr/bin/env bash
# The dashboard's figures for docs/performance.md: page loads of a run with 1,000 stages,
# and the server's memory with 0 and with 10,000 recorded runs. Needs what scripts/test.sh
# installs (Chromium, tests/ui/node_modules).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
wvflow=$PWD/target/release/wvflow
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# A flow of 1,000 query stages in a chain, and a small one.
{
  echo "flow Chain = {"
  echo "  stage s0 = from [[1, 'a'], [2, 'b']] as t(id, name)"
  for i in $(seq 1 999); do echo "  stage s$i = from s$((i - 1)) | where id > 0"; done
  echo "}"
  echo "flow Tiny = {"
  echo "  stage a = from [[1]] as t(n)"
  echo "  stage b = from a | select n + 1 as n"
  echo "}"
} > "$work/flows.wv"
"$wvflow" run "$work" Chain >/dev/null
"$wvflow" run "$work" Tiny >/dev/null
chain=$("$wvflow" runs -w "$work" list --flow Chain --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')

# Starts `wvflow ui` on the workspace; sets $url and $pid.
start_ui() {
  "$wvflow" ui "$work" --port 0 > "$work/ui.out" &
  pid=$!
  for _ in $(seq 100); do [ -s "$work/ui.out" ] && break; sleep 0.05; done
  url=$(head -1 "$work/ui.out" | sed 's/^wvflow ui: //')
}
rss() { grep -E 'VmRSS|VmHWM' "/proc/$pid/status" | tr -s ' ' | tr '\n' ' '; echo; }

start_ui
echo "== 2 runs recorded: idle"; rss
node benches/ui/page_load.mjs "$url" "$chain" 1000
echo "== after the page loads"; rss
kill $pid; wait $pid 2>/dev/null || true

# 10,000 copies of the small run, written straight into the store.
python3 - "$work/.wvflow/workspace.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
(tiny,) = db.execute("SELECT run_id FROM wvflow_runs WHERE flow = 'Tiny'").fetchone()
for table in ["wvflow_runs", "wvflow_stages", "wvflow_attempts"]:
    cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
    rest = ", ".join(c for c in cols if c != "run_id")
    db.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
        INSERT INTO {table} (run_id, {rest}) SELECT 'copy-' || i, {rest} FROM {table}, n WHERE run_id = ?""", (tiny,))
db.commit()
print("runs recorded:", db.execute("SELECT count(*) FROM wvflow_runs").fetchone()[0])
PY
start_ui
echo "== 10,002 runs recorded: idle"; rss
node benches/ui/page_load.mjs "$url"
curl -s -o /dev/null "${url%%/\?*}/api/flows"
echo "== after 5 loads of the runs list (200 newest) and the flows"; rss
for q in "limit=200" "flow=Tiny&state=failed" "limit=10000"; do
  /usr/bin/time -f "GET /api/runs?$q: %e s" curl -s -o /dev/null "${url%%/\?*}/api/runs?$q"
done
echo "== after one list of all 10,002 runs"; rss
