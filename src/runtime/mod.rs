//! The local runtime behind `wvflow run`: the embedded SQLite store, activities as processes,
//! retries with an injected clock, cancellation, and the executor of plans.
//!
//! | module | job |
//! |---|---|
//! | [`store`] | SQLite: workspace and run databases, file sources, idempotency records |
//! | [`sql_functions`] | what wvflow adds to SQLite: `hash`, `now()` on the run clock, time arithmetic |
//! | [`activate`] | delivering rows to a file, a webhook or the log |
//! | [`activity`] | starting an activity: argv or `sh`, NDJSON in and out, timeouts, heartbeat |
//! | `spawn` | an activity's process started without a fork of wvflow |
//! | [`output`] | an activity's rows: in memory, or spooled to a file as they come |
//! | [`input`] | an activity's input rows: in memory, or a query's table spooled as NDJSON |
//! | [`files`] | data files (CSV, JSON, NDJSON) streamed into the engine |
//! | [`pools`] | slots of `pool`s, held in the run store across runs and processes |
//! | [`hooks`] | flow hooks called with the run summary |
//! | [`retry`] | the retry policy over attempts |
//! | [`rows_text`] | rows as NDJSON, JSON, CSV and a table, for files and `runs rows` |
//! | [`clock`], [`cancel`] | injected time; Ctrl-C and SIGTERM |
//! | [`virtual_clock`] | the time of `wvflow test`: it jumps to the next wake-up once all work waits |
//! | [`rules`] | the run's rules, written once for `wvflow run` and exported runs: what starts, forks, races, the timeout, the verdict, the saga, retries |
//! | [`engine`] | the executor: parallel stages on an in-memory board, steps, saga |
//! | [`error`] | why a call, a step or a stage did not succeed |
//! | [`launch`] | running flows as `wvflow run` does: claim, journal, hooks, retention, child runs, jumps |
//! | [`continued`] | `continue_as_new`: what a run that continues another carries from it |
//! | [`flow_call`] | flow calls (`Name(arg = value)`) and their arguments bound to parameters |
//! | [`state`] | the states of stages, attempts and runs |
//! | [`runs`] | the durable run store: history, liveness, resume, signals, retention |
//! | [`schedule`] | fire times of cron and interval schedules, daylight saving, catch-up |
//! | [`scheduler`] | the daemon behind `wvflow schedule`: starts due and triggered runs as processes |
//! | [`postgres`] | a stage on a PostgreSQL connector: rows shipped in with COPY, queries on the server |
//! | [`duckdb`] | a stage on a DuckDB connector (the `duckdb` feature): rows appended in, queries and CSV files in DuckDB |
//! | [`tasks`] | what the tasks of an exported flow run: one stage at a time on shared state |

pub mod activate;
pub mod activity;
pub mod cancel;
pub mod clock;
pub mod continued;
pub mod duckdb;
pub mod engine;
pub mod error;
pub mod files;
pub mod flow_call;
pub mod hooks;
pub mod input;
pub mod launch;
pub mod means;
pub mod output;
pub mod pools;
pub mod postgres;
pub mod retry;
pub mod rows_text;
pub mod rules;
pub mod runs;
pub mod schedule;
pub mod scheduler;
mod spawn;
pub mod sql_functions;
pub mod state;
pub mod store;
pub mod tasks;
pub mod virtual_clock;
