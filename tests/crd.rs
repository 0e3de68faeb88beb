//! The PodLifecyclePolicy CRD: the checked-in YAML, the schema's validation, and the Rust
//! conversions the controller and the offline auditor share.

use kube::CustomResourceExt;
use podwarden_model::policy::{
    CONDITIONS_LIMIT, FINDING_MESSAGE_LIMIT, MAX_DURATION, OrphanSettings, PodLifecyclePolicy,
    PodLifecyclePolicySpec, PodLifecyclePolicyStatus, PolicyMode, RECENT_FINDINGS_LIMIT,
    RecentFinding, crd_yaml,
};
use podwarden_model::{Finding, RestartBudget, RuleId, RuleSettings, Seconds, Severity};
use serde_json::{Value, json};

const CHECKED_IN: &str = "crds/podlifecyclepolicies.yaml";
const REGENERATE: &str = "cargo run -- crd > crds/podlifecyclepolicies.yaml";

fn generated() -> Value {
    serde_json::to_value(PodLifecyclePolicy::crd()).unwrap()
}

fn root_schema() -> Value {
    generated()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The schema of the field at a dotted path (`spec.rules.restartBudget.count`).
fn field(path: &str) -> Value {
    let mut s = root_schema();
    for key in path.split('.') {
        s = s["properties"][key].clone();
        assert!(!s.is_null(), "schema has no {path}");
    }
    s
}

/// The first path at which two values differ, for a readable failure.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => first_difference(u, v, &format!("{path}.{k}")),
                _ => Some(format!("{path}.{k}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(path.to_string()),
    }
}

#[test]
fn checked_in_crd_matches_the_generated_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/podlifecyclepolicies.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {CHECKED_IN} ({e}); create it with `{REGENERATE}`")
    });
    let checked_in: Value = serde_saphyr::from_str(&text).unwrap();
    let want = generated();
    if let Some(at) = first_difference(&checked_in, &want, "") {
        panic!(
            "{CHECKED_IN} differs from the CRD generated from crates/model/src/policy.rs at {at}; regenerate it with `{REGENERATE}`"
        );
    }
}

#[test]
fn printed_yaml_reads_back_as_the_crd() {
    let printed: Value = serde_saphyr::from_str(&crd_yaml().unwrap()).unwrap();
    assert_eq!(first_difference(&printed, &generated(), ""), None);
}

#[test]
fn podwarden_crd_prints_the_crd() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podwarden"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_saphyr::from_str(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    assert_eq!(first_difference(&printed, &generated(), ""), None);
}

#[test]
fn names_scope_and_status_subresource() {
    let crd = generated();
    assert_eq!(
        crd["metadata"]["name"],
        "podlifecyclepolicies.podwarden.dev"
    );
    assert_eq!(crd["spec"]["group"], "podwarden.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "PodLifecyclePolicy");
    assert_eq!(crd["spec"]["names"]["plural"], "podlifecyclepolicies");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["plp"]));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], json!({}));
}

#[test]
fn printer_columns_point_at_fields_of_the_schema() {
    let crd = generated();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = columns
        .iter()
        .filter(|c| c.get("priority").is_none())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Mode", "Pods", "Violations", "Recreated", "Age"]);
    for column in columns {
        let path = column["jsonPath"].as_str().unwrap();
        let path = path.split('[').next().unwrap().trim_start_matches('.');
        if path.starts_with("metadata.") {
            continue;
        }
        let schema = field(path);
        let want = match column["type"].as_str().unwrap() {
            "date" => "string",
            other => other,
        };
        let got = match schema["type"].as_str().unwrap() {
            "array" => "string",
            other => other,
        };
        assert_eq!(got, want, "column {} at {path}", column["name"]);
    }
}

/// Parses and validates a spec as the controller does; the error as text.
fn accepted(spec: Value) -> Result<(), String> {
    serde_json::from_value::<PodLifecyclePolicySpec>(spec)
        .map_err(|e| e.to_string())?
        .validate()
        .map_err(|e| e.to_string())
}

