//! Just enough of the Kubernetes protobuf encoding for the bodies kubectl sends that
//! way (`kubectl create namespace` posts a protobuf Namespace; `kubectl create
//! serviceaccount`, `token`, `role`, `clusterrole`, `rolebinding` and
//! `clusterrolebinding` post theirs): the `k8s\0` envelope, its `runtime.Unknown`, the
//! object's `ObjectMeta`, and the fields of those kinds. Other kinds are refused with 415, so nothing is silently dropped.

use serde_json::{Map, Value, json};

use super::error::ApiError;

const MAGIC: &[u8] = b"k8s\x00";

/// Kinds decoded: Namespace (its metadata: the spec's finalizers are the server's),
/// ServiceAccount, TokenRequest, the RBAC kinds (every field but a ClusterRole's
/// aggregationRule, which is refused) and SelfSubjectAccessReview (`kubectl auth
/// can-i`: its resource or non-resource attributes; selectors are refused).
const DECODED_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "TokenRequest",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "SelfSubjectAccessReview",
];

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
    if !DECODED_KINDS.contains(&kind.as_str()) {
        return Err(unsupported(&format!(
            "protobuf bodies are accepted for {DECODED_KINDS:?} only, not {kind:?}"
        )));
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("metadata".into(), json!({}));
    let mut secrets = Vec::new();
    let mut pull_secrets = Vec::new();
    let mut rules = Vec::new();
    let mut subjects = Vec::new();
    for field in Fields::new(raw) {
        let field = field.map_err(|_| unsupported("malformed protobuf"))?;
        let malformed = |what: &str| unsupported(&format!("malformed {what}"));
        match (kind.as_str(), field) {
            (_, (1, Wire::Bytes(meta))) => {
                let meta = object_meta(meta).map_err(|_| malformed("ObjectMeta"))?;
                object.insert("metadata".into(), Value::Object(meta));
            }
            ("ServiceAccount", (2, Wire::Bytes(b))) => {
                secrets.push(object_reference(b).map_err(|_| malformed("secrets"))?)
            }
            ("ServiceAccount", (3, Wire::Bytes(b))) => {
                let name = strings(b, 1).map_err(|_| malformed("imagePullSecrets"))?;
                pull_secrets.push(json!({"name": name.concat()}));
            }
            ("ServiceAccount", (4, Wire::Varint(v))) => {
                object.insert("automountServiceAccountToken".into(), Value::Bool(v != 0));
            }
            ("Role" | "ClusterRole", (2, Wire::Bytes(b))) => {
                rules.push(policy_rule(b).map_err(|_| malformed("rules"))?)
            }
            ("ClusterRole", (3, _)) => {
                return Err(unsupported(
                    "a ClusterRole's aggregationRule is not decoded from protobuf; send it as JSON",
                ));
            }
            ("RoleBinding" | "ClusterRoleBinding", (2, Wire::Bytes(b))) => subjects.push(
                fields_of(
                    b,
                    &[(1, "kind"), (2, "apiGroup"), (3, "name"), (4, "namespace")],
                )
                .map_err(|_| malformed("subjects"))?,
            ),
            ("RoleBinding" | "ClusterRoleBinding", (3, Wire::Bytes(b))) => {
                let role_ref = fields_of(b, &[(1, "apiGroup"), (2, "kind"), (3, "name")])
                    .map_err(|_| malformed("roleRef"))?;
                object.insert("roleRef".into(), role_ref);
            }
            ("SelfSubjectAccessReview", (2, Wire::Bytes(b))) => {
                let spec =
                    access_review_spec(b).map_err(|_| malformed("SelfSubjectAccessReviewSpec"))?;
                object.insert("spec".into(), spec);
            }
            ("TokenRequest", (2, Wire::Bytes(b))) => {
                let spec = token_request_spec(b).map_err(|_| malformed("TokenRequestSpec"))?;
                object.insert("spec".into(), spec);
            }
            _ => {}
        }
    }
    if !secrets.is_empty() {
        object.insert("secrets".into(), Value::Array(secrets));
    }
    if !pull_secrets.is_empty() {
        object.insert("imagePullSecrets".into(), Value::Array(pull_secrets));
    }
    if !rules.is_empty() {
        object.insert("rules".into(), Value::Array(rules));
    }
    if !subjects.is_empty() {
        object.insert("subjects".into(), Value::Array(subjects));
    }
    object.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(object))
}

