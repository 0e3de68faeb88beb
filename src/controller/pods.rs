//! The pod list and watch, parsed straight into the model's compact view: no reflector,
//! no full `Pod` objects. Every watch event is passed on in order (a coalescing queue
//! would skip the intermediate states the rules are about).
//!
//! A relist (410 Gone, a policy change that may select pods no event will bring, a
//! reconnect that cannot resume) sends every listed pod as [`PodEvent::Relisted`], then
//! [`PodEvent::ListDone`] with the live uids so that pods deleted meanwhile are
//! forgotten.
//!
//! With `--shard i/n`, pods of other shards are dropped as soon as they are parsed.
//! With `--namespace`, each namespace is listed and watched on its own path (each watch
//! resumes from its own resourceVersion); one `ListDone` covers them all.
//!
//! Bounds: pages of [`PAGE_SIZE`] pods; the channel to the auditor holds
//! [`CHANNEL_CAPACITY`] events (a full channel pauses reading: back-pressure, nothing
//! dropped); failures back off from [`BACKOFF_MIN`] to [`BACKOFF_MAX`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::Client;
use kube::api::{ListParams, WatchParams};
use kube::core::{Request, WatchEvent};
use podwarden_model::{Phase, PodView};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::metrics::Metrics;
use super::scope::Scope;
use super::shard::Shard;

pub const PAGE_SIZE: u32 = 500;
pub const CHANNEL_CAPACITY: usize = 4096;
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Server-side watch timeout (kube-rs requires less than 295 s).
const WATCH_TIMEOUT_SECS: u32 = 290;

#[derive(Debug)]
pub enum PodEvent {
    /// Added or modified on the watch, or listed by the first list.
    Applied(PodView),
    /// Listed by a relist: there may be a gap since the previous state of this uid.
    Relisted(PodView),
    /// The final state of a deleted pod.
    Deleted(PodView),
    /// A list is complete: `live` are the uids it had.
    ListDone {
        live: HashSet<Box<str>>,
        initial: bool,
    },
}

/// An event and when it was read off the connection.
#[derive(Debug)]
pub struct Received {
    pub event: PodEvent,
    pub at: Instant,
}

#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<PodView>,
}

/// Why a watch ended.
enum WatchEnd {
    /// The server closed it or it timed out: resume from the last resourceVersion.
    Resume,
    /// The resourceVersion is too old (410) or a relist was asked for.
    Relist,
}

/// Lists and watches pods until the receiver is dropped. `relist` asks for a full list
/// (its value changes); `synced` is set after each complete list.
pub async fn run(
    client: Client,
    tx: mpsc::Sender<Received>,
    metrics: std::sync::Arc<Metrics>,
    mut relist: watch::Receiver<u64>,
    shard: Option<Shard>,
    scope: Scope,
) {
    let mine = |uid: &str| shard.is_none_or(|s| s.owns(uid));
    let paths = scope.pod_paths();
    let mut backoff = Backoff::default();
    let mut initial = true;
    'list: loop {
        let rvs = match list(&client, &paths, &tx, &metrics, initial, &mine).await {
            Ok(Some(rvs)) => rvs,
            Ok(None) => return, // the auditor is gone
            Err(e) => {
                tracing::warn!(error = %e, "listing pods failed; retrying");
                backoff.wait().await;
                continue;
            }
        };
        if !initial {
            metrics.relists.inc();
        }
        initial = false;
        backoff.reset();
        relist.mark_unchanged();
        let mut rvs = rvs;
        loop {
            match watch_from(&client, &paths, &tx, &metrics, &mut rvs, &mut relist, &mine).await {
                Ok(Some(WatchEnd::Resume)) => backoff.reset(),
                Ok(Some(WatchEnd::Relist)) => continue 'list,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch failed; resuming");
                    backoff.wait().await;
                }
            }
        }
    }
}

