//! podwarden: audits pod lifecycles against the documented restartPolicy semantics.

pub mod audit;
pub mod lifecycle;
pub mod sandbox;
pub mod selector;
