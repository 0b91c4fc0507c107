//! `on NAME`: the connector a stage runs on is `default` or one of `wvflow.toml`'s (E0701),
//! one this build can run (E0702), and its steps are ones the connector runs (E0710); a
//! `from schema.table` reads a connector's table. What a connector's dialect cannot express
//! is the binder's to find (E0709). The file's own problems are found where it is read
//! (`crate::connectors`).

use crate::check::Ctx;
use crate::check::graph::FlowGraph;
use crate::connectors::{self, ConnectorKind, Lookup};
use crate::diagnostics::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{OpKind, SourceKind, SourceRef, Stage};

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    let config = &ctx.workspace.connectors;
    let mut found = Vec::new();
    for node in &graph.stages {
        let stage = node.stage;
        let Some(on) = &stage.connector else {
            found.extend(server_tables(graph.file, stage, "default"));
            continue;
        };
        let name = on.name.as_str();
        match config.lookup(name) {
            Lookup::Default => found.extend(server_tables(graph.file, stage, name)),
            Lookup::Broken => {}
            Lookup::Unknown => {
                let d = Diagnostic::error(
                    Code::E0701,
                    graph.file,
                    on.span,
                    format!("stage `{}` runs on an unknown connector `{name}`", stage.name.name),
                )
                .with_label("no such connector");
                let otherwise = Some(match config.file {
                    Some(_) => format!(
                        "declare it in {} as `[connectors.{name}]`, or run the stage on `default`",
                        connectors::FILE_NAME
                    ),
                    None => format!(
                        "the workspace has no {}: only `default` (the embedded SQLite database) is known",
                        connectors::FILE_NAME
                    ),
                });
                found.push(crate::check::with_suggestion(
                    d,
                    name,
                    config.names(),
                    otherwise,
                ));
            }
            Lookup::Found(connector) if !connectors::runs_here(connector) => {
                let (why, help) = connectors::not_run_why(connector.kind);
                let mut d = Diagnostic::error(
                    Code::E0702,
                    graph.file,
                    on.span,
                    format!(
                        "stage `{}` runs on connector `{name}` ({}), {why}",
                        stage.name.name, connector.kind
                    ),
                )
                .with_label(format!("a {} connector", connector.kind))
                .with_help(help.replace("NAME", name));
                if let Some(file) = config.file {
                    d = d.with_secondary(file, connector.span, "declared here");
                }
                found.push(d);
            }
            Lookup::Found(connector) => {
                for (span, what) in server_steps(stage, connector.kind) {
                    found.push(
                        Diagnostic::error(
                            Code::E0710,
                            graph.file,
                            span,
                            format!(
                                "stage `{}` runs on connector `{name}`, which cannot run {what}",
                                stage.name.name
                            ),
                        )
                        .with_label(format!("not on `{name}`"))
                        .with_help(
                            "a stage on a server reads stages and the server's tables (`from \
                             s`, `from schema.table`, `join`), runs `where`, `select`, `join`, \
                             `group by`, `order by`, `limit` and `save to` there: do the rest \
                             in a stage on `default` before or after it",
                        ),
                    );
                }
            }
        }
    }
    for d in found {
        ctx.emit(d);
    }
}

/// The steps of a stage on a server that this build does not run there, each with its
/// place and what it is. DuckDB reads CSV files itself (`read_csv`).
fn server_steps(stage: &Stage, kind: ConnectorKind) -> Vec<(Span, &'static str)> {
    let unshippable = |r: &SourceRef, span: Span| match r {
        SourceRef::File(path) if kind == ConnectorKind::Duckdb => {
            match crate::file_format::Format::of(std::path::Path::new(path.value.as_str())) {
                crate::file_format::Format::Csv => None,
                _ => Some((span, "a data file other than CSV")),
            }
        }
        other => unshippable(other, span),
    };
    let mut refused = Vec::new();
    let source = &stage.body.source;
    match &source.kind {
        SourceKind::From(refs) => match refs.as_slice() {
            [single] => refused.extend(unshippable(single, source.span)),
            _ => refused.push((source.span, "`from` several sources")),
        },
        SourceKind::Merge(_) => refused.push((source.span, "`merge`")),
        SourceKind::Activity(_) => refused.push((source.span, "an activity call")),
        SourceKind::CallFlow(_) | SourceKind::Jump(_) => {
            refused.push((source.span, "a flow call or jump"))
        }
        SourceKind::Wait(_) | SourceKind::WaitUntil(_) => refused.push((source.span, "a wait")),
    }
    // A key is kept with the rows it gave: on a server the stage's `save to` would already
    // have been written when a key over its rows finds them recorded.
    if let Some(key) = stage.config.as_ref().and_then(|c| c.get("idempotency_key")) {
        refused.push((key.span(), "an `idempotency_key`"));
    }
    for op in &stage.body.ops {
        match &op.kind {
            OpKind::Join(join) => refused.extend(unshippable(&join.source, op.span)),
            kind if kind.is_relational() => {}
            OpKind::SaveTo(_) => {}
            _ => refused.push((op.span, "this operator (only queries and `save to`)")),
        }
    }
    refused
}

/// A source a stage on a server cannot read (it reads stages and the server's tables).
fn unshippable(r: &SourceRef, span: Span) -> Option<(Span, &'static str)> {
    match r {
        SourceRef::Name(_) | SourceRef::Table { .. } => None,
        SourceRef::File(_) => Some((span, "a data file")),
        SourceRef::Failed(_) => Some((span, "`failed(stage)`")),
        SourceRef::Values { .. } => Some((span, "inline rows")),
    }
}

/// `from schema.table` (or a `join` of one) on `default`: a connector's table, read only by a
/// stage on that connector.
fn server_tables(file: crate::source::FileId, stage: &Stage, on: &str) -> Vec<Diagnostic> {
    crate::check::model::graph::source_refs(stage)
        .into_iter()
        .filter_map(|r| match r {
            SourceRef::Table { schema, table } => Some(
                Diagnostic::error(
                    Code::E0710,
                    file,
                    schema.span.join(table.span),
                    format!(
                        "stage `{}` reads `{}.{}`, a table of a server, but runs on `{on}`",
                        stage.name.name, schema.name, table.name
                    ),
                )
                .with_label("a server's table")
                .with_help(
                    "run the stage on the connector whose table it is (`stage s on pg = from \
                     schema.table`)",
                ),
            ),
            _ => None,
        })
        .collect()
}
