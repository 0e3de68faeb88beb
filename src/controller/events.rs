//! Findings as Kubernetes Events (events.k8s.io/v1) regarding the pod.
//!
//! - One Event object per occurrence, named from the pod uid, the rule, the container
//!   and the occurrence (the snapshot's resourceVersion for a transition; the pod itself
//!   for a state, which holds until it stops): a retried or repeated create answers 409
//!   and writes nothing, so a restarted controller never records an occurrence twice.
//! - A spam filter per pod and reason: a burst of [`SPAM_BURST`], then one per
//!   [`SPAM_REFILL`] (client-go's filter, keyed more finely).
//! - At most `qps` writes per second in total; a queue of at most [`QUEUE_LIMIT`] Events
//!   that drops the oldest (and counts it) when full. Writes run on their own task and
//!   never block the watch; a failed write is retried [`WRITE_ATTEMPTS`] times with
//!   back-off.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use podwarden_model::{Finding, RuleId, Severity};
use tokio::sync::Notify;

use super::leader::Leadership;
use super::metrics::Metrics;

pub const REPORTING_CONTROLLER: &str = "podwarden.dev/controller";
pub const ACTION: &str = "Audit";
pub const SPAM_BURST: f64 = 25.0;
pub const SPAM_REFILL: Duration = Duration::from_secs(300);
/// Keys the spam filter remembers; idle (refilled) keys are pruned past this.
pub const SPAM_KEYS_LIMIT: usize = 10_000;
pub const QUEUE_LIMIT: usize = 1_000;
pub const WRITE_ATTEMPTS: u32 = 5;
/// How long a standby keeps what it found: if it becomes the leader within this time
/// it writes them (409 for what the old leader wrote), later they were the old
/// leader's to write.
pub const STANDBY_KEEP: Duration = Duration::from_secs(30);
/// events.k8s.io limits `note` to 1 KB.
const NOTE_LIMIT: usize = 1024;

/// `restart-against-policy` -> `RestartAgainstPolicy`.
pub fn reason(rule: RuleId) -> String {
    rule.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The Event's name: the pod's name (shortened to fit) and a stable hash of uid, rule,
/// container and occurrence.
pub fn event_name(finding: &Finding) -> String {
    let occurrence = if finding.rule.is_state() {
        "state"
    } else {
        finding.resource_version.as_str()
    };
    let mut h = Fnv64::default();
    for part in [
        finding.uid.as_str(),
        finding.rule.as_str(),
        finding.container.as_deref().unwrap_or(""),
        occurrence,
    ] {
        h.write(part.as_bytes());
        h.write(&[0]);
    }
    let mut pod = finding.pod.as_str();
    // 253 characters at most: the pod name, a dot, 16 hex digits.
    while pod.len() > 236 {
        let mut end = 236;
        while !pod.is_char_boundary(end) {
            end -= 1;
        }
        pod = &pod[..end];
    }
    format!("{pod}.{:016x}", h.0)
}

/// FNV-1a, 64 bits: stable across releases and platforms (the name must not change when
/// the controller is rebuilt).
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The Event object for `finding`.
pub fn event_for(finding: &Finding, instance: &str, now: jiff::Timestamp) -> Event {
    let mut note = finding.message.clone();
    if note.len() > NOTE_LIMIT {
        let mut end = NOTE_LIMIT;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(finding)),
            namespace: Some(finding.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(instance.into()),
        action: Some(ACTION.into()),
        reason: Some(reason(finding.rule)),
        type_: Some(
            match finding.severity {
                Severity::Info => "Normal",
                Severity::Warning | Severity::Violation => "Warning",
            }
            .into(),
        ),
        note: Some(note),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(finding.namespace.clone()),
            name: Some(finding.pod.clone()),
            uid: Some(finding.uid.clone()),
            resource_version: Some(finding.resource_version.clone()),
            ..ObjectReference::default()
        }),
        ..Event::default()
    }
}

/// Per (pod uid, reason) token buckets.
#[derive(Debug, Default)]
pub struct SpamFilter {
    buckets: HashMap<(String, RuleId), (f64, Instant)>,
}

