//! The Kubernetes REST API over HTTP: URL routing onto the store, content negotiation
//! (JSON, `as=Table`, `as=PartialObjectMetadata`), watch streaming, discovery, the
//! probes, and the admin endpoints that inject faults.
//!
//! Watch wire format as the real server: chunked HTTP, one JSON object per line,
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":...}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::admission::Subresource;
use super::discovery;
use super::error::{ApiError, success_status};
use super::faults::{FaultConfig, Faults};
use super::fields::FieldSelector;
use super::object::StoredObject;
use super::patch::Patch;
use super::resources::{Flavor, ResourceType};
use super::store::{
    DeleteOptions, Deleted, ListOptions, Store, WatchOptions, WriteOptions, served_form,
};
use super::tables::{self, IncludeObject};
use super::watch::{Watch, WatchEvent};
use crate::selector::Selector;

/// Largest request body accepted (the real server's limit is 3 MiB).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Watch and list responses are flushed in chunks of about this size.
const CHUNK_BYTES: usize = 256 * 1024;
/// A watch without `timeoutSeconds` ends after this long (the real server picks 30-60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// What the HTTP layer shares across requests.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub store: Store,
    pub faults: Arc<Faults>,
    /// How often an idle watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// `host:port` the server is reachable at (for `/api`).
    pub address: String,
    /// Run by `POST /sandbox/v1/faults/restart` (drops every connection).
    pub restart: RestartHook,
}

/// Drops every open connection of the server (keeping the data).
#[derive(Clone)]
pub struct RestartHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for RestartHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestartHook")
    }
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { json_response(StatusCode::OK, &discovery::version()) }),
        )
        .route("/healthz", get(probe))
        .route("/livez", get(probe))
        .route("/readyz", get(probe))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*gv}", get(openapi_document))
        .route(
            "/sandbox/v1/faults",
            get(faults_get).put(faults_put).delete(faults_delete),
        )
        .route(
            "/sandbox/v1/faults/close-watches",
            post(faults_close_watches),
        )
        .route("/sandbox/v1/faults/gone", post(faults_gone))
        .route("/sandbox/v1/faults/restart", post(faults_restart))
        .fallback(api)
        .with_state(state)
}

async fn probe() -> Response {
    text_response(StatusCode::OK, "ok")
}

async fn openapi_root(State(s): State<HttpState>) -> Response {
    json_response(StatusCode::OK, &discovery::openapi_root(s.store.registry()))
}

async fn openapi_document(
    State(s): State<HttpState>,
    axum::extract::Path(gv): axum::extract::Path<String>,
) -> Response {
    match discovery::openapi_document(s.store.registry(), &gv) {
        Some(doc) => json_response(StatusCode::OK, &doc),
        None => error_response(&ApiError::NotFound {
            resource: "openapi".into(),
            group: String::new(),
            name: gv,
        }),
    }
}

// ---- admin: faults -----------------------------------------------------------------

async fn faults_get(State(s): State<HttpState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"config": s.faults.config(), "counts": s.faults.counts(),
        "openWatches": s.store.watch_count(),
        "slowWatchersClosed": s.store.stats().slow_watchers_closed.load(std::sync::atomic::Ordering::Relaxed)}),
    )
}

async fn faults_put(State(s): State<HttpState>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(config) => {
            s.faults.set_config(config);
            faults_get(State(s)).await
        }
        Err(e) => error_response(&ApiError::BadRequest(format!(
            "invalid fault configuration: {e}"
        ))),
    }
}

async fn faults_delete(State(s): State<HttpState>) -> Response {
    s.faults.clear();
    faults_get(State(s)).await
}

async fn faults_close_watches(State(s): State<HttpState>) -> Response {
    let n = s.store.close_all_watches();
    s.faults.count_watches_closed(n as u64);
    json_response(StatusCode::OK, &json!({"closed": n}))
}

async fn faults_gone(State(s): State<HttpState>, req: Request) -> Response {
    let q = query(&req);
    let n = q.get("count").and_then(|c| c.parse().ok()).unwrap_or(1);
    s.faults.gone_next_watches(n);
    json_response(StatusCode::OK, &json!({"pending": n}))
}

async fn faults_restart(State(s): State<HttpState>) -> Response {
    s.faults.count_restart();
    // Answer first; the restart drops this connection too.
    let hook = s.restart.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        (hook.0)();
    });
    json_response(StatusCode::OK, &json!({"restarting": true}))
}

// ---- the API ---------------------------------------------------------------------------

