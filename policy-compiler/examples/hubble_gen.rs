//! Generates a homelab-shaped cluster for `netpol verify`: 1,000 CiliumNetworkPolicies (20
//! namespaces × 50 workloads) and 10 CiliumClusterwideNetworkPolicies, and Hubble flows
//! between its pods, CoreDNS, the world and the nodes (`hubble observe -o jsonpb` lines, with
//! replies). Deterministic: the same arguments always give the same bytes.
//!
//! ```text
//! cargo run --release --example hubble_gen -- 1000000 > /tmp/hubble-1m.jsonl
//! cargo run --release --example hubble_gen -- policies /tmp/netpol-policies
//! ./target/release/netpol verify --policies /tmp/netpol-policies \
//!     --flows /tmp/hubble-1m.jsonl --format json > /dev/null
//! ```
//!
//! `benches/engine.rs` includes this file as a module, so the benchmarks and the end-to-end
//! measurement judge the same policies and the same kind of flows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitCode;

use netpol_compiler::engine::identity::{self, Labels};
use netpol_compiler::engine::settings::DEFAULT_CLUSTER;

/// The namespaces; `kube-system` also runs CoreDNS, `monitoring/svc0` is Prometheus.
pub const NAMESPACES: [&str; 20] = [
    "kube-system",
    "media",
    "monitoring",
    "home",
    "databases",
    "auth",
    "ingress",
    "cert-manager",
    "dns",
    "backup",
    "photos",
    "docs",
    "git",
    "ci",
    "logging",
    "mail",
    "vpn",
    "storage",
    "games",
    "dev",
];
/// Workloads (and CNPs) per namespace.
pub const WORKLOADS_PER_NAMESPACE: usize = 50;
/// The port Prometheus scrapes on every pod.
pub const METRICS_PORT: u16 = 9090;
const SERVICE_PORTS: [u16; 8] = [80, 443, 3000, 5432, 6379, 8080, 8443, 9000];
/// `api0.example.com` … : the DNS names pods talk to.
const FQDN_NAMES: usize = 200;
/// `192.168.0.0/24` … : LAN subnets (NAS, printers, IoT) some pods reach by CIDR.
const LAN_SUBNETS: usize = 20;
const NODES: usize = 3;
/// Workload index of Prometheus (`monitoring/svc0`).
const PROMETHEUS: usize = 2 * WORKLOADS_PER_NAMESPACE;

/// A tiny deterministic generator (the benchmark must measure the same input every run).
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.next(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        items.get(self.next(items.len())).copied()
    }
}

/// One Deployment and its CiliumNetworkPolicy.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    pub namespace: &'static str,
    pub app: String,
    /// The port it serves on.
    pub port: u16,
    /// Workloads allowed to connect to it (indices into [`Cluster::workloads`]).
    pub clients: Vec<usize>,
    /// Workloads it connects to.
    pub servers: Vec<usize>,
    /// `toFQDNs` names (`api{n}.example.com`).
    pub fqdns: Vec<usize>,
    /// `toCIDRSet` `192.168.{n}.0/24` except the router.
    pub lan: Option<usize>,
    /// `toEntities: [kube-apiserver]`.
    pub apiserver: bool,
    /// `toEntities: [world]` on 80 and 443.
    pub world: bool,
    /// `fromEntities: [ingress, host]` on its port.
    pub public: bool,
    /// `ingressDeny` from the world.
    pub deny_world: bool,
    /// `egressDeny` to the cloud metadata address.
    pub deny_metadata: bool,
}

/// The generated cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub workloads: Vec<Workload>,
}