/// The strings of field `n` of a message.
fn strings(bytes: &[u8], n: u64) -> Result<Vec<String>, ()> {
    let mut out = Vec::new();
    for field in Fields::new(bytes) {
        if let (f, Wire::Bytes(b)) = field?
            && f == n
        {
            out.push(String::from_utf8_lossy(b).into_owned());
        }
    }
    Ok(out)
}

/// The string fields `(number, key)` of a message, as a JSON object of those present.
fn fields_of(bytes: &[u8], keys: &[(u64, &str)]) -> Result<Value, ()> {
    let mut out = Map::new();
    for (n, key) in keys {
        if let Some(v) = strings(bytes, *n)?.pop() {
            out.insert((*key).into(), Value::String(v));
        }
    }
    Ok(Value::Object(out))
}

/// authorization/v1 SelfSubjectAccessReviewSpec: resourceAttributes (1: namespace,
/// verb, group, version, resource, subresource, name) or nonResourceAttributes (2:
/// path, verb). Field and label selectors (8, 9) are refused: not decided on here.
fn access_review_spec(bytes: &[u8]) -> Result<Value, ()> {
    let mut spec = Map::new();
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Bytes(b)) => {
                if Fields::new(b).any(|f| matches!(f, Ok((8 | 9, _)) | Err(()))) {
                    return Err(());
                }
                let keys = [
                    (1, "namespace"),
                    (2, "verb"),
                    (3, "group"),
                    (4, "version"),
                    (5, "resource"),
                    (6, "subresource"),
                    (7, "name"),
                ];
                spec.insert("resourceAttributes".into(), fields_of(b, &keys)?);
            }
            (2, Wire::Bytes(b)) => {
                let attributes = fields_of(b, &[(1, "path"), (2, "verb")])?;
                spec.insert("nonResourceAttributes".into(), attributes);
            }
            _ => {}
        }
    }
    Ok(Value::Object(spec))
}

/// rbac/v1 PolicyRule: verbs (1), apiGroups (2), resources (3), resourceNames (4),
/// nonResourceURLs (5); the empty lists left out, as JSON leaves them.
fn policy_rule(bytes: &[u8]) -> Result<Value, ()> {
    let mut out = Map::new();
    for (n, key) in [
        (1, "verbs"),
        (2, "apiGroups"),
        (3, "resources"),
        (4, "resourceNames"),
        (5, "nonResourceURLs"),
    ] {
        let values = strings(bytes, n)?;
        if !values.is_empty() {
            out.insert(key.into(), json!(values));
        }
    }
    Ok(Value::Object(out))
}

/// A core/v1 ObjectReference (kind, namespace, name, uid, apiVersion,
/// resourceVersion, fieldPath).
fn object_reference(bytes: &[u8]) -> Result<Value, ()> {
    const KEYS: [&str; 7] = [
        "kind",
        "namespace",
        "name",
        "uid",
        "apiVersion",
        "resourceVersion",
        "fieldPath",
    ];
    let mut out = Map::new();
    for field in Fields::new(bytes) {
        if let (n @ 1..=7, Wire::Bytes(b)) = field?
            && let Some(key) = usize::try_from(n - 1).ok().and_then(|i| KEYS.get(i))
        {
            out.insert(
                (*key).into(),
                Value::String(String::from_utf8_lossy(b).into_owned()),
            );
        }
    }
    Ok(Value::Object(out))
}

