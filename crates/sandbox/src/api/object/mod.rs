//! A stored object: its serialized JSON (served as-is by get, list and watch, never
//! re-serialized) beside the few metadata fields that selectors and the store read.
//!
//! The helpers every module uses on plain JSON objects, timestamps and fresh ids live
//! beside it: `json`, `timestamps`, `ids`.

mod ids;
mod json;
mod timestamps;

pub use ids::{name_suffix, new_uid, splitmix};
pub use json::{equal_ignoring, meta, meta_mut, meta_str, path, path_str};
pub use timestamps::{format_micro_time, format_time, parse_time};

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::fields;
use super::lazy::{self, Lazy, LazyMap};
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
    /// Where the members of the object and of its metadata sit in `json`.
    layout: Layout,
}

/// The top-level fields a status write reads and writes; it keeps the others (spec,
/// data, ...) as stored.
pub const STATUS_VIEW_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "status"];

/// Byte offsets of the members of the object and of its `metadata`: lets a write take
/// the members it does not change without scanning the bytes for them. Empty when the
/// object is not a JSON object or too large for `u32` offsets.
#[derive(Debug, Default)]
struct Layout {
    top: Box<[Span]>,
    meta: Box<[Span]>,
}

/// One member: its quoted key starts at `key`, its value spans `value..end`.
#[derive(Debug, Clone, Copy)]
struct Span {
    key: u32,
    value: u32,
    end: u32,
}

impl Span {
    fn new(key: usize, value: usize, end: usize) -> Option<Span> {
        Some(Span {
            key: u32::try_from(key).ok()?,
            value: u32::try_from(value).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("serializing object: {e}"))
}

/// Serializes an object from its members, recording where each member (and each
/// member of `metadata`) lands.
fn encode(top: &LazyMap<'_>, size_hint: usize) -> Result<(Vec<u8>, Layout), ApiError> {
    let mut out = Vec::with_capacity(size_hint);
    let mut top_spans = Vec::with_capacity(top.len());
    let mut meta_spans = Vec::new();
    out.push(b'{');
    for (i, (k, v)) in top.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let key = out.len();
        lazy::write_key(&mut out, k).map_err(internal)?;
        let value = out.len();
        match (k.as_str(), v) {
            ("metadata", Lazy::Map(members)) => {
                encode_members(
                    &mut out,
                    members.iter().map(|(k, v)| (k.as_str(), v)),
                    &mut meta_spans,
                )?;
            }
            (
                "metadata",
                Lazy::Borrowed(Value::Object(members)) | Lazy::Value(Value::Object(members)),
            ) => {
                let members: Vec<(&str, Lazy<'_>)> = members
                    .iter()
                    .map(|(k, v)| (k.as_str(), Lazy::Borrowed(v)))
                    .collect();
                encode_members(
                    &mut out,
                    members.iter().map(|(k, v)| (*k, v)),
                    &mut meta_spans,
                )?;
            }
            _ => v.write(&mut out).map_err(internal)?,
        }
        top_spans.extend(Span::new(key, value, out.len()));
    }
    out.push(b'}');
    // Stored for long: give back the serializer's spare capacity.
    out.shrink_to_fit();
    let layout = if top_spans.len() == top.len() {
        Layout {
            top: top_spans.into(),
            meta: meta_spans.into(),
        }
    } else {
        Layout::default()
    };
    Ok((out, layout))
}

fn encode_members<'x, 'a: 'x>(
    out: &mut Vec<u8>,
    members: impl Iterator<Item = (&'x str, &'x Lazy<'a>)>,
    spans: &mut Vec<Span>,
) -> Result<(), ApiError> {
    let mut complete = true;
    out.push(b'{');
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let key = out.len();
        lazy::write_key(out, k).map_err(internal)?;
        let value = out.len();
        v.write(out).map_err(internal)?;
        match Span::new(key, value, out.len()) {
            Some(span) => spans.push(span),
            None => complete = false,
        }
    }
    out.push(b'}');
    if !complete {
        spans.clear();
    }
    Ok(())
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
        let (json, layout) = match object.as_object() {
            Some(map) => encode(
                &map.iter()
                    .map(|(k, v)| (k.clone(), Lazy::Borrowed(v)))
                    .collect(),
                0,
            )?,
            None => {
                let json = serde_json::to_vec(object).map_err(internal)?;
                (json, Layout::default())
            }
        };
        Ok(StoredObject {
            resource_version,
            namespace: text("namespace"),
            name: text("name"),
            uid: text("uid"),
            labels: labels_of(object),
            fields: fields::extract(flavor, object),
            json: Bytes::from(json),
            layout,
        })
    }

