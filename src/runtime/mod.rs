//! The local runtime (issue 5, in progress): the embedded SQLite engine, retries with an
//! injected clock, and (next) activities and the DAG executor behind `wvflow run`.

pub mod activity;
pub mod cancel;
pub mod clock;
pub mod engine;
pub mod retry;
pub mod store;
