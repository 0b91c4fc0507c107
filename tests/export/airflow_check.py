"""Exported DAGs in a real Airflow, for tests/it/export.rs. Run with the venv's Python.

  airflow_check.py import DAGS
      Loads every file of the folder DAGS into a DagBag; prints the DAG ids and the import
      errors as JSON; exits 1 when there is an import error.

  airflow_check.py test DAGS DAG_ID CONF STATE
      `airflow dags test DAG_ID --conf CONF` against a fresh Airflow home (SQLite), the
      exported tasks running `wvflow stage` with the state in STATE; prints the summary the
      run's `wvflow-finish` task wrote.

The environment gives WVFLOW (the wvflow binary) and WVFLOW_WORKSPACE, which the DAG files
read.
"""

import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile


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


def test(dags, dag_id, conf, state):
    home = tempfile.mkdtemp()
    env = airflow_env(dags, home)
    env["WVFLOW_STATE"] = state
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    done = subprocess.run([airflow, "dags", "test", dag_id, "--conf", conf], env=env,
                          capture_output=True, text=True)
    summaries = glob.glob(os.path.join(state, "runs", "*", "*", "summary.json"))
    if len(summaries) != 1:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        print(f"{len(summaries)} runs finished in {state}", file=sys.stderr)
        return 1
    print(open(summaries[0]).read())
    return 0


def main(argv):
    if argv[:1] == ["import"]:
        return load(argv[1])
    if argv[:1] == ["test"]:
        return test(*argv[1:5])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
