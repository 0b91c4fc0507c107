"""The peers' side of benches/peers/run.sh: one workload on one engine, run in this process.

  python peers.py ENGINE WORKLOAD N

ENGINE: luigi, prefect, dagster or airflow. WORKLOAD: `chain` (N no-op tasks, each after
the one before), `fanout` (one no-op task, then N no-op tasks after it) or `sh` (a chain of
N tasks that each run `sh -c true`). Prints the seconds the engine took from building the
workflow to its end, once the engine is imported (its import is the same for every N and is
reported by run.sh as the whole process's time).
"""

import os
import subprocess
import sys
import tempfile
import time


def noop():
    return None


def shell():
    subprocess.run(["sh", "-c", "true"], check=True)


def luigi_run(workload, n):
    import logging

    import luigi

    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    work = shell if workload == "sh" else noop

    class Step(luigi.Task):
        i = luigi.IntParameter()
        done = False

        def requires(self):
            if workload == "fanout":
                return [Source()] if self.i >= 0 else []
            return [Step(i=self.i - 1)] if self.i > 0 else []

        def complete(self):
            return self.done

        def run(self):
            work()
            self.done = True

    class Source(Step):
        i = luigi.IntParameter(default=-1)

    class Fan(luigi.WrapperTask):
        def requires(self):
            return [Step(i=i) for i in range(n)]

    target = Fan() if workload == "fanout" else Step(i=n - 1)
    ok = luigi.build([target], local_scheduler=True, workers=1, log_level="ERROR")
    assert ok, "luigi: the workflow failed"


def prefect_run(workload, n):
    from prefect import flow, task

    work = shell if workload == "sh" else noop

    @task
    def step(_previous=None):
        work()
        return 1

    @flow
    def chain():
        previous = None
        for _ in range(n):
            previous = step(previous)

    @flow
    def fanout():
        source = step()
        for _ in range(n):
            step(source)

    (fanout if workload == "fanout" else chain)()


def dagster_run(workload, n):
    from dagster import DagsterInstance, In, Nothing, job, op

    work = shell if workload == "sh" else noop

    @op(ins={"after": In(Nothing)})
    def step():
        work()

    @op
    def source():
        work()

    @job
    def chain():
        previous = None
        for i in range(n):
            previous = step.alias(f"s{i}")() if previous is None else step.alias(f"s{i}")(previous)

    @job
    def fanout():
        first = source()
        for i in range(n):
            step.alias(f"f{i}")(first)

    which = fanout if workload == "fanout" else chain
    result = which.execute_in_process(instance=DagsterInstance.ephemeral())
    assert result.success, "dagster: the job failed"


AIRFLOW_DAG = """
import subprocess
from datetime import datetime, timezone

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def noop():
    return None


def shell():
    subprocess.run(["sh", "-c", "true"], check=True)


with DAG(dag_id="peers", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
    tasks = [PythonOperator(task_id=f"t{i}", python_callable=WORK) for i in range(N)]
    if WORKLOAD == "fanout":
        PythonOperator(task_id="source", python_callable=WORK) >> tasks
    else:
        for before, after in zip(tasks, tasks[1:]):
            before >> after
"""


def airflow_run(workload, n):
    """`airflow dags test` of a DAG file (Airflow 3 runs only a DAG its database knows)."""
    dags = tempfile.mkdtemp()
    text = (AIRFLOW_DAG.replace("WORKLOAD", repr(workload)).replace("WORK", "shell" if
            workload == "sh" else "noop").replace("N)", f"{n})"))
    with open(os.path.join(dags, "peers.py"), "w") as out:
        out.write(text)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = dags
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    done = subprocess.run([airflow, "dags", "test", "peers"], capture_output=True, text=True)
    assert done.returncode == 0 and "success" in (done.stdout + done.stderr).lower(), \
        (done.stdout + done.stderr)[-3000:]


def main(argv):
    engine, workload, n = argv[0], argv[1], int(argv[2])
    if engine == "airflow":
        home = tempfile.mkdtemp()
        os.environ.update({
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        })
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "airflow"), "db",
                        "migrate"], check=True, capture_output=True)
    if engine == "prefect":
        os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp())
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    run = {"luigi": luigi_run, "prefect": prefect_run, "dagster": dagster_run,
           "airflow": airflow_run}[engine]
    started = time.perf_counter()
    run(workload, n)
    print(f"{time.perf_counter() - started:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
