//! Lowering: a checked flow to its [`Plan`]. Every later step (interpreter, exporters) reads
//! the plan, never the syntax tree.

use super::ir::*;
use super::sql::{self, Select, Writer, quote_ident};
use crate::vocabulary::{ActivationTarget, StateWord, TriggerRule};
use crate::arguments::assign_call;
use crate::check::settings::{FlowSettings, PoolSettings, StageSettings};
use crate::check::{Def, FlowGraph, Index, values};
use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::ast::{self, Arg, Condition, ExprKind, OpKind, SourceKind, SourceRef};
use crate::workspace::Workspace;
use std::collections::{BTreeMap, BTreeSet};

pub fn lower(workspace: &Workspace, index: &Index, def: Def<'_, ast::Flow>) -> Plan {
    let flow = def.node;
    let graph = FlowGraph::new(def.file, flow);
    let flow_params: BTreeSet<String> = flow
        .params
        .iter()
        .map(|p| p.name.name.to_string())
        .collect();
    let (signals, signal_defaults, queries) = signals_and_queries(def, &flow_params);
    let wv_file = workspace.sources.get(def.file).path.clone();
    let pipelines = crate::check::shapes::Shapes::new(&graph, &wv_file).all();
    let lowering = Lowering {
        workspace,
        index,
        graph: &graph,
        pipelines,
        flow_params: &flow_params,
        signals: &signal_defaults,
        route_filters: route_filters(&graph, &flow_params),
        failed_read: graph
            .stages
            .iter()
            .flat_map(|node| crate::check::model::graph::failed_reads(node.stage))
            .map(|(name, _)| name)
            .collect(),
        continue_as_new: FlowSettings::of_flow(def.file, flow).continue_as_new.value,
    };
    let stages: Vec<StagePlan> = topological_order(&graph)
        .into_iter()
        .map(|i| lowering.stage(i))
        .collect();
    let settings = FlowSettings::of_flow(def.file, flow);
    let schedule = schedule_of(&settings);
    let hooks = settings
        .hooks
        .iter()
        .map(|(event, call)| Hook {
            event: *event,
            action: lowering.action(call.value),
        })
        .collect();
    Plan {
        plan_version: PLAN_VERSION,
        flow: FlowPlan {
            name: flow.name.name.to_string(),
            version: flow.version.as_ref().map(|v| v.value),
            params: flow
                .params
                .iter()
                .map(|p| ParamPlan {
                    name: p.name.name.to_string(),
                    ty: p.ty.value.into(),
                    default: p.default.as_ref().map(json_value),
                })
                .collect(),
            schedule,
            concurrency: settings.concurrency.value,
            max_parallel: settings.max_parallel.value,
            timeout_ms: settings.timeout.value.map(millis),
            keep_runs: settings.keep_runs.value,
            hooks,
            depends_on: flow.depends_on.iter().map(|d| d.name.to_string()).collect(),
            start_condition: flow.condition.as_ref().map(cond_of),
            stages,
            origin: origin(workspace, def.file, flow.name.span),
            signals,
            queries,
        },
    }
}

/// The flow's signals and queries as SQL, each with the type the binder gives its
/// expression (a signal, that of its initial value; a query, that of its expression over
/// parameters and signals), and the signals' initial values as queries read them.
fn signals_and_queries(
    def: Def<'_, ast::Flow>,
    flow_params: &BTreeSet<String>,
) -> (
    Vec<NamedSql>,
    BTreeMap<String, sql::SignalSql>,
    Vec<NamedSql>,
) {
    let flow = def.node;
    let param_types: Vec<(&str, crate::value::ValueType)> = flow
        .params
        .iter()
        .map(|p| (p.name.name.as_str(), p.ty.value.into()))
        .collect();
    let signal_types = crate::check::binder::signal_types(flow);
    let query_scope = crate::check::binder::Scope {
        values: &param_types,
        signals: &signal_types,
        run_values: true,
        run_state: true,
        row: None,
        place: "a `query`",
    };
    let named = |wanted: fn(&ast::Member) -> Option<&ast::NamedExpr>, signals| {
        flow.members
            .iter()
            .filter_map(wanted)
            .map(|m| {
                let mut w = Writer::new(flow_params).typed(&flow.params);
                let ty = match signals {
                    Some(signals) => {
                        w = w.with_signals(signals);
                        crate::check::binder::Binder::new(def.file).bind(&m.value, &query_scope)
                    }
                    None => signal_types
                        .iter()
                        .find(|(n, _)| *n == m.name.name)
                        .map_or(crate::value::ValueType::Any, |(_, ty)| *ty),
                };
                NamedSql {
                    name: m.name.name.to_string(),
                    sql: Sql {
                        text: w.expr(&m.value),
                        params: w.take_params(),
                    },
                    ty,
                }
            })
            .collect::<Vec<_>>()
    };
    let signals = named(
        |m| match m {
            ast::Member::Signal(s) => Some(s),
            _ => None,
        },
        None,
    );
    let signal_defaults: BTreeMap<String, sql::SignalSql> = signals
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                sql::SignalSql {
                    initial: s.sql.text.clone(),
                    ty: s.ty,
                },
            )
        })
        .collect();
    let queries = named(
        |m| match m {
            ast::Member::Query(q) => Some(q),
            _ => None,
        },
        Some(&signal_defaults),
    );
    (signals, signal_defaults, queries)
}

/// The flow's schedule, when it has one: a cron pattern or an interval.
fn schedule_of(settings: &FlowSettings) -> Option<Schedule> {
    let cron = settings.schedule.value.clone();
    let interval_ms = settings.interval.value.map(millis);
    (cron.is_some() || interval_ms.is_some()).then(|| Schedule {
        cron,
        interval_ms,
        timezone: settings.timezone.value.clone(),
        catchup: settings.catchup.value,
    })
}