/// The cluster (always the same one).
pub fn cluster() -> Cluster {
    let mut rng = Lcg(7);
    let mut workloads = Vec::new();
    for ns in NAMESPACES {
        for i in 0..WORKLOADS_PER_NAMESPACE {
            workloads.push(Workload {
                namespace: ns,
                app: format!("svc{i}"),
                port: rng.pick(&SERVICE_PORTS).unwrap_or(8080),
                ..Workload::default()
            });
        }
    }
    let n = workloads.len();
    let mut edges = Vec::new();
    for server in 0..n {
        let ns = server / WORKLOADS_PER_NAMESPACE;
        for _ in 0..1 + rng.next(4) {
            // Mostly neighbours in the same namespace.
            let client = if rng.chance(70) {
                ns * WORKLOADS_PER_NAMESPACE + rng.next(WORKLOADS_PER_NAMESPACE)
            } else {
                rng.next(n)
            };
            if client != server {
                edges.push((client, server));
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    for (client, server) in edges {
        if let Some(w) = workloads.get_mut(server) {
            w.clients.push(client);
        }
        if let Some(w) = workloads.get_mut(client) {
            w.servers.push(server);
        }
    }
    for w in &mut workloads {
        if rng.chance(40) {
            let count = 1 + rng.next(3);
            w.fqdns = (0..count).map(|_| rng.next(FQDN_NAMES)).collect();
            w.fqdns.sort_unstable();
            w.fqdns.dedup();
        }
        w.lan = rng.chance(15).then(|| rng.next(LAN_SUBNETS));
        w.apiserver = rng.chance(10);
        w.world = rng.chance(10);
        w.public = rng.chance(15);
        w.deny_world = rng.chance(10);
        w.deny_metadata = rng.chance(10);
    }
    Cluster { workloads }
}

/// The identity labels of a workload's pods.
pub fn pod_identity(w: &Workload) -> Labels {
    let labels = BTreeMap::from([
        ("app".to_owned(), w.app.clone()),
        ("version".to_owned(), "v1".to_owned()),
    ]);
    let ns_labels = BTreeMap::from([(
        "pod-security.kubernetes.io/enforce".to_owned(),
        "baseline".to_owned(),
    )]);
    identity::pod_labels(
        w.namespace,
        &labels,
        Some(&w.app),
        Some(&ns_labels),
        DEFAULT_CLUSTER,
    )
}

/// The identity labels of CoreDNS.
pub fn kube_dns_identity() -> Labels {
    let labels = BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]);
    identity::pod_labels(
        "kube-system",
        &labels,
        Some("coredns"),
        None,
        DEFAULT_CLUSTER,
    )
}

// ---------------------------------------------------------------------------------------------
// Policies

fn to_ports(s: &mut String, ports: &[(u16, &str)]) {
    s.push_str("      toPorts:\n        - ports:\n");
    for (port, proto) in ports {
        let _ = write!(
            s,
            "            - port: \"{port}\"\n              protocol: {proto}\n"
        );
    }
}

const DNS_EGRESS: &str = r#"    - toEndpoints:
        - matchLabels:
            "k8s:io.kubernetes.pod.namespace": kube-system
            k8s-app: kube-dns
      toPorts:
        - ports:
            - port: "53"
              protocol: ANY
          rules:
            dns:
              - matchPattern: "*"
"#;

fn peer_selector(s: &mut String, from: &Workload, to: &Workload) {
    let _ = writeln!(s, "        - matchLabels:\n            app: {}", to.app);
    if to.namespace != from.namespace {
        let _ = writeln!(
            s,
            "            \"k8s:io.kubernetes.pod.namespace\": {}",
            to.namespace
        );
    }
}

fn cnp(cluster: &Cluster, w: &Workload) -> String {
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {app}\n  namespace: {ns}\nspec:\n  endpointSelector:\n    matchLabels:\n      app: {app}\n",
        app = w.app,
        ns = w.namespace
    );
    let mut ingress = String::new();
    let clients: Vec<&Workload> = w
        .clients
        .iter()
        .filter_map(|c| cluster.workloads.get(*c))
        .collect();
    if !clients.is_empty() {
        ingress.push_str("    - fromEndpoints:\n");
        for c in clients {
            peer_selector(&mut ingress, w, c);
        }
        to_ports(&mut ingress, &[(w.port, "TCP")]);
    }
    if w.public {
        ingress.push_str("    - fromEntities: [ingress, host]\n");
        to_ports(&mut ingress, &[(w.port, "TCP")]);
    }
    if !ingress.is_empty() {
        s.push_str("  ingress:\n");
        s.push_str(&ingress);
    }
    if w.deny_world {
        s.push_str("  ingressDeny:\n    - fromEntities: [world]\n");
    }
    s.push_str("  egress:\n");
    s.push_str(DNS_EGRESS);
    for server in w.servers.iter().filter_map(|i| cluster.workloads.get(*i)) {
        s.push_str("    - toEndpoints:\n");
        peer_selector(&mut s, w, server);
        to_ports(&mut s, &[(server.port, "TCP")]);
    }
    if !w.fqdns.is_empty() {
        s.push_str("    - toFQDNs:\n");
        for n in &w.fqdns {
            let _ = writeln!(s, "        - matchName: api{n}.example.com");
        }
        to_ports(&mut s, &[(443, "TCP")]);
    }
    if let Some(k) = w.lan {
        let _ = write!(
            s,
            "    - toCIDRSet:\n        - cidr: 192.168.{k}.0/24\n          except:\n            - 192.168.{k}.1/32\n"
        );
        to_ports(&mut s, &[(5432, "TCP")]);
    }
    if w.apiserver {
        s.push_str("    - toEntities: [kube-apiserver]\n");
        to_ports(&mut s, &[(6443, "TCP")]);
    }
    if w.world {
        s.push_str("    - toEntities: [world]\n");
        to_ports(&mut s, &[(80, "TCP"), (443, "TCP")]);
    }
    if w.deny_metadata {
        s.push_str("  egressDeny:\n    - toCIDR: [169.254.169.254/32]\n");
    }
    s
}

