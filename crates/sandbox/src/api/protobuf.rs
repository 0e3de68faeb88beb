//! Just enough of the Kubernetes protobuf encoding for the bodies kubectl sends that
//! way (`kubectl create namespace` posts a protobuf Namespace): the `k8s\0` envelope,
//! its `runtime.Unknown`, and the object's `ObjectMeta`. Kinds whose spec matters are
//! refused with 415, so nothing is silently dropped.

use serde_json::{Map, Value, json};

use super::error::ApiError;

const MAGIC: &[u8] = b"k8s\x00";

/// Kinds whose protobuf form carries nothing the sandbox needs beyond metadata.
const METADATA_ONLY_KINDS: &[&str] = &["Namespace"];

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let unsupported = |why: &str| {
        ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({why})"
        ))
    };
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| unsupported("missing the protobuf envelope"))?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for field in Fields::new(envelope) {
        match field.map_err(|_| unsupported("malformed protobuf"))? {
            (1, Wire::Bytes(type_meta)) => {
                for f in Fields::new(type_meta) {
                    match f.map_err(|_| unsupported("malformed protobuf"))? {
                        (1, Wire::Bytes(b)) => {
                            api_version = String::from_utf8_lossy(b).into_owned()
                        }
                        (2, Wire::Bytes(b)) => kind = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if !METADATA_ONLY_KINDS.contains(&kind.as_str()) {
        return Err(unsupported(&format!(
            "protobuf bodies are accepted for {METADATA_ONLY_KINDS:?} only, not {kind:?}"
        )));
    }
    let mut metadata = Map::new();
    for field in Fields::new(raw) {
        if let (1, Wire::Bytes(meta)) = field.map_err(|_| unsupported("malformed protobuf"))? {
            metadata = object_meta(meta).map_err(|_| unsupported("malformed ObjectMeta"))?;
        }
    }
    Ok(json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}))
}

fn object_meta(bytes: &[u8]) -> Result<Map<String, Value>, ()> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for field in Fields::new(bytes) {
        let text = |b: &[u8]| Value::String(String::from_utf8_lossy(b).into_owned());
        match field? {
            (1, Wire::Bytes(b)) => drop(meta.insert("name".into(), text(b))),
            (2, Wire::Bytes(b)) => drop(meta.insert("generateName".into(), text(b))),
            (3, Wire::Bytes(b)) => drop(meta.insert("namespace".into(), text(b))),
            (11, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                labels.insert(k, Value::String(v));
            }
            (12, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                annotations.insert(k, Value::String(v));
            }
            (14, Wire::Bytes(b)) => finalizers.push(text(b)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(meta)
}

fn map_entry(bytes: &[u8]) -> Result<(String, String), ()> {
    let (mut k, mut v) = (String::new(), String::new());
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Bytes(b)) => k = String::from_utf8_lossy(b).into_owned(),
            (2, Wire::Bytes(b)) => v = String::from_utf8_lossy(b).into_owned(),
            _ => {}
        }
    }
    Ok((k, v))
}

enum Wire<'a> {
    Varint,
    Fixed,
    Bytes(&'a [u8]),
}

/// Iterates the (field number, value) pairs of a protobuf message.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Fields { rest }
    }

    fn varint(&mut self) -> Result<u64, ()> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.rest.split_first().ok_or(())?;
            self.rest = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        if n > self.rest.len() {
            return Err(());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = (|| {
            let key = self.varint()?;
            let wire = match key & 7 {
                0 => {
                    self.varint()?;
                    Wire::Varint
                }
                1 => {
                    self.take(8)?;
                    Wire::Fixed
                }
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|_| ())?;
                    Wire::Bytes(self.take(n)?)
                }
                5 => {
                    self.take(4)?;
                    Wire::Fixed
                }
                _ => return Err(()),
            };
            Ok((key >> 3, wire))
        })();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_namespace() {
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let label = [field(1, b"team"), field(2, b"a")].concat();
        let meta = [field(1, b"shop"), field(11, &label)].concat();
        let raw = field(1, &meta);
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["metadata"]["name"], "shop");
        assert_eq!(v["metadata"]["labels"]["team"], "a");
    }

    #[test]
    fn refuses_kinds_with_a_spec_and_garbage() {
        let type_meta = [field(1, b"v1"), field(2, b"Pod")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta)].concat();
        assert_eq!(decode(&body).unwrap_err().code(), 415);
        assert_eq!(decode(b"k8s\x00\xff\xff\xff").unwrap_err().code(), 415);
        assert_eq!(decode(b"nope").unwrap_err().code(), 415);
    }
}
