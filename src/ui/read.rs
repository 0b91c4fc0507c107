//! The API's reads, each a fresh look at the run store: the server keeps no runs in memory.

use super::http::{Query, Reply, Site, error};
use crate::runtime::runs::catalog::{self, Filter};
use crate::runtime::runs::report::{self, RunDetail};
use crate::runtime::runs::schema;
use serde_json::json;

/// How many runs a list returns unless told.
const RUNS_LIMIT: usize = 200;
/// The states `state=` takes, as `wvflow runs list --state` does.
const RUN_STATES: [&str; 7] = crate::runtime::runs::catalog::STATE_FILTERS;
/// How many rows a preview returns unless told.
const ROWS_LIMIT: u64 = 100;

fn store(site: &Site) -> Result<rusqlite::Connection, Reply> {
    if !site.db.is_file() {
        return Err(error(404, "no run has been recorded yet"));
    }
    schema::open(&site.db).map_err(|e| error(500, e))
}

fn found(conn: &rusqlite::Connection, id: &str) -> Result<catalog::RunRow, Reply> {
    catalog::run_in(conn, id)
        .map_err(|e| error(500, e))?
        .ok_or_else(|| error(404, format!("no run `{id}`")))
}

/// Runs of the store, newest first: `flow`, `state` (as in `runs list --state`) and `limit`
/// filter. `seq` is the store's newest event, which changes whenever any run does.
pub fn runs(site: &Site, query: &Query) -> Reply {
    let limit = match query.number::<usize>("limit") {
        Ok(n) => n.unwrap_or(RUNS_LIMIT),
        Err(reply) => return reply,
    };
    if let Some(state) = query.get("state")
        && !RUN_STATES.contains(&state)
    {
        return error(
            400,
            format!("`state` is one of {}, not `{state}`", RUN_STATES.join(", ")),
        );
    }
    if !site.db.is_file() {
        return Reply::Json(200, json!({ "runs": [], "seq": 0 }));
    }
    let result = store(site).and_then(|conn| {
        let filter = Filter {
            flow: query.get("flow").map(str::to_string),
            state: query.get("state").map(str::to_string),
            limit: Some(limit),
        };
        let runs = catalog::list(&conn, &filter).map_err(|e| error(500, e))?;
        let seq = catalog::last_event(&conn).map_err(|e| error(500, e))?;
        let runs: Vec<_> = runs
            .iter()
            .map(|r| {
                let mut brief = report::brief(r);
                brief["parent_run"] = json!(r.parent_run);
                brief
            })
            .collect();
        Ok(json!({ "runs": runs, "seq": seq }))
    });
    result.map_or_else(|reply| reply, |v| Reply::Json(200, v))
}

/// One run, as `wvflow runs show RUN --format json` prints it.
pub fn run(site: &Site, id: &str) -> Reply {
    let result = store(site).and_then(|conn| {
        let run = found(&conn, id)?;
        let detail = RunDetail::read(&conn, &run).map_err(|e| error(500, e))?;
        Ok(detail.json(&run))
    });
    result.map_or_else(|reply| reply, |v| Reply::Json(200, v))
}

/// The run's stages and the edges between them, from the plan it ran: what the page draws.
pub fn graph(site: &Site, id: &str) -> Reply {
    let result = store(site).and_then(|conn| {
        found(&conn, id)?;
        let plan = catalog::plan_of(&conn, id).map_err(|e| error(500, e))?;
        let stages: Vec<_> = plan
            .flow
            .stages
            .iter()
            .map(|s| {
                json!({
                    "stage": s.id,
                    "kind": s.kind,
                    "upstream": s.upstream,
                })
            })
            .collect();
        Ok(json!({ "flow": plan.flow.name, "stages": stages }))
    });
    result.map_or_else(|reply| reply, |v| Reply::Json(200, v))
}

/// Attempts whose logs one request reads at most, and when not told.
const LOGS_LIMIT: u64 = 200;
const LOGS_PAGE: u64 = 20;

/// A page of the run's attempt logs (`stage`, `attempt`, `item` filter; `offset`, `limit`
/// attempts; each log `from` a character on; `text=0` for the lengths alone), in the order
/// the attempts started, with `total`, the attempts that match. A page reads what it shows:
/// an `each` of 300 items is not read whole, nor a growing log again from its start.
pub fn logs(site: &Site, id: &str, query: &Query) -> Reply {
    let numbers = (|| {
        Ok::<_, Reply>((
            query.number::<u32>("attempt")?,
            query.number::<u64>("item")?,
            query.number::<u64>("offset")?.unwrap_or(0),
            query.number::<u64>("limit")?.unwrap_or(LOGS_PAGE),
            query.number::<u64>("from")?.unwrap_or(0),
        ))
    })();
    let (attempt, item, offset, limit, from) = match numbers {
        Ok(numbers) => numbers,
        Err(reply) => return reply,
    };
    if limit > LOGS_LIMIT {
        return error(400, format!("`limit` is at most {LOGS_LIMIT} attempts"));
    }
    let asked = catalog::LogQuery {
        stage: query.get("stage"),
        attempt,
        item,
        offset,
        limit,
        from,
        lengths_only: query.get("text") == Some("0"),
    };
    let result = store(site).and_then(|conn| {
        found(&conn, id)?;
        let (logs, total) = catalog::log_page(&conn, id, &asked).map_err(|e| error(500, e))?;
        Ok(json!({ "logs": logs, "total": total, "offset": offset }))
    });
    result.map_or_else(|reply| reply, |v| Reply::Json(200, v))
}

/// The first rows a stage produced, as `runs rows --format json` gives them, and its columns.
pub fn rows(site: &Site, id: &str, query: &Query) -> Reply {
    let Some(stage) = query.get("stage") else {
        return error(400, "which stage? (`stage=NAME`)");
    };
    let limit = match query.number::<u64>("limit") {
        Ok(n) => n.unwrap_or(ROWS_LIMIT),
        Err(reply) => return reply,
    };
    let result = store(site).and_then(|conn| {
        found(&conn, id)?;
        let rows =
            catalog::output_rows(&conn, id, stage, Some(limit)).map_err(|e| error(404, e))?;
        Ok(json!({ "columns": rows.columns, "rows": rows.to_json_objects() }))
    });
    result.map_or_else(|reply| reply, |v| Reply::Json(200, v))
}
