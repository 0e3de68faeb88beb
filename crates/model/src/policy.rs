//! The `PodLifecyclePolicy` custom resource (`podwarden.dev/v1alpha1`, short name `plp`).
//!
//! A policy selects pods of its namespace, says which rules apply to them and with which
//! settings, and whether orphaned pods are recreated. The schema carries the validation the
//! API server enforces (enums, ranges, duration patterns, list bounds, CEL rules); the
//! conversions below ([`PodLifecyclePolicySpec::rule_settings`] and friends) enforce the same
//! constraints in Rust, because the offline auditor reads policy files no API server has seen.
//! Their error variants name the field and double as Event reasons.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::DurationError;
use crate::{Finding, RestartBudget, RuleId, RuleSettings, Seconds, Severity};
use podwarden_base::selector::{Selector, SelectorError};

/// The `Ready` condition: the spec was understood and is being applied.
pub const CONDITION_READY: &str = "Ready";

/// The most findings kept in `status.recentFindings` (the newest ones).
pub const RECENT_FINDINGS_LIMIT: usize = 20;

/// The most conditions kept in `status.conditions`.
pub const CONDITIONS_LIMIT: usize = 8;
/// `status.shards` holds at most this many entries (the largest `--shard` count).
pub const SHARDS_LIMIT: usize = 64;

/// Longest message kept in a recent finding, in bytes; longer ones are cut at a char boundary.
pub const FINDING_MESSAGE_LIMIT: usize = 1024;

/// Longest duration string the schema admits.
pub const DURATION_MAX_LENGTH: usize = 32;

/// Shortest duration a policy may set (after rounding to whole seconds).
pub const MIN_DURATION: Seconds = Seconds(1);

/// Longest duration a policy may set: one year. Also keeps every admitted value inside the
/// range the API server's CEL `duration()` can represent.
pub const MAX_DURATION: Seconds = Seconds(8760 * 3600);

/// `spec.rules.restartBudget.count` bounds.
pub const RESTART_BUDGET_COUNT_RANGE: (i32, i32) = (1, 1000);

/// `spec.orphans.maxAttempts` bounds; 0 disables recreation.
pub const MAX_ATTEMPTS_RANGE: (i32, i32) = (0, 10);

/// The CEL rule on every duration field. Rounding to whole seconds is monotone, so whatever
/// the API server admits with this rule also passes [`check_duration`].
const DURATION_RULE: &str =
    "duration(self) >= duration('1s') && duration(self) <= duration('8760h')";
const DURATION_RULE_MESSAGE: &str = "must be between 1s and 8760h";

/// The CEL rule on `spec.orphans`.
const BACKOFF_RULE: &str = "duration(self.backoff) <= duration(self.maxBackoff)";
const BACKOFF_RULE_MESSAGE: &str = "backoff must not exceed maxBackoff";

/// Which pods a policy audits, with which rules, and whether it recreates orphans.
// The printer columns repeat `type_ = ...`, which is not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "podwarden.dev",
    version = "v1alpha1",
    kind = "PodLifecyclePolicy",
    plural = "podlifecyclepolicies",
    shortname = "plp",
    namespaced,
    status = "PodLifecyclePolicyStatus",
    derive = "PartialEq",
    doc = "Audits the lifecycle of the selected pods against the documented restartPolicy semantics and, in Enforce mode, recreates orphaned pods.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Pods",
        type_ = "integer",
        json_path = ".status.podsAudited",
        description = "Pods selected and audited"
    ),
    printcolumn(
        name = "Violations",
        type_ = "integer",
        json_path = ".status.violations",
        description = "Findings of severity violation"
    ),
    printcolumn(
        name = "Recreated",
        type_ = "integer",
        json_path = ".status.recreated",
        description = "Orphaned pods recreated"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.mode"
)]
#[serde(rename_all = "camelCase")]
pub struct PodLifecyclePolicySpec {
    /// Which pods of the policy's namespace the policy applies to. Absent or empty selects
    /// every pod of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Audit records findings only; Enforce also recreates orphaned pods.
    #[serde(default)]
    pub mode: PolicyMode,