#[test]
fn the_rule_ids_the_schema_admits_are_the_rules_a_policy_disables() {
    let disabled = field("spec.rules.disabled");
    let admitted: Vec<&str> = disabled["items"]["enum"]
        .as_array()
        .expect("an enum of rule ids")
        .iter()
        .map(|id| id.as_str().expect("a string"))
        .collect();
    // Each id the API server admits disables the rule of that name, and only it.
    let mut rules = std::collections::BTreeSet::new();
    for id in &admitted {
        let settings = spec_with(json!({"rules": {"disabled": [id]}}))
            .rule_settings()
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        let off: Vec<RuleId> = RuleId::ALL
            .iter()
            .copied()
            .filter(|r| settings.disabled.contains(*r))
            .collect();
        assert_eq!(off.len(), 1, "{id} disables {off:?}");
        assert_eq!(off[0].to_string(), *id);
        rules.insert(off[0]);
    }
    // Every rule can be disabled, all at once within the schema's bound.
    assert_eq!(
        rules.len(),
        RuleId::ALL.len(),
        "rules the schema leaves out"
    );
    assert!(admitted.len() as u64 <= disabled["maxItems"].as_u64().expect("maxItems"));
    accepted(json!({"rules": {"disabled": admitted}})).unwrap();
    // An id outside the schema's set is refused by the controller too.
    assert!(accepted(json!({"rules": {"disabled": ["no-such-rule"]}})).is_err());
}

#[test]
fn enums_ranges_and_duration_patterns() {
    // The values the schema admits are the ones the controller reads, and the defaults
    // the controller writes are among them.
    let defaults = serde_json::to_value(spec_with(json!({}))).unwrap();
    for (path, at) in [
        ("spec.mode", (|v| json!({"mode": v})) as fn(Value) -> Value),
        (
            "spec.rules.eventSeverity",
            |v| json!({"rules": {"eventSeverity": v}}),
        ),
    ] {
        let admitted = field(path)["enum"].as_array().cloned().expect("an enum");
        for v in &admitted {
            accepted(at(v.clone())).unwrap_or_else(|e| panic!("{path} = {v}: {e}"));
        }
        let default = path
            .trim_start_matches("spec.")
            .split('.')
            .fold(&defaults, |v, key| &v[key]);
        assert!(admitted.contains(default), "{path}: default {default}");
        assert!(accepted(at(json!("Sometimes"))).is_err(), "{path}");
    }
    // The integer bounds the schema gives the API server are the ones the controller
    // enforces: both ends accepted, one beyond refused.
    for (path, at) in [
        (
            "spec.rules.restartBudget.count",
            (|n| json!({"rules": {"restartBudget": {"count": n}}})) as fn(i64) -> Value,
        ),
        (
            "spec.orphans.maxAttempts",
            |n| json!({"orphans": {"maxAttempts": n}}),
        ),
    ] {
        let s = field(path);
        assert_eq!(s["type"], "integer", "{path}");
        let bound = |key: &str| s[key].as_f64().expect(key) as i64;
        let (min, max) = (bound("minimum"), bound("maximum"));
        for n in [min, max] {
            accepted(at(n)).unwrap_or_else(|e| panic!("{path} = {n}: {e}"));
        }
        for n in [min - 1, max + 1] {
            assert!(accepted(at(n)).is_err(), "{path} = {n} accepted");
        }
    }
    for path in [
        "spec.rules.stuckPendingAfter",
        "spec.rules.stuckTerminatingAfter",
        "spec.rules.restartBudget.window",
        "spec.orphans.backoff",
        "spec.orphans.maxBackoff",
    ] {
        let s = field(path);
        assert_eq!(s["pattern"], Seconds::PATTERN, "{path}");
        assert!(s["maxLength"].as_u64().is_some(), "{path} has no maxLength");
        let rule = s["x-kubernetes-validations"][0]["rule"].as_str().unwrap();
        // The CEL bounds are the ones check_duration enforces.
        assert!(
            rule.contains(&format!("duration('{}')", Seconds(1))),
            "{path}: {rule}"
        );
        assert!(
            rule.contains(&format!("duration('{MAX_DURATION}')")),
            "{path}: {rule}"
        );
    }
    let orphans = field("spec.orphans");
    assert_eq!(
        orphans["x-kubernetes-validations"][0]["rule"],
        "duration(self.backoff) <= duration(self.maxBackoff)"
    );
}

