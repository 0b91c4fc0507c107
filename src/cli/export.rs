//! `wvflow export PATH [FLOW] --target airflow|argo [-o FILE]`: a flow as a file another engine
//! runs. Mapping and walk-through: `docs/export.md`.

use super::exit;
use super::plan::{load, plan_of};
use crate::export::{ArgoOptions, Deployment, Target, export};
use clap::{Args, ValueEnum};
use crate::plan::Plan;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetArg {
    Airflow,
    Argo,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A .wv file or a folder (one workspace).
    path: PathBuf,
    /// The flow (`Name`, or `Name@2`); optional when the workspace has one flow.
    flow: Option<String>,
    #[arg(long, value_enum)]
    target: TargetArg,
    /// Write here instead of to stdout.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// The `wvflow` program on the workers.
    #[arg(long, default_value = "wvflow")]
    wvflow: String,
    /// The workspace's folder on the workers (default: this one, absolute, for Airflow;
    /// /workspace in the image for Argo); tasks run in the flow's file's folder below it.
    #[arg(long)]
    workspace: Option<String>,
    /// The state the Airflow workers share, a folder or s3://bucket/prefix (default: .wvflow/state in the flow's folder).
    #[arg(long)]
    state: Option<String>,
    /// The container image with `wvflow` and the flow's folder (Argo).
    #[arg(long, default_value = "wvflow:latest")]
    image: String,
    /// The volume claim of the shared state, a ReadWriteMany volume (Argo).
    #[arg(long, default_value = "wvflow-state")]
    volume_claim: String,
    /// The oldest Argo Workflows the file must run on, MAJOR.MINOR (Argo; 3.6 or later).
    #[arg(long, default_value = "3.6")]
    argo_version: String,
    /// The service account the pods run as (Argo; see docs/export.md for its RBAC).
    #[arg(long)]
    service_account: Option<String>,
    /// A ReadWriteMany volume claim holding the workspace's folder, mounted at --workspace in
    /// every pod, so that files activities write outlive their pod (Argo).
    #[arg(long)]
    workspace_claim: Option<String>,
    /// Write a WorkflowTemplate instead of a Workflow: what other flows' jumps (`-> F`) start
    /// (Argo).
    #[arg(long)]
    template: bool,
    /// The most items a fan-out may have; more fail the stage, saying so (Argo).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    max_items: u64,
}

pub fn run(args: ExportArgs) -> u8 {
    let session = load(&args.path);
    let Some(flows) = session.flows() else {
        return exit::USAGE;
    };
    let plan = match plan_of(&flows, args.flow.as_deref()) {
        Ok(plan) => plan,
        Err(e) => {
            errln!("error: {e}");
            return exit::USAGE;
        }
    };
    let target = match args.target {
        TargetArg::Airflow => Target::Airflow,
        TargetArg::Argo => Target::Argo,
    };
    let deployment = match deployment(&args, &plan, target) {
        Ok(deployment) => deployment,
        Err(e) => {
            errln!("error: {e}");
            return exit::USAGE;
        }
    };
    if let Err(problems) = deployment.check() {
        for problem in problems {
            errln!("error: {problem}");
        }
        return exit::USAGE;
    }
    let exported = match export(&plan, target, &deployment) {
        Ok(exported) => exported,
        Err(reasons) => {
            errln!(
                "error: flow `{}` cannot be exported exactly:",
                plan.flow.name
            );
            for reason in reasons {
                errln!("  {reason}");
            }
            return exit::USAGE;
        }
    };
    let environment =
        crate::export::connector_environment(&plan, &session.workspace().connectors);
    for warning in exported.warnings.iter().chain(&environment) {
        errln!("warning: {warning}");
    }
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &exported.text) {
                errln!("error: cannot write {}: {e}", path.display());
                return exit::PROBLEMS;
            }
        }
        None => out!("{}", exported.text),
    }
    exit::OK
}

/// Where the exported tasks find wvflow, the flow's files and the state, from the options.
fn deployment(args: &ExportArgs, plan: &Plan, target: Target) -> Result<Deployment, String> {
    // A bare file name's folder is this one (its parent is the empty path, which made the
    // state relative and the flow's folder absolute below the given workspace).
    let folder = crate::workspace::absolute(&if args.path.is_dir() {
        args.path.clone()
    } else {
        match args.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    });
    // Activities run in the folder of the flow's own file, which may be below the workspace's.
    let flow_dir = crate::workspace::absolute(std::path::Path::new(&plan.flow.origin.file))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let below = flow_dir
        .strip_prefix(&folder)
        .unwrap_or(std::path::Path::new(""))
        .to_path_buf();
    let version = crate::export::ArgoVersion::parse(&args.argo_version).ok_or_else(|| {
        format!(
            "--argo-version {:?}: a release is MAJOR.MINOR, such as 3.6",
            args.argo_version
        )
    })?;
    let workspace = args.workspace.clone().unwrap_or_else(|| match target {
        Target::Airflow => folder.display().to_string(),
        Target::Argo => "/workspace".into(),
    });
    let workspace_root = workspace.clone();
    Ok(Deployment {
        wvflow: args.wvflow.clone(),
        workspace: if below.as_os_str().is_empty() {
            workspace
        } else {
            std::path::Path::new(&workspace)
                .join(below)
                .display()
                .to_string()
        },
        state: args
            .state
            .clone()
            .unwrap_or_else(|| folder.join(".wvflow").join("state").display().to_string()),
        image: args.image.clone(),
        volume_claim: args.volume_claim.clone(),
        argo: ArgoOptions {
            version,
            service_account: args.service_account.clone(),
            workspace_claim: args.workspace_claim.clone().map(|claim| (claim, workspace_root)),
            max_items: args.max_items,
            template: args.template,
        },
    })
}
