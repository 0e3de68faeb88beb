//! Server-side apply and `managedFields`: which manager owns which field, conflicts
//! between managers, and the removal of fields a manager stopped applying.
//!
//! Field sets are kept as sets of leaf paths in the `fieldsV1` vocabulary (`f:name`
//! for a field, `k:{"name":"app"}` for a keyed list element, `.` for the element
//! itself). Lists without keys are atomic: owned as a whole.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::error::{ApiError, Cause};
use super::lazy::{Lazy, LazyMap};
use super::object;
use super::options::Subresource;
use super::patch;
use super::resources::{Flavor, ResourceType};

/// A field path: `fieldsV1` path elements joined by newlines (which JSON-encoded keys
/// never contain). One allocation per path keeps large objects cheap to walk.
type FieldPath = String;

fn push_segment(path: &mut FieldPath, segment: &str) {
    if !path.is_empty() {
        path.push('\n');
    }
    path.push_str(segment);
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('\n')
}

/// Metadata fields the server owns; never part of a manager's field set.
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: String,
    fields: BTreeSet<FieldPath>,
}

impl Entry {
    fn same_identity(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
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

fn read_entries(object: &Value) -> Vec<Entry> {
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

fn write_entries(object: &mut Value, entries: &[Entry]) {
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
    // Stored entries are only split when they may matter: their fieldsV1 comes before
    // `manager` in the bytes, so splitting one scans all of its fields.
    let mut manager_member = b"\"manager\":".to_vec();
    manager_member.extend(serde_json::to_vec(manager)?);
    let mut mine = None;
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
            mine = Some(i);
            break;
        }
    }
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

/// The leaf paths an update changed (set to a new value) and removed, found by walking
/// old and new together and descending only where they differ.
fn diff(rt: &ResourceType, old: &Value, new: &Value) -> (Vec<FieldPath>, Vec<FieldPath>) {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return (changed, removed);
    };
    let mut path = String::new();
    for key in union_keys(o, n) {
        if key == "apiVersion" || key == "kind" {
            continue;
        }
        let (ov, nv) = (o.get(key), n.get(key));
        if key == "metadata" {
            let empty = Map::new();
            let om = ov.and_then(Value::as_object).unwrap_or(&empty);
            let nm = nv.and_then(Value::as_object).unwrap_or(&empty);
            for mk in union_keys(om, nm) {
                if SYSTEM_METADATA.contains(&mk) {
                    continue;
                }
                if om.get(mk) == nm.get(mk) {
                    continue;
                }
                path.clear();
                path.push_str("f:metadata\nf:");
                path.push_str(mk);
                let mut names = vec!["metadata", mk];
                diff_value(
                    rt,
                    om.get(mk),
                    nm.get(mk),
                    &mut path,
                    &mut names,
                    &mut changed,
                    &mut removed,
                );
            }
            continue;
        }
        if ov == nv {
            continue;
        }
        path.clear();
        path.push_str("f:");
        path.push_str(key);
        let mut names = vec![key];
        diff_value(
            rt,
            ov,
            nv,
            &mut path,
            &mut names,
            &mut changed,
            &mut removed,
        );
    }
    (changed, removed)
}

fn union_keys<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = a.keys().map(String::as_str).collect();
    keys.extend(b.keys().map(String::as_str).filter(|k| !a.contains_key(*k)));
    keys
}