#[test]
fn status_lists_are_bounded() {
    assert_eq!(
        field("status.recentFindings")["maxItems"],
        json!(RECENT_FINDINGS_LIMIT)
    );
    assert_eq!(
        field("status.recentFindings")["items"]["properties"]["message"]["maxLength"],
        json!(FINDING_MESSAGE_LIMIT)
    );
    let conditions = field("status.conditions");
    assert_eq!(conditions["maxItems"], json!(CONDITIONS_LIMIT));
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    let status = root_schema()["properties"]["status"]["properties"].clone();
    let fields: Vec<&String> = status.as_object().unwrap().keys().collect();
    assert!(
        fields.iter().all(|f| !f.to_lowercase().contains("time")),
        "status must hold no per-pass timestamps: {fields:?}"
    );
}

/// Apply schema defaults the way the API server does: a missing property with a default
/// gets it, then defaulting continues inside it.
fn apply_defaults(value: &mut Value, schema: &Value) {
    let Value::Object(map) = value else { return };
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (key, s) in props {
        if let (None, Some(d)) = (map.get(key), s.get("default")) {
            map.insert(key.clone(), d.clone());
        }
        if let Some(v) = map.get_mut(key) {
            apply_defaults(v, s);
        }
    }
}

#[test]
fn schema_defaults_equal_the_rust_defaults() {
    let mut spec = json!({});
    apply_defaults(&mut spec, &field("spec"));
    let rust: PodLifecyclePolicySpec = serde_json::from_value(json!({})).unwrap();
    assert_eq!(spec, serde_json::to_value(&rust).unwrap());
    let defaulted: PodLifecyclePolicySpec = serde_json::from_value(spec).unwrap();
    assert_eq!(defaulted.rule_settings().unwrap(), RuleSettings::default());
}

#[test]
fn absent_fields_take_the_defaults() {
    let spec: PodLifecyclePolicySpec = serde_json::from_value(json!({})).unwrap();
    assert_eq!(spec.mode, PolicyMode::Audit);
    assert_eq!(spec.rule_settings().unwrap(), RuleSettings::default());
    assert_eq!(spec.orphan_settings().unwrap(), OrphanSettings::DEFAULT);
    assert_eq!(spec.event_severity(), Severity::Warning);
    assert!(spec.selector().unwrap().is_everything());
    assert!(!spec.recreates_orphans());

    // A partly filled object keeps the defaults of its other fields.
    let spec: PodLifecyclePolicySpec =
        serde_json::from_value(json!({"rules": {"restartBudget": {"count": 9}}})).unwrap();
    let settings = spec.rule_settings().unwrap();
    assert_eq!(settings.restart_budget.count, 9);
    assert_eq!(
        settings.restart_budget.window,
        RuleSettings::DEFAULT_RESTART_BUDGET.window
    );
    assert_eq!(
        settings.stuck_pending_after,
        RuleSettings::DEFAULT_STUCK_PENDING_AFTER
    );
}

