//! The semantic model of pod lifecycles (SEMANTICS.md): a compact pod view, the phase the
//! kubelet computes, the rules, and the orphan recreation decision. Pure: no client, no
//! I/O, no async.

pub mod orphans;
pub mod phase;
pub mod policy;
pub mod rules;
pub mod stream;
pub mod time;
pub mod tracker;
pub mod view;

pub use orphans::{Attempts, Evidence, Next, NodeFacts, Skip, decide, replacement};
pub use phase::{container_should_restart, expected_phase, get_phase};
pub use rules::{
    Finding, Input, RestartBudget, RuleId, RuleSet, RuleSettings, Severity, evaluate,
    evaluate_deadlines, next_due,
};
pub use time::{Seconds, Timestamp};
pub use tracker::{Arrival, Tracker};
pub use view::{Phase, PodView};
