//! The checks and defaults of a pod spec shared by pods and workload templates.

use serde_json::Value;

use super::super::error::Cause;
use super::names::is_dns_label;

pub fn image_is_latest(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    if image.contains('@') {
        return false;
    }
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// The checks of a pod spec at `prefix` (`spec`, or a template's `spec.template.spec`).
pub fn validate_pod_spec(spec: Option<&Value>, prefix: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.and_then(Value::as_object) else {
        causes.push(Cause::required(format!("{prefix}.containers")));
        return;
    };
    match spec.get("containers").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => validate_containers(c, &format!("{prefix}.containers"), causes),
        _ => causes.push(Cause::required(format!("{prefix}.containers"))),
    }
    if let Some(init) = spec.get("initContainers").and_then(Value::as_array) {
        validate_containers(init, &format!("{prefix}.initContainers"), causes);
    }
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        causes.push(Cause::unsupported(
            format!("{prefix}.restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(g) = spec.get("terminationGracePeriodSeconds")
        && !g.is_i64()
    {
        causes.push(Cause::invalid(
            format!("{prefix}.terminationGracePeriodSeconds"),
            &g.to_string(),
            "must be an integer",
        ));
    }
}

fn validate_containers(containers: &[Value], field: &str, causes: &mut Vec<Cause>) {
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            causes.push(Cause::required(format!("{field}[{i}].name")));
        } else if seen.contains(&name) {
            causes.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: \"{name}\""),
                field: format!("{field}[{i}].name"),
            });
        } else if !is_dns_label(name) {
            causes.push(Cause::invalid(format!("{field}[{i}].name"), name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"));
        }
        seen.push(name);
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("{field}[{i}].image")));
        }
    }
}