#[test]
fn rule_settings_map_every_field() {
    let spec: PodLifecyclePolicySpec = serde_json::from_value(json!({
        "rules": {
            "disabled": ["oom-killed", "phase-unknown"],
            "stuckPendingAfter": "1h30m",
            "stuckTerminatingAfter": "2m30s",
            "restartBudget": {"count": 7, "window": "45m"},
            "eventSeverity": "violation",
        },
        "orphans": {"maxAttempts": 5, "backoff": "10s", "maxBackoff": "2m"},
        "mode": "Enforce",
    }))
    .unwrap();
    let settings = spec.rule_settings().unwrap();
    for &rule in RuleId::ALL {
        let want = matches!(rule, RuleId::OomKilled | RuleId::PhaseUnknown);
        assert_eq!(settings.disabled.contains(rule), want, "{rule}");
    }
    assert_eq!(settings.stuck_pending_after, Seconds(5400));
    assert_eq!(settings.stuck_terminating_after, Seconds(150));
    assert_eq!(
        settings.restart_budget,
        RestartBudget {
            count: 7,
            window: Seconds(2700)
        }
    );
    assert_eq!(spec.event_severity(), Severity::Violation);
    assert_eq!(
        spec.orphan_settings().unwrap(),
        OrphanSettings {
            max_attempts: 5,
            backoff: Seconds(10),
            max_backoff: Seconds(120),
            recreate_never: false,
        }
    );
    assert!(spec.recreates_orphans());
}

fn spec_with(patch: Value) -> PodLifecyclePolicySpec {
    serde_json::from_value(patch).unwrap()
}

#[test]
fn invalid_values_are_rejected_naming_the_field() {
    let cases: &[(&str, Value, &str, &str)] = &[
        (
            "unparsable stuckPendingAfter",
            json!({"rules": {"stuckPendingAfter": "5x"}}),
            "InvalidDuration",
            "spec.rules.stuckPendingAfter: invalid duration \"5x\"",
        ),
        (
            "unparsable stuckTerminatingAfter",
            json!({"rules": {"stuckTerminatingAfter": "soon"}}),
            "InvalidDuration",
            "spec.rules.stuckTerminatingAfter: invalid duration \"soon\"",
        ),
        (
            "unparsable window",
            json!({"rules": {"restartBudget": {"window": "1 h"}}}),
            "InvalidDuration",
            "spec.rules.restartBudget.window: invalid duration \"1 h\"",
        ),
        (
            "unparsable backoff",
            json!({"orphans": {"backoff": "30"}}),
            "InvalidDuration",
            "spec.orphans.backoff: invalid duration \"30\"",
        ),
        (
            "unparsable maxBackoff",
            json!({"orphans": {"maxBackoff": "1d"}}),
            "InvalidDuration",
            "spec.orphans.maxBackoff: invalid duration \"1d\"",
        ),
        (
            "zero duration",
            json!({"rules": {"stuckPendingAfter": "0s"}}),
            "DurationOutOfRange",
            "spec.rules.stuckPendingAfter: \"0s\" is out of range",
        ),
        (
            "sub-second duration rounding to zero",
            json!({"rules": {"restartBudget": {"window": "400ms"}}}),
            "DurationOutOfRange",
            "spec.rules.restartBudget.window",
        ),
        (
            "duration above one year",
            json!({"orphans": {"maxBackoff": "8761h"}}),
            "DurationOutOfRange",
            "spec.orphans.maxBackoff: \"8761h\" is out of range (allowed 1s to 8760h)",
        ),
        (
            "budget count zero",
            json!({"rules": {"restartBudget": {"count": 0}}}),
            "OutOfRange",
            "spec.rules.restartBudget.count: 0 is out of range (allowed 1 to 1000)",
        ),
        (
            "budget count too high",
            json!({"rules": {"restartBudget": {"count": 1001}}}),
            "OutOfRange",
            "spec.rules.restartBudget.count: 1001",
        ),
        (
            "negative maxAttempts",
            json!({"orphans": {"maxAttempts": -1}}),
            "OutOfRange",
            "spec.orphans.maxAttempts: -1 is out of range (allowed 0 to 10)",
        ),
        (
            "maxAttempts too high",
            json!({"orphans": {"maxAttempts": 11}}),
            "OutOfRange",
            "spec.orphans.maxAttempts: 11",
        ),
        (
            "backoff above maxBackoff",
            json!({"orphans": {"backoff": "5m", "maxBackoff": "1m"}}),
            "BackoffAboveMax",
            "spec.orphans.backoff: \"5m\" exceeds spec.orphans.maxBackoff \"1m\"",
        ),
        (
            "maxBackoff below the default backoff",
            json!({"orphans": {"maxBackoff": "10s"}}),
            "BackoffAboveMax",
            "spec.orphans.backoff: \"30s\"",
        ),
        (
            "rule disabled twice",
            json!({"rules": {"disabled": ["oom-killed", "stuck-pending", "oom-killed"]}}),
            "DuplicateRule",
            "spec.rules.disabled: oom-killed is listed more than once",
        ),
        (
            "selector with an unknown operator",
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}}),
            "InvalidSelector",
            "spec.selector: matchExpressions[0]: unknown operator \"Equals\"",
        ),
    ];
    for (case, patch, reason, needle) in cases {
        let err = spec_with(patch.clone()).validate().unwrap_err();
        assert_eq!(err.reason(), *reason, "{case}: {err}");
        assert!(format!("{err:?}").starts_with(reason), "{case}: {err:?}");
        assert!(err.to_string().starts_with(needle), "{case}: {err}");
    }
}

