//! An activity's input rows, as its stdin receives them (NDJSON, one row a line): rows in
//! memory (shared by the attempts of a call, never copied), or the NDJSON of a query's table,
//! written once to an unnamed temporary file in bounded batches and read back by each attempt,
//! so that a stage handing a million rows to a program does not hold them.

use super::store::Rows;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Input {
    Rows(Arc<Rows>),
    Ndjson(Arc<NdjsonFile>),
}

/// NDJSON text in an unnamed temporary file (gone when the last attempt drops it).
#[derive(Debug)]
pub struct NdjsonFile {
    pub file: File,
    pub rows: usize,
}

impl Default for Input {
    fn default() -> Self {
        Input::Rows(Arc::default())
    }
}

impl From<Rows> for Input {
    fn from(rows: Rows) -> Self {
        Input::Rows(Arc::new(rows))
    }
}

impl Input {
    pub fn len(&self) -> usize {
        match self {
            Input::Rows(rows) => rows.len(),
            Input::Ndjson(file) => file.rows,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes every row as a line of NDJSON. Stops at the first error: a program that does
    /// not read its input closes the pipe, which is not the writer's to report.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            Input::Rows(rows) => {
                let mut out = std::io::BufWriter::new(out);
                for i in 0..rows.len() {
                    let line = serde_json::Value::Object(rows.json_object(i));
                    writeln!(out, "{line}")?;
                }
                out.flush()
            }
            Input::Ndjson(ndjson) => {
                // Positioned reads: attempts that overlap (a timed-out one still draining)
                // do not share a file offset.
                let mut chunk = vec![0u8; 64 * 1024];
                let mut at = 0;
                loop {
                    let n = ndjson.file.read_at(&mut chunk, at)?;
                    if n == 0 {
                        return Ok(());
                    }
                    out.write_all(&chunk[..n])?;
                    at += n as u64;
                }
            }
        }
    }
}
