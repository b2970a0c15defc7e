//! Who an address is: a pod (namespace, workload, labels, service account), a node (`host` for
//! this node, `remote-node` for the others, `kube-apiserver` for an API server's), a Service
//! address, or the world — from the inventory (`--inventory`, or the cluster watched) and this
//! node's own addresses.
//!
//! A record keeps who its ends were when it was seen ([`Identity::resolve`]): a pod deleted
//! before `/flows` is read, or a finished Job whose address a new pod reuses, stays named as it
//! was. An end not known yet (the watch lags a pod's start by a moment, a DNS answer is read
//! after the connection) is asked again until it is a pod or a node, or the record is a minute
//! old.

use std::net::IpAddr;
use std::sync::Arc;

use netpol_compiler::flow::RecordEndpoint;
use netpol_compiler::flow::inventory::Inventory;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::aggregate::Who;

/// Addresses [`Identity::resolve`] remembers at most (records keep theirs).
const CACHE_MAX: usize = 65_536;

/// Address → identity.
#[derive(Debug, Default)]
pub struct Identity {
    pub inventory: Option<Inventory>,
    /// This node's name, to tell `host` from `remote-node`.
    pub node: Option<String>,
    /// Every address of this node (its interfaces: loopback, `cilium_host`, VIPs), whatever
    /// `Node.status.addresses` says: `host`.
    pub local: FxHashSet<IpAddr>,
    /// Resolved addresses (and whether final), shared by every record of the same address
    /// until the inventory or the local addresses change (an address that is not final, with
    /// other DNS names, is resolved again). Bounded: cleared past [`CACHE_MAX`].
    cache: FxHashMap<IpAddr, (Arc<RecordEndpoint>, bool)>,
}

impl Identity {
    pub fn new(inventory: Option<Inventory>, node: Option<String>) -> Self {
        Self {
            inventory,
            node,
            ..Self::default()
        }
    }

    /// A new identity index (from the watch); what was resolved with the old one stays with
    /// the records that resolved it.
    pub fn set_inventory(&mut self, inventory: Inventory) {
        self.inventory = Some(inventory);
        self.cache.clear();
    }

    /// This node's addresses, read again.
    pub fn set_local(&mut self, local: FxHashSet<IpAddr>) {
        if local != self.local {
            self.local = local;
            self.cache.clear();
        }
    }

    /// The aggregation key of an address.
    pub fn who(&self, ip: IpAddr) -> Who {
        match self.inventory.as_ref().and_then(|inv| inv.pod_by_ip(ip)) {
            Some(pod) => Who::Workload(format!("{}/{}", pod.namespace, pod.workload)),
            None => Who::Ip(ip),
        }
    }

    /// Who `ip` is now, without its port, and whether that is final (a pod or a node: kept
    /// with the record for good). `names`: the DNS names it was resolved from, if any.
    pub fn resolve(&mut self, ip: IpAddr, names: Vec<String>) -> (Arc<RecordEndpoint>, bool) {
        if let Some((e, known)) = self.cache.get(&ip)
            && (*known || e.names == names)
        {
            return (e.clone(), *known);
        }
        let e = self.endpoint(ip, None, names);
        let known = e.namespace.is_some()
            || matches!(
                e.entity.as_deref(),
                Some("host" | "remote-node" | "kube-apiserver")
            );
        let e = Arc::new(e);
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(ip, (e.clone(), known));
        (e, known)
    }

    /// The record endpoint of an address; `names` are the DNS names it was resolved from.
    pub fn endpoint(&self, ip: IpAddr, port: Option<u16>, names: Vec<String>) -> RecordEndpoint {
        let mut e = RecordEndpoint {
            ip: Some(ip.to_string()),
            port,
            ..RecordEndpoint::default()
        };
        let local = ip.is_loopback() || self.local.contains(&ip);
        let Some(inv) = &self.inventory else {
            e.entity = Some(if local { "host" } else { "world" }.to_owned());
            if local {
                e.node.clone_from(&self.node);
            } else {
                e.names = names;
            }
            return e;
        };
        if let Some(pod) = inv.pod_by_ip(ip) {
            e.namespace = Some(pod.namespace.clone());
            e.pod = Some(pod.name.clone());
            e.workload = Some(pod.workload.clone());
            e.labels = Some(pod.labels.clone());
            e.service_account = pod.service_account.clone();
            e.node = pod.node.clone();
            return e;
        }
        if local {
            // The local host is one identity (`kube-apiserver` added by the reader when the
            // API server runs here, from the same inventory).
            e.entity = Some("host".to_owned());
            e.node.clone_from(&self.node);
            return e;
        }
        // A Service address (before kube-proxy's translation): the address alone; `netpol
        // verify` and the live audit translate it to a backend with the inventory, as Cilium's
        // policy only ever sees backends.
        if inv.service_by_ip(ip).is_some() {
            return e;
        }
        if let Some(node) = inv.node_by_ip(ip) {
            let entity = if Some(node) == self.node.as_deref() {
                "host"
            } else if inv.is_apiserver(ip) {
                // Cilium's identity 7: `kube-apiserver` and `remote-node`.
                "kube-apiserver"
            } else {
                "remote-node"
            };
            e.entity = Some(entity.to_owned());
            e.node = Some(node.to_owned());
            return e;
        }
        // The API server's address that is no node's (a load balancer, a control plane
        // outside the cluster): the address alone, which the reader labels `kube-apiserver`
        // and world from the inventory, as Cilium's ipcache does.
        if inv.is_apiserver(ip) {
            return e;
        }
        e.entity = Some("world".to_owned());
        e.names = names;
        e
    }
}