#[test]
fn boundary_values_are_accepted() {
    let spec = spec_with(json!({
        "rules": {"stuckPendingAfter": "1s", "restartBudget": {"count": 1000, "window": "8760h"}},
        "orphans": {"maxAttempts": 0, "backoff": "1m", "maxBackoff": "1m"},
        "mode": "Enforce",
    }));
    spec.validate().unwrap();
    assert_eq!(spec.orphan_settings().unwrap().max_attempts, 0);
    assert!(
        !spec.recreates_orphans(),
        "maxAttempts 0 disables recreation"
    );
    spec_with(json!({"rules": {"restartBudget": {"count": 1}}}))
        .validate()
        .unwrap();
}

#[test]
fn selector_compiles_and_absent_selects_everything() {
    let spec = spec_with(json!({"selector": {"matchLabels": {"app": "web"}}}));
    let selector = spec.selector().unwrap();
    let labels = |v: &str| std::collections::BTreeMap::from([("app".to_string(), v.to_string())]);
    assert!(selector.matches(&labels("web")));
    assert!(!selector.matches(&labels("db")));
    assert!(
        spec_with(json!({"selector": {}}))
            .selector()
            .unwrap()
            .is_everything()
    );
}

#[test]
fn orphan_backoff_doubles_up_to_the_cap() {
    let o = OrphanSettings::DEFAULT;
    let waits: Vec<i64> = (1..=7).map(|n| o.backoff_for(n).0).collect();
    assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
    assert_eq!(o.backoff_for(u32::MAX), o.max_backoff);
}

const VALID_YAML: &str = r#"
apiVersion: podwarden.dev/v1alpha1
kind: PodLifecyclePolicy
metadata:
  name: web
  namespace: default
spec:
  mode: Enforce
  rules:
    disabled: [oom-killed]
    stuckPendingAfter: 2m
"#;

#[test]
fn policy_files_read_as_yaml_and_json() {
    let from_yaml = PodLifecyclePolicy::from_yaml_or_json(VALID_YAML).unwrap();
    assert_eq!(from_yaml.metadata.name.as_deref(), Some("web"));
    assert_eq!(from_yaml.spec.mode, PolicyMode::Enforce);
    let json = json!({
        "apiVersion": "podwarden.dev/v1alpha1",
        "kind": "PodLifecyclePolicy",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"mode": "Enforce", "rules": {"disabled": ["oom-killed"], "stuckPendingAfter": "2m"}},
    });
    let from_json = PodLifecyclePolicy::from_yaml_or_json(&format!("\n  {json:#}")).unwrap();
    assert_eq!(from_yaml, from_json);
    assert_eq!(
        from_json.spec.rule_settings().unwrap().stuck_pending_after,
        Seconds(120)
    );
    // An object read back from the API server carries a status; it is accepted.
    let mut with_status = json.clone();
    with_status["status"] = json!({"podsAudited": 3, "findingsByRule": {"some-future-rule": 1}});
    let read = PodLifecyclePolicy::from_yaml_or_json(&with_status.to_string()).unwrap();
    assert_eq!(read.status.unwrap().pods_audited, 3);
}

