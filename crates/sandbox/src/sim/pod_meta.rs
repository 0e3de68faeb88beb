//! The metadata of a pod the scheduler and the control plane read.

use serde::Deserialize;

/// Generation, deletion and creation times (unknown fields are skipped while parsing).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodMeta {
    pub generation: Option<i64>,
    pub deletion_timestamp: Option<String>,
    pub creation_timestamp: Option<String>,
}
