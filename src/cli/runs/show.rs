//! `wvflow runs list` and `wvflow runs show RUN_ID [--tree]`.

use super::{Format, find_run, open};
use crate::cli::exit;
use crate::runtime::engine::{CompensationSummary, StageSummary, Summary};
use crate::runtime::runs::catalog::{self, CompensationRow, Filter, RunRow, StageRow};
use crate::runtime::runs::schema::rfc3339;
use clap::Args;
use rusqlite::Connection;
use serde_json::json;
use std::path::Path;

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    flow: Option<String>,
    /// `running` (live), `stale`, `success`, `failed`, `cancelled` or `skipped`.
    #[arg(long, value_parser = ["running", "stale", "success", "failed", "cancelled", "skipped"])]
    state: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args)]
pub struct ShowArgs {
    run_id: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// A trace tree: the run, its stages, attempts, `each` items, child runs and jumps.
    #[arg(long, conflicts_with = "format")]
    tree: bool,
}

pub fn list(db: &Path, args: ListArgs) -> Result<u8, String> {
    let conn = open(db)?;
    let filter = Filter {
        flow: args.flow,
        state: args.state,
        limit: args.limit,
    };
    let runs = catalog::list(&conn, &filter)?;
    match args.format {
        Format::Json => {
            let items: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    json!({
                        "run_id": r.run_id,
                        "flow": r.flow,
                        "state": r.display_state(),
                        "started_at": r.started_at.map(rfc3339),
                        "finished_at": r.finished_at.map(rfc3339),
                        "run_time": r.run_time,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            );
        }
        Format::Text => {
            let id_width = runs
                .iter()
                .map(|r| r.run_id.len())
                .max()
                .unwrap_or(6)
                .max(6);
            let flow_width = runs.iter().map(|r| r.flow.len()).max().unwrap_or(4).max(4);
            println!(
                "{:id_width$}  {:flow_width$}  {:15}  {:24}  {:>9}",
                "run id", "flow", "state", "started", "duration"
            );
            for r in &runs {
                println!(
                    "{:id_width$}  {:flow_width$}  {:15}  {:24}  {:>9}",
                    r.run_id,
                    r.flow,
                    r.display_state(),
                    r.started_at.map(rfc3339).unwrap_or_default(),
                    duration(r)
                );
            }
        }
    }
    Ok(exit::OK)
}

/// How long a run took (or has been going), for people.
fn duration(run: &RunRow) -> String {
    let Some(start) = run.started_at else {
        return String::new();
    };
    let end = run
        .finished_at
        .unwrap_or_else(crate::runtime::runs::schema::now_ms);
    millis((end - start).max(0) as u64)
}

fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

pub fn show(db: &Path, args: ShowArgs) -> Result<u8, String> {
    let conn = open(db)?;
    let run = find_run(&conn, db, &args.run_id)?;
    if args.tree {
        let mut out = String::new();
        tree(&conn, &run, "", &mut out, 0)?;
        print!("{out}");
        return Ok(exit::OK);
    }
    let detail = details(&conn, &run)?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&detail).unwrap_or_default()
        ),
        Format::Text => print!("{}", text(&run, &detail)),
    }
    Ok(exit::OK)
}

/// The run as one JSON object: the fields of `wvflow run --format json`, and more.
fn details(conn: &Connection, run: &RunRow) -> Result<serde_json::Value, String> {
    let stages = catalog::stages(conn, &run.run_id)?;
    let compensations = catalog::compensations(conn, &run.run_id)?;
    let brief = |r: &RunRow| {
        json!({
            "run_id": r.run_id, "flow": r.flow, "state": r.display_state(),
            "parent_stage": r.parent_stage,
        })
    };
    let children: Vec<_> = catalog::related(conn, &run.run_id, "parent_run")?
        .iter()
        .map(brief)
        .collect();
    let jumps: Vec<_> = catalog::related(conn, &run.run_id, "jumped_from")?
        .iter()
        .map(brief)
        .collect();
    Ok(json!({
        "run_id": run.run_id,
        "flow": run.flow,
        "version": run.version,
        "state": run.display_state(),
        "reason": run.reason,
        "args": run.args,
        "run_time": run.run_time,
        "started_at": run.started_at.map(rfc3339),
        "finished_at": run.finished_at.map(rfc3339),
        "owner": { "pid": run.owner.pid, "host": run.owner.host },
        "resumes": run.resumes,
        "parent_run": run.parent_run,
        "parent_stage": run.parent_stage,
        "jumped_from": run.jumped_from,
        "stages": stages,
        "compensations": compensations,
        "children": children,
        "jumps": jumps,
    }))
}

