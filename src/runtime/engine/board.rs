//! What a run knows of its stages as it goes, and how that changes: a stage becomes ready,
//! starts, ends; what it frees starts; a fork settles; a race is decided; the run ends. The
//! executor ([`super::execute`]) moves stages through it on its worker threads.

use super::saga::{compensate, not_compensated};
use super::stage::Started;
use super::{Context, StageSummary, Summary, final_stages, holds};
use crate::runtime::error::StageError;
use std::time::Duration;
use crate::plan::ir::*;
use crate::runtime::state::{RunState, StageState};
use crate::runtime::store::StoreConfig;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::frontier::Frontier;

/// Whether a stage stops the flow when it succeeds (`end`).
fn ends_flow(stage: &StagePlan) -> bool {
    stage.steps.iter().any(|s| matches!(s, Step::End))
}

/// What a run knows of its stages as it goes: their results and states, which have started,
/// the frontier of those that may start, each stage's cancel flag, and each race's winner.
pub(super) struct Board<'p, 'c> {
    pub flow: &'p FlowPlan,
    pub ctx: &'p Context<'c>,
    /// Each stage's place in the plan, by id.
    pub index: BTreeMap<&'p str, usize>,
    frontier: Frontier,
    upstream: Vec<Vec<usize>>,
    /// A fork stage's branches; a fork is settled (its final state known) once they are all
    /// terminal, and only then do stages after the fork see it.
    branches: Vec<Vec<usize>>,
    /// Each stage's own flag: set with the run's cancel, or alone for a race loser.
    stage_cancel: Vec<Arc<AtomicBool>>,
    states: BTreeMap<String, StageState>,
    results: Vec<Option<StageSummary>>,
    started: Vec<bool>,
    /// For a `first_success` stage: the upstream stage whose success decided its race.
    winner: Vec<Option<usize>>,
    /// The stages that succeeded, in the order they ended: what a saga compensates.
    completed: Vec<usize>,
    /// A stage with `end` succeeded: nothing more starts.
    end_reached: bool,
}

