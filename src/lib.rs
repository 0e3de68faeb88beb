//! podwarden: audits pod lifecycles against the documented restartPolicy semantics.

pub mod lifecycle;
pub mod selector;
