//! `sources: {tmax, tanzu}`: read the other tool's objects at request time
//! through Kubewarden's `kubernetes/*` capabilities, convert them with the same
//! converters as `imagegate convert`, and merge them into the settings.
//!
//! Every object read here must be listed in metadata.yml `contextAwareResources`:
//! ConfigMap and Secret (v1), tmax.io/v1 RegistrySecurityPolicy and
//! ClusterRegistrySecurityPolicy, signing.apps.tanzu.vmware.com/v1beta1 ClusterImagePolicy.

use super::{str_at, tanzu, tmax, Converted};
use crate::capability;
use crate::host::Host;
use crate::settings::{Policy, SourcedSettings};
use crate::wire::{GetResourceRequest, ListResourcesRequest};
use serde_json::{Map, Value};

/// Which sources to read (settings `sources`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources {
    pub tmax: bool,
    pub tanzu: bool,
}

/// The policy for one request in `namespace`: the settings as written,
/// completed with the enabled sources' objects, compiled like any settings.
pub(crate) fn policy(
    sourced: &SourcedSettings,
    namespace: &str,
    host: &dyn Host,
) -> Result<Policy, String> {
    // Only the text outlives the statement: one copy less at the peak.
    let settings = merged_settings(sourced.sources, &sourced.base, namespace, host)
        .map_err(|e| format!("sources: {e}"))?
        .to_string();
    Policy::from_json(&settings)
        .map_err(|e| format!("the settings built from sources are invalid: {e}"))
}

/// Reads the enabled sources for a request in `namespace` and merges them
/// into `base` (native settings without `sources`). The result is native
/// settings; a host error (other than "not found") fails the request.
pub fn merged_settings(
    sources: Sources,
    base: &Map<String, Value>,
    namespace: &str,
    host: &dyn Host,
) -> Result<Value, String> {
    let mut settings = base.clone();
    if sources.tmax {
        merge(&mut settings, read_tmax(namespace, host)?);
    }
    if sources.tanzu {
        let policy = get(host, tanzu::API_VERSION, tanzu::KIND, tanzu::NAME, None)?;
        merge(&mut settings, tanzu::convert(policy.as_ref())?);
    }
    Ok(Value::Object(settings))
}

fn read_tmax(namespace: &str, host: &dyn Host) -> Result<Converted, String> {
    let whitelist = get(
        host,
        "v1",
        "ConfigMap",
        tmax::WHITELIST_NAME,
        Some(tmax::WHITELIST_NAMESPACE),
    )?;
    let cluster = list(host, tmax::API_VERSION, tmax::CLUSTER_POLICY, None)?;
    let namespaced = list(
        host,
        tmax::API_VERSION,
        tmax::NAMESPACE_POLICY,
        Some(namespace),
    )?;
    let mut secrets = Vec::new();
    for policy in cluster.iter().chain(&namespaced) {
        for spec in super::list_at(policy, "/spec/registries") {
            let Some(path) = str_at(spec, "/cosignKeyRef").and_then(|r| r.strip_prefix("k8s://"))
            else {
                continue;
            };
            if let Some((ns, name)) = path.split_once('/') {
                if let Some(secret) = get(host, "v1", "Secret", name, Some(ns))? {
                    secrets.push(secret);
                }
            }
        }
    }
    tmax::convert(&tmax::Inputs {
        whitelist: whitelist.as_ref(),
        cluster_policies: cluster.iter().collect(),
        namespace_policies: namespaced.iter().collect(),
        secrets: secrets.iter().collect(),
    })
}

/// `kubernetes/get_resource`; `None` when the object does not exist.
fn get(
    host: &dyn Host,
    api_version: &str,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> Result<Option<Value>, String> {
    let req = GetResourceRequest {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        disable_cache: false,
        field_masks: None,
    };
    let what = format!(
        "{kind} {}{name}",
        namespace.map(|n| format!("{n}/")).unwrap_or_default()
    );
    let payload = serde_json::to_vec(&req)
        .map_err(|e| format!("cannot encode the request for {what}: {e}"))?;
    let path = capability::KUBERNETES_GET;
    let (host_namespace, operation) = capability::split(path);
    match host.call(host_namespace, operation, &payload) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("malformed {what} from {path}: {e}")),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(format!("cannot read {what}: {e}")),
    }
}

