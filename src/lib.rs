//! podwarden: audits pod lifecycles against the documented restartPolicy semantics.

pub mod alloc;
pub mod audit;
pub mod crd;
pub mod lifecycle;
pub mod sandbox;
pub mod selector;
pub mod sim;