async fn api(State(s): State<HttpState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if !(path == "/api"
        || path.starts_with("/api/")
        || path == "/apis"
        || path.starts_with("/apis/"))
    {
        return error_response(&ApiError::NotFound {
            resource: String::new(),
            group: String::new(),
            name: path.trim_start_matches('/').to_string(),
        });
    }
    if let Some(delay) = s.faults.latency() {
        tokio::time::sleep(delay).await;
    }
    if let Some(err) = s.faults.sample_error() {
        return error_response(&err);
    }
    match serve(&s, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// Where a resource request points.
struct Target {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

async fn serve(s: &HttpState, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let registry = s.store.registry();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::core_versions(&s.address),
            ));
        }
        ["apis"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::group_list(registry),
            ));
        }
        ["api", v] => {
            return discovery::resource_list(registry, "", v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(|| not_found_path(&path));
        }
        ["apis", g] => {
            return discovery::group(registry, g)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(|| not_found_path(&path));
        }
        ["apis", g, v] => {
            return discovery::resource_list(registry, g, v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(|| not_found_path(&path));
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path(&path)),
    };
    let target = resolve(&s.store, group, version, rest).ok_or_else(|| not_found_path(&path))?;
    let q = query(&req);
    let method = req.method().clone();
    let headers = req.headers().clone();
    let accept = Accept::parse(&headers);
    let Target {
        rt,
        namespace,
        name,
        subresource,
    } = target;
    let ns = namespace.as_deref();
    match (method, name, subresource.as_deref()) {
        (Method::GET, None, None) => {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(s, &rt, ns, &q, accept).await
            } else {
                list(s, &rt, ns, &q, accept)
            }
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let obj = s.store.get(&rt, ns, &name)?;
            Ok(render_one(s, &rt, &obj, accept, StatusCode::OK))
        }
        (Method::POST, None, None) => {
            let body = read_json(req).await?;
            let opts = write_options(&q, &headers, Subresource::Main);
            let obj = s.store.create(&rt, ns, body, &opts)?;
            Ok(render_one(s, &rt, &obj, accept, StatusCode::CREATED))
        }
        (Method::POST, Some(name), Some("binding")) if rt.flavor == Flavor::Pod => {
            let body = read_json(req).await?;
            let node = body
                .pointer("/target/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if node.is_empty() {
                return Err(ApiError::invalid(
                    "Binding",
                    "",
                    &name,
                    vec![super::error::Cause::required("target.name")],
                ));
            }
            s.store.bind(ns.unwrap_or_default(), &name, &node)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (Method::POST, Some(name), Some("eviction")) if rt.flavor == Flavor::Pod => {
            let body = read_json(req).await?;
            let opts = delete_options(&q, body.get("deleteOptions"));
            s.store.evict(ns.unwrap_or_default(), &name, &opts)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let sub = subresource_of(&rt, sub)?;
            let body = read_json(req).await?;
            let opts = write_options(&q, &headers, sub);
            let obj = s.store.update(&rt, ns, &name, body, &opts)?;
            Ok(render_one(s, &rt, &obj, accept, StatusCode::OK))
        }
        (Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            let sub = subresource_of(&rt, sub)?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = read_body(req).await?;
            let patch = Patch::from_body(&content_type, &body)?;
            let mut opts = write_options(&q, &headers, sub);
            if !matches!(patch, Patch::Apply(_)) && q.contains_key("force") {
                return Err(ApiError::BadRequest(
                    "force: Forbidden: may not be specified for non-apply patch".into(),
                ));
            }
            opts.force = q.get("force").is_some_and(|f| f == "true");
            let existed = s.store.get(&rt, ns, &name).is_ok();
            let obj = s.store.patch(&rt, ns, &name, &patch, &opts)?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(render_one(s, &rt, &obj, accept, code))
        }
        (Method::DELETE, Some(name), None) => {
            let body = read_body(req).await?;
            let body: Option<Value> = if body.is_empty() {
                None
            } else {
                Some(parse_json(&body)?)
            };
            let opts = delete_options(&q, body.as_ref());
            let body_dry_run = body
                .as_ref()
                .and_then(|b| b.get("dryRun"))
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"));
            if body_dry_run || q.get("dryRun").is_some_and(|v| v == "All") {
                let obj = s.store.get(&rt, ns, &name)?;
                return Ok(render_one(s, &rt, &obj, accept, StatusCode::OK));
            }
            match s.store.delete(&rt, ns, &name, &opts)? {
                Deleted::Pending(obj) => Ok(render_one(s, &rt, &obj, accept, StatusCode::OK)),
                Deleted::Gone(obj) if rt.flavor == Flavor::Pod => {
                    Ok(render_one(s, &rt, &obj, accept, StatusCode::OK))
                }
                Deleted::Gone(obj) => Ok(json_response(
                    StatusCode::OK,
                    &success_status(&obj.name, &rt.group, &rt.plural, &obj.uid),
                )),
            }
        }
        (Method::DELETE, None, None) => {
            let body = read_body(req).await?;
            let body: Option<Value> = if body.is_empty() {
                None
            } else {
                Some(parse_json(&body)?)
            };
            let opts = delete_options(&q, body.as_ref());
            let list_opts = list_options(&rt, &q)?;
            let deleted = s.store.delete_collection(&rt, ns, &list_opts, &opts)?;
            Ok(list_response(
                s,
                &rt,
                deleted,
                s.store.resource_version(),
                None,
                accept,
            ))
        }
        (m, _, sub) => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({m} {}{})",
            rt.group_resource(),
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

fn subresource_of(rt: &ResourceType, sub: Option<&str>) -> Result<Subresource, ApiError> {
    match sub {
        None => Ok(Subresource::Main),
        Some("status") if rt.status_subresource => Ok(Subresource::Status),
        Some(other) => Err(ApiError::NotFound {
            resource: format!("{}/{other}", rt.plural),
            group: rt.group.clone(),
            name: String::new(),
        }),
    }
}

fn resolve(store: &Store, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let namespaced_form = rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !(rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize"));
    let (namespace, rest) = if namespaced_form {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let plural = *rest.first()?;
    let rt = store.registry().find(group, version, plural)?;
    if namespace.is_some() && !rt.namespaced {
        return None;
    }
    if rest.len() > 3 {
        return None;
    }
    Some(Target {
        rt,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::NotFound {
        resource: String::new(),
        group: String::new(),
        name: path.trim_start_matches('/').to_string(),
    }
}

// ---- request decoding ------------------------------------------------------------

fn query(req: &Request) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            ApiError::RequestEntityTooLarge(format!(
                "the request body could not be read (limit {MAX_BODY_BYTES} bytes): {e}"
            ))
        })
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
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

async fn read_json(req: Request) -> Result<Value, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = read_body(req).await?;
    let value = if content_type.contains("protobuf") {
        super::protobuf::decode(&body)?
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

fn write_options(
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

fn delete_options(q: &HashMap<String, String>, body: Option<&Value>) -> DeleteOptions {
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

fn list_options(rt: &ResourceType, q: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
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

fn label_selector(q: &HashMap<String, String>) -> Result<Selector, ApiError> {
    match q.get("labelSelector") {
        Some(s) if !s.trim().is_empty() => Selector::parse(s)
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}"))),
        _ => Ok(Selector::everything()),
    }
}

fn field_selector(
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
enum Accept {
    Object,
    Table(IncludeObject),
    Metadata,
}

impl Accept {
    fn parse(headers: &HeaderMap) -> Self {
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

// ---- rendering ----------------------------------------------------------------------

/// An object's JSON as `rt` serves it; the stored bytes as-is for native views.
fn object_bytes(rt: &ResourceType, obj: &StoredObject) -> Bytes {
    if is_native_view(rt) {
        obj.json.clone()
    } else {
        Bytes::from(served_form(rt, obj.value()).to_string())
    }
}

fn object_value(rt: &ResourceType, obj: &StoredObject) -> Value {
    if is_native_view(rt) {
        obj.value()
    } else {
        served_form(rt, obj.value())
    }
}

/// Whether `rt` serves objects exactly as stored (everything but the events.k8s.io
/// view and non-storage versions of custom resources).
fn is_native_view(rt: &ResourceType) -> bool {
    match rt.flavor {
        Flavor::EventsV1 => false,
        Flavor::Custom => rt.version == rt.storage_version,
        _ => true,
    }
}

fn metadata_only(value: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
           "metadata": value.get("metadata").cloned().unwrap_or(json!({}))})
}

fn render_one(
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

fn list_response(
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

fn list(
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

// ---- watch ------------------------------------------------------------------------------

enum Wake {
    Event(Option<WatchEvent>),
    Bookmark,
    Deadline,
}

struct WatchStream {
    watch: Option<Watch>,
    rt: Arc<ResourceType>,
    store: Store,
    faults: Arc<Faults>,
    accept: Accept,
    bookmarks: bool,
    bookmark_interval: Duration,
    next_bookmark: Instant,
    deadline: Instant,
    sent: u64,
    close_after: Option<u64>,
    columns_sent: bool,
    /// A final line to send before ending (the 410 of an expired version).
    final_line: Option<Bytes>,
}

async fn watch(
    s: &HttpState,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    accept: Accept,
) -> Result<Response, ApiError> {
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let opts = WatchOptions {
        label_selector: label_selector(q)?,
        field_selector: field_selector(rt, q)?,
        resource_version: q.get("resourceVersion").cloned(),
        send_initial_events: q.get("sendInitialEvents").map(|v| v == "true"),
        allow_bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
    };
    if opts.send_initial_events == Some(true)
        && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
    {
        return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", vec![super::error::Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
            field: "resourceVersionMatch".into(),
        }]));
    }
    let (watch, final_line) = if s.faults.take_gone() {
        let rv = s.store.resource_version();
        (None, Some(error_line(&ApiError::too_old(0, rv))))
    } else {
        match s.store.watch(rt, ns, &opts) {
            Ok(w) => (Some(w), None),
            Err(e @ ApiError::Gone(_)) => (None, Some(error_line(&e))),
            Err(e) => return Err(e),
        }
    };
    let now = Instant::now();
    let state = WatchStream {
        watch,
        rt: rt.clone(),
        store: s.store.clone(),
        faults: s.faults.clone(),
        accept,
        bookmarks: opts.allow_bookmarks,
        bookmark_interval: s.bookmark_interval,
        next_bookmark: now + s.bookmark_interval,
        deadline: now + timeout,
        sent: 0,
        close_after: s.faults.config().close_watches_after_events,
        columns_sent: false,
        final_line,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<Bytes, std::io::Error>(chunk), st))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

impl WatchStream {
    /// The next chunk of lines; `None` ends the response.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let Some(watch) = self.watch.as_mut() else {
            return self.final_line.take();
        };
        let mut buf = BytesMut::new();
        let wake = tokio::select! {
            ev = watch.next() => Wake::Event(ev),
            _ = tokio::time::sleep_until(self.next_bookmark), if self.bookmarks => Wake::Bookmark,
            _ = tokio::time::sleep_until(self.deadline) => Wake::Deadline,
        };
        let first = match wake {
            Wake::Event(Some(ev)) => ev,
            Wake::Event(None) | Wake::Deadline => {
                self.watch = None;
                return None;
            }
            Wake::Bookmark => {
                let mut ready = Vec::new();
                let bookmark = watch.bookmark(&mut ready);
                self.next_bookmark = Instant::now() + self.bookmark_interval;
                for ev in ready {
                    if !self.write(&mut buf, &ev) {
                        return Some(buf.freeze());
                    }
                }
                self.write(&mut buf, &bookmark);
                return Some(buf.freeze());
            }
        };
        if !self.write(&mut buf, &first) {
            return Some(buf.freeze());
        }
        while buf.len() < CHUNK_BYTES {
            let Some(watch) = self.watch.as_mut() else {
                break;
            };
            let Some(ev) = watch.try_next() else { break };
            if !self.write(&mut buf, &ev) {
                break;
            }
        }
        Some(buf.freeze())
    }

    /// Appends one event line; false once the watch must end (closed by a fault).
    fn write(&mut self, buf: &mut BytesMut, ev: &WatchEvent) -> bool {
        if self.watch.is_none() {
            return false;
        }
        match ev {
            WatchEvent::Bookmark {
                resource_version,
                initial_events_end,
            } => {
                if !self.bookmarks {
                    return true;
                }
                let mut meta = json!({"resourceVersion": resource_version.to_string(), "creationTimestamp": null});
                if *initial_events_end {
                    meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                let (kind, api_version) = match self.accept {
                    Accept::Metadata => (
                        "PartialObjectMetadata".to_string(),
                        "meta.k8s.io/v1".to_string(),
                    ),
                    _ => (self.rt.kind.clone(), self.rt.api_version()),
                };
                let line = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": meta}});
                buf.put_slice(line.to_string().as_bytes());
                buf.put_u8(b'\n');
                return true;
            }
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                buf.put_slice(b"{\"type\":\"");
                buf.put_slice(ev.type_name().as_bytes());
                buf.put_slice(b"\",\"object\":");
                match self.accept {
                    Accept::Object => buf.put_slice(&object_bytes(&self.rt, o)),
                    Accept::Metadata => buf.put_slice(
                        metadata_only(&object_value(&self.rt, o))
                            .to_string()
                            .as_bytes(),
                    ),
                    Accept::Table(include) => {
                        let t = tables::table(
                            &self.rt,
                            &[object_value(&self.rt, o)],
                            &o.resource_version.to_string(),
                            None,
                            include,
                            !self.columns_sent,
                            self.store.now(),
                        );
                        self.columns_sent = true;
                        buf.put_slice(t.to_string().as_bytes());
                    }
                }
                buf.put_slice(b"}\n");
            }
        }
        self.sent += 1;
        if self.close_after.is_some_and(|n| self.sent >= n) {
            self.faults.count_watch_closed_after_events();
            self.watch = None;
            return false;
        }
        true
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let line = json!({"type": "ERROR", "object": e.status()});
    Bytes::from(format!("{line}\n"))
}

// ---- responses ------------------------------------------------------------------------------

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    bytes_response(code, Bytes::from(value.to_string()))
}

fn bytes_response(code: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn text_response(code: StatusCode, text: &'static str) -> Response {
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
