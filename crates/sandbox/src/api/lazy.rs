//! JSON read on demand. A status write reads and rewrites a small part of a stored
//! object (its status, a few managedFields entries); decoding the whole object into a
//! `serde_json::Value` and encoding it again costs far more than the write itself.
//! A [`Lazy`] value keeps every member nobody asked about as the stored bytes and
//! writes them back as they are.
//!
//! The stored bytes are compact `serde_json` output (keys in order, minimal escapes),
//! and `serde_json` writes a value the same way wherever it sits, so what
//! [`Lazy::write`] produces is byte for byte what `serde_json::to_vec` gives for the
//! fully decoded value.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

use podwarden_base::scan;

/// The members of an object, by key (the order `serde_json::Map` keeps).
pub type LazyMap<'a> = BTreeMap<String, Lazy<'a>>;

#[derive(Debug, Clone)]
pub enum Lazy<'a> {
    /// A value as compact `serde_json` output (never whitespace around it).
    Raw(&'a [u8]),
    Borrowed(&'a Value),
    Value(Value),
    Map(LazyMap<'a>),
    List(Vec<Lazy<'a>>),
}

impl<'a> Lazy<'a> {
    pub fn is_object(&self) -> bool {
        match self {
            Lazy::Raw(raw) => raw.first() == Some(&b'{'),
            Lazy::Borrowed(v) => v.is_object(),
            Lazy::Value(v) => v.is_object(),
            Lazy::Map(_) => true,
            Lazy::List(_) => false,
        }
    }

    /// An object with at least one member.
    pub fn is_nonempty_object(&self) -> bool {
        match self {
            Lazy::Raw(raw) => raw.first() == Some(&b'{') && *raw != b"{}",
            Lazy::Borrowed(v) => v.as_object().is_some_and(|m| !m.is_empty()),
            Lazy::Value(v) => v.as_object().is_some_and(|m| !m.is_empty()),
            Lazy::Map(m) => !m.is_empty(),
            Lazy::List(_) => false,
        }
    }

    /// The members of an object, split out of the bytes (one level only) on first
    /// use; `None` when this is not an object.
    pub fn as_map_mut(&mut self) -> Result<Option<&mut LazyMap<'a>>, serde_json::Error> {
        match self {
            Lazy::Map(_) => {}
            Lazy::Raw(raw) if raw.first() == Some(&b'{') => {
                let members = match split_object(raw) {
                    Some(members) => members,
                    None => {
                        let members: BTreeMap<String, &'a RawValue> = serde_json::from_slice(raw)?;
                        members
                            .into_iter()
                            .map(|(k, v)| (k, Lazy::Raw(v.get().as_bytes())))
                            .collect()
                    }
                };
                *self = Lazy::Map(members);
            }
            Lazy::Borrowed(Value::Object(m)) => {
                let members = m
                    .iter()
                    .map(|(k, v)| (k.clone(), Lazy::Borrowed(v)))
                    .collect();
                *self = Lazy::Map(members);
            }
            Lazy::Value(Value::Object(m)) => {
                let members = std::mem::take(m)
                    .into_iter()
                    .map(|(k, v)| (k, Lazy::Value(v)))
                    .collect();
                *self = Lazy::Map(members);
            }
            _ => return Ok(None),
        }
        match self {
            Lazy::Map(m) => Ok(Some(m)),
            _ => Ok(None),
        }
    }

    /// The elements of an array, split out of the bytes on first use; `None` when
    /// this is not an array.
    pub fn as_list_mut(&mut self) -> Result<Option<&mut Vec<Lazy<'a>>>, serde_json::Error> {
        match self {
            Lazy::List(_) => {}
            Lazy::Raw(raw) if raw.first() == Some(&b'[') => {
                let items = match split_array(raw) {
                    Some(items) => items,
                    None => {
                        let items: Vec<&'a RawValue> = serde_json::from_slice(raw)?;
                        items
                            .into_iter()
                            .map(|v| Lazy::Raw(v.get().as_bytes()))
                            .collect()
                    }
                };
                *self = Lazy::List(items);
            }
            Lazy::Borrowed(Value::Array(items)) => {
                *self = Lazy::List(items.iter().map(Lazy::Borrowed).collect());
            }
            Lazy::Value(Value::Array(items)) => {
                let items = std::mem::take(items).into_iter().map(Lazy::Value).collect();
                *self = Lazy::List(items);
            }
            _ => return Ok(None),
        }
        match self {
            Lazy::List(items) => Ok(Some(items)),
            _ => Ok(None),
        }
    }

    /// The value when it is a string.
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Lazy::Raw(raw) if raw.first() == Some(&b'"') => {
                serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
            }
            Lazy::Borrowed(Value::String(s)) | Lazy::Value(Value::String(s)) => {
                Some(Cow::Borrowed(s))
            }
            _ => None,
        }
    }

    pub fn into_value(self) -> Result<Value, serde_json::Error> {
        match self {
            Lazy::Raw(raw) => serde_json::from_slice(raw),
            Lazy::Borrowed(v) => Ok(v.clone()),
            Lazy::Value(v) => Ok(v),
            Lazy::Map(m) => m
                .into_iter()
                .map(|(k, v)| Ok((k, v.into_value()?)))
                .collect::<Result<serde_json::Map<String, Value>, _>>()
                .map(Value::Object),
            Lazy::List(items) => items
                .into_iter()
                .map(Lazy::into_value)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
        }
    }

    /// Appends the value as compact JSON.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            Lazy::Raw(raw) => out.extend_from_slice(raw),
            Lazy::Borrowed(v) => serde_json::to_writer(&mut *out, v)?,
            Lazy::Value(v) => serde_json::to_writer(&mut *out, v)?,
            Lazy::Map(m) => {
                out.push(b'{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_key(out, k)?;
                    v.write(out)?;
                }
                out.push(b'}');
            }
            Lazy::List(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out)?;
                }
                out.push(b']');
            }
        }
        Ok(())
    }
}

