//! The Kubernetes REST API over HTTP: URL routing onto the store, content negotiation
//! (JSON, `as=Table`, `as=PartialObjectMetadata`), watch streaming, discovery, the
//! probes, and the admin endpoints that inject faults.
//!
//! Watch wire format as the real server: chunked HTTP, one JSON object per line,
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":...}`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
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
mod render;
mod request;
mod state;
mod stream;

use admin::*;
use render::*;
use request::*;
use stream::*;

pub use render::{error_response, json_response};
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
