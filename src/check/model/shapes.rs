//! Column shapes: the columns each stage's rows have, where they can be known before running
//! (inline values, CSV headers of files that exist, `select` lists, `group by`, joins and
//! unions of known shapes), and the row each operator's expressions are evaluated over.
//! Activity output, workspace tables and JSON files have shapes known only at run time.

use crate::check::binder::{Column, Row, Shape};
use crate::check::graph::FlowGraph;
use crate::syntax::ast::{
    BinaryOp, Expr, ExprKind, Join, OpKind, SelectItem, SourceKind, SourceRef, Stage,
};
use crate::value::ValueType;
use std::path::{Path, PathBuf};

/// A stage's body as the binder sees it: the row each operator reads, and the output.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    /// Per operator (aligned with `stage.body.ops`): the row its expressions are evaluated
    /// over. For `join`, both sides (for `on`); for a `select` after `group by`, the rows
    /// being grouped.
    pub before: Vec<Row>,
    pub output: Shape,
    /// For each `join` (by operator index) whose sides are known: the columns it keeps, as
    /// (side alias, column there, name in the result).
    pub joins: std::collections::BTreeMap<usize, Vec<(String, String, String)>>,
    /// The operator index of the first `join`: qualified names after it are renamed columns.
    pub first_join: Option<usize>,
}

/// The columns of a `call`ed child run's row.
pub const CALL_COLUMNS: [&str; 4] = ["child_run", "flow", "state", "last_stage"];

/// The columns `failed(stage)` starts with, before those of the failed item's input row.
pub const FAILED_COLUMNS: [(&str, ValueType); 3] = [
    ("item_index", ValueType::Int),
    ("exit_code", ValueType::Int),
    ("error", ValueType::String),
];

