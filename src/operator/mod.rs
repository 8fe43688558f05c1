//! The Kubernetes body of the engine (`archlab operator`): Campaign and Experiment resources are
//! its memory, pods its trainers. It decides nothing: the engine and core decide, this module
//! moves their commands and observations between them and the API server.

pub mod outcome;
pub mod pod;
pub mod store;
