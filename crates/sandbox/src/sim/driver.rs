//! The simulation running beside the sandbox API server: [`Simulation::start`] serves
//! the API on a store stamped by the simulated clock and drives the [`Cluster`], either
//! in real time (a driver thread steps it at `speed`) or stepped by hand
//! ([`SimHandle::advance`], for tests). Admin endpoints:
//!
//! - `GET  /sandbox/v1/nodes`: each simulated node's fault state;
//! - `POST /sandbox/v1/nodes/{name}/faults` `{"fault": "partition"}` (see [`NodeFault`]);
//! - `POST /sandbox/v1/pods/{namespace}/{name}/inject` `{"rule": "terminal-phase-ready"}`;
//! - `GET  /sandbox/v1/ground-truth`: the injections, JSON lines;
//! - `GET  /sandbox/v1/clock`; `POST /sandbox/v1/clock/advance` `{"seconds": 30}`
//!   (stepped clock only);
//! - `GET  /sandbox/v1/scenario`: what the played scenario's steps did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::api::http::json_response;
use crate::api::{Clock, Sandbox, SandboxConfig, SandboxError, SandboxHandle, Store};

use super::clock::SimClock;
use super::cluster::Cluster;
use super::config::{GroundTruthEntry, SimConfig};
use super::error::SimError;
use super::node_faults::NodeFault;
use super::world::NodeSim;

/// Longest wall-clock sleep of the real-time driver between steps: how late a change
/// made through the API can be noticed.
pub const DRIVER_TICK: Duration = Duration::from_millis(10);

/// Entry point: `Simulation::start(sandbox_config, sim_config).await?`.
pub struct Simulation;