pub struct Shapes<'g, 'w> {
    graph: &'g FlowGraph<'w>,
    /// The `.wv` file's folder: relative file paths resolve here.
    base: PathBuf,
    /// Flow parameters and their types, for inline values that name them.
    params: Vec<(&'w str, ValueType)>,
    /// The flow's signals and their types, for `select` items that name them.
    signals: Vec<(&'w str, ValueType)>,
    pipelines: Vec<Option<Pipeline>>,
    busy: Vec<bool>,
    unknown: Pipeline,
    /// CSV headers read so far: several stages may read one file.
    headers: std::collections::HashMap<PathBuf, Shape>,
    /// The output of activities, when known from outside (a test's mocked rows).
    assumed: std::collections::BTreeMap<String, Shape>,
}

impl<'g, 'w> Shapes<'g, 'w> {
    pub fn new(graph: &'g FlowGraph<'w>, wv_file: &Path) -> Self {
        let n = graph.stages.len();
        Shapes {
            graph,
            base: wv_file.parent().map(Path::to_path_buf).unwrap_or_default(),
            params: graph
                .flow
                .params
                .iter()
                .map(|p| (p.name.name.as_str(), p.ty.value.into()))
                .collect(),
            signals: crate::check::binder::signal_types(graph.flow),
            pipelines: vec![None; n],
            busy: vec![false; n],
            unknown: Pipeline::default(),
            headers: Default::default(),
            assumed: Default::default(),
        }
    }

    /// Shapes where each of these activities prints rows of its shape (a test's mocks).
    pub fn assuming(mut self, assumed: std::collections::BTreeMap<String, Shape>) -> Self {
        self.assumed = assumed;
        self
    }

    /// The rows an activity call gives: known only when assumed.
    fn activity_row(&self, call: &crate::syntax::ast::Call) -> Row {
        match self.assumed.get(call.name.name.as_str()) {
            Some(shape) => Row::of(shape.clone(), &call.name.name),
            None => Row::unknown(),
        }
    }

    /// The pipeline of stage `i`.
    pub fn pipeline(&mut self, i: usize) -> &Pipeline {
        if self.pipelines[i].is_none() && !self.busy[i] {
            self.busy[i] = true;
            let pipeline = self.compute(self.graph.stages[i].stage);
            self.busy[i] = false;
            self.pipelines[i] = Some(pipeline);
        }
        // A stage in a cycle (reported by the structure rules) has an unknown shape.
        self.pipelines[i].as_ref().unwrap_or(&self.unknown)
    }

    /// Every stage's pipeline, by stage index.
    pub fn all(mut self) -> Vec<Pipeline> {
        for i in 0..self.pipelines.len() {
            self.pipeline(i);
        }
        self.pipelines
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    pub fn output(&mut self, i: usize) -> Shape {
        self.pipeline(i).output.clone()
    }

    fn compute(&mut self, stage: &Stage) -> Pipeline {
        let mut walk = Walk {
            row: self.source_row(&stage.body.source.kind),
            grouped: None,
            pipeline: Pipeline {
                before: Vec::with_capacity(stage.body.ops.len()),
                ..Pipeline::default()
            },
        };
        let mut looped = false;
        for (at, op) in stage.body.ops.iter().enumerate() {
            if matches!(op.kind, OpKind::While(_)) && !looped {
                looped = true;
                let row = self.loop_row(&walk, stage, at);
                walk.pipeline.before.push(row.clone());
                walk.row = row;
                continue;
            }
            self.op(&mut walk, stage, at);
        }
        // Each iteration's rows get their number.
        if looped {
            walk.row.shape = walk.row.shape.map(|columns| {
                let iteration = Column::new(crate::check::binder::ITERATION_COLUMN, ValueType::Int);
                columns.iter().cloned().chain([iteration]).collect()
            });
        }
        walk.pipeline.output = walk.row.shape;
        walk.pipeline
    }

    /// Operator `at` of `stage`, on the rows `walk` carries.
    fn op(&mut self, walk: &mut Walk, stage: &Stage, at: usize) {
        match &stage.body.ops[at].kind {
            OpKind::Join(join) => self.join(walk, at, join),
            OpKind::GroupBy(keys) => {
                self.group_by(walk, keys);
                return;
            }
            OpKind::Select(items) => self.select(walk, items),
            // A child run's final rows are known when it runs.
            OpKind::Activity(call) => walk.pass_on(self.activity_row(call)),
            OpKind::Each(_) | OpKind::EachCall(_) => walk.pass_on(Row::unknown()),
            OpKind::CallFlow(_) => walk.pass_on(call_row()),
            // `order by` right after `select` is part of the same SQL query: it may name
            // the selected columns and those they were selected from.
            OpKind::OrderBy(_)
                if at > 0 && matches!(stage.body.ops[at - 1].kind, OpKind::Select(_)) =>
            {
                walk.order_by_after_select(at)
            }
            _ => walk.pipeline.before.push(walk.row.clone()),
        }
        walk.grouped = None;
    }

    /// The rows a loop's condition and body read, at its `while` (operator `at`): the input the
    /// first time, what the body gave after. Only columns both have are sure to be there at
    /// every iteration; unknown when either is known only at run time.
    fn loop_row(&mut self, walk: &Walk, stage: &Stage, at: usize) -> Row {
        let input = walk.row.clone();
        let mut once = Walk {
            row: input.clone(),
            grouped: None,
            pipeline: walk.pipeline.clone(),
        };
        once.pipeline.before.push(input.clone());
        for body in at + 1..stage.body.ops.len() {
            if matches!(stage.body.ops[body].kind, OpKind::While(_)) {
                break;
            }
            self.op(&mut once, stage, body);
        }
        let shape = match (&input.shape, &once.row.shape) {
            (Some(first), Some(after)) => Some(
                first
                    .iter()
                    .filter_map(|c| {
                        let again = after.iter().find(|a| a.name == c.name)?;
                        let ty = if again.ty == c.ty { c.ty } else { ValueType::Any };
                        Some(Column::new(c.name.as_str(), ty))
                    })
                    .collect(),
            ),
            _ => None,
        };
        Row {
            shape,
            aliases: std::rc::Rc::from([]),
        }
    }

    /// The rows a stage's source gives its first operator.
    fn source_row(&mut self, source: &SourceKind) -> Row {
        match source {
            SourceKind::From(refs) => match refs.as_slice() {
                [single] => {
                    let (shape, alias) = self.source(single);
                    Row::of(shape, &alias)
                }
                many => {
                    let shapes: Vec<Shape> = many.iter().map(|r| self.source(r).0).collect();
                    Row::of(union_by_name(&shapes), "sources")
                }
            },
            SourceKind::Merge(inputs) => {
                let shapes: Vec<Shape> = inputs
                    .iter()
                    .map(|n| match self.graph.index_of(&n.name) {
                        Some(i) => self.output(i),
                        None => None,
                    })
                    .collect();
                Row::of(union_by_name(&shapes), "merged")
            }
            SourceKind::CallFlow(_) => call_row(),
            SourceKind::Activity(call) => self.activity_row(call),
            SourceKind::Jump(_) => Row::unknown(),
            // A delay has no rows, and no columns.
            SourceKind::Wait(_) | SourceKind::WaitUntil(_) => {
                Row::of(Some(Vec::new().into()), "wait")
            }
        }
    }

    /// `join`: `on` reads both sides; the result keeps the columns of `join_columns`.
    fn join(&mut self, walk: &mut Walk, at: usize, join: &Join) {
        let (right, right_alias) = self.source(&join.source);
        let row = &walk.row;
        let left_alias = row.aliases.first().cloned().unwrap_or_default();
        let both = match (&row.shape, &right) {
            (Some(l), Some(r)) => Some(
                l.iter()
                    .map(|c| with_origin(c, &left_alias))
                    .chain(r.iter().map(|c| with_origin(c, &right_alias)))
                    .collect(),
            ),
            _ => None,
        };
        let mut aliases = row.aliases.to_vec();
        aliases.push(right_alias.clone());
        let aliases: std::rc::Rc<[String]> = aliases.into();
        walk.pipeline.before.push(Row {
            shape: both,
            aliases: aliases.clone(),
        });
        let keys = equi_join_keys(&join.on, &left_alias, &right_alias);
        walk.pipeline.first_join.get_or_insert(at);
        let output = match (&row.shape, &right) {
            (Some(l), Some(r)) => {
                let kept = join_columns(l, &left_alias, r, &right_alias, &keys);
                let sources = kept_sources(&kept, l, &left_alias, &right_alias);
                walk.pipeline.joins.insert(at, sources);
                Some(kept.into())
            }
            _ => None,
        };
        walk.row = Row {
            shape: output,
            aliases,
        };
    }

    /// `group by`: the rows become the keys; a `select` right after reads the rows grouped.
    fn group_by(&self, walk: &mut Walk, keys: &[Expr]) {
        let row = walk.row.clone();
        walk.pipeline.before.push(row.clone());
        let shape = keys
            .iter()
            .map(|k| name_of(k).map(|n| self.typed(&row, n)))
            .collect::<Option<Vec<Column>>>()
            .filter(|_| row.shape.is_some())
            .map(Into::into);
        walk.row = Row {
            shape,
            aliases: row.aliases.clone(),
        };
        walk.grouped = Some(row);
    }

    fn select(&self, walk: &mut Walk, items: &[SelectItem]) {
        let over = walk.grouped.take().unwrap_or_else(|| walk.row.clone());
        walk.pipeline.before.push(over.clone());
        // A list of named items says the columns even over rows whose columns are
        // known only at run time (an activity's output): `n > 1 as big` is a
        // boolean whatever `n` is.
        walk.row = Row {
            shape: self.selected_columns(&over, items).map(Into::into),
            aliases: walk.row.aliases.clone(),
        };
    }

    /// The columns a `select` over `over` gives, if its items say them.
    fn selected_columns(&self, over: &Row, items: &[SelectItem]) -> Option<Vec<Column>> {
        let mut columns = Some(Vec::new());
        for item in items {
            let Some(out) = columns.as_mut() else { break };
            match (&item.alias, &item.expr.kind) {
                (None, ExprKind::Star) => match &over.shape {
                    Some(cs) => out.extend(cs.iter().map(|c| Column::new(&c.name, c.ty))),
                    None => columns = None,
                },
                (Some(alias), _) => out.push(Column::new(
                    alias.name.as_str(),
                    self.expr_type(over, &item.expr),
                )),
                (None, _) => match output_name(over, &item.expr) {
                    Some(name) => {
                        let ty = self.expr_type(over, &item.expr);
                        out.push(Column::new(name, ty));
                    }
                    None => columns = None,
                },
            }
        }
        columns
    }

    /// The type of an expression over `row` (names of parameters and columns).
    fn expr_type(&self, row: &Row, e: &Expr) -> ValueType {
        let scope = crate::check::binder::Scope {
            values: &self.params,
            signals: &self.signals,
            run_values: true,
            run_state: false,
            row: Some(row),
            place: "a select item",
        };
        crate::check::binder::Binder::new(self.graph.file).bind(e, &scope)
    }

    fn typed(&self, row: &Row, name: &str) -> Column {
        let ty = row
            .shape
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.name == name))
            .map_or(ValueType::Any, |c| c.ty);
        Column::new(name, ty)
    }

    /// The header of a CSV file, read once per flow.
    fn header(&mut self, path: PathBuf) -> Shape {
        self.headers
            .entry(path)
            .or_insert_with_key(|path| csv_header(path))
            .clone()
    }

    /// A source's shape and the alias its columns go by.
    pub fn source(&mut self, r: &SourceRef) -> (Shape, String) {
        match r {
            SourceRef::Failed(n) => {
                let input = self.graph.index_of(&n.name).and_then(|i| {
                    let stage = self.graph.stages[i].stage;
                    let at =
                        stage.body.ops.iter().position(|op| {
                            matches!(op.kind, OpKind::Each(_) | OpKind::EachCall(_))
                        })?;
                    self.pipeline(i).before.get(at)?.shape.clone()
                });
                let shape = input.map(|input| {
                    FAILED_COLUMNS
                        .iter()
                        .map(|(name, ty)| Column::new(*name, *ty))
                        .chain(input.iter().cloned())
                        .collect()
                });
                (shape, format!("{}_failed", n.name))
            }
            SourceRef::Name(n) => match self.graph.index_of(&n.name) {
                Some(i) => (self.output(i), n.name.to_string()),
                None => (
                    self.header(self.base.join(format!("{}.csv", n.name))),
                    n.name.to_string(),
                ),
            },
            // The server's table: its columns are known when the stage runs.
            SourceRef::Table { table, .. } => (None, table.name.to_string()),
            SourceRef::File(path) => {
                let alias = Path::new(path.value.as_str())
                    .file_stem()
                    .map_or("file".to_string(), |s| s.to_string_lossy().into_owned());
                let full = self.base.join(path.value.as_str());
                // As the runtime reads it: `x.JSON` is JSON too.
                let is_csv =
                    crate::file_format::Format::of(&full) == crate::file_format::Format::Csv;
                (if is_csv { self.header(full) } else { None }, alias)
            }
            SourceRef::Values { rows, alias, .. } => {
                let first = rows.first().map(Vec::as_slice).unwrap_or_default();
                let names: Vec<String> = match alias {
                    Some(a) => a.columns.iter().map(|c| c.name.to_string()).collect(),
                    None => (1..=first.len()).map(|i| format!("column{i}")).collect(),
                };
                let shape = names
                    .into_iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let ty = first.get(i).map_or(ValueType::Any, |e| {
                            let scope = crate::check::binder::Scope {
                                values: &self.params,
                                signals: &self.signals,
                                run_values: true,
                                run_state: false,
                                row: None,
                                place: "inline values",
                            };
                            crate::check::binder::Binder::new(self.graph.file).bind(e, &scope)
                        });
                        Column::new(name, ty)
                    })
                    .collect();
                let table = alias
                    .as_ref()
                    .map_or("values".to_string(), |a| a.table.name.to_string());
                (Some(shape), table)
            }
        }
    }
}

