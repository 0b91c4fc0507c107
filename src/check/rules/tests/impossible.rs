//! Expectations that can never hold (E0805): contradicting each other, or ruled out by the
//! test's mocks.

use super::*;

/// The activities every mock of which fails: every call of them fails, whatever the retries.
pub(super) fn always_failing(test: &Test) -> BTreeSet<&str> {
    let mut mocks: BTreeMap<&str, bool> = BTreeMap::new();
    for statement in &test.statements {
        match statement {
            TestStatement::Mock(mock) => {
                let fails = matches!(mock.outcome, MockOutcome::Fails(_));
                *mocks.entry(&mock.activity.name).or_insert(true) &= fails;
            }
            TestStatement::Real { activities, .. } => {
                for a in activities {
                    mocks.insert(&a.name, false);
                }
            }
            _ => {}
        }
    }
    mocks.into_iter().filter(|(_, f)| *f).map(|(a, _)| a).collect()
}

/// Expectations the test's mocks make impossible: a stage that calls an activity every mock of
/// which fails never succeeds, and neither does a stage that reads it with the default
/// trigger (it is skipped); such a stage neither succeeds nor has rows.
pub(super) fn never_succeeding(ctx: &mut Ctx, file: FileId, test: &Test, graph: &FlowGraph) {
    let failing = always_failing(test);
    if failing.is_empty() {
        return;
    }
    // Why each stage never succeeds: the activity whose mocks all fail, at the root.
    let mut why: Vec<Option<String>> = vec![None; graph.stages.len()];
    // Stages come in order of writing, which may not be the order of reading: settle.
    loop {
        let mut changed = false;
        for (i, node) in graph.stages.iter().enumerate() {
            if why[i].is_some() || node.fork_parent.is_some() {
                continue;
            }
            let stage = node.stage;
            let calls = activity_calls(stage);
            let each = stage.body.ops.iter().any(|op| matches!(op.kind, OpKind::Each(_) | OpKind::While(_)));
            if let Some(call) = calls.iter().find(|c| failing.contains(c.name.name.as_str()))
                && !each
            {
                why[i] = Some(format!("every mock of `{}` fails", call.name.name));
            } else if plain_trigger(stage)
                && let Some(up) = graph.reads[i].iter().find(|e| why[e.to].is_some())
            {
                why[i] = Some(format!("it reads `{}`, which never succeeds", graph.name(up.to)));
            }
            changed |= why[i].is_some();
        }
        if !changed {
            break;
        }
    }
    for statement in &test.statements {
        let TestStatement::Expect(expect) = statement else { continue };
        let Expectation::Stage { stage, fact } = &expect.what else { continue };
        let Some(Some(reason)) = graph.index_of(&stage.name).map(|i| why[i].clone()) else {
            continue;
        };
        let succeeds = matches!(fact, StageFact::State(state) if state.name == "success");
        if succeeds || has_rows(fact) {
            ctx.emit(
                Diagnostic::error(
                    Code::E0805,
                    file,
                    expect.span,
                    format!("this can never hold: stage `{}` never succeeds in this test", stage.name),
                )
                .with_label(reason)
                .with_help("expect what the mocks make happen, or mock a call that succeeds (`on attempts 1 to 2` fails only those)"),
            );
        }
    }
}

/// A stage that runs only when everything it reads succeeded: no `if`, no `trigger:`, no
/// `on_failure:`.
pub(super) fn plain_trigger(stage: &Stage) -> bool {
    stage.trigger.is_none()
        && stage
            .config
            .as_ref()
            .is_none_or(|c| c.get("trigger").is_none() && c.get("on_failure").is_none())
}

/// Expectations of one stage that cannot all hold: a stage that never ran has no rows and
/// made no attempt.
pub(super) fn contradictions(ctx: &mut Ctx, file: FileId, test: &Test) {
    let expects = || {
        test.statements.iter().filter_map(|s| match s {
            TestStatement::Expect(e) => match &e.what {
                Expectation::Stage { stage, fact } => Some((stage, fact, e.span)),
                _ => None,
            },
            _ => None,
        })
    };
    for (stage, fact, span) in expects() {
        let StageFact::State(state) = fact else { continue };
        if !matches!(state.name.as_str(), "skipped" | "cancelled") {
            continue;
        }
        for (other, fact, other_span) in expects() {
            let attempted = matches!(fact, StageFact::Attempts(n) if n.value > 0);
            let impossible = other.name == stage.name
                && (has_rows(fact) || attempted && state.name == "skipped");
            if impossible {
                ctx.emit(
                    Diagnostic::error(
                        Code::E0805,
                        file,
                        other_span,
                        format!("this can never hold: the test expects stage `{}` {}", stage.name, state.name),
                    )
                    .with_label("never holds")
                    .with_secondary(file, span, format!("`{}` is expected {} here", stage.name, state.name))
                    .with_help(format!("a {} stage has no rows and made no attempt: expect `rows 0`, or another state", state.name)),
                );
            }
        }
    }
}

/// Whether an expectation says the stage has rows.
fn has_rows(fact: &StageFact) -> bool {
    match fact {
        StageFact::Rows(RowsExpect::Count(n)) => n.value > 0,
        StageFact::Rows(RowsExpect::Exactly {
            rows: TestRows::Inline { rows, .. },
            ..
        }) => !rows.is_empty(),
        _ => false,
    }
}
