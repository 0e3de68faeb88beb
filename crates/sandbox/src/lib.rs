//! The sandbox: a Kubernetes API server over real HTTP ([`api`]) and a simulated
//! cluster behind it ([`sim`]); [`cli`] wires both into `podwarden sandbox`.
//! It does not depend on the model crate, so the simulated kubelet and the auditor's
//! rules check each other.

pub mod alloc;
pub mod api;
pub mod cli;
pub mod sim;
