//! The cluster inventory: `kubectl get pods,services,endpointslices,namespaces,nodes -A -o json`.
//!
//! It resolves what flows and policies leave open: which pod an IP belongs to, a pod's labels,
//! service account and container port names, a namespace's labels, node IPs, and the pods
//! behind a Service (`toServices`, docs/semantics.md §1.9).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::engine::entry::{PeerMatch, ServiceBackends};
use crate::engine::eval::NamedPorts;
use crate::engine::identity::{self, Label, Labels, NamedPort, Peer, Reserved};
use crate::engine::selector::{KeyForm, Requirement, Selector};
use crate::engine::settings::LabelFilter;
use crate::objects::Proto;
use crate::objects::cilium;
use crate::objects::kubernetes::AnyObject;

/// A pod of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    pub node: Option<String>,
    pub host_network: bool,
    pub ips: Vec<IpAddr>,
    pub ports: Arc<Vec<NamedPort>>,
    /// Every container port, named or not (a host-network pod is found by them).
    pub container_ports: Vec<(u16, Proto)>,
    /// `status.phase` is `Running`: it wins an address that a pending pod also claims.
    pub running: bool,
    /// `Deployment/sonarr`, `StatefulSet/postgres`, or `Pod/<name>` without an owner.
    pub workload: String,
    /// What owns the pod as its ownerReference says (`ReplicaSet/sonarr-5d4f8`, `Pod/<name>`
    /// without one); for a workload manifest's template, the workload itself.
    pub owner: String,
    /// The identity labels (§3.2).
    pub identity: Arc<Labels>,
}

/// A Service of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub selector: Option<BTreeMap<String, String>>,
    pub cluster_ips: Vec<IpAddr>,
    /// `(port, protocol, targetPort)`; a named target port stays a name.
    pub ports: Vec<(u16, Proto, TargetPort)>,
    /// The names of the ports, in the same order (EndpointSlices name their ports by them).
    pub port_names: Vec<Option<String>>,
}

/// The endpoints of a Service, from its EndpointSlices (or its legacy `Endpoints` object): what
/// a Service without a selector (`default/kubernetes` above all) is translated to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEndpoints {
    /// Ready addresses, sorted.
    pub addresses: Vec<IpAddr>,
    /// `(name, port, protocol)`; the name is the Service port's.
    pub ports: Vec<(Option<String>, u16, Proto)>,
}

/// The pods a workload manifest (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
/// CronJob, or a bare Pod) would create: its pod template, with the workload's selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The workload's `spec.selector.matchLabels` (the template's labels when it has none):
    /// a pod with these labels in the namespace is one of the workload's.
    pub selector: BTreeMap<String, String>,
    /// The template as a pod without an address (`name` is the workload's).
    pub pod: Pod,
}