/// What [`Shapes::compute`] carries from one operator to the next.
struct Walk {
    /// The rows the next operator reads.
    row: Row,
    /// The rows a `group by` grouped, for a `select` right after it.
    grouped: Option<Row>,
    /// The pipeline so far (its output is set at the end).
    pipeline: Pipeline,
}

impl Walk {
    /// An operator that reads the rows and gives `next`.
    fn pass_on(&mut self, next: Row) {
        self.pipeline.before.push(self.row.clone());
        self.row = next;
    }

    /// `order by` at operator `at`, right after a `select`: it reads the selected columns,
    /// then those they were selected from that the select did not keep.
    fn order_by_after_select(&mut self, at: usize) {
        let selected_from = self.pipeline.before[at - 1].shape.clone();
        let shape = match (&self.row.shape, selected_from) {
            (Some(out), Some(input)) => Some(
                out.iter()
                    .cloned()
                    .chain(
                        input
                            .iter()
                            .filter(|c| !out.iter().any(|o| o.name == c.name))
                            .cloned(),
                    )
                    .collect(),
            ),
            _ => None,
        };
        self.pipeline.before.push(Row {
            shape,
            aliases: self.row.aliases.clone(),
        });
    }
}

/// For each column a join keeps: (side alias, column there, name in the result). The left
/// side's columns come first, in order.
fn kept_sources(
    kept: &[Column],
    left: &[Column],
    left_alias: &str,
    right_alias: &str,
) -> Vec<(String, String, String)> {
    kept.iter()
        .enumerate()
        .map(|(i, c)| {
            let (side, column) = if i < left.len() {
                (left_alias.to_string(), left[i].name.clone())
            } else {
                let (_, source) = c.origin.clone().unwrap_or_default();
                (right_alias.to_string(), source)
            };
            (side, column, c.name.clone())
        })
        .collect()
}

