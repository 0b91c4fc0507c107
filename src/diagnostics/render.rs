//! Renders diagnostics: ariadne reports for people, one-liners for grep, JSON for tools.

use super::{Diagnostic, Severity};
use crate::source::SourceMap;
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind, Source};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether output to stdout is coloured: `auto` colours a terminal unless `NO_COLOR` is set.
    pub fn on_stdout(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// ariadne reports, one after the other, into a string.
pub fn render_human(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let mut out = Vec::new();
    let mut reports = HumanReports::new(sources, color);
    for d in diagnostics {
        // Writing into a Vec cannot fail.
        let _ = reports.write(d, &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// ariadne reports written one at a time; each file's table of lines (ariadne's, 32 bytes a
/// line) is made when a report first shows that file.
pub struct HumanReports<'a> {
    sources: &'a SourceMap,
    config: Config,
    /// By file name, ariadne's name for a source.
    whole: BTreeMap<&'a str, Source<&'a str>>,
}

impl<'a> HumanReports<'a> {
    pub fn new(sources: &'a SourceMap, color: bool) -> Self {
        HumanReports {
            sources,
            config: Config::default()
                .with_index_type(IndexType::Byte)
                .with_color(color),
            whole: BTreeMap::new(),
        }
    }

    pub fn write(&mut self, d: &Diagnostic, out: &mut impl std::io::Write) -> std::io::Result<()> {
        for label in std::iter::once(&d.primary).chain(&d.secondary) {
            let file = self.sources.get(label.file);
            let text = file.text.as_str();
            self.whole
                .entry(file.name.as_str())
                .or_insert_with(|| Source::from(text));
        }
        let mut shown = Shown(&self.whole);
        let report = self.report(d);
        // A broken source lookup loses one report, not the rest.
        let _ = report.write(&mut shown, &mut *out);
        Ok(())
    }

    fn report(&self, d: &Diagnostic) -> Report<'_, (String, std::ops::Range<usize>)> {
        let span_of = |l: &super::Label| {
            let file = self.sources.get(l.file);
            (file.name.clone(), clamp(l.span.range(), file.text.len()))
        };
        let (kind, accent) = match d.severity {
            Severity::Error => (ReportKind::Error, Color::Red),
            Severity::Warning => (ReportKind::Warning, Color::Yellow),
        };
        let mut report = Report::build(kind, span_of(&d.primary))
            .with_config(self.config)
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
        report.finish()
    }
}

/// The sources reports show, by file name.
struct Shown<'s, 'a>(&'s BTreeMap<&'a str, Source<&'a str>>);

impl<'a> ariadne::Cache<String> for Shown<'_, 'a> {
    type Storage = &'a str;

    fn fetch(&mut self, name: &String) -> Result<&Source<&'a str>, impl std::fmt::Debug> {
        self.0
            .get(name.as_str())
            .ok_or_else(|| format!("no source {name}"))
    }

    fn display<'b>(&self, name: &'b String) -> Option<impl std::fmt::Display + 'b> {
        Some(name)
    }
}

fn clamp(range: std::ops::Range<usize>, len: usize) -> std::ops::Range<usize> {
    range.start.min(len)..range.end.min(len)
}

/// `file:line:col: severity[CODE]: message`, one line each.
pub fn render_short(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = Vec::new();
    for d in diagnostics {
        // Writing into a Vec cannot fail.
        let _ = write_short(d, sources, &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One diagnostic of [`render_short`].
pub fn write_short(
    d: &Diagnostic,
    sources: &SourceMap,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
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
    )
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
    let mut array = JsonArray::default();
    for d in diagnostics {
        // Writing into a Vec cannot fail.
        let _ = array.write(d, sources, &mut out);
    }
    let _ = array.finish(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The array of [`render_json`] written an item at a time: the same bytes as
/// `to_string_pretty` of the whole list.
#[derive(Default)]
pub struct JsonArray {
    items: usize,
    item: Vec<u8>,
}

impl JsonArray {
    pub fn write(
        &mut self,
        d: &Diagnostic,
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
        let item = JsonDiagnostic {
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
        };
        self.item.clear();
        serde_json::to_writer_pretty(&mut self.item, &item).map_err(std::io::Error::other)?;
        out.write_all(if self.items == 0 { b"[\n" } else { b",\n" })?;
        self.items += 1;
        // One level deeper than on its own. Strings hold no raw line breaks (JSON escapes
        // them), so every line break is the layout's.
        for (i, line) in self.item.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                out.write_all(b"\n")?;
            }
            out.write_all(b"  ")?;
            out.write_all(line)?;
        }
        Ok(())
    }

    pub fn finish(self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(if self.items == 0 { b"[]\n" } else { b"\n]\n" })
    }
}
