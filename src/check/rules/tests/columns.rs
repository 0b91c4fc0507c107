//! Mocked rows without a column the flow reads (E0807).

use super::*;

/// Mocked rows without a column the flow reads from them: with each mocked activity's rows
/// taken as what it prints, the flow's expressions are bound again; a column they name that
/// the rows lack is an error at the mock.
pub(super) fn mocked_columns(ctx: &mut Ctx, file: FileId, test: &Test, graph: &FlowGraph) {
    let baseline: Vec<(Code, Span)> = missing_columns(ctx, graph, BTreeMap::new())
        .iter()
        .map(|d| (d.code, d.primary.span))
        .collect();
    for (activity, (columns, span)) in mocked_shapes(test) {
        let names = columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ");
        let assumed = BTreeMap::from([(activity.clone(), Some(columns.into()))]);
        for found in missing_columns(ctx, graph, assumed) {
            if baseline.contains(&(found.code, found.primary.span)) {
                continue;
            }
            ctx.emit(
                Diagnostic::error(
                    Code::E0807,
                    file,
                    span,
                    format!("the flow reads a column that mock `{activity}` does not return: {}", found.message),
                )
                .with_label(format!("columns {names}"))
                .with_secondary(found.primary.file, found.primary.span, "read here")
                .with_help("give the mocked rows the columns the program prints and the flow reads"),
            );
        }
    }
}

/// The problems of missing columns when the activities print rows of these shapes.
pub(super) fn missing_columns(ctx: &Ctx, graph: &FlowGraph, assumed: BTreeMap<String, Shape>) -> Vec<Diagnostic> {
    let mut scratch = Ctx::new(ctx.workspace, ctx.index, ctx.schedules);
    crate::check::rules::exprs::check_flow_assuming(&mut scratch, graph, assumed);
    scratch
        .out
        .into_iter()
        .filter(|d| matches!(d.code, Code::E0114 | Code::E0615))
        .collect()
}

/// For each activity every `returns` of which gives inline rows with the same columns: those
/// columns (typed by the first row), and where the first such mock's rows are.
pub(super) fn mocked_shapes(test: &Test) -> BTreeMap<String, (Vec<Column>, Span)> {
    let mut found: BTreeMap<String, Option<(Vec<Column>, Span)>> = BTreeMap::new();
    for statement in &test.statements {
        let TestStatement::Mock(mock) = statement else { continue };
        let MockOutcome::Returns(rows) = &mock.outcome else { continue };
        let shape = match rows {
            TestRows::Inline { rows, columns, span } if !columns.is_empty() => {
                let ty = |i: usize| {
                    rows.first()
                        .and_then(|r| r.get(i))
                        .and_then(crate::check::values::literal_value)
                        .map_or(ValueType::Any, |(_, ty)| ty)
                };
                let columns: Vec<Column> = columns.iter().enumerate().map(|(i, c)| Column::new(c.name.as_str(), ty(i))).collect();
                Some((columns, *span))
            }
            _ => None,
        };
        let entry = found.entry(mock.activity.name.to_string()).or_insert_with(|| shape.clone());
        let same = match (&*entry, &shape) {
            (Some((a, _)), Some((b, _))) => a.iter().map(|c| &c.name).eq(b.iter().map(|c| &c.name)),
            _ => false,
        };
        if !same {
            *entry = None;
        }
    }
    found.into_iter().filter_map(|(a, s)| Some((a, s?))).collect()
}
