//! An activity's rows as they come: in memory (scripted launchers, small results), or spooled
//! while the program writes them: in memory up to 1 MiB, then to an unnamed temporary file,
//! so that a program that prints a million rows does not need their size in memory and one
//! that prints a few costs no file. A spooled output is read twice, one line at a time: once
//! when the attempt ends, to check it and learn its columns, and once when it is written into
//! the store in batches ([`super::store::Store::write_output`]).

use super::files::{ColumnIndex, ColumnsSeen};
use super::store::{Rows, Table};
use crate::value::ValueType;
use rusqlite::types::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};

/// Why an activity's spooled stdout cannot be read. `Display` gives the message users see.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// The spool's temporary file cannot be read back: the system's error, as it says it (an
    /// attempt's failure keeps it, and is cloned and compared).
    ReadBack {
        kind: std::io::ErrorKind,
        message: String,
    },
    /// A line that begins like a row is not UTF-8: the byte and its column (from 1).
    NotUtf8 { line: usize, byte: u8, column: usize },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::ReadBack { message, .. } => {
                write!(f, "cannot read the activity's output back: {message}")
            }
            Error::NotUtf8 { line, byte, column } => write!(
                f,
                "stdout line {line} is not UTF-8 text (byte 0x{byte:02x} at column {column}): rows are JSON in UTF-8"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::ReadBack {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}


/// What a successful attempt produced.
#[derive(Debug)]
pub enum Output {
    Rows(Rows),
    Spooled(Spooled),
}

impl Default for Output {
    fn default() -> Self {
        Output::Rows(Rows::default())
    }
}

impl From<Rows> for Output {
    fn from(rows: Rows) -> Self {
        Output::Rows(rows)
    }
}

impl Output {
    pub fn len(&self) -> usize {
        match self {
            Output::Rows(rows) => rows.len(),
            Output::Spooled(spooled) => spooled.rows,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows in memory, for the steps that need them as values (an activity's input, the
    /// items of `each`, a jump's arguments, an idempotency record).
    pub fn into_rows(self) -> Result<Rows, Error> {
        match self {
            Output::Rows(rows) => Ok(rows),
            Output::Spooled(spooled) => {
                let mut rows = Rows {
                    columns: spooled.columns.clone(),
                    types: spooled.types.clone(),
                    values: Vec::with_capacity(spooled.rows),
                };
                spooled.for_each_row(|row| {
                    rows.values.push(row);
                    Ok::<_, Error>(())
                })?;
                Ok(rows)
            }
        }
    }
}

/// A step's rows: an activity's output (in memory or spooled), or a query's result that stays
/// in the engine until a step needs its values.
#[derive(Debug)]
pub enum Data {
    Output(Output),
    Table(Table),
}

impl Default for Data {
    fn default() -> Self {
        Data::Output(Output::default())
    }
}

impl From<Rows> for Data {
    fn from(rows: Rows) -> Self {
        Data::Output(Output::Rows(rows))
    }
}

impl From<Output> for Data {
    fn from(output: Output) -> Self {
        Data::Output(output)
    }
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::Output(output) => output.len(),
            Data::Table(table) => table.rows,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How much of an attempt's stdout is kept in memory before it goes to a file.
const SPILL: usize = 1 << 20;

/// Where an attempt's stdout goes while the program runs: memory, until it passes [`SPILL`]
/// bytes; then an unnamed temporary file (deleted when dropped).
#[derive(Debug)]
pub enum Spool {
    Memory(Vec<u8>),
    File(File),
}

impl Default for Spool {
    fn default() -> Self {
        Spool::Memory(Vec::new())
    }
}

impl Spool {
    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Spool::Memory(kept) if kept.len() + bytes.len() <= SPILL => {
                kept.extend_from_slice(bytes);
                Ok(())
            }
            Spool::Memory(kept) => {
                let mut file = tempfile::tempfile().map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot create a temporary file: {e}"))
                })?;
                file.write_all(kept)?;
                file.write_all(bytes)?;
                *self = Spool::File(file);
                Ok(())
            }
            Spool::File(file) => file.write_all(bytes),
        }
    }
}

/// The stdout of an attempt, spooled and checked: every line that begins like a row is UTF-8;
/// its columns in order of first appearance.
#[derive(Debug)]
pub struct Spooled {
    file: Spool,
    pub columns: Vec<String>,
    pub types: Vec<ValueType>,
    pub rows: usize,
}

impl Spooled {
    /// Reads the spool once: the columns, their types and the number of rows. A line that
    /// begins like a row but is not UTF-8 is an error naming the line; other lines are the
    /// activity's own text and are left alone.
    pub fn scan(file: Spool) -> Result<Spooled, Error> {
        let mut learned = ColumnsSeen::default();
        let mut rows = 0;
        lines(&file, |number, line| {
            if let Some(object) = object_of(number, line)? {
                rows += 1;
                learned.learn(&object);
            }
            Ok::<_, Error>(())
        })?;
        let (columns, types) = learned.finish();
        Ok(Spooled {
            file,
            columns,
            types,
            rows,
        })
    }

    /// Reads the spool again, one row at a time, each as values in column order. An error of
    /// `each` comes back as it was.
    pub fn for_each_row<E: From<Error>>(
        &self,
        mut each: impl FnMut(Vec<Value>) -> Result<(), E>,
    ) -> Result<(), E> {
        let index = ColumnIndex::new(&self.columns);
        lines(&self.file, |number, line| {
            let Some(object) = object_of(number, line)? else {
                return Ok(());
            };
            let mut row = Vec::new();
            index.fill(&mut row, &object);
            each(row)
        })
    }
}

/// Each line of the spool from its start, with its number (from 1).
fn lines<E: From<Error>>(
    spool: &Spool,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut file = match spool {
        Spool::Memory(kept) => {
            return kept
                .split_inclusive(|&b| b == b'\n')
                .enumerate()
                .try_for_each(|(i, line)| each(i + 1, line));
        }
        Spool::File(file) => file,
    };
    file.seek(SeekFrom::Start(0)).map_err(Error::from)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(Error::from)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        each(number, &line)?;
    }
}

