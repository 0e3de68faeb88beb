//! Leader election on a `coordination.k8s.io/v1` Lease, with controller-runtime's
//! timings: a 15 s lease, renewed every 2 s, given up when it could not be renewed for
//! 10 s. Every replica watches and audits; only the holder writes (Events, policy
//! status). A replica that loses the lease, or cannot renew it in time, stops writing
//! at once: the writers read [`Leadership::is_leader`] before each write.
//!
//! Acquiring: the Lease is created if absent; taken over when its holder has not
//! renewed it within its duration; every update carries the resourceVersion read, so of
//! two replicas racing for an expired lease one wins and the other gets 409. A replica
//! that stops releases the lease (holder cleared) so that another takes over at its
//! next try instead of after the whole duration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Which Lease, and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub timings: LeaseTimings,
}

/// How long a lease lasts, how long a holder keeps leading without renewing it, and how
/// often each replica tries. The renew deadline must be shorter than the lease (a holder
/// stops writing before another may take over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// Whole seconds: the Lease records it as `leaseDurationSeconds`.
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    /// controller-runtime's.
    fn default() -> Self {
        LeaseTimings {
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
        }
    }
}

/// Whether this replica may write. Without leader election it always may.
#[derive(Debug, Clone)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// Always the leader (one replica, no election).
    pub fn sole() -> Self {
        Leadership(Arc::new(AtomicBool::new(true)))
    }

    fn standby() -> Self {
        Leadership(Arc::new(AtomicBool::new(false)))
    }

    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, leader: bool) {
        self.0.store(leader, Ordering::Release);
    }
}

/// What one try found.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Held,
    NotHeld,
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    leadership: Leadership,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> (Self, Leadership) {
        let leadership = Leadership::standby();
        let api = Api::namespaced(client, &config.namespace);
        (
            Elector {
                api,
                config,
                leadership: leadership.clone(),
            },
            leadership,
        )
    }

    /// Tries every retry period to acquire or renew, until the task is aborted; a
    /// holder that has not renewed within the renew deadline steps down. `on_change` is
    /// told each change of leadership.
    pub async fn run(self, on_change: impl Fn(bool)) {
        let mut last_renewed: Option<tokio::time::Instant> = None;
        loop {
            let outcome = self.try_once().await;
            let now = tokio::time::Instant::now();
            let leader = match outcome {
                Ok(Outcome::Held) => {
                    last_renewed = Some(now);
                    true
                }
                Ok(Outcome::NotHeld) => {
                    last_renewed = None;
                    false
                }
                // Could not tell: keep leading only within the renew deadline.
                Err(e) => {
                    tracing::debug!(error = %e, "lease try failed");
                    last_renewed
                        .is_some_and(|t| now.duration_since(t) < self.config.timings.renew_deadline)
                }
            };
            if leader != self.leadership.is_leader() {
                self.leadership.set(leader);
                tracing::info!(
                    identity = %self.config.identity,
                    leader,
                    "leadership changed"
                );
                on_change(leader);
            }
            tokio::time::sleep(self.config.timings.retry_period).await;
        }
    }

    async fn try_once(&self) -> Result<Outcome, kube::Error> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Outcome::Held),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::NotHeld),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let mine = holder == self.config.identity;
        if !mine && !holder.is_empty() && !expired(&spec, now) {
            return Ok(Outcome::NotHeld);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine {
            spec.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(self.spec(now, acquired, transitions));
        // The resourceVersion read makes this a compare-and-swap.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Outcome::Held),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::NotHeld),
            Err(e) => Err(e),
        }
    }

    fn spec(
        &self,
        now: jiff::Timestamp,
        acquired: Option<MicroTime>,
        transitions: i32,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                self.config.timings.lease_duration.as_secs().clamp(1, 3600) as i32,
            ),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the lease up if this replica holds it (on a clean stop).
    pub async fn release(api: &Api<Lease>, config: &LeaseConfig) {
        let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        if let Err(e) = api
            .replace(&config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::debug!(error = %e, "lease release failed; it expires instead");
        }
    }

    pub fn api(&self) -> Api<Lease> {
        self.api.clone()
    }
}

/// Whether a lease's holder has not renewed it within its duration.
fn expired(spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
    let duration = spec
        .lease_duration_seconds
        .map_or(LEASE_DURATION.as_secs() as i64, i64::from);
    match &spec.renew_time {
        Some(MicroTime(renewed)) => now.as_second() - renewed.as_second() >= duration,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_ago: i64, duration: i32) -> LeaseSpec {
        let now = jiff::Timestamp::now();
        LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                jiff::Timestamp::from_second(now.as_second() - renewed_ago).expect("time"),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_when_its_holder_missed_its_duration() {
        let now = jiff::Timestamp::now();
        assert!(!expired(&spec(14, 15), now));
        assert!(expired(&spec(15, 15), now));
        assert!(expired(&spec(3, 2), now), "the lease's own duration counts");
        assert!(expired(&LeaseSpec::default(), now), "never renewed");
    }
}