const CLUSTERWIDE: &str = r#"apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: cluster-dns
spec:
  endpointSelector: {}
  egress:
    - toEndpoints:
        - matchLabels:
            "k8s:io.kubernetes.pod.namespace": kube-system
            k8s-app: kube-dns
      toPorts:
        - ports:
            - port: "53"
              protocol: ANY
          rules:
            dns:
              - matchPattern: "*"
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: kube-dns-ingress
spec:
  endpointSelector:
    matchLabels:
      "k8s:io.kubernetes.pod.namespace": kube-system
      k8s-app: kube-dns
  ingress:
    - fromEntities: [cluster]
      toPorts:
        - ports:
            - port: "53"
              protocol: ANY
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: deny-cloud-metadata
spec:
  endpointSelector: {}
  egressDeny:
    - toCIDRSet:
        - cidr: 169.254.0.0/16
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: prometheus-scrape
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints:
        - matchLabels:
            "k8s:io.kubernetes.pod.namespace": monitoring
            app: svc0
      toPorts:
        - ports:
            - port: "9090"
              protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: prometheus-egress
spec:
  endpointSelector:
    matchLabels:
      "k8s:io.kubernetes.pod.namespace": monitoring
      app: svc0
  egress:
    - toEndpoints:
        - {}
      toPorts:
        - ports:
            - port: "9090"
              protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: health
spec:
  endpointSelector:
    matchLabels:
      "reserved:health": ""
  ingress:
    - fromEntities: [host, remote-node]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: apiserver-for-ci
spec:
  endpointSelector:
    matchExpressions:
      - key: "k8s:io.kubernetes.pod.namespace"
        operator: In
        values: [ci, dev]
  egress:
    - toEntities: [kube-apiserver]
      toPorts:
        - ports:
            - port: "6443"
              protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: no-smtp-but-mail
spec:
  endpointSelector:
    matchExpressions:
      - key: "k8s:io.kubernetes.pod.namespace"
        operator: NotIn
        values: [mail]
  egressDeny:
    - toEntities: [world]
      toPorts:
        - ports:
            - port: "25"
              protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: lan-ntp
spec:
  endpointSelector: {}
  egress:
    - toCIDR: [192.168.1.1/32]
      toPorts:
        - ports:
            - port: "123"
              protocol: UDP
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: ingress-to-cluster
spec:
  endpointSelector:
    matchLabels:
      "reserved:ingress": ""
  egress:
    - toEntities: [cluster]
