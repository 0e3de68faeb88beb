//! The sandbox cluster: a Kubernetes API server over real HTTP, in memory, in one
//! process. It is the test bed of every controller test, the load generator of the
//! benchmarks and the embedded cluster the demo runs on; `kube::Client`, the
//! kube-runtime watcher and kubectl talk to it as to a real cluster.
//!
//! - [`store`]: objects, the cluster-wide resourceVersion, history window, watches;
//!   the in-process API simulated components use.
//! - [`http`]: REST routing, content negotiation, watch streaming, admin endpoints.
//! - [`admission`], [`patch`], [`apply`], [`crd`], [`events`]: what the server does to
//!   objects on the way in.
//! - [`tables`], [`discovery`]: what kubectl reads.
//! - [`faults`]: injected faults and their counters.
//! - [`server`], [`kubeconfig`], [`cli`]: the process and `podwarden sandbox`.

pub mod admission;
pub mod apply;
pub mod cli;
pub mod clock;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
pub mod fields;
pub mod http;
pub mod kubeconfig;
pub mod object;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod server;
pub mod store;
pub mod tables;
pub mod typed;
pub mod watch;

pub use admission::Subresource;
pub use clock::{Clock, SharedClock, SystemClock};
pub use error::{ApiError, Cause};
pub use faults::{FaultConfig, FaultCounts, Faults};
pub use object::StoredObject;
pub use patch::Patch;
pub use resources::{Flavor, ResourceType};
pub use server::{Sandbox, SandboxConfig, SandboxError, SandboxHandle};
pub use store::{
    DeleteOptions, Deleted, ListOptions, ListPage, Store, StoreConfig, WatchOptions, WriteOptions,
};
pub use typed::TypedApi;
pub use watch::{Watch, WatchEvent};