fn diff_value<'a>(
    rt: &ResourceType,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    changed: &mut Vec<FieldPath>,
    removed: &mut Vec<FieldPath>,
) {
    if old == new {
        return;
    }
    let keyed = match (old, new) {
        (Some(Value::Array(o)), Some(Value::Array(n))) if !o.is_empty() && !n.is_empty() => {
            keyed_ids(rt, names, o, n)
        }
        _ => None,
    };
    if let Some((old_items, new_items)) = keyed {
        for (id, item) in &new_items {
            let before = old_items.iter().find(|(i, _)| i == id).map(|(_, v)| *v);
            let len = path.len();
            push_segment(path, id);
            if before.is_none() {
                let l = path.len();
                push_segment(path, ".");
                changed.push(path.clone());
                path.truncate(l);
            }
            diff_value(rt, before, Some(item), path, names, changed, removed);
            path.truncate(len);
        }
        for (id, item) in &old_items {
            if new_items.iter().any(|(i, _)| i == id) {
                continue;
            }
            let len = path.len();
            push_segment(path, id);
            let l = path.len();
            push_segment(path, ".");
            removed.push(path.clone());
            path.truncate(l);
            diff_value(rt, Some(item), None, path, names, changed, removed);
            path.truncate(len);
        }
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) if !o.is_empty() && !n.is_empty() => {
            for key in union_keys(o, n) {
                if o.get(key) == n.get(key) {
                    continue; // most members of a written object are unchanged
                }
                let len = path.len();
                push_segment(path, "f:");
                path.push_str(key);
                names.push(key);
                diff_value(rt, o.get(key), n.get(key), path, names, changed, removed);
                names.pop();
                path.truncate(len);
            }
        }
        _ => {
            let mut new_leaves = BTreeMap::new();
            let mut old_leaves = BTreeMap::new();
            if let Some(n) = new {
                element_or_value_leaves(rt, n, path, names, &mut new_leaves);
            }
            if let Some(o) = old {
                element_or_value_leaves(rt, o, path, names, &mut old_leaves);
            }
            for (p, v) in &new_leaves {
                if old_leaves.get(p) != Some(v) {
                    changed.push(p.clone());
                }
            }
            removed.extend(
                old_leaves
                    .into_keys()
                    .filter(|p| !new_leaves.contains_key(p)),
            );
        }
    }
}

/// Leaves of a value at `path`; a keyed list element's own fields when `value` is one.
fn element_or_value_leaves<'a>(
    rt: &ResourceType,
    value: &'a Value,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeMap<FieldPath, &'a Value>,
) {
    let is_element = path
        .rsplit('\n')
        .next()
        .is_some_and(|last| last.starts_with("k:"));
    if is_element && let Some(fields) = value.as_object() {
        collect_fields(rt, fields, path, names, out);
    } else {
        collect(rt, value, path, names, out);
    }
}

/// The elements of both lists by their `k:` path element, when both are keyed lists
/// whose every element has its keys.
type KeyedItems<'a> = Vec<(String, &'a Value)>;

fn keyed_ids<'a>(
    rt: &ResourceType,
    names: &[&str],
    a: &'a [Value],
    b: &'a [Value],
) -> Option<(KeyedItems<'a>, KeyedItems<'a>)> {
    let keys = list_keys(rt, names)?;
    let ids = |list: &'a [Value]| -> Option<KeyedItems<'a>> {
        list.iter()
            .map(|e| Some((element_key(e, &keys)?, e)))
            .collect()
    };
    Some((ids(a)?, ids(b)?))
}

