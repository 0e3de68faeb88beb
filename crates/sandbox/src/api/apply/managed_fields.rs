//! managedFields bookkeeping: which manager owns which field after a write. An update
//! moves the fields it changed to its manager; a create by apply gives the applier
//! what it applied. Status writes edit the stored entries in place, splitting only
//! those the write's paths touch.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::super::error::ApiError;
use super::super::lazy::{Lazy, LazyMap};
use super::super::object;
use super::super::options::Subresource;
use super::super::resources::ResourceType;
use super::diff::diff;
use super::fields::{FieldPath, fields_v1_of, from_fields_v1, leaves, segments, to_fields_v1};

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) api_version: String,
    pub(super) subresource: Option<String>,
    pub(super) time: String,
    pub(super) fields: BTreeSet<FieldPath>,
}

impl Entry {
    pub(super) fn same_identity(
        &self,
        manager: &str,
        operation: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        m.insert("time".into(), json!(self.time));
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), to_fields_v1(&self.fields));
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }
}

pub(super) fn read_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object::meta(object)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    list.iter()
        .filter_map(|e| {
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Update")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

pub(super) fn write_entries(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let meta = object::meta_mut(object);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Records an Update-operation write (create, PUT, non-apply PATCH): `manager` takes
/// the fields it changed; other managers lose them.
pub fn record_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Subresource,
    now: jiff::Timestamp,
) {
    if subresource == Subresource::Binding {
        return;
    }
    let Some(old) = old else {
        // A create: the manager owns everything it wrote. Built in one pass, without
        // the path sets an update needs for its diff.
        let fields = fields_v1_of(rt, new);
        let empty = fields.as_object().is_none_or(|m| m.is_empty());
        let meta = object::meta_mut(new);
        meta.remove("managedFields");
        if !empty {
            // Built by moving `fields` in: `json!` would copy it through the serializer.
            let mut entry = Map::new();
            entry.insert("manager".into(), manager.into());
            entry.insert("operation".into(), "Update".into());
            entry.insert("apiVersion".into(), api_version_of(rt, new).into());
            entry.insert("time".into(), object::format_time(now).into());
            entry.insert("fieldsType".into(), "FieldsV1".into());
            entry.insert("fieldsV1".into(), fields);
            object::meta_mut(new).insert(
                "managedFields".into(),
                Value::Array(vec![Value::Object(entry)]),
            );
        }
        return;
    };
    let (changed, removed) = diff(rt, old, new);
    let api_version = api_version_of(rt, new);
    // The write's own managedFields (a patch starts from the stored object, so it has
    // them); the stored ones when the write left them out.
    let mut entries: Vec<Lazy<'_>> = match object::meta_mut(new).remove("managedFields") {
        Some(Value::Array(list)) if !list.is_empty() => list.into_iter().map(Lazy::Value).collect(),
        _ => object::meta(old)
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array)
            .map(|list| list.iter().map(Lazy::Borrowed).collect())
            .unwrap_or_default(),
    };
    // Entries are values here, never serialized bytes: reading them cannot fail.
    let _ = record_changes(
        &mut entries,
        &changed,
        &removed,
        manager,
        subresource,
        now,
        || api_version,
    );
    let entries: Vec<Value> = entries
        .into_iter()
        .filter_map(|e| e.into_value().ok())
        .collect();
    let meta = object::meta_mut(new);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Records an Update-operation write through the status view of an object (see
/// `StoredObject::status_view`): the same as [`record_update`] on the whole objects,
/// whose other fields are equal, with managedFields `entries` read only where the
/// write's fields lie.
pub(crate) fn record_view_update(
    rt: &ResourceType,
    old: &Value,
    new: &Value,
    entries: &mut Vec<Lazy<'_>>,
    manager: &str,
    subresource: Subresource,
    now: jiff::Timestamp,
) -> Result<(), ApiError> {
    if subresource == Subresource::Binding {
        return Ok(());
    }
    let (changed, removed) = diff(rt, old, new);
    record_changes(
        entries,
        &changed,
        &removed,
        manager,
        subresource,
        now,
        || api_version_of(rt, new),
    )
    .map_err(|e| ApiError::Internal(format!("reading managedFields: {e}")))
}

/// managedFields of an object created by apply: the applier owns what it applied.
pub fn record_apply_create(
    rt: &ResourceType,
    object: &mut Value,
    body: &Value,
    manager: &str,
    now: jiff::Timestamp,
) {
    let fields: BTreeSet<FieldPath> = leaves(rt, body).into_keys().collect();
    let entry = Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version_of(rt, object),
        subresource: None,
        time: object::format_time(now),
        fields,
    };
    write_entries(object, &[entry]);
}

pub(super) fn api_version_of(rt: &ResourceType, object: &Value) -> String {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| rt.api_version())
}

