//! `wvflow runs list` and `wvflow runs show RUN_ID [--tree]`.

use crate::cli::Failure;
use crate::runtime::state::Phase;
use super::{Format, find_run, open};
use crate::cli::exit;
use crate::runtime::engine::Summary;
use crate::runtime::rows_text;
use crate::runtime::engine::StageSummary;
use crate::runtime::runs::catalog::{self, AttemptRow, Filter, RunRow};
use crate::runtime::runs::report::{self, RunDetail};
use crate::runtime::runs::schema::rfc3339;
use clap::Args;
use rusqlite::Connection;
use std::path::Path;

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    flow: Option<String>,
    /// `running` (live), `stale`, `success`, `failed`, `cancelled`, `skipped` or `continued`.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(catalog::STATE_FILTERS))]
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

#[derive(Args)]
pub struct RowsArgs {
    run_id: String,
    stage: String,
    /// At most this many rows.
    #[arg(long)]
    limit: Option<u64>,
    #[arg(long, value_enum, default_value_t = RowsFormat::Table)]
    format: RowsFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RowsFormat {
    Table,
    Json,
    Ndjson,
    Csv,
}

pub fn rows(db: &Path, args: RowsArgs) -> Result<u8, Failure> {
    let conn = open(db)?;
    let run = find_run(&conn, db, &args.run_id)?;
    let rows = catalog::output_rows(&conn, &run.run_id, &args.stage, args.limit)?;
    let text = match args.format {
        RowsFormat::Table => rows_text::table(&rows),
        RowsFormat::Json => rows_text::json(&rows),
        RowsFormat::Ndjson => rows_text::ndjson(&rows),
        RowsFormat::Csv => rows_text::csv(&rows).map_err(|e| e.to_string())?,
    };
    out!("{text}");
    Ok(exit::OK)
}

#[derive(Args)]
pub struct LogsArgs {
    run_id: String,
    /// Only this stage's attempts.
    stage: Option<String>,
    /// Only attempt N (from 1).
    #[arg(long)]
    attempt: Option<u32>,
    /// Only the `each` item I (from 0).
    #[arg(long)]
    item: Option<u64>,
    /// Go on printing as the run writes, until it ends.
    #[arg(long)]
    follow: bool,
    /// Print what the attempts wrote as it is, control characters included (by default
    /// they are escaped, `\e[31m`, so that a program's output cannot drive the terminal).
    #[arg(long)]
    raw: bool,
}

pub fn logs(db: &Path, args: LogsArgs) -> Result<u8, Failure> {
    let conn = open(db)?;
    let run = find_run(&conn, db, &args.run_id)?;
    if let Some(stage) = &args.stage {
        let stages = catalog::stages(&conn, &run.run_id)?;
        let hooks = catalog::logs(&conn, &run.run_id, None)?
            .into_iter()
            .filter(|a| a.phase == Phase::Hook)
            .map(|a| a.stage);
        let names: Vec<String> = stages
            .into_iter()
            .map(|s| s.summary.stage)
            .chain(hooks)
            .collect();
        if !names.contains(stage) {
            let names = names.iter().map(String::as_str);
            let hint = crate::diagnostics::suggest::closest(stage, names)
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            return Err(format!("run {} has no stage `{stage}`{hint}", run.run_id).into());
        }
    }
    // What was printed of each attempt's log so far, and whose log was printed last.
    let mut printed: std::collections::BTreeMap<(String, Phase, Option<u64>, u32, u32), usize> =
        Default::default();
    let mut last = None;
    loop {
        // Read the run's state first: what it wrote until then is all read below.
        let over = !args.follow
            || catalog::run_in(&conn, &run.run_id)?.is_none_or(|r| r.is_finished() || r.is_stale());
        for a in catalog::logs(&conn, &run.run_id, args.stage.as_deref())? {
            if args.attempt.is_some_and(|n| n != a.attempt)
                || args.item.is_some_and(|i| Some(i) != a.item)
            {
                continue;
            }
            let key = (a.stage.clone(), a.phase, a.item, a.round, a.attempt);
            let item = a.item.map(|i| format!(", item {i}")).unwrap_or_default();
            let phase = if a.phase == Phase::Run {
                String::new()
            } else {
                format!(" ({})", a.phase)
            };
            let header = format!("{}{item}, attempt {}{phase}", a.stage, a.attempt);
            let done = printed.entry(key.clone()).or_insert_with(|| {
                out!("== {header}: {} ==\n", a.state);
                last = Some(key.clone());
                0
            });
            if let Some(news) = a.log.get(*done..).filter(|n| !n.is_empty()) {
                // Another attempt's log came in between: say again whose this is.
                if last.as_ref() != Some(&key) {
                    out!("== {header} (more) ==\n");
                    last = Some(key);
                }
                if args.raw {
                    out!("{news}");
                } else {
                    out!("{}", crate::terminal::escape_controls(news));
                }
                *done = a.log.len();
            }
        }
        if over || crate::terminal::stdout_closed() {
            return Ok(exit::OK);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub fn list(db: &Path, args: ListArgs) -> Result<u8, Failure> {
    let conn = open(db)?;
    let filter = Filter {
        flow: args.flow,
        state: args.state,
        limit: args.limit,
    };
    let runs = catalog::list(&conn, &filter)?;
    match args.format {
        Format::Json => {
            let items: Vec<serde_json::Value> = runs.iter().map(report::brief).collect();
            outln!(
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
            outln!(
                "{:id_width$}  {:flow_width$}  {:15}  {:24}  {:>9}",
                "run id",
                "flow",
                "state",
                "started",
                "duration"
            );
            for r in &runs {
                outln!(
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

/// How long a run took (or has been going; a stale one, until its last heartbeat), for
/// people.
fn duration(run: &RunRow) -> String {
    run.duration_ms(crate::runtime::runs::schema::now_ms())
        .map(millis)
        .unwrap_or_default()
}

fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

pub fn show(db: &Path, args: ShowArgs) -> Result<u8, Failure> {
    let conn = open(db)?;
    let run = find_run(&conn, db, &args.run_id)?;
    if args.tree {
        let mut out = String::new();
        tree(&conn, &run, "", &mut out, 0)?;
        // The runs that continue it (`continue_as_new`), one after the other.
        let mut last = run;
        for shown in 0.. {
            let Some(next) = catalog::related(&conn, &last.run_id, "continued_from")?
                .into_iter()
                .next()
            else {
                break;
            };
            if shown == TREE_DEPTH {
                out.push_str(&format!(
                    "… continued as {} and later runs (`wvflow runs show {} --tree`)\n",
                    next.run_id, next.run_id
                ));
                break;
            }
            out.push_str("continued as new: ");
            tree(&conn, &next, "", &mut out, 0)?;
            last = next;
        }
        out!("{out}");
        return Ok(exit::OK);
    }
    let detail = RunDetail::read(&conn, &run)?;
    match args.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&detail.json(&run)).unwrap_or_default()
        ),
        Format::Text => out!("{}", text(&detail, &run)),
    }
    Ok(exit::OK)
}

/// The text `runs show` prints: the table `wvflow run` prints, then what else the store
/// knows of the run.
fn text(detail: &RunDetail, run: &RunRow) -> String {
    let summary = Summary {
        run_id: run.run_id.clone(),
        flow: run.flow.clone(),
        state: run.state,
        stages: detail.stages.iter().map(|s| s.summary.clone()).collect(),
        compensations: detail.compensations.clone(),
        next: Vec::new(),
        outputs: None,
    };
    let mut out = crate::cli::run::table_as(&summary, &run.display_state().to_string());
    out.push('\n');
    if let Some(reason) = &run.reason {
        out.push_str(&format!("reason:   {reason}\n"));
    }
    out.push_str(&format!(
        "args:     {}\nrun_time: {}\nstarted:  {}\nfinished: {}\nduration: {}\nowner:    pid {} on {}\n",
        serde_json::Value::Object(run.args.clone()),
        run.run_time,
        run.started_at.map(rfc3339).unwrap_or_default(),
        run.finished_at.map(rfc3339).unwrap_or_else(|| "-".into()),
        duration(run),
        run.owner.pid,
        run.owner.host
    ));
    if run.resumes > 0 {
        out.push_str(&format!("resumed:  {} time(s)\n", run.resumes));
    }
    for stage in &detail.stages {
        if let Some(at) = &stage.next_attempt_at {
            out.push_str(&format!(
                "retrying: {}, attempt {} at {at}\n",
                stage.summary.stage,
                stage.summary.attempts + 1
            ));
        }
    }
    if !detail.signals.is_empty() {
        out.push_str("\nsignals:\n");
        for s in &detail.signals {
            out.push_str(&format!(
                "  {} = {}  at {}\n",
                s.name,
                s.value.literal(),
                rfc3339(s.at)
            ));
        }
    }
    if let Some(from) = &run.continued_from {
        out.push_str(&format!("continues: {from}\n"));
    }
    if let Some(next) = &detail.continued_as {
        out.push_str(&format!(
            "continued as: {} ({})\n",
            next.run_id,
            next.display_state()
        ));
    }
    for (title, runs) in [("child runs", &detail.children), ("jumps", &detail.jumps)] {
        if runs.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for r in runs {
            out.push_str(&format!(
                "  {} of {}: {}\n",
                r.run_id,
                r.flow,
                r.display_state()
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
) -> Result<(), Failure> {
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
    let RunDetail {
        stages,
        compensations,
        children,
        jumps,
        ..
    } = RunDetail::read(conn, run)?;
    let total = stages.len() + compensations.len() + jumps.len();
    let mut n = 0;
    let mut branch = |out: &mut String| {
        n += 1;
        let last = n == total;
        out.push_str(indent);
        out.push_str(if last { "└─ " } else { "├─ " });
        format!("{indent}{}", if last { "   " } else { "│  " })
    };
    // The plan the run started with says which attempts are a loop's iterations.
    let plan = crate::runtime::runs::catalog::plan_of(conn, &run.run_id).ok();
    for stage in &stages {
        let inner = branch(out);
        let s = &stage.summary;
        out.push_str(&stage_line(s));
        let steps = plan
            .as_ref()
            .and_then(|p| p.flow.stages.iter().find(|p| p.id == s.stage))
            .map_or(&[][..], |p| p.steps.as_slice());
        let attempts: Vec<_> = stage.history.iter().filter(|a| a.phase == Phase::Run).collect();
        let calls: Vec<&RunRow> = children
            .iter()
            .filter(|c| c.parent_stage.as_deref() == Some(&s.stage))
            .collect();
        let count = attempts.len() + calls.len();
        for (k, a) in attempts.iter().enumerate() {
            let last = k + 1 == count;
            out.push_str(&format!(
                "{inner}{}{}\n",
                if last { "└─ " } else { "├─ " },
                attempt_line(a, steps)
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

/// A stage in a tree: its state, how long it took and the rows it produced.
fn stage_line(s: &StageSummary) -> String {
    format!(
        "{}  {}  {}{}\n",
        s.stage,
        s.state,
        millis(s.duration_ms),
        if s.rows > 0 {
            format!("  {} rows", s.rows)
        } else {
            String::new()
        }
    )
}

/// An attempt in a tree: its loop iteration, item, number, state, duration, exit code and the
/// last line of its error (`steps`: its stage's, to tell a loop's iterations).
fn attempt_line(a: &AttemptRow, steps: &[crate::plan::ir::Step]) -> String {
    let iteration = crate::plan::looped::iteration_of_step(steps, a.step as usize)
        .map(|n| format!("iteration {n} "))
        .unwrap_or_default();
    let item = a.item.map(|i| format!("{iteration}item {i} ")).unwrap_or(iteration);
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
        .map(|e| format!("  {}", crate::terminal::escape_controls(e)))
        .unwrap_or_default();
    format!(
        "{item}attempt {}{round}  {}  {}{code}{error}",
        a.attempt,
        a.state,
        a.duration_ms.map(millis).unwrap_or_else(|| "-".into()),
    )
}
