//! The durable run store in the workspace database: runs, stage states, attempts, an
//! append-only event log, compensations and signals, written as the run goes so that runs can
//! be listed, traced, resumed after a crash, cancelled and signalled from another process.
//! Schema and semantics: `docs/runs.md`.
//!
//! | module | job |
//! |---|---|
//! | [`schema`] | the tables, their version and migration; opening the database |
//! | [`journal`] | recording one run's transitions; requests from other processes |
//! | [`owner`] | liveness: the owner process, its lease, cancel and pause polling |
//! | [`catalog`] | reading runs back; retention |

pub mod catalog;
pub mod journal;
pub mod owner;
pub mod schema;