"#;

/// The policy files: one per namespace (50 CNPs each) and `clusterwide.yaml` (10 CCNPs).
pub fn policy_files(cluster: &Cluster) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for ns in NAMESPACES {
        let docs: Vec<String> = cluster
            .workloads
            .iter()
            .filter(|w| w.namespace == ns)
            .map(|w| cnp(cluster, w))
            .collect();
        files.push((format!("{ns}.yaml"), docs.join("---\n")));
    }
    files.push(("clusterwide.yaml".to_owned(), CLUSTERWIDE.to_owned()));
    files
}

// ---------------------------------------------------------------------------------------------
// Flows

/// One end of a generated flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Pod {
        workload: usize,
        replica: usize,
    },
    KubeDns,
    /// Outside the cluster; `name` is `api{n}.example.com` when the IP was resolved from it.
    World {
        ip: Ipv4Addr,
        name: Option<usize>,
    },
    Host {
        node: usize,
    },
}

impl End {
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Self::Pod { workload, replica } => {
                let ns = workload / WORKLOADS_PER_NAMESPACE;
                let i = workload % WORKLOADS_PER_NAMESPACE;
                Ipv4Addr::new(10, 42, byte(ns), byte(i * 4 + replica + 2))
            }
            Self::KubeDns => Ipv4Addr::new(10, 42, 0, 250),
            Self::World { ip, .. } => ip,
            Self::Host { node } => Ipv4Addr::new(192, 168, 1, byte(11 + node)),
        }
    }
}

fn byte(n: usize) -> u8 {
    u8::try_from(n % 256).unwrap_or(0)
}

fn port(n: usize) -> u16 {
    u16::try_from(n % 65536).unwrap_or(0)
}

/// One generated connection (the initiating direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    pub src: End,
    pub dst: End,
    pub udp: bool,
    pub src_port: u16,
    pub dst_port: u16,
}

fn fqdn_ip(name: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, byte(113 + name / 250), byte(name % 250 + 1))
}

/// The next connection. The mix: 50% a client to one of its servers (85% on the allowed port),
/// 10% a random pod pair, 12% DNS to CoreDNS, 12% HTTPS to a DNS name (75% allowed ones), 6%
/// to a LAN address (75% allowed subnets), 5% kubelet probes from the node, 3% from the world
/// to a pod, 2% Prometheus scrapes.
pub fn flow(cluster: &Cluster, rng: &mut Lcg) -> FlowSpec {
    let n = cluster.workloads.len();
    let w = rng.next(n);
    let me = cluster.workloads.get(w).cloned().unwrap_or_default();
    let replica = rng.next(2);
    let pod = End::Pod {
        workload: w,
        replica,
    };
    let src_port = port(32768 + rng.next(28000));
    let tcp = |src, dst, dst_port| FlowSpec {
        src,
        dst,
        udp: false,
        src_port,
        dst_port,
    };
    let roll = rng.next(100);
    match roll {
        0..50 => {
            let server = rng.pick(&me.servers).unwrap_or_else(|| rng.next(n));
            let server_port = cluster.workloads.get(server).map_or(80, |s| s.port);
            let dst_port = if rng.chance(85) {
                server_port
            } else {
                rng.pick(&SERVICE_PORTS).unwrap_or(22)
            };
            let dst = End::Pod {
                workload: server,
                replica: rng.next(2),
            };
            tcp(pod, dst, dst_port)
        }
        50..60 => {
            let dst = End::Pod {
                workload: rng.next(n),
                replica: rng.next(2),
            };
            tcp(pod, dst, rng.pick(&SERVICE_PORTS).unwrap_or(80))
        }
        60..72 => FlowSpec {
            src: pod,
            dst: End::KubeDns,
            udp: true,
            src_port,
            dst_port: 53,
        },
        72..84 => {
            let name = match rng.pick(&me.fqdns) {
                Some(name) if rng.chance(75) => name,
                _ => rng.next(FQDN_NAMES),
            };
            let dst = End::World {
                ip: fqdn_ip(name),
                name: Some(name),
            };
            tcp(pod, dst, if rng.chance(90) { 443 } else { 80 })
        }
        84..90 => {
            let subnet = match me.lan {
                Some(k) if rng.chance(75) => k,
                _ => rng.next(LAN_SUBNETS),
            };
            let ip = Ipv4Addr::new(192, 168, byte(subnet), byte(1 + rng.next(20)));
            let dst = End::World { ip, name: None };
            tcp(pod, dst, if rng.chance(90) { 5432 } else { 22 })
        }
        90..95 => tcp(
            End::Host {
                node: rng.next(NODES),
            },
            pod,
            me.port,
        ),
        95..98 => {
            let ip = Ipv4Addr::new(198, 51, 100, byte(1 + rng.next(254)));
            tcp(End::World { ip, name: None }, pod, me.port)
        }
        _ => {
            let prometheus = End::Pod {
                workload: PROMETHEUS,
                replica: 0,
            };
            tcp(prometheus, pod, METRICS_PORT)
        }
    }
}

