//! The sandbox cluster: a Kubernetes API server over real HTTP, in memory, in one
//! process. It is the test bed of every controller test, the load generator of the
//! benchmarks and the embedded cluster the demo runs on; `kube::Client`, the
//! kube-runtime watcher and kubectl talk to it as to a real cluster.
//!
//! - [`store`]: objects, the cluster-wide resourceVersion, history window, watches;
//!   the in-process API simulated components use.
//! - [`http`]: REST routing, content negotiation, watch streaming, admin endpoints.
//! - [`admission`], [`patch`], [`apply`], [`custom_resources`], [`events`]: what the server does to
//!   objects on the way in; [`labels`]: label selectors of stored objects.
//! - [`tables`], [`discovery`]: what kubectl reads.
//! - [`faults`]: injected faults and their counters.
//! - [`server`], [`kubeconfig`]: the process serving it.
//! - [`auth`]: HTTPS, bearer tokens (admin, ServiceAccount TokenRequests) and RBAC,
//!   when the sandbox is started with auth on.
//!
//! # Faults
//! Through [`SandboxHandle::faults`] or over HTTP:
//! - `GET /sandbox/v1/faults`: standing faults, counters, open watches;
//! - `PUT /sandbox/v1/faults` with a [`FaultConfig`] (`throttleFraction`, `errorFraction`,
//!   `unavailableFraction`, `retryAfterSeconds`, `latencyMillis`,
//!   `closeWatchesAfterEvents`); `DELETE` clears them;
//! - `POST /sandbox/v1/faults/close-watches`, `POST /sandbox/v1/faults/gone?count=N`
//!   (the next N watches get 410 Expired), `POST /sandbox/v1/faults/restart` (every
//!   connection dropped, data kept).
//!
//! # Where it differs from a real cluster
//! - Deleting a namespace removes its objects at once (no Terminating phase, no
//!   namespace controller); deleting a CRD removes its custom resources at once.
//! - `propagationPolicy` is accepted and ignored (there is no garbage collector).
//! - `fieldValidation=Strict` detects unknown fields of custom resources only.
//! - CRD validation covers types, `required`, `enum`, `minimum`/`maximum`; not
//!   `pattern` nor CEL rules.
//! - Discovery is the plain (non-aggregated) form; OpenAPI v3 documents carry the
//!   operations kubectl consults, not the schemas; no OpenAPI v2.
//! - Loopback HTTP without TLS or authentication by default; with auth on, HTTPS and
//!   bearer tokens only (no client certificates, no anonymous requests: a request
//!   without a token is 401 even for `/healthz`, as `--anonymous-auth=false`), RBAC
//!   without ClusterRole aggregation, and no admission check that a Role grants no
//!   more than its creator holds (no escalation prevention).
//! - Deployments, Services, NetworkPolicies and RBAC objects are stored, defaulted,
//!   validated and printed, and nothing acts on them: no ReplicaSets or pods for a
//!   Deployment (its status stays empty), no endpoints, node ports or load balancers
//!   for a Service (cluster IPs are allocated), no enforcement of policies; roles
//!   and bindings are enforced only with auth on.

pub mod admission;
pub mod apply;
pub mod auth;
pub mod clock;
pub mod custom_resources;
pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
pub mod fields;
pub mod http;
pub mod kubeconfig;
pub mod labels;
pub mod lazy;
pub mod object;
pub mod options;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod server;
pub mod store;
pub mod tables;
pub mod typed;
pub mod watch;

pub use auth::AuthConfig;
pub use clock::{Clock, SharedClock, SystemClock};
pub use error::{ApiError, Cause};
pub use faults::{FaultConfig, FaultCounts, Faults};
pub use object::StoredObject;
pub use options::{DeleteOptions, ListOptions, Subresource, WatchOptions, WriteOptions};
pub use patch::Patch;
pub use resources::{Flavor, ResourceType};
pub use server::{Sandbox, SandboxConfig, SandboxError, SandboxHandle};
pub use store::{Deleted, ListPage, Store, StoreConfig};
pub use typed::TypedApi;
pub use watch::{Watch, WatchEvent};
