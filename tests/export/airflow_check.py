"""Exported DAGs in a real Airflow, for tests/it/export.rs. Run with the venv's Python.

  airflow_check.py import DAGS
      Loads every file of the folder DAGS into a DagBag; prints the DAG ids and the import
      errors as JSON; exits 1 when there is an import error.

  airflow_check.py test DAGS DAG_ID CONF STATE [--pool NAME=SLOTS ...] [--api]
      `airflow dags test DAG_ID --conf CONF` against a fresh Airflow home (SQLite), the
      exported tasks running `wvflow stage` with the state in STATE; prints the summary the
      run's `wvflow-finish` task wrote. Each --pool is made first (`airflow pools set`).
      With --api, an API server of that home runs meanwhile (every user an admin), and the
      connection wvflow_airflow_api names it: the REST API the `wvflow_pools` task reads.
      Without a summary: exits 1, the run's output on stderr.

The environment gives WVFLOW (the wvflow binary) and WVFLOW_WORKSPACE, which the DAG files
read.
"""

import contextlib
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def airflow_env(dags, home):
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": dags,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    })
    return env


def load(dags):
    os.environ.update(airflow_env(dags, tempfile.mkdtemp()))
    from airflow.dag_processing.dagbag import DagBag

    # Airflow logs to stdout; the answer is the only thing printed there.
    with contextlib.redirect_stdout(sys.stderr):
        bag = DagBag(dags)
    print(json.dumps({"dags": sorted(bag.dags), "import_errors": bag.import_errors}, indent=1))
    return 1 if bag.import_errors else 0


@contextlib.contextmanager
def api_server(airflow, env, home):
    """Airflow's API server on a free port of this machine, once it answers; its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(env, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True", AIRFLOW__API__WORKERS="1")
    log = open(os.path.join(home, "api-server.log"), "w")
    server = subprocess.Popen([airflow, "api-server", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    try:
        # Until it answers, or has ended (its log says why).
        while server.poll() is None:
            try:
                urllib.request.urlopen(f"{address}/api/v2/monitor/health", timeout=5)
                break
            except OSError:
                time.sleep(0.2)
        if server.poll() is not None:
            raise RuntimeError("the API server ended: " + open(log.name).read()[-4000:])
        yield address
    finally:
        os.killpg(server.pid, 15)
        server.wait()
        log.close()


def json_list(output):
    """The JSON list an Airflow command printed among its log lines."""
    for line in output.splitlines():
        if line.startswith("[{") or line == "[]":
            return json.loads(line)
    raise ValueError(f"no JSON list in: {output[-2000:]}")


def test(dags, dag_id, conf, state, options):
    home = tempfile.mkdtemp()
    env = airflow_env(dags, home)
    env["WVFLOW_STATE"] = state
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    for name, slots in options["pools"]:
        subprocess.run([airflow, "pools", "set", name, slots, f"wvflow pool {name}"], env=env,
                       check=True, capture_output=True)
    with contextlib.ExitStack() as stack:
        if options["api"]:
            env["AIRFLOW_CONN_WVFLOW_AIRFLOW_API"] = stack.enter_context(api_server(airflow, env, home))
        done = subprocess.run([airflow, "dags", "test", dag_id, "--conf", conf], env=env,
                              capture_output=True, text=True)
    summaries = glob.glob(os.path.join(state, "runs", "*", "*", "summary.json"))
    if len(summaries) != 1:
        # What the DAG's own code said first (`wvflow: ...`), then the end of the run's output.
        output = done.stdout + done.stderr
        said = [line for line in output.splitlines() if "wvflow: " in line]
        sys.stderr.write("\n".join(said) + "\n" + output[-4000:])
        print(f"{len(summaries)} runs finished in {state}", file=sys.stderr)
        return 1
    summary = json.load(open(summaries[0]))
    # The state Airflow gave the DAG run, beside wvflow's: they must agree.
    runs = subprocess.run([airflow, "dags", "list-runs", dag_id, "--output", "json"], env=env,
                          check=True, capture_output=True, text=True)
    summary["airflow_run_state"] = [r["state"] for r in json_list(runs.stdout)]
    print(json.dumps(summary))
    return 0


def main(argv):
    if argv[:1] == ["import"]:
        return load(argv[1])
    if argv[:1] == ["test"]:
        options = {"pools": [], "api": False}
        rest = argv[5:]
        while rest:
            if rest[0] == "--api":
                options["api"], rest = True, rest[1:]
            elif rest[0] == "--pool":
                options["pools"].append(tuple(rest[1].split("=", 1)))
                rest = rest[2:]
            else:
                print(__doc__)
                return 2
        return test(*argv[1:5], options)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
