//! One analysis of the workspace as the editor sees it: its files (open documents in place of
//! their files on disk), their items, diagnostics and symbols. Positions are LSP's: 0-based
//! lines, characters in UTF-16 code units.
//!
//! A large workspace is held lean ([`Chunked`]): the texts and the items' outlines. A request
//! works on a [`View`], with the full trees of the chunks it looks into parsed again; answers
//! that read every item (symbols, document symbols) parse the chunks one after the other.

use super::symbols::Symbols;
use crate::check::Index;
use crate::check::chunked::{Chunked, FullChunk};
use crate::diagnostics::{Code, Diagnostic, Severity};
use crate::source::{FileId, LspPosition, SourceFile};
use crate::syntax::Span;
use crate::syntax::ast::Item;
use crate::workspace::{Workspace, absolute, discover};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Texts by absolute path, shared between the server and its analyses.
pub type Texts = BTreeMap<PathBuf, Arc<String>>;

pub struct Analysis {
    chunked: Chunked,
    /// Every symbol, found at the first request that needs them all (references, rename)
    /// and kept for the next ones.
    symbols: OnceLock<Symbols>,
}

/// A position in a file: what requests ask about.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub file: FileId,
    pub offset: usize,
}

/// The workspace as one request reads it: the chunks at some places in full, the rest as
/// outlines (everything that other items read of an item).
pub struct View<'a> {
    analysis: &'a Analysis,
    loaded: Vec<FullChunk<'a>>,
}

impl View<'_> {
    pub fn index(&self) -> Index<'_> {
        let chunked = &self.analysis.chunked;
        let sources = &self.analysis.workspace().sources;
        Index::of_items((0..sources.len()).flat_map(move |f| {
            let file = FileId(f as u32);
            (0..chunked.chunk_count(file)).flat_map(move |c| {
                let items = match self.loaded.iter().find(|l| l.file == file && l.chunk == c) {
                    Some(loaded) => &loaded.items[..],
                    None => chunked.outlines(file, c),
                };
                items.iter().map(move |item| (file, item))
            })
        }))
    }

    /// Whether the item that starts at `offset` of `file` is here in full.
    pub fn full(&self, file: FileId, offset: u32) -> bool {
        let chunked = &self.analysis.chunked;
        chunked.keeps_trees()
            || chunked
                .chunk_of(file, offset as usize)
                .is_some_and(|c| self.loaded.iter().any(|l| l.file == file && l.chunk == c))
    }
}

/// The `.wv` files under `root` as they are on disk, by absolute path.
pub fn read_disk(root: Option<&Path>) -> Texts {
    let Some(root) = root else {
        return BTreeMap::new();
    };
    discover(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| {
            let text = crate::workspace::read_source(&path).ok()?;
            Some((absolute(&path), Arc::new(text)))
        })
        .collect()
}

