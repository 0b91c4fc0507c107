//! The workspace's flows as the page shows them, read from the files on each request so an
//! edit shows at the next look: parameters, schedule and its next fire times, recent runs,
//! and the workspace's diagnostics when it does not check.

use super::http::{Reply, Site};
use crate::diagnostics::Diagnostic;
use crate::plan::Plan;
use crate::runtime::runs::catalog::{self, Filter};
use crate::runtime::runs::{report, schema};
use crate::runtime::schedule::{Timing, utc_now};
use crate::session::{Notice, Reporter, Session};
use crate::source::SourceMap;
use serde_json::{Value, json};

/// Fire times shown per scheduled flow.
const NEXT_FIRES: usize = 5;
/// Runs shown per flow.
const RECENT_RUNS: usize = 5;

/// The workspace compiled, and the text of what stops it: what [`list`] and starting a flow
/// both need.
pub(super) struct Compiled {
    pub session: Session<'static>,
    /// Every problem found, rendered as `wvflow check` prints them (no colour).
    pub diagnostics: String,
}

/// The dashboard as a reporter: it is told nothing it must act on. The page shows each
/// request's diagnostics from its session (also those of a workspace with unreadable paths,
/// which reporters are not told), and runs nothing in this process: a run started here is a
/// process of its own, which reports on its own stderr.
struct Page;

impl Reporter for Page {
    fn diagnostics(&self, _: &[Diagnostic], _: &SourceMap) {}

    fn notice(&self, _: &Notice) {}
}

pub(super) fn compile(site: &Site) -> Compiled {
    let session = Session::load(&site.workspace, &Page);
    let mut diagnostics: String = session
        .load_errors()
        .iter()
        .map(|e| format!("error: {e}\n"))
        .collect();
    diagnostics.push_str(&session.rendered(false));
    Compiled {
        session,
        diagnostics,
    }
}

/// Every flow (its newest version) with what the page shows of it.
pub fn list(site: &Site) -> Reply {
    let compiled = compile(site);
    let mut flows = Vec::new();
    if let Some(checked) = compiled.session.flows() {
        let conn = site
            .db
            .is_file()
            .then(|| schema::open(&site.db).ok())
            .flatten();
        let mut names: Vec<&str> = checked.index().flow_names().collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let Some(plan) = checked.plan(name, None) else {
                continue;
            };
            let recent = conn.as_ref().map_or_else(Vec::new, |conn| {
                let filter = Filter {
                    flow: Some(name.to_string()),
                    state: None,
                    limit: Some(RECENT_RUNS),
                };
                catalog::list(conn, &filter)
                    .unwrap_or_default()
                    .iter()
                    .map(report::brief)
                    .collect()
            });
            flows.push(flow_json(&plan, recent));
        }
    }
    Reply::Json(
        200,
        json!({
            "workspace": site.workspace.display().to_string(),
            "checks": compiled.session.checks(),
            "diagnostics": compiled.diagnostics,
            "flows": flows,
        }),
    )
}

fn flow_json(plan: &Plan, recent: Vec<Value>) -> Value {
    let flow = &plan.flow;
    let schedule = flow.schedule.as_ref().map(|s| {
        let (mut next, mut local) = (Vec::new(), Vec::new());
        if let Ok(timing) = Timing::of(s) {
            let mut at = utc_now();
            while next.len() < NEXT_FIRES {
                let Some(fire) = timing.next_after(at) else {
                    break;
                };
                next.push(crate::runtime::schedule::run_time_text(fire));
                local.push(fire.with_timezone(&timing.zone()).to_rfc3339());
                at = fire;
            }
        }
        json!({
            "cron": s.cron,
            "interval_ms": s.interval_ms,
            "timezone": s.timezone,
            "catchup": s.catchup,
            "next": next,
            "next_local": local,
        })
    });
    json!({
        "flow": flow.name,
        "version": flow.version,
        "params": flow.params,
        "schedule": schedule,
        "stages": flow.stages.len(),
        "recent_runs": recent,
    })
}