/// The members of compact JSON object text, found by the structural scanner (which
/// skips what it does not need several times faster than a parser). `None` when the
/// text is not compact JSON as serde_json writes it: the caller then parses it.
fn split_object(raw: &[u8]) -> Option<LazyMap<'_>> {
    let mut members = LazyMap::new();
    let mut i = 1;
    if raw.get(i) == Some(&b'}') {
        return (raw.len() == 2).then_some(members);
    }
    loop {
        if raw.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = scan::string_end(raw, i)?;
        let quoted = raw.get(i..key_end)?;
        let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
        let key = if inner.contains(&b'\\') {
            serde_json::from_slice::<String>(quoted).ok()?
        } else {
            std::str::from_utf8(inner).ok()?.to_string()
        };
        if raw.get(key_end) != Some(&b':') {
            return None;
        }
        let start = key_end + 1;
        let end = scan::value_end(raw, start)?;
        members.insert(key, Lazy::Raw(raw.get(start..end)?));
        match raw.get(end) {
            Some(b',') => i = end + 1,
            Some(b'}') if end + 1 == raw.len() => return Some(members),
            _ => return None,
        }
    }
}

/// The elements of compact JSON array text (see [`split_object`]).
fn split_array(raw: &[u8]) -> Option<Vec<Lazy<'_>>> {
    let mut items = Vec::new();
    let mut i = 1;
    if raw.get(i) == Some(&b']') {
        return (raw.len() == 2).then_some(items);
    }
    loop {
        let end = scan::value_end(raw, i)?;
        items.push(Lazy::Raw(raw.get(i..end)?));
        match raw.get(end) {
            Some(b',') => i = end + 1,
            Some(b']') if end + 1 == raw.len() => return Some(items),
            _ => return None,
        }
    }
}

/// Appends `"key":`.
pub fn write_key(out: &mut Vec<u8>, key: &str) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, key)?;
    out.push(b':');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn untouched_and_edited_values_write_as_serde_does() {
        let v = json!({"a": {"b": [1, 2.5, "x\"y"], "c": {}}, "é\n": null, "z": {"k": true}});
        let raw = bytes(&v);
        let mut lazy = Lazy::Raw(&raw);
        let mut out = Vec::new();
        lazy.write(&mut out).unwrap();
        assert_eq!(out, raw);

        let map = lazy.as_map_mut().unwrap().unwrap();
        map.get_mut("a")
            .unwrap()
            .as_map_mut()
            .unwrap()
            .unwrap()
            .insert("bb".into(), Lazy::Value(json!([{"q": 1}])));
        map.remove("z");
        let mut expected = v.clone();
        expected["a"]["bb"] = json!([{"q": 1}]);
        expected.as_object_mut().unwrap().remove("z");
        let mut out = Vec::new();
        lazy.write(&mut out).unwrap();
        assert_eq!(out, bytes(&expected));
        assert_eq!(lazy.into_value().unwrap(), expected);
    }

    #[test]
    fn lists_split_and_keep_their_elements() {
        let v = json!([{"a": 1}, "s", [], {}]);
        let raw = bytes(&v);
        let mut lazy = Lazy::Raw(&raw);
        let items = lazy.as_list_mut().unwrap().unwrap();
        assert_eq!(items.len(), 4);
        assert!(items[0].is_nonempty_object());
        assert!(items[3].is_object() && !items[3].is_nonempty_object());
        assert_eq!(items[1].as_str().as_deref(), Some("s"));
        items.remove(1);
        let mut out = Vec::new();
        lazy.write(&mut out).unwrap();
        assert_eq!(out, bytes(&json!([{"a": 1}, [], {}])));
    }

    #[test]
    fn the_scanner_splits_as_the_parser_does() {
        let v = json!({"a\\\"b": {"x": [1, {"y": "}]"}]}, "n": -1.5e-7, "t": true, "u": null, "s": "a,b", "e": []});
        let raw = bytes(&v);
        let scanned = split_object(&raw).unwrap();
        let parsed: BTreeMap<String, &RawValue> = serde_json::from_slice(&raw).unwrap();
        assert_eq!(scanned.len(), parsed.len());
        for (k, v) in &parsed {
            let Some(Lazy::Raw(got)) = scanned.get(k) else {
                panic!("{k} missing")
            };
            assert_eq!(*got, v.get().as_bytes(), "{k}");
        }
        assert!(split_object(b"{}").unwrap().is_empty());
        assert!(split_array(b"[]").unwrap().is_empty());
        assert_eq!(split_array(br#"[1,"],",{"a":[]}]"#).unwrap().len(), 3);
        // Not compact: left to the parser.
        assert!(split_object(br#"{ "a": 1}"#).is_none());
        assert!(split_object(br#"{"a":1} "#).is_none());
    }

    #[test]
    fn values_not_objects_have_no_members() {
        let mut lazy = Lazy::Raw(b"[1]");
        assert!(lazy.as_map_mut().unwrap().is_none());
        let mut lazy = Lazy::Value(json!("x"));
        assert!(lazy.as_map_mut().unwrap().is_none());
        assert!(lazy.as_list_mut().unwrap().is_none());
    }
}
