//! Rows as people and programs read them: NDJSON, a JSON array, CSV and an aligned table,
//! each value in its type's form (docs/language.md, "Types of values"). `activate('file')`
//! and `wvflow runs rows` write the same text.

use super::store::Rows;

/// One JSON object per line.
pub fn ndjson(rows: &Rows) -> String {
    rows.to_json_objects()
        .into_iter()
        .map(|o| serde_json::Value::Object(o).to_string() + "\n")
        .collect()
}

/// A JSON array of objects, indented.
pub fn json(rows: &Rows) -> String {
    serde_json::to_string_pretty(&rows.to_json_objects()).unwrap_or_default() + "\n"
}

/// A header row, then the values.
pub fn csv(rows: &Rows) -> Result<String, ::csv::Error> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record(&rows.columns)?;
    for row in &rows.values {
        let fields: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, v)| crate::value::text(v, rows.type_of(i)))
            .collect();
        writer.write_record(&fields)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| ::csv::Error::from(e.into_error()))?;
    // The fields are text: only a bug would make other bytes.
    String::from_utf8(bytes)
        .map_err(|e| ::csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Columns aligned, for a terminal; `null` where a value is missing.
pub fn table(rows: &Rows) -> String {
    let cells: Vec<Vec<String>> = rows
        .values
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    rusqlite::types::Value::Null => "null".to_string(),
                    // A table is for people: control characters in values are escaped.
                    v => crate::terminal::escape_controls(&crate::value::text(v, rows.type_of(i)))
                        .into_owned(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..rows.columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([rows.columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |fields: &[String]| {
        let padded: Vec<String> = fields
            .iter()
            .zip(&widths)
            .map(|(f, w)| format!("{f:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&rows.columns);
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}
