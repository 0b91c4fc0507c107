//! The rule families, one file each, over the shared model ([`crate::check::model`]).

pub mod calls;
pub mod config;
pub mod connectors;
pub mod exprs;
pub mod loops;
pub mod names;
pub mod saga;
pub mod schedules;
pub mod tests;
pub mod triggers;