fn origin(workspace: &Workspace, file: FileId, span: Span) -> Origin {
    let source = workspace.sources.get(file);
    let (line, column) = source.line_col(span.start as usize);
    Origin {
        file: source.name.clone(),
        line: line as u32,
        column: column as u32,
        start: span.start,
        end: span.end,
    }
}

/// A literal as JSON; anything else as its SQL text.
fn json_value(e: &ast::Expr) -> serde_json::Value {
    use serde_json::Value;
    match &e.kind {
        ExprKind::Int(n) => Value::from(*n),
        ExprKind::Float(x) => Value::from(*x),
        ExprKind::Str(s) | ExprKind::Time { value: s, .. } => Value::from(s.as_str()),
        ExprKind::Bool(b) => Value::from(*b),
        ExprKind::Duration { millis, .. } => Value::from(*millis),
        ExprKind::Null => Value::Null,
        _ => Value::from(Writer::new(&BTreeSet::new()).expr(e)),
    }
}

pub fn cond_of(c: &Condition) -> Cond {
    match c {
        Condition::State { target, state } => match StateWord::parse(&state.name) {
            Some(state) => Cond::State {
                stage: target.name.to_string(),
                state,
            },
            // The checker refused any other word (E0107) before anything is lowered; were
            // one to come through, the condition never holds rather than guess.
            None => Cond::Not {
                arg: Box::new(Cond::True),
            },
        },
        Condition::Not(inner, _) => Cond::Not {
            arg: Box::new(cond_of(inner)),
        },
        Condition::And(a, b) => Cond::And {
            args: vec![cond_of(a), cond_of(b)],
        },
        Condition::Or(a, b) => Cond::Or {
            args: vec![cond_of(a), cond_of(b)],
        },
    }
}

