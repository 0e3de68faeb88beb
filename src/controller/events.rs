//! Findings, and what orphan recreation did, as Kubernetes Events (events.k8s.io/v1)
//! regarding the pod.
//!
//! - One Event object per occurrence, named from the pod uid, the rule, the container
//!   and the occurrence (the snapshot's resourceVersion for a transition; the pod itself
//!   for a state, which holds until it stops): a retried or repeated create answers 409
//!   and writes nothing, so a restarted controller never records an occurrence twice.
//! - A spam filter per pod and reason: a burst of [`SPAM_BURST`], then one per
//!   [`SPAM_REFILL`] (client-go's filter, keyed more finely).
//! - At most `qps` writes per second in total, from two queues of at most
//!   [`QUEUE_LIMIT`] Events each that drop their oldest (and count it) when full: violations
//!   and orphan recreation first, warnings and info after, so that a crash-looping fleet's
//!   warnings never delay or push out a violation. Writes run on their own task and never
//!   block the watch; a failed write is retried [`WRITE_ATTEMPTS`] times with back-off.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use podwarden_model::{Finding, RuleId, Severity};

use super::fnv::Fnv64;
use super::orphans::PodRef;
use super::pace::TokenBucket;
use tokio::sync::Notify;

use super::leader::Leadership;
use super::metrics::Metrics;

pub const REPORTING_CONTROLLER: &str = "podwarden.dev/controller";
pub const ACTION: &str = "Audit";
/// The action of orphan recreation's Events.
pub const RECREATE_ACTION: &str = "Recreate";
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
    name_of(
        &finding.pod,
        [
            finding.uid.as_str(),
            finding.rule.as_str(),
            finding.container.as_deref().unwrap_or(""),
            occurrence,
        ],
    )
}

fn name_of(pod: &str, parts: [&str; 4]) -> String {
    let mut h = Fnv64::default();
    for part in parts {
        h.write(part.as_bytes());
        h.write(&[0]);
    }
    let mut pod = pod;
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

/// An Event of orphan recreation (not a rule's finding).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub regarding: PodRef,
    /// `OrphanRecreated`, `OrphanRecreationSkipped`, `OrphanWouldBeRecreated`.
    pub reason: &'static str,
    pub warning: bool,
    /// Written before warnings and info (a recreation, or a loss not recreated); a dry
    /// run's notice waits with the info.
    pub urgent: bool,
    pub note: String,
    /// What tells this occurrence from others of the same pod and reason (the Event's
    /// name is made from it, so the same notice written twice answers 409).
    pub occurrence: String,
}

/// What becomes one Event.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Finding(Finding),
    Notice(Notice),
}

impl Record {
    fn uid(&self) -> &str {
        match self {
            Record::Finding(f) => &f.uid,
            Record::Notice(n) => &n.regarding.uid,
        }
    }

    fn namespace(&self) -> &str {
        match self {
            Record::Finding(f) => &f.namespace,
            Record::Notice(n) => &n.regarding.namespace,
        }
    }

    /// The spam filter's key besides the pod.
    fn kind(&self) -> &'static str {
        match self {
            Record::Finding(f) => f.rule.as_str(),
            Record::Notice(n) => n.reason,
        }
    }

    /// Written before warnings and info: violations and orphan recreation.
    fn urgent(&self) -> bool {
        match self {
            Record::Finding(f) => f.severity >= Severity::Violation,
            Record::Notice(n) => n.urgent,
        }
    }

    /// A state finding: a repeat counts in the existing Event's series.
    fn repeatable(&self) -> bool {
        matches!(self, Record::Finding(f) if f.rule.is_state())
    }

    /// The Event object.
    pub fn event(&self, instance: &str, now: jiff::Timestamp) -> Event {
        match self {
            Record::Finding(f) => event_for(f, instance, now),
            Record::Notice(n) => notice_event(n, instance, now),
        }
    }
}

