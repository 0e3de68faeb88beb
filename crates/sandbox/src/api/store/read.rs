//! The read path: get, list with selectors and `limit`/`continue` pagination over a
//! consistent snapshot rebuilt from the history window, and the served form of objects.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use super::super::custom_resources;
use super::super::error::ApiError;
use super::super::events;
use super::super::object::{ObjectKey, StoredObject};
use super::super::options::ListOptions;
use super::super::resources::{Flavor, ResourceType};
use super::super::watch::Filter;
use super::{Store, Table};

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Arc<StoredObject>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

impl Store {
    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let key = Self::key(rt, namespace, name)?;
        self.get_key(rt, &key)
            .ok_or_else(|| ApiError::not_found(&rt.plural, &rt.group, name))
    }

    pub(super) fn get_key(&self, rt: &ResourceType, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        let inner = self.lock();
        inner
            .tables
            .get(&rt.storage)
            .and_then(|t| t.objects.get(key))
            .cloned()
    }

    /// Lists objects: selectors, `limit`/`continue` pagination, and a consistent
    /// snapshot at the first page's resourceVersion (rebuilt from the history window;
    /// 410 Expired when that version has left it).
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let namespace = namespace.filter(|ns| !ns.is_empty() && rt.namespaced);
        let filter = Filter {
            namespace: namespace.map(str::to_string),
            labels: opts.label_selector.clone(),
            fields: opts.field_selector.clone(),
        };
        let token = match &opts.continue_token {
            Some(t) if !t.is_empty() => Some(ContinueToken::decode(t)?),
            _ => None,
        };
        let inner = self.lock();
        let current = inner.resource_version;
        let at = match &token {
            Some(t) => Some(t.resource_version),
            None => requested_list_version(opts, current)?,
        };
        let empty = Table::default();
        let table = inner.tables.get(&rt.storage).unwrap_or(&empty);
        let overlay = match at {
            Some(rv) if rv < current => {
                if rv < table.compacted {
                    return Err(if token.is_some() {
                        ApiError::Gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into())
                    } else {
                        ApiError::too_old(rv, table.compacted)
                    });
                }
                table.state_overlay(rv)
            }
            _ => BTreeMap::new(),
        };
        let list_rv = at.unwrap_or(current);
        let lower: Bound<ObjectKey> = match (&token, namespace) {
            (Some(t), _) => Bound::Excluded(t.start.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let exact_name = filter.fields.exact_name().map(str::to_string);
        let limit = opts.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for object in merged_range(&table.objects, &overlay, lower) {
            if let Some(ns) = namespace
                && object.namespace != ns
            {
                break;
            }
            if exact_name.as_deref().is_some_and(|n| n != object.name) {
                continue;
            }
            if !filter.matches(&object) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(object);
        }
        drop(inner);
        let continue_token = match (more, items.last()) {
            (true, Some(last)) => Some(
                ContinueToken {
                    resource_version: list_rv,
                    start: last.key(),
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(ListPage {
            items,
            resource_version: list_rv,
            continue_token,
        })
    }

    /// Number of stored objects of a resource (all namespaces).
    pub fn count(&self, rt: &ResourceType) -> usize {
        let inner = self.lock();
        inner
            .tables
            .get(&rt.storage)
            .map(|t| t.objects.len())
            .unwrap_or(0)
    }
}

/// A stored object as `rt` serves it (events.k8s.io view, CR served version).
pub fn served_form(rt: &ResourceType, object: Value) -> Value {
    match rt.flavor {
        Flavor::EventsV1 => events::core_to_v1(&object),
        Flavor::Custom => custom_resources::to_served_version(rt, object),
        _ => object,
    }
}

pub(crate) fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))
}

/// The version a list must be served at; `None` means the latest.
fn requested_list_version(opts: &ListOptions, current: u64) -> Result<Option<u64>, ApiError> {
    let rv = match opts.resource_version.as_deref() {
        None | Some("") => return Ok(None),
        Some("0") => return Ok(None),
        Some(rv) => parse_rv(rv)?,
    };
    let exact = match opts.resource_version_match.as_deref() {
        Some("Exact") => true,
        Some("NotOlderThan") => false,
        None | Some("") => opts.limit.is_some(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    if rv > current {
        return Err(ApiError::Timeout(format!(
            "Too large resource version: {rv}, current: {current}"
        )));
    }
    Ok(exact.then_some(rv))
}

impl Table {
    /// For every object changed after `rv`: its state at `rv` (none if it did not exist).
    fn state_overlay(&self, rv: u64) -> BTreeMap<ObjectKey, Option<Arc<StoredObject>>> {
        let mut overlay = BTreeMap::new();
        for change in self
            .history
            .iter()
            .rev()
            .take_while(|c| c.resource_version > rv)
        {
            overlay.insert(change.object.key(), change.previous.clone());
        }
        overlay
    }
}

/// Objects in key order from `lower` on, as they were once `overlay` is laid over the
/// current table.
fn merged_range<'a>(
    current: &'a BTreeMap<ObjectKey, Arc<StoredObject>>,
    overlay: &'a BTreeMap<ObjectKey, Option<Arc<StoredObject>>>,
    lower: Bound<ObjectKey>,
) -> impl Iterator<Item = Arc<StoredObject>> + 'a {
    let mut a = current.range((lower.clone(), Bound::Unbounded)).peekable();
    let mut b = overlay.range((lower, Bound::Unbounded)).peekable();
    std::iter::from_fn(move || {
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => return None,
                (Some(_), None) => a.next().map(|(_, o)| Some(o.clone())),
                (None, Some(_)) => b.next().map(|(_, o)| o.clone()),
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => a.next().map(|(_, o)| Some(o.clone())),
                    std::cmp::Ordering::Greater => b.next().map(|(_, o)| o.clone()),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        b.next().map(|(_, o)| o.clone())
                    }
                },
            };
            match next {
                Some(Some(object)) => return Some(object),
                Some(None) => continue, // did not exist at that version
                None => return None,
            }
        }
    })
}

/// The `continue` token: the list's resourceVersion and the last key returned.
struct ContinueToken {
    resource_version: u64,
    start: ObjectKey,
}

impl ContinueToken {
    fn encode(&self) -> String {
        let raw = json!({"v": "meta.k8s.io/v1", "rv": self.resource_version,
                         "start": [self.start.0, self.start.1]});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
    }

    fn decode(token: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let value: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let rv = value.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
        let start = value
            .get("start")
            .and_then(Value::as_array)
            .ok_or_else(bad)?;
        let part = |i: usize| {
            start
                .get(i)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(bad)
        };
        Ok(ContinueToken {
            resource_version: rv,
            start: (part(0)?, part(1)?),
        })
    }
}
