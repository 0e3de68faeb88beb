//! Server-side printing: the `Table` a real server returns for
//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`, column for column
//! (pkg/printers/internalversion/printers.go), and CRD `additionalPrinterColumns`.
//! kubectl prints only what the server returns here.
//!
//! - `columns`: the column definitions of each kind;
//! - `cells`: the values of a row, rendered.

mod cells;
mod columns;

pub use cells::{cells, human_duration, json_path, since};
pub use columns::columns;

use serde_json::{Value, json};

use super::object::StoredObject;
use super::resources::ResourceType;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A whole Table for a list (or a single get).
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    with_columns: bool,
    now: jiff::Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(rt, o, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                    });
                }
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "rows": rows,
    });
    t["columnDefinitions"] = if with_columns {
        Value::Array(columns(rt))
    } else {
        json!([])
    };
    t
}

/// Parsed objects for a table (the stored bytes, parsed once).
pub fn parse_all(objects: &[std::sync::Arc<StoredObject>]) -> Vec<Value> {
    objects.iter().map(|o| o.value()).collect()
}
