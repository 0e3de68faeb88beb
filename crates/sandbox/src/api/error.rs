//! API errors, each rendered as the `Status` object a real API server returns,
//! with the same `reason` and `code`.

use serde_json::{Value, json};

/// One field-level cause of an `Invalid` error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ...
    pub reason: String,
    pub message: String,
    /// Dotted path of the field, e.g. `spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: field.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: \"{value}\": {why}"),
            field: field.into(),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &str, allowed: &[&str]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                allowed.join(", ")
            ),
            field: field.into(),
        }
    }

    fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// Why a request failed. Every variant maps to one `Status.reason`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        resource: String,
        group: String,
        name: String,
    },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        resource: String,
        group: String,
        name: String,
    },
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        resource: String,
        group: String,
        name: String,
        message: String,
    },
    #[error("{kind} \"{name}\" is invalid: {}", causes.iter().map(Cause::render).collect::<Vec<_>>().join(", "))]
    Invalid {
        kind: String,
        group: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// An authorization denial: `message` is the whole text (`pods is forbidden: User
    /// ...`); `resource`, `group` and `name` fill `details` as upstream's `NewForbidden`.
    #[error("{message}")]
    Denied {
        resource: String,
        group: String,
        name: String,
        message: String,
    },
    /// No valid credentials. Upstream says no more than this on purpose (no hint to
    /// someone guessing tokens); the server logs the cause.
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Gone(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_seconds: u32,
    },
    #[error("Internal error occurred: {0}")]
    Internal(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    RequestEntityTooLarge(String),
}

impl ApiError {
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        ApiError::NotFound {
            resource: resource.into(),
            group: group.into(),
            name: name.into(),
        }
    }

    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        ApiError::AlreadyExists {
            resource: resource.into(),
            group: group.into(),
            name: name.into(),
        }
    }

    /// The stale-resourceVersion conflict of an update.
    pub fn conflict(resource: &str, group: &str, name: &str) -> Self {
        ApiError::Conflict {
            resource: resource.into(),
            group: group.into(),
            name: name.into(),
            message: "the object has been modified; please apply your changes to the latest version and try again".into(),
        }
    }

    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        ApiError::Invalid {
            kind: kind.into(),
            group: group.into(),
            name: name.into(),
            causes,
        }
    }

    /// `410 Expired`: the resourceVersion fell out of the history window.
    pub fn too_old(requested: u64, oldest: u64) -> Self {
        ApiError::Gone(format!("too old resource version: {requested} ({oldest})"))
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::Forbidden(_) | ApiError::Denied { .. } => 403,
            ApiError::Unauthorized => 401,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::NotAcceptable(_) => 406,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Gone(_) => 410,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Timeout(_) => 504,
            ApiError::RequestEntityTooLarge(_) => 413,
        }
    }

    /// The `Status.reason`, also usable as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden(_) | ApiError::Denied { .. } => "Forbidden",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Gone(_) => "Expired",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Timeout(_) => "Timeout",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
        }
    }

    /// The `Status` object of this error, as JSON.
    pub fn status(&self) -> Value {
        let details = match self {
            ApiError::NotFound {
                resource,
                group,
                name,
            }
            | ApiError::AlreadyExists {
                resource,
                group,
                name,
            }
            | ApiError::Conflict {
                resource,
                group,
                name,
                ..
            } => Some(details(name, group, resource, None)),
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                let causes = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(details(name, group, kind, Some(causes)))
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => Some(json!({"retryAfterSeconds": retry_after_seconds})),
            ApiError::Denied {
                resource,
                group,
                name,
                ..
            } => Some(denied_details(resource, group, name)),
            ApiError::Internal(message) => Some(json!({"causes": [{"message": message}]})),
            _ => None,
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let (Some(details), Some(map)) = (details, status.as_object_mut()) {
            map.insert("details".into(), details);
        }
        status
    }
}

fn details(name: &str, group: &str, kind: &str, causes: Option<Vec<Value>>) -> Value {
    let mut d = serde_json::Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    if let Some(causes) = causes {
        d.insert("causes".into(), Value::Array(causes));
    }
    Value::Object(d)
}

/// `details` of a denial: only the fields that are set (a non-resource path has none).
fn denied_details(resource: &str, group: &str, name: &str) -> Value {
    let mut d = serde_json::Map::new();
    for (key, value) in [("name", name), ("group", group), ("kind", resource)] {
        if !value.is_empty() {
            d.insert(key.into(), json!(value));
        }
    }
    Value::Object(d)
}

/// The `Status` of a successful delete of an object that is gone at once.
pub fn success_status(name: &str, group: &str, resource: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": resource, "uid": uid},
    })
}