/// Stages in dependency order; among ready stages, the one defined first (Kahn's algorithm
/// with a min-heap: n log n).
fn topological_order(graph: &FlowGraph) -> Vec<usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = graph.stages.len();
    let mut waiting = vec![0usize; n];
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, count) in waiting.iter_mut().enumerate() {
        let upstream: BTreeSet<usize> = graph
            .upstream(i)
            .map(|e| e.to)
            .filter(|&u| u != i)
            .collect();
        *count = upstream.len();
        for u in upstream {
            downstream[u].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        // A cycle cannot reach here (the checker refuses it); take the rest in order if it does.
        let i = match ready.pop() {
            Some(Reverse(i)) => i,
            None => match (0..n).find(|&i| !done[i]) {
                Some(i) => i,
                None => break,
            },
        };
        if done[i] {
            continue;
        }
        done[i] = true;
        order.push(i);
        for &d in &downstream[i] {
            waiting[d] = waiting[d].saturating_sub(1);
            if waiting[d] == 0 && !done[d] {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

/// For each route stage and target: the filter selecting the target's rows (first match wins).
fn route_filters(
    graph: &FlowGraph,
    flow_params: &BTreeSet<String>,
) -> BTreeMap<(String, String), String> {
    let mut filters = BTreeMap::new();
    for node in &graph.stages {
        for op in &node.stage.body.ops {
            let OpKind::Route(route) = &op.kind else {
                continue;
            };
            let mut w = Writer::new(flow_params).typed(&graph.flow.params);
            let route_name = node.stage.name.name.to_string();
            if let Some(by) = &route.by {
                let bucket = format!("((({}) % 100) + 100) % 100", w.expr(by));
                let mut low = 0i64;
                for case in &route.cases {
                    let share = match case.when.kind {
                        ExprKind::Int(p) => p,
                        _ => 0,
                    };
                    let filter = format!("{bucket} >= {low} AND {bucket} < {}", low + share);
                    low += share;
                    filters.insert((route_name.clone(), case.target.name.to_string()), filter);
                }
            } else {
                let mut earlier: Vec<String> = Vec::new();
                for case in &route.cases {
                    let this = format!("COALESCE(({}), FALSE)", w.expr(&case.when));
                    let filter = earlier
                        .iter()
                        .map(|e| format!("NOT {e}"))
                        .chain(std::iter::once(this.clone()))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    filters.insert((route_name.clone(), case.target.name.to_string()), filter);
                    earlier.push(this);
                }
                if let Some(otherwise) = &route.otherwise {
                    let filter = if earlier.is_empty() {
                        "TRUE".to_string()
                    } else {
                        format!("NOT ({})", earlier.join(" OR "))
                    };
                    filters.insert((route_name.clone(), otherwise.name.to_string()), filter);
                }
            }
        }
    }
    filters
}

/// The most operators one query of a stage holds (see [`Lowering::steps`]).
const QUERY_OPS: usize = 64;

struct Lowering<'a, 'w> {
    workspace: &'a Workspace,
    index: &'a Index<'w>,
    graph: &'a FlowGraph<'w>,
    /// Per stage: the rows each operator reads, as the binder knows them.
    pipelines: Vec<crate::check::shapes::Pipeline>,
    flow_params: &'a BTreeSet<String>,
    signals: &'a BTreeMap<String, sql::SignalSql>,
    route_filters: BTreeMap<(String, String), String>,
    /// Stages whose failed items another stage reads (`failed(stage)`).
    failed_read: BTreeSet<&'w str>,
    /// The flow's `continue_as_new`: its loops' unless they set their own.
    continue_as_new: Option<u64>,
}

impl Lowering<'_, '_> {
    fn writer(&self) -> Writer<'_> {
        Writer::new(self.flow_params)
            .typed(&self.graph.flow.params)
            .with_signals(self.signals)
    }

    fn stage(&self, i: usize) -> StagePlan {
        let node = &self.graph.stages[i];
        let stage = node.stage;
        let settings = self.settings(stage);
        let retry = settings.retry_policy();
        let timeout_ms = settings.timeout.value.map(millis);
        let steps = self.steps(i, &settings);
        let (trigger, upstream) = self.trigger(i, &settings);
        let kind = kind_of(stage, &steps);
        let routed_from = self.routed_from(stage, &upstream);
        let mut w = self.writer();
        // The key reads the row the checker bound it over: its columns keep their types
        // (`'k-' || _.flag` is `k-true`, as the activity sees the flag).
        let key_row = crate::check::rules::exprs::key_input(stage, &self.pipelines[i]);
        w.reading(key_row.as_ref().map(|(_, row)| row.as_ref()));
        let idempotency_key = settings.idempotency_key.value.map(|e| Sql {
            text: w.expr(e),
            params: w.take_params(),
        });
        let key_reads_row = std::mem::take(&mut w.reads_row);
        let idempotency_per_item = crate::plan::looped::all_steps(&steps)
            .any(|s| matches!(s, Step::Each { .. } | Step::EachCall { .. }));
        let idempotency_per_iteration = settings
            .idempotency_key
            .value
            .is_some_and(|key| crate::check::key_per_iteration(stage, key));
        let compensation = settings
            .compensate
            .value
            .and_then(|call| self.invocation(call));
        StagePlan {
            id: stage.name.name.to_string(),
            kind,
            upstream,
            trigger,
            steps,
            timeout_ms,
            schedule_timeout_ms: settings.schedule_timeout.value.map(millis),
            heartbeat_ms: settings.heartbeat.value.map(millis),
            priority: settings.priority.value,
            on_failure: settings.on_failure.value.clone(),
            compensation,
            idempotency_per_item: idempotency_per_item && idempotency_key.is_some(),
            idempotency_reads_row: key_reads_row
                && !idempotency_per_item
                && !idempotency_per_iteration,
            idempotency_per_iteration,
            idempotency_key,
            first_success: first_success(&settings, stage),
            pool: settings.pool.value.and_then(|name| {
                let def = self.index.pool_by_name.get(name)?;
                Some(PoolPlan {
                    name: name.to_string(),
                    slots: PoolSettings::of_pool(def.file, def.node).slots.value?,
                })
            }),
            reads_failed: crate::check::model::graph::failed_reads(stage)
                .into_iter()
                .map(|(name, _)| name.to_string())
                .collect(),
            routed_from,
            fork_parent: node.fork_parent.map(|p| self.graph.name(p).to_string()),
            connector: stage.connector.as_ref().map(|c| c.name.to_string()),
            ship_in: self.ship_in(stage),
            retry,
            origin: origin(self.workspace, self.graph.file, stage.name.span),
        }
    }

    /// The dialect of the database the stage runs on.
    fn dialect(&self, stage: &ast::Stage) -> sql::Dialect {
        let Some(on) = &stage.connector else {
            return sql::Dialect::Sqlite;
        };
        match self.workspace.connectors.lookup(&on.name) {
            crate::connectors::Lookup::Found(c) => match c.kind {
                crate::connectors::ConnectorKind::Postgres => sql::Dialect::Postgres,
                crate::connectors::ConnectorKind::Duckdb => sql::Dialect::Duckdb,
                crate::connectors::ConnectorKind::Sqlite => sql::Dialect::Sqlite,
            },
            _ => sql::Dialect::Sqlite,
        }
    }

    /// The stages a stage on a server reads, each as the run database gives its rows to it
    /// (a route's filter, the first upstream to succeed), in the order first read.
    fn ship_in(&self, stage: &ast::Stage) -> Vec<ShipIn> {
        if !self.dialect(stage).is_connector() {
            return Vec::new();
        }
        let mut ships: Vec<ShipIn> = Vec::new();
        for (name, _) in crate::check::model::graph::read_names(stage) {
            let table = sql::shipped_name(name);
            if self.graph.index_of(name).is_none() || ships.iter().any(|s| s.table == table) {
                continue;
            }
            ships.push(ShipIn {
                table,
                sql: Sql {
                    text: format!("SELECT * FROM {}", self.read_stage_here(stage, name)),
                    params: Vec::new(),
                },
            });
        }
        ships
    }

    /// The settings in force: the defaults, the stage's activity's, then the stage's own.
    fn settings<'s>(&'s self, stage: &'s ast::Stage) -> StageSettings<'s> {
        StageSettings::of_stage(self.index, self.graph.file, stage)
    }

    /// The compiled trigger and the upstream edges with the states they wait for.
    fn trigger(&self, i: usize, settings: &StageSettings) -> (Cond, Vec<Edge>) {
        let stage = self.graph.stages[i].stage;
        // Stages whose `on_failure` names this one: it runs when they fail.
        let failing: Vec<String> = self
            .graph
            .failing_into(i)
            .into_iter()
            .map(|x| self.graph.name(x).to_string())
            .collect();
        let mut upstream: Vec<String> = Vec::new();
        for edge in self.graph.upstream(i) {
            let name = self.graph.name(edge.to).to_string();
            if edge.to != i && !upstream.contains(&name) {
                upstream.push(name);
            }
        }
        let (mut cond, mut labels): (Cond, BTreeMap<String, Vec<Requirement>>) = match &stage.trigger {
            Some(t) => {
                let mut labels = BTreeMap::new();
                collect_states(t, false, &mut labels);
                (cond_of(t), labels)
            }
            None => {
                let rule = settings.trigger.value;
                let over: Vec<String> = upstream
                    .iter()
                    .filter(|u| !failing.contains(u))
                    .cloned()
                    .collect();
                let (cond, label) = rule_cond(rule, &over);
                let labels = over
                    .iter()
                    .map(|u| (u.clone(), vec![label]))
                    .collect();
                (cond, labels)
            }
        };
        for f in &failing {
            if !labels.contains_key(f) {
                let failed = Cond::State {
                    stage: f.clone(),
                    state: StateWord::Failed,
                };
                cond = match cond {
                    Cond::True => failed,
                    Cond::And { mut args } => {
                        args.push(failed);
                        Cond::And { args }
                    }
                    other => Cond::And {
                        args: vec![other, failed],
                    },
                };
                labels.insert(f.clone(), vec![Requirement::Reaches(StateWord::Failed)]);
            }
        }
        let edges = upstream
            .into_iter()
            .map(|u| {
                let requires = labels
                    .get(&u)
                    .cloned()
                    .unwrap_or_else(|| vec![Requirement::Reaches(StateWord::Done)]);
                Edge {
                    stage: u,
                    requires: Requires(requires),
                }
            })
            .collect();
        (cond, edges)
    }

    fn steps(&self, i: usize, settings: &StageSettings) -> Vec<Step> {
        let stage = self.graph.stages[i].stage;
        let pipeline = &self.pipelines[i];
        let mut at_stage = StageSteps {
            stage,
            settings,
            retry: settings.retry_policy(),
            timeout_ms: settings.timeout.value.map(millis),
            // A stage that waits until a condition over its rows holds reads its files anew
            // at each poll (a file sensor); any other stage reads a run's snapshot of them.
            watched: stage
                .body
                .ops
                .iter()
                .any(|op| matches!(op.kind, OpKind::WaitUntil(_)))
                .then(Vec::new),
            steps: Vec::new(),
        };
        let mut w = self.writer().in_dialect(self.dialect(stage));
        let mut query = self.source(&mut at_stage, &mut w);
        let types_at = |at: Option<usize>| -> Vec<crate::value::ValueType> {
            let shape = match at {
                Some(at) => pipeline.before.get(at).and_then(|r| r.shape.as_ref()),
                None => pipeline.output.as_ref(),
            };
            shape.map_or_else(Vec::new, |cs| cs.iter().map(|c| c.ty).collect())
        };
        let mut relational_ops = 0;
        for (at, op) in stage.body.ops.iter().enumerate() {
            w.reading(pipeline.before.get(at));
            // After a join, a qualified name means the column it became.
            w.joined = pipeline
                .first_join
                .filter(|&j| at > j)
                .and_then(|_| pipeline.before.get(at).cloned());
            if op.kind.is_relational() {
                // A long pipeline is cut into queries of at most QUERY_OPS operators, each
                // reading the one before as `_input`: one nest of thousands would pass SQLite's
                // limits on nesting and expression depth.
                if relational_ops >= QUERY_OPS
                    && let Some(q) = query.take_if(|q| !q.joins_here())
                {
                    let alias = q.alias().to_string();
                    at_stage.steps.push(Step::Query {
                        sql: Sql {
                            text: q.render(),
                            params: w.take_params(),
                        },
                        types: types_at(Some(at)),
                    });
                    query = Some(Select::from("_input".to_string(), &alias));
                    relational_ops = 0;
                }
                relational_ops += 1;
                let q = query.get_or_insert_with(|| Select::from("_input".to_string(), "_input"));
                self.relational(&mut at_stage, (at, op), q, &mut w, pipeline);
                continue;
            }
            relational_ops = 0;
            if let Some(q) = query.take() {
                at_stage.steps.push(Step::Query {
                    sql: Sql {
                        text: q.render(),
                        params: w.take_params(),
                    },
                    types: types_at(Some(at)),
                });
            }
            if let Some(step) = self.effect(&at_stage, op, &mut w) {
                at_stage.steps.push(step);
            }
        }
        if let Some(q) = query.take() {
            at_stage.steps.push(Step::Query {
                sql: Sql {
                    text: q.render(),
                    params: w.take_params(),
                },
                types: types_at(None),
            });
        }
        crate::plan::looped::nest_body(at_stage.steps)
    }

    /// The stage's source: a query to build on (`from` one table), or its first step.
    fn source(&self, at: &mut StageSteps, w: &mut Writer) -> Option<Select> {
        let (stage, settings) = (at.stage, at.settings);
        let (retry, timeout_ms) = (&at.retry, at.timeout_ms);
        let steps = &mut at.steps;
        let watched = &mut at.watched;
        match &stage.body.source.kind {
            SourceKind::From(refs) => match refs.as_slice() {
                [single] => {
                    let (table, alias) = self.source_table(stage, single, w, watched.as_mut());
                    Some(Select::from(table, &alias))
                }
                many => {
                    let inputs = many
                        .iter()
                        .map(|r| {
                            let table = self.source_table(stage, r, w, None).0;
                            Sql {
                                text: format!("SELECT * FROM {table}"),
                                params: w.take_params(),
                            }
                        })
                        .collect();
                    steps.push(Step::Union { inputs });
                    None
                }
            },
            SourceKind::Merge(names) => {
                let inputs = names
                    .iter()
                    .map(|n| Sql {
                        text: format!("SELECT * FROM {}", self.read_stage(stage, &n.name)),
                        params: Vec::new(),
                    })
                    .collect();
                steps.push(Step::Union { inputs });
                None
            }
            SourceKind::Activity(call) => {
                if let Some(invocation) = self.stage_invocation(call, retry, timeout_ms) {
                    steps.push(Step::Invoke { invocation });
                }
                None
            }
            SourceKind::CallFlow(call) => {
                steps.push(Step::Call {
                    target: self.flow_ref(call),
                    parent_close: settings.parent_close.value,
                });
                None
            }
            SourceKind::Jump(call) => {
                steps.push(Step::Jump {
                    target: self.flow_ref(call),
                });
                None
            }
            SourceKind::Wait(e) => {
                steps.push(wait(w, e));
                None
            }
            SourceKind::WaitUntil(e) => {
                steps.push(wait_until(w, e, settings, false));
                None
            }
        }
    }

    /// A relational operator (`where`, `select`, `join`, `group by`, ...) added to the query.
    fn relational(
        &self,
        at_stage: &mut StageSteps,
        (at, op): (usize, &ast::Op),
        q: &mut Select,
        w: &mut Writer,
        pipeline: &crate::check::shapes::Pipeline,
    ) {
        let stage = at_stage.stage;
        let watched = &mut at_stage.watched;
                match &op.kind {
            OpKind::Where(e) => q.filter(w.expr(e)),
            OpKind::Select(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| match &i.alias {
                        Some(a) => {
                            format!("{} AS {}", w.expr(&i.expr), quote_ident(&a.name))
                        }
                        None => {
                            let sql = w.expr(&i.expr);
                            // A parameter or signal is written as SQL that SQLite
                            // would name `:id`: the column keeps the name written.
                            match &i.expr.kind {
                                ExprKind::Name(n) if sql != quote_ident(&n.name) => {
                                    format!("{sql} AS {}", quote_ident(&n.name))
                                }
                                _ => sql,
                            }
                        }
                    })
                    .collect();
                q.select(items.join(", "));
            }
            OpKind::Join(join) => {
                let (table, alias) =
                    self.source_table(stage, &join.source, w, watched.as_mut());
                w.joined = None;
                let on = w.expr(&join.on);
                match pipeline.joins.get(&at) {
                    // Known sides: one copy of each equi-joined key, other shared
                    // names renamed; the result is the left side from now on.
                    Some(kept) => {
                        let left = q.alias().to_string();
                        let list: Vec<String> = kept
                            .iter()
                            .map(|(side, column, name)| {
                                format!(
                                    "{}.{} AS {}",
                                    quote_ident(side),
                                    quote_ident(column),
                                    quote_ident(name)
                                )
                            })
                            .collect();
                        let joined = format!(
                            "(SELECT {} FROM ({}) AS {} JOIN {table} AS {} ON {on})",
                            list.join(", "),
                            q.render(),
                            quote_ident(&left),
                            quote_ident(&alias)
                        );
                        *q = Select::from(joined, &left);
                    }
                    None => q.join(table, &alias, on),
                }
            }
            OpKind::GroupBy(keys) => q.group_by(keys.iter().map(|k| w.expr(k)).collect()),
            OpKind::OrderBy(keys) => q.order_by(
                keys.iter()
                    .map(|k| sql::order_key(w.expr(&k.expr), k.descending))
                    .collect(),
            ),
            OpKind::Limit(n) => q.limit(n.value),
            _ => {}
        }
    }

    /// A step that is not a query: a call, a fan-out, a route, a wait, a delivery, ...
    fn effect(&self, at: &StageSteps, op: &ast::Op, w: &mut Writer) -> Option<Step> {
        let (stage, settings) = (at.stage, at.settings);
        let (retry, timeout_ms) = (&at.retry, at.timeout_ms);
        let watched = &at.watched;
        Some(match &op.kind {
            OpKind::Activity(call) => Step::Invoke {
                invocation: self.stage_invocation(call, retry, timeout_ms)?,
            },
            OpKind::Each(call) => {
                let invocation = self.stage_invocation(call, retry, timeout_ms)?;
                Step::Each {
                    invocation,
                    fan: self.fan_out(stage, settings),
                }
            }
            OpKind::Route(route) => Step::Route {
                targets: route
                    .cases
                    .iter()
                    .map(|c| &c.target)
                    .chain(&route.otherwise)
                    .map(|t| RouteTarget {
                        stage: t.name.to_string(),
                        filter: self
                            .route_filters
                            .get(&(stage.name.name.to_string(), t.name.to_string()))
                            .cloned()
                            .unwrap_or_default(),
                    })
                    .collect(),
            },
            OpKind::Fork(children) => Step::Fork {
                branches: children.iter().map(|c| c.name.name.to_string()).collect(),
            },
            OpKind::Wait(e) => wait(w, e),
            OpKind::WaitUntil(e) => {
                let mut step = wait_until(w, e, settings, true);
                if let Step::WaitUntil { watched: files, .. } = &mut step {
                    *files = watched.clone().unwrap_or_default();
                }
                step
            }
            OpKind::Activate(a) => Step::Activate {
                activation: self.activation(activation_target(&a.target.value), &a.options),
            },
            OpKind::SaveTo(parts) => Step::SaveTo {
                table: parts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
            },
            OpKind::Jump(call) => Step::Jump {
                target: self.flow_ref(call),
            },
            OpKind::CallFlow(call) => Step::Call {
                target: self.flow_ref(call),
                parent_close: settings.parent_close.value,
            },
            OpKind::EachCall(call) => Step::EachCall {
                target: self.flow_ref(call),
                parent_close: settings.parent_close.value,
                fan: self.fan_out(stage, settings),
            },
            OpKind::End => Step::End,
            OpKind::While(condition) => Step::While {
                condition: match crate::check::loop_activity(condition) {
                    Some(call) => LoopCondition::Invoke {
                        invocation: self.stage_invocation(call, retry, timeout_ms)?,
                    },
                    None => crate::plan::looped::condition(w, condition),
                },
                body: Vec::new(),
                max_iterations: settings.max_iterations.value,
                continue_as_new: settings.continue_as_new.value.or(self.continue_as_new),
            },
            _ => return None,
        })
    }

    /// The table (or subquery) for a source, and the alias it goes by. A file is read from
    /// a table of its own, added to `watched`, when it is given.
    fn source_table(
        &self,
        stage: &ast::Stage,
        r: &SourceRef,
        w: &mut Writer,
        watched: Option<&mut Vec<WatchedFile>>,
    ) -> (String, String) {
        match r {
            SourceRef::Name(n) if self.graph.index_of(&n.name).is_some() => {
                (self.read_stage(stage, &n.name), n.name.to_string())
            }
            SourceRef::Name(n) => (quote_ident(&n.name), n.name.to_string()),
            SourceRef::Table { schema, table } => (
                format!("{}.{}", quote_ident(&schema.name), quote_ident(&table.name)),
                table.name.to_string(),
            ),
            SourceRef::Failed(n) => (
                sql::stage_table(&sql::failed_table(&n.name)),
                format!("{}_failed", n.name),
            ),
            SourceRef::File(path) => {
                let base = std::path::Path::new(path.value.as_str())
                    .file_stem()
                    .map_or("file".to_string(), |s| s.to_string_lossy().into_owned());
                // DuckDB reads a CSV file itself, in the stage's query.
                if self.dialect(stage) == sql::Dialect::Duckdb {
                    return (sql::duckdb_csv(&path.value), base);
                }
                match watched {
                    Some(watched) => {
                        let table = format!("watch:{}", path.value);
                        let sql = format!("temp.{}", quote_ident(&table));
                        if !watched.iter().any(|f| f.table == table) {
                            watched.push(WatchedFile {
                                path: path.value.to_string(),
                                table,
                            });
                        }
                        (sql, base)
                    }
                    None => (sql::file_table(&path.value), base),
                }
            }
            SourceRef::Values { rows, alias, .. } => {
                let rows: Vec<String> = rows
                    .iter()
                    .map(|row| {
                        format!(
                            "({})",
                            row.iter().map(|e| w.expr(e)).collect::<Vec<_>>().join(", ")
                        )
                    })
                    .collect();
                let values = format!("VALUES {}", rows.join(", "));
                match alias {
                    Some(a) => {
                        let columns: Vec<String> = a
                            .columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| format!("column{} AS {}", i + 1, quote_ident(&c.name)))
                            .collect();
                        (
                            format!("(SELECT {} FROM ({values}))", columns.join(", ")),
                            a.table.name.to_string(),
                        )
                    }
                    None => (format!("({values})"), "values".to_string()),
                }
            }
        }
    }

    /// The route stages `stage` reads as one of their targets, with the filter of its rows.
    /// Only a stage that reads nothing but routes is skipped when they give it no rows: one
    /// that also reads another stage (`merge split, manual_orders`) has rows of its own.
    fn routed_from(&self, stage: &ast::Stage, upstream: &[Edge]) -> Vec<RouteInput> {
        let target = stage.name.name.to_string();
        let routed = |name: &str| {
            self.route_filters
                .contains_key(&(name.to_string(), target.clone()))
        };
        // Every source read: a stage, a file, a table or inline values.
        let routed_ref = |r: &SourceRef| matches!(r, SourceRef::Name(n) if routed(&n.name));
        let only_routes = match &stage.body.source.kind {
            SourceKind::From(refs) => refs.iter().all(routed_ref),
            SourceKind::Merge(names) => names.iter().all(|n| routed(&n.name)),
            _ => false,
        } && stage.body.ops.iter().all(|op| match &op.kind {
            OpKind::Join(join) => routed_ref(&join.source),
            _ => true,
        });
        if !only_routes {
            return Vec::new();
        }
        upstream
            .iter()
            .filter_map(|edge| {
                let key = (edge.stage.clone(), stage.name.name.to_string());
                Some(RouteInput {
                    route: edge.stage.clone(),
                    filter: self.route_filters.get(&key)?.clone(),
                })
            })
            .collect()
    }

    /// Reading another stage: its table, filtered when this stage is one of its route targets.
    fn read_stage(&self, reader: &ast::Stage, stage: &str) -> String {
        // A stage on a server reads the rows shipped to it ([`Self::ship_in`]).
        let dialect = self.dialect(reader);
        if dialect.is_connector() {
            return sql::shipped_table(dialect, stage);
        }
        self.read_stage_here(reader, stage)
    }

    /// How `reader` reads `stage`'s rows in the run database.
    fn read_stage_here(&self, reader: &ast::Stage, stage: &str) -> String {
        let table = match self
            .route_filters
            .get(&(stage.to_string(), reader.name.name.to_string()))
        {
            Some(filter) => format!("(SELECT * FROM {} WHERE {filter})", sql::stage_table(stage)),
            None => sql::stage_table(stage),
        };
        if !first_success(&self.settings(reader), reader) {
            return table;
        }
        // Only the first upstream to succeed is read; another may have succeeded too.
        format!(
            "(SELECT * FROM {table} WHERE {} = {})",
            FIRST_SUCCESS_PARAM,
            sql::quote_str(stage)
        )
    }

    fn fan_out(&self, stage: &ast::Stage, settings: &StageSettings) -> FanOut {
        FanOut {
            concurrency: settings.concurrency.value,
            tolerated_failures: settings.tolerated_failures.value.clone(),
            keep_failed: self.failed_read.contains(stage.name.name.as_str()),
        }
    }

    fn stage_invocation(
        &self,
        call: &ast::Call,
        retry: &RetryPolicy,
        timeout_ms: Option<u64>,
    ) -> Option<Invocation> {
        let mut invocation = self.invocation(call)?;
        invocation.retry = retry.clone();
        invocation.timeout_ms = timeout_ms;
        Some(invocation)
    }

    /// An activity call with its arguments bound; `None` for an unknown activity.
    fn invocation(&self, call: &ast::Call) -> Option<Invocation> {
        let def = self.index.activity_by_name.get(call.name.name.as_str())?;
        let activity = def.node;
        let activity_params: BTreeSet<String> = activity
            .params
            .iter()
            .map(|p| p.name.name.to_string())
            .collect();
        let command = match &activity.command {
            ast::Command::Sh(text) => Command::Shell {
                text: text.value.to_string(),
            },
            ast::Command::Exec(args) => Command::Exec {
                argv: args
                    .iter()
                    .map(|a| match &a.kind {
                        ExprKind::Str(s) => ArgvItem::Literal(s.to_string()),
                        ExprKind::Name(n) if activity_params.contains(n.name.as_str()) => {
                            ArgvItem::Param(n.name.to_string())
                        }
                        _ => ArgvItem::Expr(TypedSql {
                            sql: Writer::for_activity(&activity_params).expr(a),
                            ty: crate::check::binder::Binder::new(def.file).bind(
                                a,
                                &crate::check::exprs::exec_scope(
                                    &crate::check::exprs::activity_params(activity),
                                ),
                            ),
                        }),
                    })
                    .collect(),
            },
        };
        // A hook's or a compensation's call runs with the activity's own settings.
        let settings = StageSettings::of_activity(def.file, activity);
        Some(Invocation {
            activity: activity.name.name.to_string(),
            command,
            bindings: self.bind(&activity.params, &call.args),
            retry: settings.retry_policy(),
            timeout_ms: settings.timeout.value.map(millis),
        })
    }

    /// Arguments bound to parameters in declaration order ([`crate::arguments::assign`]),
    /// defaults filling the rest.
    fn bind(&self, params: &[ast::Param], args: &[Arg]) -> Vec<Binding> {
        let mut w = self.writer();
        let assignment = assign_call(params, args);
        params
            .iter()
            .zip(assignment.args)
            .filter_map(|(p, arg)| {
                let value = arg.map(|a| &args[a].value).or(p.default.as_ref())?;
                let sql = w.expr(value);
                Some(Binding {
                    param: p.name.name.to_string(),
                    sql,
                    params: w.take_params(),
                    reads_row: std::mem::take(&mut w.reads_row),
                    ty: p.ty.value.into(),
                })
            })
            .collect()
    }

    /// A call of a flow, with the version it means: the one written, or else the highest the
    /// workspace has (what `wvflow run` starts), so that every reader of the plan (an
    /// exported run's tasks) starts the same flow.
    fn flow_ref(&self, call: &ast::FlowCall) -> FlowRef {
        let written = call.version.as_ref().map(|v| v.value);
        let target = self.index.flow(&call.name.name, written);
        let args = match target {
            Some(target) => self.bind(
                &target.node.params,
                call.args.as_deref().unwrap_or_default(),
            ),
            None => Vec::new(),
        };
        let version = target
            .and_then(|t| t.node.version.as_ref().map(|v| v.value))
            .or(written);
        FlowRef {
            flow: call.name.name.to_string(),
            version,
            args,
        }
    }

    fn action(&self, call: &ast::Call) -> Action {
        if call.name.name == "activate" {
            let target = call.args.first().and_then(|a| match &a.value.kind {
                ExprKind::Str(s) => Some(s.to_string()),
                _ => None,
            });
            let options: Vec<Arg> = call
                .args
                .iter()
                .filter(|a| a.name.is_some())
                .cloned()
                .collect();
            let target = target
                .as_deref()
                .map_or(ActivationTarget::Log, activation_target);
            return Action::Activate(self.activation(target, &options));
        }
        match self.invocation(call) {
            Some(invocation) => Action::Invoke(invocation),
            None => Action::Activate(self.activation(ActivationTarget::Log, &[])),
        }
    }
}

/// The target of a checked `activate`: the checker refused every other word.
fn activation_target(word: &str) -> ActivationTarget {
    ActivationTarget::parse(word).unwrap_or(ActivationTarget::Log)
}

impl Lowering<'_, '_> {
    /// Literal options as they are; the others as expressions evaluated when the rows are
    /// delivered (never their SQL text).
    fn activation(&self, target: ActivationTarget, options: &[Arg]) -> Activation {
        let mut w = self.writer();
        let mut literal = std::collections::BTreeMap::new();
        let mut computed = Vec::new();
        for o in options {
            let Some(name) = &o.name else { continue };
            match &o.value.kind {
                ExprKind::Int(_)
                | ExprKind::Float(_)
                | ExprKind::Str(_)
                | ExprKind::Bool(_)
                | ExprKind::Duration { .. }
                | ExprKind::Null => {
                    literal.insert(name.name.to_string(), json_value(&o.value));
                }
                _ => computed.push(Binding {
                    param: name.name.to_string(),
                    sql: w.expr(&o.value),
                    params: w.take_params(),
                    // The checker refuses `_` in `activate` options.
                    reads_row: false,
                    ty: crate::value::ValueType::Any,
                }),
            }
        }
        Activation {
            target,
            options: literal,
            computed,
        }
    }
}

/// Whether the stage starts at its first upstream's success (`trigger: first_success`).
fn first_success(settings: &StageSettings, stage: &ast::Stage) -> bool {
    stage.trigger.is_none() && settings.trigger.value == TriggerRule::FirstSuccess
}

/// What lowering one stage's steps carries from step to step.
struct StageSteps<'s> {
    stage: &'s ast::Stage,
    settings: &'s StageSettings<'s>,
    retry: RetryPolicy,
    timeout_ms: Option<u64>,
    /// The files a `wait until` stage reads anew at each poll.
    watched: Option<Vec<WatchedFile>>,
    steps: Vec<Step>,
}

