//! Stages on a DuckDB connector (`stage s on duck = ...`, `docs/connectors.md`), run by
//! DuckDB's library in the process when wvflow is built with the `duckdb` feature: the
//! database file of `wvflow.toml` opened once per process and a connection of its own for each
//! stage (`open.rs`), the rows of the stages it reads appended into temporary tables and its
//! result read back into the run database (`ship.rs`), CSV files read by DuckDB itself
//! (`read_csv`, written by the plan), its queries and `save to` in one transaction that
//! commits only when the whole stage succeeded (`run.rs`), and the query interrupted when
//! the stage times out or the run is cancelled. Errors name the connector (`error.rs`).
//! Without the feature, a stage on DuckDB is refused at check time (E0702) and [`run`] fails
//! saying so.

mod error;
#[cfg(feature = "duckdb")]
mod open;
#[cfg(feature = "duckdb")]
mod run;
#[cfg(feature = "duckdb")]
mod ship;

pub use super::postgres::Job;
pub use error::Error;
#[cfg(feature = "duckdb")]
pub use run::run;

/// Without DuckDB in the build, a stage on it fails (the checker refuses it first: E0702).
#[cfg(not(feature = "duckdb"))]
pub fn run(job: &Job, _: &mut crate::runtime::store::Store) -> Result<crate::runtime::store::Table, Error> {
    Err(Error::NotBuilt {
        connector: job.connector.to_string(),
    })
}