/// `manager` takes the `changed` fields; every entry loses the changed and the
/// `removed` ones; entries left without fields go.
fn record_changes(
    entries: &mut Vec<Lazy<'_>>,
    changed: &[FieldPath],
    removed: &[FieldPath],
    manager: &str,
    subresource: Subresource,
    now: jiff::Timestamp,
    api_version: impl FnOnce() -> String,
) -> Result<(), serde_json::Error> {
    if changed.is_empty() && removed.is_empty() {
        return Ok(());
    }
    let sub = subresource.name();
    let mine = own_update_entry(entries, manager, sub)?;
    // Edit the fieldsV1 trees in place: a status write touches a few paths, and the
    // other entries (the create's, which owns everything) stay as they are. The
    // writer's own entry keeps the changed fields it holds and loses the removed ones.
    let paths = PathTrie::of(changed, removed)?;
    for (i, e) in entries.iter_mut().enumerate() {
        let mask = if mine == Some(i) {
            REMOVED
        } else {
            CHANGED | REMOVED
        };
        if paths.has & mask == 0 {
            continue;
        }
        if let Lazy::Raw(raw) = e
            && !paths.mentioned_in(raw, mask)
        {
            continue;
        }
        if let Some(tree) = e.as_map_mut()?.and_then(|m| m.get_mut("fieldsV1")) {
            tree_remove(tree, &paths, mask)?;
        }
    }
    let time = object::format_time(now);
    let mine = match mine.and_then(|i| entries.get_mut(i)) {
        Some(e) => e.as_map_mut()?,
        None => None,
    };
    match mine {
        Some(m) => {
            let tree = m
                .entry("fieldsV1".into())
                .or_insert_with(|| Lazy::Map(LazyMap::new()));
            tree_insert(tree, &paths)?;
            m.insert("time".into(), Lazy::Value(json!(time)));
        }
        None if !changed.is_empty() => {
            let entry = Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version(),
                subresource: sub.map(str::to_string),
                time,
                fields: changed.iter().cloned().collect(),
            };
            entries.push(Lazy::Value(entry.to_json()));
        }
        None => {}
    }
    drop_entries_without_fields(entries)
}

