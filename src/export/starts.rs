//! A run a jump starts (`-> F(...)`), in the form each engine starts it: what `wvflow stage
//! next` prints for the exported file's last tasks to act on.

use crate::runtime::tasks::NextRun;
use serde_json::{Value, json};

/// The name the depth of a chain of jumps has among an engine's arguments: Airflow's `conf`
/// key, Argo's parameter.
pub const AIRFLOW_DEPTH: &str = "wvflow_depth";
pub const ARGO_DEPTH: &str = "wvflow-depth";

/// The keyword arguments of Airflow's `TriggerDagRunOperator` for `run`: the DAG and its
/// `conf` (the arguments, typed as the target's `Param`s read them, and the depth).
pub fn airflow_trigger(run: &NextRun, dag_id: &str) -> Value {
    let mut conf = run.args.clone();
    conf.insert(AIRFLOW_DEPTH.into(), json!(run.depth));
    json!({ "trigger_dag_id": dag_id, "conf": conf })
}

/// A Workflow of the WorkflowTemplate `template` with `run`'s arguments, for an Argo
/// `resource` template to create. An Argo parameter is a text: a null argument cannot be one.
pub fn argo_workflow_of_template(run: &NextRun, template: &str) -> Result<Value, String> {
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
        parameters.push(json!({ "name": name, "value": text }));
    }
    parameters.push(json!({ "name": ARGO_DEPTH, "value": run.depth.to_string() }));
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
