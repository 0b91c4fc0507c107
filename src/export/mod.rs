//! `wvflow export`: a flow's plan as a file another engine runs (an Airflow DAG, an Argo
//! Workflow), each stage a task that runs `wvflow stage`, so that wvflow still decides what
//! the flow says. What a target cannot express is done by `wvflow stage` or reported as a
//! warning; what `wvflow stage` cannot run exactly is refused. Mapping: `docs/export.md`.
//!
//! | module | job |
//! |---|---|
//! | [`airflow`] | the Airflow DAG file |
//! | [`argo`] | the Argo `Workflow` / `CronWorkflow` |
//! | `graph` | the tasks of a plan, whatever the engine: both render it |

pub mod airflow;
pub mod argo;
mod graph;
pub mod starts;
mod yaml;

pub use starts::{Started, airflow_trigger, argo_child, argo_workflow_of_template};

use crate::plan::Plan;
use crate::plan::ir::Step;

/// Which engine to write for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Airflow,
    Argo,
}

/// How the exported tasks find wvflow, the flow's files and the shared state.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// The `wvflow` program on the workers.
    pub wvflow: String,
    /// The folder of the flow's `.wv` files on the workers: activities run there.
    pub workspace: String,
    /// The state location the workers share (a folder, file:///path or s3://bucket/prefix); Airflow only.
    pub state: String,
    /// The container image with `wvflow` and the flow's folder; Argo only.
    pub image: String,
    /// The volume claim of the shared state (a ReadWriteMany volume); Argo only.
    pub volume_claim: String,
    /// What else an Argo export needs.
    pub argo: ArgoOptions,
}

/// What an Argo export needs besides the image and the state's volume.
#[derive(Clone, Debug)]
pub struct ArgoOptions {
    /// The oldest Argo the file must run on.
    pub version: ArgoVersion,
    /// The service account the pods run as (Argo's executor needs its RBAC, docs/export.md).
    pub service_account: Option<String>,
    /// A ReadWriteMany claim holding the workspace's folder, and that folder, where every pod
    /// mounts it: the files activities write outlive their pod, and every pod sees them.
    pub workspace_claim: Option<(String, String)>,
    /// The most items of a fan-out (each is a node of the Workflow's status).
    pub max_items: u64,
    /// Write a WorkflowTemplate, which other flows' jumps start, instead of a Workflow.
    pub template: bool,
}

/// An Argo Workflows release, `MAJOR.MINOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArgoVersion {
    pub major: u32,
    pub minor: u32,
}

impl ArgoVersion {
    /// The oldest Argo that reads every field an exported file uses: lists of mutexes and
    /// semaphores, a CronWorkflow's `schedules` and `retryStrategy.backoff.cap` came in 3.6.
    pub const OLDEST: ArgoVersion = ArgoVersion { major: 3, minor: 6 };

    pub fn parse(text: &str) -> Option<ArgoVersion> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().unwrap_or("0").parse().ok()?;
        Some(ArgoVersion { major, minor })
    }
}

impl std::fmt::Display for ArgoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Whether `name` is a Kubernetes object's name (a DNS-1123 subdomain).
fn dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