/// The JSON object a stdout line holds, if it is one. A line that begins like a row but is
/// not UTF-8 is an error: rows are JSON in UTF-8, and none is dropped silently.
fn object_of(
    number: usize,
    line: &[u8],
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Error> {
    let line = line.trim_ascii();
    if !line.starts_with(b"{") {
        return Ok(None);
    }
    let text = std::str::from_utf8(line).map_err(|e| Error::NotUtf8 {
        line: number,
        byte: line[e.valid_up_to()],
        column: e.valid_up_to() + 1,
    })?;
    Ok(match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(o)) => Some(o),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text spooled in pieces of `piece` bytes (it goes to a file past 1 MiB).
    fn spool_in(text: &[u8], piece: usize) -> Result<Spooled, Error> {
        let mut spool = Spool::default();
        for part in text.chunks(piece) {
            spool.write_all(part).unwrap();
        }
        Spooled::scan(spool)
    }

    fn spool(text: &[u8]) -> Result<Spooled, Error> {
        spool_in(text, 7)
    }

    #[test]
    fn output_past_a_mebibyte_goes_to_a_file_and_reads_back_the_same() {
        let text: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{{\"n\": {i}}}\nnot a row {i}\n").into_bytes())
            .collect();
        let spooled = spool_in(&text, 4096).unwrap();
        assert!(
            matches!(spooled.file, Spool::File(_)),
            "{} bytes",
            text.len()
        );
        assert_eq!(spooled.rows, 100_000);
        let rows = Output::Spooled(spooled).into_rows().unwrap();
        assert_eq!(rows.values[99_999], [Value::Integer(99_999)]);
        let small = spool_in(&text[..4096], 4096).unwrap();
        assert!(matches!(small.file, Spool::Memory(_)));
    }

    #[test]
    fn columns_come_in_order_of_first_appearance_and_other_lines_are_left_alone() {
        let spooled = spool(
            b"starting\n{\"a\": 1, \"ok\": true}\n{\"b\": \"x\", \"ok\": null}\n\n{\"a\": 2}",
        )
        .unwrap();
        assert_eq!(spooled.columns, ["a", "ok", "b"]);
        assert_eq!(
            spooled.types,
            [ValueType::Any, ValueType::Boolean, ValueType::Any]
        );
        let rows = Output::Spooled(spooled).into_rows().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows.values[1],
            [Value::Null, Value::Null, Value::Text("x".into())]
        );
        assert_eq!(rows.values[2][0], Value::Integer(2));
    }

    #[test]
    fn a_row_line_that_is_not_utf8_names_its_line() {
        let error = spool(b"{\"a\": 1}\n{\"a\": \"\xff\"}\n").unwrap_err();
        assert!(error.to_string().starts_with("stdout line 2 is not UTF-8"), "{error}");
    }
}
