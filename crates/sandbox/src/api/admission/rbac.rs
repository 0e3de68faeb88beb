//! rbac.authorization.k8s.io/v1: the defaults of `pkg/apis/rbac/v1/defaults.go` and
//! the checks of `pkg/apis/rbac/validation` (policy rules, role references, subjects,
//! the immutable roleRef).

use serde_json::{Value, json};

use super::super::error::Cause;

const GROUP: &str = "rbac.authorization.k8s.io";

fn list_len(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

/// Go's `%#v` of a `[]string`, as validation messages quote one.
fn go_strings(v: Option<&Value>) -> String {
    let items: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    format!("[]string{{{}}}", items.join(", "))
}

fn required(field: String, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
        field,
    }
}

fn invalid_raw(field: String, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {why}"),
        field,
    }
}

/// `ValidatePolicyRule` for each of a Role's or ClusterRole's rules (`namespaced`:
/// a Role, whose rules cannot name non-resource URLs).
pub fn validate_rules(object: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let Some(rules) = object.get("rules").and_then(Value::as_array) else {
        return;
    };
    for (i, rule) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if list_len(rule, "verbs") == 0 {
            causes.push(required(
                at("verbs"),
                "verbs must contain at least one value",
            ));
        }
        if list_len(rule, "nonResourceURLs") > 0 {
            let urls = go_strings(rule.get("nonResourceURLs"));
            if namespaced {
                causes.push(invalid_raw(
                    at("nonResourceURLs"),
                    &urls,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if list_len(rule, "apiGroups") > 0
                || list_len(rule, "resources") > 0
                || list_len(rule, "resourceNames") > 0
            {
                causes.push(invalid_raw(
                    at("nonResourceURLs"),
                    &urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if list_len(rule, "apiGroups") == 0 {
            causes.push(required(
                at("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if list_len(rule, "resources") == 0 {
            causes.push(required(
                at("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// `SetDefaults_RoleBinding`/`ClusterRoleBinding` and `SetDefaults_Subject`: the
/// roleRef's apiGroup, and a User's or Group's apiGroup, default to rbac's.
pub fn default_binding(object: &mut Value) {
    if let Some(role_ref) = object.get_mut("roleRef").and_then(Value::as_object_mut) {
        let empty = role_ref
            .get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if empty {
            role_ref.insert("apiGroup".into(), json!(GROUP));
        }
    }
    if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let empty = s
                .get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
            if empty && (kind == "User" || kind == "Group") {
                s.insert("apiGroup".into(), json!(GROUP));
            }
        }
    }
}

/// `ValidateRoleBinding` (`namespaced`) or `ValidateClusterRoleBinding`.
pub fn validate_binding(object: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let role_ref = object.get("roleRef").cloned().unwrap_or(json!({}));
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_group = text(&role_ref, "apiGroup");
    if api_group != GROUP {
        causes.push(Cause::unsupported("roleRef.apiGroup", &api_group, &[GROUP]));
    }
    let kind = text(&role_ref, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind.as_str()) {
        causes.push(Cause::unsupported("roleRef.kind", &kind, kinds));
    }
    let name = text(&role_ref, "name");
    if name.is_empty() {
        causes.push(Cause::required("roleRef.name"));
    } else if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        causes.push(Cause::invalid(
            "roleRef.name",
            &name,
            "may not be '.' or '..' and may not contain '/' or '%'",
        ));
    }
    let Some(subjects) = object.get("subjects").and_then(Value::as_array) else {
        return;
    };
    for (i, s) in subjects.iter().enumerate() {
        let at = |f: &str| format!("subjects[{i}].{f}");
        let subject_name = text(s, "name");
        if subject_name.is_empty() {
            causes.push(Cause::required(at("name")));
        }
        let group = text(s, "apiGroup");
        match text(s, "kind").as_str() {
            "ServiceAccount" => {
                if !subject_name.is_empty() && !super::names::is_dns_subdomain(&subject_name) {
                    causes.push(Cause::invalid(
                        at("name"),
                        &subject_name,
                        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                    ));
                }
                if !group.is_empty() {
                    causes.push(Cause::unsupported(at("apiGroup"), &group, &[""]));
                }
                if !namespaced && text(s, "namespace").is_empty() {
                    causes.push(Cause::required(at("namespace")));
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    causes.push(Cause::unsupported(at("apiGroup"), &group, &[GROUP]));
                }
            }
            other => causes.push(Cause::unsupported(
                at("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

/// A binding's roleRef never changes (upstream: delete and recreate the binding).
pub fn check_role_ref_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    if old.get("roleRef") != new.get("roleRef") {
        let r = new.get("roleRef").cloned().unwrap_or(json!({}));
        let text = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        causes.push(invalid_raw(
            "roleRef".into(),
            &format!(
                "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                text("apiGroup"),
                text("kind"),
                text("name")
            ),
            "cannot change roleRef",
        ));
    }
}
