//! Data files a flow reads (`from 'orders.csv'`), streamed into the engine: a file is read
//! once to learn its columns (the header of a CSV; every object's keys for JSON and NDJSON)
//! and once more to insert its rows one at a time, so loading a file needs memory for a row,
//! not for the file.

use super::store::from_json;
use crate::value::ValueType;
use rusqlite::types::Value;
use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

pub use crate::file_format::Format;

type Object = serde_json::Map<String, serde_json::Value>;

/// What is wrong with a data file, and where. `Display` gives the message users see.
#[derive(Debug)]
pub enum Error {
    /// The file cannot be opened or read.
    Read { path: PathBuf, message: String },
    /// A line of an NDJSON file cannot be read.
    ReadLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A CSV field that is not UTF-8, at a line when the reader knows it.
    NotUtf8 {
        path: PathBuf,
        line: Option<u64>,
        field: usize,
    },
    /// A CSV record of another number of fields than the header.
    Fields {
        path: PathBuf,
        line: Option<u64>,
        len: u64,
        expected: u64,
    },
    /// Any other CSV error, as the reader says it.
    Csv { path: PathBuf, message: String },
    /// An NDJSON line that is JSON but not an object.
    NotObject { path: PathBuf, line: usize },
    /// Text that is not JSON, at an NDJSON line.
    NotJson {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A JSON document of another shape than an array of objects (or one object).
    NotArray { path: PathBuf, found: String },
    /// An item of a JSON array that is not an object.
    ItemNotObject { path: PathBuf, item: usize },
}

impl Error {
    /// The same error, naming the file as the flow wrote it rather than where it was looked
    /// for: the same words wherever the run's folder is (`wvflow run`, an exported task).
    pub fn named(mut self, written: &Path) -> Self {
        let (Error::Read { path, .. }
        | Error::ReadLine { path, .. }
        | Error::NotUtf8 { path, .. }
        | Error::Fields { path, .. }
        | Error::Csv { path, .. }
        | Error::NotObject { path, .. }
        | Error::NotJson { path, .. }
        | Error::NotArray { path, .. }
        | Error::ItemNotObject { path, .. }) = &mut self;
        *path = written.to_path_buf();
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |line: &Option<u64>| line.map_or(String::new(), |l| format!(":{l}"));
        match self {
            Error::Read { path, message } => {
                write!(f, "cannot read {}: {message}", path.display())
            }
            Error::ReadLine {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: cannot read: {message}", path.display()),
            Error::NotUtf8 { path, line, field } => write!(
                f,
                "{}{}: field {field} is not UTF-8 text",
                path.display(),
                at(line)
            ),
            Error::Fields {
                path,
                line,
                len,
                expected,
            } => write!(
                f,
                "{}{}: {len} fields, where the header has {expected}",
                path.display(),
                at(line)
            ),
            Error::Csv { path, message } => write!(f, "{}: {message}", path.display()),
            Error::NotObject { path, line } => {
                write!(f, "{}:{line}: expected a JSON object", path.display())
            }
            Error::NotJson {
                path,
                line: Some(line),
                message,
            } => write!(f, "{}:{line}: not JSON: {message}", path.display()),
            Error::NotJson {
                path,
                line: None,
                message,
            } => write!(f, "{}: not JSON: {message}", path.display()),
            Error::NotArray { path, found } => write!(
                f,
                "{}: expected a JSON array of objects, found {found}",
                path.display()
            ),
            Error::ItemNotObject { path, item } => write!(
                f,
                "{}: item {item} of the array is not an object",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {}


/// A data file whose columns are known: ready to be read row by row.
pub struct DataFile {
    path: PathBuf,
    format: Format,
    pub columns: Vec<String>,
    pub types: Vec<ValueType>,
}

impl DataFile {
    /// Reads the file once for its columns (for CSV, only its header).
    pub fn scan(path: &Path) -> Result<DataFile, Error> {
        let format = Format::of(path);
        let mut learned = ColumnsSeen::default();
        match format {
            Format::Csv => {
                let mut reader = csv_reader(path)?;
                let header = reader.headers().map_err(|e| csv_error(path, e))?;
                learned.columns = header.iter().map(str::to_string).collect();
                learned.seen = vec![Seen::Other; learned.columns.len()];
            }
            Format::Json | Format::Ndjson => {
                each_object(path, format, |object| {
                    learned.learn(&object);
                    Ok::<_, Error>(())
                })?;
            }
        }
        let (columns, types) = learned.finish();
        Ok(DataFile {
            path: path.to_path_buf(),
            format,
            columns,
            types,
        })
    }

    /// Reads the file again, one row at a time, each as values in column order. An error of
    /// `each` comes back as it was (the store's, with SQLite's code).
    pub fn for_each_row<E: From<Error>>(
        &self,
        mut each: impl FnMut(&[Value]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut row = Vec::with_capacity(self.columns.len());
        match self.format {
            Format::Csv => {
                let mut reader = csv_reader(&self.path)?;
                let mut record = csv::StringRecord::new();
                while reader
                    .read_record(&mut record)
                    .map_err(|e| csv_error(&self.path, e))?
                {
                    row.clear();
                    row.extend(record.iter().map(from_csv));
                    each(&row)?;
                }
                Ok(())
            }
            Format::Json | Format::Ndjson => {
                let index = ColumnIndex::new(&self.columns);
                each_object(&self.path, self.format, |object| {
                    index.fill(&mut row, &object);
                    each(&row)
                })
            }
        }
    }
}

/// Where each column's value goes in a row, by the column's name.
pub struct ColumnIndex<'a>(HashMap<&'a str, usize>);

impl<'a> ColumnIndex<'a> {
    pub fn new(columns: &'a [String]) -> Self {
        ColumnIndex(
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i))
                .collect(),
        )
    }

    /// Makes `row` the object's values in column order; null where the object has no value.
    pub fn fill(&self, row: &mut Vec<Value>, object: &Object) {
        row.clear();
        row.resize(self.0.len(), Value::Null);
        for (key, value) in object {
            if let Some(&at) = self.0.get(key.as_str()) {
                row[at] = from_json(value);
            }
        }
    }
}

/// What is learned of a column while reading: whether every value so far is a JSON boolean.
#[derive(Clone, Copy, PartialEq)]
enum Seen {
    Nothing,
    Booleans,
    Other,
}

/// Columns in order of first appearance, and whether each holds only booleans (and nulls):
/// a column of JSON booleans is boolean, anything else renders as its values are.
#[derive(Default)]
pub struct ColumnsSeen {
    columns: Vec<String>,
    index: HashMap<String, usize>,
    seen: Vec<Seen>,
}

impl ColumnsSeen {
    pub fn learn(&mut self, object: &Object) {
        for (key, value) in object {
            let at = match self.index.get(key) {
                Some(&at) => at,
                None => {
                    self.columns.push(key.clone());
                    self.seen.push(Seen::Nothing);
                    self.index.insert(key.clone(), self.columns.len() - 1);
                    self.columns.len() - 1
                }
            };
            self.seen[at] = match (self.seen[at], value) {
                (s, serde_json::Value::Null) => s,
                (Seen::Nothing | Seen::Booleans, serde_json::Value::Bool(_)) => Seen::Booleans,
                _ => Seen::Other,
            };
        }
    }

    pub fn finish(self) -> (Vec<String>, Vec<ValueType>) {
        let types = self
            .seen
            .into_iter()
            .map(|s| match s {
                Seen::Booleans => ValueType::Boolean,
                _ => ValueType::Any,
            })
            .collect();
        (self.columns, types)
    }
}

/// A CSV field as the most specific value: integer, real, or text.
fn from_csv(field: &str) -> Value {
    if field.is_empty() {
        return Value::Null;
    }
    if let Ok(n) = field.parse::<i64>() {
        return Value::Integer(n);
    }
    match field.parse::<f64>() {
        Ok(x) if x.is_finite() => Value::Real(x),
        _ => Value::Text(field.to_string()),
    }
}

fn csv_reader(path: &Path) -> Result<csv::Reader<File>, Error> {
    csv::Reader::from_path(path).map_err(|e| csv_error(path, e))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let path = path.to_path_buf();
    let line = |pos: &Option<csv::Position>| pos.as_ref().map(csv::Position::line);
    match e.kind() {
        csv::ErrorKind::Io(io) => Error::Read {
            path,
            message: io.to_string(),
        },
        csv::ErrorKind::Utf8 { pos, err } => Error::NotUtf8 {
            path,
            line: line(pos),
            field: err.field() + 1,
        },
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => Error::Fields {
            path,
            line: line(pos),
            len: *len,
            expected: *expected_len,
        },
        _ => Error::Csv {
            path,
            message: e.to_string(),
        },
    }
}

fn open(path: &Path) -> Result<BufReader<File>, Error> {
    File::open(path)
        .map(|f| BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| Error::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Each object of a JSON or NDJSON file, in order. Anything else where a row belongs is an
/// error that says where: a row is never dropped silently.
fn each_object<E: From<Error>>(
    path: &Path,
    format: Format,
    mut each: impl FnMut(Object) -> Result<(), E>,
) -> Result<(), E> {
    let mut reader = open(path)?;
    if format == Format::Ndjson {
        let mut line = String::new();
        let mut number = 0;
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| Error::ReadLine {
                    path: path.to_path_buf(),
                    line: number + 1,
                    message: e.to_string(),
                })?;
            if n == 0 {
                return Ok(());
            }
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(serde_json::Value::Object(object)) => each(object)?,
                Ok(_) => {
                    return Err(Error::NotObject {
                        path: path.to_path_buf(),
                        line: number,
                    }
                    .into());
                }
                Err(e) => {
                    return Err(Error::NotJson {
                        path: path.to_path_buf(),
                        line: Some(number),
                        message: e.to_string(),
                    }
                    .into());
                }
            }
        }
    }
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut failure = None;
    let read = deserializer
        .deserialize_any(Objects {
            each: &mut each,
            failure: &mut failure,
            path,
        })
        .and_then(|()| deserializer.end());
    match (failure, read) {
        (Some(failure), _) => Err(failure),
        (None, Ok(())) => Ok(()),
        // Valid JSON of another shape: say what it is.
        (None, Err(e)) if e.is_data() => {
            let text = e.to_string();
            let found = text
                .strip_prefix("invalid type: ")
                .and_then(|t| t.split(", expected").next())
                .unwrap_or(&text);
            Err(Error::NotArray {
                path: path.to_path_buf(),
                found: found.to_string(),
            }
            .into())
        }
        (None, Err(e)) => Err(Error::NotJson {
            path: path.to_path_buf(),
            line: None,
            message: e.to_string(),
        }
        .into()),
    }
}

/// Visits a JSON document that is an array of objects, or one object, handing each object
/// on as soon as it is read. `failure` keeps what is wrong with a row, or an error of `each`,
/// as it was said (serde would add a position to it).
struct Objects<'a, F, E> {
    each: &'a mut F,
    failure: &'a mut Option<E>,
    path: &'a Path,
}

/// What the visitor tells serde when it stops at `failure`: serde's error is dropped then.
const STOPPED: &str = "stopped at a row";

impl<'de, E: From<Error>, F: FnMut(Object) -> Result<(), E>> Visitor<'de> for Objects<'_, F, E> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut item = 0;
        while let Some(value) = seq.next_element::<serde_json::Value>()? {
            let serde_json::Value::Object(object) = value else {
                *self.failure = Some(
                    Error::ItemNotObject {
                        path: self.path.to_path_buf(),
                        item,
                    }
                    .into(),
                );
                return Err(de::Error::custom(STOPPED));
            };
            if let Err(e) = (self.each)(object) {
                *self.failure = Some(e);
                return Err(de::Error::custom(STOPPED));
            }
            item += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let object: Object =
            serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        (self.each)(object).map_err(|e| {
            *self.failure = Some(e);
            de::Error::custom(STOPPED)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's columns, their types and its rows.
    type Read = (Vec<String>, Vec<ValueType>, Vec<Vec<Value>>);

    fn rows_of(name: &str, text: &[u8]) -> Result<Read, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let file = DataFile::scan(&path)?;
        let mut rows = Vec::new();
        file.for_each_row(|row| {
            rows.push(row.to_vec());
            Ok::<_, Error>(())
        })?;
        Ok((file.columns, file.types, rows))
    }

    #[test]
    fn csv_fields_are_typed_one_by_one_and_a_header_alone_is_no_rows() {
        let (columns, _, rows) =
            rows_of("a.csv", b"id,amount,who\n1,2.5,ada\n2,,\"b,o\"\n").unwrap();
        assert_eq!(columns, ["id", "amount", "who"]);
        assert_eq!(
            rows,
            [
                vec![
                    Value::Integer(1),
                    Value::Real(2.5),
                    Value::Text("ada".into())
                ],
                vec![Value::Integer(2), Value::Null, Value::Text("b,o".into())],
            ]
        );
        let (columns, _, rows) = rows_of("b.csv", b"x,y\n").unwrap();
        assert_eq!((columns.len(), rows.len()), (2, 0));
    }

    #[test]
    fn json_columns_come_in_order_of_first_appearance_in_both_formats() {
        let ndjson = b"{\"a\": 1, \"ok\": true}\n\n{\"b\": \"x\", \"ok\": null}\n{\"a\": 2}\n";
        let array = b"[{\"a\": 1, \"ok\": true}, {\"b\": \"x\", \"ok\": null}, {\"a\": 2}]";
        for (name, text) in [("r.ndjson", &ndjson[..]), ("r.json", &array[..])] {
            let (columns, types, rows) = rows_of(name, text).unwrap();
            assert_eq!(columns, ["a", "ok", "b"], "{name}");
            assert_eq!(types, [ValueType::Any, ValueType::Boolean, ValueType::Any]);
            assert_eq!(rows.len(), 3);
            assert_eq!(rows[1], [Value::Null, Value::Null, Value::Text("x".into())]);
        }
        let (_, _, one) = rows_of("one.json", b"{\"a\": 1}").unwrap();
        assert_eq!(one, [vec![Value::Integer(1)]]);
    }

    #[test]
    fn what_is_not_a_row_is_an_error_that_says_where() {
        let error = rows_of("r.ndjson", b"{\"a\": 1}\n[1]\n").unwrap_err().to_string();
        assert!(
            error.ends_with("r.ndjson:2: expected a JSON object"),
            "{error}"
        );
        let error = rows_of("r.ndjson", b"{\"a\": 1}\n{\"a\": \n").unwrap_err().to_string();
        assert!(error.contains("r.ndjson:2: not JSON"), "{error}");
        let error = rows_of("r.json", b"[{\"a\": 1}, 2]").unwrap_err().to_string();
        assert!(
            error.ends_with("r.json: item 1 of the array is not an object"),
            "{error}"
        );
        let error = rows_of("r.json", b"42").unwrap_err().to_string();
        assert!(
            error.ends_with("r.json: expected a JSON array of objects, found integer `42`"),
            "{error}"
        );
        let error = rows_of("r.json", b"[{\"a\": 1}] x").unwrap_err().to_string();
        assert!(error.contains("not JSON: trailing characters"), "{error}");
        let error = rows_of("r.csv", b"a,b\n1,2\n1,2,3\n").unwrap_err().to_string();
        assert!(
            error.ends_with("r.csv:3: 3 fields, where the header has 2"),
            "{error}"
        );
        let error = rows_of("r.csv", b"a,b\n1,2\n1,\xff\n").unwrap_err().to_string();
        assert!(
            error.ends_with("r.csv:3: field 2 is not UTF-8 text"),
            "{error}"
        );
    }
}
