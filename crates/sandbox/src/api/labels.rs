//! Label selectors and label sets of stored objects (JSON), as upstream's apimachinery
//! formats and matches them: a Deployment's selector against its template, the
//! SELECTOR and POD-SELECTOR columns.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use podwarden_base::selector::Selector;
use serde_json::{Map, Value};

/// A `metav1.LabelSelector` as `LabelSelectorAsSelector(..).String()` writes it:
/// requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`.
/// `None` when the selector is not a valid one (upstream prints `<invalid>`/`<error>`).
pub fn selector_string(selector: &Value) -> Option<String> {
    let parsed: LabelSelector = serde_json::from_value(selector.clone()).ok()?;
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.match_labels.unwrap_or_default() {
        requirements.push((k.clone(), format!("{k}={v}")));
    }
    for e in parsed.match_expressions.unwrap_or_default() {
        let mut values = e.values.unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" if !values.is_empty() => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" if !values.is_empty() => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" if values.is_empty() => e.key.clone(),
            "DoesNotExist" if values.is_empty() => format!("!{}", e.key),
            _ => return None,
        };
        requirements.push((e.key, text));
    }
    // A stable sort: requirements on one key keep their order, as upstream's.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        requirements
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: the string form, `<none>` when empty, `<error>`
/// when invalid.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match selector.map(selector_string) {
        None => "<none>".into(),
        Some(None) => "<error>".into(),
        Some(Some(s)) if s.is_empty() => "<none>".into(),
        Some(Some(s)) => s,
    }
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted by key, `<none>` when empty.
pub fn format_labels(labels: Option<&Value>) -> String {
    let Some(map) = labels.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Whether `selector` (a `metav1.LabelSelector`) selects `labels` (a label map);
/// an error naming what is wrong with an invalid selector.
pub fn selector_matches(selector: &Value, labels: Option<&Value>) -> Result<bool, String> {
    let parsed: LabelSelector =
        serde_json::from_value(selector.clone()).map_err(|e| e.to_string())?;
    let compiled = Selector::from_label_selector(&parsed).map_err(|e| e.to_string())?;
    let labels: std::collections::BTreeMap<String, String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(compiled.matches(&labels))
}

/// Whether a selector has neither `matchLabels` nor `matchExpressions` entries.
pub fn selector_is_empty(selector: &Value) -> bool {
    let empty = |k: &str| {
        selector.get(k).is_none_or(|v| match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Null => true,
            _ => false,
        })
    };
    empty("matchLabels") && empty("matchExpressions")
}

/// A label map as Go's `%#v` prints a `map[string]string` (the value upstream's
/// validation messages quote): `map[string]string{"a":"b", "c":"d"}`.
pub fn go_map(labels: Option<&Value>) -> String {
    let empty = Map::new();
    let map = labels.and_then(Value::as_object).unwrap_or(&empty);
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                Value::String(k.clone()),
                Value::String(v.as_str().unwrap_or_default().to_string())
            )
        })
        .collect();
    pairs.sort();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_strings_as_upstream_writes_them() {
        let cases = [
            (
                "match labels sorted",
                json!({"matchLabels": {"b": "2", "a": "1"}}),
                Some("a=1,b=2"),
            ),
            (
                "expressions",
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                                            {"key": "env", "operator": "NotIn", "values": ["dev"]},
                                            {"key": "x", "operator": "Exists"},
                                            {"key": "y", "operator": "DoesNotExist"}]}),
                Some("env notin (dev),tier in (api,web),x,!y"),
            ),
            ("empty", json!({}), Some("")),
            (
                "bad operator",
                json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
                None,
            ),
        ];
        for (case, selector, want) in cases {
            assert_eq!(selector_string(&selector).as_deref(), want, "{case}");
        }
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn matching_and_go_maps() {
        let selector = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]});
        assert_eq!(
            selector_matches(&selector, Some(&json!({"app": "web", "tier": "x"}))),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&selector, Some(&json!({"app": "web"}))),
            Ok(false)
        );
        assert!(selector_matches(&json!({"matchLabels": 3}), None).is_err());
        assert_eq!(
            go_map(Some(&json!({"b": "2", "a": "1"}))),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
        assert!(selector_is_empty(&json!({"matchLabels": {}})));
        assert!(!selector_is_empty(&json!({"matchLabels": {"a": "b"}})));
    }
}
