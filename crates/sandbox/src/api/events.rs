//! Events are one store seen through two APIs. They are stored as core/v1 Events and
//! converted as the real server converts them (pkg/apis/events/v1 conversion):
//! `involvedObject` <-> `regarding`, `message` <-> `note`, `source` <-> `deprecatedSource`,
//! `count` <-> `deprecatedCount`, first/last timestamps <-> their deprecated twins;
//! `reportingController` is the core `reportingComponent`; `series` is shared.

use serde_json::{Map, Value};

/// core/v1 field -> events.k8s.io/v1 field, for fields that are renamed.
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("count", "deprecatedCount"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("reportingComponent", "reportingController"),
];

/// Fields with the same name in both versions.
const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "action",
    "reason",
    "related",
    "type",
    "reportingInstance",
];

/// An events.k8s.io/v1 Event as the stored core/v1 Event.
pub fn v1_to_core(event: &Value) -> Value {
    let Some(src) = event.as_object() else {
        return event.clone();
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String("v1".into()));
    out.insert("kind".into(), Value::String("Event".into()));
    for key in SHARED {
        if let Some(v) = src.get(*key) {
            out.insert((*key).into(), v.clone());
        }
    }
    for (core, v1) in RENAMES {
        if let Some(v) = src.get(*v1) {
            out.insert((*core).into(), v.clone());
        }
    }
    Value::Object(out)
}

/// A stored core/v1 Event as an events.k8s.io/v1 Event.
pub fn core_to_v1(event: &Value) -> Value {
    let Some(src) = event.as_object() else {
        return event.clone();
    };
    let mut out = Map::new();
    out.insert(
        "apiVersion".into(),
        Value::String("events.k8s.io/v1".into()),
    );
    out.insert("kind".into(), Value::String("Event".into()));
    for key in SHARED {
        if let Some(v) = src.get(*key) {
            out.insert((*key).into(), v.clone());
        }
    }
    for (core, v1) in RENAMES {
        match src.get(*core) {
            // An empty core source converts to no deprecatedSource.
            Some(Value::Object(m)) if m.is_empty() && *core == "source" => {}
            Some(v) => {
                out.insert((*v1).into(), v.clone());
            }
            None => {}
        }
    }
    // events.k8s.io/v1 requires eventTime; old-style core events only have timestamps.
    if out.get("eventTime").is_none_or(Value::is_null) {
        let fallback = src
            .get("firstTimestamp")
            .or_else(|| src.get("lastTimestamp"))
            .cloned();
        if let Some(t) = fallback.filter(|t| !t.is_null()) {
            out.insert("eventTime".into(), micro(&t));
        }
    }
    Value::Object(out)
}

fn micro(t: &Value) -> Value {
    match t.as_str() {
        Some(s) if s.ends_with('Z') && !s.contains('.') => {
            Value::String(format!("{}.000000Z", s.trim_end_matches('Z')))
        }
        _ => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_both_apis() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-08-01T10:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "note": "hello", "reason": "Started", "type": "Normal",
            "reportingController": "podwarden", "reportingInstance": "podwarden-1",
            "action": "Reconcile",
            "series": {"count": 2, "lastObservedTime": "2026-08-01T10:00:05.000000Z"}
        });
        let core = v1_to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "podwarden");
        assert_eq!(core["series"]["count"], 2);
        assert_eq!(core_to_v1(&core), v1);
    }

    #[test]
    fn core_event_gets_event_time_from_timestamps() {
        let core = json!({"metadata": {"name": "e"}, "involvedObject": {"name": "p"},
                          "message": "m", "source": {"component": "kubelet"}, "count": 3,
                          "firstTimestamp": "2026-08-01T10:00:00Z"});
        let v1 = core_to_v1(&core);
        assert_eq!(v1["deprecatedSource"]["component"], "kubelet");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["eventTime"], "2026-08-01T10:00:00.000000Z");
    }
}
