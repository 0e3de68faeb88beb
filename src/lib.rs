//! podwarden: audits pod lifecycles against the documented restartPolicy semantics.
//!
//! The model lives in `podwarden-model`, the sandbox cluster in `podwarden-sandbox`;
//! this crate holds what runs them: the offline auditor, the live controller and the
//! command line.

pub mod audit;
pub mod controller;
pub mod demo;
