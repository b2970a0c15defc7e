//! Workloads as users name them on the command line and in expectation files: `ns/name`, and
//! the port names of the workload a flow goes to.
//!
//! ```text
//! `media/sonarr` ──> a pod of the inventory, by its name
//!                ├─> a profile's service: its `select` labels in its namespace (a running
//!                │   pod or a manifest's template with those labels, when there is one)
//!                ├─> a running pod of the workload of that name (`Deployment/sonarr`)
//!                └─> a workload of the cluster: running pods by owner, workload manifests
//!                    (the universe of `connectivity`)
//! `postgresql`   ──> the profile service's named ports first, then the pods' container ports
//! ```
//!
//! `explain` resolves its REFs and `--port` here, `verify --expect` its workload names and
//! port names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diagnostic::spelling::closest;
use crate::engine::identity::{NamedPort, Peer};
use crate::flow::inventory::{Inventory, Pod};
use crate::flow::universe::{Declared, Mentions, NodeKind, Universe};
use crate::objects::Proto;

/// Every workload a run knows by name.
#[derive(Debug)]
pub struct Workloads<'a> {
    inventory: Option<&'a Inventory>,
    declared: &'a [Declared],
    cluster: String,
    universe: Universe,
}

/// A workload found by its name.
#[derive(Debug, Clone)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    /// `Pod`, `Deployment`, … or `Profile` for a profile's service.
    pub kind: String,
    /// How the workload's pods appear in flows: their identity (a pod of the workload's when
    /// one is known) and container ports.
    pub peer: Peer,
    /// The port names to resolve against: a profile service's own, then the pods' container
    /// ports.
    pub ports: Vec<NamedPort>,
}

impl<'a> Workloads<'a> {
    /// The workloads of `inventory` (running pods and workload manifests) and the profiles'
    /// services, `declared`, for the cluster named `cluster`.
    pub fn new(inventory: Option<&'a Inventory>, declared: &'a [Declared], cluster: &str) -> Self {
        let empty;
        let everything = match inventory {
            Some(inv) => inv,
            None => {
                empty = Inventory::with_manifests(None, std::iter::empty(), cluster)
                    .unwrap_or_default();
                &empty
            }
        };
        let universe = Universe::new(everything, declared, &Mentions::default());
        Self {
            inventory,
            declared,
            cluster: cluster.to_owned(),
            universe,
        }
    }

