//! The Kubernetes REST API over HTTP: URL routing onto the store, content negotiation
//! (JSON, `as=Table`, `as=PartialObjectMetadata`), watch streaming, discovery, the
//! probes, and the admin endpoints that inject faults.
//!
//! Watch wire format as the real server: chunked HTTP, one JSON object per line,
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":...}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::discovery;
use super::error::{ApiError, success_status};
use super::options::Subresource;
use super::patch::Patch;
use super::resources::{Flavor, ResourceType};
use super::store::{Deleted, Store};

mod admin;
mod guard;
mod render;
mod request;
mod state;
mod stream;

use admin::*;
use render::*;
use request::*;
use stream::*;

pub use guard::guard;
pub use render::{error_response, json_response};
pub use request::read_json;
pub use state::{HttpState, RestartHook};

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
    let (group, version, rest) = match segments.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        other => {
            return discovery_document(s, other)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or_else(|| not_found_path(&path));
        }
    };
    let Target {
        rt,
        namespace,
        name,
        subresource,
    } = resolve(&s.store, group, version, rest).ok_or_else(|| not_found_path(&path))?;
    let headers = req.headers().clone();
    let call = Call {
        s,
        accept: Accept::parse(&headers),
        q: query(&req),
        headers,
        rt,
        namespace,
    };
    let (rt, ns, q, accept) = (&call.rt, call.namespace.as_deref(), &call.q, call.accept);
    match (req.method().clone(), name, subresource.as_deref()) {
        (Method::GET, None, None) => {
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(s, rt, ns, q, accept).await
            } else {
                list(s, rt, ns, q, accept)
            }
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let obj = s.store.get(rt, ns, &name)?;
            Ok(render_one(s, rt, &obj, accept, StatusCode::OK))
        }
        (Method::POST, None, None) => {
            let body = read_json(req).await?;
            let opts = write_options(q, &call.headers, Subresource::Main);
            let obj = s.store.create(rt, ns, body, &opts)?;
            Ok(render_one(s, rt, &obj, accept, StatusCode::CREATED))
        }
        (Method::POST, Some(name), Some("binding")) if rt.flavor == Flavor::Pod => {
            bind(&call, req, &name).await
        }
        (Method::POST, Some(name), Some("eviction")) if rt.flavor == Flavor::Pod => {
            evict(&call, req, &name).await
        }
        (Method::POST, Some(name), Some("token")) if rt.flavor == Flavor::ServiceAccount => {
            token_request(&call, req, &name).await
        }
        (Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let sub = subresource_of(rt, sub)?;
            let body = read_json(req).await?;
            let opts = write_options(q, &call.headers, sub);
            let obj = s.store.update(rt, ns, &name, body, &opts)?;
            Ok(render_one(s, rt, &obj, accept, StatusCode::OK))
        }
        (Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            let sub = subresource_of(rt, sub)?;
            patch(&call, req, &name, sub).await
        }
        (Method::DELETE, Some(name), None) => delete_one(&call, req, &name).await,
        (Method::DELETE, None, None) => delete_collection(&call, req).await,
        (m, _, sub) => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({m} {}{})",
            rt.group_resource(),
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

/// The discovery documents: `/api`, `/apis`, a group, a group version.
fn discovery_document(s: &HttpState, segments: &[&str]) -> Option<Value> {
    let registry = s.store.registry();
    match segments {
        ["api"] => Some(discovery::core_versions(&s.address)),
        ["apis"] => Some(discovery::group_list(registry)),
        ["api", v] => discovery::resource_list(registry, "", v),
        ["apis", g] => discovery::group(registry, g),
        ["apis", g, v] => discovery::resource_list(registry, g, v),
        _ => None,
    }
}

/// A routed resource request: what each verb's handler needs besides the body.
struct Call<'a> {
    s: &'a HttpState,
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    q: HashMap<String, String>,
    headers: HeaderMap,
    accept: Accept,
}

/// The `Status` a binding or an eviction answers with.
fn created_status() -> Response {
    json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// `POST pods/{name}/binding`.
async fn bind(call: &Call<'_>, req: Request, name: &str) -> Result<Response, ApiError> {
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
            name,
            vec![super::error::Cause::required("target.name")],
        ));
    }
    let ns = call.namespace.as_deref().unwrap_or_default();
    call.s.store.bind(ns, name, &node)?;
    Ok(created_status())
}