/// The object an apply creates: the applied configuration itself.
pub fn strip_for_create(body: &Value) -> Value {
    let mut object = body.clone();
    object::meta_mut(&mut object).remove("managedFields");
    object
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

/// Applies `body` (the manager's full intent) to `current`: conflicts with other
/// managers are 409 unless `force`; fields this manager applied before and no longer
/// applies are removed when nobody else owns them.
pub fn apply(
    rt: &ResourceType,
    current: &Value,
    body: &Value,
    manager: &str,
    force: bool,
    subresource: Subresource,
    now: jiff::Timestamp,
) -> Result<Value, ApiError> {
    let sub = subresource.name();
    let mut entries = read_entries(current);
    let applied = leaves(rt, body);
    let live = leaves(rt, current);
    let mut conflicts: Vec<(String, FieldPath)> = Vec::new();
    for (path, value) in &applied {
        if live.get(path) == Some(value) {
            continue;
        }
        for e in &entries {
            if e.same_identity(manager, "Apply", sub) {
                continue;
            }
            if e.fields.contains(path) {
                conflicts.push((e.manager.clone(), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|(m, p)| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{m}\""),
                    field: render_path(p),
                })
                .collect();
            let listing: Vec<String> = causes
                .iter()
                .map(|c| format!("- {}: {}", c.message, c.field))
                .collect();
            return Err(ApiError::Conflict {
                resource: rt.plural.clone(),
                group: rt.group.clone(),
                name: object::meta_str(current, "name")
                    .unwrap_or_default()
                    .to_string(),
                message: format!(
                    "Apply failed with {} conflict(s):\n{}",
                    causes.len(),
                    listing.join("\n")
                ),
            });
        }
        for e in entries.iter_mut() {
            if !e.same_identity(manager, "Apply", sub) {
                for (_, p) in &conflicts {
                    e.fields.remove(p);
                }
            }
        }
    }
    let previous: BTreeSet<FieldPath> = entries
        .iter()
        .find(|e| e.same_identity(manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: BTreeSet<&FieldPath> = entries
        .iter()
        .filter(|e| !e.same_identity(manager, "Apply", sub))
        .flat_map(|e| e.fields.iter())
        .collect();
    let mut merged = current.clone();
    let mut body_clean = body.clone();
    strip_system(&mut body_clean);
    merge(rt, &mut merged, &body_clean, &mut vec![]);
    for path in previous
        .iter()
        .filter(|p| !applied.contains_key(*p) && !others.contains(p))
    {
        remove_path(&mut merged, path);
    }
    let fields: BTreeSet<FieldPath> = applied.into_keys().collect();
    let time = object::format_time(now);
    match entries
        .iter_mut()
        .find(|e| e.same_identity(manager, "Apply", sub))
    {
        Some(e) => {
            e.fields = fields;
            e.time = time;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: api_version_of(rt, current),
            subresource: sub.map(str::to_string),
            time,
            fields,
        }),
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

fn api_version_of(rt: &ResourceType, object: &Value) -> String {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| rt.api_version())
}

fn strip_system(object: &mut Value) {
    if let Some(m) = object.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SYSTEM_METADATA {
            meta.remove(*key);
        }
    }
}

/// The keys identifying elements of a list at `names` (field names only), if keyed.
fn list_keys(rt: &ResourceType, names: &[&str]) -> Option<Vec<String>> {
    if rt.flavor != Flavor::Custom {
        return patch::merge_key(names).map(|k| vec![k.to_string()]);
    }
    let mut schema = rt.schema.as_ref()?;
    for name in names {
        if schema.get("type").and_then(Value::as_str) == Some("array") {
            schema = schema.get("items")?;
        }
        schema = schema.get("properties")?.get(*name)?;
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys = schema.get("x-kubernetes-list-map-keys")?.as_array()?;
    Some(
        keys.iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
    )
}

fn element_key(item: &Value, keys: &[String]) -> Option<String> {
    // `k:` and the key fields as a JSON object, keys in order (as serde_json writes a
    // map of them).
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut out = b"k:{".to_vec();
    for (i, k) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let value = item.get(k)?;
        serde_json::to_writer(&mut out, k).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, value).ok()?;
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// Leaf paths of an object (system metadata excluded) with their values.
fn leaves<'a>(rt: &ResourceType, object: &'a Value) -> BTreeMap<FieldPath, &'a Value> {
    let mut out = BTreeMap::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta {
                    if SYSTEM_METADATA.contains(&mk.as_str()) {
                        continue;
                    }
                    let mut path = format!("f:metadata\nf:{mk}");
                    let mut names = vec!["metadata", mk.as_str()];
                    collect(rt, mv, &mut path, &mut names, &mut out);
                }
            }
            continue;
        }
        let mut path = format!("f:{k}");
        let mut names = vec![k.as_str()];
        collect(rt, v, &mut path, &mut names, &mut out);
    }
    out
}

fn collect<'a>(
    rt: &ResourceType,
    value: &'a Value,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeMap<FieldPath, &'a Value>,
) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            collect_fields(rt, m, path, names, out);
        }
        Value::Array(items) if !items.is_empty() => {
            let Some(keys) = list_keys(rt, names) else {
                out.insert(path.clone(), value);
                return;
            };
            for item in items {
                let Some(id) = element_key(item, &keys) else {
                    out.insert(path.clone(), value);
                    return;
                };
                let len = path.len();
                push_segment(path, &id);
                let element_len = path.len();
                push_segment(path, ".");
                out.insert(path.clone(), item);
                path.truncate(element_len);
                if let Some(fields) = item.as_object() {
                    collect_fields(rt, fields, path, names, out);
                }
                path.truncate(len);
            }
        }
        _ => {
            out.insert(path.clone(), value);
        }
    }
}