    /// The live inventory and the workload manifests, when given.
    pub fn inventory(&self) -> Option<&'a Inventory> {
        self.inventory
    }

    /// The cluster's name, in the identities of its pods.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Whether no workload at all is known by name (no inventory, manifest or profile).
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty()
            && self
                .inventory
                .is_none_or(|inv| inv.pods.is_empty() && inv.templates.is_empty())
    }

    /// The profiles' services.
    pub fn declared(&self) -> &[Declared] {
        self.declared
    }

    /// The workload `namespace/name`: a pod of the inventory, else a profile's service, else a
    /// running pod of the workload of that name, else a workload of the cluster. The error says what is known instead (one line, then a
    /// `help:` line).
    pub fn find(&self, namespace: &str, name: &str) -> Result<Workload, String> {
        if let Some(inv) = self.inventory
            && let Some(pod) = inv.pod(namespace, name)
        {
            return Ok(Workload {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                kind: "Pod".to_owned(),
                peer: inv.pod_peer(pod),
                ports: pod.ports.to_vec(),
            });
        }
        if let Some(d) = self
            .declared
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
        {
            return Ok(self.service(d));
        }
        // A running pod of the workload (`Deployment/sonarr`, whatever owns its ReplicaSet).
        if let Some(inv) = self.inventory
            && let Some(pod) = inv.pods.iter().find(|p| {
                p.namespace == namespace
                    && p.workload.split_once('/').is_some_and(|(_, n)| n == name)
            })
        {
            let kind = pod.workload.split_once('/').map_or("Pod", |(k, _)| k);
            return Ok(Workload {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                kind: kind.to_owned(),
                peer: inv.pod_peer(pod),
                ports: pod.ports.to_vec(),
            });
        }
        let node = self.universe.nodes.iter().find(|n| {
            matches!(&n.kind, NodeKind::Workload { namespace: ns, name: n, .. } if ns == namespace && n == name)
        });
        if let Some(node) = node
            && let NodeKind::Workload { kind, .. } = &node.kind
        {
            return Ok(Workload {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                kind: kind.clone(),
                peer: node.peer.clone(),
                ports: node.peer.named_ports.to_vec(),
            });
        }
        Err(self.unknown(namespace, name))
    }

    /// A profile's service: the pods its labels select, as a running pod or a manifest's
    /// template shows them when one has the labels; else a pod with just those labels.
    fn service(&self, d: &Declared) -> Workload {
        let selects = |p: &Pod| {
            p.namespace == d.namespace
                && !d.labels.is_empty()
                && d.labels.iter().all(|(k, v)| p.labels.get(k) == Some(v))
        };
        let pod = self.inventory.and_then(|inv| {
            inv.pods
                .iter()
                .chain(inv.templates.iter().map(|t| &t.pod))
                .find(|p| selects(p))
                .map(|p| inv.pod_peer(p))
        });
        let peer = match pod {
            Some(peer) => peer,
            None => {
                // The universe stands for the service with a pod of its labels.
                let node = self.universe.nodes.iter().find(|n| {
                    matches!(&n.kind, NodeKind::Workload { namespace, name, .. } if *namespace == d.namespace && *name == d.name)
                });
                match node {
                    Some(n) => n.peer.clone(),
                    None => Peer {
                        named_ports: Arc::new(d.ports.clone()),
                        ..Peer::default()
                    },
                }
            }
        };
        let mut ports = d.ports.clone();
        ports.extend(peer.named_ports.iter().cloned());
        Workload {
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            kind: "Profile".to_owned(),
            peer,
            ports,
        }
    }

    /// Every `namespace/name` this run knows: pods, profile services, workloads.
    fn names(&self) -> BTreeSet<(String, String)> {
        let mut names = BTreeSet::new();
        if let Some(inv) = self.inventory {
            for p in &inv.pods {
                names.insert((p.namespace.clone(), p.name.clone()));
                if let Some((_, workload)) = p.workload.split_once('/') {
                    names.insert((p.namespace.clone(), workload.to_owned()));
                }
            }
        }
        for d in self.declared {
            names.insert((d.namespace.clone(), d.name.clone()));
        }
        for n in &self.universe.nodes {
            if let NodeKind::Workload {
                namespace, name, ..
            } = &n.kind
            {
                names.insert((namespace.clone(), name.clone()));
            }
        }
        names
    }

    fn unknown(&self, namespace: &str, name: &str) -> String {
        let names = self.names();
        if names.is_empty() {
            return format!(
                "no pod or workload `{namespace}/{name}` is known\n  help: give the profiles or workload manifests with --policies or --manifests, a live --inventory, or write its labels as `ns:{namespace},app=…`"
            );
        }
        let wanted = format!("{namespace}/{name}");
        let all: Vec<String> = names.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
        let help = match closest(&wanted, all.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => {
                let here: Vec<&str> = names
                    .iter()
                    .filter(|(ns, _)| ns == namespace)
                    .map(|(_, n)| n.as_str())
                    .collect();
                if here.is_empty() {
                    let namespaces: BTreeSet<&str> =
                        names.iter().map(|(ns, _)| ns.as_str()).collect();
                    format!(
                        "no workload is known in namespace `{namespace}`; the namespaces are {}",
                        quoted(namespaces)
                    )
                } else {
                    format!("the workloads of `{namespace}` are {}", quoted(here))
                }
            }
        };
        format!("no pod or workload `{namespace}/{name}` is known\n  help: {help}")
    }
}

/// `` `a`, `b`, `c` `` (the first 20, then how many more).
fn quoted<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    let items: Vec<&str> = items.into_iter().collect();
    let mut shown: Vec<String> = items.iter().take(20).map(|i| format!("`{i}`")).collect();
    if items.len() > 20 {
        shown.push(format!("and {} more", items.len() - 20));
    }
    shown.join(", ")
}