    /// Which rules run and their settings.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub rules: RulesSpec,

    /// Recreation of orphaned bare pods (Enforce mode only).
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub orphans: OrphansSpec,
}

/// What the policy does besides recording findings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PolicyMode {
    /// Record findings (status, Events, metrics) and change nothing.
    #[default]
    Audit,
    /// Also recreate orphaned bare pods when there is evidence the old pod cannot still run.
    Enforce,
}

/// Rule selection and settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RulesSpec {
    /// Rule ids that do not run for this policy.
    #[serde(default)]
    #[schemars(length(max = RuleId::ALL.len()), extend("x-kubernetes-list-type" = "set"))]
    pub disabled: Vec<RuleId>,

    /// How long a pod may stay Pending before stuck-pending reports it (a duration such as
    /// 90s, 10m or 1h30m).
    #[serde(default = "default_stuck_pending_after")]
    #[schemars(schema_with = "duration_schema")]
    pub stuck_pending_after: String,

    /// How long a deleted pod may stay after its deletion deadline (deletionTimestamp)
    /// before stuck-terminating reports it (a duration such as 5m).
    #[serde(default = "default_stuck_terminating_after")]
    #[schemars(schema_with = "duration_schema")]
    pub stuck_terminating_after: String,

    /// At most this many restarts of one pod within the window before
    /// restart-budget-exceeded reports it.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub restart_budget: RestartBudgetSpec,

    /// The lowest severity recorded as a Kubernetes Event; findings below it appear in
    /// status and metrics only.
    #[serde(default = "default_event_severity")]
    pub event_severity: Severity,
}

/// A restart budget: `count` restarts per `window`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartBudgetSpec {
    /// Restarts allowed within the window.
    #[serde(default = "default_budget_count")]
    #[schemars(range(min = RESTART_BUDGET_COUNT_RANGE.0, max = RESTART_BUDGET_COUNT_RANGE.1))]
    pub count: i32,

    /// The sliding window the restarts are counted in (a duration such as 30m or 1h).
    #[serde(default = "default_budget_window")]
    #[schemars(schema_with = "duration_schema")]
    pub window: String,
}

/// Recreation of orphaned bare pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": BACKOFF_RULE,
    "message": BACKOFF_RULE_MESSAGE,
    "fieldPath": ".backoff",
}]))]
pub struct OrphansSpec {
    /// Recreation attempts per orphaned pod; 0 disables recreation.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = MAX_ATTEMPTS_RANGE.0, max = MAX_ATTEMPTS_RANGE.1))]
    pub max_attempts: i32,

    /// The wait before the first retry of a failed recreation; it doubles per attempt.
    #[serde(default = "default_backoff")]
    #[schemars(schema_with = "duration_schema")]
    pub backoff: String,

    /// The longest wait between retries.
    #[serde(default = "default_max_backoff")]
    #[schemars(schema_with = "duration_schema")]
    pub max_backoff: String,

    /// Also recreate pods with `restartPolicy: Never`. Off by default: such a pod asked
    /// not to be run again.
    #[serde(default)]
    pub recreate_never: bool,
}

/// What the controller observed for this policy. Every field changes only when what it
/// counts changes, so writing an unchanged status is a no-op.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodLifecyclePolicyStatus {
    /// The metadata.generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions; `Ready` is True while the spec is valid and applied.
    #[serde(default)]
    #[schemars(
        length(max = CONDITIONS_LIMIT),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"])
    )]
    pub conditions: Vec<Condition>,

    /// Pods the policy currently selects and audits.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub pods_audited: i64,

    /// Findings of severity violation recorded for the selected pods.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub violations: i64,

    /// Findings recorded for the selected pods, by rule id; rules without findings are absent.
    #[serde(default)]
    #[schemars(extend("maxProperties" = RuleId::ALL.len()))]
    pub findings_by_rule: BTreeMap<String, i64>,

    /// The newest findings, newest first; at most 20 are kept.
    #[serde(default)]
    #[schemars(length(max = RECENT_FINDINGS_LIMIT))]
    pub recent_findings: Vec<RecentFinding>,

    /// Orphaned pods recreated under this policy.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub recreated: i64,

    /// When the controller runs in shards (`--shard i/n`): what each shard counted, keyed
    /// `i/n`, each entry written by that shard alone. The totals above are their sums,
    /// written by shard 0.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = SHARDS_LIMIT))]
    pub shards: BTreeMap<String, ShardStatus>,
}