/// Lists every pod of every path in pages; returns each list's resourceVersion (`None`
/// when the receiver is gone). One [`PodEvent::ListDone`] covers all paths.
async fn list(
    client: &Client,
    paths: &[String],
    tx: &mpsc::Sender<Received>,
    metrics: &Metrics,
    initial: bool,
    mine: &impl Fn(&str) -> bool,
) -> Result<Option<Vec<String>>, kube::Error> {
    let mut live = HashSet::new();
    let mut pages = Vec::new();
    let mut rvs = Vec::with_capacity(paths.len());
    for path in paths {
        let mut continue_token: Option<String> = None;
        let rv = loop {
            let mut params = ListParams::default().limit(PAGE_SIZE);
            if let Some(token) = &continue_token {
                params = params.continue_token(token);
            }
            let request = Request::new(path.as_str())
                .list(&params)
                .map_err(kube::Error::BuildRequest)?;
            let mut page: PodList = client.request(request).await?;
            let at = Instant::now();
            for view in &mut page.items {
                trim(view);
            }
            pages.push((page.items, at));
            continue_token = page.metadata.continue_.filter(|t| !t.is_empty());
            if continue_token.is_none() {
                break page.metadata.resource_version.unwrap_or_default();
            }
        };
        rvs.push(rv);
    }
    // Sent only once the whole list is in: a failed page restarts the list without
    // having passed half of it on.
    for (items, at) in pages {
        for view in items.into_iter().filter(|v| mine(&v.uid)) {
            metrics.pod_watch_events.inc();
            live.insert(view.uid.clone());
            let event = if initial {
                PodEvent::Applied(view)
            } else {
                PodEvent::Relisted(view)
            };
            if tx.send(Received { event, at }).await.is_err() {
                return Ok(None);
            }
        }
    }
    let done = Received {
        event: PodEvent::ListDone { live, initial },
        at: Instant::now(),
    };
    if tx.send(done).await.is_err() {
        return Ok(None);
    }
    Ok(Some(rvs))
}

/// Watches every path from its resourceVersion, in one stream. Any watch that ends
/// ends them all (each resumes from its own resourceVersion).
async fn watch_from(
    client: &Client,
    paths: &[String],
    tx: &mpsc::Sender<Received>,
    metrics: &Metrics,
    rvs: &mut [String],
    relist: &mut watch::Receiver<u64>,
    mine: &impl Fn(&str) -> bool,
) -> Result<Option<WatchEnd>, kube::Error> {
    let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
    let mut streams = Vec::with_capacity(paths.len());
    for (i, (path, rv)) in paths.iter().zip(rvs.iter()).enumerate() {
        let request = Request::new(path.as_str())
            .watch(&params, rv)
            .map_err(kube::Error::BuildRequest)?;
        let stream = match client.request_events::<PodView>(request).await {
            Err(kube::Error::Api(status)) if status.code == 410 => {
                return Ok(Some(WatchEnd::Relist));
            }
            other => other?,
        };
        // `None` marks the end of watch `i`.
        let tagged = stream
            .map(move |event| (i, Some(event)))
            .chain(futures::stream::once(async move { (i, None) }));
        streams.push(Box::pin(tagged));
    }
    let mut stream = futures::stream::select_all(streams);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            changed = relist.changed() => {
                if changed.is_err() {
                    return Ok(None);
                }
                return Ok(Some(WatchEnd::Relist));
            }
        };
        let (i, event) = match next {
            Some((i, Some(Ok(event)))) => (i, event),
            Some((_, None)) | None => return Ok(Some(WatchEnd::Resume)),
            Some((_, Some(Err(kube::Error::Api(status))))) if status.code == 410 => {
                return Ok(Some(WatchEnd::Relist));
            }
            Some((_, Some(Err(e)))) => return Err(e),
        };
        let Some(rv) = rvs.get_mut(i) else {
            continue;
        };
        let at = Instant::now();
        let event = match event {
            WatchEvent::Added(mut view) | WatchEvent::Modified(mut view) => {
                *rv = view.resource_version.to_string();
                if !mine(&view.uid) {
                    continue;
                }
                trim(&mut view);
                PodEvent::Applied(view)
            }
            WatchEvent::Deleted(view) => {
                *rv = view.resource_version.to_string();
                if !mine(&view.uid) {
                    continue;
                }
                PodEvent::Deleted(view)
            }
            WatchEvent::Bookmark(b) => {
                *rv = b.metadata.resource_version;
                continue;
            }
            WatchEvent::Error(status) if status.code == 410 => {
                return Ok(Some(WatchEnd::Relist));
            }
            WatchEvent::Error(status) => return Err(kube::Error::Api(status)),
        };
        metrics.pod_watch_events.inc();
        if tx.send(Received { event, at }).await.is_err() {
            return Ok(None);
        }
    }
}

/// Drops a listed or watched bare pod's full spec unless this state may be its loss
/// (terminal, or being deleted; a deletion's final state keeps it): orphan recreation
/// reads the spec only from such a state, and a list of 150k bare pods would otherwise
/// hold every spec at once.
fn trim(view: &mut PodView) {
    if view.deletion_timestamp.is_none() && view.phase() != Phase::Failed {
        view.full_spec = None;
    }
}

/// Exponential back-off with a little jitter from the clock, bounded by
/// [`BACKOFF_MIN`]..[`BACKOFF_MAX`].
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let base = BACKOFF_MIN.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let capped = base.min(BACKOFF_MAX);
        let jitter_ms = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_millis())
                .unwrap_or(0),
        ) % 100;
        capped + Duration::from_millis(jitter_ms)
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}
