//! Decoding requests: query parameters, bodies (JSON, YAML, kubectl's protobuf), the
//! options of each verb, and content negotiation.

use std::collections::HashMap;

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use serde_json::Value;

use super::super::error::ApiError;
use super::super::fields::FieldSelector;
use super::super::options::{DeleteOptions, ListOptions, Subresource, WriteOptions};
use super::super::resources::ResourceType;
use super::super::tables::IncludeObject;
use podwarden_base::selector::Selector;

use super::state::*;

// ---- request decoding ------------------------------------------------------------

pub(super) fn query(req: &Request) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(super) async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            ApiError::RequestEntityTooLarge(format!(
                "the request body could not be read (limit {MAX_BODY_BYTES} bytes): {e}"
            ))
        })
}

pub(super) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::BadRequest(format!("the object could not be decoded: {json_err}"))
            })?;
            serde_saphyr::from_str::<Value>(text).map_err(|_| {
                ApiError::BadRequest(format!("the object could not be decoded: {json_err}"))
            })
        }
    }
}

/// The request body as a JSON object, decoded from JSON, YAML or protobuf by its
/// content type (at most `MAX_BODY_BYTES`).
pub async fn read_json(req: Request) -> Result<Value, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = read_body(req).await?;
    let value = if content_type.contains("protobuf") {
        crate::api::protobuf::decode(&body)?
    } else {
        parse_json(&body)?
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body of the request must be a JSON object".into(),
        ));
    }
    Ok(value)
}

pub(super) fn write_options(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    sub: Subresource,
) -> WriteOptions {
    let manager = q
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .or_else(|| {
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
                .filter(|m| !m.is_empty())
        });
    WriteOptions {
        subresource: sub,
        field_manager: manager,
        force: false,
        strict: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
    }
}

pub(super) fn delete_options(q: &HashMap<String, String>, body: Option<&Value>) -> DeleteOptions {
    let from_body = |k: &str| body.and_then(|b| b.get(k));
    let grace = q
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| from_body("gracePeriodSeconds").and_then(Value::as_i64));
    let pre = from_body("preconditions");
    DeleteOptions {
        grace_period_seconds: grace,
        precondition_uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

pub(super) fn list_options(
    rt: &ResourceType,
    q: &HashMap<String, String>,
) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        label_selector: label_selector(q)?,
        field_selector: field_selector(rt, q)?,
        limit: match q.get("limit") {
            Some(l) => Some(
                l.parse()
                    .map_err(|_| ApiError::BadRequest(format!("limit: invalid value {l:?}")))?,
            ),
            None => None,
        },
        continue_token: q.get("continue").cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match: q.get("resourceVersionMatch").cloned(),
    })
}

pub(super) fn label_selector(q: &HashMap<String, String>) -> Result<Selector, ApiError> {
    match q.get("labelSelector") {
        Some(s) if !s.trim().is_empty() => Selector::parse(s)
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}"))),
        _ => Ok(Selector::everything()),
    }
}

pub(super) fn field_selector(
    rt: &ResourceType,
    q: &HashMap<String, String>,
) -> Result<FieldSelector, ApiError> {
    match q.get("fieldSelector") {
        Some(s) => FieldSelector::parse(s, rt.flavor),
        None => Ok(FieldSelector::default()),
    }
}

/// What the client asked the response to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Accept {
    Object,
    Table(IncludeObject),
    Metadata,
}

impl Accept {
    pub(super) fn parse(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // The first acceptable media type wins, as in the real server's negotiation.
        for media in accept.split(',') {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            let Some(base) = params.first() else { continue };
            if !(base.starts_with("application/json")
                || *base == "*/*"
                || base.starts_with("application/yaml"))
            {
                continue;
            }
            let as_ = params.iter().find_map(|p| p.strip_prefix("as="));
            let group = params.iter().find_map(|p| p.strip_prefix("g="));
            match (as_, group) {
                (Some("Table"), Some("meta.k8s.io")) => {
                    return Accept::Table(IncludeObject::Metadata);
                }
                (
                    Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                    Some("meta.k8s.io"),
                ) => return Accept::Metadata,
                (Some(_), _) => continue,
                (None, _) => return Accept::Object,
            }
        }
        Accept::Object
    }
}