/// This node's addresses, from the network namespace the agent runs in (the host's, with
/// `hostNetwork: true`): IPv4 from `/proc/net/fib_trie` (the `/32 host LOCAL` routes of the
/// local table), IPv6 from `/proc/net/if_inet6`.
pub fn local_addresses() -> FxHashSet<IpAddr> {
    let mut out = FxHashSet::default();
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        out.extend(fib_trie_local(&text));
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
        out.extend(if_inet6(&text));
    }
    out
}

/// The addresses of `/32 host LOCAL` entries: a `|-- a.b.c.d` line followed by that route.
fn fib_trie_local(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(ip) = line.strip_prefix("|-- ") {
            last = ip.trim().parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// The addresses of `/proc/net/if_inet6`: 32 hex digits first on each line.
fn if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let hex = l.split_whitespace().next()?;
            let bits = u128::from_str_radix(hex, 16).ok()?;
            (hex.len() == 32).then(|| IpAddr::from(std::net::Ipv6Addr::from(bits)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn local_addresses_are_read_from_the_kernel_tables() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/24 2 0 2\n        |-- 10.0.0.0\n           /24 link UNICAST\n        |-- 10.0.0.7\n           /32 host LOCAL\nLocal:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.7\n        /32 host LOCAL\n     |-- 10.0.0.255\n        /32 link BROADCAST\n     |-- 192.168.1.250\n        /32 host LOCAL\n";
        assert_eq!(
            fib_trie_local(fib),
            vec![
                "10.0.0.7".parse::<IpAddr>().unwrap(),
                "192.168.1.250".parse().unwrap()
            ]
        );
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert_eq!(
            if_inet6(v6),
            vec!["::1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]
        );
        // This machine has a loopback address at least.
        assert!(local_addresses().iter().any(IpAddr::is_loopback));
    }

    #[test]
    fn nodes_are_host_remote_node_or_kube_apiserver() {
        let inventory = r#"{"apiVersion":"v1","kind":"List","items":[
 {"kind":"Node","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.11"}]}},
 {"kind":"Node","metadata":{"name":"n2"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.12"}]}},
 {"kind":"Node","metadata":{"name":"n3"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.13"}]}},
 {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"kubernetes","namespace":"default","labels":{"kubernetes.io/service-name":"kubernetes"}},
  "addressType":"IPv4","endpoints":[{"addresses":["192.168.1.12"]},{"addresses":["203.0.113.10"]}],"ports":[{"name":"https","port":6443,"protocol":"TCP"}]}]}"#;
        let inv = Inventory::parse(inventory, "default").unwrap();
        let mut id = Identity::new(Some(inv), Some("n1".to_owned()));
        id.set_local(["10.0.0.1".parse().unwrap()].into_iter().collect());
        let entity = |id: &mut Identity, ip: &str| {
            let (e, known) = id.resolve(ip.parse().unwrap(), vec!["x.example".to_owned()]);
            (e.entity.clone(), known)
        };
        let named = |what: &str| Some(what.to_owned());
        assert_eq!(entity(&mut id, "192.168.1.11"), (named("host"), true));
        assert_eq!(
            entity(&mut id, "192.168.1.12"),
            (named("kube-apiserver"), true)
        );
        assert_eq!(
            entity(&mut id, "192.168.1.13"),
            (named("remote-node"), true)
        );
        // This node's addresses the Node object does not list: cilium_host, loopback.
        assert_eq!(entity(&mut id, "10.0.0.1"), (named("host"), true));
        assert_eq!(entity(&mut id, "127.0.0.1"), (named("host"), true));
        assert_eq!(entity(&mut id, "::1"), (named("host"), true));
        // An API server outside the nodes: the address alone (the reader labels it), asked again.
        assert_eq!(entity(&mut id, "203.0.113.10"), (None, false));
        let (world, known) = id.resolve(
            "198.51.100.7".parse().unwrap(),
            vec!["x.example".to_owned()],
        );
        assert_eq!(
            (world.entity.as_deref(), &world.names[..], known),
            (Some("world"), &["x.example".to_owned()][..], false)
        );
    }
}
