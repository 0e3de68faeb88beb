//! `podwarden demo --install FILE`: the chart (or any manifests) applied to the embedded
//! sandbox, and the controller run as FILE's Deployment would run it: with a token of
//! its ServiceAccount from the TokenRequest API, and with its `podwarden run`
//! arguments. With the sandbox's authentication and RBAC on, the scenario then passes
//! only if the RBAC the manifests grant is enough.
//!
//! `helm template podwarden charts/podwarden -n podwarden > podwarden.yaml` makes FILE.

use std::path::{Path, PathBuf};

use clap::Parser;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

use crate::controller::cli::RunArgs;

/// Field manager of the objects the demo applies.
const MANAGER: &str = "podwarden-demo";
/// Lifetime asked for the ServiceAccount token: longer than any scenario.
const TOKEN_SECONDS: i64 = 3600;
/// Objects read from FILE, at most.
pub const MAX_OBJECTS: usize = 1000;

/// The objects of FILE and the Deployment that runs the controller.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub path: PathBuf,
    pub objects: Vec<Value>,
    /// Helm hooks left out: they do not run at install (`helm.sh/hook` without
    /// `pre-install` or `post-install`).
    pub skipped_hooks: usize,
    pub workload: Workload,
}

/// The Deployment running `podwarden run`: where, as whom, with which arguments.
#[derive(Debug, Clone)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    /// The container's arguments, `run` first.
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not YAML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: object {index}: {message}")]
    Object {
        path: PathBuf,
        index: usize,
        message: String,
    },
    #[error("{path}: more than {MAX_OBJECTS} objects")]
    TooMany { path: PathBuf },
    #[error(
        "{path}: no Deployment runs `podwarden run` (make the file with `helm template podwarden charts/podwarden -n NAMESPACE`)"
    )]
    NoWorkload { path: PathBuf },
    #[error("{path}: {count} Deployments run `podwarden run`; the demo runs one")]
    ManyWorkloads { path: PathBuf, count: usize },
    #[error("{path}: Deployment {name}: its arguments are not podwarden run's: {message}")]
    Args {
        path: PathBuf,
        name: String,
        message: String,
    },
    #[error("the sandbox does not serve {kind} ({api_version}), needed by {name}")]
    NotServed {
        kind: String,
        api_version: String,
        name: String,
    },
    #[error("the sandbox refused {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the sandbox gave no token for ServiceAccount {namespace}/{name}")]
    NoToken { namespace: String, name: String },
}

/// `podwarden run`'s arguments as a parser of their own.
#[derive(Debug, Parser)]
#[command(name = "podwarden run")]
struct RunCommand {
    #[command(flatten)]
    args: RunArgs,
}

impl Manifests {
    /// Reads FILE: YAML documents, each one object (empty documents skipped), exactly
    /// one Deployment running `podwarden run`.
    pub fn read(path: &Path) -> Result<Manifests, InstallError> {
        let text = std::fs::read_to_string(path).map_err(|source| InstallError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifests, InstallError> {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| InstallError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        // A Helm hook that does not run at install (a post-delete cleanup, say) is not
        // part of what an install applies.
        let (objects, hooks): (Vec<Value>, Vec<Value>) = documents
            .into_iter()
            .filter(|d| !d.is_null())
            .partition(runs_at_install);
        let skipped_hooks = hooks.len();
        if objects.len() > MAX_OBJECTS {
            return Err(InstallError::TooMany {
                path: path.to_path_buf(),
            });
        }
        let mut workloads = Vec::new();
        for (index, object) in objects.iter().enumerate() {
            let bad = |message: &str| InstallError::Object {
                path: path.to_path_buf(),
                index: index + 1,
                message: message.to_string(),
            };
            for field in ["apiVersion", "kind"] {
                if !object[field].is_string() {
                    return Err(bad(&format!("no {field}")));
                }
            }
            if !object["metadata"]["name"].is_string() {
                return Err(bad("no metadata.name"));
            }
            if let Some(workload) = workload_of(object) {
                workloads.push(workload);
            }
        }
        let workload = match workloads.len() {
            0 => {
                return Err(InstallError::NoWorkload {
                    path: path.to_path_buf(),
                });
            }
            1 => workloads.remove(0),
            count => {
                return Err(InstallError::ManyWorkloads {
                    path: path.to_path_buf(),
                    count,
                });
            }
        };
        Ok(Manifests {
            path: path.to_path_buf(),
            objects,
            skipped_hooks,
            workload,
        })
    }

    /// The Deployment's `podwarden run` arguments, parsed as `podwarden run` would.
    pub fn run_args(&self) -> Result<RunArgs, InstallError> {
        let args = self.workload.args.iter().skip(1);
        RunCommand::try_parse_from(std::iter::once("podwarden-run").chain(args.map(String::as_str)))
            .map(|c| c.args)
            .map_err(|e| InstallError::Args {
                path: self.path.clone(),
                name: self.workload.name.clone(),
                message: e.to_string().trim().to_string(),
            })
    }

    /// Applies every object (server-side apply, as `kubectl apply --server-side`),
    /// creating the namespaces they name first, as `helm install --create-namespace`.
    pub async fn apply(&self, admin: &Client) -> Result<(), InstallError> {
        let discovery = Discovery::new(admin.clone())
            .run()
            .await
            .map_err(|source| InstallError::Api {
                what: "discovery".into(),
                source,
            })?;
        let mut namespaces: Vec<&str> = self
            .objects
            .iter()
            .filter_map(|o| o["metadata"]["namespace"].as_str())
            .chain([self.workload.namespace.as_str()])
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let api: Api<Namespace> = Api::all(admin.clone());
        for ns in namespaces {
            let namespace =
                serde_json::from_value(json!({"metadata": {"name": ns}})).map_err(|e| {
                    InstallError::Object {
                        path: self.path.clone(),
                        index: 0,
                        message: format!("namespace {ns:?}: {e}"),
                    }
                })?;
            match api.create(&PostParams::default(), &namespace).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(source) => {
                    return Err(InstallError::Api {
                        what: format!("namespace {ns}"),
                        source,
                    });
                }
            }
        }
        for object in &self.objects {
            self.apply_one(admin, &discovery, object).await?;
        }
        Ok(())
    }

    async fn apply_one(
        &self,
        admin: &Client,
        discovery: &Discovery,
        object: &Value,
    ) -> Result<(), InstallError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Some((resource, capabilities)) = discovery.resolve_gvk(&gvk) else {
            return Err(InstallError::NotServed {
                kind: kind.into(),
                api_version: api_version.into(),
                name: name.into(),
            });
        };
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(admin.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                admin.clone(),
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(&self.workload.namespace),
                &resource,
            ),
        };
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(|source| InstallError::Api {
            what: format!("{kind} {name}"),
            source,
        })?;
        Ok(())
    }

    /// A token of the workload's ServiceAccount, from the TokenRequest API (as
    /// `kubectl create token`).
    pub async fn token(&self, admin: &Client) -> Result<String, InstallError> {
        let Workload {
            namespace,
            service_account,
            ..
        } = &self.workload;
        let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let answer = api
            .create_token_request(service_account, &PostParams::default(), &request)
            .await
            .map_err(|source| InstallError::Api {
                what: format!("a token for ServiceAccount {namespace}/{service_account}"),
                source,
            })?;
        answer
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| InstallError::NoToken {
                namespace: namespace.clone(),
                name: service_account.clone(),
            })
    }
}

