//! One analysis of the workspace as the editor sees it: its files (open documents in place of
//! their files on disk), their syntax trees, diagnostics and symbols. Positions are LSP's:
//! 0-based lines, characters in UTF-16 code units.

use super::symbols::Symbols;
use crate::check::Index;
use crate::diagnostics::{Diagnostic, Severity};
use crate::source::{FileId, SourceFile};
use crate::syntax::Span;
use crate::workspace::{Workspace, absolute, discover};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Analysis {
    pub workspace: Workspace,
}

/// A position in a file: what requests ask about.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub file: FileId,
    pub offset: usize,
}

/// The `.wv` files under `root` as they are on disk, by absolute path.
pub fn read_disk(root: Option<&Path>) -> BTreeMap<PathBuf, String> {
    let Some(root) = root else {
        return BTreeMap::new();
    };
    discover(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| {
            let text = crate::workspace::read_source(&path).ok()?;
            Some((absolute(&path), text))
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
    pub fn new(disk: &BTreeMap<PathBuf, String>, open: &BTreeMap<PathBuf, String>) -> Analysis {
        let mut texts = disk.clone();
        for (path, text) in open {
            texts.insert(absolute(path), text.clone());
        }
        let mut workspace = Workspace::default();
        workspace.add_all(texts.into_iter().collect());
        Analysis { workspace }
    }

    fn file(&self, id: FileId) -> &SourceFile {
        self.workspace.sources.get(id)
    }

    fn file_of(&self, path: &Path) -> Option<FileId> {
        let path = absolute(path);
        self.workspace
            .sources
            .iter()
            .find(|(_, f)| f.path == path)
            .map(|(id, _)| id)
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

    pub fn range(&self, file: FileId, span: Span) -> Value {
        let source = self.file(file);
        let start = source.lsp_position(span.start as usize);
        let end = source.lsp_position(span.end as usize);
        json!({
            "start": { "line": start.line, "character": start.character },
            "end": { "line": end.line, "character": end.character },
        })
    }

    pub fn location(&self, file: FileId, span: Span) -> Value {
        json!({ "uri": uri_of(&self.file(file).path), "range": self.range(file, span) })
    }

    /// The diagnostics of `wvflow check`, as LSP diagnostics, by file.
    pub fn diagnostics(&self) -> BTreeMap<PathBuf, Vec<Value>> {
        let mut found: Vec<Diagnostic> = self.workspace.diagnostics().cloned().collect();
        found.extend(crate::check::check(&self.workspace).diagnostics);
        crate::diagnostics::normalize(&mut found);
        let mut by_file: BTreeMap<PathBuf, Vec<Value>> = BTreeMap::new();
        for d in &found {
            let file = d.primary.file;
            let related: Vec<Value> = d
                .secondary
                .iter()
                .map(|l| json!({ "location": self.location(l.file, l.span), "message": l.message }))
                .collect();
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                message.push_str(&format!("\nhelp: {help}"));
            }
            let mut diagnostic = json!({
                "range": self.range(file, d.primary.span),
                "severity": if d.severity == Severity::Error { 1 } else { 2 },
                "code": d.code,
                "source": "wvflow",
                "message": message,
                "relatedInformation": related,
            });
            if let Some(href) = error_link(d.code.as_str()) {
                diagnostic["codeDescription"] = json!({ "href": href });
            }
            by_file
                .entry(self.file(file).path.clone())
                .or_default()
                .push(diagnostic);
        }
        by_file
    }

    pub fn symbols(&self) -> (Index<'_>, Symbols) {
        let index = Index::new(&self.workspace);
        let symbols = Symbols::collect(&index);
        (index, symbols)
    }

    pub fn definition(&self, at: At) -> Value {
        let (_, symbols) = self.symbols();
        match symbols.at(at.file, at.offset) {
            Some(s) => self.location(symbols.defs[s].file, symbols.defs[s].span),
            None => Value::Null,
        }
    }

    pub fn references(&self, at: At, with_declaration: bool) -> Value {
        let (_, symbols) = self.symbols();
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
        let (_, symbols) = self.symbols();
        // A plain name: one identifier token, not a keyword.
        let tokens: Vec<_> = crate::syntax::lexer::Lexer::new(name, at.file).collect();
        let valid = matches!(tokens.as_slice(), [(crate::syntax::token::Token::Ident, span)]
            if span.end as usize == name.len());
        let Some(s) = symbols.at(at.file, at.offset).filter(|_| valid) else {
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
            Ok(formatted) if &formatted != text => json!([{
                "range": self.range(file, Span::new(0, text.len())),
                "newText": formatted,
            }]),
            _ => json!([]),
        }
    }
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
