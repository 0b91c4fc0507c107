//! Renders diagnostics: ariadne reports for people, one-liners for grep, JSON for tools.

use super::{Diagnostic, Severity};
use crate::source::{FileId, SourceMap};
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};
use serde::{Serialize, Serializer};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// ariadne reports, one after the other, into a string.
pub fn render_human(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_human(diagnostics, sources, color, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`render_human`] into `out`, report by report: thousands of reports are never one string.
pub fn write_human(
    diagnostics: &[Diagnostic],
    sources: &SourceMap,
    color: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let used: BTreeSet<FileId> = diagnostics
        .iter()
        .flat_map(|d| std::iter::once(&d.primary).chain(&d.secondary))
        .map(|l| l.file)
        .collect();
    let mut cache = ariadne::sources(
        used.into_iter()
            .map(|id| (sources.get(id).name.clone(), sources.get(id).text.as_str())),
    );
    let config = Config::default()
        .with_index_type(IndexType::Byte)
        .with_color(color);
    for d in diagnostics {
        let span_of = |l: &super::Label| {
            let file = sources.get(l.file);
            (file.name.clone(), clamp(l.span.range(), file.text.len()))
        };
        let (kind, accent) = match d.severity {
            Severity::Error => (ReportKind::Error, Color::Red),
            Severity::Warning => (ReportKind::Warning, Color::Yellow),
        };
        let mut report = Report::build(kind, span_of(&d.primary))
            .with_config(config)
            .with_code(d.code)
            .with_message(&d.message);
        // ariadne draws labels in their order, and starts a new snippet (headed by the
        // primary label's place) whenever a label stands above the one before: in source
        // order, the primary's file first, the labels of one file share one snippet.
        let mut labels: Vec<(&super::Label, bool)> = std::iter::once((&d.primary, true))
            .chain(d.secondary.iter().map(|l| (l, false)))
            .collect();
        labels.sort_by_key(|(l, _)| (l.file != d.primary.file, l.file, l.span.start));
        for (order, (l, primary)) in labels.into_iter().enumerate() {
            let mut label = Label::new(span_of(l))
                .with_order(order as i32)
                .with_color(if primary { accent } else { Color::Blue });
            if !l.message.is_empty() {
                label = label.with_message(&l.message);
            }
            report = report.with_label(label);
        }
        if let Some(help) = &d.help {
            report = report.with_help(help);
        }
        // A broken source lookup loses one report, not the rest.
        let _ = report.finish().write(&mut cache, &mut *out);
    }
    Ok(())
}

fn clamp(range: std::ops::Range<usize>, len: usize) -> std::ops::Range<usize> {
    range.start.min(len)..range.end.min(len)
}

/// `file:line:col: severity[CODE]: message`, one line each.
pub fn render_short(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_short(diagnostics, sources, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`render_short`] into `out`, line by line.
pub fn write_short(
    diagnostics: &[Diagnostic],
    sources: &SourceMap,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    for d in diagnostics {
        let file = sources.get(d.primary.file);
        let (line, col) = file.line_col(d.primary.span.start as usize);
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(
            out,
            "{}:{line}:{col}: {severity}[{}]: {}",
            file.name, d.code, d.message
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonRange {
    start: crate::source::LspPosition,
    end: crate::source::LspPosition,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: &'a str,
    range: JsonRange,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: &'a str,
    code: &'a str,
    severity: Severity,
    message: &'a str,
    range: JsonRange,
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
}

/// One JSON array, as docs/errors.md describes: 0-based lines, UTF-16 characters.
/// `labels` holds the primary label first, then the secondary ones.
pub fn render_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_json(diagnostics, sources, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`render_json`] into `out`, item by item.
pub fn write_json(
    diagnostics: &[Diagnostic],
    sources: &SourceMap,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let range = |l: &super::Label| {
        let file = sources.get(l.file);
        JsonRange {
            start: file.lsp_position(l.span.start as usize),
            end: file.lsp_position(l.span.end as usize),
        }
    };
    let items = diagnostics.iter().map(|d| JsonDiagnostic {
        file: &sources.get(d.primary.file).name,
        code: d.code.as_str(),
        severity: d.severity,
        message: &d.message,
        range: range(&d.primary),
        labels: std::iter::once(&d.primary)
            .chain(&d.secondary)
            .map(|l| JsonLabel {
                file: &sources.get(l.file).name,
                range: range(l),
                message: &l.message,
            })
            .collect(),
        help: d.help.as_deref(),
    });
    // The same bytes as `to_string_pretty` of the whole list, written as they come.
    let mut serializer = serde_json::Serializer::pretty(&mut *out);
    serializer
        .collect_seq(items)
        .map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}