/// `http (8989/tcp)`.
fn port_text(p: &NamedPort) -> String {
    if p.protocol.is_icmp() {
        format!("{} ({}/{})", p.name, p.protocol, p.port)
    } else {
        format!("{} ({}/{})", p.name, p.port, p.protocol)
    }
}

impl Workload {
    /// `media/sonarr`.
    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The ports named `name` (of `protocol` when given), each once: one, or several when the
    /// name stands for several protocols (`dns`: 53/udp and 53/tcp). An unknown name is an
    /// error with a "did you mean" and the workload's ports.
    pub fn ports_named(
        &self,
        name: &str,
        protocol: Option<Proto>,
    ) -> Result<Vec<(Proto, u16)>, String> {
        let mut found: Vec<(Proto, u16)> = Vec::new();
        for p in &self.ports {
            if p.name.eq_ignore_ascii_case(name)
                && protocol.is_none_or(|want| want == p.protocol)
                && !found.contains(&(p.protocol, p.port))
            {
                found.push((p.protocol, p.port));
            }
        }
        if !found.is_empty() {
            return Ok(found);
        }
        let mut listed: Vec<String> = Vec::new();
        for p in &self.ports {
            let text = port_text(p);
            if !listed.contains(&text) {
                listed.push(text);
            }
        }
        let owner = self.display();
        if listed.is_empty() {
            return Err(format!(
                "`{owner}` has no named ports, so `{name}` means nothing there\n  help: write the port as a number: `443/tcp`, `53/udp`, `icmp/8`"
            ));
        }
        let what = match protocol {
            Some(p) => format!("no {p} port named `{name}`"),
            None => format!("no port named `{name}`"),
        };
        let names: BTreeMap<&str, ()> = self.ports.iter().map(|p| (p.name.as_str(), ())).collect();
        let hint = match closest(name, names.keys().copied()) {
            Some(best) if !best.eq_ignore_ascii_case(name) => format!("did you mean `{best}`? "),
            _ => String::new(),
        };
        Err(format!(
            "`{owner}` has {what}\n  help: {hint}its ports: {}",
            listed.join(", ")
        ))
    }

