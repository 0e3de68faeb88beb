//! ConfigMaps and Secrets: a Secret's `stringData` written into `data` and its type
//! defaulted (as the v1 conversion and defaults do), key names, the 1 MiB limit,
//! `immutable`, and a Secret's immutable type.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::super::error::Cause;

/// `corev1.MaxSecretSize`, the limit of a ConfigMap's and a Secret's data.
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// A valid ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, at most 253 characters, not
/// `.` or `..` nor starting with `..`.
fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && key != "."
        && !key.starts_with("..")
}

fn check_keys(map: Option<&Map<String, Value>>, field: &str, causes: &mut Vec<Cause>) {
    for key in map.into_iter().flat_map(|m| m.keys()) {
        if !is_config_key(key) {
            causes.push(Cause::invalid(
                format!("{field}[{key}]"),
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
    }
}

fn too_long(field: &str) -> Cause {
    Cause {
        reason: "FieldValueTooLong".into(),
        message: format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        field: field.into(),
    }
}

/// `ValidateConfigMap`: key names, no key in both `data` and `binaryData`, 1 MiB.
pub fn validate_config_map(object: &Value, causes: &mut Vec<Cause>) {
    let data = object.get("data").and_then(Value::as_object);
    let binary = object.get("binaryData").and_then(Value::as_object);
    check_keys(data, "data", causes);
    check_keys(binary, "binaryData", causes);
    let mut size = 0;
    for (key, value) in data.into_iter().flatten() {
        size += key.len() + value.as_str().map_or(0, str::len);
        if binary.is_some_and(|b| b.contains_key(key)) {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: \"{key}\": duplicate of key present in binaryData"
                ),
                field: format!("data[{key}]"),
            });
        }
    }
    for (key, value) in binary.into_iter().flatten() {
        size += key.len() + value.as_str().map_or(0, |v| v.len() * 3 / 4);
    }
    if size > MAX_DATA_BYTES {
        causes.push(too_long(""));
    }
}

/// Type `Opaque` when unset; every `stringData` entry base64-encoded into `data` (over
/// a `data` entry of the same key), `stringData` itself not stored.
pub fn default_secret(object: &mut Value, causes: &mut Vec<Cause>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let type_empty = map
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if type_empty {
        map.insert("type".into(), json!("Opaque"));
    }
    let Some(string_data) = map.remove("stringData") else {
        return;
    };
    let Value::Object(string_data) = string_data else {
        if !string_data.is_null() {
            causes.push(Cause::invalid(
                "stringData",
                &string_data.to_string(),
                "must be a map of strings",
            ));
        }
        return;
    };
    check_keys(Some(&string_data), "stringData", causes);
    let data = map.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    let Some(data) = data.as_object_mut() else {
        return; // a non-map `data` is refused by the typed decode
    };
    for (key, value) in string_data {
        match value.as_str() {
            Some(text) => {
                data.insert(key, json!(STANDARD.encode(text)));
            }
            None => causes.push(Cause::invalid(
                format!("stringData[{key}]"),
                &value.to_string(),
                "must be a string",
            )),
        }
    }
}

/// `ValidateSecret`: key names, the 1 MiB limit (decoded), and a service account
/// token secret's required annotation.
pub fn validate_secret(object: &Value, causes: &mut Vec<Cause>) {
    let data = object.get("data").and_then(Value::as_object);
    check_keys(data, "data", causes);
    let size: usize = data
        .into_iter()
        .flatten()
        .map(|(_, v)| v.as_str().map_or(0, |s| s.len() * 3 / 4))
        .sum();
    if size > MAX_DATA_BYTES {
        causes.push(too_long("data"));
    }
    if object.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token") {
        let annotated = super::super::object::meta(object)
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get("kubernetes.io/service-account.name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !annotated {
            causes.push(Cause::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
            ));
        }
    }
}

/// An `immutable` ConfigMap or Secret keeps its data, and stays immutable.
pub fn check_immutable(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    let forbidden = |field: &str| Cause {
        reason: "FieldValueForbidden".into(),
        message: "Forbidden: field is immutable when `immutable` is set".into(),
        field: field.into(),
    };
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        causes.push(forbidden("immutable"));
    }
    for field in ["data", "binaryData"] {
        let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v == &json!({}));
        let (a, b) = (old.get(field), new.get(field));
        if a != b && !(empty(a) && empty(b)) {
            causes.push(forbidden(field));
        }
    }
}

/// A Secret's type never changes.
pub fn check_secret_type(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let (a, b) = (old.get("type"), new.get("type"));
    if a != b {
        let value = b.and_then(Value::as_str).unwrap_or_default();
        causes.push(Cause::invalid("type", value, "field is immutable"));
    }
}