fn text(run: &RunRow, detail: &serde_json::Value) -> String {
    // The table `wvflow run` prints, from the recorded stages and compensations.
    let stages: Vec<StageRow> =
        serde_json::from_value(detail["stages"].clone()).unwrap_or_default();
    let compensations: Vec<CompensationRow> =
        serde_json::from_value(detail["compensations"].clone()).unwrap_or_default();
    let summary = Summary {
        run_id: run.run_id.clone(),
        flow: run.flow.clone(),
        state: run.display_state(),
        stages: stages
            .into_iter()
            .map(|s| StageSummary {
                stage: s.stage,
                state: s.state,
                attempts: s.attempts,
                rows: s.rows as usize,
                duration_ms: s.duration_ms,
                error: s.error,
            })
            .collect(),
        compensations: compensations
            .into_iter()
            .map(|c| CompensationSummary {
                stage: c.stage,
                activity: c.activity,
                state: c.state,
                attempts: c.attempts,
                error: c.error,
            })
            .collect(),
        next: Vec::new(),
    };
    let mut out = crate::cli::run::table(&summary);
    out.push('\n');
    if let Some(reason) = &run.reason {
        out.push_str(&format!("reason:   {reason}\n"));
    }
    out.push_str(&format!(
        "args:     {}\nrun_time: {}\nstarted:  {}\nfinished: {}\nowner:    pid {} on {}\n",
        serde_json::Value::Object(run.args.clone()),
        run.run_time,
        run.started_at.map(rfc3339).unwrap_or_default(),
        run.finished_at.map(rfc3339).unwrap_or_else(|| "-".into()),
        run.owner.pid,
        run.owner.host
    ));
    if run.resumes > 0 {
        out.push_str(&format!("resumed:  {} time(s)\n", run.resumes));
    }
    for (title, key) in [("child runs", "children"), ("jumps", "jumps")] {
        let Some(items) = detail[key].as_array().filter(|a| !a.is_empty()) else {
            continue;
        };
        out.push_str(&format!("\n{title}:\n"));
        for item in items {
            out.push_str(&format!(
                "  {} of {}: {}\n",
                item["run_id"].as_str().unwrap_or_default(),
                item["flow"].as_str().unwrap_or_default(),
                item["state"].as_str().unwrap_or_default()
            ));
        }
    }
    out
}

/// How deep child runs and jumps are followed in a tree.
const TREE_DEPTH: usize = 16;

/// One run as a trace tree, with child runs under the stages that called them and jump
/// targets after the stages.
fn tree(
    conn: &Connection,
    run: &RunRow,
    indent: &str,
    out: &mut String,
    depth: usize,
) -> Result<(), String> {
    out.push_str(&format!(
        "run {} {}  {}  {}\n",
        run.run_id,
        run.flow,
        run.display_state(),
        duration(run)
    ));
    if depth >= TREE_DEPTH {
        out.push_str(&format!("{indent}└─ … (deeper runs left out)\n"));
        return Ok(());
    }
    let stages = catalog::stages(conn, &run.run_id)?;
    let children = catalog::related(conn, &run.run_id, "parent_run")?;
    let jumps = catalog::related(conn, &run.run_id, "jumped_from")?;
    let compensations = catalog::compensations(conn, &run.run_id)?;
    let total = stages.len() + compensations.len() + jumps.len();
    let mut n = 0;
    let mut branch = |out: &mut String| {
        n += 1;
        let last = n == total;
        out.push_str(indent);
        out.push_str(if last { "└─ " } else { "├─ " });
        format!("{indent}{}", if last { "   " } else { "│  " })
    };
    for stage in &stages {
        let inner = branch(out);
        out.push_str(&format!(
            "{}  {}  {}{}\n",
            stage.stage,
            stage.state,
            millis(stage.duration_ms),
            if stage.rows > 0 {
                format!("  {} rows", stage.rows)
            } else {
                String::new()
            }
        ));
        let attempts: Vec<_> = stage.history.iter().filter(|a| a.phase == "run").collect();
        let calls: Vec<&RunRow> = children
            .iter()
            .filter(|c| c.parent_stage.as_deref() == Some(&stage.stage))
            .collect();
        let count = attempts.len() + calls.len();
        for (k, a) in attempts.iter().enumerate() {
            let last = k + 1 == count;
            let item = a.item.map(|i| format!("item {i} ")).unwrap_or_default();
            let round = if a.round > 0 {
                format!(" (resume {})", a.round)
            } else {
                String::new()
            };
            let code = a
                .exit_code
                .map(|c| format!("  exit {c}"))
                .unwrap_or_default();
            let error = a
                .error
                .as_deref()
                .and_then(|e| e.lines().last())
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{inner}{}{item}attempt {}{round}  {}  {}{code}{error}\n",
                if last { "└─ " } else { "├─ " },
                a.attempt,
                a.state,
                a.duration_ms.map(millis).unwrap_or_else(|| "-".into()),
            ));
        }
        for (k, child) in calls.iter().enumerate() {
            let last = attempts.len() + k + 1 == count;
            out.push_str(&format!("{inner}{}call ", if last { "└─ " } else { "├─ " }));
            let deeper = format!("{inner}{}", if last { "   " } else { "│  " });
            tree(conn, child, &deeper, out, depth + 1)?;
        }
    }
    for c in &compensations {
        branch(out);
        out.push_str(&format!(
            "compensate {} ({})  {}  {} attempt(s)\n",
            c.stage, c.activity, c.state, c.attempts
        ));
    }
    for jump in &jumps {
        let inner = branch(out);
        out.push_str("-> ");
        tree(conn, jump, &inner, out, depth + 1)?;
    }
    Ok(())
}
