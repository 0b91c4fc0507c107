//! The Argo Workflows target: a `Workflow`, or a `CronWorkflow` for a scheduled flow. A DAG
//! of one task per stage, each running `wvflow stage run` once all its upstream tasks are
//! done, between `wvflow stage init` and `wvflow stage finish`; an exit handler runs
//! `finish` again should the DAG stop before it (it decides only once). A stage's `pool` is a
//! semaphore whose limit the file's first document, a ConfigMap, gives.

use super::yaml::to_yaml;
use super::{Deployment, Exported, Started};
use crate::plan::Plan;
use super::graph::{Shape, StageTasks, TaskGraph};
use crate::plan::tasks::engine_retries;
use crate::plan::ir::{FlowPlan, ParamPlan, PoolPlan, RetryPolicy, StagePlan};
use crate::retry_rule::Backoff;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Where the shared state is mounted in every pod.
const STATE_MOUNT: &str = "/wvflow/state";
/// The ConfigMap whose keys are the pools' slots: the limits of their semaphores.
const POOLS_CONFIG_MAP: &str = "wvflow-pools";
/// The exit codes a task must not be retried on: failed for good, skipped.
const NOT_RETRIED: &str = "asInt(lastRetry.exitCode) != 98 && asInt(lastRetry.exitCode) != 99";

/// A Kubernetes name: lower-case letters, digits and `-`, starting and ending with a letter
/// or digit, at most `max` long.
pub fn k8s_name(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out: String = out.trim_matches('-').chars().take(max).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "s-");
        out.truncate(max);
    }
    out
}

/// Task names for the stages, or the stages whose names collide once made Kubernetes names.
fn task_names(plan: &Plan) -> Result<BTreeMap<&str, String>, Vec<String>> {
    let mut names = BTreeMap::new();
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    for reserved in ["wvflow-init", "wvflow-finish", "wvflow-exit", "flow"] {
        taken.insert(reserved.to_string(), "(wvflow's own task)");
    }
    let mut clashes = Vec::new();
    for stage in &plan.flow.stages {
        let name = k8s_name(&stage.id, 50);
        if let Some(other) = taken.get(&name) {
            clashes.push(format!(
                "stages `{other}` and `{}` both become the Argo task `{name}`: rename one",
                stage.id
            ));
            continue;
        }
        taken.insert(name.clone(), &stage.id);
        names.insert(stage.id.as_str(), name);
    }
    if clashes.is_empty() {
        Ok(names)
    } else {
        Err(clashes)
    }
}

fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A container that runs `wvflow` with `args`, the state mounted (and the workspace, when
/// it is on a volume).
fn container(deployment: &Deployment, args: Vec<String>) -> Value {
    let mut mounts = vec![json!({ "name": "wvflow-state", "mountPath": STATE_MOUNT })];
    if let Some((_, folder)) = &deployment.argo.workspace_claim {
        mounts.push(json!({ "name": "wvflow-workspace", "mountPath": folder }));
    }
    json!({
        "image": deployment.image,
        "command": [deployment.wvflow],
        "args": args,
        "workingDir": deployment.workspace,
        "volumeMounts": mounts,
    })
}

fn common(run_id: &str, deployment: &Deployment) -> Vec<String> {
    vec![
        "--state".into(),
        STATE_MOUNT.into(),
        "--run-id".into(),
        run_id.into(),
        "--cwd".into(),
        deployment.workspace.clone(),
    ]
}

fn param_value(p: &ParamPlan) -> Option<String> {
    p.default.as_ref().map(|d| match (d, p.ty) {
        (Value::Number(ms), crate::value::ValueType::Duration) => {
            crate::value::duration_text(ms.as_i64().unwrap_or(0))
        }
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    })
}

pub fn workflow(plan: &Plan, deployment: &Deployment) -> Result<Exported, Vec<String>> {
    let oldest = super::ArgoVersion::OLDEST;
    if deployment.argo.version < oldest {
        return Err(vec![format!(
            "--argo-version {}: an exported Workflow needs Argo {oldest} or later (lists of \
             `synchronization.mutexes` and `semaphores`, a CronWorkflow's `schedules`, \
             `retryStrategy.backoff.cap`)",
            deployment.argo.version
        )]);
    }
    let flow = &plan.flow;
    let names = task_names(plan)?;
    refuse_null_defaults(flow)?;
    let graph = TaskGraph::new(plan);
    let mut warnings = Vec::new();
    let run = RunOf {
        deployment,
        flow_key: crate::plan::tasks::flow_key(plan),
        // A CronWorkflow's runs are named after their schedule; `workflow.name` is unique
        // either way.
        run_id: "{{workflow.name}}",
    };
    let mut tasks = vec![json!({ "name": "wvflow-init", "template": "wvflow-init" })];
    let mut templates = vec![init_template(plan, &run)];
    for stage_tasks in &graph.stages {
        let stage = stage_tasks.stage;
        let name = &names[stage.id.as_str()];
        tasks.push(json!({
            "name": name,
            "template": format!("{}-{name}", if split(stage_tasks) { "fan" } else { "stage" }),
            "depends": done_of(stage_tasks.waits_for.iter().map(|w| names[w].as_str()))
                .unwrap_or_else(|| "wvflow-init".into()),
            // The stage's state is wvflow's to decide: `finish` fails the run, not the DAG.
            "continueOn": CONTINUE_ON.clone(),
        }));
        templates.extend(stage_templates(stage_tasks, name, &run, &mut warnings));
        if stage.priority != crate::check::settings::DEFAULT_PRIORITY {
            warnings.push(format!(
                "stage `{}`: `priority` has no Argo form; its task is ordered as any other",
                stage.id
            ));
        }
    }
    let all_done = done_of(graph.stages.iter().map(|s| names[s.stage.id.as_str()].as_str()))
        .unwrap_or_else(|| "wvflow-init".into());
    tasks
        .push(json!({ "name": "wvflow-finish", "template": "wvflow-finish", "depends": all_done }));
    let finish_template = |name: &str| {
        let mut args = vec!["stage".to_string(), "finish".into()];
        args.extend(common(run.run_id, deployment));
        args.extend(["--flow".into(), run.flow_key.clone()]);
        args.extend(first_try());
        json!({
            "name": name,
            "retryStrategy": { "limit": "2", "retryPolicy": "Always", "expression": NOT_RETRIED },
            "container": container(deployment, args),
        })
    };
    if super::jumps(plan) {
        let (next_tasks, next_templates) = jump_tasks(&run);
        tasks.extend(next_tasks);
        templates.extend(next_templates);
    }
    templates.insert(0, json!({ "name": "flow", "dag": { "tasks": tasks } }));
    templates.push(finish_template("wvflow-finish"));
    templates.push(finish_template("wvflow-exit"));
    let spec = spec(flow, deployment, templates);
    let document = if deployment.argo.template {
        template_document(plan, spec, &mut warnings)
    } else {
        document(flow, spec, &mut warnings)?
    };
    flow_warnings(flow, &mut warnings);
    let mut text = format!(
        "# The flow `{}`, exported by `wvflow export --target argo`: do not edit, export again.\n\
         # Every stage is a task running `wvflow stage`, which decides triggers, the rows each\n\
         # stage reads, retries, the saga and the run's state exactly as `wvflow run` does. The\n\
         # image needs `wvflow` and the flow's folder; the volume claim `{}` is the shared state.\n",
        flow.name, deployment.volume_claim
    );
    text.push_str(&pools_document(&graph.pools()));
    text.push_str(&to_yaml(&document));
    Ok(Exported { text, warnings })
}

/// The WorkflowTemplate a flow is exported as with `--template`: `name`, or `name-v2` for a
/// version, as a Kubernetes name.
pub fn template_name(name: &str, version: Option<u32>) -> String {
    match version {
        Some(v) => k8s_name(&format!("{name}-v{v}"), 63),
        None => k8s_name(name, 63),
    }
}

/// After a run that succeeded, the run its jump starts: `wvflow-next` prints it as a Workflow
/// of the target's WorkflowTemplate (none when the run failed or reached no jump), and
/// `wvflow-start` creates it (the pods' service account needs `create` on `workflows`).
fn jump_tasks(run: &RunOf) -> (Vec<Value>, Vec<Value>) {
    let tasks = vec![
        json!({ "name": "wvflow-next", "template": "wvflow-next", "depends": "wvflow-finish.Succeeded" }),
        json!({
            "name": "wvflow-start",
            "template": "wvflow-start",
            "depends": "wvflow-next.Succeeded",
            "withParam": "{{tasks.wvflow-next.outputs.result}}",
            "arguments": { "parameters": [{ "name": "manifest", "value": "{{item}}" }] },
        }),
    ];
    let mut args = vec![
        "stage".to_string(),
        "next".into(),
        "--engine".into(),
        "argo".into(),
    ];
    args.extend(common(run.run_id, run.deployment));
    args.extend(["--flow".into(), run.flow_key.clone()]);
    let templates = vec![
        json!({
            "name": "wvflow-next",
            "retryStrategy": { "limit": "2", "retryPolicy": "Always", "expression": NOT_RETRIED },
            "container": container(run.deployment, args),
        }),
        json!({
            "name": "wvflow-start",
            "inputs": { "parameters": [{ "name": "manifest" }] },
            "resource": { "action": "create", "manifest": "{{inputs.parameters.manifest}}" },
        }),
    ];
    (tasks, templates)
}

/// What every task of a run passes: where things are, the run's id and the flow.
struct RunOf<'d> {
    deployment: &'d Deployment,
    flow_key: String,
    run_id: &'static str,
}