/// `file:///a/b.wv` as a path (percent escapes decoded).
pub fn path_of(uri: &str) -> PathBuf {
    let raw = uri.strip_prefix("file://").unwrap_or(uri);
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = raw
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// A path as a `file://` URI (characters outside the unreserved set escaped).
pub fn uri_of(path: &Path) -> String {
    let path = absolute(path);
    let mut uri = String::from("file://");
    for byte in path.to_string_lossy().bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

impl Analysis {
    /// The files on disk, with the open documents' texts in place of theirs.
    pub fn new(disk: &Texts, open: &Texts) -> Analysis {
        Analysis::of(Chunked::new(texts(disk, open)))
    }

    /// As [`Analysis::new`], with the workspace's `wvflow.toml`, looked for from `root` (or
    /// the first file): its connectors, and its problems among the diagnostics. Read from
    /// disk at each analysis, so an edit of it is seen at the next change.
    pub fn configured(disk: &Texts, open: &Texts, root: Option<&Path>) -> Analysis {
        let mut chunked = Chunked::new(texts(disk, open));
        let first = disk.keys().chain(open.keys()).next().cloned();
        if let Some(start) = root.map(Path::to_path_buf).or(first) {
            // An unreadable file leaves the workspace without connectors, as one without it.
            let _ = chunked.configure(&start);
        }
        Analysis::of(chunked)
    }

    /// As [`Analysis::new`], with the full trees kept or only the outlines, as asked.
    pub fn with_trees(disk: &Texts, open: &Texts, trees: bool) -> Analysis {
        Analysis::of(Chunked::with_trees(texts(disk, open), trees))
    }

    /// As [`Analysis::with_trees`], with chunks of at least `min_bytes`.
    #[doc(hidden)]
    pub fn sized(disk: &Texts, open: &Texts, trees: bool, min_bytes: usize) -> Analysis {
        Analysis::of(Chunked::sized(texts(disk, open), trees, Some(min_bytes)))
    }

    fn of(mut chunked: Chunked) -> Analysis {
        // Kept until the next change, so kept small.
        chunked.compact();
        Analysis {
            chunked,
            symbols: OnceLock::new(),
        }
    }

    pub fn workspace(&self) -> &Workspace {
        &self.chunked.workspace
    }

    fn file(&self, id: FileId) -> &SourceFile {
        self.workspace().sources.get(id)
    }

    pub fn file_of(&self, path: &Path) -> Option<FileId> {
        let path = absolute(path);
        self.workspace()
            .sources
            .iter()
            .find(|(_, f)| f.path == path)
            .map(|(id, _)| id)
    }

    /// The workspace with the chunks at `places` in full.
    pub fn view(&self, places: &[At]) -> View<'_> {
        let mut places = places.to_vec();
        places.extend(self.flows_of_tests_at(&places));
        let mut chunks: Vec<(FileId, usize)> = places
            .iter()
            .flat_map(|at| {
                self.chunked
                    .chunks_at(at.file, at.offset)
                    .into_iter()
                    .map(move |c| (at.file, c))
            })
            .collect();
        chunks.sort();
        chunks.dedup();
        View {
            analysis: self,
            loaded: chunks
                .into_iter()
                .map(|(file, c)| self.chunked.parse(file, c))
                .collect(),
        }
    }

    /// Where the flows are that the tests at `places` run (and the flows those reach): a
    /// request in a test reads them in full, as the checker does.
    fn flows_of_tests_at(&self, places: &[At]) -> Vec<At> {
        let in_test = |at: &At| {
            let chunks = self.chunked.chunks_at(at.file, at.offset);
            chunks.iter().any(|&c| {
                self.chunked.outlines(at.file, c).iter().any(|item| {
                    matches!(item, crate::syntax::ast::Item::Test(t)
                        if (t.span.start as usize..=t.span.end as usize).contains(&at.offset))
                })
            })
        };
        // Only a request in a test pays for the index of the whole workspace.
        if self.chunked.keeps_trees() || !places.iter().any(in_test) {
            return Vec::new();
        }
        let outlines = View {
            analysis: self,
            loaded: Vec::new(),
        };
        let index = outlines.index();
        index
            .tests
            .iter()
            .filter(|t| {
                places.iter().any(|at| {
                    at.file == t.file
                        && (t.node.span.start as usize..=t.node.span.end as usize)
                            .contains(&at.offset)
                })
            })
            .flat_map(|t| crate::check::rules::tests::flows_reached(&index, t.node))
            .map(|f| At {
                file: f.file,
                offset: f.node.span.start as usize,
            })
            .collect()
    }

    /// `f` of each chunk of the files `wanted`, in full, in order.
    pub fn for_each_chunk(&self, wanted: impl Fn(FileId) -> bool, f: impl FnMut(FullChunk<'_>)) {
        self.chunked.for_each(wanted, f);
    }

    /// The file and byte offset of `params.textDocument` at `params.position`.
    pub fn at(&self, params: &Value) -> Option<At> {
        let file = self.file_of(&path_of(params["textDocument"]["uri"].as_str()?))?;
        let line = params["position"]["line"].as_u64()? as usize;
        let character = params["position"]["character"].as_u64()? as usize;
        let text = &self.file(file).text;
        let line_start = text
            .split_inclusive('\n')
            .take(line)
            .map(str::len)
            .sum::<usize>()
            .min(text.len());
        let mut units = 0;
        let mut offset = line_start;
        for c in text[line_start..].chars() {
            if units >= character || c == '\n' {
                break;
            }
            units += c.len_utf16();
            offset += c.len_utf8();
        }
        Some(At { file, offset })
    }

    fn positions(&self, file: FileId, span: Span) -> LspRange {
        let source = self.file(file);
        LspRange {
            start: source.lsp_position(span.start as usize),
            end: source.lsp_position(span.end as usize),
        }
    }

    pub fn range(&self, file: FileId, span: Span) -> Value {
        // Serializing two pairs of numbers cannot fail.
        serde_json::to_value(self.positions(file, span)).unwrap_or(Value::Null)
    }

    pub fn location(&self, file: FileId, span: Span) -> Value {
        json!({ "uri": uri_of(&self.file(file).path), "range": self.range(file, span) })
    }

    /// The diagnostics of `wvflow check`, in its order (by file, then position), at most
    /// [`PUBLISHED_PER_FILE`] of a file: of a file with more, one fewer and a note in place
    /// of the rest.
    pub fn problems(&self) -> Problems {
        let mut problems = Problems::default();
        let mut in_file = (None, 0);
        crate::check::check_chunked(&self.chunked, |d| {
            let file = d.primary.file;
            if in_file.0 != Some(file) {
                in_file = (Some(file), 0);
            }
            in_file.1 += 1;
            if in_file.1 <= PUBLISHED_PER_FILE {
                problems.shown.push(d);
            } else if let Some(more) = problems.more.get_mut(&file) {
                more.count += 1;
            } else if let Some(last) = problems.shown.pop() {
                // The last one shown was this file's: it gives way to the note.
                let more = More {
                    count: 2,
                    at: last.primary.span,
                };
                problems.more.insert(file, more);
            }
        });
        problems
    }

    /// The `publishDiagnostics` parameters of each file that has problems, by path.
    pub fn published<'a>(&'a self, problems: &'a Problems) -> BTreeMap<PathBuf, Published<'a>> {
        let found = &problems.shown;
        let mut by_file = BTreeMap::new();
        let mut start = 0;
        while start < found.len() {
            let file = found[start].primary.file;
            let end = start + found[start..].partition_point(|d| d.primary.file == file);
            let path = self.file(file).path.clone();
            let uri = uri_of(&path);
            by_file.insert(
                path,
                Published {
                    uri,
                    diagnostics: List {
                        analysis: self,
                        file,
                        found: &found[start..end],
                        more: problems.more.get(&file),
                    },
                },
            );
            start = end;
        }
        by_file
    }

    /// The diagnostics of `wvflow check`, as LSP diagnostics, by file.
    pub fn diagnostics(&self) -> BTreeMap<PathBuf, Vec<Value>> {
        let found = self.problems();
        self.published(&found)
            .into_iter()
            .map(|(path, published)| {
                let list = match serde_json::to_value(&published.diagnostics) {
                    Ok(Value::Array(list)) => list,
                    _ => Vec::new(),
                };
                (path, list)
            })
            .collect()
    }

    /// Every symbol of the workspace and every reference to one: a pass over every chunk.
    pub fn symbols(&self) -> &Symbols {
        self.symbols.get_or_init(|| self.all_symbols())
    }

    fn all_symbols(&self) -> Symbols {
        let view = self.view(&[]);
        let index = view.index();
        Symbols::collect(&index, |visit| {
            let mut n = 0;
            self.for_each_chunk(
                |_| true,
                |chunk| {
                    for item in chunk.items.iter() {
                        if let Item::Flow(flow) = item {
                            visit(n, chunk.file, flow);
                            n += 1;
                        }
                    }
                },
            );
        })
    }

    /// The symbols `view` can tell at the places it holds in full: every definition of a flow,
    /// activity or pool, and the stages and references written in its chunks. Which symbol
    /// is at a place there, and what it is, read as from [`Analysis::symbols`].
    pub fn symbols_in(&self, view: &View) -> Symbols {
        let index = view.index();
        if self.chunked.keeps_trees() {
            // Everything is at hand: every symbol, as a small workspace always had them.
            return Symbols::collect(&index, |visit| {
                for (n, def) in index.flows.iter().enumerate() {
                    visit(n, def.file, def.node);
                }
            });
        }
        Symbols::collect(&index, |visit| {
            for (n, def) in index.flows.iter().enumerate() {
                if view.full(def.file, def.node.span.start) {
                    visit(n, def.file, def.node);
                }
            }
        })
    }

    pub fn definition(&self, at: At) -> Value {
        let symbols = self.symbols_in(&self.view(&[at]));
        match symbols.at(at.file, at.offset) {
            Some(s) => self.location(symbols.defs[s].file, symbols.defs[s].span),
            None => Value::Null,
        }
    }

    pub fn references(&self, at: At, with_declaration: bool) -> Value {
        let symbols = self.symbols();
        let Some(s) = symbols.at(at.file, at.offset) else {
            return Value::Null;
        };
        let places = symbols.occurrences(s);
        let skip = usize::from(!with_declaration);
        Value::Array(
            places
                .into_iter()
                .skip(skip)
                .map(|(file, span)| self.location(file, span))
                .collect(),
        )
    }

    /// Renames a flow, stage or activity at its definition and every reference.
    pub fn rename(&self, at: At, name: &str) -> Value {
        // A plain name: one identifier token, not a keyword.
        let tokens: Vec<_> = crate::syntax::lexer::Lexer::new(name, at.file).collect();
        let valid = matches!(tokens.as_slice(), [(crate::syntax::token::Token::Ident, span)]
            if span.end as usize == name.len());
        if !valid {
            return Value::Null;
        }
        let symbols = self.symbols();
        let Some(s) = symbols.at(at.file, at.offset) else {
            return Value::Null;
        };
        let mut changes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (file, span) in symbols.occurrences(s) {
            changes
                .entry(uri_of(&self.file(file).path))
                .or_default()
                .push(json!({ "range": self.range(file, span), "newText": name }));
        }
        json!({ "changes": changes })
    }

    /// The whole document in the canonical layout, as one edit; none when it has syntax errors.
    pub fn formatting(&self, path: &Path) -> Value {
        let Some(file) = self.file_of(path) else {
            return Value::Null;
        };
        let text = &self.file(file).text;
        match crate::format::format(text, file) {
            Ok(formatted) if formatted.as_str() != text.as_str() => json!([{
                "range": self.range(file, Span::new(0, text.len())),
                "newText": formatted,
            }]),
            _ => json!([]),
        }
    }
}

/// The files on disk, with the open documents' texts in place of theirs, in path order.
fn texts(disk: &Texts, open: &Texts) -> Vec<(PathBuf, Arc<String>)> {
    let mut texts = disk.clone();
    for (path, text) in open {
        texts.insert(absolute(path), text.clone());
    }
    texts.into_iter().collect()
}

/// The parameters of one `publishDiagnostics`, written out as they are serialized: no tree
/// of JSON values for thousands of diagnostics.
#[derive(Serialize)]
pub struct Published<'a> {
    pub uri: String,
    pub diagnostics: List<'a>,
}

/// At most this many diagnostics of one file go to the editor: VS Code shows no more of a
/// file (the rest it drops, with a note of how many), and thousands of problems in one file
/// would be held and sent again after every edit. `wvflow check` lists them all.
pub const PUBLISHED_PER_FILE: usize = 1000;

/// What goes to the editor: each file's first problems, and what is left of files with more.
#[derive(Default)]
pub struct Problems {
    pub shown: Vec<Diagnostic>,
    pub more: BTreeMap<FileId, More>,
}

/// The problems of a file not shown: how many, and where the first of them is.
pub struct More {
    pub count: usize,
    pub at: Span,
}

/// One file's diagnostics, as LSP diagnostics.
pub struct List<'a> {
    analysis: &'a Analysis,
    file: FileId,
    found: &'a [Diagnostic],
    more: Option<&'a More>,
}

