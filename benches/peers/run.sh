#!/usr/bin/env bash
# wvflow and its peers side by side, in one session on this machine: Luigi, Prefect, Dagster
# (each in a venv of its own, from the pinned requirements-*.txt here) and Airflow (the venv
# of the export tests, tests/export/requirements.txt; scripts/test.sh installs it).
#
# Workloads: `chain` (no-op tasks, each after the one before; 100 and 1,000), `fanout` (one
# task, then 100 or 1,000 tasks after it) and `sh` (a chain of 10 or 100 tasks that each run
# `sh -c true`); Airflow's chain and fan-out are of 10 and 100 (see below). wvflow's no-op task is a query stage (`from s1`); its `sh` task an `sh("true")`
# activity. A task's cost is the slope between the two sizes, (T(large) - T(small)) / (large -
# small), so that each engine's start (imports, servers, databases) cancels out; the start is
# the whole process's time at the small size minus the tasks' share. Prints a Markdown table.
#
#   benches/peers/run.sh            # all engines
#   ENGINES="wvflow luigi" benches/peers/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
peers=benches/peers
engines=${ENGINES:-"wvflow luigi prefect dagster airflow"}

for e in luigi prefect dagster; do
  case " $engines " in *" $e "*) ;; *) continue ;; esac
  if [ ! -x "$peers/.venv-$e/bin/python" ] || ! cmp -s "$peers/requirements-$e.txt" "$peers/.venv-$e/installed"; then
    echo "installing $e into $peers/.venv-$e" >&2
    python3 -m venv "$peers/.venv-$e"
    "$peers/.venv-$e/bin/pip" install -q --disable-pip-version-check -r "$peers/requirements-$e.txt"
    cp "$peers/requirements-$e.txt" "$peers/.venv-$e/installed"
  fi
done
case " $engines " in *" airflow "*)
  if [ ! -x tests/export/.venv/bin/airflow ]; then
    echo "Airflow is not installed: run scripts/test.sh first (it installs tests/export/.venv)" >&2
    exit 1
  fi ;;
esac
cargo build --release --quiet --bin wvflow
wvflow=$PWD/target/release/wvflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Prefect's ephemeral server sends no telemetry here.
export PREFECT_SERVER_ANALYTICS_ENABLED=false

# The flow of a workload, as wvflow source.
wv_flow() {
  local workload=$1 n=$2 i
  if [ "$workload" = sh ]; then
    printf 'activity noop = sh("true")\nflow W = {\n  stage s0 = noop()\n'
    for i in $(seq 1 $((n - 1))); do printf '  stage s%d if s%d.success = noop()\n' "$i" $((i - 1)); done
  elif [ "$workload" = chain ]; then
    printf 'flow W = {\n  stage s0 = from [[1]] as t(n)\n'
    for i in $(seq 1 $((n - 1))); do printf '  stage s%d = from s%d\n' "$i" $((i - 1)); done
  else
    printf 'flow W = {\n  stage source = from [[1]] as t(n)\n'
    for i in $(seq 0 $((n - 1))); do printf '  stage f%d = from source\n' "$i"; done
  fi
  printf '}\n'
}

# Seconds one run of a workload takes, the whole process.
seconds() {
  local engine=$1 workload=$2 n=$3 start end
  case $engine in
    wvflow)
      wv_flow "$workload" "$n" > "$work/$workload-$n.wv"
      rm -rf "$work/db-$workload-$n"*
      start=$(date +%s%N)
      "$wvflow" run "$work/$workload-$n.wv" --db "$work/db-$workload-$n" --format json > /dev/null
      end=$(date +%s%N) ;;
    airflow)
      start=$(date +%s%N)
      tests/export/.venv/bin/python "$peers/peers.py" airflow "$workload" "$n" > /dev/null 2>&1
      end=$(date +%s%N) ;;
    *)
      start=$(date +%s%N)
      "$peers/.venv-$engine/bin/python" "$peers/peers.py" "$engine" "$workload" "$n" > /dev/null 2>&1
      end=$(date +%s%N) ;;
  esac
  awk "BEGIN { printf \"%.4f\", ($end - $start) / 1e9 }"
}

echo "| engine | workload | small | large | whole run, small / large | a task (slope) |"
echo "|---|---|---|---|---|---|"
for engine in $engines; do
  # `airflow dags test` of 1,000 tasks did not end within 8 minutes (its scheduling loop looks
  # at every task instance each time), so Airflow's sizes are a tenth.
  specs=("chain 100 1000" "fanout 100 1000" "sh 10 100")
  if [ "$engine" = airflow ]; then specs=("chain 10 100" "fanout 10 100" "sh 10 100"); fi
  for spec in "${specs[@]}"; do
    set -- $spec
    small=$(seconds "$engine" "$1" "$2")
    large=$(seconds "$engine" "$1" "$3")
    per_task=$(awk "BEGIN { printf \"%.3f\", ($large - $small) * 1000 / ($3 - $2) }")
    echo "| $engine | $1 | $2 | $3 | $small s / $large s | $per_task ms |"
  done
done
