//! Who an address is: a pod (namespace, workload, labels, service account), a node (`host` for
//! this node, `remote-node` for the others), a Service address, or the world — from the inventory
//! (`--inventory`, the `kubectl get … -o json` of `netpol verify`).

use std::net::IpAddr;

use netpol_compiler::flow::RecordEndpoint;
use netpol_compiler::flow::inventory::Inventory;

use crate::aggregate::Who;

/// Address → identity.
#[derive(Debug, Default)]
pub struct Identity {
    pub inventory: Option<Inventory>,
    /// This node's name, to tell `host` from `remote-node`.
    pub node: Option<String>,
}

impl Identity {
    /// The aggregation key of an address.
    pub fn who(&self, ip: IpAddr) -> Who {
        match self.inventory.as_ref().and_then(|inv| inv.pod_by_ip(ip)) {
            Some(pod) => Who::Workload(format!("{}/{}", pod.namespace, pod.workload)),
            None => Who::Ip(ip),
        }
    }

    /// The record endpoint of an address; `names` are the DNS names it was resolved from.
    pub fn endpoint(&self, ip: IpAddr, port: Option<u16>, names: Vec<String>) -> RecordEndpoint {
        let mut e = RecordEndpoint {
            ip: Some(ip.to_string()),
            port,
            ..RecordEndpoint::default()
        };
        let Some(inv) = &self.inventory else {
            e.entity = Some("world".to_owned());
            e.names = names;
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
        // A Service address (before kube-proxy's translation): the address alone; `netpol
        // verify` and the live audit translate it to a backend with the inventory, as Cilium's
        // policy only ever sees backends.
        if inv.service_by_ip(ip).is_some() {
            return e;
        }
        if let Some(node) = inv.node_by_ip(ip) {
            e.entity = Some(
                if Some(node) == self.node.as_deref() {
                    "host"
                } else {
                    "remote-node"
                }
                .to_owned(),
            );
            e.node = Some(node.to_owned());
            return e;
        }
        e.entity = Some("world".to_owned());
        e.names = names;
        e
    }
}