impl List<'_> {
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }
}

impl Serialize for List<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let a = self.analysis;
        let note = self.more.map(|more| LspDiagnostic {
            range: a.positions(self.file, more.at),
            severity: 3,
            code: None,
            source: "wvflow",
            message: format!(
                "{} more problems from here on are not shown; `wvflow check {}` lists them all",
                more.count,
                a.file(self.file).path.display()
            ),
            related: Vec::new(),
            code_description: None,
        });
        let shown = self.found.iter().map(|d| {
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                message.push_str(&format!("\nhelp: {help}"));
            }
            LspDiagnostic {
                range: a.positions(d.primary.file, d.primary.span),
                severity: if d.severity == Severity::Error { 1 } else { 2 },
                code: Some(d.code),
                source: "wvflow",
                message,
                related: d
                    .secondary
                    .iter()
                    .map(|l| Related {
                        location: Location {
                            uri: uri_of(&a.file(l.file).path),
                            range: a.positions(l.file, l.span),
                        },
                        message: &l.message,
                    })
                    .collect(),
                code_description: error_link(d.code.as_str()).map(|href| Href { href }),
            }
        });
        serializer.collect_seq(shown.chain(note))
    }
}

/// Fields in the order the editor has always received them.
#[derive(Serialize)]
struct LspDiagnostic<'a> {
    range: LspRange,
    severity: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<Code>,
    source: &'static str,
    message: String,
    #[serde(rename = "relatedInformation")]
    related: Vec<Related<'a>>,
    #[serde(rename = "codeDescription", skip_serializing_if = "Option::is_none")]
    code_description: Option<Href>,
}

