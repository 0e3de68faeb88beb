//! Applying a PodLifecyclePolicy file offline: its namespace, selector and rule settings.

use std::path::Path;

use super::Scope;
use podwarden_model::RuleSettings;
use podwarden_model::policy::PodLifecyclePolicy;

pub fn load(path: &Path) -> Result<(RuleSettings, Scope), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let policy = PodLifecyclePolicy::from_yaml_or_json(&text).map_err(|e| e.to_string())?;
    let settings = policy.spec.rule_settings().map_err(|e| e.to_string())?;
    let selector = policy.spec.selector().map_err(|e| e.to_string())?;
    Ok((
        settings,
        Scope {
            namespace: policy.metadata.namespace.clone(),
            selector,
        },
    ))
}