    /// The stored form of a status write: `view` (see [`StoredObject::status_view`])
    /// with `managed_fields`, every other top-level field as `base` stores it.
    pub(crate) fn from_status_view(
        flavor: Flavor,
        resource_version: u64,
        view: &Value,
        members: &[&str],
        managed_fields: Vec<Lazy<'_>>,
        base: &StoredObject,
    ) -> Result<Self, ApiError> {
        let (json, layout) = match splice_view(view, members, managed_fields, base)? {
            Ok(spliced) => spliced,
            Err(managed_fields) => encode_view(view, members, managed_fields, base)?,
        };
        let selectable = fields::selectable_fields(flavor);
        let mut fields = Vec::with_capacity(selectable.len());
        for (field, path) in selectable {
            let value = if path.first().is_some_and(|k| members.contains(k)) {
                fields::extract_one(view, path)
            } else {
                base.field(field)
            };
            fields.extend(value.map(|v| (*field, v)));
        }
        let text = |key: &str| meta_str(view, key).unwrap_or_default().to_string();
        Ok(StoredObject {
            resource_version,
            namespace: text("namespace"),
            name: text("name"),
            uid: text("uid"),
            labels: labels_of(view),
            fields,
            json: Bytes::from(json),
            layout,
        })
    }

    /// This object at another resourceVersion (a delete's final state).
    pub(crate) fn with_resource_version(&self, resource_version: u64) -> Result<Self, ApiError> {
        let mut top = self.lazy()?;
        let meta = top
            .entry("metadata".into())
            .or_insert_with(|| Lazy::Map(LazyMap::new()));
        if !meta.is_object() {
            *meta = Lazy::Map(LazyMap::new());
        }
        if let Some(members) = meta.as_map_mut().map_err(internal)? {
            members.insert(
                "resourceVersion".into(),
                Lazy::Value(Value::String(resource_version.to_string())),
            );
        }
        let (json, layout) = encode(&top, self.json.len() + 16)?;
        Ok(StoredObject {
            resource_version,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            labels: self.labels.clone(),
            fields: self.fields.clone(),
            json: Bytes::from(json),
            layout,
        })
    }

    pub fn key(&self) -> ObjectKey {
        (self.namespace.clone(), self.name.clone())
    }

    /// The object as a JSON value (parses the stored bytes).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// What a status write needs of the object, parsed: `apiVersion`, `kind`,
    /// `metadata` without `managedFields`, and `status`. A fraction of the cost of
    /// [`StoredObject::value`] for a pod; a status write may return it (changed) from
    /// a [`Store::guaranteed_update`](super::Store::guaranteed_update) closure, the
    /// store keeps the rest of the object and its managedFields.
    pub fn status_view(&self) -> Value {
        self.try_status_view().unwrap_or(Value::Null)
    }

    pub(crate) fn try_status_view(&self) -> Result<Value, ApiError> {
        self.try_view(STATUS_VIEW_FIELDS)
    }

    /// The top-level `members` of the object (those it has), parsed; `metadata`
    /// without `managedFields`. [`StoredObject::try_status_view`] for any members.
    pub(crate) fn try_view(&self, members: &[&str]) -> Result<Value, ApiError> {
        if !self.layout.top.is_empty() {
            return self.view_from_layout(members);
        }
        let mut top = self.lazy()?;
        let mut view = serde_json::Map::new();
        for key in members {
            let Some(mut member) = top.remove(*key) else {
                continue;
            };
            if *key == "metadata"
                && let Some(members) = member.as_map_mut().map_err(internal)?
            {
                members.remove("managedFields");
            }
            view.insert((*key).to_string(), member.into_value().map_err(internal)?);
        }
        Ok(Value::Object(view))
    }