impl RunOf<'_> {
    /// `wvflow stage VERB STAGE` with what every stage task passes.
    fn command(&self, verb: &str, stage: &StagePlan) -> Vec<String> {
        let mut args = vec!["stage".to_string(), verb.into(), stage.id.clone()];
        args.extend(common(self.run_id, self.deployment));
        args.extend(["--flow".into(), self.flow_key.clone()]);
        args
    }
}

/// Whether a stage's tasks on Argo are a nested DAG (`prepare`, its parts, `gather`): a
/// fan-out's or a call stage's. A wait runs inside the stage's one task.
fn split(tasks: &StageTasks) -> bool {
    matches!(tasks.shape, Shape::Fanned { .. } | Shape::Calls { .. })
}

/// A task goes on whatever its dependencies' ends: wvflow decides its trigger.
static CONTINUE_ON: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({ "failed": true, "error": true }));

/// The attempt a task's try is, as `wvflow stage` counts them.
fn attempt() -> [String; 2] {
    ["--attempt".to_string(), "{{=asInt(retries) + 1}}".into()]
}

/// The parameter a user raises to run failed stages again: `argo retry WF -p wvflow-try=2`
/// (Argo keeps a retried step's name, so nothing else tells a retry from a step run twice).
const TRY_PARAMETER: &str = "wvflow-try";

/// `--first-try` from [`TRY_PARAMETER`]: a stage's or run's end recorded under a lower try is
/// decided again.
fn first_try() -> [String; 2] {
    [
        "--first-try".to_string(),
        format!("{{{{workflow.parameters.{TRY_PARAMETER}}}}}"),
    ]
}

/// `depends` on each of `tasks` being done (whatever its end); `None` for no task.
fn done_of<'t>(tasks: impl Iterator<Item = &'t str>) -> Option<String> {
    let all: Vec<String> = tasks
        .map(|t| format!("({t}.Succeeded || {t}.Failed || {t}.Errored)"))
        .collect();
    (!all.is_empty()).then(|| all.join(" && "))
}

/// An Argo parameter is text: a null default cannot be one.
fn refuse_null_defaults(flow: &FlowPlan) -> Result<(), Vec<String>> {
    let null_defaults: Vec<String> = flow
        .params
        .iter()
        .filter(|p| p.default == Some(Value::Null))
        .map(|p| {
            format!(
                "parameter `{}` defaults to null, which an Argo parameter (a text) cannot hold",
                p.name
            )
        })
        .collect();
    if null_defaults.is_empty() {
        Ok(())
    } else {
        Err(null_defaults)
    }
}

/// `wvflow-init`: the plan as an input artifact, the run's time and arguments.
fn init_template(plan: &Plan, run: &RunOf) -> Value {
    let flow = &plan.flow;
    let run_time = if flow.schedule.is_some() {
        "{{workflow.scheduledTime}}"
    } else {
        "{{workflow.creationTimestamp}}"
    };
    let plan_base64 = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(plan).unwrap_or_default());
    let mut init_args = vec![
        "stage".to_string(),
        "init".into(),
        "--plan".into(),
        "/wvflow/plan".into(),
    ];
    init_args.extend(common(run.run_id, run.deployment));
    init_args.extend(["--run-time".into(), run_time.into()]);
    if run.deployment.argo.template {
        // A run started by a jump or a call carries how deep it is.
        let counts = [
            ("--depth", Started::Jump.argo_key()),
            ("--nesting", Started::Child.argo_key()),
            ("--parent", super::starts::ARGO_PARENT),
        ];
        for (option, parameter) in counts {
            init_args.extend([
                option.into(),
                format!("{{{{workflow.parameters.{parameter}}}}}"),
            ]);
        }
    }
    for p in &flow.params {
        init_args.push("--arg".into());
        init_args.push(format!("{}={{{{workflow.parameters.{}}}}}", p.name, p.name));
    }
    json!({
        "name": "wvflow-init",
        "inputs": { "artifacts": [{ "name": "plan", "path": "/wvflow/plan", "raw": { "data": plan_base64 } }] },
        "retryStrategy": { "limit": "2", "retryPolicy": "Always" },
        "container": container(run.deployment, init_args),
    })
}