/// authentication/v1 TokenRequestSpec: audiences (1), boundObjectRef (3: kind,
/// apiVersion, name, uid), expirationSeconds (4).
fn token_request_spec(bytes: &[u8]) -> Result<Value, ()> {
    let mut spec = Map::new();
    let mut audiences = Vec::new();
    for field in Fields::new(bytes) {
        match field? {
            (1, Wire::Bytes(b)) => {
                audiences.push(Value::String(String::from_utf8_lossy(b).into_owned()))
            }
            (3, Wire::Bytes(b)) => {
                let bound = fields_of(
                    b,
                    &[(1, "kind"), (2, "apiVersion"), (3, "name"), (4, "uid")],
                )?;
                spec.insert("boundObjectRef".into(), bound);
            }
            // int64 on the wire: two's complement in a varint.
            (4, Wire::Varint(v)) => drop(spec.insert("expirationSeconds".into(), json!(v as i64))),
            _ => {}
        }
    }
    spec.insert("audiences".into(), Value::Array(audiences));
    Ok(Value::Object(spec))
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
    Varint(u64),
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
                0 => Wire::Varint(self.varint()?),
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

    fn varint_field(n: u8, value: u64) -> Vec<u8> {
        let mut out = vec![n << 3];
        let mut v = value;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn envelope(kind: &[u8], raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, b"v1"), field(2, kind)].concat();
        [MAGIC.to_vec(), field(1, &type_meta), field(2, raw)].concat()
    }

    #[test]
    fn decodes_a_service_account() {
        let meta = [field(1, b"podwarden"), field(3, b"demo")].concat();
        let secret = [field(3, b"token-x")].concat();
        let raw = [
            field(1, &meta),
            field(2, &secret),
            field(3, &field(1, b"registry")),
            varint_field(4, 0),
        ]
        .concat();
        let v = decode(&envelope(b"ServiceAccount", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "podwarden", "namespace": "demo"},
                   "secrets": [{"name": "token-x"}], "imagePullSecrets": [{"name": "registry"}],
                   "automountServiceAccountToken": false})
        );
    }

    #[test]
    fn decodes_a_token_request() {
        let bound = [
            field(1, b"Pod"),
            field(2, b"v1"),
            field(3, b"web"),
            field(4, b"u-1"),
        ]
        .concat();
        let spec = [
            field(1, b"https://kubernetes.default.svc.cluster.local"),
            field(1, b"vault"),
            field(3, &bound),
            varint_field(4, 1200),
        ]
        .concat();
        let raw = [field(1, &[]), field(2, &spec)].concat();
        let v = decode(&envelope(b"TokenRequest", &raw)).unwrap();
        assert_eq!(
            v["spec"],
            json!({"audiences": ["https://kubernetes.default.svc.cluster.local", "vault"],
                   "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"},
                   "expirationSeconds": 1200})
        );
        // A truncated spec is refused, not half-read.
        let raw = [field(1, &[]), vec![(2 << 3) | 2, 40, 1, 2]].concat();
        assert_eq!(
            decode(&envelope(b"TokenRequest", &raw)).unwrap_err().code(),
            415
        );
    }

    #[test]
    fn decodes_roles_and_bindings() {
        let rule = [
            field(1, b"get"),
            field(1, b"list"),
            field(2, b""),
            field(3, b"pods"),
            field(3, b"pods/status"),
            field(4, b"web"),
        ]
        .concat();
        let meta = [field(1, b"reader"), field(3, b"demo")].concat();
        let raw = [field(1, &meta), field(2, &rule)].concat();
        let v = decode(&envelope(b"Role", &raw)).unwrap();
        assert_eq!(
            v["rules"],
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/status"], "resourceNames": ["web"]}])
        );
        let subject = [
            field(1, b"ServiceAccount"),
            field(3, b"podwarden"),
            field(4, b"demo"),
        ]
        .concat();
        let role_ref = [
            field(1, b"rbac.authorization.k8s.io"),
            field(2, b"ClusterRole"),
            field(3, b"view"),
        ]
        .concat();
        let raw = [field(1, &meta), field(2, &subject), field(3, &role_ref)].concat();
        let v = decode(&envelope(b"RoleBinding", &raw)).unwrap();
        assert_eq!(
            v["subjects"],
            json!([{"kind": "ServiceAccount", "name": "podwarden", "namespace": "demo"}])
        );
        assert_eq!(
            v["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"})
        );
        // Aggregation is not decoded: refused rather than dropped.
        let raw = [field(1, &meta), field(3, &[])].concat();
        assert_eq!(
            decode(&envelope(b"ClusterRole", &raw)).unwrap_err().code(),
            415
        );
    }

    #[test]
    fn decodes_a_self_subject_access_review() {
        let attributes = [field(1, b"demo"), field(2, b"list"), field(5, b"pods")].concat();
        let raw = [field(1, &[]), field(2, &field(1, &attributes))].concat();
        let v = decode(&envelope(b"SelfSubjectAccessReview", &raw)).unwrap();
        assert_eq!(
            v["spec"],
            json!({"resourceAttributes": {"namespace": "demo", "verb": "list", "resource": "pods"}})
        );
        let attributes = [field(1, b"/version"), field(2, b"get")].concat();
        let raw = field(2, &field(2, &attributes));
        let v = decode(&envelope(b"SelfSubjectAccessReview", &raw)).unwrap();
        assert_eq!(
            v["spec"],
            json!({"nonResourceAttributes": {"path": "/version", "verb": "get"}})
        );
        let with_selector = [field(2, b"list"), field(9, b"x")].concat();
        let raw = field(2, &field(1, &with_selector));
        assert_eq!(
            decode(&envelope(b"SelfSubjectAccessReview", &raw))
                .unwrap_err()
                .code(),
            415
        );
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