    /// [`StoredObject::try_view`] parsing only the members it keeps.
    fn view_from_layout(&self, members: &[&str]) -> Result<Value, ApiError> {
        let json: &[u8] = &self.json;
        let mut view = serde_json::Map::new();
        for span in self.layout.top.iter() {
            let Some(key) = members.iter().find(|k| span_has_key(json, span, k)) else {
                continue;
            };
            let value = if *key == "metadata" && !self.layout.meta.is_empty() {
                let mut meta = serde_json::Map::new();
                for span in self.layout.meta.iter() {
                    if span_has_key(json, span, "managedFields") {
                        continue;
                    }
                    let (key, value) = span_member(json, span)?;
                    meta.insert(key, serde_json::from_slice(value).map_err(internal)?);
                }
                Value::Object(meta)
            } else {
                let mut member = Lazy::Raw(span_member(json, span)?.1);
                if *key == "metadata"
                    && let Some(members) = member.as_map_mut().map_err(internal)?
                {
                    members.remove("managedFields");
                }
                member.into_value().map_err(internal)?
            };
            view.insert((*key).to_string(), value);
        }
        Ok(Value::Object(view))
    }

    /// The stored managedFields entries, each still serialized.
    pub(crate) fn managed_fields(&self) -> Result<Vec<Lazy<'_>>, ApiError> {
        if !self.layout.meta.is_empty() {
            let json: &[u8] = &self.json;
            let Some(span) = self
                .layout
                .meta
                .iter()
                .find(|s| span_has_key(json, s, "managedFields"))
            else {
                return Ok(Vec::new());
            };
            let mut list = Lazy::Raw(span_member(json, span)?.1);
            return Ok(list
                .as_list_mut()
                .map_err(internal)?
                .map(std::mem::take)
                .unwrap_or_default());
        }
        let mut top = self.lazy()?;
        let Some(mut meta) = top.remove("metadata") else {
            return Ok(Vec::new());
        };
        let Some(members) = meta.as_map_mut().map_err(internal)? else {
            return Ok(Vec::new());
        };
        let Some(mut list) = members.remove("managedFields") else {
            return Ok(Vec::new());
        };
        Ok(list
            .as_list_mut()
            .map_err(internal)?
            .map(std::mem::take)
            .unwrap_or_default())
    }

    /// The members of the object (and of its metadata), still serialized.
    fn lazy(&self) -> Result<LazyMap<'_>, ApiError> {
        let json: &[u8] = &self.json;
        if self.layout.top.is_empty() {
            let mut whole = Lazy::Raw(json);
            return Ok(whole
                .as_map_mut()
                .map_err(internal)?
                .map(std::mem::take)
                .unwrap_or_default());
        }
        let mut top = members_at(json, &self.layout.top)?;
        if !self.layout.meta.is_empty()
            && let Some(meta) = top.get_mut("metadata")
        {
            *meta = Lazy::Map(members_at(json, &self.layout.meta)?);
        }
        Ok(top)
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

/// The stored form of a status write, built member by member: `base`'s members except
/// `members`, with `view`'s members, and `managed_fields` in the view's metadata. Every
/// member is re-encoded (see [`splice_view`] for the usual case).
fn encode_view(
    view: &Value,
    members: &[&str],
    managed_fields: Vec<Lazy<'_>>,
    base: &StoredObject,
) -> Result<(Vec<u8>, Layout), ApiError> {
    let mut top = base.lazy()?;
    for key in members {
        top.remove(*key);
    }
    for (k, v) in view.as_object().into_iter().flatten() {
        top.insert(k.clone(), Lazy::Borrowed(v));
    }
    if !managed_fields.is_empty()
        && let Some(meta) = top.get_mut("metadata")
        && let Some(members) = meta.as_map_mut().map_err(internal)?
    {
        members.insert("managedFields".into(), Lazy::List(managed_fields));
    }
    encode(&top, base.json.len() + 256)
}

