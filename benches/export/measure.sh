#!/usr/bin/env bash
# Figures of `wvflow export` and `wvflow stage` for docs/performance.md, each against a
# reference measured in the same run: export of one flow of the generated 5 MB workspace
# against `wvflow check` of it, and a task of a no-op query stage against `sh -c true` and
# against `wvflow run` of the same one-stage flow; a fan-out's item tasks against `wvflow run`
# of the same fan-out.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin wvflow --example gen_workspace
wvflow=$PWD/target/release/wvflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/examples/gen_workspace --mb 5 --out "$work/gen" >/dev/null

# Mean wall time in ms of a command run N times.
mean_ms() {
  local n=$1; shift
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 || true; done
  end=$(date +%s%N)
  echo $(( (end - start) / n / 1000 ))
}
us_to_ms() { awk "BEGIN { printf \"%.2f\", $1 / 1000 }"; }

check=$(mean_ms 10 "$wvflow" check "$work/gen")
airflow=$(mean_ms 10 "$wvflow" export "$work/gen" flow_0 --target airflow)
argo=$(mean_ms 10 "$wvflow" export "$work/gen" flow_0 --target argo)
echo "5 MB workspace: check $(us_to_ms "$check") ms; export airflow $(us_to_ms "$airflow") ms ($(awk "BEGIN { printf \"%.2f\", $airflow / $check }")x); export argo $(us_to_ms "$argo") ms ($(awk "BEGIN { printf \"%.2f\", $argo / $check }")x)"

mkdir -p "$work/flow"
printf 'flow Noop = {\n  stage s = from [[1]] as t(n)\n}\n' > "$work/flow/noop.wv"
"$wvflow" plan "$work/flow" --format json > "$work/plan.json"
state="$work/state"
n=200
for i in $(seq "$n"); do "$wvflow" stage init --plan "$work/plan.json" --state "$state" --run-id "r$i" --cwd "$work/flow"; done
start=$(date +%s%N)
for i in $(seq "$n"); do "$wvflow" stage run s --flow Noop --state "$state" --run-id "r$i" --cwd "$work/flow" >/dev/null; done
end=$(date +%s%N)
task=$(( (end - start) / n / 1000 ))
spawn=$(mean_ms "$n" sh -c true)
run=$(mean_ms 50 "$wvflow" run "$work/flow" --db "$work/run.db")
echo "no-op query stage, file:// state: stage run $(us_to_ms "$task") ms a task; sh -c true $(us_to_ms "$spawn") ms ($(awk "BEGIN { printf \"%.1f\", $task / $spawn }")x); wvflow run of the flow $(us_to_ms "$run") ms ($(awk "BEGIN { printf \"%.2f\", $task / $run }")x)"

# The same tasks with the state in an S3 bucket: moto's server on 127.0.0.1, from the export
# tests' venv (scripts/test.sh installs it).
moto=tests/export/.venv/bin/moto_server
if [ -x "$moto" ]; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$moto" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  moto_pid=$!
  trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$work"' EXIT
  until curl -s -o /dev/null "http://127.0.0.1:$port"; do sleep 0.1; done
  curl -s -o /dev/null -X PUT "http://127.0.0.1:$port/bench"
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  n=100
  for i in $(seq "$n"); do "$wvflow" stage init --plan "$work/plan.json" --state s3://bench/x --run-id "r$i" --cwd "$work/flow"; done
  start=$(date +%s%N)
  for i in $(seq "$n"); do "$wvflow" stage run s --flow Noop --state s3://bench/x --run-id "r$i" --cwd "$work/flow" >/dev/null; done
  end=$(date +%s%N)
  s3task=$(( (end - start) / n / 1000 ))
  echo "no-op query stage, s3:// state (moto on 127.0.0.1): stage run $(us_to_ms "$s3task") ms a task ($(awk "BEGIN { printf \"%.2f\", $s3task / $task }")x the file:// task)"
fi

# A fan-out as engine tasks: 100 items of an `each` whose call prints one row, each item a
# task of its own, against `wvflow run` of the same flow (all items in one process).
rows=$(seq 0 99 | sed 's/.*/[&]/' | paste -sd, -)
mkdir -p "$work/fan"
cat > "$work/fan/fan.wv" <<WV
activity echo_n(n: int) = exec('printf', '{"n": %s}\n', n)
flow Fan = {
  stage src = from [$rows] as t(n)
  stage items [concurrency: 100] = from src | each echo_n(_.n)
}
WV
"$wvflow" plan "$work/fan" --format json > "$work/fan.json"
fan=(--state "$work/fan-state" --run-id f1 --flow Fan --cwd "$work/fan")
"$wvflow" stage init --plan "$work/fan.json" "${fan[@]}"
"$wvflow" stage run src "${fan[@]}" >/dev/null
start=$(date +%s%N)
"$wvflow" stage prepare items "${fan[@]}" >/dev/null
mid=$(date +%s%N)
for i in $(seq 0 99); do "$wvflow" stage item items --item "$i" "${fan[@]}"; done
end=$(date +%s%N)
"$wvflow" stage gather items "${fan[@]}" >/dev/null
gathered=$(date +%s%N)
item=$(( (end - mid) / 100 / 1000 ))
fanrun=$(mean_ms 10 "$wvflow" run "$work/fan" --db "$work/fan-run.db")
echo "fan-out of 100 items as tasks: prepare $(us_to_ms $(( (mid - start) / 1000 ))) ms, an item task $(us_to_ms "$item") ms, gather $(us_to_ms $(( (gathered - end) / 1000 ))) ms; wvflow run of the flow $(us_to_ms "$fanrun") ms, $(us_to_ms $(( fanrun / 100 ))) ms an item ($(awk "BEGIN { printf \"%.1f\", $item * 100 / $fanrun }")x)"