/// The `fieldsV1` of everything in `object` (system metadata excluded), in one pass.
fn fields_v1_of(rt: &ResourceType, object: &Value) -> Value {
    fn walk<'a>(rt: &ResourceType, value: &'a Value, names: &mut Vec<&'a str>) -> Value {
        match value {
            Value::Object(m) if !m.is_empty() => {
                let mut out = Map::new();
                for (k, v) in m {
                    names.push(k.as_str());
                    out.insert(format!("f:{k}"), walk(rt, v, names));
                    names.pop();
                }
                Value::Object(out)
            }
            Value::Array(items) if !items.is_empty() => {
                let Some(keys) = list_keys(rt, names) else {
                    return json!({});
                };
                let mut out = Map::new();
                for item in items {
                    let Some(id) = element_key(item, &keys) else {
                        return json!({});
                    };
                    let mut element = match walk(rt, item, names) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    element.insert(".".into(), json!({}));
                    out.insert(id, Value::Object(element));
                }
                Value::Object(out)
            }
            _ => json!({}),
        }
    }
    let mut root = Map::new();
    let Some(map) = object.as_object() else {
        return Value::Object(root);
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                let mut meta = Map::new();
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if !SYSTEM_METADATA.contains(&mk.as_str()) {
                        meta.insert(
                            format!("f:{mk}"),
                            walk(rt, mv, &mut vec!["metadata", mk.as_str()]),
                        );
                    }
                }
                if !meta.is_empty() {
                    root.insert("f:metadata".into(), Value::Object(meta));
                }
            }
            _ => {
                root.insert(format!("f:{k}"), walk(rt, v, &mut vec![k.as_str()]));
            }
        }
    }
    Value::Object(root)
}

/// The leaves under each field of a map (an object, or a keyed list element).
fn collect_fields<'a>(
    rt: &ResourceType,
    map: &'a Map<String, Value>,
    path: &mut FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeMap<FieldPath, &'a Value>,
) {
    for (k, v) in map {
        let len = path.len();
        push_segment(path, &format!("f:{k}"));
        names.push(k.as_str());
        collect(rt, v, path, names, out);
        names.pop();
        path.truncate(len);
    }
}

/// Merges an applied configuration into the live object.
fn merge<'a>(rt: &ResourceType, live: &mut Value, applied: &'a Value, names: &mut Vec<&'a str>) {
    let Value::Object(applied_map) = applied else {
        *live = applied.clone();
        return;
    };
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    let Value::Object(live_map) = live else {
        return;
    };
    for (k, v) in applied_map {
        names.push(k.as_str());
        match v {
            Value::Null => {
                live_map.remove(k);
            }
            Value::Object(_) => {
                let slot = live_map
                    .entry(k.clone())
                    .or_insert(Value::Object(Map::new()));
                merge(rt, slot, v, names);
            }
            Value::Array(items) => match list_keys(rt, names) {
                Some(keys) => {
                    let slot = live_map.entry(k.clone()).or_insert(Value::Array(vec![]));
                    if !slot.is_array() {
                        *slot = Value::Array(vec![]);
                    }
                    if let Value::Array(list) = slot {
                        for item in items {
                            let id = element_key(item, &keys);
                            let pos = id.as_ref().and_then(|id| {
                                list.iter()
                                    .position(|e| element_key(e, &keys).as_ref() == Some(id))
                            });
                            match pos {
                                Some(i) => merge(rt, &mut list[i], item, names),
                                None => list.push(item.clone()),
                            }
                        }
                    }
                }
                None => {
                    live_map.insert(k.clone(), v.clone());
                }
            },
            other => {
                live_map.insert(k.clone(), other.clone());
            }
        }
        names.pop();
    }
}

fn remove_path(object: &mut Value, path: &FieldPath) {
    let path: Vec<&str> = segments(path).collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = object;
    let mut parents = parents.iter().peekable();
    while let Some(pe) = parents.next() {
        let next = if let Some(field) = pe.strip_prefix("f:") {
            cur.get_mut(field)
        } else if let Some(key) = pe.strip_prefix("k:") {
            if parents.peek().is_none() && *last == "." {
                // Removing the element itself.
                if let Value::Array(list) = cur {
                    list.retain(|e| !matches_key(e, key));
                }
                return;
            }
            match cur {
                Value::Array(list) => list.iter_mut().find(|e| matches_key(e, key)),
                _ => None,
            }
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:")
        && let Value::Object(m) = cur
    {
        m.remove(field);
    }
}

fn matches_key(element: &Value, key: &str) -> bool {
    let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
        return false;
    };
    key.iter().all(|(k, v)| element.get(k) == Some(v))
}

fn render_path(path: &FieldPath) -> String {
    let mut out = String::new();
    for pe in segments(path) {
        if let Some(f) = pe.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let rendered = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => k.to_string(),
            };
            out.push_str(&format!("[{rendered}]"));
        }
    }
    out
}