/// Whether `object` is applied by an install: not a Helm hook, or a hook that runs at
/// install.
fn runs_at_install(object: &Value) -> bool {
    match object["metadata"]["annotations"]["helm.sh/hook"].as_str() {
        None => true,
        Some(hooks) => hooks
            .split(',')
            .any(|h| matches!(h.trim(), "pre-install" | "post-install")),
    }
}

/// The workload of a Deployment whose container runs `podwarden run`.
fn workload_of(object: &Value) -> Option<Workload> {
    if object["kind"] != "Deployment" || object["apiVersion"] != "apps/v1" {
        return None;
    }
    let pod = &object["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array()?;
    let args = containers.iter().find_map(|c| {
        let args: Vec<String> = c["args"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        (args.first().map(String::as_str) == Some("run")).then_some(args)
    })?;
    Some(Workload {
        namespace: object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        name: object["metadata"]["name"].as_str()?.to_string(),
        service_account: pod["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = r#"
---
# Source: podwarden/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: podwarden
  namespace: podwarden
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podwarden
  namespace: podwarden
spec:
  selector: {matchLabels: {app: podwarden}}
  template:
    metadata: {labels: {app: podwarden}}
    spec:
      serviceAccountName: podwarden
      containers:
        - name: podwarden
          image: podwarden:0.1.0
          args: [run, --http-addr=0.0.0.0:8080, --leader-elect, --namespace=demo]
"#;

    #[test]
    fn the_deployment_running_podwarden_is_the_workload() {
        let m = Manifests::parse(Path::new("chart.yaml"), DEPLOYMENT).expect("parses");
        assert_eq!(m.objects.len(), 2, "the empty document is skipped");
        assert_eq!(m.workload.namespace, "podwarden");
        assert_eq!(m.workload.service_account, "podwarden");
        let args = m.run_args().expect("run's arguments");
        assert!(args.leader_elect);
        assert_eq!(args.namespaces, vec!["demo"]);
    }

    #[test]
    fn hooks_that_do_not_run_at_install_are_left_out() {
        let hook = r#"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: cleanup
  annotations: {helm.sh/hook: post-delete}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: seed
  annotations: {helm.sh/hook: "pre-install,pre-upgrade"}
"#;
        let m = Manifests::parse(Path::new("chart.yaml"), &format!("{DEPLOYMENT}{hook}"))
            .expect("parses");
        assert_eq!(m.skipped_hooks, 1);
        let kinds: Vec<&str> = m
            .objects
            .iter()
            .filter_map(|o| o["kind"].as_str())
            .collect();
        assert_eq!(kinds, vec!["ServiceAccount", "Deployment", "ConfigMap"]);
    }

    #[test]
    fn bad_files_are_refused_saying_what_is_wrong() {
        let cases = [
            ("not YAML", "a: [", "not YAML"),
            (
                "no kind",
                "apiVersion: v1\nmetadata: {name: x}\n",
                "object 1: no kind",
            ),
            (
                "no name",
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {}\n",
                "object 1: no metadata.name",
            ),
            (
                "no workload",
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n",
                "no Deployment runs `podwarden run`",
            ),
        ];
        for (case, text, expected) in cases {
            let e = Manifests::parse(Path::new("f.yaml"), text).expect_err(case);
            assert!(e.to_string().contains(expected), "{case}: {e}");
        }
        let two = format!(
            "{DEPLOYMENT}\n---\n{}",
            DEPLOYMENT.replace("name: podwarden\n  namespace", "name: other\n  namespace")
        );
        let e = Manifests::parse(Path::new("f.yaml"), &two).expect_err("two");
        assert!(e.to_string().contains("2 Deployments"), "{e}");
        let bad_args = DEPLOYMENT.replace("--leader-elect", "--leader-elected");
        let m = Manifests::parse(Path::new("f.yaml"), &bad_args).expect("parses");
        let e = m.run_args().expect_err("unknown flag");
        assert!(e.to_string().contains("--leader-elected"), "{e}");
    }
}
