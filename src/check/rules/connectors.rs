//! `on NAME`: the connector a stage runs on is `default` or one of `wvflow.toml`'s (E0701),
//! and one this build can run (E0702). The file's own problems are found where it is read
//! (`crate::connectors`).

use crate::check::Ctx;
use crate::check::graph::FlowGraph;
use crate::connectors::{self, Lookup};
use crate::diagnostics::{Code, Diagnostic};

pub fn check_flow(ctx: &mut Ctx, graph: &FlowGraph) {
    let config = &ctx.workspace.connectors;
    let mut found = Vec::new();
    for node in &graph.stages {
        let stage = node.stage;
        let Some(on) = &stage.connector else {
            continue;
        };
        let name = on.name.as_str();
        match config.lookup(name) {
            Lookup::Default | Lookup::Broken => {}
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
                let mut d = Diagnostic::error(
                    Code::E0702,
                    graph.file,
                    on.span,
                    format!(
                        "stage `{}` runs on connector `{name}` ({}), which this build of wvflow cannot run yet",
                        stage.name.name, connector.kind
                    ),
                )
                .with_label(format!("a {} connector", connector.kind))
                .with_help(format!(
                    "only `default`, the embedded SQLite database, runs queries today: remove \
                     `on {name}` or write `on default`"
                ));
                if let Some(file) = config.file {
                    d = d.with_secondary(file, connector.span, "declared here");
                }
                found.push(d);
            }
            Lookup::Found(_) => {}
        }
    }
    for d in found {
        ctx.emit(d);
    }
}