/// The templates of a stage's tasks: its own (`run`, or `gather` for a fan-out), and for a
/// fan-out its nested DAG, `prepare` and `item`.
fn stage_templates(
    tasks: &StageTasks,
    name: &str,
    run: &RunOf,
    warnings: &mut Vec<String>,
) -> Vec<Value> {
    let stage = tasks.stage;
    let (verb, policy) = match tasks.shape {
        Shape::Fanned { .. } | Shape::Calls { .. } => ("gather", None),
        Shape::One { retries } => ("run", retries),
        // Argo has no check that gives its pod back: the wait runs inside the stage's task.
        Shape::Waits { .. } => ("run", engine_retries(stage)),
    };
    let mut args = run.command(verb, stage);
    if !split(tasks) {
        args.extend(attempt());
        args.extend(first_try());
    }
    let mut template = serde_json::Map::new();
    template.insert("name".into(), json!(format!("stage-{name}")));
    template.insert(
        "retryStrategy".into(),
        retry_strategy(policy, &mut args, warnings, &stage.id),
    );
    // A fan-out's items hold its pool, one by one; any other stage's task holds it.
    let pool = tasks.pool.filter(|_| !split(tasks));
    if let Some(sync) = synchronization(tasks.writes_workspace, pool) {
        template.insert("synchronization".into(), sync);
    }
    template.insert("container".into(), container(run.deployment, args));
    let mut templates = vec![Value::Object(template)];
    if let Shape::Calls {
        retries,
        concurrency,
        target,
    } = tasks.shape
    {
        let calls = CallsOf {
            stage,
            retries,
            concurrency,
            target,
        };
        templates.extend(call_templates(&calls, name, run, warnings));
    }
    if let Shape::Fanned {
        item_retries,
        concurrency,
    } = tasks.shape
    {
        let fan = FanOf {
            stage,
            item_retries,
            concurrency,
            pool: tasks.pool,
        };
        templates.extend(fan_templates(&fan, name, run, warnings));
    }
    templates
}

/// Who may run at once: one writer of the shared workspace database across runs (the mutex
/// `wvflow-workspace`), and at most the pool's slots holders of `pool` (a semaphore whose
/// limit is the pool's key in the ConfigMap [`POOLS_CONFIG_MAP`]).
fn synchronization(writes_workspace: bool, pool: Option<&PoolPlan>) -> Option<Value> {
    let mut sync = serde_json::Map::new();
    if writes_workspace {
        sync.insert("mutexes".into(), json!([{ "name": "wvflow-workspace" }]));
    }
    if let Some(pool) = pool {
        sync.insert(
            "semaphores".into(),
            json!([{ "configMapKeyRef": { "name": POOLS_CONFIG_MAP, "key": pool.name } }]),
        );
    }
    (!sync.is_empty()).then_some(Value::Object(sync))
}

/// The ConfigMap of the pools a run's tasks hold (each pool's slots under its name, the
/// limit of its semaphore) as the file's first YAML document, or nothing without pools. First,
/// so that `kubectl apply` makes the limits before the run needs them.
fn pools_document(pools: &BTreeMap<&str, u64>) -> String {
    if pools.is_empty() {
        return String::new();
    }
    let data: serde_json::Map<String, Value> = pools
        .iter()
        .map(|(name, slots)| (name.to_string(), json!(slots.to_string())))
        .collect();
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        // The label selects it alone in the file: `kubectl apply -l wvflow.dev/pools -f FILE`.
        "metadata": { "name": POOLS_CONFIG_MAP, "labels": { "wvflow.dev/pools": "true" } },
        "data": data,
    });
    format!(
        "# The pools the stages hold, as the flow declares them: each key of the ConfigMap\n\
         # `{POOLS_CONFIG_MAP}` is a pool's slots, the limit of its semaphore.\n{}---\n",
        to_yaml(&config_map)
    )
}

