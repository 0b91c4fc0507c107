//! Source files of a workspace and conversions from byte offsets to line/column positions.

use std::path::PathBuf;
use std::sync::Arc;

/// Index of a file in a [`SourceMap`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct FileId(pub u32);

#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The path as the user should read it in messages.
    pub name: String,
    /// Shared: the language server keeps the editor's text and checks it without a copy.
    pub text: Arc<String>,
    /// Built on first use: a clean check never needs it.
    line_starts: std::sync::OnceLock<Vec<u32>>,
}

/// A 0-based line and column; `character` counts UTF-16 code units as the LSP does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LspPosition {
    pub line: u32,
    pub character: u32,
}

impl SourceFile {
    pub fn new(path: PathBuf, name: String, text: String) -> Self {
        SourceFile::shared(path, name, Arc::new(text))
    }

    pub fn shared(path: PathBuf, name: String, text: Arc<String>) -> Self {
        SourceFile {
            path,
            name,
            text,
            line_starts: std::sync::OnceLock::new(),
        }
    }

    fn line_starts(&self) -> &[u32] {
        self.line_starts.get_or_init(|| {
            let mut starts = vec![0u32];
            // Lines end at `\n`, `\r\n` or a lone `\r`, as the LSP counts them.
            let bytes = self.text.as_bytes();
            starts.extend(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|&(i, &b)| {
                        b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
                    })
                    .map(|(i, _)| i as u32 + 1),
            );
            starts
        })
    }

    /// 0-based line of a byte offset, and the byte offset at which that line starts.
    fn line_of(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let starts = self.line_starts();
        let line = starts.partition_point(|&s| s as usize <= offset) - 1;
        (line, starts[line] as usize)
    }

    /// The text of the line holding `offset`, up to `offset`, cut at a character boundary.
    fn line_prefix(&self, offset: usize) -> (usize, &str) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (line, start) = self.line_of(offset);
        (line, &self.text[start..offset])
    }

    /// 1-based line and column (in characters), as compilers print them.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let (line, prefix) = self.line_prefix(offset);
        (line + 1, prefix.chars().count() + 1)
    }

    pub fn lsp_position(&self, offset: usize) -> LspPosition {
        let (line, prefix) = self.line_prefix(offset);
        LspPosition {
            line: line as u32,
            character: prefix.encode_utf16().count() as u32,
        }
    }
}

/// Every file of one workspace, addressed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units_for_lsp_and_chars_for_humans() {
        let file = SourceFile::new("a.wv".into(), "a.wv".into(), "ab\n€𝄞x".into());
        let x = file.text.find('x').unwrap();
        assert_eq!(file.line_col(x), (2, 3));
        assert_eq!(
            file.lsp_position(x),
            LspPosition {
                line: 1,
                character: 3
            }
        );
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(file.text.len()), (2, 4));
    }
}
