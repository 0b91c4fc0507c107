//! An item's outline: the part of its syntax tree that checking *other* items reads through
//! the [`Index`]. A large workspace is checked with every item's outline in memory and the
//! full trees of only a few chunks at a time (`crate::check::chunked`).
//!
//! What the checks of other items read of a flow: its name, version, parameters, `depends on`,
//! condition and span (calls, duplicates, cycles of `depends on` and conditions), and, of the
//! stages (fork branches included) that call or jump to flows or hold a pool slot, in order:
//! the name and span, the `pool` entry, and the activities and flows called or jumped to, by
//! name and version, without arguments (cycles of calls and jumps, a pool held by a caller).
//! A stage that does none of that cannot change what those checks find, and is left out. Of
//! an activity: its name, parameters and config, not its command. Pools and `run flow`
//! statements are kept whole.
//!
//! Whether a stage holds a pool slot can depend on the activity it calls, which may be
//! defined in a chunk not parsed yet: [`outline`] keeps every stage that names a pool or calls
//! anything, and [`compact`], once every outline is known, keeps those that matter.
//!
//! Whoever reads more of another item through the index must keep it here too:
//! `tests/it/chunked.rs` checks workspaces of many chunks both ways and compares.

use super::graph::activity_calls;
use super::index::Index;
use super::settings::StageSettings;
use crate::source::FileId;
use crate::syntax::ast::*;

/// The outline of `item`, in new allocations: made while the item's tree is whole, then
/// kept while the tree is dropped, it does not pin the tree's memory page by page.
pub fn outline(item: &Item) -> Item {
    outline_with(item, &|stage| {
        stage.config.as_deref().and_then(|c| c.get("pool")).is_some()
            || !activity_calls(stage).is_empty()
            || calls_flows(stage)
    })
}

/// Whether [`compact`] keeps each stage of an outline (in the order it asks): those that call
/// or jump to flows or hold a pool slot, as the settings of `index` (every outline of the
/// workspace) give them. Decided for every item before any is replaced.
pub fn stages_to_keep(item: &Item, file: FileId, index: &Index, out: &mut Vec<bool>) {
    fn visit(stage: &Stage, decide: &mut dyn FnMut(&Stage)) {
        for op in &stage.body.ops {
            if let OpKind::Fork(children) = &op.kind {
                for child in children {
                    visit(child, decide);
                }
            }
        }
        decide(stage);
    }
    let Item::Flow(flow) = item else {
        return;
    };
    for member in &flow.members {
        if let Member::Stage(stage) = member {
            visit(stage, &mut |stage| {
                out.push(
                    calls_flows(stage)
                        || StageSettings::of_stage(index, file, stage).pool.value.is_some(),
                )
            });
        }
    }
}

/// An outline again, with the stages [`stages_to_keep`] decided on, taken from `keep`. Its
/// allocations are new too: made one after the other, they lie together.
pub fn compact(item: &Item, keep: &mut std::slice::Iter<bool>) -> Item {
    let keep = std::cell::RefCell::new(keep);
    outline_with(item, &|_| keep.borrow_mut().next().copied().unwrap_or(true))
}

/// An outline keeping the stages `keep` says, and those with a fork branch kept.
fn outline_with(item: &Item, keep: &dyn Fn(&Stage) -> bool) -> Item {
    match item {
        Item::Flow(flow) => Item::Flow(Box::new(flow_outline(flow, keep))),
        Item::Activity(activity) => Item::Activity(Box::new(Activity {
            name: activity.name.clone(),
            params: activity.params.clone(),
            config: activity.config.clone(),
            command: Command::Exec(Vec::new()),
            span: activity.span,
        })),
        Item::Run(_) | Item::Pool(_) | Item::Test(_) => item.clone(),
    }
}

/// Whether a stage starts other flows' runs: a call or a jump, in its source or an operator.
fn calls_flows(stage: &Stage) -> bool {
    matches!(
        stage.body.source.kind,
        SourceKind::CallFlow(_) | SourceKind::Jump(_)
    ) || stage.body.ops.iter().any(|op| {
        matches!(
            op.kind,
            OpKind::CallFlow(_) | OpKind::EachCall(_) | OpKind::Jump(_)
        )
    })
}