/// A stage whose `each` items are tasks of their own, as its templates need it.
struct FanOf<'p> {
    stage: &'p StagePlan,
    item_retries: Option<&'p RetryPolicy>,
    concurrency: Option<u64>,
    /// Each item's task holds a slot of it.
    pool: Option<&'p PoolPlan>,
}

/// A stage's `each` items as tasks of their own: `prepare` prints their count, one `item`
/// task runs per index (at most `concurrency` at once: the nested DAG's parallelism; each
/// holding a slot of the stage's pool), and the stage's own template gathers them.
fn fan_templates(fan_of: &FanOf, name: &str, run: &RunOf, warnings: &mut Vec<String>) -> Vec<Value> {
    let FanOf {
        stage,
        item_retries,
        concurrency,
        pool,
    } = *fan_of;
    let mut item_args = run.command("item", stage);
    item_args.extend(["--item".into(), "{{inputs.parameters.item}}".into()]);
    item_args.extend(attempt());
    let item_retry = retry_strategy(item_retries, &mut item_args, warnings, &stage.id);
    let item_task = json!({
        "name": "item",
        "template": format!("item-{name}"),
        "depends": "prepare.Succeeded",
        // A count, not a list: a step's result is cut at 256 kB.
        "withSequence": { "count": "{{tasks.prepare.outputs.result}}" },
        "arguments": { "parameters": [{ "name": "item", "value": "{{item}}" }] },
        "continueOn": CONTINUE_ON.clone(),
    });
    let fan = parts_dag(name, item_task, concurrency);
    let mut prepare_args = run.command("prepare", stage);
    prepare_args.push("--count".into());
    // Each item is a node of the Workflow's status, which Kubernetes stores whole: a larger
    // fan-out fails its stage at `prepare`, naming the option, rather than the Workflow.
    prepare_args.extend([
        "--max-items".into(),
        run.deployment.argo.max_items.to_string(),
    ]);
    let mut item = json!({
        "name": format!("item-{name}"),
        "inputs": { "parameters": [{ "name": "item" }] },
        "retryStrategy": item_retry,
    });
    if let Some(sync) = synchronization(false, pool) {
        item["synchronization"] = sync;
    }
    item["container"] = container(run.deployment, item_args);
    vec![
        fan,
        prepare_template(name, run, prepare_args),
        item,
    ]
}

/// A stage in parts as the nested DAG `fan-NAME`: `prepare`, then `part` (its items, or its
/// children, which depend on `prepare`), then `gather` once both are done whatever their
/// phase (no parts leave `part` Skipped; a stage that ended at `prepare` leaves it Omitted), at
/// most `concurrency` parts at once.
fn parts_dag(name: &str, part: Value, concurrency: Option<u64>) -> Value {
    let part_name = part["name"].as_str().unwrap_or_default().to_string();
    let continue_on = CONTINUE_ON.clone();
    let mut fan = json!({
        "name": format!("fan-{name}"),
        "dag": { "tasks": [
            { "name": "prepare", "template": format!("prepare-{name}"), "continueOn": continue_on },
            part,
            {
                "name": "gather",
                "template": format!("stage-{name}"),
                "depends": format!(
                    "(prepare.Succeeded || prepare.Failed || prepare.Errored) && \
                     ({part_name}.Succeeded || {part_name}.Failed || {part_name}.Errored || \
                     {part_name}.Skipped || {part_name}.Omitted)"
                ),
                "continueOn": continue_on,
            },
        ] },
    });
    if let Some(n) = concurrency {
        fan["parallelism"] = json!(n);
    }
    fan
}

/// `prepare-NAME`: the first task of a stage in parts, retried only when it could not run.
fn prepare_template(name: &str, run: &RunOf, args: Vec<String>) -> Value {
    json!({
        "name": format!("prepare-{name}"),
        "retryStrategy": { "limit": "2", "retryPolicy": "Always", "expression": NOT_RETRIED },
        "container": container(run.deployment, args),
    })
}

/// A stage's child runs, as [`call_templates`] writes them.
struct CallsOf<'p> {
    stage: &'p StagePlan,
    retries: Option<&'p RetryPolicy>,
    concurrency: Option<u64>,
    target: &'p crate::plan::ir::FlowRef,
}