/// `wait(d)`: a duration literal, or an expression of type duration (the checker refuses
/// anything else), evaluated when the wait starts.
fn wait(w: &mut Writer, e: &ast::Expr) -> Step {
    match values::duration(e) {
        Ok(d) => Step::Wait {
            ms: millis(d),
            duration: None,
        },
        Err(_) => Step::Wait {
            ms: 0,
            duration: Some(Sql {
                text: w.expr(e),
                params: w.take_params(),
            }),
        },
    }
}

/// `wait until COND`, over the input's rows (an operator) or over nothing (a source: an ETA
/// or a condition over parameters, signals and `now()`).
fn wait_until(w: &mut Writer, e: &ast::Expr, settings: &StageSettings, over_input: bool) -> Step {
    let from = if over_input { " FROM _input" } else { "" };
    let text = format!("SELECT EXISTS (SELECT 1{from} WHERE {})", w.expr(e));
    Step::WaitUntil {
        condition: Sql {
            text,
            params: w.take_params(),
        },
        poll_interval_ms: millis(settings.poll_interval.value),
        watched: Vec::new(),
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An Airflow trigger rule as a formula over the upstream stages, and the edge label.
fn rule_cond(rule: TriggerRule, upstream: &[String]) -> (Cond, Requirement) {
    let each = |state: StateWord| -> Vec<Cond> {
        upstream
            .iter()
            .map(|u| Cond::State {
                stage: u.clone(),
                state,
            })
            .collect()
    };
    let not_each = |state: StateWord| -> Vec<Cond> {
        each(state)
            .into_iter()
            .map(|c| Cond::Not { arg: Box::new(c) })
            .collect()
    };
    let all = |mut args: Vec<Cond>| match args.len() {
        0 => Cond::True,
        1 => args.remove(0),
        _ => Cond::And { args },
    };
    let any = |mut args: Vec<Cond>| match args.len() {
        1 => args.remove(0),
        _ => Cond::Or { args },
    };
    match rule {
        TriggerRule::AllSuccess => (all(each(StateWord::Success)), Requirement::Reaches(StateWord::Success)),
        TriggerRule::AllFailed => (all(each(StateWord::Failed)), Requirement::Reaches(StateWord::Failed)),
        TriggerRule::AllDone => (all(each(StateWord::Done)), Requirement::Reaches(StateWord::Done)),
        TriggerRule::OneSuccess => (any(each(StateWord::Success)), Requirement::Reaches(StateWord::Success)),
        TriggerRule::OneFailed => (any(each(StateWord::Failed)), Requirement::Reaches(StateWord::Failed)),
        TriggerRule::OneDone => (any(each(StateWord::Done)), Requirement::Reaches(StateWord::Done)),
        TriggerRule::NoneFailed => (all(not_each(StateWord::Failed)), Requirement::NotReaches(StateWord::Failed)),
        TriggerRule::NoneFailedMinOneSuccess => (
            all(vec![all(not_each(StateWord::Failed)), any(each(StateWord::Success))]),
            Requirement::NotReaches(StateWord::Failed),
        ),
        TriggerRule::NoneSkipped => (all(not_each(StateWord::Skipped)), Requirement::NotReaches(StateWord::Skipped)),
        TriggerRule::Always => (Cond::True, Requirement::Reaches(StateWord::Done)),
        // The executor starts the stage at the first success, without waiting for the rest.
        TriggerRule::FirstSuccess => (any(each(StateWord::Success)), Requirement::FirstSuccess),
    }
}

/// The states an `if` trigger names for each stage (`not ` before negated ones).
fn collect_states(c: &Condition, negated: bool, out: &mut BTreeMap<String, Vec<Requirement>>) {
    match c {
        Condition::State { target, state } => {
            // The checker refused any other word.
            let Some(state) = StateWord::parse(&state.name) else {
                return;
            };
            let label = if negated {
                Requirement::NotReaches(state)
            } else {
                Requirement::Reaches(state)
            };
            let states = out.entry(target.name.to_string()).or_default();
            if !states.contains(&label) {
                states.push(label);
            }
        }
        Condition::Not(inner, _) => collect_states(inner, !negated, out),
        Condition::And(a, b) | Condition::Or(a, b) => {
            collect_states(a, negated, out);
            collect_states(b, negated, out);
        }
    }
}

/// The kind of the stage's principal step: the first that is not a query.
fn kind_of(stage: &ast::Stage, steps: &[Step]) -> NodeKind {
    for step in steps {
        return match step {
            Step::Query { .. } | Step::Union { .. } | Step::SaveTo { .. } => continue,
            Step::Invoke { .. } => NodeKind::Activity,
            Step::Each { .. } | Step::EachCall { .. } => NodeKind::Each,
            Step::Route { .. } => NodeKind::Route,
            Step::Fork { .. } => NodeKind::Fork,
            Step::Wait { .. } => NodeKind::Wait,
            Step::WaitUntil { .. } => NodeKind::WaitUntil,
            Step::Activate { .. } => NodeKind::Activate,
            Step::Jump { .. } => NodeKind::Jump,
            Step::Call { .. } => NodeKind::Call,
            Step::End => NodeKind::End,
            Step::While { .. } => NodeKind::Loop,
        };
    }
    match stage.body.source.kind {
        SourceKind::Merge(_) => NodeKind::Merge,
        _ => NodeKind::Query,
    }
}
