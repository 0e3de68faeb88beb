//! Service cluster IPs from 10.96.0.0/12 (kubeadm's default service CIDR), unique
//! among the stored Services: a requested IP is checked, a missing one allocated.
//! Allocation runs under the store's lock, so two creates never take the same IP.
//!
//! As upstream's allocator, the first addresses of the range (here 256, upstream's
//! "static band" for a range this size) are left to Services that ask for an IP, and
//! dynamic allocation takes the rest. 10.96.0.1 is the `kubernetes` Service's by
//! convention. Allocation walks forward from where the previous one stopped, so a
//! freed IP is not handed out again at once; the walk visits at most one address per
//! stored Service before it finds a free one.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::super::error::{ApiError, Cause};
use super::super::resources::ResourceType;
use super::{Inner, Store};

/// The service CIDR: network address and prefix length.
const NETWORK: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const PREFIX: u32 = 12;
const SIZE: u32 = 1 << (32 - PREFIX);
/// Offsets below this are only given to Services that ask for them.
const STATIC_BAND: u32 = 256;
pub const RANGE: &str = "10.96.0.0/12";

fn offset_of(ip: Ipv4Addr) -> Option<u32> {
    let n = u32::from(ip);
    (n & !(SIZE - 1) == NETWORK).then(|| n - NETWORK)
}

fn invalid(ip: &str, why: &str) -> Cause {
    Cause::invalid(
        "spec.clusterIPs",
        ip,
        &format!("failed to allocate IP {ip}: {why}"),
    )
}

impl Store {
    /// Checks a Service's requested cluster IP, or allocates one (writing
    /// `spec.clusterIP` and `spec.clusterIPs`). Called under the lock, before the
    /// commit of a create.
    pub(super) fn assign_cluster_ip(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        name: &str,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if !super::super::admission::needs_cluster_ip(object) {
            return Ok(());
        }
        let used: HashSet<String> = inner
            .tables
            .get(ResourceType::SERVICES)
            .map(|t| {
                t.objects
                    .values()
                    .filter_map(|o| o.field("spec.clusterIP"))
                    .collect()
            })
            .unwrap_or_default();
        let requested = object
            .get("spec")
            .and_then(|s| s.get("clusterIP"))
            .and_then(Value::as_str)
            .filter(|ip| !ip.is_empty())
            .map(str::to_string);
        let ip = match requested {
            Some(ip) => {
                let why = match ip.parse::<Ipv4Addr>().ok().and_then(offset_of) {
                    None => Some(format!(
                        "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {RANGE}"
                    )),
                    Some(0) => Some("the provided IP is the network address of the range".into()),
                    Some(o) if o == SIZE - 1 => {
                        Some("the provided IP is the broadcast address of the range".into())
                    }
                    Some(_) if used.contains(&ip) => {
                        Some("provided IP is already allocated".into())
                    }
                    Some(_) => None,
                };
                if let Some(why) = why {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        &rt.group,
                        name,
                        vec![invalid(&ip, &why)],
                    ));
                }
                ip
            }
            None => {
                let dynamic = SIZE - 1 - STATIC_BAND;
                let start = inner.next_cluster_ip.clamp(STATIC_BAND, SIZE - 2);
                let found = (0..dynamic)
                    .map(|i| STATIC_BAND + (start - STATIC_BAND + i) % dynamic)
                    .map(|o| (o, Ipv4Addr::from(NETWORK + o).to_string()))
                    .find(|(_, ip)| !used.contains(ip));
                let Some((offset, ip)) = found else {
                    return Err(ApiError::Internal(format!(
                        "failed to allocate a serviceIP: range {RANGE} is full"
                    )));
                };
                inner.next_cluster_ip = offset + 1;
                ip
            }
        };
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_inside_the_range_only() {
        let cases = [
            ("network", "10.96.0.0", Some(0)),
            ("first dynamic", "10.96.1.0", Some(256)),
            ("last", "10.111.255.255", Some(SIZE - 1)),
            ("below", "10.95.255.255", None),
            ("above", "10.112.0.0", None),
        ];
        for (case, ip, want) in cases {
            assert_eq!(offset_of(ip.parse().unwrap()), want, "{case}");
        }
    }
}
