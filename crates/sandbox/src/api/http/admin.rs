//! Admin endpoints under `/sandbox/v1/faults`: the same fault switchboard as the
//! Rust API, over HTTP.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use super::super::error::ApiError;
use super::super::faults::FaultConfig;

use super::render::*;
use super::request::*;
use super::state::*;

// ---- admin: faults -----------------------------------------------------------------

pub(super) async fn faults_get(State(s): State<HttpState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"config": s.faults.config(), "counts": s.faults.counts(),
        "openWatches": s.store.watch_count(),
        "slowWatchersClosed": s.store.stats().slow_watchers_closed.load(std::sync::atomic::Ordering::Relaxed)}),
    )
}

pub(super) async fn faults_put(State(s): State<HttpState>, body: Bytes) -> Response {
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

pub(super) async fn faults_delete(State(s): State<HttpState>) -> Response {
    s.faults.clear();
    faults_get(State(s)).await
}

pub(super) async fn faults_close_watches(State(s): State<HttpState>) -> Response {
    let n = s.store.close_all_watches();
    s.faults.count_watches_closed(n as u64);
    json_response(StatusCode::OK, &json!({"closed": n}))
}

pub(super) async fn faults_gone(State(s): State<HttpState>, req: Request) -> Response {
    let q = query(&req);
    let n = q.get("count").and_then(|c| c.parse().ok()).unwrap_or(1);
    s.faults.gone_next_watches(n);
    json_response(StatusCode::OK, &json!({"pending": n}))
}

pub(super) async fn faults_restart(State(s): State<HttpState>) -> Response {
    s.faults.count_restart();
    // Answer first; the restart drops this connection too.
    let hook = s.restart.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        (hook.0)();
    });
    json_response(StatusCode::OK, &json!({"restarting": true}))
}