/// What one shard counted for a policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// Pods of this shard the policy selects.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub pods_audited: i64,
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub violations: i64,
    #[serde(default)]
    #[schemars(extend("maxProperties" = RuleId::ALL.len()))]
    pub findings_by_rule: BTreeMap<String, i64>,
    /// This shard's newest findings, newest first.
    #[serde(default)]
    #[schemars(length(max = RECENT_FINDINGS_LIMIT))]
    pub recent_findings: Vec<RecentFinding>,
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub recreated: i64,
}

/// One finding as kept in status. `rule` is a string (not the rule enum) so that a status
/// written by a newer podwarden still reads in an older one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentFinding {
    /// The rule id, e.g. restart-against-policy.
    pub rule: String,
    /// info, warning or violation.
    pub severity: Severity,
    /// The pod's name.
    pub pod: String,
    /// The pod's uid: a recreated pod has the same name and a new uid.
    pub uid: String,
    /// The pod's resourceVersion when the finding was made.
    pub resource_version: String,
    /// The container the finding is about, if it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// What was found, expected and observed, in one line.
    #[schemars(length(max = FINDING_MESSAGE_LIMIT))]
    pub message: String,
}

impl From<&Finding> for RecentFinding {
    fn from(f: &Finding) -> Self {
        RecentFinding {
            rule: f.rule.as_str().to_string(),
            severity: f.severity,
            pod: f.pod.clone(),
            uid: f.uid.clone(),
            resource_version: f.resource_version.clone(),
            container: f.container.clone(),
            message: truncate(&f.message, FINDING_MESSAGE_LIMIT).to_string(),
        }
    }
}

impl PodLifecyclePolicyStatus {
    /// Put `finding` first in `recentFindings`, dropping the oldest beyond the limit.
    pub fn push_recent_finding(&mut self, finding: RecentFinding) {
        self.recent_findings.insert(0, finding);
        self.recent_findings.truncate(RECENT_FINDINGS_LIMIT);
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Orphan recreation settings, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanSettings {
    /// Attempts per orphaned pod; 0 disables recreation.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles per attempt.
    pub backoff: Seconds,
    /// Cap on the wait between retries.
    pub max_backoff: Seconds,
    /// Pods with `restartPolicy: Never` are recreated too.
    pub recreate_never: bool,
}

impl OrphanSettings {
    pub const DEFAULT: OrphanSettings = OrphanSettings {
        max_attempts: 3,
        backoff: Seconds(30),
        max_backoff: Seconds(600),
        recreate_never: false,
    };

    /// The wait before retry number `attempt` (1 for the first retry): backoff doubled per
    /// earlier retry, capped at max_backoff.
    pub fn backoff_for(&self, attempt: u32) -> Seconds {
        let doublings = attempt.saturating_sub(1).min(32);
        let wait = self.backoff.0.saturating_mul(1i64 << doublings);
        Seconds(wait.min(self.max_backoff.0))
    }
}

impl Default for OrphanSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A policy that cannot be applied. The variant names are used as Event reasons.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A duration field does not parse.
    #[error("{field}: {error}")]
    InvalidDuration {
        field: &'static str,
        error: DurationError,
    },
    /// A duration field parses but lies outside [`MIN_DURATION`, `MAX_DURATION`].
    #[error("{field}: {value:?} is out of range (allowed {min} to {max})")]
    DurationOutOfRange {
        field: &'static str,
        value: String,
        min: Seconds,
        max: Seconds,
    },
    /// An integer field lies outside its range.
    #[error("{field}: {value} is out of range (allowed {min} to {max})")]
    OutOfRange {
        field: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    /// `spec.orphans.backoff` is longer than `spec.orphans.maxBackoff`.
    #[error("spec.orphans.backoff: {backoff:?} exceeds spec.orphans.maxBackoff {max_backoff:?}")]
    BackoffAboveMax {
        backoff: String,
        max_backoff: String,
    },
    /// A rule id appears twice in `spec.rules.disabled`.
    #[error("spec.rules.disabled: {rule} is listed more than once")]
    DuplicateRule { rule: RuleId },
    /// `spec.selector` does not compile.
    #[error("spec.selector: {0}")]
    InvalidSelector(SelectorError),
    /// The policy file is not well-formed YAML or JSON.
    #[error("not valid {format}: {message}")]
    InvalidSyntax {
        format: &'static str,
        message: String,
    },
    /// The document is not a `podwarden.dev/v1alpha1` `PodLifecyclePolicy`.
    #[error(
        "apiVersion {api_version:?}, kind {kind:?}: expected apiVersion \"podwarden.dev/v1alpha1\", kind \"PodLifecyclePolicy\""
    )]
    WrongKind { api_version: String, kind: String },
    /// A field the schema does not know (a typo, or a field of another version).
    #[error("{path}: unknown field")]
    UnknownField { path: String },
    /// A field has the wrong type or an invalid value.
    #[error("{path}: {message}")]
    InvalidField { path: String, message: String },
}

