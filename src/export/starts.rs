//! A run that a run starts on the engine (a jump's `-> F(...)`, a child's `call F(...)`), in
//! the form each engine starts it: what `wvflow stage next` and a call stage's `wvflow stage
//! prepare` print for the exported file's tasks to act on.

use crate::runtime::tasks::NextRun;
use serde_json::{Value, json};

/// Why a run starts another, and so which count of its lineage the started run carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// After the run succeeded (`->`): how many jumps led to it.
    Jump,
    /// As a stage's child run (`call`): how deep it is nested.
    Child,
}

impl Started {
    /// The name of the count among Airflow's `conf`.
    pub fn airflow_key(self) -> &'static str {
        match self {
            Started::Jump => "wvflow_depth",
            Started::Child => "wvflow_nesting",
        }
    }

    /// The name of the count among Argo's parameters.
    pub fn argo_key(self) -> &'static str {
        match self {
            Started::Jump => "wvflow-depth",
            Started::Child => "wvflow-nesting",
        }
    }
}

/// The name of the run whose call started a run, among Airflow's `conf` and Argo's
/// parameters: `FLOW/RUN_ID`.
pub const AIRFLOW_PARENT: &str = "wvflow_parent";
pub const ARGO_PARENT: &str = "wvflow-parent";

/// A flow's key (`Name`, `Name@2`) as its name and version.
pub fn split_key(key: &str) -> (&str, Option<u32>) {
    match key.split_once('@') {
        Some((name, v)) => (name, v.parse().ok()),
        None => (key, None),
    }
}

/// The keyword arguments of Airflow's `TriggerDagRunOperator` for `run` of the flow `key`:
/// the DAG and its `conf` (the arguments, typed as the target's `Param`s read them, and the
/// count that bounds chains and nesting).
pub fn airflow_trigger(run: &NextRun, key: &str, why: Started) -> Value {
    let (name, version) = split_key(key);
    let mut conf = run.args.clone();
    conf.insert(why.airflow_key().into(), json!(run.depth));
    if let Some(parent) = &run.parent {
        conf.insert(AIRFLOW_PARENT.into(), json!(parent));
    }
    json!({ "trigger_dag_id": super::airflow::dag_id(name, version), "conf": conf })
}

/// `run`'s arguments as Argo parameters, each a text (a null argument cannot be one), with the
/// count that bounds chains and nesting.
pub fn argo_parameters(run: &NextRun, why: Started) -> Result<Vec<(String, String)>, String> {
    let mut parameters = Vec::new();
    for (name, value) in &run.args {
        let text = match value {
            Value::Null => {
                return Err(format!(
                    "argument `{name}` of `{}` is null, which an Argo parameter (a text) cannot \
                     carry",
                    run.reference()
                ));
            }
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        parameters.push((name.clone(), text));
    }
    parameters.push((why.argo_key().to_string(), run.depth.to_string()));
    Ok(parameters)
}

/// A Workflow of the WorkflowTemplate of the flow `key` with a jump's arguments, for an Argo
/// `resource` template to create.
pub fn argo_workflow_of_template(run: &NextRun, key: &str) -> Result<Value, String> {
    let (name, version) = split_key(key);
    let template = super::argo::template_name(name, version);
    let parameters: Vec<Value> = argo_parameters(run, Started::Jump)?
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    Ok(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": { "generateName": format!("{template}-") },
        "spec": {
            "workflowTemplateRef": { "name": template },
            "arguments": { "parameters": parameters },
        },
    }))
}

/// One item of an Argo call stage's children: its index, how deep the child is nested, and
/// each argument as `arg-NAME`, for the `withParam` of the template that creates the child's
/// Workflow. The arguments go into that Workflow's manifest as they are: a quote, a
/// backslash or a control character would leave its place there, and is refused.
pub fn argo_child(run: &NextRun, item: usize) -> Result<Value, String> {
    let mut object = serde_json::Map::new();
    object.insert("item".into(), json!(item.to_string()));
    object.insert("nesting".into(), json!(run.depth.to_string()));
    for (name, value) in argo_parameters(run, Started::Child)? {
        if name == Started::Child.argo_key() {
            continue;
        }
        if value.contains(|c: char| c == '"' || c == '\\' || c.is_control()) {
            return Err(format!(
                "argument `{name}` of `{}` holds a quote, a backslash or a control character, \
                 which an Argo child Workflow's parameter cannot carry",
                run.reference()
            ));
        }
        object.insert(format!("arg-{name}"), json!(value));
    }
    Ok(Value::Object(object))
}