fn with_origin(c: &Column, alias: &str) -> Column {
    Column {
        origin: c
            .origin
            .clone()
            .or_else(|| Some((alias.to_string(), c.name.clone()))),
        ..c.clone()
    }
}

/// The name SQLite gives a select item without `as`: a column's own name. `None` for any
/// other expression (its name would be its text).
fn output_name(row: &Row, e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(n) => Some(n.name.to_string()),
        ExprKind::Field(f) if f.base.name == "_" => Some(f.field.name.to_string()),
        ExprKind::Field(f) => {
            let scope = crate::check::binder::Scope {
                values: &[],
                signals: &[],
                run_values: false,
                run_state: false,
                row: Some(row),
                place: "",
            };
            match scope.resolve_qualified(&f.base.name, &f.field.name) {
                crate::check::binder::Meaning::Column(name, _) => Some(name),
                _ => Some(f.field.name.to_string()),
            }
        }
        _ => None,
    }
}

fn name_of(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Name(n) => Some(&n.name),
        ExprKind::Field(f) => Some(&f.field.name),
        _ => None,
    }
}

/// Rows of several inputs together, column by column name: the union of the names in the
/// order first seen; a column an input lacks is null there.
pub fn union_by_name(shapes: &[Shape]) -> Shape {
    let mut columns: Vec<Column> = Vec::new();
    for shape in shapes {
        for c in shape.as_ref()?.iter() {
            match columns.iter_mut().find(|x| x.name == c.name) {
                Some(existing) if existing.ty != c.ty => existing.ty = ValueType::Any,
                Some(_) => {}
                None => columns.push(Column::new(&c.name, c.ty)),
            }
        }
    }
    Some(columns.into())
}

