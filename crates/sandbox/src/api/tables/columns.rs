//! The column definitions of a Table, per kind, as upstream's printers declare them
//! (CRDs: their `additionalPrinterColumns`).

use serde_json::{Value, json};

use super::super::resources::{Flavor, ResourceType};

fn col(name: &str, type_: &str, format: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// The column definitions for a resource.
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match rt.flavor {
        Flavor::Pod => pod_columns(name, age),
        Flavor::Node => node_columns(name, age),
        Flavor::Namespace => vec![
            name,
            col("Status", "string", "", 0, "The status of the namespace"),
            age,
        ],
        Flavor::Lease => vec![
            name,
            col(
                "Holder",
                "string",
                "",
                0,
                "HolderIdentity contains the identity of the holder of a current lease.",
            ),
            age,
        ],
        Flavor::CoreEvent | Flavor::EventsV1 => event_columns(),
        Flavor::Custom => {
            let mut out = vec![name];
            out.extend(
                rt.printer_columns
                    .iter()
                    .map(|c| col(&c.name, &c.type_, &c.format, c.priority, &c.description)),
            );
            out
        }
        // Kinds without a printer of their own get the default table convertor's
        // columns.
        Flavor::Crd | Flavor::Role | Flavor::ClusterRole => vec![
            name,
            col(
                "Created At",
                "date",
                "",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ),
        ],
        Flavor::ServiceAccount => vec![
            name,
            col(
                "Secrets",
                "string",
                "",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        Flavor::ConfigMap => vec![
            name,
            col(
                "Data",
                "string",
                "",
                0,
                "Data contains the configuration data.",
            ),
            age,
        ],
        Flavor::Secret => vec![
            name,
            col(
                "Type",
                "string",
                "",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            col("Data", "string", "", 0, "Data contains the secret data."),
            age,
        ],
        Flavor::Service => service_columns(name, age),
        Flavor::Deployment => deployment_columns(name, age),
        Flavor::NetworkPolicy => vec![
            name,
            col(
                "Pod-Selector",
                "string",
                "",
                0,
                "Selects the pods to which this NetworkPolicy object applies.",
            ),
            age,
        ],
        Flavor::RoleBinding | Flavor::ClusterRoleBinding => {
            let what = if rt.flavor == Flavor::RoleBinding {
                "roleBinding"
            } else {
                "clusterRoleBinding"
            };
            vec![
                name,
                col(
                    "Role",
                    "string",
                    "",
                    0,
                    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
                ),
                age,
                col("Users", "string", "", 1, &format!("Users in the {what}")),
                col("Groups", "string", "", 1, &format!("Groups in the {what}")),
                col(
                    "ServiceAccounts",
                    "string",
                    "",
                    1,
                    &format!("ServiceAccounts in the {what}"),
                ),
            ]
        }
    }
}

/// `printService`'s columns.
fn service_columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Type",
            "string",
            "",
            0,
            "type determines how the Service is exposed.",
        ),
        col(
            "Cluster-IP",
            "string",
            "",
            0,
            "clusterIP is the IP address of the service and is usually assigned randomly.",
        ),
        col(
            "External-IP",
            "string",
            "",
            0,
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
        ),
        col(
            "Port(s)",
            "string",
            "",
            0,
            "The list of ports that are exposed by this service.",
        ),
        age,
        col(
            "Selector",
            "string",
            "",
            1,
            "Route service traffic to pods with label keys and values matching this selector.",
        ),
    ]
}

/// `printDeployment`'s columns.
fn deployment_columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Ready",
            "string",
            "",
            0,
            "Number of the pod with ready state",
        ),
        col(
            "Up-to-date",
            "string",
            "",
            0,
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        col(
            "Available",
            "string",
            "",
            0,
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        age,
        col(
            "Containers",
            "string",
            "",
            1,
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            "",
            1,
            "Images referenced by each container in the template.",
        ),
        col(
            "Selector",
            "string",
            "",
            1,
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
        ),
    ]
}

/// `printPod`'s columns.
fn pod_columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Ready",
            "string",
            "",
            0,
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        col(
            "Status",
            "string",
            "",
            0,
            "The aggregate status of the containers in this pod.",
        ),
        col(
            "Restarts",
            "string",
            "",
            0,
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        age,
        col("IP", "string", "", 1, "podIP address allocated to the pod."),
        col(
            "Node",
            "string",
            "",
            1,
            "NodeName is a request to schedule this pod onto a specific node.",
        ),
        col(
            "Nominated Node",
            "string",
            "",
            1,
            "nominatedNodeName is set only when this pod preempts other pods on the node.",
        ),
        col(
            "Readiness Gates",
            "string",
            "",
            1,
            "If specified, all readiness gates will be evaluated for pod readiness.",
        ),
    ]
}

/// `printNode`'s columns.
fn node_columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col("Status", "string", "", 0, "The status of the node"),
        col("Roles", "string", "", 0, "The roles of the node"),
        age,
        col(
            "Version",
            "string",
            "",
            0,
            "Kubelet Version reported by the node.",
        ),
        col(
            "Internal-IP",
            "string",
            "",
            1,
            "List of addresses reachable to the node. Queried from cloud provider, if available.",
        ),
        col(
            "External-IP",
            "string",
            "",
            1,
            "List of addresses reachable to the node. Queried from cloud provider, if available.",
        ),
        col(
            "OS-Image",
            "string",
            "",
            1,
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        ),
        col(
            "Kernel-Version",
            "string",
            "",
            1,
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        ),
        col(
            "Container-Runtime",
            "string",
            "",
            1,
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        ),
    ]
}

/// `printEvent`'s columns.
fn event_columns() -> Vec<Value> {
    vec![
        col(
            "Last Seen",
            "string",
            "",
            0,
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        col(
            "Type",
            "string",
            "",
            0,
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        col(
            "Reason",
            "string",
            "",
            0,
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        col(
            "Object",
            "string",
            "",
            0,
            "The object that this event is about.",
        ),
        col(
            "Subobject",
            "string",
            "",
            1,
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
        ),
        col(
            "Source",
            "string",
            "",
            1,
            "The component reporting this event. Should be a short machine understandable string.",
        ),
        col(
            "Message",
            "string",
            "",
            0,
            "A human-readable description of the status of this operation.",
        ),
        col(
            "First Seen",
            "string",
            "",
            1,
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        ),
        col(
            "Count",
            "string",
            "",
            1,
            "The number of times this event has occurred.",
        ),
        col(
            "Name",
            "string",
            "name",
            1,
            "Name must be unique within a namespace.",
        ),
    ]
}