/// The position of `manager`'s Update entry for subresource `sub`, if it has one.
fn own_update_entry(
    entries: &mut [Lazy<'_>],
    manager: &str,
    sub: Option<&str>,
) -> Result<Option<usize>, serde_json::Error> {
    // Stored entries are only split when they may matter: their fieldsV1 comes before
    // `manager` in the bytes, so splitting one scans all of its fields.
    let mut manager_member = b"\"manager\":".to_vec();
    manager_member.extend(serde_json::to_vec(manager)?);
    for (i, e) in entries.iter_mut().enumerate() {
        if let Lazy::Raw(raw) = e
            && memchr::memmem::find(raw, &manager_member).is_none()
        {
            continue;
        }
        let Some(m) = e.as_map_mut()? else { continue };
        let is =
            |key: &str, want: Option<&str>| m.get(key).and_then(|v| v.as_str()).as_deref() == want;
        if is("manager", Some(manager)) && is("operation", Some("Update")) && is("subresource", sub)
        {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Entries left without fields go.
fn drop_entries_without_fields(entries: &mut Vec<Lazy<'_>>) -> Result<(), serde_json::Error> {
    let mut keep = Vec::with_capacity(entries.len());
    for mut e in entries.drain(..) {
        let owns = match raw_fields_nonempty(&e) {
            Some(owns) => owns,
            None => e
                .as_map_mut()?
                .and_then(|m| m.get("fieldsV1"))
                .is_some_and(Lazy::is_nonempty_object),
        };
        if owns {
            keep.push(e);
        }
    }
    *entries = keep;
    Ok(())
}

/// Whether a stored (still unsplit) managedFields entry has fields, read off its bytes:
/// `"fieldsV1":` occurs once in an entry, since every key inside fieldsV1 starts with
/// a prefix (`f:`, `k:`, `v:`, `i:`) or is `.`. `None` when `entry` is not bytes.
fn raw_fields_nonempty(entry: &Lazy<'_>) -> Option<bool> {
    let Lazy::Raw(raw) = entry else {
        return None;
    };
    const KEY: &[u8] = b"\"fieldsV1\":";
    Some(
        memchr::memmem::find(raw, KEY)
            .and_then(|at| raw.get(at + KEY.len()..at + KEY.len() + 2))
            .is_some_and(|v| v[0] == b'{' && v[1] != b'}'),
    )
}

/// A path of [`PathTrie`] that an update changed.
const CHANGED: u8 = 1;

/// A path of [`PathTrie`] that an update removed.
const REMOVED: u8 = 2;

/// Changed and removed field paths merged by their common prefixes, so a fieldsV1
/// tree is walked once for all of them.
#[derive(Debug, Default)]
struct PathTrie<'p> {
    /// Each next segment, with its key as the stored JSON spells it (`"f:x":`).
    children: BTreeMap<&'p str, (Vec<u8>, PathTrie<'p>)>,
    /// [`CHANGED`] and/or [`REMOVED`] when a path ends here.
    leaf: u8,
    /// The kinds of the paths at or under this node.
    has: u8,
}

impl<'p> PathTrie<'p> {
    /// Whether any next key of a path of kind `mask` occurs in `raw`: without one,
    /// the stored bytes hold nothing to remove.
    fn mentioned_in(&self, raw: &[u8], mask: u8) -> bool {
        self.children
            .values()
            .any(|(key, rest)| rest.has & mask != 0 && memchr::memmem::find(raw, key).is_some())
    }

    fn of(changed: &'p [FieldPath], removed: &'p [FieldPath]) -> Result<Self, serde_json::Error> {
        let mut root = PathTrie::default();
        let tagged = changed
            .iter()
            .map(|p| (p, CHANGED))
            .chain(removed.iter().map(|p| (p, REMOVED)));
        for (path, kind) in tagged {
            let mut node = &mut root;
            node.has |= kind;
            for seg in segments(path) {
                node = match node.children.entry(seg) {
                    std::collections::btree_map::Entry::Occupied(e) => &mut e.into_mut().1,
                    std::collections::btree_map::Entry::Vacant(e) => {
                        // `"seg":` as serde_json writes it; only `k:` segments need escapes.
                        let plain = !seg.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
                        let mut key = if plain {
                            let mut k = Vec::with_capacity(seg.len() + 3);
                            k.push(b'"');
                            k.extend_from_slice(seg.as_bytes());
                            k.push(b'"');
                            k
                        } else {
                            serde_json::to_vec(seg)?
                        };
                        key.push(b':');
                        &mut e.insert((key, PathTrie::default())).1
                    }
                };
                node.has |= kind;
            }
            node.leaf |= kind;
        }
        Ok(root)
    }
}

/// Removes the leaves of the paths of kind `mask` from a fieldsV1 tree (a leaf takes
/// its subtree), pruning parents left empty; true when `node` itself became empty.
fn tree_remove(
    node: &mut Lazy<'_>,
    paths: &PathTrie<'_>,
    mask: u8,
) -> Result<bool, serde_json::Error> {
    let next = || {
        paths
            .children
            .iter()
            .filter(move |(_, (_, rest))| rest.has & mask != 0)
    };
    // Stored bytes with none of the next keys anywhere have nothing to remove: most
    // entries own none of the paths a status write changes, and splitting them
    // costs a scan.
    if let Lazy::Raw(raw) = &*node
        && !paths.mentioned_in(raw, mask)
    {
        return Ok(*raw == b"{}");
    }
    let Some(map) = node.as_map_mut()? else {
        return Ok(false);
    };
    for (seg, (_, rest)) in next() {
        if rest.leaf & mask != 0 {
            map.remove(*seg);
            continue;
        }
        let emptied = match map.get_mut(*seg) {
            Some(child) => tree_remove(child, rest, mask)?,
            None => false,
        };
        if emptied {
            map.remove(*seg);
        }
    }
    Ok(map.is_empty())
}

/// Adds the leaves of the changed paths to a fieldsV1 tree.
fn tree_insert(node: &mut Lazy<'_>, paths: &PathTrie<'_>) -> Result<(), serde_json::Error> {
    if !node.is_object() {
        *node = Lazy::Map(LazyMap::new());
    }
    let Some(map) = node.as_map_mut()? else {
        return Ok(());
    };
    for (seg, (_, rest)) in &paths.children {
        if rest.has & CHANGED == 0 {
            continue;
        }
        let child = map
            .entry((*seg).to_string())
            .or_insert_with(|| Lazy::Map(LazyMap::new()));
        if rest.children.values().any(|(_, t)| t.has & CHANGED != 0) {
            tree_insert(child, rest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::Registry;

    fn pods() -> ResourceType {
        (*Registry::default().find("", "v1", "pods").unwrap()).clone()
    }

    fn now() -> jiff::Timestamp {
        "2026-08-01T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn update_moves_ownership_between_managers() {
        let rt = pods();
        let mut v1 = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"x": 1}});
        record_update(&rt, None, &mut v1, "creator", Subresource::Main, now());
        let mut v2 = v1.clone();
        v2["metadata"]["labels"]["a"] = json!("2");
        record_update(&rt, Some(&v1), &mut v2, "editor", Subresource::Main, now());
        let entries = read_entries(&v2);
        let creator = entries.iter().find(|e| e.manager == "creator").unwrap();
        let editor = entries.iter().find(|e| e.manager == "editor").unwrap();
        assert!(!creator.fields.contains("f:metadata\nf:labels\nf:a"));
        assert!(creator.fields.contains("f:spec\nf:x"));
        assert!(editor.fields.contains("f:metadata\nf:labels\nf:a"));
    }

    /// `record_changes` on stored bytes (the status-write path, which skips entries
    /// whose bytes lack a key) and on parsed values gives the field sets that set
    /// arithmetic gives: keyed list items, a leaf taking its subtree, emptied parents
    /// pruned, emptied entries dropped.
    #[test]
    fn record_changes_on_stored_bytes_matches_set_arithmetic() {
        let set = |paths: &[&str]| -> BTreeSet<FieldPath> {
            paths.iter().map(|p| p.to_string()).collect()
        };
        let ready = "f:status\nf:conditions\nk:{\"type\":\"Ready\"}";
        let creator = set(&["f:spec\nf:x", "f:metadata\nf:labels\nf:a"]);
        let scheduler = set(&[
            "f:status\nf:conditions\nk:{\"type\":\"PodScheduled\"}\nf:status",
            &format!("{ready}\nf:reason"),
        ]);
        let kubelet = set(&[
            &format!("{ready}\nf:status"),
            "f:status\nf:phase",
            "f:status\nf:state\nf:running\nf:startedAt",
        ]);
        let entry = |manager: &str, fields: &BTreeSet<FieldPath>| Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version: "v1".into(),
            subresource: (manager != "creator").then(|| "status".to_string()),
            time: "2026-01-01T00:00:00Z".into(),
            fields: fields.clone(),
        };
        // An entry none of the write's paths touch stays as stored bytes.
        let untouched = set(&["f:metadata\nf:annotations\nf:z"]);
        let stored: Vec<Vec<u8>> = [
            entry("creator", &creator),
            entry("default-scheduler", &scheduler),
            entry("kubelet", &kubelet),
            entry("annotator", &untouched),
        ]
        .iter()
        .map(|e| serde_json::to_vec(&e.to_json()).unwrap())
        .collect();
        let changed = set(&[
            &format!("{ready}\nf:status"),
            &format!("{ready}\nf:reason"),
            "f:status\nf:state\nf:terminated\nf:exitCode",
        ]);
        // A leaf taking its subtree: `f:state` goes with everything under it.
        let removed = set(&["f:status\nf:state", "f:spec\nf:x"]);
        let gone = |fields: &BTreeSet<FieldPath>| -> BTreeSet<FieldPath> {
            fields
                .iter()
                .filter(|f| {
                    !changed
                        .iter()
                        .chain(&removed)
                        .any(|g| *f == g || f.starts_with(&format!("{g}\n")))
                })
                .cloned()
                .collect()
        };
        let mut want = vec![
            ("creator", gone(&creator)),
            ("default-scheduler", gone(&scheduler)),
            ("kubelet", gone(&kubelet)),
            ("annotator", untouched.clone()),
        ];
        want[2].1.extend(changed.iter().cloned());
        want.retain(|(_, fields)| !fields.is_empty());
        let changed: Vec<FieldPath> = changed.iter().cloned().collect();
        let removed: Vec<FieldPath> = removed.iter().cloned().collect();
        for raw in [true, false] {
            let values: Vec<Value> = stored
                .iter()
                .map(|b| serde_json::from_slice(b).unwrap())
                .collect();
            let mut entries: Vec<Lazy<'_>> = if raw {
                stored.iter().map(|b| Lazy::Raw(b)).collect()
            } else {
                values.iter().cloned().map(Lazy::Value).collect()
            };
            record_changes(
                &mut entries,
                &changed,
                &removed,
                "kubelet",
                Subresource::Status,
                now(),
                || "v1".into(),
            )
            .unwrap();
            let got: Vec<(String, BTreeSet<FieldPath>)> = entries
                .into_iter()
                .map(|e| {
                    let v = e.into_value().unwrap();
                    (
                        v["manager"].as_str().unwrap().to_string(),
                        from_fields_v1(&v["fieldsV1"]),
                    )
                })
                .collect();
            let want: Vec<(String, BTreeSet<FieldPath>)> = want
                .iter()
                .map(|(m, f)| (m.to_string(), f.clone()))
                .collect();
            assert_eq!(
                got,
                want,
                "entries as {}",
                if raw { "bytes" } else { "values" }
            );
        }
    }
}
