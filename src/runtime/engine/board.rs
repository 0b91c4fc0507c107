//! What a run knows of its stages as it goes, and how that changes: a stage becomes ready,
//! starts, ends; what it frees starts; a fork settles; a race is decided; the run ends. The
//! executor ([`super::execute`]) moves stages through it on its worker threads.

use super::saga::{compensate, not_compensated};
use super::stage::Started;
use super::{Context, StageSummary, Summary, final_stages};
use crate::plan::ir::*;
use crate::runtime::rules::{self, Before};
use crate::runtime::state::{RunState, StageState};
use crate::runtime::store::StoreConfig;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::frontier::Frontier;

/// What a run knows of its stages as it goes: their results and states, which have started,
/// the frontier of those that may start, each stage's cancel flag, and each race's winner.
pub(super) struct Board<'p, 'c> {
    pub flow: &'p FlowPlan,
    pub ctx: &'p Context<'c>,
    /// Each stage's place in the plan, by id.
    pub index: BTreeMap<&'p str, usize>,
    frontier: Frontier,
    upstream: Vec<Vec<usize>>,
    /// Each stage's own flag: set with the run's cancel, or alone for a race loser.
    stage_cancel: Vec<Arc<AtomicBool>>,
    states: BTreeMap<String, StageState>,
    results: Vec<Option<StageSummary>>,
    started: Vec<bool>,
    /// For a `first_success` stage: the upstream stage whose success decided its race.
    winner: Vec<Option<usize>>,
    /// Where each stage's own end falls in the run (the order of ends): what decides races
    /// and the saga's order.
    order: Vec<Option<i64>>,
    ends: i64,
    /// Each stage's own end (a fork's, before its branches settle it): what a saga reads.
    own: Vec<Option<StageState>>,
    /// A stage with `end` succeeded: nothing more starts.
    end_reached: bool,
    /// A stage's loop reached `continue_as_new`: nothing more starts, and the run ends
    /// `continued` once the running stages end.
    pub continuing: bool,
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
                rules::branches(s)
                    .filter_map(|b| index.get(b).copied())
                    .collect()
            })
            .collect();
        let priority = flow.stages.iter().map(|s| s.priority).collect();
        Board {
            flow,
            ctx,
            index,
            frontier: Frontier::new(upstream.clone(), branches, priority),
            upstream,
            stage_cancel: (0..n).map(|_| Arc::default()).collect(),
            states: BTreeMap::new(),
            results: vec![None; n],
            started: vec![false; n],
            winner: vec![None; n],
            order: vec![None; n],
            ends: 0,
            own: vec![None; n],
            end_reached: false,
            continuing: false,
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
                self.own_end(i, done.state);
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
            let before = Before {
                stopped: cancelled,
                end_reached: self.end_reached,
                // A race's losers are cancelled as it is decided (`Self::ended`).
                lost_race: false,
            };
            if let Some(state) = rules::unrun(&self.flow.stages[i], before, &self.states) {
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
    pub fn start(&mut self, i: usize, stores: &StoreConfig) -> Started {
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
        }
    }

    /// Stage `i` ended: reported, recorded, and what it frees may start. A stage cancelled
    /// because the flow's timeout passed failed.
    pub fn finish(&mut self, i: usize, mut summary: StageSummary, timed_out: bool) {
        if timed_out {
            rules::stopped_by_timeout(self.flow, &mut summary);
        }
        if let Some(p) = self.ctx.progress {
            p.stage_finished(&summary);
        }
        self.own_end(i, summary.state);
        let continued = summary.state == StageState::Continued;
        self.continuing |= continued;
        self.states
            .insert(self.flow.stages[i].id.clone(), summary.state);
        self.results[i] = Some(summary);
        // The stage goes on in the next run: what it frees starts there.
        if !continued {
            self.ended(i);
        }
    }

    /// The run's end: its state, the compensations a failure owes (a cancel's too, when
    /// asked), its final rows and the jumps it reached.
    pub fn conclude(self, stores: &StoreConfig, timed_out: bool) -> Summary {
        let (flow, ctx) = (self.flow, self.ctx);
        let results: Vec<StageSummary> = self.results.into_iter().flatten().collect();
        let cancelled = ctx.cancel.load(Ordering::Relaxed);
        let state = rules::run_state(flow, &results, cancelled, timed_out);
        let stages: Vec<&StagePlan> = if ctx.compensated.is_empty() {
            let succeeded = (0..flow.stages.len()).filter_map(|i| {
                let at = self.order[i]?;
                (self.own[i] == Some(StageState::Success)).then_some((&flow.stages[i], at))
            });
            rules::saga(state, ctx.compensate_on_cancel, succeeded)
        } else {
            // A saga taken up again owes what it recorded, in its order (latest first).
            ctx.compensated
                .iter()
                .rev()
                .filter_map(|c| flow.stages.iter().find(|s| s.id == c.stage))
                .collect()
        };
        let compensations = if stages.is_empty() {
            Vec::new()
        } else {
            match stores.connect() {
                Ok(mut store) => compensate(&mut store, ctx, &stages, state),
                // Never skipped silently: each compensation that could not run says why.
                Err(e) => not_compensated(ctx, &stages, &format!("cannot open the run store: {e}")),
            }
        };
        Summary {
            run_id: ctx.run_id.clone(),
            flow: flow.name.clone(),
            state,
            outputs: Some((stores.run_db.clone(), final_stages(flow, &results))),
            stages: results,
            compensations,
            next: if state == RunState::Success {
                ctx.jumps.lock().map(|j| j.clone()).unwrap_or_default()
            } else {
                Vec::new()
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
                    let winner = rules::race_winner(&stages[race], |id| {
                        let u = *self.index.get(id)?;
                        Some((*self.states.get(id)?, self.order[u]?))
                    })
                    .and_then(|w| self.index.get(w).copied());
                    let Some(winner) = winner else { continue };
                    self.winner[race] = Some(winner);
                    for l in self.upstream[race].clone() {
                        if l == winner || self.results[l].is_some() {
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

    /// Stage `i`'s own work ended in `state` (a fork's, before its branches settle it).
    fn own_end(&mut self, i: usize, state: StageState) {
        self.own[i] = Some(state);
        self.order[i] = Some(self.ends);
        self.ends += 1;
        if state == StageState::Success {
            self.end_reached |= rules::ends_flow(&self.flow.stages[i]);
        }
    }

    /// A fork that settled: it fails when one of its branches failed and does not ignore it.
    fn settle_fork(&mut self, s: usize) {
        let Some(own) = self.results[s].as_ref() else {
            return;
        };
        let states = &self.states;
        let fork = &self.flow.stages[s];
        let Some(settled) = rules::settle_fork(self.flow, fork, own, |b| states.get(b).copied())
        else {
            return;
        };
        self.states.insert(fork.id.clone(), settled.state);
        if let Some(p) = self.ctx.progress {
            p.stage_finished(&settled);
        }
        self.results[s] = Some(settled);
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