impl SpamFilter {
    /// Whether an Event for `uid` and `rule` may be written at `now`.
    pub fn allow(&mut self, uid: &str, rule: RuleId, now: Instant) -> bool {
        if self.buckets.len() >= SPAM_KEYS_LIMIT {
            self.prune(now);
        }
        let refill_per_sec = 1.0 / SPAM_REFILL.as_secs_f64();
        let (tokens, last) = self
            .buckets
            .entry((uid.to_string(), rule))
            .or_insert((SPAM_BURST, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * refill_per_sec).min(SPAM_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops full buckets (the same as no bucket); if every bucket is in use, all go
    /// (the filter then forgets recent bursts: the queue and the rate limit still hold).
    fn prune(&mut self, now: Instant) {
        let full_after = SPAM_REFILL.mul_f64(SPAM_BURST);
        self.buckets
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < full_after);
        if self.buckets.len() >= SPAM_KEYS_LIMIT {
            self.buckets.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The Event queue the audit loop fills and the writer task drains.
#[derive(Debug, Default)]
pub struct EventQueue {
    inner: Mutex<QueueState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    spam: SpamFilter,
    /// Findings and when they were queued.
    queue: VecDeque<(Finding, Instant)>,
}

impl EventQueue {
    /// Queues an Event for `finding` unless the spam filter holds it back.
    pub fn submit(&self, finding: Finding, metrics: &Metrics) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !state.spam.allow(&finding.uid, finding.rule, Instant::now()) {
            metrics.suppressed("spam_filter");
            return;
        }
        if state.queue.len() >= QUEUE_LIMIT {
            state.queue.pop_front();
            metrics.events_dropped.inc();
        }
        state.queue.push_back((finding, Instant::now()));
        drop(state);
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Finding> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue
            .pop_front()
            .map(|(f, _)| f)
    }

    /// A standby's queue: Events queued longer ago than [`STANDBY_KEEP`] were the
    /// leader's to write, and go. Returns how many went.
    fn expire(&self, now: Instant) -> usize {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let before = state.queue.len();
        while state
            .queue
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) > STANDBY_KEEP)
        {
            state.queue.pop_front();
        }
        before - state.queue.len()
    }

    fn push_front(&self, finding: Finding) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue
            .push_front((finding, Instant::now()));
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes queued Events at most `qps` per second, until the task is aborted.
pub async fn write_loop(
    client: Client,
    queue: Arc<EventQueue>,
    metrics: Arc<Metrics>,
    qps: f64,
    instance: String,
    leadership: Leadership,
) {
    let interval = Duration::from_secs_f64(1.0 / qps.max(0.01));
    let mut next_slot = tokio::time::Instant::now();
    loop {
        if !leadership.is_leader() {
            for _ in 0..queue.expire(Instant::now()) {
                metrics.suppressed("not_leader");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let Some(finding) = queue.pop() else {
            queue.notify.notified().await;
            continue;
        };
        tokio::time::sleep_until(next_slot).await;
        next_slot = tokio::time::Instant::now() + interval;
        if !leadership.is_leader() {
            // Lost the lease while waiting: not ours to write any more, unless we lead
            // again soon.
            queue.push_front(finding);
            continue;
        }
        let api: Api<Event> = Api::namespaced(client.clone(), &finding.namespace);
        let event = event_for(&finding, &instance, jiff::Timestamp::now());
        write_one(&api, &event, finding.rule.is_state(), &metrics).await;
    }
}

/// Creates the Event. Its name taken means the occurrence is recorded: for a
/// transition, nothing more to write; for a state, which the controller reports again
/// only when it holds again after it stopped (a restarted controller's own states are
/// filtered out before this), the existing Event's series counts the repeat instead of
/// a new object.
async fn write_one(api: &Api<Event>, event: &Event, state: bool, metrics: &Metrics) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=WRITE_ATTEMPTS {
        match api.create(&PostParams::default(), event).await {
            Ok(_) => {
                metrics.events_written.inc();
                return;
            }
            Err(kube::Error::Api(status)) if status.code == 409 && state => {
                match count_repeat(api, event).await {
                    Ok(()) => metrics.events_written.inc(),
                    Err(e) => {
                        tracing::debug!(error = %e, "event series not updated");
                        metrics.event_write_errors.inc()
                    }
                };
                return;
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                metrics.suppressed("already_recorded");
                return;
            }
            Err(kube::Error::Api(status))
                if !matches!(status.code, 429 | 500 | 502 | 503 | 504) =>
            {
                tracing::warn!(code = status.code, message = %status.message, "event rejected");
                break;
            }
            Err(e) if attempt < WRITE_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "event write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                tracing::warn!(error = %e, "event write failed");
            }
        }
    }
    metrics.event_write_errors.inc();
}

/// One more observation of the existing Event's occurrence: `series.count` (2 for the
/// first repeat) and `series.lastObservedTime`.
async fn count_repeat(api: &Api<Event>, event: &Event) -> Result<(), kube::Error> {
    let name = event.metadata.name.as_deref().unwrap_or_default();
    let existing = api.get(name).await?;
    let count = existing.series.as_ref().map_or(1, |s| s.count) + 1;
    let patch = serde_json::json!({
        "series": {
            "count": count,
            // As the API writes a MicroTime (microseconds).
            "lastObservedTime": MicroTime(jiff::Timestamp::now()),
        }
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: RuleId, rv: &str) -> Finding {
        Finding {
            rule,
            severity: rule.severity(),
            namespace: "default".into(),
            pod: "web-0".into(),
            uid: "u-1".into(),
            resource_version: rv.into(),
            container: Some("app".into()),
            message: "m".into(),
            expected: None,
            observed: None,
        }
    }

    #[test]
    fn reasons_are_the_rule_ids_in_pascal_case() {
        assert_eq!(reason(RuleId::RestartAgainstPolicy), "RestartAgainstPolicy");
        assert_eq!(reason(RuleId::OomKilled), "OomKilled");
    }

    #[test]
    fn a_transition_is_named_by_its_snapshot_and_a_state_by_the_pod() {
        let transition = RuleId::ALL
            .iter()
            .copied()
            .find(|r| !r.is_state())
            .expect("a transition rule");
        let state = RuleId::ALL
            .iter()
            .copied()
            .find(|r| r.is_state())
            .expect("a state rule");
        assert_ne!(
            event_name(&finding(transition, "10")),
            event_name(&finding(transition, "11"))
        );
        assert_eq!(
            event_name(&finding(state, "10")),
            event_name(&finding(state, "11"))
        );
        assert_ne!(
            event_name(&finding(state, "10")),
            event_name(&finding(transition, "10"))
        );
        let name = event_name(&finding(state, "1"));
        assert!(name.starts_with("web-0.") && name.len() == "web-0.".len() + 16);
    }

    #[test]
    fn a_long_pod_name_still_gives_a_valid_event_name() {
        let mut f = finding(RuleId::OomKilled, "1");
        f.pod = "p".repeat(253);
        assert_eq!(event_name(&f).len(), 253);
    }

    #[test]
    fn the_spam_filter_allows_a_burst_then_one_per_refill() {
        let mut filter = SpamFilter::default();
        let t0 = Instant::now();
        let allowed = (0..40)
            .filter(|_| filter.allow("u", RuleId::OomKilled, t0))
            .count();
        assert_eq!(allowed, 25);
        assert!(!filter.allow("u", RuleId::OomKilled, t0 + SPAM_REFILL / 2));
        assert!(filter.allow("u", RuleId::OomKilled, t0 + SPAM_REFILL));
        // Another reason of the same pod has its own budget.
        assert!(filter.allow("u", RuleId::RestartAgainstPolicy, t0));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let queue = EventQueue::default();
        let metrics = Metrics::new();
        for i in 0..(QUEUE_LIMIT + 5) {
            let mut f = finding(RuleId::OomKilled, "1");
            // Distinct pods: the spam filter lets each through.
            f.uid = format!("u-{i}");
            queue.submit(f, &metrics);
        }
        assert_eq!(queue.len(), QUEUE_LIMIT);
        assert_eq!(metrics.events_dropped.get(), 5);
        assert_eq!(queue.pop().map(|f| f.uid), Some("u-5".to_string()));
    }
}
