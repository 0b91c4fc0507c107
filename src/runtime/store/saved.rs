//! One stage's table as a database file of its own, which the tasks of an exported run pass
//! to each other: written from the run database, read back into another's. The file holds
//! one ordinary table named as the stage, with its columns' declared types, whatever layout
//! the run database keeps its tables in.

use super::{Access, Error, Store, again_on_schema_change, create_table, layout, quote};
use crate::value::ValueType;
use std::path::Path;

impl Store {
    /// Copies table `table` of the run database, with its declared column types, into a
    /// database file of its own at `file`. The file is written under another name beside
    /// it and then renamed, so a reader sees all of it or none.
    pub fn save_stage_table(&self, table: &str, file: &Path) -> Result<(), Error> {
        let e = Error::from;
        let copy = self.saved_copy(table)?;
        let partial = file.with_extension(format!("partial-{}", std::process::id()));
        let _ = std::fs::remove_file(&partial);
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(|err| Error::Path {
                access: Access::Create,
                path: folder.to_path_buf(),
                message: err.to_string(),
            })?;
        }
        self.conn
            .execute("ATTACH DATABASE ?1 AS saved", [partial.to_string_lossy()])
            .map_err(e)?;
        // A new file nobody reads until it is renamed: no journal; one fsync at the end.
        let copied = self
            .conn
            .execute_batch("PRAGMA saved.journal_mode = OFF; PRAGMA saved.synchronous = OFF;")
            .and_then(|()| self.conn.execute_batch(&copy))
            .map_err(e);
        let detached = self.conn.execute("DETACH DATABASE saved", []).map_err(e);
        copied.and(detached.map(|_| ()))?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|err| Error::Path {
                access: Access::Write,
                path: partial.clone(),
                message: err.to_string(),
            })?;
        std::fs::rename(&partial, file).map_err(|err| Error::Path {
            access: Access::Write,
            path: file.to_path_buf(),
            message: err.to_string(),
        })
    }

    /// The statements that copy `table` of the run database into `saved.table`.
    fn saved_copy(&self, table: &str) -> Result<String, Error> {
        let q = quote(table);
        if self.layout
            && let Some(entry) = layout::lookup(&self.conn, table)?
        {
            return Ok(format!(
                "{}; INSERT INTO saved.{q} SELECT * FROM {};",
                create_table(&format!("saved.{q}"), &entry.columns, &entry.types()),
                entry.select()
            ));
        }
        // A table of its own (a run database of the layout before).
        let rest = self.definition(("run", None), table)?;
        Ok(format!(
            "CREATE TABLE saved.{rest}; INSERT INTO saved.{q} SELECT * FROM run.{q};"
        ))
    }

    /// Copies the one table of a file [`Store::save_stage_table`] wrote into the run
    /// database, replacing a table of that name.
    pub fn load_stage_table(&mut self, table: &str, file: &Path) -> Result<(), Error> {
        let e = Error::from;
        self.conn
            .execute("ATTACH DATABASE ?1 AS loaded", [file.to_string_lossy()])
            .map_err(e)?;
        let copied = self.copy_loaded(table, file);
        let detached = self.conn.execute("DETACH DATABASE loaded", []).map_err(e);
        copied.and(detached.map(|_| ()))
    }

    /// What follows `CREATE TABLE ` in the definition of `table` in `schema` (attached from
    /// `file`, when it is one): its name and columns, to make a copy of it elsewhere.
    fn definition(&self, (schema, file): (&str, Option<&Path>), table: &str) -> Result<String, Error> {
        let create: String = self
            .conn
            .query_row(
                &format!("SELECT sql FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?1"),
                [table],
                |r| r.get(0),
            )
            .map_err(|err| Error::NoSavedTable {
                table: table.to_string(),
                file: file.map(Path::to_path_buf),
                message: err.to_string(),
            })?;
        create
            .strip_prefix("CREATE TABLE ")
            .map(str::to_string)
            .ok_or_else(|| Error::NotCreateTable {
                table: table.to_string(),
            })
    }

    /// Copies `loaded.table` into the run database.
    fn copy_loaded(&self, table: &str, file: &Path) -> Result<(), Error> {
        let q = quote(table);
        let rest = self.definition(("loaded", Some(file)), table)?;
        if !self.layout {
            return self
                .conn
                .execute_batch(&format!(
                    "DROP TABLE IF EXISTS run.{q};
                     CREATE TABLE run.{rest};
                     INSERT INTO run.{q} SELECT * FROM loaded.{q};"
                ))
                .map_err(Error::from);
        }
        let (columns, types) = self.loaded_columns(table)?;
        let from = format!("loaded.{q}");
        again_on_schema_change(|| {
            let (tx, entry) = self.begin_rows(table, &columns, &types)?;
            self.copy_into_entry(&tx, &entry, &from, &columns)?;
            tx.commit().map_err(Error::from)
        })
    }

    /// The columns of `loaded.table` and the types their declarations keep.
    fn loaded_columns(&self, table: &str) -> Result<(Vec<String>, Vec<ValueType>), Error> {
        let mut statement = self
            .conn
            .prepare("SELECT name, type FROM pragma_table_info(?1, 'loaded') ORDER BY cid")?;
        let columns = statement
            .query_map([table], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(columns
            .into_iter()
            .map(|(name, decl)| (name, ValueType::from_column_decl(Some(&decl))))
            .unzip())
    }
}
