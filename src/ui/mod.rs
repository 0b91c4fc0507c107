//! `wvflow ui`: a local web dashboard over a workspace's run store. The binary serves the
//! page (its assets are compiled in: nothing is fetched from elsewhere) and a JSON API; the
//! page polls the API, so what it shows follows the runs without a reload.
//!
//! | module | job |
//! |---|---|
//! | [`server`] | HTTP on the wire: bounded requests, deadlines, a thread per connection |
//! | [`slots`] | how many connections, from whom; the slowest given up for a new one |
//! | [`http`] | routing, responses, who may call what |
//! | [`read`] | the API's reads: runs, one run, its graph, logs, rows |
//! | [`flows`] | the workspace's flows: parameters, schedules, recent runs, diagnostics |
//! | [`actions`] | start a flow, cancel, resume, signal: what needs the token |
//!
//! API and security: `docs/ui.md`.

mod actions;
mod flows;
mod http;
mod read;
mod server;
mod slots;

pub use http::{Dashboard, Options};
