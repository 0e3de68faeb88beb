//! Field selectors (`fieldSelector=spec.nodeName=n1,status.phase!=Running`) and the
//! selectable fields each kind exposes, as the real API server defines them.

use serde_json::Value;

use super::error::ApiError;
use super::resources::Flavor;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed field selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses the string form and checks every field is selectable for `flavor`.
    pub fn parse(input: &str, flavor: Flavor) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in split_unescaped(input, ',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some((f, v)) = split_op(term, "!=") {
                (f, v, false)
            } else if let Some((f, v)) = split_op(term, "==") {
                (f, v, true)
            } else if let Some((f, v)) = split_op(term, "=") {
                (f, v, true)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "unable to parse requirement: invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let field = canonical_field(flavor, field.trim());
            if !selectable(flavor, &field) {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
            requirements.push(FieldRequirement {
                field,
                value: unescape(value.trim()),
                equal,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Matches against an object's selectable field values.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = lookup(&r.field).unwrap_or_default();
            (actual == r.value) == r.equal
        })
    }

    /// The single `metadata.name=X` requirement, if that is what the selector says
    /// (lets a list or watch skip the scan).
    pub fn exact_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == "metadata.name" && r.equal)
            .map(|r| r.value.as_str())
    }
}

fn split_op<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if term[i..].starts_with(op) {
            // "!=" must not be read as "=" preceded by "!": the caller tries "!=" first.
            return Some((&term[..i], &term[i + op.len()..]));
        }
    }
    None
}

fn split_unescaped(input: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in input.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&input[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&input[start..]);
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// events.k8s.io field names map onto the stored core/v1 names.
fn canonical_field(flavor: Flavor, field: &str) -> String {
    if flavor == Flavor::EventsV1 {
        if let Some(rest) = field.strip_prefix("regarding.") {
            return format!("involvedObject.{rest}");
        }
        match field {
            "reportingController" => return "reportingComponent".into(),
            "deprecatedSource" => return "source".into(),
            _ => {}
        }
    }
    field.to_string()
}

/// The extra selectable fields of a kind (beyond `metadata.name` and
/// `metadata.namespace`), with the JSON path each one reads.
pub fn selectable_fields(flavor: Flavor) -> &'static [(&'static str, &'static [&'static str])] {
    match flavor {
        Flavor::Pod => &[
            ("spec.nodeName", &["spec", "nodeName"]),
            ("spec.restartPolicy", &["spec", "restartPolicy"]),
            ("spec.schedulerName", &["spec", "schedulerName"]),
            ("spec.serviceAccountName", &["spec", "serviceAccountName"]),
            ("spec.hostNetwork", &["spec", "hostNetwork"]),
            ("status.phase", &["status", "phase"]),
            ("status.podIP", &["status", "podIP"]),
            ("status.nominatedNodeName", &["status", "nominatedNodeName"]),
        ],
        Flavor::Node => &[("spec.unschedulable", &["spec", "unschedulable"])],
        Flavor::Namespace => &[("status.phase", &["status", "phase"])],
        Flavor::Service => &[
            ("spec.clusterIP", &["spec", "clusterIP"]),
            ("spec.type", &["spec", "type"]),
        ],
        Flavor::Secret => &[("type", &["type"])],
        Flavor::CoreEvent | Flavor::EventsV1 => &[
            ("involvedObject.kind", &["involvedObject", "kind"]),
            ("involvedObject.namespace", &["involvedObject", "namespace"]),
            ("involvedObject.name", &["involvedObject", "name"]),
            ("involvedObject.uid", &["involvedObject", "uid"]),
            (
                "involvedObject.apiVersion",
                &["involvedObject", "apiVersion"],
            ),
            (
                "involvedObject.resourceVersion",
                &["involvedObject", "resourceVersion"],
            ),
            ("involvedObject.fieldPath", &["involvedObject", "fieldPath"]),
            ("reason", &["reason"]),
            ("reportingComponent", &["reportingComponent"]),
            ("source", &["source", "component"]),
            ("type", &["type"]),
        ],
        _ => &[],
    }
}

fn selectable(flavor: Flavor, field: &str) -> bool {
    field == "metadata.name"
        || field == "metadata.namespace"
        || selectable_fields(flavor).iter().any(|(f, _)| *f == field)
}

/// Reads the selectable field values of an object, for storing beside it.
/// Only non-empty values are kept.
pub fn extract(flavor: Flavor, object: &Value) -> Vec<(&'static str, String)> {
    selectable_fields(flavor)
        .iter()
        .filter_map(|(field, path)| extract_one(object, path).map(|v| (*field, v)))
        .collect()
}

/// The value of one selectable field at `path`, if set and not empty.
pub fn extract_one(object: &Value, path: &[&str]) -> Option<String> {
    let mut cur = object;
    for key in path {
        cur = cur.get(key)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_equal_and_not_equal() {
        let s =
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Running", Flavor::Pod).unwrap();
        assert_eq!(s.requirements.len(), 2);
        assert!(s.requirements[0].equal);
        assert!(!s.requirements[1].equal);
        let fields = |f: &str| match f {
            "spec.nodeName" => Some("n1".to_string()),
            "status.phase" => Some("Pending".to_string()),
            _ => None,
        };
        assert!(s.matches(fields));
    }

    #[test]
    fn rejects_unknown_field() {
        assert!(FieldSelector::parse("spec.foo=1", Flavor::Pod).is_err());
        assert!(FieldSelector::parse("spec.nodeName=1", Flavor::Custom).is_err());
    }

    #[test]
    fn events_v1_names_map_to_core() {
        let s = FieldSelector::parse("regarding.name=p", Flavor::EventsV1).unwrap();
        assert_eq!(s.requirements[0].field, "involvedObject.name");
    }

    #[test]
    fn empty_value_matches_missing_field() {
        let s = FieldSelector::parse("spec.nodeName=", Flavor::Pod).unwrap();
        assert!(s.matches(|_| None));
    }
}