/// The Event object for `finding`.
pub fn event_for(finding: &Finding, instance: &str, now: jiff::Timestamp) -> Event {
    let regarding = ObjectReference {
        resource_version: Some(finding.resource_version.clone()),
        ..pod_reference(&finding.namespace, &finding.pod, &finding.uid)
    };
    let warning = finding.severity != Severity::Info;
    Event {
        reason: Some(reason(finding.rule)),
        action: Some(ACTION.into()),
        ..base_event(
            event_name(finding),
            regarding,
            warning,
            &finding.message,
            instance,
            now,
        )
    }
}

fn notice_event(notice: &Notice, instance: &str, now: jiff::Timestamp) -> Event {
    let r = &notice.regarding;
    let name = name_of(&r.name, [&r.uid, notice.reason, "", &notice.occurrence]);
    Event {
        reason: Some(notice.reason.into()),
        action: Some(RECREATE_ACTION.into()),
        ..base_event(
            name,
            pod_reference(&r.namespace, &r.name, &r.uid),
            notice.warning,
            &notice.note,
            instance,
            now,
        )
    }
}

fn pod_reference(namespace: &str, name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        ..ObjectReference::default()
    }
}

fn base_event(
    name: String,
    regarding: ObjectReference,
    warning: bool,
    note: &str,
    instance: &str,
    now: jiff::Timestamp,
) -> Event {
    let mut end = note.len().min(NOTE_LIMIT);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(instance.into()),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        note: Some(note[..end].to_string()),
        regarding: Some(regarding),
        ..Event::default()
    }
}

/// Per (pod uid, reason) token buckets.
#[derive(Debug, Default)]
pub struct SpamFilter {
    buckets: HashMap<(String, &'static str), (f64, Instant)>,
}

impl SpamFilter {
    /// Whether an Event for `uid` and `kind` (a rule id or a notice's reason) may be
    /// written at `now`.
    pub fn allow(&mut self, uid: &str, kind: &'static str, now: Instant) -> bool {
        if self.buckets.len() >= SPAM_KEYS_LIMIT {
            self.prune(now);
        }
        let refill_per_sec = 1.0 / SPAM_REFILL.as_secs_f64();
        let (tokens, last) = self
            .buckets
            .entry((uid.to_string(), kind))
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
    /// Violations and notices, and when they were queued.
    urgent: VecDeque<(Record, Instant)>,
    /// Warnings and info.
    other: VecDeque<(Record, Instant)>,
}

impl QueueState {
    fn lane(&mut self, urgent: bool) -> &mut VecDeque<(Record, Instant)> {
        if urgent {
            &mut self.urgent
        } else {
            &mut self.other
        }
    }
}

impl EventQueue {
    /// Queues an Event for `finding` unless the spam filter holds it back.
    pub fn submit(&self, finding: Finding, metrics: &Metrics) {
        self.submit_record(Record::Finding(finding), metrics);
    }

    /// Queues an Event of orphan recreation.
    pub fn submit_notice(&self, notice: Notice, metrics: &Metrics) {
        self.submit_record(Record::Notice(notice), metrics);
    }

    fn submit_record(&self, record: Record, metrics: &Metrics) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !state
            .spam
            .allow(record.uid(), record.kind(), Instant::now())
        {
            metrics.suppressed("spam_filter");
            return;
        }
        let lane = state.lane(record.urgent());
        if lane.len() >= QUEUE_LIMIT {
            lane.pop_front();
            metrics.events_dropped.inc();
        }
        lane.push_back((record, Instant::now()));
        drop(state);
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Record> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state
            .urgent
            .pop_front()
            .or_else(|| state.other.pop_front())
            .map(|(r, _)| r)
    }

    /// A standby's queue: Events queued longer ago than [`STANDBY_KEEP`] were the
    /// leader's to write, and go. Returns how many went.
    fn expire(&self, now: Instant) -> usize {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        let mut gone = 0;
        for lane in [&mut state.urgent, &mut state.other] {
            while lane
                .front()
                .is_some_and(|(_, at)| now.saturating_duration_since(*at) > STANDBY_KEEP)
            {
                lane.pop_front();
                gone += 1;
            }
        }
        gone
    }

    fn push_front(&self, record: Record) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let urgent = record.urgent();
        state.lane(urgent).push_front((record, Instant::now()));
    }