/// `POST pods/{name}/eviction`.
async fn evict(call: &Call<'_>, req: Request, name: &str) -> Result<Response, ApiError> {
    let body = read_json(req).await?;
    let opts = delete_options(&call.q, body.get("deleteOptions"));
    let ns = call.namespace.as_deref().unwrap_or_default();
    call.s.store.evict(ns, name, &opts)?;
    Ok(created_status())
}

/// `POST serviceaccounts/{name}/token`: a TokenRequest, served only with auth on
/// (without a token signer the subresource does not exist, as upstream).
async fn token_request(call: &Call<'_>, req: Request, name: &str) -> Result<Response, ApiError> {
    let Some(auth) = &call.s.auth else {
        return Err(ApiError::NotFound {
            resource: "serviceaccounts/token".into(),
            group: String::new(),
            name: String::new(),
        });
    };
    let body = read_json(req).await?;
    let ns = call.namespace.as_deref().unwrap_or_default();
    let answer = auth.request_token(ns, name, &body)?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// `PATCH`: the patch type from the content type, `force` for apply only; 201 when an
/// apply created the object.
async fn patch(
    call: &Call<'_>,
    req: Request,
    name: &str,
    sub: Subresource,
) -> Result<Response, ApiError> {
    let (s, rt, ns, q) = (call.s, &call.rt, call.namespace.as_deref(), &call.q);
    let content_type = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = read_body(req).await?;
    let patch = Patch::from_body(&content_type, &body)?;
    let mut opts = write_options(q, &call.headers, sub);
    if !matches!(patch, Patch::Apply(_)) && q.contains_key("force") {
        return Err(ApiError::BadRequest(
            "force: Forbidden: may not be specified for non-apply patch".into(),
        ));
    }
    opts.force = q.get("force").is_some_and(|f| f == "true");
    let existed = s.store.get(rt, ns, name).is_ok();
    let obj = s.store.patch(rt, ns, name, &patch, &opts)?;
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(render_one(s, rt, &obj, call.accept, code))
}

/// The optional `DeleteOptions` body of a delete.
async fn read_delete_body(req: Request) -> Result<Option<Value>, ApiError> {
    let body = read_body(req).await?;
    if body.is_empty() {
        Ok(None)
    } else {
        Ok(Some(parse_json(&body)?))
    }
}

/// `DELETE` of one object: a dry run answers with the object; a pod or an object still
/// being deleted answers with its state, any other gone object with a Status.
async fn delete_one(call: &Call<'_>, req: Request, name: &str) -> Result<Response, ApiError> {
    let (s, rt, ns, accept) = (call.s, &call.rt, call.namespace.as_deref(), call.accept);
    let body = read_delete_body(req).await?;
    let opts = delete_options(&call.q, body.as_ref());
    let body_dry_run = body
        .as_ref()
        .and_then(|b| b.get("dryRun"))
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|v| v == "All"));
    if body_dry_run || call.q.get("dryRun").is_some_and(|v| v == "All") {
        let obj = s.store.get(rt, ns, name)?;
        return Ok(render_one(s, rt, &obj, accept, StatusCode::OK));
    }
    match s.store.delete(rt, ns, name, &opts)? {
        Deleted::Pending(obj) => Ok(render_one(s, rt, &obj, accept, StatusCode::OK)),
        Deleted::Gone(obj) if rt.flavor == Flavor::Pod => {
            Ok(render_one(s, rt, &obj, accept, StatusCode::OK))
        }
        Deleted::Gone(obj) => Ok(json_response(
            StatusCode::OK,
            &success_status(&obj.name, &rt.group, &rt.plural, &obj.uid),
        )),
    }
}

/// `DELETE` of a collection: the deleted objects as a list.
async fn delete_collection(call: &Call<'_>, req: Request) -> Result<Response, ApiError> {
    let (s, rt, ns) = (call.s, &call.rt, call.namespace.as_deref());
    let body = read_delete_body(req).await?;
    let opts = delete_options(&call.q, body.as_ref());
    let list_opts = list_options(rt, &call.q)?;
    let deleted = s.store.delete_collection(rt, ns, &list_opts, &opts)?;
    Ok(list_response(
        s,
        rt,
        deleted,
        s.store.resource_version(),
        None,
        call.accept,
    ))
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