impl PolicyError {
    /// The variant's name, for Event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::InvalidDuration { .. } => "InvalidDuration",
            PolicyError::DurationOutOfRange { .. } => "DurationOutOfRange",
            PolicyError::OutOfRange { .. } => "OutOfRange",
            PolicyError::BackoffAboveMax { .. } => "BackoffAboveMax",
            PolicyError::DuplicateRule { .. } => "DuplicateRule",
            PolicyError::InvalidSelector(_) => "InvalidSelector",
            PolicyError::InvalidSyntax { .. } => "InvalidSyntax",
            PolicyError::WrongKind { .. } => "WrongKind",
            PolicyError::UnknownField { .. } => "UnknownField",
            PolicyError::InvalidField { .. } => "InvalidField",
        }
    }
}

/// Parse a duration field and check it against [`MIN_DURATION`] and [`MAX_DURATION`].
pub fn check_duration(field: &'static str, value: &str) -> Result<Seconds, PolicyError> {
    let d = Seconds::parse(value).map_err(|error| PolicyError::InvalidDuration { field, error })?;
    if d < MIN_DURATION || d > MAX_DURATION {
        return Err(PolicyError::DurationOutOfRange {
            field,
            value: value.to_string(),
            min: MIN_DURATION,
            max: MAX_DURATION,
        });
    }
    Ok(d)
}

fn check_range(
    field: &'static str,
    value: i32,
    (min, max): (i32, i32),
) -> Result<u32, PolicyError> {
    if value < min || value > max {
        return Err(PolicyError::OutOfRange {
            field,
            value: value.into(),
            min: min.into(),
            max: max.into(),
        });
    }
    u32::try_from(value).map_err(|_| PolicyError::OutOfRange {
        field,
        value: value.into(),
        min: 0,
        max: max.into(),
    })
}