/// `kubernetes/list_resources_by_namespace` or `list_resources_all`: the items.
fn list(
    host: &dyn Host,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<Vec<Value>, String> {
    let req = ListResourcesRequest {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: namespace.map(str::to_string),
        label_selector: None,
        field_selector: None,
        field_masks: None,
    };
    let path = match namespace {
        Some(_) => capability::KUBERNETES_LIST_IN_NAMESPACE,
        None => capability::KUBERNETES_LIST_ALL,
    };
    let payload = serde_json::to_vec(&req)
        .map_err(|e| format!("cannot encode the {kind} list request: {e}"))?;
    let (host_namespace, operation) = capability::split(path);
    let bytes = host
        .call(host_namespace, operation, &payload)
        .map_err(|e| format!("cannot list {kind}: {e}"))?;
    let list: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("malformed {kind} list from {path}: {e}"))?;
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// The API server's 404, as policy-server and imagegate's host report it.
fn is_not_found(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("not found") || e.contains("notfound") || e.contains("404")
}

/// Lists are appended, `keys` merged, scalars set only when `base` has none.
fn merge(base: &mut Map<String, Value>, fragment: Converted) {
    let Value::Object(fragment) = fragment.settings else {
        return;
    };
    for (field, value) in fragment {
        match (base.get_mut(&field), value) {
            (Some(Value::Array(list)), Value::Array(more)) => list.extend(more),
            (Some(Value::Object(map)), Value::Object(more)) => map.extend(more),
            (Some(_), _) => {}
            (None, value) => {
                base.insert(field, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScriptedHost;
    use serde_json::json;

    /// Answers `kubernetes/*` from a list of objects, like `imagegate --context DIR`.
    fn cluster(objects: Vec<Value>) -> ScriptedHost {
        ScriptedHost::new(move |ns, op, p| {
            assert_eq!(ns, "kubernetes");
            let fits = |o: &&Value| {
                o["apiVersion"] == p["api_version"]
                    && o["kind"] == p["kind"]
                    && (p["namespace"].is_null() || o["metadata"]["namespace"] == p["namespace"])
            };
            match op {
                "get_resource" => objects
                    .iter()
                    .filter(fits)
                    .find(|o| o["metadata"]["name"] == p["name"])
                    .cloned()
                    .ok_or_else(|| format!("{} {} not found", p["kind"], p["name"])),
                _ => Ok(json!({"items": objects.iter().filter(fits).cloned().collect::<Vec<_>>()})),
            }
        })
    }

    #[test]
    fn tmax_policies_are_read_per_namespace_and_merged() {
        let cluster = cluster(vec![
            json!({"apiVersion":"tmax.io/v1","kind":"RegistrySecurityPolicy","metadata":{"name":"p","namespace":"team-a"},
                    "spec":{"registries":[{"registry":"reg.io","signCheck":false}]}}),
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":tmax::WHITELIST_NAME,"namespace":tmax::WHITELIST_NAMESPACE},
                    "data":{"whitelist-images":"registry","whitelist-namespaces":"kube-system"}}),
        ]);
        let base = json!({"exemptNamespaces": ["ops"]});
        let s = merged_settings(
            Sources {
                tmax: true,
                tanzu: false,
            },
            base.as_object().unwrap(),
            "team-a",
            &cluster,
        )
        .unwrap();
        assert_eq!(s["exemptNamespaces"], json!(["ops", "kube-system"]));
        assert_eq!(s["unmatched"], "deny");
        assert_eq!(s["rules"][0]["images"], json!(["reg.io/**"]));
        let s = merged_settings(
            Sources {
                tmax: true,
                tanzu: false,
            },
            base.as_object().unwrap(),
            "team-b",
            &cluster,
        )
        .unwrap();
        assert_eq!(s["unmatched"], "allow", "no policy in team-b: flow 2");
    }

    #[test]
    fn tanzu_missing_policy_and_host_errors() {
        let empty = cluster(vec![]);
        let s = merged_settings(
            Sources {
                tmax: false,
                tanzu: true,
            },
            &Map::new(),
            "default",
            &empty,
        )
        .unwrap();
        assert_eq!(s["unmatchedMessage"], tanzu::NOT_FOUND);
        assert_eq!(empty.calls().len(), 1);
        let down = ScriptedHost::failing("Policy has not been granted access to Kubernetes tmax.io/v1/ClusterRegistrySecurityPolicy resources");
        let e = merged_settings(
            Sources {
                tmax: true,
                tanzu: false,
            },
            &Map::new(),
            "default",
            &down,
        )
        .unwrap_err();
        assert!(
            e.starts_with(
                "cannot read ConfigMap registry-system/image-validation-webhook-whitelist"
            ),
            "{e}"
        );
    }
}