impl<'p, 'c> Board<'p, 'c> {
    pub fn new(flow: &'p FlowPlan, ctx: &'p Context<'c>) -> Self {
        let n = flow.stages.len();
        let index: BTreeMap<&str, usize> = flow
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let upstream: Vec<Vec<usize>> = flow
            .stages
            .iter()
            .map(|s| {
                s.upstream
                    .iter()
                    .filter_map(|e| index.get(e.stage.as_str()).copied())
                    .collect()
            })
            .collect();
        let branches: Vec<Vec<usize>> = flow
            .stages
            .iter()
            .map(|s| {
                s.steps
                    .iter()
                    .filter_map(|step| match step {
                        Step::Fork { branches } => Some(
                            branches
                                .iter()
                                .filter_map(|b| index.get(b.as_str()).copied())
                                .collect::<Vec<_>>(),
                        ),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            })
            .collect();
        let priority = flow.stages.iter().map(|s| s.priority).collect();
        Board {
            flow,
            ctx,
            index,
            frontier: Frontier::new(upstream.clone(), branches.clone(), priority),
            upstream,
            branches,
            stage_cancel: (0..n).map(|_| Arc::default()).collect(),
            states: BTreeMap::new(),
            results: vec![None; n],
            started: vec![false; n],
            winner: vec![None; n],
            completed: Vec::new(),
            end_reached: false,
        }
    }

    /// What an earlier execution of the run did (`runs resume`): stages that succeeded, and
    /// race losers cancelled by a decided race.
    pub fn take_up(&mut self, resumed: &[StageSummary]) {
        for done in resumed {
            if let Some(&i) = self.index.get(done.stage.as_str()) {
                self.started[i] = true;
                self.states.insert(done.stage.clone(), done.state);
                self.results[i] = Some(done.clone());
                if done.state == StageState::Success {
                    self.completed.push(i);
                    self.end_reached |= ends_flow(&self.flow.stages[i]);
                }
            }
        }
        let known: Vec<usize> = (0..self.results.len())
            .filter(|&i| self.results[i].is_some())
            .collect();
        for i in known {
            self.ended(i);
        }
    }

    /// Sets every stage's own cancel flag: the run was cancelled.
    pub fn cancel_every_stage(&self) {
        self.stage_cancel
            .iter()
            .for_each(|flag| flag.store(true, Ordering::SeqCst));
    }

    /// The next stage to start, lowest priority number first, then in plan order. A stage
    /// whose trigger does not hold (any, after a cancel or an `end`) ends unrun on the way.
    /// `None` when no stage is ready, or when one is but there is no `room` (it stays ready).
    pub fn next_ready(&mut self, cancelled: bool, room: bool) -> Option<usize> {
        while let Some(i) = self.frontier.pop() {
            if self.started[i] {
                continue;
            }
            let stage = &self.flow.stages[i];
            let not_run = if cancelled {
                Some(StageState::Cancelled)
            } else if self.end_reached || !holds(&stage.trigger, &self.states) {
                Some(StageState::Skipped)
            } else {
                None
            };
            if let Some(state) = not_run {
                self.unrun(i, state);
                continue;
            }
            if !room {
                self.frontier.offer(i);
                return None;
            }
            return Some(i);
        }
        None
    }

    /// Stage `i` starts: reported, and given what it needs of the run.
    pub fn start(&mut self, i: usize, stores: &StoreConfig) -> Started<'static> {
        self.started[i] = true;
        let stage = &self.flow.stages[i];
        if let Some(p) = self.ctx.progress {
            p.stage_started(&stage.id);
        }
        // What the stage needs of the run's states: its upstream stages'.
        let states = stage
            .upstream
            .iter()
            .filter_map(|e| Some((e.stage.clone(), *self.states.get(&e.stage)?)))
            .collect();
        Started {
            workspace_db: stores.workspace_db.clone(),
            states,
            cancel: self.stage_cancel[i].clone(),
            // The first upstream to succeed is the one read (its race was decided when it
            // succeeded: the others were stopped then).
            first_success: self.winner[i].map(|u| self.flow.stages[u].id.clone()),
            fan: None,
        }
    }

    /// Stage `i` ended: reported, recorded, and what it frees may start. A stage cancelled
    /// because the flow's timeout passed failed.
    pub fn finish(&mut self, i: usize, mut summary: StageSummary, timed_out: bool) {
        if timed_out && summary.state == StageState::Cancelled {
            summary.state = StageState::Failed;
            let timeout = Duration::from_millis(self.flow.timeout_ms.unwrap_or(0));
            summary.error = Some(StageError::FlowTimeout(timeout));
        }
        if let Some(p) = self.ctx.progress {
            p.stage_finished(&summary);
        }
        let stage = &self.flow.stages[i];
        if summary.state == StageState::Success {
            self.completed.push(i);
            self.end_reached |= ends_flow(stage);
        }
        self.states.insert(stage.id.clone(), summary.state);
        self.results[i] = Some(summary);
        self.ended(i);
    }

    /// The run's end: its state, the compensations a failure owes (a cancel's too, when
    /// asked), its final rows and the jumps it reached.
    pub fn conclude(self, stores: &StoreConfig, timed_out: bool) -> Summary {
        let (flow, ctx) = (self.flow, self.ctx);
        let results: Vec<StageSummary> = self.results.into_iter().flatten().collect();
        let cancelled = ctx.cancel.load(Ordering::Relaxed);
        let failed = cancelled
            || timed_out
            || flow
                .stages
                .iter()
                .zip(&results)
                .any(|(s, r)| r.state == StageState::Failed && s.on_failure == OnFailure::Fail);
        let compensations = if failed && (!cancelled || ctx.compensate_on_cancel) {
            let stages: Vec<&StagePlan> = if ctx.compensated.is_empty() {
                self.completed.iter().map(|&i| &flow.stages[i]).collect()
            } else {
                // A saga taken up again owes what it recorded, in its order (latest first).
                ctx.compensated
                    .iter()
                    .rev()
                    .filter_map(|c| flow.stages.iter().find(|s| s.id == c.stage))
                    .collect()
            };
            let ending = if cancelled {
                RunState::Cancelled
            } else {
                RunState::Failed
            };
            match stores.connect() {
                Ok(mut store) => compensate(&mut store, ctx, &stages, ending),
                // Never skipped silently: each compensation that could not run says why.
                Err(e) => not_compensated(ctx, &stages, &format!("cannot open the run store: {e}")),
            }
        } else {
            Vec::new()
        };
        Summary {
            run_id: ctx.run_id.clone(),
            flow: flow.name.clone(),
            state: if cancelled {
                RunState::Cancelled
            } else if failed {
                RunState::Failed
            } else {
                RunState::Success
            },
            outputs: Some((stores.run_db.clone(), final_stages(flow, &results))),
            stages: results,
            compensations,
            next: if failed {
                Vec::new()
            } else {
                ctx.jumps.lock().map(|j| j.clone()).unwrap_or_default()
            },
        }
    }

    /// Stage `i` will not run: it ends in `state` (skipped or cancelled).
    fn unrun(&mut self, i: usize, state: StageState) {
        self.started[i] = true;
        self.results[i] = Some(unrun(
            self.ctx,
            &self.flow.stages[i],
            state,
            &mut self.states,
        ));
        self.ended(i);
    }

    /// Stage `i` has ended (its result is recorded): what it frees may start; each fork it
    /// settles fails if a branch failed (and does not ignore it); and a success decides the
    /// races (`first_success`) it is the first to finish: the other racers still to end are
    /// cancelled now, those not started without running.
    fn ended(&mut self, i: usize) {
        let mut ends = vec![i];
        while let Some(e) = ends.pop() {
            let settled = self.frontier.end(e);
            for &s in &settled {
                self.settle_fork(s);
            }
            for s in std::iter::once(e).chain(settled) {
                if self.states.get(&self.flow.stages[s].id) != Some(&StageState::Success) {
                    continue;
                }
                let stages = &self.flow.stages;
                for race in self.frontier.succeeded(s, |k| stages[k].first_success) {
                    if self.winner[race].is_some() || self.started[race] {
                        continue;
                    }
                    self.winner[race] = Some(s);
                    for l in self.upstream[race].clone() {
                        if l == s || self.results[l].is_some() {
                            continue;
                        }
                        if self.started[l] {
                            self.stage_cancel[l].store(true, Ordering::SeqCst);
                        } else {
                            self.started[l] = true;
                            let loser = &self.flow.stages[l];
                            self.results[l] = Some(unrun(
                                self.ctx,
                                loser,
                                StageState::Cancelled,
                                &mut self.states,
                            ));
                            ends.push(l);
                        }
                    }
                }
            }
        }
    }

    /// A fork that settled fails when one of its branches failed and does not ignore it.
    fn settle_fork(&mut self, s: usize) {
        let (flow, results) = (self.flow, &mut self.results);
        let failed = self.branches[s].iter().find(|&&b| {
            results[b]
                .as_ref()
                .is_some_and(|r| r.state == StageState::Failed)
                && flow.stages[b].on_failure == OnFailure::Fail
        });
        if let (Some(&b), Some(result)) = (failed, results[s].as_mut())
            && result.state == StageState::Success
        {
            // A failed stage keeps no rows: readers that still run (`trigger: all_done`)
            // read none, and `runs rows` has none to show.
            result.state = StageState::Failed;
            result.rows = 0;
            result.error = Some(StageError::BranchFailed {
                branch: flow.stages[b].id.clone(),
            });
            self.states
                .insert(flow.stages[s].id.clone(), StageState::Failed);
            if let Some(p) = self.ctx.progress {
                p.stage_finished(result);
            }
        }
    }
}


/// A stage that will not run, ended in `state` (skipped or cancelled) and reported.
fn unrun(
    ctx: &Context,
    stage: &StagePlan,
    state: StageState,
    states: &mut BTreeMap<String, StageState>,
) -> StageSummary {
    states.insert(stage.id.clone(), state);
    let summary = StageSummary::new(stage, state);
    if let Some(p) = ctx.progress {
        p.stage_finished(&summary);
    }
    summary
}