impl PodLifecyclePolicySpec {
    /// The rule settings: disabled rules, stuck-pending and stuck-terminating thresholds,
    /// restart budget.
    pub fn rule_settings(&self) -> Result<RuleSettings, PolicyError> {
        let rules = &self.rules;
        for (i, rule) in rules.disabled.iter().enumerate() {
            if rules.disabled[..i].contains(rule) {
                return Err(PolicyError::DuplicateRule { rule: *rule });
            }
        }
        let stuck_pending_after =
            check_duration("spec.rules.stuckPendingAfter", &rules.stuck_pending_after)?;
        let stuck_terminating_after = check_duration(
            "spec.rules.stuckTerminatingAfter",
            &rules.stuck_terminating_after,
        )?;
        let count = check_range(
            "spec.rules.restartBudget.count",
            rules.restart_budget.count,
            RESTART_BUDGET_COUNT_RANGE,
        )?;
        let window = check_duration(
            "spec.rules.restartBudget.window",
            &rules.restart_budget.window,
        )?;
        Ok(RuleSettings {
            disabled: rules.disabled.iter().copied().collect(),
            stuck_pending_after,
            stuck_terminating_after,
            restart_budget: RestartBudget { count, window },
        })
    }

    /// The compiled pod selector; absent selects every pod of the namespace.
    pub fn selector(&self) -> Result<Selector, PolicyError> {
        match &self.selector {
            None => Ok(Selector::everything()),
            Some(s) => Selector::from_label_selector(s).map_err(PolicyError::InvalidSelector),
        }
    }

    /// The lowest severity recorded as a Kubernetes Event.
    pub fn event_severity(&self) -> Severity {
        self.rules.event_severity
    }

    /// The orphan recreation settings.
    pub fn orphan_settings(&self) -> Result<OrphanSettings, PolicyError> {
        let o = &self.orphans;
        let max_attempts = check_range(
            "spec.orphans.maxAttempts",
            o.max_attempts,
            MAX_ATTEMPTS_RANGE,
        )?;
        let backoff = check_duration("spec.orphans.backoff", &o.backoff)?;
        let max_backoff = check_duration("spec.orphans.maxBackoff", &o.max_backoff)?;
        if backoff > max_backoff {
            return Err(PolicyError::BackoffAboveMax {
                backoff: o.backoff.clone(),
                max_backoff: o.max_backoff.clone(),
            });
        }
        Ok(OrphanSettings {
            max_attempts,
            backoff,
            max_backoff,
            recreate_never: o.recreate_never,
        })
    }

    /// Whether the policy recreates orphaned pods: Enforce mode with attempts left to make.
    pub fn recreates_orphans(&self) -> bool {
        self.mode == PolicyMode::Enforce && self.orphans.max_attempts > 0
    }

    /// Check everything the conversions check; the first problem found is returned.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.selector()?;
        self.rule_settings()?;
        self.orphan_settings()?;
        Ok(())
    }
}

impl PodLifecyclePolicy {
    /// Read a policy file: one YAML document, or JSON (text starting with `{`).
    /// Errors name the field and what is wrong with it: syntax, the wrong kind, unknown fields,
    /// wrong types or values, and everything [`PodLifecyclePolicySpec::validate`] checks.
    pub fn from_yaml_or_json(input: &str) -> Result<Self, PolicyError> {
        let value = parse_document(input)?;
        let Value::Object(object) = &value else {
            return Err(PolicyError::InvalidSyntax {
                format: "YAML or JSON",
                message: "the document is not a mapping".into(),
            });
        };
        check_kind(object)?;
        let schema = Self::crd()
            .spec
            .versions
            .into_iter()
            .next()
            .and_then(|v| v.schema)
            .and_then(|s| s.open_api_v3_schema)
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        // The schema leaves out the fields every object has; the API server checks those.
        let mut body = object.clone();
        for key in ["apiVersion", "kind", "metadata"] {
            body.remove(key);
        }
        let mut unknown = Vec::new();
        unknown_fields(&Value::Object(body), &schema, "", &mut unknown);
        if let Some(path) = unknown.into_iter().next() {
            return Err(PolicyError::UnknownField { path });
        }
        let policy: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            PolicyError::InvalidField {
                path: if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                message: e.inner().to_string(),
            }
        })?;
        policy.spec.validate()?;
        Ok(policy)
    }
}