/// A call stage's nested DAG: `prepare` (the steps before the call; prints each child's item
/// and arguments), one `child` per item (a `resource` template that creates a Workflow of
/// the child flow's WorkflowTemplate, named as the stage's task looks for it, and waits for
/// it to end; each try a new child run, as the stage's retries say) and the stage's task that
/// gathers them.
fn call_templates(
    calls: &CallsOf,
    name: &str,
    run: &RunOf,
    warnings: &mut Vec<String>,
) -> Vec<Value> {
    let CallsOf {
        stage,
        retries,
        concurrency,
        target,
    } = *calls;
    let params: Vec<&str> = target.args.iter().map(|b| b.param.as_str()).collect();
    let mut arguments = vec![
        json!({ "name": "item", "value": "{{item.item}}" }),
        json!({ "name": "nesting", "value": "{{item.nesting}}" }),
    ];
    arguments.extend(params.iter().map(|p| {
        json!({ "name": format!("arg-{p}"), "value": format!("{{{{item.arg-{p}}}}}") })
    }));
    let child_task = json!({
        "name": "child",
        "template": format!("child-{name}"),
        "depends": "prepare.Succeeded",
        "withParam": "{{tasks.prepare.outputs.result}}",
        "arguments": { "parameters": arguments },
        "continueOn": CONTINUE_ON.clone(),
    });
    let fan = parts_dag(name, child_task, concurrency);
    let mut prepare_args = run.command("prepare", stage);
    prepare_args.extend(["--engine".into(), "argo".into()]);
    prepare_args.extend([
        "--max-items".into(),
        run.deployment.argo.max_items.to_string(),
    ]);
    let mut parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({ "name": p, "value": format!("{{{{inputs.parameters.arg-{p}}}}}") }))
        .collect();
    parameters.push(json!({
        "name": Started::Child.argo_key(),
        "value": "{{inputs.parameters.nesting}}",
    }));
    // Started late for a run that was cancelled meanwhile, the child starts cancelled.
    parameters.push(json!({
        "name": super::starts::ARGO_PARENT,
        "value": format!("{}/{}", run.flow_key, run.run_id),
    }));
    // Named as the stage's last task looks for it: the try is Argo's retry number plus one.
    let child_name = crate::plan::tasks::child_run_id(
        run.run_id,
        &stage.id,
        "{{inputs.parameters.item}}",
        "{{=asInt(retries) + 1}}",
    );
    let manifest = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": { "name": child_name },
        "spec": {
            "workflowTemplateRef": { "name": template_name(&target.flow, target.version) },
            "arguments": { "parameters": parameters },
        },
    });
    let mut inputs = vec![json!({ "name": "item" }), json!({ "name": "nesting" })];
    inputs.extend(params.iter().map(|p| json!({ "name": format!("arg-{p}") })));
    let retry = child_retry(stage, retries, warnings);
    let child = json!({
        "name": format!("child-{name}"),
        "inputs": { "parameters": inputs },
        "retryStrategy": retry,
        "resource": {
            "action": "create",
            "manifest": manifest.to_string(),
            "successCondition": "status.phase == Succeeded",
            "failureCondition": "status.phase in (Failed, Error)",
        },
    });
    vec![
        fan,
        prepare_template(name, run, prepare_args),
        child,
    ]
}

/// The `retryStrategy` of the template that creates a stage's child runs: the stage's retries,
/// each try another child; none when it has none, so that no infrastructure retry creates
/// one more. A backoff Argo cannot express becomes constant, with a warning: no task of
/// wvflow's can start a child again.
fn child_retry(
    stage: &StagePlan,
    retries: Option<&RetryPolicy>,
    warnings: &mut Vec<String>,
) -> Value {
    let Some(policy) = retries else {
        return json!({ "limit": "0" });
    };
    let mut here = Vec::new();
    let retry = retry_strategy(retries, &mut here, &mut Vec::new(), &stage.id);
    if here.is_empty() {
        return retry;
    }
    warnings.push(format!(
        "stage `{}`: its backoff has no Argo form; each child run is started again after {} \
         (a constant backoff)",
        stage.id,
        duration(policy.initial_delay_ms)
    ));
    json!({
        "limit": (policy.attempts - 1).to_string(),
        "retryPolicy": "Always",
        "backoff": { "duration": duration(policy.initial_delay_ms), "factor": "1" },
    })
}

