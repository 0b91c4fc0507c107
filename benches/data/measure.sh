#!/usr/bin/env bash
# The data path: a CSV of 1M (and 5M) orders -> filter -> group by -> top 100, run by
# `wvflow run` and, in the same session, by DuckDB (from PyPI, pinned in
# requirements-duckdb.txt, 2 threads) and by the sqlite3 program (`.import`, then the query).
# Needs the sqlite3 program (Debian: apt install sqlite3). Prints wall time (median of RUNS) and peak RSS of each, and wvflow's ratios to them.
#
#   benches/data/measure.sh             # 1M and 5M rows
#   SIZES=1000000 RUNS=5 benches/data/measure.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
here=benches/data
sizes=${SIZES:-"1000000 5000000"}
runs=${RUNS:-3}
if [ ! -x "$here/.venv-duckdb/bin/python" ] || ! cmp -s "$here/requirements-duckdb.txt" "$here/.venv-duckdb/installed"; then
  echo "installing DuckDB into $here/.venv-duckdb" >&2
  python3 -m venv "$here/.venv-duckdb"
  "$here/.venv-duckdb/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-duckdb.txt"
  cp "$here/requirements-duckdb.txt" "$here/.venv-duckdb/installed"
fi
cargo build --release --quiet --bin wvflow
wvflow=$PWD/target/release/wvflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "seconds kilobytes" of one run of a command, from GNU time.
measure() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  cat "$work/time"
}

# The median run's "seconds kilobytes" of RUNS runs.
median() {
  local i
  for i in $(seq "$runs"); do measure "$@"; done | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

# The three must give the same top 100 (revenue to the cent): a reference that computes
# another answer measures nothing.
same_answers() {
  (cd "$work" && rm -rf .wvflow && $wvflow run top.wv --format json >"$work/run.json")
  run_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$work/run.json")
  (cd "$work" && $wvflow runs rows "$run_id" top --format csv --limit 100) | tail -n +2 >"$work/wvflow.csv"
  ANSWER=1 "$here/.venv-duckdb/bin/python" "$here/duckdb_top.py" "$1" >"$work/duckdb.csv"
  sqlite3 :memory: <"$work/top.sql" >"$work/sqlite3.csv"
  python3 - "$work" <<'PY'
import csv, sys
def rows(name):
    with open(f"{sys.argv[1]}/{name}.csv") as f:
        return [(r[0], int(r[1]), round(float(r[2]), 2)) for r in csv.reader(f)]
w, d, s = rows("wvflow"), rows("duckdb"), rows("sqlite3")
assert len(w) == 100 and w == d == s, ("the answers differ", w[:3], d[:3], s[:3])
PY
}

echo "| rows | CSV | wvflow run | DuckDB | sqlite3 | wvflow / DuckDB time | wvflow RSS / CSV |"
echo "|---|---|---|---|---|---|---|"
for n in $sizes; do
  csv=$work/orders.csv
  python3 "$here/generate.py" "$n" "$csv"
  cat > "$work/top.wv" <<WV
flow Top = {
  stage top = from 'orders.csv'
    | where status = 'paid' and amount > 100
    | group by customer
    | select customer, count(*) as orders, sum(amount) as revenue
    | order by revenue desc
    | limit 100
}
WV
  # Typed columns: `.import` into a new table makes every column TEXT, and `amount > 100`
  # then compares text (a different answer).
  cat > "$work/top.sql" <<SQL
CREATE TABLE orders (order_id INTEGER, customer TEXT, region TEXT, amount REAL, status TEXT);
.mode csv
.import --skip 1 $csv orders
SELECT customer, count(*), sum(amount) AS revenue FROM orders
WHERE status = 'paid' AND amount > 100 GROUP BY customer ORDER BY revenue DESC LIMIT 100;
SQL
  same_answers "$csv"
  bytes=$(stat -c %s "$csv")
  # Each run starts from no run state: a run database holds the loaded file.
  read -r wt wm < <(cd "$work" && median sh -c "rm -rf .wvflow && exec $wvflow run top.wv")
  read -r dt dm < <(median "$here/.venv-duckdb/bin/python" "$here/duckdb_top.py" "$csv")
  read -r st sm < <(median sh -c "sqlite3 :memory: < '$work/top.sql'")
  awk -v n="$n" -v b="$bytes" -v wt="$wt" -v wm="$wm" -v dt="$dt" -v dm="$dm" -v st="$st" -v sm="$sm" 'BEGIN {
    printf "| %d | %.0f MB | %.2f s, %.0f MB | %.2f s, %.0f MB | %.2f s, %.0f MB | %.1fx | %.2fx |\n",
      n, b / 1e6, wt, wm / 1024, dt, dm / 1024, st, sm / 1024, wt / dt, wm * 1024 / b }'
done