fn to_fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for pe in segments(path) {
            let entry = cur
                .entry(pe.to_string())
                .or_insert(Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else { break };
            cur = next;
        }
    }
    Value::Object(root)
}

fn from_fields_v1(tree: &Value) -> BTreeSet<FieldPath> {
    fn walk(node: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match node.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, v) in m {
                    let len = path.len();
                    push_segment(path, k);
                    walk(v, path, out);
                    path.truncate(len);
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(tree, &mut String::new(), &mut out);
    out
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
    fn apply_conflicts_with_another_manager_unless_forced() {
        let rt = pods();
        let mut current = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        record_update(&rt, None, &mut current, "ctl", Subresource::Main, now());
        let body = json!({"metadata": {"name": "p", "labels": {"a": "2"}}});
        let err = apply(
            &rt,
            &current,
            &body,
            "kubectl",
            false,
            Subresource::Main,
            now(),
        )
        .unwrap_err();
        assert_eq!(err.code(), 409);
        let ok = apply(
            &rt,
            &current,
            &body,
            "kubectl",
            true,
            Subresource::Main,
            now(),
        )
        .unwrap();
        assert_eq!(ok["metadata"]["labels"]["a"], "2");
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped() {
        let rt = pods();
        let current = json!({"metadata": {"name": "p"}});
        let first = apply(
            &rt,
            &current,
            &json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            "m",
            false,
            Subresource::Main,
            now(),
        )
        .unwrap();
        let second = apply(
            &rt,
            &first,
            &json!({"metadata": {"labels": {"a": "1"}}}),
            "m",
            false,
            Subresource::Main,
            now(),
        )
        .unwrap();
        assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
    }

    #[test]
    fn one_pass_fields_equal_the_path_sets() {
        let rt = pods();
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}},
                         "spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "E", "value": "1"}]}], "tolerations": [{"key": "k"}]},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let set: BTreeSet<FieldPath> = leaves(&rt, &pod).into_keys().collect();
        assert_eq!(fields_v1_of(&rt, &pod), to_fields_v1(&set));
    }

    #[test]
    fn update_diff_matches_the_full_leaf_comparison() {
        let rt = pods();
        let old = json!({"metadata": {"name": "p", "labels": {"a": "1", "gone": "x"}},
            "spec": {"containers": [{"name": "app", "image": "x"}, {"name": "old", "image": "o"}], "tolerations": [{"key": "k"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let new = json!({"metadata": {"name": "p", "labels": {"a": "2"}},
            "spec": {"containers": [{"name": "app", "image": "y"}, {"name": "new", "image": "n"}], "tolerations": [{"key": "j"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}});
        let (changed, removed) = diff(&rt, &old, &new);
        let (ol, nl) = (leaves(&rt, &old), leaves(&rt, &new));
        // An element's `.` (its existence) changes only when the element comes or goes.
        let expect_changed: BTreeSet<FieldPath> = nl
            .iter()
            .filter(|(p, v)| ol.get(*p) != Some(*v) && !(p.ends_with("\n.") && ol.contains_key(*p)))
            .map(|(p, _)| p.clone())
            .collect();
        let expect_removed: BTreeSet<FieldPath> = ol
            .keys()
            .filter(|p| !nl.contains_key(*p))
            .cloned()
            .collect();
        assert_eq!(changed.into_iter().collect::<BTreeSet<_>>(), expect_changed);
        assert_eq!(removed.into_iter().collect::<BTreeSet<_>>(), expect_removed);
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

    #[test]
    fn fields_v1_round_trips() {
        let rt = pods();
        let pod = json!({"spec": {"containers": [{"name": "app", "image": "x"}]}});
        let set: BTreeSet<FieldPath> = leaves(&rt, &pod).into_keys().collect();
        let tree = to_fields_v1(&set);
        assert!(tree["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["."].is_object());
        assert_eq!(from_fields_v1(&tree), set);
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