/// What a Service address is translated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend<'a> {
    /// A pod the Service selects.
    Pod(&'a Pod),
    /// An endpoint address that is no pod of the inventory (the API server, an external one).
    Address(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// Everything the inventory knows.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Node name → addresses.
    pub nodes: BTreeMap<String, Vec<IpAddr>>,
    /// Node name → the Node's labels.
    pub node_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Endpoints by Service `(namespace, name)`.
    pub endpoints: BTreeMap<(String, String), ServiceEndpoints>,
    /// Workload manifests' pod templates, in input order.
    pub templates: Vec<Template>,
    /// The addresses behind `default/kubernetes`: Cilium gives them the `kube-apiserver`
    /// identity.
    apiserver: std::collections::BTreeSet<IpAddr>,
    by_ip: HashMap<IpAddr, usize>,
    by_name: HashMap<(String, String), usize>,
    service_by_ip: HashMap<IpAddr, usize>,
    node_by_ip: HashMap<IpAddr, String>,
    /// Host-network pods by the addresses they answer on (their own and their node's) and the
    /// container ports they declare; the first pod by name wins.
    host_network_by_port: HashMap<(IpAddr, u16, Proto), usize>,
    port_names: HashMap<(String, Proto), Option<u16>>,
    /// The cluster's name, in the identities of its pods.
    cluster: String,
    /// The agents' identity label filter, when it has entries of its own (`labels`).
    label_filter: Option<LabelFilter>,
}

/// Why an inventory could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl Inventory {
    /// Parse kubectl's JSON (a `List`, one object, or several concatenated).
    pub fn parse(text: &str, cluster: &str) -> Result<Self, InventoryError> {
        Ok(Self::build(Self::parse_objects(text)?, cluster))
    }

    /// From Kubernetes objects as JSON values (a watch cache, say); values that are not
    /// objects of a known kind are skipped. `cluster` is the cluster's name.
    pub fn from_values(values: impl IntoIterator<Item = Json>, cluster: &str) -> Self {
        Self::build(objects(values), cluster)
    }

    /// The universe of a run: the live inventory (kubectl's JSON, when given) and the workload
    /// manifests found beside the policies. Where both describe the same object (kind,
    /// namespace, name), the live one wins.
    pub fn with_manifests(
        live: Option<&str>,
        manifests: impl IntoIterator<Item = Json>,
        cluster: &str,
    ) -> Result<Self, InventoryError> {
        Self::with_manifests_filtered(live, manifests, cluster, None)
    }

    /// [`Inventory::with_manifests`] for agents whose identity label filter has entries of its
    /// own (`labels`).
    pub fn with_manifests_filtered(
        live: Option<&str>,
        manifests: impl IntoIterator<Item = Json>,
        cluster: &str,
        label_filter: Option<&LabelFilter>,
    ) -> Result<Self, InventoryError> {
        let mut all = match live {
            Some(text) => Self::parse_objects(text)?,
            None => Vec::new(),
        };
        let key = |o: &AnyObject| {
            (
                o.kind.clone(),
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone(),
            )
        };
        let known: std::collections::BTreeSet<_> = all.iter().map(key).collect();
        all.extend(
            objects(manifests)
                .into_iter()
                .filter(|o| !known.contains(&key(o))),
        );
        Ok(Self::build_filtered(all, cluster, label_filter))
    }

    fn parse_objects(text: &str) -> Result<Vec<AnyObject>, InventoryError> {
        let mut objects = Vec::new();
        for item in serde_json::Deserializer::from_str(text).into_iter::<AnyObject>() {
            let obj = item.map_err(|e| InventoryError {
                message: format!("invalid inventory JSON: {e}"),
                line: e.line(),
                column: e.column(),
            })?;
            flatten(obj, &mut objects);
        }
        Ok(objects)
    }

    /// The template of the workload `kind/name` in `namespace` (`Deployment/sonarr`).
    pub fn template(&self, namespace: &str, workload: &str) -> Option<&Template> {
        self.templates
            .iter()
            .find(|t| t.pod.namespace == namespace && t.pod.workload == workload)
    }

    /// The template whose selector the identity `labels` of a pod in `namespace` satisfy.
    pub fn template_of(&self, namespace: &str, labels: &Labels) -> Option<&Template> {
        self.templates.iter().find(|t| {
            t.pod.namespace == namespace
                && !t.selector.is_empty()
                && t.selector
                    .iter()
                    .all(|(k, v)| labels.get(Some("k8s"), k) == Some(v.as_str()))
        })
    }

    fn build(objects: Vec<AnyObject>, cluster: &str) -> Self {
        Self::build_filtered(objects, cluster, None)
    }

    fn build_filtered(
        objects: Vec<AnyObject>,
        cluster: &str,
        label_filter: Option<&LabelFilter>,
    ) -> Self {
        let mut inv = Self {
            cluster: cluster.to_owned(),
            label_filter: label_filter.cloned(),
            ..Self::default()
        };
        for obj in &objects {
            if obj.kind == "Namespace" {
                inv.namespaces
                    .insert(obj.metadata.name.clone(), obj.metadata.labels.clone());
            }
        }
        for obj in objects {
            match obj.kind.as_str() {
                // A Pod without a status is a manifest, not a running pod: a template of itself.
                "Pod" if obj.status.is_null() => inv.add_template(&obj),
                "Pod" => inv.add_pod(&obj),
                "Deployment"
                | "StatefulSet"
                | "DaemonSet"
                | "ReplicaSet"
                | "ReplicationController"
                | "Job"
                | "CronJob" => inv.add_template(&obj),
                "Service" => inv.add_service(&obj),
                "Node" => {
                    let ips = field(&obj.status, "addresses")
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| field(a, "address").as_str()?.parse().ok())
                        .collect();
                    inv.nodes.insert(obj.metadata.name.clone(), ips);
                    inv.node_labels
                        .insert(obj.metadata.name.clone(), obj.metadata.labels.clone());
                }
                "EndpointSlice" => inv.add_endpoint_slice(&obj),
                "Endpoints" => inv.add_endpoints(&obj),
                _ => {}
            }
        }
        inv.reindex();
        inv
    }

    fn add_pod(&mut self, obj: &AnyObject) {
        let pod = self.pod_of(
            obj,
            &obj.metadata,
            &obj.spec,
            workload(&obj.metadata),
            owner(&obj.metadata),
        );
        self.pods.push(pod);
    }

    /// A workload manifest's pod template (a bare Pod manifest is its own).
    fn add_template(&mut self, obj: &AnyObject) {
        let spec = &obj.spec;
        let template = match obj.kind.as_str() {
            "Pod" => None,
            "CronJob" => Some(field(field(field(spec, "jobTemplate"), "spec"), "template")),
            _ => Some(field(spec, "template")),
        };
        let (labels, pod_spec) = match template {
            None => (obj.metadata.labels.clone(), spec.clone()),
            Some(t) => (
                string_map(field(field(t, "metadata"), "labels")).unwrap_or_default(),
                field(t, "spec").clone(),
            ),
        };
        let selector_node = match obj.kind.as_str() {
            "ReplicationController" => field(spec, "selector"),
            _ => field(field(spec, "selector"), "matchLabels"),
        };
        let selector = string_map(selector_node)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| labels.clone());
        let meta = crate::objects::kubernetes::Meta {
            labels,
            ..obj.metadata.clone()
        };
        let name = format!("{}/{}", obj.kind, obj.metadata.name);
        let owner = if obj.kind == "Pod" {
            owner(&obj.metadata)
        } else {
            name.clone()
        };
        let pod = self.pod_of(obj, &meta, &pod_spec, name, owner);
        self.templates.push(Template { selector, pod });
    }

    /// A pod from its metadata and spec; `workload` names what runs it.
    fn pod_of(
        &self,
        obj: &AnyObject,
        meta: &crate::objects::kubernetes::Meta,
        spec: &Json,
        workload: String,
        owner: String,
    ) -> Pod {
        let namespace = meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let ips = pod_ips(obj);
        let mut ports = Vec::new();
        let mut container_ports = Vec::new();
        for c in field(spec, "containers").as_array().into_iter().flatten() {
            for p in field(c, "ports").as_array().into_iter().flatten() {
                let Some((name, port, protocol)) = named_port(p, "containerPort") else {
                    continue;
                };
                container_ports.push((port, protocol));
                if let Some(name) = name {
                    ports.push(NamedPort {
                        name: name.to_ascii_lowercase(),
                        port,
                        protocol,
                    });
                }
            }
        }
        let service_account = field(spec, "serviceAccountName")
            .as_str()
            .map(str::to_owned)
            .or_else(|| Some("default".to_owned()));
        let identity = identity::filtered_pod_labels(
            &namespace,
            &meta.labels,
            service_account.as_deref(),
            self.namespaces.get(&namespace),
            &self.cluster,
            self.label_filter.as_ref(),
        );
        Pod {
            workload,
            owner,
            namespace,
            name: meta.name.clone(),
            labels: meta.labels.clone(),
            service_account,
            node: field(spec, "nodeName").as_str().map(str::to_owned),
            host_network: field(spec, "hostNetwork").as_bool().unwrap_or(false),
            ips,
            ports: Arc::new(ports),
            container_ports,
            running: field(&obj.status, "phase").as_str() == Some("Running"),
            identity: Arc::new(identity),
        }
    }

    fn add_service(&mut self, obj: &AnyObject) {
        let spec = &obj.spec;
        let mut cluster_ips: Vec<IpAddr> = field(spec, "clusterIPs")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str()?.parse().ok())
            .collect();
        if let Some(ip) = field(spec, "clusterIP")
            .as_str()
            .and_then(|s| s.parse().ok())
            && !cluster_ips.contains(&ip)
        {
            cluster_ips.push(ip);
        }
        let selector = string_map(field(spec, "selector"));
        let (ports, port_names): (Vec<_>, Vec<_>) = field(spec, "ports")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let (name, port, proto) = named_port(p, "port")?;
                let target = match field(p, "targetPort") {
                    Json::Number(n) => TargetPort::Number(u16::try_from(n.as_u64()?).ok()?),
                    Json::String(s) => TargetPort::Name(s.to_ascii_lowercase()),
                    _ => TargetPort::Number(port),
                };
                Some(((port, proto, target), name))
            })
            .unzip();
        self.services.push(Service {
            namespace: obj
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            name: obj.metadata.name.clone(),
            labels: obj.metadata.labels.clone(),
            selector,
            cluster_ips,
            ports,
            port_names,
        });
    }

    /// An EndpointSlice (`discovery.k8s.io/v1`): its Service is the label
    /// `kubernetes.io/service-name`; endpoints without `conditions.ready: false` count.
    fn add_endpoint_slice(&mut self, obj: &AnyObject) {
        let Some(service) = obj.metadata.labels.get("kubernetes.io/service-name") else {
            return;
        };
        let namespace = obj
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let entry = self
            .endpoints
            .entry((namespace, service.clone()))
            .or_default();
        for endpoint in obj.endpoints.as_array().into_iter().flatten() {
            if field(field(endpoint, "conditions"), "ready").as_bool() == Some(false) {
                continue;
            }
            entry.addresses.extend(
                field(endpoint, "addresses")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str()?.parse::<IpAddr>().ok()),
            );
        }
        entry.ports.extend(endpoint_ports(&obj.ports));
    }

    /// A legacy `Endpoints` object (`v1`): named like its Service.
    fn add_endpoints(&mut self, obj: &AnyObject) {
        let namespace = obj
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let entry = self
            .endpoints
            .entry((namespace, obj.metadata.name.clone()))
            .or_default();
        for subset in obj.subsets.as_array().into_iter().flatten() {
            entry.addresses.extend(
                field(subset, "addresses")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| field(a, "ip").as_str()?.parse::<IpAddr>().ok()),
            );
            entry.ports.extend(endpoint_ports(field(subset, "ports")));
        }
    }

    fn reindex(&mut self) {
        for e in self.endpoints.values_mut() {
            e.addresses.sort();
            e.addresses.dedup();
            e.ports.sort();
            e.ports.dedup();
        }
        self.apiserver = self
            .endpoints
            .get(&("default".to_owned(), "kubernetes".to_owned()))
            .map(|e| e.addresses.iter().copied().collect())
            .unwrap_or_default();
        self.pods
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        self.services
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for (i, p) in self.pods.iter().enumerate() {
            self.by_name
                .insert((p.namespace.clone(), p.name.clone()), i);
            if !p.host_network {
                for ip in &p.ips {
                    // An address two pods claim (one leaving, one starting) is the running one's.
                    let taken = self
                        .by_ip
                        .get(ip)
                        .and_then(|j| self.pods.get(*j))
                        .is_some_and(|holder| holder.running);
                    if !taken || p.running {
                        self.by_ip.insert(*ip, i);
                    }
                }
            }
        }
        // Named ports cluster-wide, as Cilium's map of every endpoint's ports: the pods (not on
        // the host network: those are no Cilium endpoints), and the pods the manifests would
        // create where no running pod of the workload is known (a live pod wins).
        let pods = &self.pods;
        let live = |t: &&Template| {
            pods.iter().any(|p| {
                p.namespace == t.pod.namespace
                    && t.selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            })
        };
        let templates = self.templates.iter().filter(|t| !live(t)).map(|t| &t.pod);
        let mut port_names: HashMap<(String, Proto), Option<u16>> = HashMap::new();
        for p in pods.iter().chain(templates).filter(|p| !p.host_network) {
            for np in p.ports.iter() {
                let slot = port_names
                    .entry((np.name.clone(), np.protocol))
                    .or_insert(Some(np.port));
                if *slot != Some(np.port) {
                    // The same name with different numbers: Cilium resolves it to nothing.
                    *slot = None;
                }
            }
        }
        self.port_names = port_names;
        for (i, s) in self.services.iter().enumerate() {
            for ip in &s.cluster_ips {
                self.service_by_ip.insert(*ip, i);
            }
        }
        for (name, ips) in &self.nodes {
            for ip in ips {
                self.node_by_ip.insert(*ip, name.clone());
            }
        }
        for (i, p) in self.pods.iter().enumerate().filter(|(_, p)| p.host_network) {
            let node_ips = p
                .node
                .as_ref()
                .and_then(|n| self.nodes.get(n))
                .into_iter()
                .flatten();
            for ip in p.ips.iter().chain(node_ips) {
                for (port, proto) in &p.container_ports {
                    self.host_network_by_port
                        .entry((*ip, *port, *proto))
                        .or_insert(i);
                }
            }
        }
    }

    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        self.by_ip.get(&ip).and_then(|i| self.pods.get(*i))
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.by_name
            .get(&(namespace.to_owned(), name.to_owned()))
            .and_then(|i| self.pods.get(*i))
    }

    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.service_by_ip
            .get(&ip)
            .and_then(|i| self.services.get(*i))
    }

    /// The node an IP belongs to.
    /// Whether the address is an endpoint of the `default/kubernetes` Service.
    pub fn is_apiserver(&self, ip: IpAddr) -> bool {
        self.apiserver.contains(&ip)
    }

    pub fn node_by_ip(&self, ip: IpAddr) -> Option<&str> {
        self.node_by_ip.get(&ip).map(String::as_str)
    }

    /// The identity labels of a pod in `namespace` with these pod labels.
    pub fn pod_identity(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        service_account: Option<&str>,
    ) -> Labels {
        identity::filtered_pod_labels(
            namespace,
            labels,
            service_account,
            self.namespaces.get(namespace),
            &self.cluster,
            self.label_filter.as_ref(),
        )
    }

    /// A pod as a flow peer.
    /// Whether an address of the `default/kubernetes` endpoints belongs to `node`.
    fn apiserver_on(&self, node: &str) -> bool {
        self.apiserver
            .iter()
            .any(|ip| self.node_by_ip(*ip) == Some(node))
    }

    /// The host-network pod that listens on `port` at the node address `ip`: a node address
    /// on that port stands for it (its traffic carries the node's identity, `host` or
    /// `remote-node`, docs/semantics.md §5.1).
    pub fn host_network_pod(&self, ip: IpAddr, port: u16, proto: Proto) -> Option<&Pod> {
        self.host_network_by_port
            .get(&(ip, port, proto))
            .and_then(|i| self.pods.get(*i))
    }

    pub fn pod_peer(&self, pod: &Pod) -> Peer {
        Peer {
            labels: pod.identity.clone(),
            ip: pod.ips.first().copied(),
            names: Vec::new(),
            named_ports: pod.ports.clone(),
        }
    }

    /// The peer an IP stands for when nothing else is known: a pod, a node (`host` if it is
    /// the node of `local_node`, else `remote-node`), else world (docs/semantics.md §10.1).
    ///
    /// An address behind the `default/kubernetes` Service also carries `reserved:kube-apiserver`
    /// (Cilium labels the endpoints of that Service so): a node's address then is `host` plus
    /// `kube-apiserver` on its own node and identity 7 (`kube-apiserver`, `remote-node`) on the
    /// others; any other address is `kube-apiserver` plus world, as Cilium adds CIDR and world
    /// labels to an address that is no node (its ipcache's `resolveIdentity`).
    pub fn classify(&self, ip: IpAddr, local_node: Option<&str>) -> Option<Peer> {
        if let Some(pod) = self.pod_by_ip(ip) {
            return Some(self.pod_peer(pod));
        }
        let apiserver = self.apiserver.contains(&ip);
        let node = self.node_by_ip(ip).or_else(|| {
            self.pods
                .iter()
                .find(|p| p.host_network && p.ips.contains(&ip))
                .and_then(|p| p.node.as_deref())
        });
        let labels = match (node, apiserver) {
            (None, false) => return None,
            (None, true) => Labels::new(vec![
                Label::new("reserved", Reserved::KubeApiserver.key(), ""),
                Label::new("reserved", Reserved::World.key(), ""),
            ]),
            (Some(node), _) if Some(node) == local_node => {
                let mut labels = Reserved::Host.labels();
                // The local host is one identity: when the API server runs on this node, every
                // address of the node carries `kube-apiserver` (cilium/cilium@507103c6
                // pkg/ipcache/metadata.go:803-826 merges the labels into the host identity).
                if apiserver || self.apiserver_on(node) {
                    labels.insert(Label::new("reserved", Reserved::KubeApiserver.key(), ""));
                }
                labels
            }
            (Some(_), true) => Reserved::KubeApiserver.labels(),
            (Some(_), false) => Reserved::RemoteNode.labels(),
        };
        let labels = match node {
            Some(node) => self.with_node_labels(&labels, node),
            None => labels,
        };
        Some(Peer {
            labels: Arc::new(labels),
            ip: Some(ip),
            ..Peer::default()
        })
    }

    /// A node's identity labels with the labels of its Node object, as Cilium has them: the
    /// local host's with source `k8s` (its host endpoint's labels, through the identity label
    /// filter), a remote node's with source `node` (the remote-node identity of
    /// `enable-node-selector-labels`). Peer selectors never match them otherwise: endpoint
    /// selectors carry a namespace requirement, node selectors `reserved:remote-node`.
    pub fn with_node_labels(&self, labels: &Labels, node: &str) -> Labels {
        let Some(node_labels) = self.node_labels.get(node).filter(|l| !l.is_empty()) else {
            return labels.clone();
        };
        let mut out = labels.clone();
        let host = labels.reserved(Reserved::Host.key());
        for (k, v) in node_labels {
            if host {
                let dropped = match &self.label_filter {
                    Some(filter) => filter.drops("k8s", k),
                    None => crate::engine::settings::filtered_from_identity(k).is_some(),
                };
                if !dropped {
                    out.insert(Label::new("k8s", k, v));
                }
            } else {
                out.insert(Label::new("node", k, v));
            }
        }
        out
    }

    /// A Service cluster IP and port as the backend Cilium's policy sees after translation
    /// (docs/semantics.md §10.1 step 2, pitfall 6): the first pod (by name) the Service
    /// selects, and the target port; a Service without a selector goes to the first ready
    /// address of its EndpointSlices, on the endpoint port of the same name (the
    /// `default/kubernetes` Service: the API server on 6443 on Talos and kubeadm). `None` if the
    /// IP is no Service's or there is no backend.
    pub fn service_backend(
        &self,
        ip: IpAddr,
        port: Option<u16>,
        proto: Proto,
    ) -> Option<(&Service, Backend<'_>, Option<u16>)> {
        let svc = self.service_by_ip(ip)?;
        let Some(selector) = svc.selector.as_ref() else {
            let endpoints = self
                .endpoints
                .get(&(svc.namespace.clone(), svc.name.clone()))?;
            let address = *endpoints.addresses.first()?;
            let target = port.and_then(|port| {
                let at = svc
                    .ports
                    .iter()
                    .position(|(p, pr, _)| *p == port && *pr == proto)?;
                let name = svc.port_names.get(at).cloned().flatten();
                let same_name: Vec<u16> = endpoints
                    .ports
                    .iter()
                    .filter(|(n, _, pr)| *n == name && *pr == proto)
                    .map(|(_, p, _)| *p)
                    .collect();
                match same_name.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                }
            });
            let backend = match self.pod_by_ip(address) {
                Some(pod) => Backend::Pod(pod),
                None => Backend::Address(address),
            };
            return Some((svc, backend, target.or(port)));
        };
        let pod = self.pods.iter().find(|p| {
            p.namespace == svc.namespace
                && !p.ips.is_empty()
                && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
        })?;
        let target = port.and_then(|port| {
            let (_, _, target) = svc
                .ports
                .iter()
                .find(|(p, pr, _)| *p == port && *pr == proto)?;
            match target {
                TargetPort::Number(n) => Some(*n),
                TargetPort::Name(name) => pod
                    .ports
                    .iter()
                    .find(|np| np.name == *name && np.protocol == proto)
                    .map(|np| np.port),
            }
        });
        Some((svc, Backend::Pod(pod), target.or(port)))
    }
}

