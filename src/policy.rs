//! What a stage's and a flow's settings resolve to that the checker resolves and the plan
//! carries: below both, so that neither reads the other for it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How many runs a chain of jumps (`-> F`), or a nest of child runs (`call F`), may hold
/// before wvflow stops it: the loop warnings W0601 and W0604 name it.
pub const CHAIN_DEPTH: usize = 16;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Tolerance {
    Count(u64),
    Percent(f64),
}
