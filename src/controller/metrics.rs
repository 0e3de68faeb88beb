//! The controller's Prometheus metrics. Every family has a bounded label set: rule ids
//! and severities are closed enums, reasons are the controller's own constants.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub rule: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Why an Event was not written: the spam filter held it back, its name was taken (the
/// occurrence is recorded already), or this replica does not hold the lease.
pub const SUPPRESSED_REASONS: [&str; 3] = ["spam_filter", "already_recorded", "not_leader"];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub pod_watch_events: Counter,
    pub findings: Family<FindingLabels, Counter>,
    pub events_written: Counter,
    pub events_suppressed: Family<ReasonLabels, Counter>,
    pub events_dropped: Counter,
    pub event_write_errors: Counter,
    pub relists: Counter,
    /// Pods forgotten because a relist no longer had them (deleted during a gap).
    pub relist_gone: Counter,
    pub cached_pods: Gauge,
    /// 1 while this replica holds the lease (or runs alone).
    pub leader: Gauge,
    pub duplicate_snapshots: Counter,
    pub stale_snapshots: Counter,
    pub status_writes: Counter,
    pub status_write_errors: Counter,
    pub audit_latency: Histogram,
    /// Replacements created (by this replica).
    pub orphans_recreated: Counter,
    /// Losses not recreated, by [`podwarden_model::Skip`] reason.
    pub orphans_skipped: Family<ReasonLabels, Counter>,
    /// Losses a dry run (`mode: Audit`, `--dry-run`) would have recreated.
    pub orphans_dry_run: Counter,
    /// Lost pods waiting for evidence or backoff.
    pub orphans_waiting: Gauge,
    /// From the loss decided to the replacement created.
    pub orphan_create_latency: Histogram,
    /// Orphan-guard finalizers added or released.
    pub guard_writes: Counter,
    pub guard_write_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::for_shard(None)
    }

    /// Findings counted so far, by rule (rules without any absent).
    pub fn findings_by_rule(&self) -> std::collections::BTreeMap<podwarden_model::RuleId, u64> {
        podwarden_model::RuleId::ALL
            .iter()
            .map(|r| {
                let labels = FindingLabels {
                    rule: r.as_str().into(),
                    severity: r.severity().as_str().into(),
                };
                (*r, self.findings.get(&labels).map_or(0, |c| c.get()))
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Metrics whose every series carries `shard="i/n"` when the controller runs in
    /// shards.
    pub fn for_shard(shard: Option<super::shard::Shard>) -> Self {
        let mut registry = match shard {
            None => Registry::with_prefix("podwarden"),
            Some(s) => Registry::with_prefix_and_labels(
                "podwarden",
                [(
                    std::borrow::Cow::Borrowed("shard"),
                    std::borrow::Cow::Owned(s.key()),
                )]
                .into_iter(),
            ),
        };
        let m = Metrics {
            pod_watch_events: Counter::default(),
            findings: Family::default(),
            events_written: Counter::default(),
            events_suppressed: Family::default(),
            events_dropped: Counter::default(),
            event_write_errors: Counter::default(),
            relists: Counter::default(),
            relist_gone: Counter::default(),
            cached_pods: Gauge::default(),
            leader: Gauge::default(),
            duplicate_snapshots: Counter::default(),
            stale_snapshots: Counter::default(),
            status_writes: Counter::default(),
            status_write_errors: Counter::default(),
            // 100 µs to ~13 s.
            audit_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            orphans_recreated: Counter::default(),
            orphans_skipped: Family::default(),
            orphans_dry_run: Counter::default(),
            orphans_waiting: Gauge::default(),
            // 1 ms to ~65 s.
            orphan_create_latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            guard_writes: Counter::default(),
            guard_write_errors: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "pod_watch_events",
            "Pod watch events received (relisted pods included)",
            m.pod_watch_events.clone(),
        );
        registry.register(
            "findings",
            "Findings by rule and severity",
            m.findings.clone(),
        );
        registry.register(
            "events_written",
            "Kubernetes Events created or updated",
            m.events_written.clone(),
        );
        registry.register(
            "events_suppressed",
            "Events not written: spam filter, already recorded",
            m.events_suppressed.clone(),
        );
        registry.register(
            "events_dropped",
            "Events dropped because the write queue was full (oldest first)",
            m.events_dropped.clone(),
        );
        registry.register(
            "event_write_errors",
            "Event writes that failed after their retries",
            m.event_write_errors.clone(),
        );
        registry.register(
            "relists",
            "Full lists of pods after the first",
            m.relists.clone(),
        );
        registry.register(
            "relist_gone_pods",
            "Pods a relist no longer had (deleted while the watch was down)",
            m.relist_gone.clone(),
        );
        registry.register(
            "cached_pods",
            "Pods the controller tracks",
            m.cached_pods.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease and writes",
            m.leader.clone(),
        );
        registry.register(
            "duplicate_snapshots",
            "Pod states seen again (relists) and not audited again",
            m.duplicate_snapshots.clone(),
        );
        registry.register(
            "stale_snapshots",
            "Pod states older than one already seen, not audited",
            m.stale_snapshots.clone(),
        );
        registry.register(
            "status_writes",
            "Policy status writes",
            m.status_writes.clone(),
        );
        registry.register(
            "status_write_errors",
            "Policy status writes that failed",
            m.status_write_errors.clone(),
        );
        registry.register(
            "audit_latency_seconds",
            "From a pod watch event received to its findings",
            m.audit_latency.clone(),
        );
        registry.register(
            "orphans_recreated",
            "Orphaned pods recreated",
            m.orphans_recreated.clone(),
        );
        registry.register(
            "orphans_skipped",
            "Lost orphaned pods not recreated, by reason",
            m.orphans_skipped.clone(),
        );
        registry.register(
            "orphans_dry_run",
            "Lost orphaned pods a dry run would have recreated",
            m.orphans_dry_run.clone(),
        );
        registry.register(
            "orphans_waiting",
            "Lost orphaned pods waiting for fencing evidence or backoff",
            m.orphans_waiting.clone(),
        );
        registry.register(
            "orphan_create_latency_seconds",
            "From a loss decided to its replacement created",
            m.orphan_create_latency.clone(),
        );
        registry.register(
            "guard_writes",
            "Orphan-guard finalizers added or released",
            m.guard_writes.clone(),
        );
        registry.register(
            "guard_write_errors",
            "Orphan-guard finalizer writes that failed (retried)",
            m.guard_write_errors.clone(),
        );
        // Every series exists from the start, at 0: a rate or an alert on a series that
        // appears only with its first increment misses that increment.
        for rule in podwarden_model::RuleId::ALL {
            m.findings.get_or_create_owned(&FindingLabels {
                rule: rule.as_str().into(),
                severity: rule.severity().as_str().into(),
            });
        }
        for skip in podwarden_model::Skip::ALL {
            m.orphans_skipped.get_or_create_owned(&ReasonLabels {
                reason: skip.reason().into(),
            });
        }
        for reason in SUPPRESSED_REASONS {
            m.events_suppressed.get_or_create_owned(&ReasonLabels {
                reason: reason.into(),
            });
        }
        Metrics { registry, ..m }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn suppressed(&self, reason: &str) {
        self.events_suppressed
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }
}
