//! Watch responses: chunked JSON lines from a store watch, with periodic bookmarks,
//! `timeoutSeconds`, Table rows for `kubectl get -w`, and the close-after-N fault.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;
use tokio::time::Instant;

use super::super::error::ApiError;
use super::super::faults::Faults;
use super::super::options::WatchOptions;
use super::super::resources::ResourceType;
use super::super::store::Store;
use super::super::tables;
use super::super::watch::{Watch, WatchEvent};

use super::render::*;
use super::request::*;
use super::state::*;

// ---- watch ------------------------------------------------------------------------------

pub(super) enum Wake {
    Event(Option<WatchEvent>),
    Bookmark,
    Deadline,
}

pub(super) struct WatchStream {
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

pub(super) async fn watch(
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
        return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", vec![crate::api::error::Cause {
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

pub(super) fn error_line(e: &ApiError) -> Bytes {
    let line = json!({"type": "ERROR", "object": e.status()});
    Bytes::from(format!("{line}\n"))
}
