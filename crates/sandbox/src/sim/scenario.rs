//! Scenarios: a YAML file of timed steps that `podwarden sandbox --scenario FILE` plays
//! on the simulated cluster (create objects, apply node faults, inject faulty-kubelet
//! writes, delete objects).
//!
//! ```yaml
//! steps:
//!   - at: 0s
//!     create:                      # any objects the API serves, as YAML
//!       - apiVersion: v1
//!         kind: Pod
//!         metadata: {name: web, namespace: default}
//!         spec: {containers: [{name: app, image: nginx}]}
//!     count: 1                     # optional: N copies named web-0 .. web-N-1
//!   - at: 2m
//!     fault: {node: node-1, fault: partition}
//!   - at: 3m
//!     inject: {namespace: default, pod: web, rule: restart-count-decreased}
//!   - at: 4m
//!     delete: {apiVersion: v1, kind: Pod, namespace: default, name: web}
//! ```
//!
//! `at` is simulated time since the start. A step that fails (a name taken, an unknown
//! node) is logged and the scenario goes on; a file that does not parse is rejected as
//! a whole with the step and field that are wrong.

use serde::Deserialize;
use serde_json::Value;

use super::node_faults::NodeFault;

/// Copies one `create` step may ask for.
pub const MAX_COPIES: u64 = 1_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Simulated time since the start, e.g. `90s`, `5m`, `1h30m`, `250ms`.
    pub at: String,
    #[serde(default)]
    pub create: Vec<Value>,
    /// Copies of each created object (names get `-0`, `-1`, ...).
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub fault: Option<FaultStep>,
    #[serde(default)]
    pub inject: Option<InjectStep>,
    #[serde(default)]
    pub delete: Option<DeleteStep>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    pub node: String,
    pub fault: NodeFault,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectStep {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub pod: String,
    pub rule: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteStep {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
}

fn default_namespace() -> String {
    "default".into()
}
fn default_api_version() -> String {
    "v1".into()
}
fn default_kind() -> String {
    "Pod".into()
}

/// A step checked and ready to play.
#[derive(Debug, Clone)]
pub struct Planned {
    pub at: jiff::SignedDuration,
    pub step: Step,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario {path} is not valid: {why}")]
    Invalid { path: String, why: String },
}

impl Scenario {
    /// Parses and checks a scenario; `path` only names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Vec<Planned>, ScenarioError> {
        let invalid = |why: String| ScenarioError::Invalid {
            path: path.to_string(),
            why,
        };
        let scenario: Scenario =
            serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut planned = Vec::with_capacity(scenario.steps.len());
        for (i, step) in scenario.steps.into_iter().enumerate() {
            let at =
                parse_duration(&step.at).map_err(|why| invalid(format!("steps[{i}].at: {why}")))?;
            let actions = usize::from(!step.create.is_empty())
                + usize::from(step.fault.is_some())
                + usize::from(step.inject.is_some())
                + usize::from(step.delete.is_some());
            if actions != 1 {
                return Err(invalid(format!(
                    "steps[{i}]: a step has exactly one of create, fault, inject, delete (found {actions})"
                )));
            }
            if let Some(n) = step.count {
                if step.create.is_empty() {
                    return Err(invalid(format!(
                        "steps[{i}].count: only a create step has copies"
                    )));
                }
                if n == 0 || n > MAX_COPIES {
                    return Err(invalid(format!(
                        "steps[{i}].count: {n} is not within 1..={MAX_COPIES}"
                    )));
                }
            }
            for (j, object) in step.create.iter().enumerate() {
                let field = |f: &str| {
                    object
                        .get(f)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                };
                for f in ["apiVersion", "kind"] {
                    if field(f).is_none() {
                        return Err(invalid(format!("steps[{i}].create[{j}]: {f} is required")));
                    }
                }
                let named = object
                    .pointer("/metadata/name")
                    .or_else(|| object.pointer("/metadata/generateName"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if !named {
                    return Err(invalid(format!(
                        "steps[{i}].create[{j}]: metadata.name or metadata.generateName is required"
                    )));
                }
            }
            planned.push(Planned { at, step });
        }
        // Stable: steps at the same time run in file order.
        planned.sort_by_key(|p| p.at);
        Ok(planned)
    }

    pub fn load(path: &std::path::Path) -> Result<Vec<Planned>, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Scenario::parse(&text, &shown)
    }
}

/// A step's `at` that is not a duration [`parse_duration`] takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not numbers each followed by `ms`, `s`, `m` or `h`.
    #[error("{text:?} is not a duration like 90s, 5m, 1h30m or 250ms")]
    Malformed { text: String },
    #[error("{text:?} is not a duration like 90s, 5m, 1h30m or 250ms: longer than a year")]
    TooLong { text: String },
}