#[derive(Serialize)]
struct LspRange {
    start: LspPosition,
    end: LspPosition,
}

#[derive(Serialize)]
struct Related<'a> {
    location: Location,
    message: &'a str,
}

#[derive(Serialize)]
struct Location {
    uri: String,
    range: LspRange,
}

#[derive(Serialize)]
struct Href {
    href: String,
}

/// Where the diagnostic codes are explained (`wvflow explain CODE` prints the same text):
/// `WVFLOW_ERRORS_URL`, else `docs/errors.md` of the source tree this binary was built from,
/// when it is still there. Decided once.
fn errors_doc() -> Option<&'static str> {
    static DOC: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        if let Ok(url) = std::env::var("WVFLOW_ERRORS_URL") {
            return Some(url);
        }
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md");
        local.is_file().then(|| uri_of(&local))
    })
    .as_deref()
}

/// The link to a code's entry, with the anchor Markdown renderers give its heading
/// (`## E0602: `depends on` cycle` is `#e0602-depends-on-cycle`).
fn error_link(code: &str) -> Option<String> {
    let doc = errors_doc()?;
    let entry = crate::diagnostics::docs::entry(code)?;
    let heading = format!("{}: {}", entry.code, entry.title).to_lowercase();
    let anchor: String = heading
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect();
    Some(format!("{doc}#{anchor}"))
}
