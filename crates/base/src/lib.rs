//! Low-level pieces both the model and the sandbox use, kept here so that neither
//! reaches into the other: Kubernetes label selectors and a JSON scanner.

pub mod scan;
pub mod selector;
