//! Completion inside a `test` item: the words of a test's lines, and the names they take
//! (the tested flow's stages and signals, the workspace's activities and flows).

use super::analysis::At;
use crate::check::{FlowGraph, Index};
use crate::syntax::ast::{Member, TestStatement};
use crate::vocabulary::{HookEvent, StateWord};
use serde_json::{Value, json};

const STATEMENTS: [&str; 6] = ["call", "mock", "real", "signal", "upstream", "expect"];
const EXPECTS: [&str; 7] = ["run", "exit", "compensations", "hooks", "elapsed", "table", "called"];
const OUTCOMES: [&str; 4] = ["returns", "fails", "takes", "never ends"];
const STAGE_FACTS: [&str; 2] = ["attempts", "rows"];

fn item(label: &str, kind: u32, detail: &str) -> Value {
    json!({ "label": label, "kind": kind, "detail": detail })
}

fn words(list: &[&str], detail: &str) -> Vec<Value> {
    list.iter().map(|w| item(w, 14, detail)).collect()
}

/// What fits at `at` when it is inside a test; `None` elsewhere. `line` is the text of the
/// line before the cursor.
pub fn completion(index: &Index, at: At, line: &str) -> Option<Vec<Value>> {
    let test = index
        .tests
        .iter()
        .find(|d| d.file == at.file && d.node.span.start as usize <= at.offset && at.offset < d.node.span.end as usize)?
        .node;
    let flow = test.statements.iter().find_map(|s| match s {
        TestStatement::Call { flow, .. } => index.flow(&flow.name.name, flow.version.as_ref().map(|v| v.value)),
        _ => None,
    });
    let graph = flow.map(|d| FlowGraph::new(d.file, d.node));
    let stages = || -> Vec<Value> {
        graph
            .as_ref()
            .map(|g| g.stage_names().map(|s| item(s, 6, "stage")).collect())
            .unwrap_or_default()
    };
    let activities = || -> Vec<Value> { index.activity_names().map(|a| item(a, 3, "activity")).collect() };
    let flows = || -> Vec<Value> { index.flow_names().map(|f| item(f, 9, "flow")).collect() };
    // The words written so far on the line, the one being written left out.
    let typed: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == '(' || c == ',').filter(|w| !w.is_empty()).collect();
    let done: &[&str] = if line.ends_with(|c: char| c.is_whitespace() || c == '[' || c == ',') {
        &typed
    } else {
        &typed[..typed.len().saturating_sub(1)]
    };
    let in_list = line.contains('[') && !line.contains(']');
    Some(match done {
        [] | ["{"] => words(&STATEMENTS, "test statement"),
        ["call"] | ["upstream"] => flows(),
        ["mock"] | ["real"] => activities(),
        ["real", ..] if line.trim_end().ends_with(',') => activities(),
        ["mock", _] | ["mock", _, "takes", _] => words(&OUTCOMES, "mock"),
        ["signal"] => graph
            .as_ref()
            .map(|g| {
                g.flow
                    .members
                    .iter()
                    .filter_map(|m| match m {
                        Member::Signal(s) => Some(item(&s.name.name, 12, "signal")),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ["upstream", _] => words(&["success", "failed", "skipped", "cancelled"], "flow state"),
        ["expect"] => {
            let mut items = stages();
            items.extend(activities());
            items.extend(words(&EXPECTS[..6], "expectation"));
            items
        }
        ["expect", "run"] => {
            let mut states = StateWord::WORDS.to_vec();
            states.push("continued");
            words(&states, "run state")
        }
        ["expect", "compensations", ..] if in_list => stages(),
        ["expect", "hooks", ..] if in_list => words(HookEvent::WORDS, "hook event"),
        ["expect", name] if graph.as_ref().is_some_and(|g| g.index_of(name).is_some()) => {
            let mut items = words(StateWord::WORDS, "stage state");
            items.extend(words(&STAGE_FACTS, "stage"));
            items
        }
        ["expect", name] if index.activity_by_name.contains_key(name) => words(&["called"], "activity"),
        _ => return None,
    })
}
