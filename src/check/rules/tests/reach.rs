//! What a test's run can reach: flows, and the activities it may call.

use super::*;

/// The flows a test's run can reach: its flow, and those that flow calls or jumps to, and so
/// on. Outlines keep what this reads, so a lean workspace knows which flows' trees a test's
/// checks need in full.
pub fn flows_reached<'w>(index: &Index<'w>, test: &Test) -> Vec<Def<'w, Flow>> {
    let start = test.statements.iter().filter_map(|s| match s {
        TestStatement::Call { flow, .. } => {
            index.flow(&flow.name.name, flow.version.as_ref().map(|v| v.value))
        }
        _ => None,
    });
    flows_from(index, start.collect())
}

/// `start`, and every flow they call or jump to, and so on, each once.
fn flows_from<'w>(index: &Index<'w>, mut todo: Vec<Def<'w, Flow>>) -> Vec<Def<'w, Flow>> {
    let mut reached: Vec<Def<'w, Flow>> = Vec::new();
    while let Some(def) = todo.pop() {
        if reached.iter().any(|r| std::ptr::eq(r.node, def.node)) {
            continue;
        }
        reached.push(def);
        for node in FlowGraph::new(def.file, def.node).stages {
            let stage = node.stage;
            let mut targets: Vec<&FlowCall> = Vec::new();
            if let SourceKind::CallFlow(c) | SourceKind::Jump(c) = &stage.body.source.kind {
                targets.push(c);
            }
            for op in &stage.body.ops {
                if let OpKind::Jump(c) | OpKind::CallFlow(c) | OpKind::EachCall(c) = &op.kind {
                    targets.push(c);
                }
            }
            todo.extend(targets.into_iter().filter_map(|t| {
                index.flow(&t.name.name, t.version.as_ref().map(|v| v.value))
            }));
        }
    }
    reached
}

/// Every activity a run of `flow` can call: its stages', their compensations, its hooks', and
/// those of the flows it calls or jumps to.
pub fn reached_activities<'w>(index: &Index<'w>, flow: Def<'w, Flow>) -> BTreeSet<&'w str> {
    let mut reached = BTreeSet::new();
    for def in flows_from(index, vec![flow]) {
        for (_, hook) in FlowSettings::of_flow(def.file, def.node).hooks {
            if hook.value.name.name != "activate" {
                reached.insert(hook.value.name.name.as_str());
            }
        }
        for node in FlowGraph::new(def.file, def.node).stages {
            let stage = node.stage;
            reached.extend(activity_calls(stage).iter().map(|c| c.name.name.as_str()));
            let settings = StageSettings::of_stage(index, def.file, stage);
            if let Some(undo) = settings.compensate.value {
                reached.insert(undo.name.name.as_str());
            }
        }
    }
    reached.retain(|name| index.activity_by_name.contains_key(name));
    reached
}