impl ServiceBackends for Inventory {
    /// `toServices` expanded (docs/semantics.md §1.9): a Service with a selector becomes a
    /// selector over its pods; one without becomes nothing netpol can resolve.
    fn service_peers(&self, s: &cilium::Service) -> Vec<PeerMatch> {
        let matching: Vec<&Service> = self
            .services
            .iter()
            .filter(|svc| {
                // The selector wins over a name beside it (cilium/cilium@507103c6
                // pkg/policy/k8s/service.go:439-469, `processRule`).
                if let Some(by_label) = &s.k8s_service_selector {
                    let labels = Labels::new(
                        svc.labels
                            .iter()
                            .map(|(k, v)| Label::new("k8s", k, v))
                            .collect(),
                    );
                    by_label
                        .namespace
                        .as_deref()
                        .is_none_or(|ns| ns == svc.namespace)
                        && Selector::compile(&by_label.selector, KeyForm::Cilium).matches(&labels)
                } else if let Some(by_name) = &s.k8s_service {
                    by_name.service_name.as_deref() == Some(svc.name.as_str())
                        && by_name
                            .namespace
                            .as_deref()
                            .is_none_or(|ns| ns == svc.namespace)
                } else {
                    false
                }
            })
            .collect();
        // A Service with a selector is its pods; one without is the addresses of its
        // endpoints, as /32 or /128 CIDRs (cilium/cilium@507103c6 pkg/policy/k8s/service.go:
        // 417-434). No Service: nothing, which the engine reads as no peer field at all.
        matching
            .into_iter()
            .flat_map(|svc| match &svc.selector {
                Some(sel) => {
                    let mut selector = Selector::default();
                    for (k, v) in sel {
                        selector = selector.with(Requirement::equals(Some("k8s"), k, v));
                    }
                    vec![PeerMatch::Labels(selector.with(Requirement::equals(
                        Some("k8s"),
                        identity::NAMESPACE,
                        &svc.namespace,
                    )))]
                }
                None => self
                    .endpoints
                    .get(&(svc.namespace.clone(), svc.name.clone()))
                    .map(|e| {
                        e.addresses
                            .iter()
                            .map(|ip| PeerMatch::Cidr {
                                net: ipnet::IpNet::from(*ip),
                                except: Vec::new(),
                                nodes: false,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }
}

impl NamedPorts for Inventory {
    fn resolve(&self, name: &str, proto: Proto) -> Option<u16> {
        self.port_names
            .get(&(name.to_owned(), proto))
            .copied()
            .flatten()
    }
}

static NULL: Json = Json::Null;

/// A pod's addresses (`status.podIPs`, `status.podIP`); none for a manifest.
fn pod_ips(obj: &AnyObject) -> Vec<IpAddr> {
    // A pod that has finished (a Job's, an evicted one) holds no address any more, even if its
    // status still shows one: the address may already be another pod's.
    if matches!(
        field(&obj.status, "phase").as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return Vec::new();
    }
    let mut ips: Vec<IpAddr> = field(&obj.status, "podIPs")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| field(p, "ip").as_str()?.parse().ok())
        .collect();
    if let Some(ip) = field(&obj.status, "podIP")
        .as_str()
        .and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// Kubernetes objects from JSON values; values that are no object are skipped.
fn objects(values: impl IntoIterator<Item = Json>) -> Vec<AnyObject> {
    let mut objects = Vec::new();
    for v in values {
        if let Ok(obj) = serde_json::from_value::<AnyObject>(v) {
            flatten(obj, &mut objects);
        }
    }
    objects
}

/// The `ports` of an EndpointSlice or of an `Endpoints` subset.
fn endpoint_ports(ports: &Json) -> Vec<(Option<String>, u16, Proto)> {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| named_port(p, "port"))
        .collect()
}

/// A port object of the API: its `name` (when not empty), the number under `number_key`
/// (`port`, `containerPort`) and its `protocol` (TCP when absent).
fn named_port(p: &Json, number_key: &str) -> Option<(Option<String>, u16, Proto)> {
    let port = u16::try_from(field(p, number_key).as_u64()?).ok()?;
    let proto = field(p, "protocol")
        .as_str()
        .and_then(Proto::parse)
        .unwrap_or(Proto::Tcp);
    let name = field(p, "name").as_str().filter(|n| !n.is_empty());
    Some((name.map(str::to_owned), port, proto))
}

/// A map of strings (labels, a selector); entries whose value is no string are left out.
fn string_map(v: &Json) -> Option<BTreeMap<String, String>> {
    v.as_object().map(|m| {
        m.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    })
}

/// A key of a JSON object, `null` when absent.
fn field<'a>(v: &'a Json, key: &str) -> &'a Json {
    v.get(key).unwrap_or(&NULL)
}

fn flatten(obj: AnyObject, out: &mut Vec<AnyObject>) {
    match obj.items {
        Some(items) => {
            let implied = obj.kind.strip_suffix("List").unwrap_or_default().to_owned();
            for mut item in items {
                if item.kind.is_empty() {
                    item.kind.clone_from(&implied);
                }
                flatten(item, out);
            }
        }
        None => out.push(obj),
    }
}

/// The direct owner of a pod as its ownerReference says (the controller first), or the pod.
fn owner(meta: &crate::objects::kubernetes::Meta) -> String {
    meta.owner_references
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| meta.owner_references.first())
        .map_or_else(
            || format!("Pod/{}", meta.name),
            |o| format!("{}/{}", o.kind, o.name),
        )
}

/// The workload owning a pod: a ReplicaSet's Deployment, or the direct controller.
fn workload(meta: &crate::objects::kubernetes::Meta) -> String {
    let owner = meta
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| meta.owner_references.first());
    match owner {
        Some(o) if o.kind == "ReplicaSet" => {
            let hash = meta.labels.get("pod-template-hash");
            let name = match hash.and_then(|h| o.name.strip_suffix(&format!("-{h}"))) {
                Some(deploy) => deploy.to_owned(),
                None => o
                    .name
                    .rsplit_once('-')
                    .map_or(o.name.clone(), |(d, _)| d.to_owned()),
            };
            format!("Deployment/{name}")
        }
        Some(o) => format!("{}/{}", o.kind, o.name),
        None => format!("Pod/{}", meta.name),
    }
}