/// The columns a join keeps: every column of the left side; of the right side, every column
/// except a key joined by equality to the left column of the same name; a right column whose
/// name the left side already has is renamed `<right alias>_<name>`.
pub fn join_columns(
    left: &[Column],
    left_alias: &str,
    right: &[Column],
    right_alias: &str,
    keys: &[String],
) -> Vec<Column> {
    let mut out: Vec<Column> = left.iter().map(|c| with_origin(c, left_alias)).collect();
    for c in right {
        let taken = left.iter().any(|l| l.name == c.name);
        if taken && keys.contains(&c.name) {
            if let Some(key) = out.iter_mut().find(|o| o.name == c.name) {
                key.joined_key = Some((right_alias.to_string(), c.name.clone()));
            }
            continue;
        }
        let mut name = c.name.clone();
        if taken {
            name = format!("{right_alias}_{}", c.name);
            while out.iter().any(|o| o.name == name) {
                name.push('_');
            }
        }
        out.push(Column {
            name,
            ty: c.ty,
            origin: Some((right_alias.to_string(), c.name.clone())),
            joined_key: None,
        });
    }
    out
}

/// Columns joined by `left.x = right.x` in the conjunction of `on`.
pub fn equi_join_keys(on: &Expr, left_alias: &str, right_alias: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut stack = vec![on];
    while let Some(e) = stack.pop() {
        let ExprKind::Binary { op, lhs, rhs } = &e.kind else {
            continue;
        };
        match op {
            BinaryOp::And => {
                stack.push(lhs);
                stack.push(rhs);
            }
            BinaryOp::Eq => {
                if let (ExprKind::Field(a), ExprKind::Field(b)) = (&lhs.kind, &rhs.kind)
                    && a.field.name == b.field.name
                {
                    let sides = [a.base.name.as_str(), b.base.name.as_str()];
                    if sides.contains(&left_alias) && sides.contains(&right_alias) {
                        keys.push(a.field.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    keys
}

/// The header row of a CSV file that exists now; `None` when it does not (or is not CSV).
fn csv_header(path: &Path) -> Shape {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
    let headers = reader.headers().ok()?;
    Some(
        headers
            .iter()
            .map(|h| Column::new(h, ValueType::Any))
            .collect(),
    )
}

/// What a child run (`call F(...)`) leaves: one row describing it.
fn call_row() -> Row {
    Row::of(
        Some(
            CALL_COLUMNS
                .iter()
                .map(|c| Column::new(*c, ValueType::String))
                .collect(),
        ),
        "call",
    )
}