    pub fn len(&self) -> usize {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.urgent.len() + state.other.len()
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
    // One write at a time: no burst.
    let mut bucket = TokenBucket::new(qps, 1.0, tokio::time::Instant::now());
    loop {
        if !leadership.is_leader() {
            for _ in 0..queue.expire(Instant::now()) {
                metrics.suppressed("not_leader");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let Some(record) = queue.pop() else {
            queue.notify.notified().await;
            continue;
        };
        tokio::time::sleep_until(bucket.take(tokio::time::Instant::now())).await;
        if !leadership.is_leader() {
            // Lost the lease while waiting: not ours to write any more, unless we lead
            // again soon.
            queue.push_front(record);
            continue;
        }
        let api: Api<Event> = Api::namespaced(client.clone(), record.namespace());
        let event = record.event(&instance, jiff::Timestamp::now());
        write_one(&api, &event, record.repeatable(), &metrics).await;
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
        assert_eq!(reason(RuleId::RestartCountReset), "RestartCountReset");
        assert_eq!(reason(RuleId::ReadyDespiteGate), "ReadyDespiteGate");
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
            .filter(|_| filter.allow("u", RuleId::OomKilled.as_str(), t0))
            .count();
        assert_eq!(allowed, 25);
        assert!(!filter.allow("u", RuleId::OomKilled.as_str(), t0 + SPAM_REFILL / 2));
        assert!(filter.allow("u", RuleId::OomKilled.as_str(), t0 + SPAM_REFILL));
        // Another reason of the same pod has its own budget.
        assert!(filter.allow("u", RuleId::RestartAgainstPolicy.as_str(), t0));
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
        assert_eq!(
            queue.pop().map(|r| r.uid().to_string()),
            Some("u-5".to_string())
        );
    }

    #[test]
    fn warnings_never_delay_or_push_out_a_violation() {
        let queue = EventQueue::default();
        let metrics = Metrics::new();
        let warning = RuleId::ALL
            .iter()
            .copied()
            .find(|r| r.severity() == Severity::Warning)
            .expect("a warning rule");
        for i in 0..(QUEUE_LIMIT + 5) {
            let mut f = finding(warning, "1");
            f.uid = format!("w-{i}");
            queue.submit(f, &metrics);
        }
        let mut violation = finding(RuleId::RestartCountDecreased, "1");
        violation.uid = "v".into();
        queue.submit(violation, &metrics);
        queue.submit_notice(
            Notice {
                regarding: PodRef {
                    namespace: "default".into(),
                    name: "web".into(),
                    uid: "n".into(),
                },
                reason: "OrphanRecreated",
                warning: false,
                urgent: true,
                note: "recreated".into(),
                occurrence: "1".into(),
            },
            &metrics,
        );
        // The warnings' own lane dropped its oldest; the violation and the notice are
        // written first.
        assert_eq!(metrics.events_dropped.get(), 5);
        assert_eq!(queue.pop().map(|r| r.uid().to_string()), Some("v".into()));
        assert_eq!(queue.pop().map(|r| r.uid().to_string()), Some("n".into()));
        assert_eq!(queue.pop().map(|r| r.uid().to_string()), Some("w-5".into()));
    }

    #[test]
    fn a_notice_names_its_event_by_pod_reason_and_occurrence() {
        let notice = |occurrence: &str| Notice {
            regarding: PodRef {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u".into(),
            },
            reason: "OrphanRecreationSkipped",
            warning: true,
            urgent: true,
            note: "x".repeat(2000),
            occurrence: occurrence.into(),
        };
        let now = jiff::Timestamp::UNIX_EPOCH;
        let a = Record::Notice(notice("NoEvidence")).event("i", now);
        let again = Record::Notice(notice("NoEvidence")).event("i", now);
        let b = Record::Notice(notice("BudgetExhausted")).event("i", now);
        assert_eq!(a.metadata.name, again.metadata.name);
        assert_ne!(a.metadata.name, b.metadata.name);
        assert_eq!(a.type_.as_deref(), Some("Warning"));
        assert_eq!(a.action.as_deref(), Some(RECREATE_ACTION));
        assert_eq!(a.note.as_ref().map(String::len), Some(NOTE_LIMIT));
    }
}
