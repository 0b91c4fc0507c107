//! The local runtime behind `wvflow run`: the embedded SQLite store, activities as processes,
//! retries with an injected clock, cancellation, and the executor of plans.
//!
//! | module | job |
//! |---|---|
//! | [`store`] | SQLite: workspace and run databases, file sources, idempotency records |
//! | [`activity`] | starting an activity: argv or `sh`, NDJSON in and out, timeouts, heartbeat |
//! | [`retry`] | the retry policy over attempts |
//! | [`clock`], [`cancel`] | injected time; Ctrl-C and SIGTERM |
//! | [`engine`] | the executor: triggers, parallel stages, steps, saga |
//! | [`runs`] | the durable run store: history, liveness, resume, signals, retention |

pub mod activity;
pub mod cancel;
pub mod clock;
pub mod engine;
pub mod retry;
pub mod runs;
pub mod store;