impl Deployment {
    /// Refuses a value that could leave its place in the exported file (a newline ends a YAML
    /// comment or a Python string; a quote ends a string) or that the engine would refuse:
    /// each problem names its command-line option.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (option, value) in [
            ("--wvflow", &self.wvflow),
            ("--workspace", &self.workspace),
            ("--state", &self.state),
            ("--image", &self.image),
            ("--volume-claim", &self.volume_claim),
        ] {
            if value.is_empty() || value.chars().any(char::is_control) {
                problems.push(format!(
                    "{option} {value:?}: a value must be given, without control characters (a newline would end its line in the file)"
                ));
            }
        }
        if self.image.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            problems.push(format!(
                "--image {:?}: an image reference has no spaces or quotes",
                self.image
            ));
        }
        // Kubernetes names objects by DNS-1123 subdomains.
        let argo = &self.argo;
        for (option, name) in [
            ("--volume-claim", Some(&self.volume_claim)),
            ("--workspace-claim", argo.workspace_claim.as_ref().map(|(claim, _)| claim)),
            ("--service-account", argo.service_account.as_ref()),
        ] {
            if let Some(name) = name.filter(|n| !dns_subdomain(n)) {
                problems.push(format!(
                    "{option} {name:?}: a Kubernetes name is lower-case letters, digits, '-' and '.' (a DNS-1123 subdomain)"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// An exported file and the approximations made in it.
pub struct Exported {
    pub text: String,
    pub warnings: Vec<String>,
}

/// What `wvflow stage` cannot run exactly as `wvflow run` does: every reason, by stage.
/// An exported flow must have none.
pub fn limits(plan: &Plan) -> Vec<String> {
    let flow = &plan.flow;
    let mut found = Vec::new();
    for stage in &flow.stages {
        // A loop's steps are the stage's too: a call inside one would start from its task.
        let calls = crate::plan::looped::all_steps(&stage.steps)
            .filter(|s| matches!(s, Step::Call { .. } | Step::EachCall { .. }))
            .count();
        if calls > 0 && crate::plan::tasks::calls_as_runs(stage).is_none() {
            found.push(format!(
                "stage `{}`: the engine starts a stage's child runs between its `prepare` and \
                 its last task, once: a stage has one `call`, outside any loop (a loop runs \
                 inside one task, where no engine run can start); split the stage",
                stage.id
            ));
        }
    }
    found
}

/// Names an exported file passes on as they are (task ids, command words, parameters):
/// letters, digits and `_`, and none of wvflow's own tasks. A scheduled run has no
/// arguments, so every parameter of a scheduled flow needs a default.
fn unfit_names(plan: &Plan) -> Vec<String> {
    let flow = &plan.flow;
    let mut found: Vec<String> = not_plain("flow", &flow.name, "").into_iter().collect();
    for stage in &flow.stages {
        found.extend(not_plain("stage", &stage.id, "; rename it").or_else(|| {
            stage.id.to_ascii_lowercase().starts_with("wvflow_").then(|| {
                format!(
                    "stage `{}`: names beginning with `wvflow_` are the exported file's own tasks",
                    stage.id
                )
            })
        }));
    }
    for param in &flow.params {
        found.extend(not_plain("parameter", &param.name, "").or_else(|| {
            param.name.to_ascii_lowercase().starts_with("wvflow_").then(|| {
                format!(
                    "parameter `{}`: names beginning with `wvflow_` are wvflow's own among an \
                     engine's arguments",
                    param.name
                )
            })
        }));
        if flow.schedule.is_some() && param.default.is_none() {
            found.push(format!(
                "parameter `{}` has no default, and the flow is scheduled: a scheduled run has \
                 no arguments",
                param.name
            ));
        }
    }
    found
}

/// Whether a plan's stages start other flows' runs (`call`, `each call`, `->`).
pub fn starts_runs(plan: &Plan) -> bool {
    plan.flow.stages.iter().flat_map(|s| &s.steps).any(|step| {
        matches!(
            step,
            Step::Jump { .. } | Step::Call { .. } | Step::EachCall { .. }
        )
    })
}

/// Whether a plan's stages jump (`-> F`): its run ends by starting another.
pub fn jumps(plan: &Plan) -> bool {
    plan.flow
        .stages
        .iter()
        .flat_map(|s| &s.steps)
        .any(|step| matches!(step, Step::Jump { .. }))
}

/// Why the name of a `what` is not one an exported file passes on as it is, if it is not:
/// only letters, digits and `_`.
fn not_plain(what: &str, name: &str, advice: &str) -> Option<String> {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (!plain).then(|| {
        format!(
            "{what} `{name}`: an exported {what}'s name has only letters, digits and `_`{advice}"
        )
    })
}

/// The plan as a file for `target`, or why it cannot be exported exactly.
pub fn export(
    plan: &Plan,
    target: Target,
    deployment: &Deployment,
) -> Result<Exported, Vec<String>> {
    let mut refused = limits(plan);
    refused.extend(unfit_names(plan));
    if let Err(problems) = deployment.check() {
        refused.extend(problems);
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let mut exported = match target {
        Target::Airflow => airflow::dag(plan, deployment)?,
        Target::Argo => argo::workflow(plan, deployment)?,
    };
    // A fan-out after other work than queries (an `activate`, a `wait`, another call) runs
    // inside the stage's task: its items as tasks would run that work again.
    for stage in &plan.flow.stages {
        let fans_out = stage.steps.iter().any(|s| matches!(s, Step::Each { .. }));
        if fans_out && !crate::plan::tasks::fans_out_as_tasks(stage) {
            exported.warnings.push(format!(
                "stage `{}`: work other than queries comes before its `each`, so its items run \
                 inside the stage's task, at its `concurrency`, not as tasks of their own",
                stage.id
            ));
        }
        exported.warnings.extend(pool_approximation(stage, target));
        exported.warnings.extend(call_timeout(stage, target));
        exported.warnings.extend(continued_in_task(stage));
    }
    Ok(exported)
}

/// A loop's `continue_as_new` on an engine: the engine runs the loop inside the stage's task,
/// with no new run; the task's rows begin anew at each boundary, as the last run's would.
fn continued_in_task(stage: &crate::plan::ir::StagePlan) -> Option<String> {
    let every = stage.steps.iter().find_map(|s| match s {
        Step::While {
            continue_as_new, ..
        } => *continue_as_new,
        _ => None,
    })?;
    Some(format!(
        "stage `{}`: the engine runs its loop inside the stage's task, which starts no new run \
         every {every} iterations (`continue_as_new`): its rows begin anew then, the rows of \
         the last run of `wvflow run`, while the engine keeps one task for the whole loop",
        stage.id
    ))
}

/// What the engine does otherwise than `wvflow run` with a call stage's `timeout`, which
/// `wvflow run` applies to each child run as it goes.
fn call_timeout(stage: &crate::plan::ir::StagePlan, target: Target) -> Option<String> {
    let ms = stage.timeout_ms?;
    crate::plan::tasks::calls_as_runs(stage)?;
    let timeout = crate::value::duration_text(i64::try_from(ms).unwrap_or(i64::MAX));
    Some(match target {
        Target::Airflow => format!(
            "stage `{}`: Airflow stops waiting for a child run after its `timeout` of {timeout}; \
             the child is closed as `parent_close` says when the stage gathers, not at once",
            stage.id
        ),
        Target::Argo => format!(
            "stage `{}`: Argo waits for each child run without its `timeout` of {timeout}; a \
             child that runs longer is not stopped",
            stage.id
        ),
    })
}

/// What the engine's pool does otherwise than `wvflow run`'s, for a stage where it shows:
/// the wait for a slot is not bounded by the stage's `schedule_timeout`, and Airflow gives
/// the slot back while a task waits for its next try.
fn pool_approximation(stage: &crate::plan::ir::StagePlan, target: Target) -> Option<String> {
    let pool = stage.pool.as_ref()?;
    let mut differs = Vec::new();
    if stage.schedule_timeout_ms.is_some() {
        differs.push("its wait for a slot is not bounded by its `schedule_timeout`");
    }
    let retried = crate::plan::tasks::engine_retries(stage).is_some()
        || crate::plan::tasks::item_retries(stage).is_some();
    if target == Target::Airflow && retried {
        differs.push("the slot is given back while a task waits for its next try");
    }
    (!differs.is_empty()).then(|| {
        format!(
            "stage `{}`: pool `{}` is the engine's: {}",
            stage.id,
            pool.name,
            differs.join("; ")
        )
    })
}

/// The SHA-256 of `bytes` in lower-case hex: how an exported DAG names the plan it carries.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the workers need for the stages on a connector's server: each task reads
/// `wvflow.toml` again from the flow's folder and expands its URL's `${NAME}`s from the
/// worker's environment when the stage starts, so the exported file carries the connector's
/// name only. A warning per connector, naming the variables (never their values).
pub fn connector_environment(plan: &Plan, connectors: &crate::connectors::Connectors) -> Vec<String> {
    let mut stages: Vec<(&str, Vec<&str>)> = Vec::new();
    for stage in &plan.flow.stages {
        let Some(name) = stage.connector.as_deref() else {
            continue;
        };
        if name == crate::connectors::DEFAULT {
            continue;
        }
        match stages.iter_mut().find(|(c, _)| *c == name) {
            Some((_, on)) => on.push(&stage.id),
            None => stages.push((name, vec![&stage.id])),
        }
    }
    stages
        .into_iter()
        .map(|(name, on)| {
            let found = match connectors.lookup(name) {
                crate::connectors::Lookup::Found(c) => Some(c),
                _ => None,
            };
            let mut variables = match found.map(|c| &c.location) {
                Some(crate::connectors::Location::Url(url)) => url.variables(),
                _ => Vec::new(),
            };
            variables.sort_unstable();
            variables.dedup();
            let on = on.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
            let duckdb = found.is_some_and(|c| c.kind == crate::connectors::ConnectorKind::Duckdb);
            let needs = if duckdb {
                // DuckDB runs in the task's process, on the file `path` names.
                ", its database file (`path`) on a folder they share, and a wvflow built with \
                 DuckDB (the `duckdb` feature)"
                    .to_string()
            } else if variables.is_empty() {
                String::new()
            } else {
                let names = variables.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>();
                format!(
                    ", and its url's environment variable{} {} set in the workers' environment \
                     (the exported file carries neither the url nor their values)",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            };
            let (stage, runs) = if on.contains(',') {
                ("stages", "run")
            } else {
                ("stage", "runs")
            };
            format!(
                "{stage} {on}: {runs} on connector `{name}` from the workers, which need the \
                 workspace's `wvflow.toml` in the flow's folder (or above it){needs}"
            )
        })
        .collect()
}