fn flow_outline(flow: &Flow, keep: &dyn Fn(&Stage) -> bool) -> Flow {
    let members: Vec<Member> = flow
        .members
        .iter()
        .filter_map(|m| match m {
            Member::Stage(stage) => stage_outline(stage, keep).map(Member::Stage),
            Member::Signal(_) | Member::Query(_) => None,
        })
        .collect();
    Flow {
        name: flow.name.clone(),
        version: flow.version.clone(),
        params: flow.params.clone(),
        depends_on: flow.depends_on.clone(),
        condition: flow.condition.clone(),
        config: None,
        members: shrunk(members),
        span: flow.span,
    }
}

/// A stage's pool and calls, with its fork branches that are kept; `None` when neither it
/// nor a branch is.
fn stage_outline(stage: &Stage, keep: &dyn Fn(&Stage) -> bool) -> Option<Stage> {
    let ops: Vec<Op> = stage
        .body
        .ops
        .iter()
        .filter_map(|op| op_outline(op, keep))
        .collect();
    let branches = ops.iter().any(|op| matches!(op.kind, OpKind::Fork(_)));
    // Asked of every stage, branches first, as `stages_to_keep` decides.
    let kept = keep(stage);
    if !branches && !kept {
        return None;
    }
    let source = match &stage.body.source.kind {
        SourceKind::Activity(call) => SourceKind::Activity(Box::new(call_outline(call))),
        SourceKind::CallFlow(call) => SourceKind::CallFlow(Box::new(flow_call_outline(call))),
        SourceKind::Jump(call) => SourceKind::Jump(Box::new(flow_call_outline(call))),
        _ => SourceKind::From(Vec::new()),
    };
    Some(Stage {
        name: stage.name.clone(),
        trigger: None,
        config: stage.config.as_deref().and_then(pool_outline).map(Box::new),
        connector: None,
        body: Body {
            source: Source {
                kind: source,
                span: stage.body.source.span,
            },
            ops: shrunk(ops),
        },
        span: stage.span,
    })
}

/// The block's `pool` entries, if any.
fn pool_outline(config: &Config) -> Option<Config> {
    let entries: Vec<ConfigEntry> = config
        .entries
        .iter()
        .filter(|entry| entry.key.name == "pool")
        .cloned()
        .collect();
    (!entries.is_empty()).then(|| Config {
        style: config.style,
        entries: shrunk(entries),
        span: config.span,
    })
}

fn op_outline(op: &Op, keep: &dyn Fn(&Stage) -> bool) -> Option<Op> {
    let kind = match &op.kind {
        OpKind::Fork(children) => {
            let kept: Vec<Stage> = children
                .iter()
                .filter_map(|child| stage_outline(child, keep))
                .collect();
            if kept.is_empty() {
                return None;
            }
            OpKind::Fork(shrunk(kept))
        }
        OpKind::Each(call) => OpKind::Each(Box::new(call_outline(call))),
        OpKind::Activity(call) => OpKind::Activity(Box::new(call_outline(call))),
        OpKind::EachCall(call) => OpKind::EachCall(Box::new(flow_call_outline(call))),
        OpKind::Jump(call) => OpKind::Jump(Box::new(flow_call_outline(call))),
        OpKind::CallFlow(call) => OpKind::CallFlow(Box::new(flow_call_outline(call))),
        // The activity a loop's condition calls is a use of it.
        OpKind::While(condition) if crate::check::loop_activity(condition).is_some() => {
            OpKind::While(condition.clone())
        }
        _ => return None,
    };
    Some(Op {
        kind,
        span: op.span,
    })
}

fn call_outline(call: &Call) -> Call {
    Call {
        name: call.name.clone(),
        args: Vec::new(),
        span: call.span,
    }
}

fn flow_call_outline(call: &FlowCall) -> FlowCall {
    FlowCall {
        name: call.name.clone(),
        version: call.version.clone(),
        args: call.args.as_ref().map(|_| Vec::new()),
        span: call.span,
    }
}

fn shrunk<T>(mut list: Vec<T>) -> Vec<T> {
    list.shrink_to_fit();
    list
}