/// [`encode_view`] without building the object: `base`'s stored members are copied as
/// bytes in key order, merged with `view`'s (both are sorted by key, as every stored
/// object is). `Err` gives `managed_fields` back when the layout does not allow it
/// (no layout, a key with escapes, no metadata object in the view).
#[allow(clippy::type_complexity)]
fn splice_view<'a>(
    view: &Value,
    members: &[&str],
    managed_fields: Vec<Lazy<'a>>,
    base: &StoredObject,
) -> Result<Result<(Vec<u8>, Layout), Vec<Lazy<'a>>>, ApiError> {
    let json: &[u8] = &base.json;
    let (Some(view), false) = (view.as_object(), base.layout.top.is_empty()) else {
        return Ok(Err(managed_fields));
    };
    let Some(Value::Object(view_meta)) = view.get("metadata") else {
        return Ok(Err(managed_fields));
    };
    let mut stored = Vec::with_capacity(base.layout.top.len());
    for span in base.layout.top.iter() {
        match span_plain_key(json, span) {
            Some(key) => stored.push((key, span)),
            None => return Ok(Err(managed_fields)),
        }
    }
    let mut managed_fields = Some(managed_fields);
    let mut out = Vec::with_capacity(json.len() + 256);
    let (mut top_spans, mut meta_spans) = (Vec::with_capacity(stored.len() + 1), Vec::new());
    let mut written = 0;
    out.push(b'{');
    let (mut stored, mut view) = (stored.into_iter().peekable(), view.iter().peekable());
    loop {
        // The next key in order: the view's wins over the stored one.
        let (key, value) = match (stored.peek(), view.peek()) {
            (None, None) => break,
            (Some((s, _)), Some((v, _))) if *s < v.as_str() => {
                let Some((key, span)) = stored.next() else {
                    break;
                };
                (key, Err(span))
            }
            (Some((s, _)), Some((v, _))) if *s == v.as_str() => {
                stored.next();
                let Some((key, value)) = view.next() else {
                    break;
                };
                (key.as_str(), Ok(value))
            }
            (Some(_), None) => {
                let Some((key, span)) = stored.next() else {
                    break;
                };
                (key, Err(span))
            }
            (_, Some(_)) => {
                let Some((key, value)) = view.next() else {
                    break;
                };
                (key.as_str(), Ok(value))
            }
        };
        if value.is_err() && members.contains(&key) {
            continue; // a view member the write left out: gone
        }
        if written > 0 {
            out.push(b',');
        }
        written += 1;
        let key_at = out.len();
        lazy::write_key(&mut out, key).map_err(internal)?;
        let value_at = out.len();
        match value {
            Err(span) => out.extend_from_slice(
                json.get(span.value as usize..span.end as usize)
                    .ok_or_else(|| {
                        ApiError::Internal("stored object layout out of range".into())
                    })?,
            ),
            Ok(_) if key == "metadata" => {
                let mut meta: Vec<(&str, Lazy<'_>)> = view_meta
                    .iter()
                    .filter(|(k, _)| k.as_str() != "managedFields")
                    .map(|(k, v)| (k.as_str(), Lazy::Borrowed(v)))
                    .collect();
                if let Some(list) = managed_fields.take().filter(|l| !l.is_empty()) {
                    let at = meta.partition_point(|(k, _)| *k < "managedFields");
                    meta.insert(at, ("managedFields", Lazy::List(list)));
                }
                encode_members(&mut out, meta.iter().map(|(k, v)| (*k, v)), &mut meta_spans)?;
            }
            Ok(value) => serde_json::to_writer(&mut out, value).map_err(internal)?,
        }
        top_spans.extend(Span::new(key_at, value_at, out.len()));
    }
    out.push(b'}');
    out.shrink_to_fit();
    let layout = if top_spans.len() == written {
        Layout {
            top: top_spans.into(),
            meta: meta_spans.into(),
        }
    } else {
        Layout::default()
    };
    Ok(Ok((out, layout)))
}

/// The key of the member at `span` when it is written without escapes (the keys of
/// every built-in kind are).
fn span_plain_key<'a>(json: &'a [u8], span: &Span) -> Option<&'a str> {
    let quoted = json.get(span.key as usize..(span.value as usize).checked_sub(1)?)?;
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    if inner.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