#[test]
fn broken_policy_files_say_what_is_wrong_and_where() {
    let header =
        "apiVersion: podwarden.dev/v1alpha1\nkind: PodLifecyclePolicy\nmetadata: {name: p}\n";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "YAML syntax",
            format!("{header}spec:\n  mode: [Audit\n"),
            "InvalidSyntax",
            "not valid YAML",
        ),
        (
            "JSON syntax",
            r#"{"apiVersion": "podwarden.dev/v1alpha1",}"#.to_string(),
            "InvalidSyntax",
            "not valid JSON",
        ),
        (
            "not a mapping",
            "- a\n- b\n".to_string(),
            "InvalidSyntax",
            "the document is not a mapping",
        ),
        (
            "two documents",
            format!("{header}spec: {{}}\n---\n{header}spec: {{}}\n"),
            "InvalidSyntax",
            "the file holds 2 documents; a policy file holds exactly one",
        ),
        (
            "another kind",
            "apiVersion: v1\nkind: Pod\nspec: {}\n".to_string(),
            "WrongKind",
            "apiVersion \"v1\", kind \"Pod\"",
        ),
        (
            "another version",
            "apiVersion: podwarden.dev/v1\nkind: PodLifecyclePolicy\nspec: {}\n".to_string(),
            "WrongKind",
            "apiVersion \"podwarden.dev/v1\"",
        ),
        (
            "misspelt field",
            format!("{header}spec:\n  rules:\n    stuckPendingAftr: 5m\n"),
            "UnknownField",
            "spec.rules.stuckPendingAftr: unknown field",
        ),
        (
            "misspelt selector field",
            format!("{header}spec:\n  selector:\n    matchLabel: {{app: web}}\n"),
            "UnknownField",
            "spec.selector.matchLabel: unknown field",
        ),
        (
            "missing spec",
            header.to_string(),
            "InvalidField",
            "(top level): missing field `spec`",
        ),
        (
            "wrong type",
            format!("{header}spec:\n  rules:\n    restartBudget:\n      count: five\n"),
            "InvalidField",
            "spec.rules.restartBudget.count: invalid type: string \"five\"",
        ),
        (
            "unknown mode",
            format!("{header}spec:\n  mode: Enforcing\n"),
            "InvalidField",
            "spec.mode: unknown variant `Enforcing`",
        ),
        (
            "unknown rule id",
            format!("{header}spec:\n  rules:\n    disabled: [oom-killed, restart-forever]\n"),
            "InvalidField",
            "spec.rules.disabled[1]: unknown variant `restart-forever`",
        ),
        (
            "bad duration",
            format!("{header}spec:\n  rules:\n    stuckPendingAfter: 5x\n"),
            "InvalidDuration",
            "spec.rules.stuckPendingAfter: invalid duration \"5x\"",
        ),
    ];
    for (case, input, reason, needle) in cases {
        let err = PodLifecyclePolicy::from_yaml_or_json(&input).unwrap_err();
        assert_eq!(err.reason(), reason, "{case}: {err}");
        assert!(err.to_string().contains(needle), "{case}: {err}");
        // The reason is the variant's name, usable as an Event reason.
        assert!(format!("{err:?}").starts_with(reason), "{case}: {err:?}");
    }
}

