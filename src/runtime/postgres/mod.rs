//! Stages on a PostgreSQL connector (`stage s on pg = ...`, `docs/connectors.md`): the
//! connector opened from `wvflow.toml` with its `${NAME}`s read from the environment then
//! (`open.rs`), the rows of the stages it reads shipped into temporary tables of the session
//! and its result streamed back into the run database (`ship.rs`), its queries and `save to`
//! in one transaction that commits only when the whole stage succeeded (`run.rs`), and the
//! query cancelled on the server when the stage times out or the run is cancelled. Errors
//! name the connector and never carry a secret (`error.rs`).

mod error;
mod literal;
mod open;
mod run;
mod ship;

pub use error::Error;
pub use literal::inline_params;
pub use run::{Job, run};
