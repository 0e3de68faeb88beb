//! What a simulation request can fail with.

use crate::api::ApiError;

use super::config::VIOLATION_RULES;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no node named {0:?}")]
    UnknownNode(String),
    #[error("node {0:?} was deleted; only `heal` applies to it")]
    NodeDeleted(String),
    #[error("no pod {namespace}/{name}")]
    UnknownPod { namespace: String, name: String },
    #[error("unknown rule {0:?} (known: {known})", known = VIOLATION_RULES.join(", "))]
    UnknownRule(String),
    #[error("cannot inject {rule} into pod {namespace}/{name}: {why}")]
    CannotInject {
        namespace: String,
        name: String,
        rule: String,
        why: String,
    },
    #[error(
        "the simulation runs in real time; advancing it by hand needs a stepped clock (no --speed)"
    )]
    NotStepped,
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Why a scenario step did not (wholly) happen. The cluster logs it and the scenario
/// goes on.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("the server does not serve {api_version} {kind}")]
    NotServed { api_version: String, kind: String },
    /// Some of a create step's objects were not created (at most the first five
    /// failures are kept).
    #[error("created {created} objects; failures: {}", failures.join("; "))]
    Create { created: u64, failures: Vec<String> },
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Api(#[from] ApiError),
}
