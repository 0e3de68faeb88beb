//! The offline auditor: pod snapshots from a file or a pipe, audited as transitions of
//! each uid in input order, with a policy's selector and rule settings applied.

pub mod cli;
pub mod input;
mod policy;
pub mod report;

pub use podwarden_model::stream::{Auditor, Scope, Summary};