/// Longest duration a step's `at` may be.
const MAX_DURATION_MS: u64 = 366 * 86_400_000;

/// `250ms`, `90s`, `5m`, `1h30m`, `2h`: non-negative, at most a year.
pub fn parse_duration(text: &str) -> Result<jiff::SignedDuration, DurationError> {
    let bad = || DurationError::Malformed {
        text: text.to_string(),
    };
    let too_long = || DurationError::TooLong {
        text: text.to_string(),
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(jiff::SignedDuration::ZERO);
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        // All digits: it only fails to parse past u64, which is too long anyway.
        let n: Option<u64> = rest[..digits].parse().ok();
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_ms = n
            .and_then(|n| n.checked_mul(ms_per))
            .and_then(|v| total_ms.checked_add(v))
            .filter(|v| *v <= MAX_DURATION_MS)
            .ok_or_else(too_long)?;
    }
    Ok(jiff::SignedDuration::from_millis(total_ms as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", 250),
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("0", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(jiff::SignedDuration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "5", "m5", "5x", "-5s", "1.5s", "99999999h"] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains("not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_scenario_parses_sorted_by_time() {
        let text = r#"
steps:
  - at: 2m
    fault: {node: node-1, fault: partition}
  - at: 0s
    create:
      - apiVersion: v1
        kind: Pod
        metadata: {name: web}
        spec: {containers: [{name: app, image: nginx}]}
    count: 3
  - at: 3m
    inject: {pod: web-0, rule: restart-count-decreased}
  - at: 4m
    delete: {name: web-1}
"#;
        let steps = Scenario::parse(text, "s.yaml").unwrap();
        let at: Vec<i64> = steps.iter().map(|s| s.at.as_secs()).collect();
        assert_eq!(at, [0, 120, 180, 240]);
        assert_eq!(steps[0].step.count, Some(3));
        assert_eq!(
            steps[1].step.fault.as_ref().map(|f| f.fault),
            Some(NodeFault::Partition)
        );
        assert_eq!(
            steps[2].step.inject.as_ref().map(|i| i.namespace.as_str()),
            Some("default")
        );
        assert_eq!(
            steps[3].step.delete.as_ref().map(|d| d.kind.as_str()),
            Some("Pod")
        );
    }

    #[test]
    fn bad_scenarios_name_the_step_and_field() {
        let cases = [
            (
                "steps:\n  - at: soon\n    delete: {name: x}\n",
                "steps[0].at",
            ),
            ("steps:\n  - at: 1s\n", "exactly one of"),
            (
                "steps:\n  - at: 1s\n    delete: {name: x}\n    fault: {node: n, fault: heal}\n",
                "found 2",
            ),
            (
                "steps:\n  - at: 1s\n    fault: {node: n, fault: melt}\n",
                "melt",
            ),
            (
                "steps:\n  - at: 1s\n    delete: {name: x}\n    count: 2\n",
                "steps[0].count",
            ),
            (
                "steps:\n  - at: 1s\n    create: [{kind: Pod, metadata: {name: a}}]\n",
                "apiVersion is required",
            ),
            (
                "steps:\n  - at: 1s\n    create: [{apiVersion: v1, kind: Pod}]\n",
                "metadata.name",
            ),
            ("steps:\n  - at: 1s\n    delet: {name: x}\n", "delet"),
            ("stepz: []\n", "stepz"),
        ];
        for (text, needle) in cases {
            let err = Scenario::parse(text, "bad.yaml").unwrap_err().to_string();
            assert!(
                err.contains("bad.yaml") && err.contains(needle),
                "{text}\n=> {err}"
            );
        }
    }
}
