//! What a test's run can reach: flows, and the activities it may call.

use super::*;

/// The flows a test's run can reach: its flow, and those that flow calls or jumps to, and so
/// on. Outlines keep what this reads, so a lean workspace knows which flows' trees a test's
/// checks need in full.
pub fn flows_reached<'w>(index: &Index<'w>, test: &Test) -> Vec<Def<'w, Flow>> {
    let mut todo: Vec<Def<'w, Flow>> = test
        .statements
        .iter()
        .filter_map(|s| match s {
            TestStatement::Call { flow, .. } => {
                index.flow(&flow.name.name, flow.version.as_ref().map(|v| v.value))
            }
            _ => None,
        })
        .collect();
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
    let mut flows_seen: BTreeSet<(&str, Option<u32>)> = BTreeSet::new();
    let mut todo = vec![flow];
    while let Some(def) = todo.pop() {
        let key = (def.node.name.name.as_str(), def.node.version.as_ref().map(|v| v.value));
        if !flows_seen.insert(key) {
            continue;
        }
        for (_, hook) in FlowSettings::of_flow(def.file, def.node).hooks {
            if hook.value.name.name != "activate" {
                reached.insert(hook.value.name.name.as_str());
            }
        }
        let graph = FlowGraph::new(def.file, def.node);
        for node in &graph.stages {
            let stage = node.stage;
            reached.extend(activity_calls(stage).iter().map(|c| c.name.name.as_str()));
            if let Some(undo) = StageSettings::of_stage(index, def.file, stage).compensate.value {
                reached.insert(undo.name.name.as_str());
            }
            let mut targets: Vec<&FlowCall> = Vec::new();
            if let SourceKind::CallFlow(c) | SourceKind::Jump(c) = &stage.body.source.kind {
                targets.push(c);
            }
            for op in &stage.body.ops {
                if let OpKind::Jump(c) | OpKind::CallFlow(c) | OpKind::EachCall(c) = &op.kind {
                    targets.push(c);
                }
            }
            for target in targets {
                if let Some(next) = index.flow(&target.name.name, target.version.as_ref().map(|v| v.value)) {
                    todo.push(next);
                }
            }
        }
    }
    reached.retain(|name| index.activity_by_name.contains_key(name));
    reached
}
