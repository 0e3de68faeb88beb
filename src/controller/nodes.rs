//! The node cache orphan recreation reads: what each Node says of itself as
//! [`NodeFacts`] (exists, Ready, tainted `out-of-service`), from a watch of every node.
//!
//! Bounds: one small entry per Node object (no spec or status is kept); the channel to
//! the audit loop holds [`CHANNEL_CAPACITY`] events (a full channel pauses the watch);
//! the watch backs off as kube-runtime's default back-off does.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use podwarden_model::orphans::NodeFacts;
use tokio::sync::mpsc;

use super::pods::Backoff;

pub const CHANNEL_CAPACITY: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    Applied(NodeFacts),
    Deleted(String),
    /// A (re)list began: the nodes it brings are the live set.
    ListStart,
    ListDone,
}

/// Watches every node until the receiver is dropped.
pub async fn watch(client: Client, tx: mpsc::Sender<NodeEvent>) {
    let api: Api<Node> = Api::all(client);
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                match NodeFacts::from_node(&n) {
                    Some(facts) => NodeEvent::Applied(facts),
                    None => continue,
                }
            }
            Ok(watcher::Event::Delete(n)) => match n.metadata.name {
                Some(name) => NodeEvent::Deleted(name),
                None => continue,
            },
            Ok(watcher::Event::Init) => NodeEvent::ListStart,
            Ok(watcher::Event::InitDone) => NodeEvent::ListDone,
            Err(e) => {
                tracing::warn!(error = %e, "node watch failed; retrying");
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// Tries at reading one node afresh.
pub const READ_ATTEMPTS: u32 = 5;

/// What node `name` says now, read from the API (a missing node's facts when it is not
/// there); `None` when it could not be read after [`READ_ATTEMPTS`] tries.
pub async fn read(client: &Client, name: &str) -> Option<NodeFacts> {
    let api: Api<Node> = Api::all(client.clone());
    let mut backoff = Backoff::default();
    for attempt in 1..=READ_ATTEMPTS {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), api.get_opt(name));
        match read.await {
            Ok(Ok(Some(node))) => return NodeFacts::from_node(&node),
            Ok(Ok(None)) => return Some(NodeFacts::missing(name)),
            Ok(Err(e)) => tracing::debug!(error = %e, node = name, attempt, "node read failed"),
            Err(_) => tracing::debug!(node = name, attempt, "node read timed out"),
        }
        backoff.wait().await;
    }
    None
}

/// The facts of every node, as of the events applied so far.
#[derive(Debug, Default)]
pub struct NodeCache {
    facts: HashMap<String, NodeFacts>,
    /// The names a list in progress has brought.
    listing: Option<HashSet<String>>,
    synced: bool,
}

impl NodeCache {
    /// Applies one event; returns the nodes whose facts changed.
    pub fn apply(&mut self, event: NodeEvent) -> Vec<String> {
        match event {
            NodeEvent::Applied(facts) => {
                let name = facts.name.to_string();
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(name.clone());
                }
                if self.facts.get(&name) == Some(&facts) {
                    return Vec::new();
                }
                self.facts.insert(name.clone(), facts);
                vec![name]
            }
            NodeEvent::Deleted(name) => match self.facts.remove(&name) {
                Some(_) => vec![name],
                None => Vec::new(),
            },
            NodeEvent::ListStart => {
                self.listing = Some(HashSet::new());
                Vec::new()
            }
            NodeEvent::ListDone => {
                let live = self.listing.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .facts
                    .keys()
                    .filter(|n| !live.contains(*n))
                    .cloned()
                    .collect();
                for name in &gone {
                    self.facts.remove(name);
                }
                self.synced = true;
                gone
            }
        }
    }

    /// Whether a full list has been applied.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// What the cache says of `name`: its facts, a missing node once synced, nothing
    /// before.
    pub fn facts(&self, name: &str) -> Option<NodeFacts> {
        match self.facts.get(name) {
            Some(f) => Some(f.clone()),
            None if self.synced => Some(NodeFacts::missing(name)),
            None => None,
        }
    }

    pub fn len(&self) -> usize {
        self.facts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(name: &str, ready: bool) -> NodeEvent {
        NodeEvent::Applied(NodeFacts {
            name: name.into(),
            exists: true,
            out_of_service: false,
            ready: Some(ready),
        })
    }

    #[test]
    fn before_the_first_list_completes_an_absent_node_is_unknown_not_missing() {
        let mut cache = NodeCache::default();
        cache.apply(NodeEvent::ListStart);
        cache.apply(ready("n1", true));
        assert_eq!(cache.facts("n2"), None);
        assert!(cache.facts("n1").is_some_and(|f| f.exists));
        cache.apply(NodeEvent::ListDone);
        assert_eq!(cache.facts("n2"), Some(NodeFacts::missing("n2")));
    }

    #[test]
    fn a_relist_drops_nodes_deleted_while_the_watch_was_down_and_says_which() {
        let mut cache = NodeCache::default();
        cache.apply(NodeEvent::ListStart);
        cache.apply(ready("n1", true));
        cache.apply(ready("n2", true));
        cache.apply(NodeEvent::ListDone);
        cache.apply(NodeEvent::ListStart);
        assert!(cache.apply(ready("n1", true)).is_empty(), "unchanged");
        assert_eq!(cache.apply(NodeEvent::ListDone), vec!["n2".to_string()]);
        assert!(cache.facts("n2").is_some_and(|f| !f.exists));
        assert_eq!(cache.apply(ready("n1", false)), vec!["n1".to_string()]);
        assert_eq!(cache.len(), 1);
    }
}