/// The workflow's spec: entry point, exit handler, parameters, parallelism, the state's
/// volume, the templates.
fn spec(flow: &FlowPlan, deployment: &Deployment, templates: Vec<Value>) -> Value {
    let mut spec = serde_json::Map::new();
    spec.insert("entrypoint".into(), json!("flow"));
    spec.insert("onExit".into(), json!("wvflow-exit"));
    let mut parameters: Vec<Value> = flow
        .params
        .iter()
        .map(|p| match param_value(p) {
            Some(v) => json!({ "name": p.name, "value": v }),
            None => json!({ "name": p.name }),
        })
        .collect();
    parameters.push(json!({ "name": TRY_PARAMETER, "value": "1" }));
    spec.insert("arguments".into(), json!({ "parameters": parameters }));
    if let Some(n) = flow.max_parallel {
        spec.insert("parallelism".into(), json!(n));
    }
    let mut volumes = vec![
        json!({ "name": "wvflow-state", "persistentVolumeClaim": { "claimName": deployment.volume_claim } }),
    ];
    if let Some((claim, _)) = &deployment.argo.workspace_claim {
        volumes.push(
            json!({ "name": "wvflow-workspace", "persistentVolumeClaim": { "claimName": claim } }),
        );
    }
    spec.insert("volumes".into(), Value::Array(volumes));
    if let Some(account) = &deployment.argo.service_account {
        spec.insert("serviceAccountName".into(), json!(account));
    }
    spec.insert("templates".into(), Value::Array(templates));
    Value::Object(spec)
}

/// A `Workflow`, or a `CronWorkflow` for a scheduled flow.
fn document(flow: &FlowPlan, spec: Value, warnings: &mut Vec<String>) -> Result<Value, Vec<String>> {
    let name = k8s_name(&flow.name, 52);
    let labels = json!({ "wvflow.dev/flow": k8s_name(&flow.name, 63) });
    let Some(schedule) = &flow.schedule else {
        return Ok(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": { "generateName": format!("{name}-"), "labels": labels },
            "spec": spec,
        }));
    };
    let cron = match (&schedule.cron, schedule.interval_ms) {
        (Some(cron), _) => cron.clone(),
        (None, Some(ms)) => interval_cron(ms).ok_or_else(|| {
            vec![format!(
                "flow `{}`: Argo schedules only by cron, and an interval of {} has no \
                 cron form (intervals that divide an hour or a day do)",
                flow.name,
                duration(ms)
            )]
        })?,
        (None, None) => {
            return Err(vec!["the schedule has no cron and no interval".into()]);
        }
    };
    // An interval counts from the Unix epoch in UTC, whatever the flow's zone.
    let zone = if schedule.cron.is_some() {
        schedule.timezone.as_str()
    } else {
        "UTC"
    };
    let mut cron_spec = json!({
        "schedules": [cron],
        "timezone": zone,
        "concurrencyPolicy": if flow.concurrency == Some(1) { "Forbid" } else { "Allow" },
        "workflowSpec": spec,
    });
    if schedule.catchup {
        warnings.push(format!(
            "flow `{}`: `catchup` has no Argo form beyond startingDeadlineSeconds; use \
             `wvflow backfill` for missed windows",
            flow.name
        ));
    } else {
        cron_spec["startingDeadlineSeconds"] = json!(0);
    }
    if flow.concurrency.is_some_and(|n| n > 1) {
        warnings.push(format!(
            "flow `{}`: `concurrency` above 1 has no CronWorkflow form; runs may overlap \
             without bound",
            flow.name
        ));
    }
    Ok(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": { "name": name, "labels": labels },
        "spec": cron_spec,
    }))
}

/// A `WorkflowTemplate` of the flow, named by [`template_name`]: what a jump to it starts.
/// A schedule has no place in it.
fn template_document(plan: &Plan, mut spec: Value, warnings: &mut Vec<String>) -> Value {
    let flow = &plan.flow;
    if flow.schedule.is_some() {
        warnings.push(format!(
            "flow `{}`: a WorkflowTemplate has no schedule; export without --template for its \
             CronWorkflow",
            flow.name
        ));
    }
    let counts = [
        json!({ "name": Started::Jump.argo_key(), "value": "0" }),
        json!({ "name": Started::Child.argo_key(), "value": "0" }),
        json!({ "name": super::starts::ARGO_PARENT, "value": "" }),
    ];
    match spec["arguments"]["parameters"].as_array_mut() {
        Some(parameters) => parameters.extend(counts),
        None => spec["arguments"] = json!({ "parameters": counts }),
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {
            "name": template_name(&flow.name, flow.version),
            "labels": { "wvflow.dev/flow": k8s_name(&flow.name, 63) },
        },
        "spec": spec,
    })
}