#[test]
fn the_bundled_example_policy_parses() {
    let text = include_str!("../examples/policy.yaml");
    let policy = PodLifecyclePolicy::from_yaml_or_json(text).unwrap();
    let spec = &policy.spec;
    assert_eq!(spec.mode, PolicyMode::Audit);
    assert!(!spec.recreates_orphans());
    let settings = spec.rule_settings().unwrap();
    assert_eq!(settings.stuck_pending_after, Seconds(300));
    assert_eq!(
        settings.restart_budget,
        RestartBudget {
            count: 3,
            window: Seconds(1800)
        }
    );
    let disabled: Vec<RuleId> = RuleId::ALL
        .iter()
        .copied()
        .filter(|r| settings.disabled.contains(*r))
        .collect();
    assert_eq!(disabled, [RuleId::RestartFasterThanBackoff]);
    let selector = spec.selector().unwrap();
    let shop = std::collections::BTreeMap::from([(
        "app.kubernetes.io/part-of".to_string(),
        "shop".to_string(),
    )]);
    assert!(selector.matches(&shop));
    let mut load_test = shop.clone();
    load_test.insert("shop.example.com/load-test".into(), "true".into());
    assert!(!selector.matches(&load_test));
}

fn finding(n: usize, message: &str) -> Finding {
    Finding {
        rule: RuleId::RestartAgainstPolicy,
        severity: Severity::Violation,
        namespace: "shop".into(),
        pod: format!("pod-{n}"),
        uid: format!("uid-{n}"),
        resource_version: n.to_string(),
        container: Some("app".into()),
        message: message.into(),
        expected: Some("terminated".into()),
        observed: Some("running".into()),
    }
}

#[test]
fn recent_findings_keep_the_newest_within_bounds() {
    let mut status = PodLifecyclePolicyStatus::default();
    for n in 0..RECENT_FINDINGS_LIMIT + 5 {
        status.push_recent_finding(RecentFinding::from(&finding(n, "restarted")));
    }
    assert_eq!(status.recent_findings.len(), RECENT_FINDINGS_LIMIT);
    assert_eq!(
        status.recent_findings[0].pod,
        format!("pod-{}", RECENT_FINDINGS_LIMIT + 4)
    );
    assert_eq!(status.recent_findings.last().unwrap().pod, "pod-5");
    let first = &status.recent_findings[0];
    assert_eq!(first.rule, "restart-against-policy");
    assert_eq!(first.container.as_deref(), Some("app"));

    // Long messages are cut to the schema's bound without splitting a character.
    let long = "é".repeat(FINDING_MESSAGE_LIMIT);
    let cut = RecentFinding::from(&finding(0, &long)).message;
    assert!(cut.len() <= FINDING_MESSAGE_LIMIT);
    assert_eq!(cut.chars().count(), FINDING_MESSAGE_LIMIT / 2);
}

#[test]
fn status_serializes_every_counter_for_server_side_apply() {
    let value = serde_json::to_value(PodLifecyclePolicyStatus::default()).unwrap();
    for key in [
        "podsAudited",
        "violations",
        "recreated",
        "findingsByRule",
        "recentFindings",
        "conditions",
    ] {
        assert!(value.get(key).is_some(), "{key} missing from {value}");
    }
    let back: PodLifecyclePolicyStatus = serde_json::from_value(json!({})).unwrap();
    assert_eq!(back, PodLifecyclePolicyStatus::default());
}

/// Every leaf field path of the CRD's schema (`spec.rules.disabled`, `status.shards`,
/// ...).
fn field_paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, sub) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        // Described whole: the standard label selector, and status entries whose own
        // fields their row lists.
        let whole = ["spec.selector", "status.shards", "status.recentFindings"];
        if sub.get("properties").is_some() && !whole.contains(&path.as_str()) {
            field_paths(sub, &path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_readme_policy_reference_has_every_field_of_the_crd() {
    let crd = serde_json::to_value(PodLifecyclePolicy::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut paths = Vec::new();
    for top in ["spec", "status"] {
        field_paths(&schema["properties"][top], top, &mut paths);
    }
    assert!(paths.len() > 15, "{paths:?}");
    let readme = include_str!("../README.md");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !readme.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "README's policy reference lacks {missing:?}"
    );
}
