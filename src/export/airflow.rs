//! The Airflow target (Airflow 3.3 and later): one self-contained DAG file per flow. Every
//! stage is a `BashOperator` running `wvflow stage run`, after `wvflow stage init` and
//! before `wvflow stage finish`, each waiting for all its upstream tasks to be done
//! (`all_done`) and deciding the stage's trigger itself. A stage's `pool` is an Airflow pool,
//! which the setup task `wvflow_pools` checks through the REST API before anything runs.

use super::{Deployment, Exported};
use crate::plan::Plan;
use super::graph::{Shape, StageTasks, TaskGraph};
use crate::plan::ir::{FlowPlan, ParamPlan, PoolPlan, RetryPolicy, StagePlan};
use crate::value::ValueType;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A Python string literal (JSON's escapes are Python's).
fn py(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// A JSON value as a Python literal.
fn py_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => py(s),
        other => py(&other.to_string()),
    }
}

/// A task id: Airflow takes letters, digits, `_`, `-` and `.`.
pub fn task_id(stage: &str) -> String {
    stage
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A DAG parameter typed from a flow parameter.
fn param(p: &ParamPlan) -> String {
    let (ty, format) = match p.ty {
        ValueType::Int => ("integer", None),
        ValueType::Float => ("number", None),
        ValueType::Boolean => ("boolean", None),
        ValueType::Date => ("string", Some("date")),
        ValueType::Timestamp => ("string", Some("date-time")),
        _ => ("string", None),
    };
    let default = match (&p.default, p.ty) {
        // A duration's default is in milliseconds in the plan; the form takes `90s`.
        (Some(serde_json::Value::Number(ms)), ValueType::Duration) => {
            py(&crate::value::duration_text(ms.as_i64().unwrap_or(0)))
        }
        (Some(value), _) => py_value(value),
        (None, _) => String::new(),
    };
    let mut text = String::from("Param(");
    if !default.is_empty() {
        let _ = write!(text, "{default}, ");
    }
    // Null is a value every parameter may have, as `wvflow run F(x = null)` and a call or a
    // jump passing null give it; a parameter without a default is still required.
    let _ = write!(text, "type=[{}, \"null\"]", py(ty));
    if let Some(format) = format {
        let _ = write!(text, ", format={}", py(format));
    }
    if p.ty == ValueType::Duration {
        text.push_str(", description=\"a duration such as 90s or 2h\"");
    }
    text.push(')');
    text
}

pub fn dag(plan: &Plan, deployment: &Deployment) -> Result<Exported, Vec<String>> {
    let graph = TaskGraph::new(plan);
    let mut warnings = Vec::new();
    let mut out = String::new();
    let pools = graph.pools();
    let waits = graph
        .stages
        .iter()
        .any(|s| matches!(s.shape, Shape::Waits { .. }));
    header(&mut out, (plan, deployment), &pools, waits);
    pool_check(&mut out, &pools);
    dag_arguments(&mut out, graph.flow, &mut warnings);
    tasks(&mut out, &graph);
    edges(&mut out, &graph);
    if super::jumps(plan) {
        jump_tasks(&mut out);
    }
    Ok(Exported {
        text: out,
        warnings,
    })
}

/// The pools the DAG's tasks hold, in its header comment: how to create them, and that the
/// run checks them first.
fn pools_comment(out: &mut String, pools: &BTreeMap<&str, u64>) {
    if pools.is_empty() {
        return;
    }
    out.push_str(
        "# Its stages hold Airflow pools, as the flow declares them: create each before a run,\n",
    );
    for (name, slots) in pools {
        let _ = writeln!(
            out,
            "#   airflow pools set {name} {slots} \"wvflow pool {name}\""
        );
    }
    out.push_str(
        "# The task wvflow_pools checks them through Airflow's REST API (the connection\n\
         # wvflow_airflow_api) and fails the run, before anything runs, when one is missing or\n\
         # has other slots.\n",
    );
}

/// `POOLS`, which the `wvflow_pools` task checks against Airflow's pools before anything
/// runs (the scheduler would otherwise leave a task of a missing pool waiting, saying so only
/// in its own log), and the check.
fn pool_check(out: &mut String, pools: &BTreeMap<&str, u64>) {
    if pools.is_empty() {
        return;
    }
    let listed: Vec<String> = pools
        .iter()
        .map(|(name, slots)| format!("{}: {slots}", py(name)))
        .collect();
    let _ = writeln!(out, "POOLS = {{{}}}\n", listed.join(", "));
    out.push_str(POOL_CHECK);
    out.push('\n');
}

/// What the file starts with: what it is, its imports, where wvflow, the workspace and the
/// state are, the plan, and the helpers every task uses.
fn header(
    out: &mut String,
    (plan, deployment): (&Plan, &Deployment),
    pools: &BTreeMap<&str, u64>,
    waits: bool,
) {
    let flow = &plan.flow;
    let json = serde_json::to_vec(plan).unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    let _ = writeln!(
        out,
        "# The flow `{}`, exported by `wvflow export --target airflow`: do not edit, export again.",
        flow.name
    );
    out.push_str(
        "# Every stage is a task running `wvflow stage`, which decides triggers, the rows each stage\n\
         # reads, retries, the saga and the run's state exactly as `wvflow run` does. The tasks need\n\
         # `wvflow` on the workers, the flow's folder at WORKSPACE and a STATE folder they share.\n",
    );
    pools_comment(out, pools);
    out.push_str(
        "from __future__ import annotations\n\n\
         import base64\nimport hashlib\nimport json\nimport os\nimport random\nimport re\nimport stat\nimport tempfile\n\
         from datetime import datetime, timedelta, timezone\n\n\
         from airflow.providers.standard.operators.bash import BashOperator\n",
    );
    if !pools.is_empty() {
        out.push_str("from airflow.providers.standard.operators.python import PythonOperator\n");
    }
    if waits {
        out.push_str("from airflow.providers.standard.sensors.python import PythonSensor\n");
    }
    if super::starts_runs(plan) {
        out.push_str(
            "from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator\n",
        );
    }
    out.push_str(
        "from airflow.sdk import (\n    DAG,\n    CronTriggerTimetable,\n    DeltaTriggerTimetable,\n    \
         Param,\n    RetryDecision,\n    RetryPolicy,\n)\n\n",
    );
    let _ = writeln!(
        out,
        "WVFLOW = os.environ.get(\"WVFLOW\", {})",
        py(&deployment.wvflow)
    );
    let _ = writeln!(
        out,
        "WORKSPACE = os.environ.get(\"WVFLOW_WORKSPACE\", {})",
        py(&deployment.workspace)
    );
    let _ = writeln!(
        out,
        "STATE = os.environ.get(\"WVFLOW_STATE\", {})",
        py(&deployment.state)
    );
    out.push_str(
        "# Stages that write the shared workspace database (`save to`, idempotency records) take\n\
         # this pool; create it with one slot (`airflow pools set wvflow_workspace 1 ...`). A task's\n\
         # pool is fixed when the dag-processor parses this file: set the variable there.\n",
    );
    let _ = writeln!(
        out,
        "WORKSPACE_POOL = os.environ.get(\"WVFLOW_WORKSPACE_POOL\", \"default_pool\")"
    );
    out.push_str("\n# The plan, as `wvflow plan --format json` wrote it (base64: never read as a template).\n");
    out.push_str("PLAN_BASE64 = (\n");
    for chunk in encoded.as_bytes().chunks(88) {
        let _ = writeln!(out, "    \"{}\"", String::from_utf8_lossy(chunk));
    }
    out.push_str(")\n\n");
    out.push_str(PYTHON_HELPERS);
    out.push('\n');
    if waits {
        out.push_str(POLL_HELPER);
        out.push('\n');
    }
}

/// The DAG id of a flow: `Name`, or `Name_v2` for a version.
pub fn dag_id(name: &str, version: Option<u32>) -> String {
    match version {
        Some(v) => format!("{name}_v{v}"),
        None => name.to_string(),
    }
}

/// `with DAG(...) as dag:`: its id, schedule, start, catch-up, limits and parameters.
fn dag_arguments(out: &mut String, flow: &FlowPlan, warnings: &mut Vec<String>) {
    let dag_id = dag_id(&flow.name, flow.version);
    let schedule = match &flow.schedule {
        Some(s) => match (&s.cron, s.interval_ms) {
            (Some(cron), _) => format!(
                "CronTriggerTimetable({}, timezone={})",
                py(cron),
                py(&s.timezone)
            ),
            (None, Some(ms)) => {
                if ms == 0 || !86_400_000u64.is_multiple_of(ms) {
                    warnings.push(format!(
                        "flow `{}`: its interval does not divide a day, so Airflow's runs fire at \
                         other instants than `wvflow schedule`'s (counted from the DAG's start \
                         date, not the Unix epoch)",
                        flow.name
                    ));
                }
                format!("DeltaTriggerTimetable(timedelta(milliseconds={ms}))")
            }
            (None, None) => "None".into(),
        },
        None => "None".into(),
    };
    if !flow.depends_on.is_empty() || flow.start_condition.is_some() {
        warnings.push(format!(
            "flow `{}` starts after other flows (`depends on`, `if F.failed`): Airflow does not \
             start it so; add a sensor or an asset to the DAG",
            flow.name
        ));
    }
    if flow.keep_runs.is_some() {
        warnings.push("`keep_runs` is left to Airflow's own clean-up (`airflow db clean`)".into());
    }
    let _ = writeln!(out, "with DAG(");
    let _ = writeln!(out, "    dag_id={},", py(&dag_id));
    let _ = writeln!(
        out,
        "    description={},",
        py(&format!("wvflow flow {}", flow.name))
    );
    let _ = writeln!(out, "    schedule={schedule},");
    // A fixed start, so that the file is the same at every export; catch-up is the flow's.
    let _ = writeln!(
        out,
        "    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),"
    );
    let catchup = flow.schedule.as_ref().is_some_and(|s| s.catchup);
    if catchup {
        warnings.push(format!(
            "flow `{}`: with `catchup`, Airflow starts every window since the DAG's start date \
             (2026-01-01), where `wvflow schedule` starts at most the newest 100",
            flow.name
        ));
    }
    let _ = writeln!(
        out,
        "    catchup={},",
        if catchup { "True" } else { "False" }
    );
    if let Some(n) = flow.concurrency {
        let _ = writeln!(out, "    max_active_runs={n},");
    }
    if let Some(n) = flow.max_parallel {
        let _ = writeln!(out, "    max_active_tasks={n},");
    }
    out.push_str("    params={\n");
    for p in &flow.params {
        let _ = writeln!(out, "        {}: {},", py(&p.name), param(p));
    }
    out.push_str("    },\n");
    out.push_str("    tags=[\"wvflow\"],\n) as dag:\n");
}

/// The tasks: `wvflow_init`, each stage's (a fan-out's `prepare`, items and gathering), and
/// `wvflow_finish`.
fn tasks(out: &mut String, graph: &TaskGraph) {
    if !graph.pools().is_empty() {
        // A setup task: when it fails, every task after it ends `upstream_failed`, whatever
        // its trigger rule, instead of waiting for a pool that is not there.
        out.push_str(
            "    pools = PythonOperator(\n        task_id=\"wvflow_pools\",\n        \
             python_callable=check_pools,\n        op_args=[POOLS],\n        retries=2,\n        \
             retry_policy=WvflowRetry(1000, \"constant\", 1.0, None, False),\n    ).as_setup()\n",
        );
    }
    out.push_str(
        "    init = BashOperator(\n        task_id=\"wvflow_init\",\n        \
         bash_command='\"$WVFLOW\" stage init --plan \"$WVFLOW_PLAN\" --state \"$WVFLOW_STATE\" \
         --run-id \"$WVFLOW_RUN_ID\" --cwd \"$WVFLOW_WORKSPACE\" --args \"$WVFLOW_ARGS\" \
         --run-time \"$WVFLOW_RUN_TIME\"',\n        env=task_env(),\n        append_env=True,\n        \
         retries=2,\n        retry_policy=WvflowRetry(1000, \"constant\", 1.0, None, False),\n    )\n",
    );
    out.push_str("    tasks = {}\n");
    if graph.any_fanned() {
        out.push_str("    prepares = {}\n");
    }
    for tasks in &graph.stages {
        let stage = tasks.stage;
        let retries = match tasks.shape {
            Shape::One { retries } => retries,
            Shape::Fanned {
                item_retries,
                concurrency,
            } => {
                fan_out_tasks(out, tasks, item_retries, concurrency);
                continue;
            }
            Shape::Calls { .. } => {
                call_tasks(out, tasks);
                continue;
            }
            Shape::Waits { poll_interval_ms } => {
                wait_tasks(out, tasks, poll_interval_ms);
                continue;
            }
        };
        let _ = writeln!(out, "    tasks[{}] = BashOperator(", py(&stage.id));
        let _ = writeln!(out, "        task_id={},", py(&task_id(&stage.id)));
        let _ = writeln!(out, "        bash_command={},", py(&command("run", stage)));
        task_options(out, stage, retries, "all_done");
        // A writer of the shared workspace database that holds the flow's pool takes its turn
        // as a writer in wvflow (the workspace's lease), not in a second pool: a task holds one.
        if let Some(pool) = tasks.pool {
            pool_options(out, pool);
        } else if tasks.writes_workspace {
            // One writer of the shared workspace database at a time: a pool of one slot.
            out.push_str("        pool=WORKSPACE_POOL,\n");
        }
        out.push_str("    )\n");
    }
    // `finish` decides the run: a teardown, so that it still runs (compensations, hooks)
    // when someone marks the run failed, which skips every task that has not started.
    // `result` says the run's state again, and is the run's one leaf that is not a
    // teardown: Airflow's run fails exactly when wvflow's does, whatever task failed on the
    // way (a stage whose failure the flow ignores).
    for (task, teardown) in [("finish", true), ("result", false)] {
        let _ = writeln!(out, "    {task} = BashOperator(");
        let _ = writeln!(out, "        task_id=\"wvflow_{task}\",");
        // Only `finish` decides again after a clear; `result` reads what it decided.
        let again = if teardown {
            " --first-try \"$WVFLOW_FIRST_TRY\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "        bash_command='\"$WVFLOW\" stage finish --plan \"$WVFLOW_PLAN\" --state \
             \"$WVFLOW_STATE\" --run-id \"$WVFLOW_RUN_ID\" --cwd \"$WVFLOW_WORKSPACE\"{again}',"
        );
        out.push_str("        env=task_env(),\n        append_env=True,\n");
        if !teardown {
            out.push_str("        trigger_rule=\"all_done\",\n");
        }
        out.push_str(
            "        retries=2,\n        \
             retry_policy=WvflowRetry(1000, \"constant\", 1.0, None, False),\n",
        );
        out.push_str(match (teardown, graph.pools().is_empty()) {
            (false, _) => "    )\n",
            (true, true) => "    ).as_teardown()\n",
            // Pools missing or smaller fail the setup task: nothing ran, nothing to decide.
            (true, false) => "    ).as_teardown(setups=pools)\n",
        });
    }
}

/// Each stage's first task after the tasks it waits for (`init` when none), and `finish`
/// after every task.
fn edges(out: &mut String, graph: &TaskGraph) {
    for tasks in &graph.stages {
        let (stage, waits) = (tasks.stage, &tasks.waits_for);
        // A fanned-out stage starts at its `prepare` task.
        let first = if tasks.fanned() {
            format!("prepares[{}]", py(&stage.id))
        } else {
            format!("tasks[{}]", py(&stage.id))
        };
        if waits.is_empty() {
            let _ = writeln!(out, "    init >> {first}");
        } else {
            let list: Vec<String> = waits.iter().map(|w| format!("tasks[{}]", py(w))).collect();
            let _ = writeln!(out, "    [{}] >> {first}", list.join(", "));
        }
    }
    out.push_str("    list(tasks.values()) >> finish\n");
    out.push_str("    [finish, *tasks.values()] >> result\n");
    if !graph.pools().is_empty() {
        out.push_str("    pools >> init\n");
    }
    if graph.stages.is_empty() {
        out.push_str("    init >> [finish, result]\n");
    }
}

/// After a run that succeeded, the run its jump starts: `next` prints it (none when the run
/// failed or reached no jump), and `start` triggers it without waiting, under a run id made
/// from this run's, so that a task tried again does not start it twice.
fn jump_tasks(out: &mut String) {
    let command = "\"$WVFLOW\" stage next --engine airflow --plan \"$WVFLOW_PLAN\" --state \
                   \"$WVFLOW_STATE\" --run-id \"$WVFLOW_RUN_ID\" --cwd \"$WVFLOW_WORKSPACE\"";
    out.push_str("    next_run = BashOperator(\n        task_id=\"wvflow_next\",\n");
    let _ = writeln!(out, "        bash_command={},", py(command));
    out.push_str(
        "        output_processor=json.loads,\n        env=task_env(),\n        append_env=True,\n        \
         retries=2,\n        retry_policy=WvflowRetry(1000, \"constant\", 1.0, None, False),\n    )\n",
    );
    out.push_str(
        "    start = TriggerDagRunOperator.partial(\n        task_id=\"wvflow_start\",\n        \
         trigger_run_id=\"{{ run_id }}.next\",\n        skip_when_already_exists=True,\n        \
         openlineage_inject_parent_info=False,\n    ).expand_kwargs(next_run.output)\n",
    );
    out.push_str("    result >> next_run\n");
}

/// A stage whose child runs (`call`, `each call`) are the engine's runs: `STAGE.prepare` (the
/// steps before the call; prints the children as the keyword arguments of
/// `TriggerDagRunOperator`), `STAGE.children` (one mapped trigger per child, deferred while it
/// waits for the child's run to end, under the run id the stage's task looks for; started
/// again by the engine as the stage's retries say, each try a new child run) and the stage's
/// own task, which gathers the children's ends and rows and runs the steps after the call.
fn call_tasks(out: &mut String, tasks: &StageTasks) {
    let Shape::Calls {
        retries,
        concurrency,
        ..
    } = tasks.shape
    else {
        return;
    };
    let stage = tasks.stage;
    let prepare = command("prepare", stage).replacen(
        " stage prepare ",
        " stage prepare --engine airflow ",
        1,
    );
    prepare_task(out, stage, &prepare, true);
    let run_id = crate::plan::tasks::child_run_id(
        "{{ run_id }}",
        &stage.id,
        "{{ ti.map_index }}",
        "{{ ti.try_number }}",
    );
    out.push_str("    children = TriggerDagRunOperator.partial(\n");
    let _ = writeln!(out, "        task_id={},", py(&format!("{}.children", stage.id)));
    let _ = writeln!(out, "        trigger_run_id={},", py(&run_id));
    out.push_str(
        "        wait_for_completion=True,\n        deferrable=True,\n        poke_interval=2,\n        \
         allowed_states=[\"success\"],\n        failed_states=[\"failed\"],\n        \
         openlineage_inject_parent_info=False,\n        trigger_rule=\"all_success\",\n",
    );
    priority(out, stage);
    if let Some(ms) = stage.timeout_ms {
        let _ = writeln!(out, "        execution_timeout=timedelta(milliseconds={ms}),");
    }
    match retries {
        // Each try starts a new child run, as `wvflow run` starts one per attempt.
        Some(_) => task_retries(out, retries),
        // A child run started twice would do its work twice.
        None => out.push_str("        retries=0,\n"),
    }
    if let Some(n) = concurrency {
        let _ = writeln!(out, "        max_active_tis_per_dagrun={n},");
    }
    let _ = writeln!(
        out,
        "    ).expand_kwargs(prepares[{}].output)",
        py(&stage.id)
    );
    gather_task(out, tasks);
    let _ = writeln!(
        out,
        "    [prepares[{0}], children] >> tasks[{0}]",
        py(&stage.id)
    );
}

/// A stage whose `wait until` Airflow checks between its own waits: `STAGE.prepare` (the
/// queries before the wait), `STAGE.wait` (a `PythonSensor` in `reschedule` mode: each poke
/// runs `wvflow stage poll`, and between pokes the sensor holds no worker slot; it never times
/// out by itself: wvflow ends the wait at the stage's `timeout`) and the stage's own task,
/// which runs the steps after the wait on the rows the wait ended with.
fn wait_tasks(out: &mut String, tasks: &StageTasks, poll_interval_ms: u64) {
    let stage = tasks.stage;
    prepare_task(out, stage, &command("prepare", stage), false);
    out.push_str("    wait = PythonSensor(\n");
    let _ = writeln!(out, "        task_id={},", py(&format!("{}.wait", stage.id)));
    out.push_str("        python_callable=poll_stage,\n");
    let _ = writeln!(
        out,
        "        op_kwargs={{\"stage\": {}, \"env\": task_env()}},",
        py(&stage.id)
    );
    let _ = writeln!(
        out,
        "        mode=\"reschedule\",\n        poke_interval=timedelta(milliseconds={poll_interval_ms}),\n        \
         timeout=timedelta(days=36500),"
    );
    let _ = writeln!(out, "        trigger_rule=\"all_success\",");
    priority(out, stage);
    task_retries(out, None);
    out.push_str("    )\n");
    gather_task(out, tasks);
    let _ = writeln!(
        out,
        "    prepares[{0}] >> wait >> tasks[{0}]",
        py(&stage.id)
    );
}

/// `STAGE.prepare`, the first task of a stage in parts, running `command`; its output, the
/// JSON list the engine maps over, read when `mapped`.
fn prepare_task(out: &mut String, stage: &StagePlan, command: &str, mapped: bool) {
    let _ = writeln!(out, "    prepares[{}] = BashOperator(", py(&stage.id));
    let _ = writeln!(out, "        task_id={},", py(&format!("{}.prepare", stage.id)));
    let _ = writeln!(out, "        bash_command={},", py(command));
    if mapped {
        out.push_str("        output_processor=json.loads,\n");
    }
    task_options(out, stage, None, "all_done");
    out.push_str("    )\n");
}

/// The stage's own task after its parts: `wvflow stage gather`, one writer at a time when it
/// writes the workspace database (it records the items' keys).
fn gather_task(out: &mut String, tasks: &StageTasks) {
    let stage = tasks.stage;
    let _ = writeln!(out, "    tasks[{}] = BashOperator(", py(&stage.id));
    let _ = writeln!(out, "        task_id={},", py(&task_id(&stage.id)));
    let _ = writeln!(out, "        bash_command={},", py(&command("gather", stage)));
    task_options(out, stage, None, "all_done");
    if tasks.writes_workspace {
        out.push_str("        pool=WORKSPACE_POOL,\n");
    }
    out.push_str("    )\n");
}

/// A task's priority: Airflow's `priority_weight`, higher first, from wvflow's lower first.
fn priority(out: &mut String, stage: &StagePlan) {
    let _ = writeln!(
        out,
        "        priority_weight={},\n        weight_rule=\"absolute\",",
        4 - u32::from(stage.priority.min(3))
    );
}

/// The command of a stage's task: `wvflow stage VERB STAGE` with what every task passes.
fn command(verb: &str, stage: &StagePlan) -> String {
    let attempt = match verb {
        "run" => " --attempt \"$WVFLOW_TRY\" --first-try \"$WVFLOW_FIRST_TRY\"",
        "item" => " --attempt \"$WVFLOW_TRY\"",
        _ => "",
    };
    let item = match verb {
        "item" => " --item {item}",
        "prepare" => " --max-items \"$WVFLOW_MAX_ITEMS\"",
        _ => "",
    };
    format!(
        "\"$WVFLOW\" stage {verb} {}{item} --plan \"$WVFLOW_PLAN\" --state \"$WVFLOW_STATE\" \
         --run-id \"$WVFLOW_RUN_ID\" --cwd \"$WVFLOW_WORKSPACE\"{attempt}",
        shell_word(&stage.id)
    )
}

/// What every stage task passes after its command: environment, trigger rule, priority and
/// retries (`policy`'s, or, retried inside the task, only a task that could not run). A stage
/// task waits for all its upstream tasks to be done and decides its trigger itself.
fn task_options(out: &mut String, stage: &StagePlan, policy: Option<&RetryPolicy>, rule: &str) {
    out.push_str("        env=task_env(),\n        append_env=True,\n");
    let _ = writeln!(out, "        trigger_rule={},", py(rule));
    priority(out, stage);
    task_retries(out, policy);
}

/// A task's `retries` and `retry_policy`: `policy`'s, or, retried inside the task, only a
/// task that could not run.
fn task_retries(out: &mut String, policy: Option<&RetryPolicy>) {
    match policy {
        Some(policy) => {
            let _ = writeln!(out, "        retries={},", policy.attempts - 1);
            let _ = writeln!(
                out,
                "        retry_policy=WvflowRetry({}, {}, {:?}, {}, {}),",
                policy.initial_delay_ms,
                py(policy.backoff.as_str()),
                policy.coefficient,
                policy
                    .max_delay_ms
                    .map_or("None".to_string(), |ms| ms.to_string()),
                if policy.jitter { "True" } else { "False" }
            );
        }
        None => out.push_str(
            "        retries=2,\n        retry_policy=WvflowRetry(1000, \"constant\", 1.0, None, False),\n",
        ),
    }
}

/// A stage whose `each` items are tasks of their own: `STAGE.prepare` (the steps before the
/// `each`; prints the items' indices), `STAGE.items` (one mapped task instance per item, at
/// most `concurrency` at once, each retried by the engine) and the stage's own task, which
/// gathers them and runs the steps after the `each`. Stage names have no `.`, so these
/// names are never a stage's.
fn fan_out_tasks(
    out: &mut String,
    tasks: &StageTasks,
    item_retries: Option<&RetryPolicy>,
    concurrency: Option<u64>,
) {
    let stage = tasks.stage;
    prepare_task(out, stage, &command("prepare", stage), true);
    let _ = writeln!(out, "    items = BashOperator.partial(");
    let _ = writeln!(
        out,
        "        task_id={},",
        py(&format!("{}.items", stage.id))
    );
    // An item runs once `prepare` succeeded: a skipped or failed stage has no items.
    task_options(out, stage, item_retries, "all_success");
    if let Some(n) = concurrency {
        let _ = writeln!(out, "        max_active_tis_per_dagrun={n},");
    }
    // As `wvflow run`, the items hold the stage's pool one by one.
    if let Some(pool) = tasks.pool {
        pool_options(out, pool);
    }
    let _ = writeln!(
        out,
        "    ).expand(bash_command=prepares[{}].output.map(item_command({})))",
        py(&stage.id),
        py(&command("item", stage))
    );
    gather_task(out, tasks);
    let _ = writeln!(
        out,
        "    [prepares[{0}], items] >> tasks[{0}]",
        py(&stage.id)
    );
}

/// A task that holds one slot of the flow's pool while it runs.
fn pool_options(out: &mut String, pool: &PoolPlan) {
    let _ = writeln!(out, "        pool={},\n        pool_slots=1,", py(&pool.name));
}

/// A stage name as one shell word: names are identifiers, quoted anyway.
fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What every exported DAG file defines: the plan file on the worker, each task's
/// environment, and the retry policy that computes wvflow's delays and stops at exit 98.
/// What a DAG whose waits Airflow checks defines: one check, without a shell.
const POLL_HELPER: &str = r#"def poll_stage(stage: str, env: dict) -> bool:
    """One check of a stage's `wait until` (`wvflow stage poll`, exit 0 once the wait is over,
    3 while its condition does not hold): between checks the sensor gives its worker back."""
    import subprocess

    argv = [env["WVFLOW"], "stage", "poll", stage, "--plan", env["WVFLOW_PLAN"],
            "--state", env["WVFLOW_STATE"], "--run-id", env["WVFLOW_RUN_ID"],
            "--cwd", env["WVFLOW_WORKSPACE"]]
    done = subprocess.run(argv, env={**os.environ, **env})
    if done.returncode == 3:
        return False
    if done.returncode != 0:
        raise RuntimeError(f"wvflow stage poll {stage} ended with exit code {done.returncode}")
    return True
"#;

const PYTHON_HELPERS: &str = r#"def plan_file() -> tuple[str, str]:
    """The plan in a file of its own on this worker, named by its content, in a folder only
    this user can write (another user cannot choose the commands), and its SHA-256, which
    `wvflow stage` checks again."""
    data = base64.b64decode("".join(PLAN_BASE64))
    digest = hashlib.sha256(data).hexdigest()
    folder = os.path.join(tempfile.gettempdir(), f"wvflow-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{folder} is not a folder only this user can write: remove it")
    path = os.path.join(folder, f"plan-{digest[:16]}.json")
    try:
        with open(path, "rb") as kept:
            if hashlib.sha256(kept.read()).hexdigest() == digest:
                return path, digest
    except OSError:
        pass
    partial = f"{path}.{os.getpid()}"
    with open(partial, "wb") as out:
        out.write(data)
    os.replace(partial, path)
    return path, digest


def task_env() -> dict:
    """What each task's command reads; values pass through the environment, never the shell."""
    plan, digest = plan_file()
    return {
        "WVFLOW": WVFLOW,
        "WVFLOW_PLAN": plan,
        "WVFLOW_PLAN_SHA256": digest,
        "WVFLOW_STATE": STATE,
        "WVFLOW_WORKSPACE": WORKSPACE,
        "WVFLOW_RUN_ID": "{{ run_id }}",
        "WVFLOW_TRY": "{{ ti.try_number }}",
        # The first try since the task was last cleared: a cleared task's stage runs again.
        "WVFLOW_FIRST_TRY": "{{ ti.max_tries - ti.task.retries + 1 }}",
        "WVFLOW_ARGS": "{{ params | tojson }}",
        "WVFLOW_RUN_TIME": "{{ (dag_run.logical_date or dag_run.run_after).isoformat() }}",
        "WVFLOW_MAX_ITEMS": str(max_map_length()),
    }


def max_map_length() -> int:
    """How many instances Airflow maps a task into ([core] max_map_length): a fan-out with
    more items fails at its `prepare`, saying so, rather than at the expansion."""
    try:
        from airflow.configuration import conf

        return conf.getint("core", "max_map_length", fallback=1024)
    except Exception:
        return 1024


def item_command(template: str):
    """The command of one `each` item from its index, as the stage's `prepare` printed it."""
    return lambda index: template.replace("{item}", str(int(index)))


class WvflowRetry(RetryPolicy):
    """wvflow's delay before retry n (constant d, linear d*n, exponential d*c^(n-1), capped,
    with full jitter if asked); exit 98 means failed for good and is never retried."""

    def __init__(self, first_ms, backoff, coefficient, cap_ms, jitter):
        self.first_ms = first_ms
        self.backoff = backoff
        self.coefficient = coefficient
        self.cap_ms = cap_ms
        self.jitter = jitter

    def delay_ms(self, n: int) -> float:
        factor = {"constant": 1.0, "linear": float(n)}.get(self.backoff, self.coefficient ** (n - 1))
        delay = self.first_ms * factor
        return delay if self.cap_ms is None else min(delay, self.cap_ms)

    def evaluate(self, exception, try_number, max_tries, context=None):
        if re.search(r"exit code 98\b", str(exception)):
            return RetryDecision.fail("wvflow: failed for good")
        delay = self.delay_ms(try_number)
        if self.jitter:
            delay = random.uniform(0, delay)
        return RetryDecision.retry(timedelta(milliseconds=delay), f"wvflow: retry {try_number}")

    def serialize(self) -> dict:
        return {
            "first_ms": self.first_ms,
            "backoff": self.backoff,
            "coefficient": self.coefficient,
            "cap_ms": self.cap_ms,
            "jitter": self.jitter,
        }

    @classmethod
    def deserialize(cls, data: dict) -> "WvflowRetry":
        return cls(data["first_ms"], data["backoff"], data["coefficient"], data["cap_ms"], data["jitter"])

"#;

/// What a DAG whose stages hold pools defines: the check that they exist in Airflow with the
/// slots the flow declares. Airflow 3 gives task code no database and no Task SDK call for
/// pools: its REST API is the one place to read them.
const POOL_CHECK: &str = r#"def check_pools(pools: dict) -> None:
    """Fails (for good) when a pool is missing in Airflow or has other slots than the flow
    declares: the scheduler would leave the tasks of a missing pool waiting, and a pool of
    other slots would run another number of them at once than `wvflow run`. The REST API is
    reached with the connection wvflow_airflow_api, the API server's address: with a login,
    a token is asked for it (POST /auth/token); without one, of a server where every user is
    an admin (GET /auth/token)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowFailException

    needed = ", ".join(f"{name} ({slots} slots)" for name, slots in sorted(pools.items()))
    try:
        conn = Connection.get("wvflow_airflow_api")
    except Exception as e:
        raise AirflowFailException(
            f"wvflow: cannot check the pools this DAG's tasks hold, {needed}: Airflow gives a "
            f"task no other way to read pools than its REST API; create the connection "
            f"wvflow_airflow_api with the API server's address ({e})"
        ) from None
    # As the connection URI http(s)://LOGIN:PASSWORD@HOST:PORT gives it, or a host with its
    # scheme and the scheme in the connection's schema field.
    host = conn.host or "localhost"
    scheme = conn.schema if conn.schema in ("http", "https") else (
        "https" if conn.conn_type == "https" else "http")
    base = host if "://" in host else f"{scheme}://{host}"
    if conn.port:
        base = f"{base}:{conn.port}"

    def call(method, path, body=None, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    def refused(e):
        # A server that answers but refuses will refuse again: fail for good, saying so. (One
        # that cannot be reached, or fails, is tried again.)
        if 400 <= e.code < 500:
            raise AirflowFailException(
                f"wvflow: the API server at {base} refused to show the pools ({e}): check the "
                f"connection wvflow_airflow_api"
            ) from None
        raise e

    try:
        if conn.login:
            login = {"username": conn.login, "password": conn.password or ""}
            token = call("POST", "/auth/token", login)["access_token"]
        else:
            token = call("GET", "/auth/token")["access_token"]
    except urllib.error.HTTPError as e:
        refused(e)
    problems = []
    for name, slots in sorted(pools.items()):
        try:
            found = call("GET", f"/api/v2/pools/{urllib.parse.quote(name)}", token=token)
        except urllib.error.HTTPError as e:
            if e.code != 404:
                refused(e)
            problems.append(
                f"pool `{name}` does not exist in Airflow: create it with "
                f"`airflow pools set {name} {slots} \"wvflow pool {name}\"`"
            )
            continue
        if found.get("slots") != slots:
            problems.append(
                f"pool `{name}` has {found.get('slots')} slots in Airflow, the flow declares "
                f"{slots}: set them with `airflow pools set {name} {slots} \"wvflow pool {name}\"`"
            )
    if problems:
        raise AirflowFailException("wvflow: " + "; ".join(problems))
    print(f"wvflow: pools as declared: {needed}")

"#;