/// Hubble's JSON for the endpoints, rendered once per pod.
#[derive(Debug, Clone)]
pub struct Hubble {
    /// `(workload, replica)` → the `source`/`destination` object.
    pods: Vec<[String; 2]>,
    kube_dns: String,
}

fn endpoint_json(
    id: usize,
    identity: usize,
    namespace: &str,
    labels: &Labels,
    pod: &str,
    workload: &str,
) -> String {
    let labels: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
    format!(
        "{{\"ID\":{id},\"identity\":{identity},\"namespace\":\"{namespace}\",\"labels\":[{}],\"pod_name\":\"{pod}\",\"workloads\":[{{\"name\":\"{workload}\",\"kind\":\"Deployment\"}}]}}",
        labels.join(",")
    )
}

impl Hubble {
    pub fn new(cluster: &Cluster) -> Self {
        let pods = cluster
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let labels = pod_identity(w);
                let json = |r: usize| {
                    endpoint_json(
                        100 + i * 2 + r,
                        20000 + i,
                        w.namespace,
                        &labels,
                        &format!("{}-6d4b9c7f8-{r}x2k4", w.app),
                        &w.app,
                    )
                };
                [json(0), json(1)]
            })
            .collect();
        let kube_dns = endpoint_json(
            42,
            19999,
            "kube-system",
            &kube_dns_identity(),
            "coredns-5d78c9869d-9qzxl",
            "coredns",
        );
        Self { pods, kube_dns }
    }

    fn endpoint(&self, end: End) -> &str {
        match end {
            End::Pod { workload, replica } => self
                .pods
                .get(workload)
                .and_then(|p| p.get(replica))
                .map_or("{}", String::as_str),
            End::KubeDns => &self.kube_dns,
            End::World { .. } => r#"{"identity":2,"labels":["reserved:world"]}"#,
            End::Host { .. } => r#"{"identity":1,"labels":["reserved:host"]}"#,
        }
    }

    /// One `hubble observe -o jsonpb` line (with its newline): the connection's first packet,
    /// or its reply.
    pub fn line(&self, out: &mut String, spec: &FlowSpec, reply: bool, seq: usize) {
        let (src, dst, src_port, dst_port) = if reply {
            (spec.dst, spec.src, spec.dst_port, spec.src_port)
        } else {
            (spec.src, spec.dst, spec.src_port, spec.dst_port)
        };
        // One record per millisecond from 2024-05-01T12:00:00Z.
        let secs = seq / 1000;
        let time = format!(
            "2024-05-01T{:02}:{:02}:{:02}.{:09}Z",
            (12 + secs / 3600) % 24,
            secs / 60 % 60,
            secs % 60,
            (seq % 1000) * 1_000_000 + seq % 997
        );
        let node = match src {
            End::Host { node } => node,
            _ => seq % NODES,
        };
        let (l4, summary) = if spec.udp {
            (
                format!(
                    "{{\"UDP\":{{\"source_port\":{src_port},\"destination_port\":{dst_port}}}}}"
                ),
                "UDP".to_owned(),
            )
        } else if reply {
            (
                format!(
                    "{{\"TCP\":{{\"source_port\":{src_port},\"destination_port\":{dst_port},\"flags\":{{\"SYN\":true,\"ACK\":true}}}}}}"
                ),
                "TCP Flags: SYN, ACK".to_owned(),
            )
        } else {
            (
                format!(
                    "{{\"TCP\":{{\"source_port\":{src_port},\"destination_port\":{dst_port},\"flags\":{{\"SYN\":true}}}}}}"
                ),
                "TCP Flags: SYN".to_owned(),
            )
        };
        let names = match (src, dst) {
            (_, End::World { name: Some(n), .. }) => {
                format!("\"destination_names\":[\"api{n}.example.com\"],")
            }
            (End::World { name: Some(n), .. }, _) => {
                format!("\"source_names\":[\"api{n}.example.com\"],")
            }
            _ => String::new(),
        };
        let direction = if matches!(dst, End::Pod { .. } | End::KubeDns) && !reply {
            "INGRESS"
        } else {
            "EGRESS"
        };
        let mac = |ip: Ipv4Addr| {
            let [a, b, c, d] = ip.octets();
            format!("0a:58:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
        };
        let _ = writeln!(
            out,
            "{{\"flow\":{{\"time\":\"{time}\",\"verdict\":\"FORWARDED\",\"ethernet\":{{\"source\":\"{}\",\"destination\":\"{}\"}},\"IP\":{{\"source\":\"{}\",\"destination\":\"{}\",\"ipVersion\":\"IPv4\"}},\"l4\":{l4},\"source\":{},\"destination\":{},\"Type\":\"L3_L4\",\"node_name\":\"homelab/k3s-node-{node}\",{names}\"is_reply\":{reply},\"event_type\":{{\"type\":4,\"sub_type\":3}},\"traffic_direction\":\"{direction}\",\"trace_observation_point\":\"TO_ENDPOINT\",\"Summary\":\"{summary}\"}},\"node_name\":\"homelab/k3s-node-{node}\",\"time\":\"{time}\"}}",
            mac(src.ip()),
            mac(dst.ip()),
            src.ip(),
            dst.ip(),
            self.endpoint(src),
            self.endpoint(dst),
        );
    }
}