/// One JSON or YAML document as a value: JSON when the first non-blank character is `{`
/// (so its errors carry JSON's line and column), YAML otherwise.
fn parse_document(input: &str) -> Result<Value, PolicyError> {
    if input.trim_start().starts_with('{') {
        return serde_json::from_str(input).map_err(|e| PolicyError::InvalidSyntax {
            format: "JSON",
            message: e.to_string(),
        });
    }
    let mut documents: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| PolicyError::InvalidSyntax {
            format: "YAML",
            message: e.to_string(),
        })?;
    if documents.len() != 1 {
        return Err(PolicyError::InvalidSyntax {
            format: "YAML",
            message: format!(
                "the file holds {} documents; a policy file holds exactly one",
                documents.len()
            ),
        });
    }
    Ok(documents.remove(0))
}

fn check_kind(object: &Map<String, Value>) -> Result<(), PolicyError> {
    let field = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let want_version = format!(
        "{}/{}",
        PodLifecyclePolicy::group(&()),
        PodLifecyclePolicy::version(&())
    );
    if api_version != want_version || kind != PodLifecyclePolicy::kind(&()) {
        return Err(PolicyError::WrongKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    }
    Ok(())
}

/// Collect the paths of object keys in `value` that `schema` neither declares nor admits as
/// map entries: what the API server would prune or, with strict field validation, reject.
/// Objects whose schema declares no properties (such as `metadata`) are not inspected.
fn unknown_fields(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, v) in map {
                    match props.get(key) {
                        Some(s) => unknown_fields(v, s, &join(key), out),
                        None => out.push(join(key)),
                    }
                }
            } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for (key, v) in map {
                    unknown_fields(v, s, &join(key), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(v, s, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The CRD as YAML, as `podwarden crd` prints it and `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let yaml = serde_saphyr::to_string(&PodLifecyclePolicy::crd())?;
    Ok(format!(
        "# Generated by `podwarden crd` from crates/model/src/policy.rs; do not edit.\n{yaml}"
    ))
}

/// The schema of a duration string: pattern, length bound and the range rule.
fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": Seconds::PATTERN,
        "maxLength": DURATION_MAX_LENGTH,
        "x-kubernetes-validations": [{
            "rule": DURATION_RULE,
            "message": DURATION_RULE_MESSAGE,
        }],
    })
}

fn default_stuck_pending_after() -> String {
    RuleSettings::DEFAULT_STUCK_PENDING_AFTER.to_string()
}

fn default_stuck_terminating_after() -> String {
    RuleSettings::DEFAULT_STUCK_TERMINATING_AFTER.to_string()
}

fn default_event_severity() -> Severity {
    Severity::Warning
}

fn default_budget_count() -> i32 {
    // The default budget is a small constant; the conversion cannot fail.
    i32::try_from(RuleSettings::DEFAULT_RESTART_BUDGET.count).unwrap_or(i32::MAX)
}

fn default_budget_window() -> String {
    RuleSettings::DEFAULT_RESTART_BUDGET.window.to_string()
}

fn default_max_attempts() -> i32 {
    i32::try_from(OrphanSettings::DEFAULT.max_attempts).unwrap_or(i32::MAX)
}

fn default_backoff() -> String {
    OrphanSettings::DEFAULT.backoff.to_string()
}

fn default_max_backoff() -> String {
    OrphanSettings::DEFAULT.max_backoff.to_string()
}

impl Default for RulesSpec {
    fn default() -> Self {
        RulesSpec {
            disabled: Vec::new(),
            stuck_pending_after: default_stuck_pending_after(),
            stuck_terminating_after: default_stuck_terminating_after(),
            restart_budget: RestartBudgetSpec::default(),
            event_severity: default_event_severity(),
        }
    }
}

impl Default for RestartBudgetSpec {
    fn default() -> Self {
        RestartBudgetSpec {
            count: default_budget_count(),
            window: default_budget_window(),
        }
    }
}

impl Default for OrphansSpec {
    fn default() -> Self {
        OrphansSpec {
            max_attempts: default_max_attempts(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            recreate_never: false,
        }
    }
}
