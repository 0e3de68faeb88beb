//! A stored object: its serialized JSON (served as-is by get, list and watch, never
//! re-serialized) beside the few metadata fields that selectors and the store read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::fields;
use super::resources::Flavor;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjectKey = (String, String);

#[derive(Debug)]
pub struct StoredObject {
    pub resource_version: u64,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Selectable field values (see [`fields::selectable_fields`]).
    pub fields: Vec<(&'static str, String)>,
    /// The object as JSON, `metadata.resourceVersion` included.
    pub json: Bytes,
}

impl StoredObject {
    /// Builds the stored form of `object`, which already carries its resourceVersion.
    pub fn new(flavor: Flavor, resource_version: u64, object: &Value) -> Result<Self, ApiError> {
        let meta = object.get("metadata");
        let text = |key: &str| -> String {
            meta.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let mut json = serde_json::to_vec(object)
            .map_err(|e| ApiError::Internal(format!("serializing object: {e}")))?;
        // Stored for long: give back the serializer's spare capacity.
        json.shrink_to_fit();
        Ok(StoredObject {
            resource_version,
            namespace: text("namespace"),
            name: text("name"),
            uid: text("uid"),
            labels,
            fields: fields::extract(flavor, object),
            json: Bytes::from(json),
        })
    }

    pub fn key(&self) -> ObjectKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// The object as a JSON value (parses the stored bytes).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The object as a typed value, e.g. `k8s_openapi::api::core::v1::Pod`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }

    /// The value of a selectable field (`metadata.name`, `spec.nodeName`, ...).
    pub fn field(&self, field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            _ => self
                .fields
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, v)| v.clone()),
        }
    }
}

/// Metadata accessors over a JSON object.
pub fn meta(object: &Value) -> Option<&serde_json::Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

pub fn meta_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Default::default());
    }
    let Value::Object(map) = object else {
        unreachable!("made an object above")
    };
    let entry = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if !entry.is_object() {
        *entry = Value::Object(Default::default());
    }
    let Value::Object(meta) = entry else {
        unreachable!("made an object above")
    };
    meta
}

pub fn meta_str<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    meta(object)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// Whether two objects are equal once the top-level fields `top` and the metadata
/// fields `meta` are ignored; compares in place (no copies of large objects).
pub fn equal_ignoring(a: &Value, b: &Value, top: &[&str], meta: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let mut ia = a.iter().filter(|(k, _)| !top.contains(&k.as_str()));
    let mut ib = b.iter().filter(|(k, _)| !top.contains(&k.as_str()));
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return true,
            (Some((ka, va)), Some((kb, vb))) => {
                if ka != kb {
                    return false;
                }
                let same = if ka == "metadata" && !meta.is_empty() {
                    equal_ignoring(va, vb, meta, &[])
                } else {
                    va == vb
                };
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A JSON pointer-ish getter: `path(&pod, &["spec", "nodeName"])`.
pub fn path<'a>(object: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(object, |cur, k| cur.get(*k))
}

pub fn path_str<'a>(object: &'a Value, keys: &[&str]) -> Option<&'a str> {
    path(object, keys).and_then(Value::as_str)
}

/// Formats a timestamp the way Kubernetes does (`2026-08-01T10:00:00Z`, whole seconds).
pub fn format_time(ts: jiff::Timestamp) -> String {
    match jiff::Timestamp::from_second(ts.as_second()) {
        Ok(t) => t.to_string(),
        Err(_) => ts.to_string(),
    }
}

/// Formats a MicroTime (`2026-08-01T10:00:00.123456Z`), as events use.
pub fn format_micro_time(ts: jiff::Timestamp) -> String {
    let micros = ts.as_microsecond();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => {
            let s = t.to_string();
            format!("{}.{frac:06}Z", s.trim_end_matches('Z'))
        }
        Err(_) => ts.to_string(),
    }
}

pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

static COUNTER: AtomicU64 = AtomicU64::new(1);
static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// A fresh pseudo-random 64-bit value: unique per call within the process.
fn next_random() -> u64 {
    let key = *KEY.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        splitmix(nanos ^ u64::from(std::process::id()))
    });
    splitmix(
        key ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// A random-looking, unique UUID (v4 layout).
pub fn new_uid() -> String {
    let a = next_random();
    let b = splitmix(a ^ 0xD1B5_4A32_D192_ED03);
    let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x4000;
    let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFFF,
        b >> 48,
        b & 0xFFFF_FFFF_FFFF
    )
}

/// SplitMix64 step: a small, fast mixing function (uids, fault sampling).
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random lowercase alphanumeric suffix for `generateName` (5 characters, as upstream).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = next_random();
    let mut out = String::with_capacity(5);
    for _ in 0..5 {
        out.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_and_well_formed() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn equality_ignoring_fields() {
        let a = serde_json::json!({"metadata": {"name": "x", "resourceVersion": "1"}, "spec": 1, "status": 1});
        let b = serde_json::json!({"metadata": {"name": "x", "resourceVersion": "2"}, "spec": 1, "status": 2});
        assert!(!equal_ignoring(&a, &b, &[], &["resourceVersion"]));
        assert!(equal_ignoring(&a, &b, &["status"], &["resourceVersion"]));
        assert!(!equal_ignoring(&a, &b, &["status"], &[]));
        assert!(equal_ignoring(&a, &b, &["status", "metadata"], &[]));
    }

    #[test]
    fn times_are_whole_seconds() {
        let t: jiff::Timestamp = "2026-08-01T10:00:00.75Z".parse().unwrap();
        assert_eq!(format_time(t), "2026-08-01T10:00:00Z");
        assert_eq!(format_micro_time(t), "2026-08-01T10:00:00.750000Z");
    }
}