impl Simulation {
    /// Starts the API server and the simulated cluster on the current tokio runtime.
    pub async fn start(
        mut sandbox: SandboxConfig,
        sim: SimConfig,
    ) -> Result<SimHandle, StartError> {
        let start = sim.start.unwrap_or_else(|| {
            jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        });
        let clock = Arc::new(match sim.speed {
            Some(speed) => SimClock::real_time(start, speed),
            None => SimClock::stepped(start),
        });
        sandbox.store.clock = clock.clone();
        let store = Store::new(sandbox.store.clone());
        let cluster = Cluster::new(store.clone(), clock.clone(), &sim)?;
        let cluster = Arc::new(Mutex::new(cluster));
        sandbox.extra_routes = Some(admin_routes(AdminState {
            cluster: cluster.clone(),
            clock: clock.clone(),
        }));
        let server = Sandbox::start_with_store(sandbox, store).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let driver = if clock.is_stepped() {
            None
        } else {
            let (cluster, clock, stop) = (cluster.clone(), clock.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name("sandbox-sim".into())
                    .spawn(move || drive(&cluster, &clock, &stop))
                    .map_err(StartError::Thread)?,
            )
        };
        Ok(SimHandle {
            server: Some(server),
            cluster,
            clock,
            stop,
            driver,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("cannot set up the simulated cluster: {0}")]
    Sim(#[from] SimError),
    #[error("cannot start the simulation thread: {0}")]
    Thread(std::io::Error),
}

/// The real-time driver: steps the cluster to the clock's "now", then sleeps until the
/// next timer or one tick, whichever is sooner; stops when `stop` is set.
fn drive(cluster: &Mutex<Cluster>, clock: &SimClock, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let now = clock.now();
        let next = {
            let mut c = lock(cluster);
            c.step_until(now);
            c.next_timer_at()
        };
        let wait = next
            .map(|at| {
                let ahead = at.duration_since(clock.now());
                let ahead = Duration::try_from(ahead).unwrap_or(Duration::ZERO);
                clock.wall_time(ahead)
            })
            .unwrap_or(DRIVER_TICK)
            .min(DRIVER_TICK);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

fn lock(cluster: &Mutex<Cluster>) -> MutexGuard<'_, Cluster> {
    cluster.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running simulated cluster and its API server.
pub struct SimHandle {
    server: Option<SandboxHandle>,
    cluster: Arc<Mutex<Cluster>>,
    clock: Arc<SimClock>,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The API server (URL, client, kubeconfig, API faults).
    pub fn sandbox(&self) -> &SandboxHandle {
        // Set from start until shutdown, which consumes the handle.
        self.server.as_ref().expect("server present until shutdown")
    }

    pub fn client(&self) -> Result<kube::Client, SandboxError> {
        self.sandbox().client()
    }

    pub fn store(&self) -> &Store {
        self.sandbox().store()
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    pub fn clock(&self) -> &Arc<SimClock> {
        &self.clock
    }

    /// Exclusive access to the cluster (the driver waits meanwhile).
    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        lock(&self.cluster)
    }

    /// Stepped clock: runs everything due in the next `d` of simulated time.
    pub fn advance(&self, d: Duration) -> Result<(), SimError> {
        advance(&self.cluster, &self.clock, d)
    }

    /// Stepped clock: handles what is waiting now without moving time.
    pub fn settle(&self) -> Result<(), SimError> {
        self.advance(Duration::ZERO)
    }

    pub fn apply_fault(&self, node: &str, fault: NodeFault) -> Result<NodeSim, SimError> {
        self.cluster().apply_fault(node, fault)
    }

    pub fn inject(
        &self,
        namespace: &str,
        pod: &str,
        rule: &str,
    ) -> Result<GroundTruthEntry, SimError> {
        self.cluster().inject(namespace, pod, rule)
    }

    /// Plays a scenario's steps from now on (see [`super::scenario`]).
    pub fn play(&self, steps: Vec<super::scenario::Planned>) {
        self.cluster().play(steps);
    }

    pub fn ground_truth(&self) -> Vec<GroundTruthEntry> {
        self.cluster().ground_truth().cloned().collect()
    }

    /// Stops the driver and the server.
    pub async fn shutdown(mut self) {
        self.stop_driver();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    fn stop_driver(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.driver.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_driver();
    }
}

fn advance(cluster: &Mutex<Cluster>, clock: &SimClock, d: Duration) -> Result<(), SimError> {
    if !clock.is_stepped() {
        return Err(SimError::NotStepped);
    }
    let span = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    let until = clock.now().saturating_add(span).unwrap_or(clock.now());
    lock(cluster).step_until(until);
    Ok(())
}

// ---- admin endpoints ---------------------------------------------------------------

#[derive(Clone)]
struct AdminState {
    cluster: Arc<Mutex<Cluster>>,
    clock: Arc<SimClock>,
}

fn admin_routes(state: AdminState) -> Router {
    Router::new()
        .route("/sandbox/v1/nodes", get(nodes_get))
        .route("/sandbox/v1/nodes/{name}/faults", post(node_fault))
        .route(
            "/sandbox/v1/pods/{namespace}/{name}/inject",
            post(pod_inject),
        )
        .route("/sandbox/v1/ground-truth", get(ground_truth))
        .route("/sandbox/v1/clock", get(clock_get))
        .route("/sandbox/v1/clock/advance", post(clock_advance))
        .route("/sandbox/v1/scenario", get(scenario_get))
        .with_state(state)
}

/// A `Status` failure in the API server's shape.
fn sim_error(e: &SimError) -> Response {
    let (code, reason) = match e {
        SimError::UnknownNode(_) | SimError::UnknownPod { .. } => {
            (StatusCode::NOT_FOUND, "NotFound")
        }
        SimError::UnknownRule(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
        SimError::NodeDeleted(_) | SimError::CannotInject { .. } | SimError::NotStepped => {
            (StatusCode::CONFLICT, "Conflict")
        }
        SimError::Api(api) => return crate::api::http::error_response(api),
    };
    bad(code, reason, &e.to_string())
}

fn bad(code: StatusCode, reason: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

/// The field `key` of the JSON body, or a 400 naming what is wrong.
fn body_field(body: &Bytes, key: &str, example: &str) -> Result<Value, Box<Response>> {
    let fail = |message: String| Box::new(bad(StatusCode::BAD_REQUEST, "BadRequest", &message));
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| fail(format!("the body must be JSON like {example}: {e}")))?;
    match value.get(key) {
        Some(v) => Ok(v.clone()),
        None => Err(fail(format!(
            "the body has no {key:?} field; expected JSON like {example}"
        ))),
    }
}

async fn nodes_get(State(s): State<AdminState>) -> Response {
    let c = lock(&s.cluster);
    json_response(StatusCode::OK, &json!({"nodes": c.world.node_sims}))
}

async fn node_fault(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let example = r#"{"fault": "partition"}"#;
    let fault = match body_field(&body, "fault", example) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let fault = match fault.as_str().map(str::parse::<NodeFault>) {
        Some(Ok(f)) => f,
        Some(Err(why)) => return bad(StatusCode::BAD_REQUEST, "BadRequest", &why),
        None => {
            return bad(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "\"fault\" must be a string",
            );
        }
    };
    let result = lock(&s.cluster).apply_fault(&name, fault);
    match result {
        Ok(state) => json_response(
            StatusCode::OK,
            &json!({"node": name, "fault": fault, "state": state}),
        ),
        Err(e) => sim_error(&e),
    }
}

async fn pod_inject(
    State(s): State<AdminState>,
    Path((namespace, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let rule = match body_field(&body, "rule", r#"{"rule": "terminal-phase-ready"}"#) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(rule) = rule.as_str() else {
        return bad(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "\"rule\" must be a string",
        );
    };
    let result = lock(&s.cluster).inject(&namespace, &name, rule);
    match result {
        Ok(entry) => json_response(StatusCode::OK, &json!(entry)),
        Err(e) => sim_error(&e),
    }
}

async fn ground_truth(State(s): State<AdminState>) -> Response {
    let mut out = String::new();
    for entry in lock(&s.cluster).ground_truth() {
        out.push_str(&json!(entry).to_string());
        out.push('\n');
    }
    let mut r = Response::new(axum::body::Body::from(out));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/jsonl"),
    );
    r
}

async fn scenario_get(State(s): State<AdminState>) -> Response {
    let c = lock(&s.cluster);
    json_response(StatusCode::OK, &json!({"log": c.scenario_log}))
}

async fn clock_get(State(s): State<AdminState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"now": crate::api::object::format_micro_time(s.clock.now()),
                "stepped": s.clock.is_stepped(), "speed": s.clock.speed()}),
    )
}

async fn clock_advance(State(s): State<AdminState>, body: Bytes) -> Response {
    let seconds = match body_field(&body, "seconds", r#"{"seconds": 30}"#) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(seconds) = seconds
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0 * 365.0)
    else {
        return bad(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "\"seconds\" must be a number from 0 to 31536000",
        );
    };
    let (cluster, clock) = (s.cluster.clone(), s.clock.clone());
    let result = tokio::task::spawn_blocking(move || {
        advance(&cluster, &clock, Duration::from_secs_f64(seconds))
    })
    .await;
    match result {
        Ok(Ok(())) => clock_get(State(s)).await,
        Ok(Err(e)) => sim_error(&e),
        Err(e) => bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        ),
    }
}