/// The members at `spans` of `json`, still serialized.
fn members_at<'a>(json: &'a [u8], spans: &[Span]) -> Result<LazyMap<'a>, ApiError> {
    spans
        .iter()
        .map(|s| {
            let (key, value) = span_member(json, s)?;
            Ok((key, Lazy::Raw(value)))
        })
        .collect()
}

/// The key and the value text of the member at `span`.
fn span_member<'a>(json: &'a [u8], span: &Span) -> Result<(String, &'a [u8]), ApiError> {
    let (key, value, end) = (span.key as usize, span.value as usize, span.end as usize);
    // The quoted key ends just before the `:` that precedes the value.
    let out_of_range = || ApiError::Internal("stored object layout out of range".into());
    let quoted = json
        .get(key..value.saturating_sub(1))
        .ok_or_else(out_of_range)?;
    let value = json.get(value..end).ok_or_else(out_of_range)?;
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default();
    let key = match std::str::from_utf8(inner) {
        Ok(plain) if !inner.contains(&b'\\') => plain.to_string(),
        _ => serde_json::from_slice(quoted).map_err(internal)?,
    };
    Ok((key, value))
}

/// Whether the member at `span` has the key `key`, a plain name (no character JSON
/// escapes), which serde_json writes as `"key"`.
fn span_has_key(json: &[u8], span: &Span, key: &str) -> bool {
    let quoted = json.get(span.key as usize..(span.value as usize).saturating_sub(1));
    quoted
        .is_some_and(|q| q.len() == key.len() + 2 && q.get(1..q.len() - 1) == Some(key.as_bytes()))
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    meta(object)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spliced stored form of a status write is byte for byte (and span for span)
    /// what encoding the whole object gives, for each way a view can differ.
    #[test]
    fn spliced_status_writes_equal_encoded_ones() {
        use serde_json::json;
        let stored = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "5",
                "labels": {"a": "b"},
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}}}]},
            "spec": {"containers": [{"name": "app", "image": "i"}]},
            "status": {"phase": "Pending"},
        });
        let base = StoredObject::new(Flavor::Pod, 5, &stored).unwrap();
        let entries = || {
            vec![Lazy::Value(
                json!({"manager": "kubelet", "operation": "Update"}),
            )]
        };
        let mut changed = base.try_status_view().unwrap();
        changed["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready"}]});
        changed["metadata"]["resourceVersion"] = json!("6");
        let mut no_status = changed.clone();
        no_status.as_object_mut().unwrap().remove("status");
        let mut extra = changed.clone();
        extra["aaa"] = json!(1);
        extra["zzz"] = json!({"x": [1, 2]});
        extra["metadata"]["annotations"] = json!({"k": "v\"q"});
        let cases: [(&str, &Value, bool); 4] = [
            ("status changed", &changed, true),
            ("status removed", &no_status, true),
            (
                "members added before and after the stored ones",
                &extra,
                true,
            ),
            ("no managedFields", &changed, false),
        ];
        for (case, view, with_entries) in cases {
            let list = if with_entries { entries() } else { Vec::new() };
            let spliced = splice_view(view, STATUS_VIEW_FIELDS, list, &base)
                .unwrap()
                .unwrap_or_else(|_| panic!("{case}: spliced"));
            let list = if with_entries { entries() } else { Vec::new() };
            let encoded = encode_view(view, STATUS_VIEW_FIELDS, list, &base).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&spliced.0),
                String::from_utf8_lossy(&encoded.0),
                "{case}"
            );
            assert_eq!(
                format!("{:?}", spliced.1),
                format!("{:?}", encoded.1),
                "{case}"
            );
            assert!(
                !spliced.1.top.is_empty() && !spliced.1.meta.is_empty(),
                "{case}"
            );
        }
        // A stored key with an escape: not spliced, encoded.
        let odd = StoredObject::new(
            Flavor::Pod,
            5,
            &json!({"metadata": {"name": "p"}, "we\"ird": 1}),
        )
        .unwrap();
        let view = odd.try_status_view().unwrap();
        assert!(
            splice_view(&view, STATUS_VIEW_FIELDS, entries(), &odd)
                .unwrap()
                .is_err()
        );
    }
}