    /// The one port named `name` (`postgresql`, `dns/udp`): several (a name over several
    /// protocols) is an error that lists them.
    pub fn port_named(&self, name: &str, protocol: Option<Proto>) -> Result<(Proto, u16), String> {
        let found = self.ports_named(name, protocol)?;
        match found.as_slice() {
            [one] => Ok(*one),
            many => {
                let choices: Vec<String> =
                    many.iter().map(|(p, _)| format!("`{name}/{p}`")).collect();
                let ports: Vec<String> = many.iter().map(|(p, n)| format!("{n}/{p}")).collect();
                Err(format!(
                    "the port name `{name}` of `{}` is ambiguous: it is {}\n  help: write {}",
                    self.display(),
                    ports.join(" and "),
                    choices.join(" or ")
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn declared() -> Vec<Declared> {
        let port = |name: &str, port: u16, protocol: Proto| NamedPort {
            name: name.to_owned(),
            port,
            protocol,
        };
        vec![
            Declared {
                namespace: "databases".into(),
                name: "arr-postgres".into(),
                kind: "Profile".into(),
                labels: BTreeMap::from([("cnpg.io/cluster".into(), "arr-postgres".into())]),
                ports: vec![
                    port("postgresql", 5432, Proto::Tcp),
                    port("status", 8000, Proto::Tcp),
                ],
                host_network: false,
            },
            Declared {
                namespace: "kube-system".into(),
                name: "coredns".into(),
                kind: "Profile".into(),
                labels: BTreeMap::from([("k8s-app".into(), "kube-dns".into())]),
                ports: vec![port("dns", 53, Proto::Udp), port("dns", 53, Proto::Tcp)],
                host_network: false,
            },
        ]
    }

    #[test]
    fn a_profile_service_is_its_labels_in_its_namespace_and_its_port_names() {
        let d = declared();
        let w = Workloads::new(None, &d, "default");
        let pg = w.find("databases", "arr-postgres").unwrap();
        assert_eq!(pg.kind, "Profile");
        let labels = pg.peer.labels.to_string();
        assert!(
            labels.contains("k8s:cnpg.io/cluster=arr-postgres"),
            "{labels}"
        );
        assert!(
            labels.contains("k8s:io.kubernetes.pod.namespace=databases"),
            "{labels}"
        );
        assert_eq!(
            pg.port_named("postgresql", None).unwrap(),
            (Proto::Tcp, 5432)
        );
        let dns = w.find("kube-system", "coredns").unwrap();
        assert_eq!(
            dns.port_named("dns", Some(Proto::Udp)).unwrap(),
            (Proto::Udp, 53)
        );
        assert_eq!(
            dns.port_named("dns", None).unwrap_err(),
            "the port name `dns` of `kube-system/coredns` is ambiguous: it is 53/udp and 53/tcp\n  help: write `dns/udp` or `dns/tcp`"
        );
        assert_eq!(
            pg.port_named("postgres", None).unwrap_err(),
            "`databases/arr-postgres` has no port named `postgres`\n  help: did you mean `postgresql`? its ports: postgresql (5432/tcp), status (8000/tcp)"
        );
    }

    #[test]
    fn a_running_pod_stands_for_its_workload_and_its_profile_service() {
        let inventory = Inventory::parse(
            r#"{"kind":"List","items":[
{"kind":"Pod","metadata":{"name":"sonarr-5d8f7c9b6-x2kq9","namespace":"media","labels":{"app.kubernetes.io/name":"sonarr","pod-template-hash":"5d8f7c9b6"},"ownerReferences":[{"kind":"ReplicaSet","name":"sonarr-5d8f7c9b6","controller":true}]},"spec":{"serviceAccountName":"sonarr","containers":[{"name":"sonarr","ports":[{"name":"http","containerPort":8989}]}]},"status":{"phase":"Running","podIP":"10.42.0.5"}},
{"kind":"Pod","metadata":{"name":"arr-postgres-1","namespace":"databases","labels":{"cnpg.io/cluster":"arr-postgres"}},"spec":{"containers":[{"name":"postgres","ports":[{"name":"postgresql","containerPort":5432}]}]},"status":{"phase":"Running","podIP":"10.42.1.7"}}]}"#,
            "default",
        )
        .unwrap();
        let d = declared();
        let w = Workloads::new(Some(&inventory), &d, "default");
        let sonarr = w.find("media", "sonarr").unwrap();
        assert_eq!(sonarr.kind, "Deployment");
        assert_eq!(sonarr.peer.ip, Some("10.42.0.5".parse().unwrap()));
        assert_eq!(sonarr.port_named("http", None).unwrap(), (Proto::Tcp, 8989));
        assert!(
            sonarr
                .peer
                .labels
                .to_string()
                .contains("k8s:io.cilium.k8s.policy.serviceaccount=sonarr")
        );
        // The profile's service is its running pod, with the profile's port names first.
        let pg = w.find("databases", "arr-postgres").unwrap();
        assert_eq!(pg.kind, "Profile");
        assert_eq!(pg.peer.ip, Some("10.42.1.7".parse().unwrap()));
        assert_eq!(pg.port_named("status", None).unwrap(), (Proto::Tcp, 8000));
        assert_eq!(
            pg.port_named("postgresql", None).unwrap(),
            (Proto::Tcp, 5432)
        );
        // A pod by its own name.
        assert_eq!(
            w.find("media", "sonarr-5d8f7c9b6-x2kq9").unwrap().kind,
            "Pod"
        );
        assert!(
            w.find("media", "sonar")
                .unwrap_err()
                .contains("did you mean `media/sonarr`?")
        );
    }

    #[test]
    fn an_unknown_name_suggests_a_known_one() {
        let d = declared();
        let w = Workloads::new(None, &d, "default");
        assert_eq!(
            w.find("databases", "arr-postgre").unwrap_err(),
            "no pod or workload `databases/arr-postgre` is known\n  help: did you mean `databases/arr-postgres`?"
        );
        assert!(
            w.find("games", "minecraft")
                .unwrap_err()
                .contains("no workload is known in namespace `games`; the namespaces are `databases`, `kube-system`")
        );
        let none = Workloads::new(None, &[], "default");
        assert!(none.is_empty());
        assert!(
            none.find("media", "sonarr")
                .unwrap_err()
                .contains("give the profiles")
        );
    }
}
