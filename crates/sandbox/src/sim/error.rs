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