/// `lines` Hubble lines (40% of the connections are followed by their reply), handed to `emit`
/// one at a time.
pub fn hubble_lines(cluster: &Cluster, lines: usize, mut emit: impl FnMut(&str)) {
    let hubble = Hubble::new(cluster);
    let mut rng = Lcg(2021);
    let mut line = String::with_capacity(2048);
    let mut seq = 0;
    while seq < lines {
        let spec = flow(cluster, &mut rng);
        line.clear();
        hubble.line(&mut line, &spec, false, seq);
        emit(&line);
        seq += 1;
        if seq < lines && rng.chance(40) {
            line.clear();
            hubble.line(&mut line, &spec, true, seq);
            emit(&line);
            seq += 1;
        }
    }
}

fn write_policies(cluster: &Cluster, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in policy_files(cluster) {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

fn write_flows(cluster: &Cluster, lines: usize) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut result = Ok(());
    hubble_lines(cluster, lines, |line| {
        if result.is_ok() {
            result = out.write_all(line.as_bytes());
        }
    });
    result?;
    out.flush()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cluster = cluster();
    let result = match args.as_slice() {
        [mode, dir] if mode == "policies" => write_policies(&cluster, Path::new(dir)),
        [lines] if lines.parse::<usize>().is_ok() => {
            write_flows(&cluster, lines.parse().unwrap_or(0))
        }
        _ => {
            eprintln!("usage: hubble_gen LINES > flows.jsonl\n       hubble_gen policies DIR");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
