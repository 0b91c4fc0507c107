//! The checker's shared model of a workspace, which every rule family reads: the index of
//! flows and activities, each flow's graph, the table of configuration keys, the settings in
//! force for each stage and flow, typed values of config expressions, and the binder with its functions and column shapes.

pub mod binder;
pub mod functions;
pub mod graph;
pub mod index;
pub mod keys;
pub mod outline;
pub mod settings;
pub mod shapes;
pub mod values;
