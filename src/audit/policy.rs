//! Applying a PodLifecyclePolicy file offline: its namespace, selector and rule settings.

use std::path::{Path, PathBuf};

use super::Scope;
use podwarden_model::RuleSettings;
use podwarden_model::policy::{PodLifecyclePolicy, PolicyError};

/// A policy file that cannot be applied: which file, and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a PodLifecyclePolicy, or one whose rule settings or selector are invalid
    /// (the model's error names the field).
    #[error("{}: {source}", path.display())]
    Invalid { path: PathBuf, source: PolicyError },
}

pub fn load(path: &Path) -> Result<(RuleSettings, Scope), PolicyFileError> {
    let invalid = |source| PolicyFileError::Invalid {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let policy = PodLifecyclePolicy::from_yaml_or_json(&text).map_err(invalid)?;
    let settings = policy.spec.rule_settings().map_err(invalid)?;
    let selector = policy.spec.selector().map_err(invalid)?;
    Ok((
        settings,
        Scope {
            namespace: policy.metadata.namespace.clone(),
            selector,
        },
    ))
}
