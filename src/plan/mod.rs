//! Lowering checked flows to execution plans ([`ir`]), and their renderings.

pub mod ir;
mod lower;
pub mod looped;
pub mod render;
pub mod sql;
pub mod tasks;

pub use ir::Plan;
pub use lower::lower;