/// What Argo does otherwise than the flow says, flow-wide.
fn flow_warnings(flow: &FlowPlan, warnings: &mut Vec<String>) {
    if !flow.depends_on.is_empty() || flow.start_condition.is_some() {
        warnings.push(format!(
            "flow `{}` starts after other flows (`depends on`, `if F.failed`): Argo does not \
             start it so; submit it from the flows it follows",
            flow.name
        ));
    }
    if !flow.hooks.is_empty() {
        // Exact, but worth knowing where they run.
        warnings.push(format!(
            "flow `{}`: its hooks run in the `wvflow-finish` task",
            flow.name
        ));
    }
}

/// The `retryStrategy` of a task that the engine retries by `policy`, when Argo can compute
/// its delays (constant, or exponential by a whole factor, without jitter); otherwise wvflow
/// retries inside the task (`--retries-here`) and Argo retries only a task that could not run.
fn retry_strategy(
    policy: Option<&RetryPolicy>,
    args: &mut Vec<String>,
    warnings: &mut Vec<String>,
    stage: &str,
) -> Value {
    let exact = policy.filter(|policy| {
        !policy.jitter
            && match policy.backoff {
                Backoff::Constant => true,
                Backoff::Exponential => policy.coefficient.fract() == 0.0,
                Backoff::Linear => false,
            }
    });
    let Some(policy) = exact else {
        if policy.is_some() {
            args.push("--retries-here".into());
            warnings.push(format!(
                "stage `{stage}`: its backoff has no Argo form; wvflow retries it inside one task"
            ));
        }
        return json!({ "limit": "2", "retryPolicy": "Always", "expression": NOT_RETRIED });
    };
    let mut backoff = json!({
        "duration": duration(policy.initial_delay_ms),
        "factor": match policy.backoff {
            Backoff::Exponential => format!("{}", policy.coefficient as u64),
            _ => "1".into(),
        },
    });
    if let Some(cap) = policy.max_delay_ms {
        backoff["cap"] = json!(duration(cap));
    }
    json!({
        "limit": (policy.attempts - 1).to_string(),
        "retryPolicy": "Always",
        "expression": NOT_RETRIED,
        "backoff": backoff,
    })
}

/// The cron pattern of an interval, when there is one: whole minutes dividing an hour, whole
/// hours dividing a day, or a day. wvflow's intervals count from the Unix epoch, so these fire
/// at the same instants.
fn interval_cron(ms: u64) -> Option<String> {
    if ms == 0 || !ms.is_multiple_of(60_000) {
        return None;
    }
    let minutes = ms / 60_000;
    if minutes < 60 && 60 % minutes == 0 {
        Some(format!("*/{minutes} * * * *"))
    } else if minutes.is_multiple_of(60) && minutes < 24 * 60 && 24 % (minutes / 60) == 0 {
        Some(format!("0 */{} * * *", minutes / 60))
    } else if minutes == 24 * 60 {
        Some("0 0 * * *".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_kubernetes_names() {
        assert_eq!(k8s_name("load_orders", 50), "load-orders");
        assert_eq!(k8s_name("__x__", 50), "x");
        assert_eq!(k8s_name("9lives", 50), "s-9lives");
        assert_eq!(k8s_name("A.b", 50), "a-b");
        assert!(k8s_name(&"x".repeat(80), 50).len() <= 50);
    }

    #[test]
    fn intervals_become_cron() {
        assert_eq!(interval_cron(15 * 60_000).unwrap(), "*/15 * * * *");
        assert_eq!(interval_cron(2 * 3_600_000).unwrap(), "0 */2 * * *");
        assert_eq!(interval_cron(24 * 3_600_000).unwrap(), "0 0 * * *");
        assert_eq!(interval_cron(7 * 60_000), None);
        assert_eq!(interval_cron(90_000), None);
        assert_eq!(interval_cron(5 * 3_600_000), None);
    }
}
