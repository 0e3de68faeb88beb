//! Encoding responses: objects as stored or as their view (events.k8s.io, served CR
//! versions), metadata-only, Tables, streamed lists, and `Status` errors.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use super::super::error::ApiError;
use super::super::object::StoredObject;
use super::super::resources::{Flavor, ResourceType};
use super::super::store::served_form;
use super::super::tables;

use super::request::*;
use super::state::*;

// ---- rendering ----------------------------------------------------------------------

/// An object's JSON as `rt` serves it; the stored bytes as-is for native views.
pub(super) fn object_bytes(rt: &ResourceType, obj: &StoredObject) -> Bytes {
    if is_native_view(rt) {
        obj.json.clone()
    } else {
        Bytes::from(served_form(rt, obj.value()).to_string())
    }
}

pub(super) fn object_value(rt: &ResourceType, obj: &StoredObject) -> Value {
    if is_native_view(rt) {
        obj.value()
    } else {
        served_form(rt, obj.value())
    }
}

/// Whether `rt` serves objects exactly as stored (everything but the events.k8s.io
/// view and non-storage versions of custom resources).
pub(super) fn is_native_view(rt: &ResourceType) -> bool {
    match rt.flavor {
        Flavor::EventsV1 => false,
        Flavor::Custom => rt.version == rt.storage_version,
        _ => true,
    }
}

pub(super) fn metadata_only(value: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
           "metadata": value.get("metadata").cloned().unwrap_or(json!({}))})
}

pub(super) fn render_one(
    s: &HttpState,
    rt: &ResourceType,
    obj: &StoredObject,
    accept: Accept,
    code: StatusCode,
) -> Response {
    match accept {
        Accept::Object => bytes_response(code, object_bytes(rt, obj)),
        Accept::Metadata => json_response(code, &metadata_only(&object_value(rt, obj))),
        Accept::Table(include) => {
            let table = tables::table(
                rt,
                &[object_value(rt, obj)],
                &obj.resource_version.to_string(),
                None,
                include,
                true,
                s.store.now(),
            );
            json_response(code, &table)
        }
    }
}

pub(super) fn list_response(
    s: &HttpState,
    rt: &ResourceType,
    items: Vec<Arc<StoredObject>>,
    resource_version: u64,
    continue_token: Option<String>,
    accept: Accept,
) -> Response {
    match accept {
        Accept::Table(include) => {
            let values: Vec<Value> = items.iter().map(|o| object_value(rt, o)).collect();
            let t = tables::table(
                rt,
                &values,
                &resource_version.to_string(),
                continue_token.as_deref(),
                include,
                true,
                s.store.now(),
            );
            json_response(StatusCode::OK, &t)
        }
        Accept::Metadata => {
            let values: Vec<Value> = items
                .iter()
                .map(|o| metadata_only(&object_value(rt, o)))
                .collect();
            let mut meta = json!({"resourceVersion": resource_version.to_string()});
            if let Some(c) = continue_token {
                meta["continue"] = json!(c);
            }
            json_response(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": values}),
            )
        }
        Accept::Object => {
            let mut meta = json!({"resourceVersion": resource_version.to_string()});
            if let Some(c) = continue_token {
                meta["continue"] = json!(c);
            }
            let head = format!(
                "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
                rt.kind,
                rt.api_version(),
                meta
            );
            let rt = rt.clone();
            // Streamed in chunks: a 150k-pod list never sits whole in one buffer.
            let stream =
                futures::stream::unfold((Some(head), items, 0usize), move |(head, items, next)| {
                    let rt = rt.clone();
                    async move {
                        if next > items.len() {
                            return None;
                        }
                        let mut buf = BytesMut::with_capacity(CHUNK_BYTES + 16 * 1024);
                        if let Some(h) = &head {
                            buf.put_slice(h.as_bytes());
                        }
                        let mut i = next;
                        while i < items.len() && buf.len() < CHUNK_BYTES {
                            if i > 0 {
                                buf.put_u8(b',');
                            }
                            buf.put_slice(&object_bytes(&rt, &items[i]));
                            i += 1;
                        }
                        if i == items.len() {
                            buf.put_slice(b"]}");
                            i += 1;
                        }
                        Some((Ok::<Bytes, std::io::Error>(buf.freeze()), (None, items, i)))
                    }
                });
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    }
}

pub(super) fn list(
    s: &HttpState,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    accept: Accept,
) -> Result<Response, ApiError> {
    let opts = list_options(rt, q)?;
    let page = s.store.list(rt, ns, &opts)?;
    Ok(list_response(
        s,
        rt,
        page.items,
        page.resource_version,
        page.continue_token,
        accept,
    ))
}

// ---- responses ------------------------------------------------------------------------------

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    bytes_response(code, Bytes::from(value.to_string()))
}

pub(super) fn bytes_response(code: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn text_response(code: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(code, &e.status());
    if let ApiError::TooManyRequests {
        retry_after_seconds,
        ..
    } = e
    {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
    }
    if let ApiError::ServiceUnavailable(_) = e {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}
