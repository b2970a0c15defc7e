//! `cargo xtask bench-connectivity`: `netpol connectivity` and `netpol diff` on a generated
//! repository of 1,000 workloads and 1,000 policies (issue 11: both under 2 s on this machine).
//!
//! ```text
//! Model (40 namespaces × 25 Deployments, who calls whom; seeded, no I/O)
//!   ──write(base)──> target/bench-connectivity/base/{manifests,policies}/…
//!   ──write(head)──> target/bench-connectivity/head/…   (~2% of the policies changed)
//! release `netpol connectivity base --format txt`   ROUNDS runs: median, range, lines
//! release `netpol diff --base base --head head`      likewise, when the binary has `diff`
//! ```
//!
//! The repository is what a platform team keeps: per namespace a file of Deployments (labels
//! `app.kubernetes.io/name`, `app.kubernetes.io/part-of`, `tier`; named container ports) and
//! per workload a CiliumNetworkPolicy with both an ingress and an egress section (default deny
//! both ways): callers in the namespace by tier, callers from other namespaces by namespace and
//! name, Prometheus on the metrics port; DNS to kube-dns with an L7 DNS rule, the backends it
//! calls, and some `toFQDNs`, `toCIDR`, `toCIDRSet` with `except`, `toEntities` world and
//! kube-apiserver. Four namespaces use Kubernetes NetworkPolicies instead (ipBlock with except
//! where the others use CIDR rules); five CiliumClusterwideNetworkPolicies cover the whole
//! cluster (scraping, node health checks, DNS for all, no cloud metadata, the API server for
//! CI). The head revision changes 20 policies (2%): a port widened to a range, an allow
//! removed, or ingress from the world added, in turn.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{process, workspace_root};

/// Runs of each timed command.
const ROUNDS: usize = 5;
/// Workloads per namespace.
const PER_NAMESPACE: usize = 25;
/// The namespaces; `kube-system` runs CoreDNS, `monitoring` Prometheus, `ingress` the gateways
/// the world reaches.
const NAMESPACES: [&str; 40] = [
    "kube-system",
    "monitoring",
    "ingress",
    "shop",
    "checkout",
    "payments",
    "catalog",
    "search",
    "accounts",
    "auth",
    "orders",
    "shipping",
    "inventory",
    "pricing",
    "reviews",
    "recommend",
    "notify",
    "mail",
    "media",
    "images",
    "video",
    "chat",
    "support",
    "billing",
    "ledger",
    "reports",
    "analytics",
    "etl",
    "ml",
    "ads",
    "cms",
    "docs",
    "wiki",
    "git",
    "ci",
    "registry",
    "backup",
    "logging",
    "tracing",
    "vault",
];
/// Namespaces (by index) whose workloads have Kubernetes NetworkPolicies, not Cilium ones.
const KNP_NAMESPACES: [usize; 4] = [10, 20, 30, 35];
/// The first word of workload names.
const WORDS: [&str; 25] = [
    "web", "portal", "admin", "edge", "api", "core", "sync", "query", "events", "rules", "feed",
    "store", "audit", "hooks", "main", "users", "state", "blob", "session", "lock", "rates",
    "jobs", "cron", "import", "export",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Frontend,
    Backend,
    Database,
    Cache,
    Worker,
}

impl Tier {
    /// Workloads 0-3 of a namespace serve users, 4-13 are APIs, 14-17 databases, 18-20 caches,
    /// 21-24 workers.
    fn of(index: usize) -> Self {
        match index {
            0..=3 => Self::Frontend,
            4..=13 => Self::Backend,
            14..=17 => Self::Database,
            18..=20 => Self::Cache,
            _ => Self::Worker,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Frontend => "frontend",
            Self::Backend => "backend",
            Self::Database => "db",
            Self::Cache => "cache",
            Self::Worker => "worker",
        }
    }

    /// Container ports: (name, port, protocol); the first is the one clients use.
    fn ports(self) -> &'static [(&'static str, u16, &'static str)] {
        match self {
            Self::Frontend => &[("http", 8080, "TCP"), ("metrics", 9090, "TCP")],
            Self::Backend => &[
                ("http", 8080, "TCP"),
                ("grpc", 9000, "TCP"),
                ("metrics", 9090, "TCP"),
            ],
            Self::Database => &[("postgres", 5432, "TCP"), ("metrics", 9187, "TCP")],
            Self::Cache => &[("redis", 6379, "TCP"), ("metrics", 9121, "TCP")],
            Self::Worker => &[("metrics", 9090, "TCP")],
        }
    }
}

/// A tiny deterministic generator (the benchmark must measure the same input every run).
#[derive(Debug)]
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap_or(0) % bound.max(1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.next(100) < percent
    }
}

/// One Deployment and what its policy allows.
#[derive(Debug)]
struct Workload {
    namespace: usize,
    name: String,
    tier: Tier,
    /// Labels of its pods besides the standard ones (CoreDNS: `k8s-app: kube-dns`).
    extra_label: Option<(&'static str, &'static str)>,
    /// Container ports: (name, port, protocol).
    ports: Vec<(&'static str, u16, &'static str)>,
    /// Workloads it calls (indices into [`Model::workloads`]) with the port name.
    calls: Vec<(usize, &'static str)>,
    /// The ingress rule by tier names its port by name (else by number).
    named_port: bool,
    fqdns: Vec<String>,
    /// `toCIDRSet` 10.k.0.0/16 except 10.k.1.0/24.
    cidr_set: Option<usize>,
    /// `toCIDR` 192.168.k.0/24.
    cidr: Option<usize>,
    to_world: bool,
    to_apiserver: bool,
    /// Ingress from the world (the gateways), from 203.0.113.0/24 for a few frontends.
    from_world: bool,
    from_cidr: bool,
}

/// How the head revision changes a workload's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Egress to its CIDR on TCP 5432-5499, not 5432 alone.
    WidenPort,
    /// Its first call to another workload is no longer allowed.
    RemoveAllow,
    /// Ingress from the world on its first port.
    WorldIngress,
}

#[derive(Debug)]
struct Model {
    workloads: Vec<Workload>,
    /// What the head revision changes: (workload, change).
    changes: Vec<(usize, Change)>,
}

impl Model {
    fn new() -> Self {
        let mut rng = Lcg(0x5eed_c0ff_ee00_0011);
        let mut workloads = Vec::with_capacity(NAMESPACES.len() * PER_NAMESPACE);
        for namespace in 0..NAMESPACES.len() {
            for (index, word) in WORDS.iter().enumerate() {
                let tier = Tier::of(index);
                let mut w = Workload {
                    namespace,
                    name: format!("{word}-{}", tier.name()),
                    tier,
                    extra_label: None,
                    ports: tier.ports().to_vec(),
                    calls: Vec::new(),
                    named_port: rng.chance(30),
                    fqdns: Vec::new(),
                    cidr_set: None,
                    cidr: None,
                    to_world: false,
                    to_apiserver: false,
                    from_world: false,
                    from_cidr: false,
                };
                match (namespace, index) {
                    (0, 0) => {
                        w.name = "coredns".to_owned();
                        w.tier = Tier::Backend;
                        w.extra_label = Some(("k8s-app", "kube-dns"));
                        w.ports = vec![("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")];
                        w.to_world = true;
                    }
                    (1, 0) => {
                        w.name = "prometheus".to_owned();
                        w.ports = vec![("http", 9090, "TCP")];
                        w.to_apiserver = true;
                    }
                    (2, 0..=3) => w.from_world = true,
                    _ => {}
                }
                workloads.push(w);
            }
        }
        let at = |namespace: usize, index: usize| namespace * PER_NAMESPACE + index;
        for (i, w) in workloads.iter_mut().enumerate() {
            let (namespace, index) = (i / PER_NAMESPACE, i % PER_NAMESPACE);
            let pick = |rng: &mut Lcg, first: usize, count: usize| first + rng.next(count);
            let other =
                |rng: &mut Lcg| (namespace + 1 + rng.next(NAMESPACES.len() - 1)) % NAMESPACES.len();
            match w.tier {
                Tier::Frontend => {
                    for _ in 0..2 + rng.next(2) {
                        w.calls.push((at(namespace, pick(&mut rng, 4, 10)), "http"));
                    }
                    if rng.chance(40) {
                        w.calls
                            .push((at(other(&mut rng), pick(&mut rng, 4, 10)), "http"));
                    }
                    w.from_cidr = namespace != 2 && rng.chance(5);
                }
                Tier::Backend => {
                    w.calls
                        .push((at(namespace, pick(&mut rng, 14, 4)), "postgres"));
                    w.calls
                        .push((at(namespace, pick(&mut rng, 18, 3)), "redis"));
                    let peer = pick(&mut rng, 4, 10);
                    if peer != index {
                        w.calls.push((at(namespace, peer), "grpc"));
                    }
                    if rng.chance(30) {
                        w.calls
                            .push((at(other(&mut rng), pick(&mut rng, 4, 10)), "grpc"));
                    }
                    if rng.chance(20) {
                        w.fqdns.push(format!("api-{}.example.com", rng.next(50)));
                    }
                    if rng.chance(5) {
                        w.fqdns.push("*.s3.amazonaws.com".to_owned());
                    }
                    w.to_apiserver |= rng.chance(5);
                }
                Tier::Database => {
                    if rng.chance(20) {
                        w.cidr = Some(rng.next(50));
                    }
                }
                Tier::Cache => {}
                Tier::Worker => {
                    w.calls.push((at(namespace, pick(&mut rng, 4, 10)), "http"));
                    if rng.chance(40) {
                        w.cidr_set = Some(rng.next(50));
                    }
                    if rng.chance(25) {
                        w.fqdns.push(format!("hooks-{}.example.org", rng.next(30)));
                    }
                    w.to_world |= rng.chance(20);
                    w.to_apiserver |= rng.chance(20);
                }
            }
        }
        let changes = Self::changes(&workloads);
        Self { workloads, changes }
    }

    /// Twenty changed policies (2%): from every 50th workload on, the first with a Cilium
    /// policy that the change affects (a widened port where the other end does not restrict
    /// it: egress to a CIDR; an allow removed where there is one), the three kinds in turn.
    fn changes(workloads: &[Workload]) -> Vec<(usize, Change)> {
        let mut changes = Vec::new();
        for k in 0..workloads.len() / 50 {
            let change = match k % 3 {
                0 => Change::WidenPort,
                1 => Change::RemoveAllow,
                _ => Change::WorldIngress,
            };
            let fits = |w: &Workload| {
                !Self::knp(w)
                    && match change {
                        Change::WidenPort => w.cidr_set.is_some(),
                        Change::RemoveAllow => !w.calls.is_empty(),
                        Change::WorldIngress => !w.from_world && !w.ports.is_empty(),
                    }
            };
            if let Some(i) = (k * 50..workloads.len())
                .find(|i| workloads.get(*i).is_some_and(fits))
                .filter(|i| !changes.iter().any(|(w, _)| w == i))
            {
                changes.push((i, change));
            }
        }
        changes
    }

    fn namespace(&self, w: &Workload) -> &'static str {
        NAMESPACES.get(w.namespace).copied().unwrap_or("default")
    }

    fn knp(w: &Workload) -> bool {
        KNP_NAMESPACES.contains(&w.namespace)
    }

    /// The head revision's change to workload `i`.
    fn change(&self, i: usize, head: bool) -> Option<Change> {
        if !head {
            return None;
        }
        self.changes.iter().find(|(w, _)| *w == i).map(|(_, c)| *c)
    }

    /// The workloads that call `target`, with the port name (as the base revision has them:
    /// a removed allow is removed at the caller's egress).
    fn callers(&self, target: usize) -> Vec<(usize, &'static str)> {
        let mut callers = Vec::new();
        for (i, w) in self.workloads.iter().enumerate() {
            for (t, port) in &w.calls {
                if *t == target {
                    callers.push((i, *port));
                }
            }
        }
        callers
    }

    /// Write the repository (manifests and policies) under `dir`; `head`: with the changes.
    /// Returns the number of policy objects.
    fn write(&self, dir: &Path, head: bool) -> Result<usize> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        let mut policies = 0;
        for (n, namespace) in NAMESPACES.iter().enumerate() {
            let mut manifests = format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels:\n    team: {namespace}\n"
            );
            let ns_dir = dir.join("policies").join(namespace);
            fs::create_dir_all(&ns_dir)?;
            for (i, w) in self.workloads.iter().enumerate() {
                if w.namespace != n {
                    continue;
                }
                manifests.push_str("---\n");
                self.deployment(&mut manifests, w);
                let policy = if Self::knp(w) {
                    self.knp_policy(i, w)
                } else {
                    self.cnp(i, w, head)
                };
                let file = ns_dir.join(format!("{}.yaml", w.name));
                fs::write(&file, policy)
                    .with_context(|| format!("cannot write `{}`", file.display()))?;
                policies += 1;
            }
            let manifests_dir = dir.join("manifests");
            fs::create_dir_all(&manifests_dir)?;
            fs::write(manifests_dir.join(format!("{namespace}.yaml")), manifests)?;
        }
        fs::write(dir.join("policies/clusterwide.yaml"), CLUSTERWIDE)?;
        Ok(policies
            + CLUSTERWIDE
                .matches("kind: CiliumClusterwideNetworkPolicy")
                .count())
    }

    fn deployment(&self, s: &mut String, w: &Workload) {
        let ns = self.namespace(w);
        let name = &w.name;
        let extra = w
            .extra_label
            .map(|(k, v)| format!("        {k}: {v}\n"))
            .unwrap_or_default();
        let _ = write!(
            s,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app.kubernetes.io/name: {name}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: {name}\n        app.kubernetes.io/part-of: {ns}\n        tier: {tier}\n{extra}    spec:\n      serviceAccountName: {name}\n      containers:\n        - name: {name}\n          image: registry.example.com/{ns}/{name}:1.4.2\n          ports:\n",
            tier = w.tier.name()
        );
        for (port_name, port, protocol) in &w.ports {
            let _ = write!(
                s,
                "            - name: {port_name}\n              containerPort: {port}\n              protocol: {protocol}\n"
            );
        }
    }

    /// The port `w` serves `name` on.
    fn port(w: &Workload, name: &str) -> Option<(u16, &'static str)> {
        w.ports
            .iter()
            .find(|(n, _, _)| *n == name)
            .or_else(|| w.ports.first())
            .map(|(_, port, protocol)| (*port, *protocol))
    }

    /// The selector of workload `peer` seen from `w`'s namespace (Cilium labels).
    fn endpoint_selector(&self, s: &mut String, w: &Workload, peer: &Workload) {
        s.push_str("        - matchLabels:\n");
        if peer.namespace != w.namespace {
            let _ = writeln!(
                s,
                "            k8s:io.kubernetes.pod.namespace: {}",
                self.namespace(peer)
            );
        }
        let _ = writeln!(s, "            app.kubernetes.io/name: {}", peer.name);
    }

    fn cnp(&self, i: usize, w: &Workload, head: bool) -> String {
        let change = self.change(i, head);
        let ns = self.namespace(w);
        let mut s = format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  endpointSelector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  ingress:\n",
            name = w.name
        );
        // Callers from the namespace by tier, from elsewhere by name.
        let callers = self.callers(i);
        let (local, remote): (Vec<_>, Vec<_>) = callers
            .iter()
            .filter_map(|(c, port)| self.workloads.get(*c).map(|c| (c, *port)))
            .partition(|(c, _)| c.namespace == w.namespace);
        // One rule per port the namespace's callers use, for the tiers that use it.
        let mut by_port: Vec<(&str, Vec<&str>)> = Vec::new();
        for (c, port_name) in &local {
            match by_port.iter_mut().find(|(p, _)| p == port_name) {
                Some((_, tiers)) if tiers.contains(&c.tier.name()) => {}
                Some((_, tiers)) => tiers.push(c.tier.name()),
                None => by_port.push((port_name, vec![c.tier.name()])),
            }
        }
        for (port_name, tiers) in &mut by_port {
            tiers.sort_unstable();
            let (port, protocol) = Self::port(w, port_name).unwrap_or((8080, "TCP"));
            let _ = write!(
                s,
                "    - fromEndpoints:\n        - matchExpressions:\n            - key: tier\n              operator: In\n              values: [{}]\n      toPorts:\n        - ports:\n",
                tiers.join(", ")
            );
            if w.named_port {
                let _ = writeln!(s, "            - port: {port_name}");
            } else {
                let _ = write!(
                    s,
                    "            - port: \"{port}\"\n              protocol: {protocol}\n"
                );
            }
        }
        for (c, port_name) in remote {
            let (port, protocol) = Self::port(w, port_name).unwrap_or((8080, "TCP"));
            s.push_str("    - fromEndpoints:\n");
            self.endpoint_selector(&mut s, w, c);
            let _ = write!(
                s,
                "      toPorts:\n        - ports:\n            - port: \"{port}\"\n              protocol: {protocol}\n"
            );
        }
        if w.name == "coredns" {
            s.push_str("    - fromEntities: [cluster]\n      toPorts:\n        - ports:\n            - port: \"53\"\n              protocol: ANY\n");
        }
        if w.from_world || change == Some(Change::WorldIngress) {
            let (port, _) = w.ports.first().map_or((8080, "TCP"), |p| (p.1, p.2));
            let _ = write!(
                s,
                "    - fromEntities: [world]\n      toPorts:\n        - ports:\n            - port: \"{port}\"\n              protocol: TCP\n"
            );
        }
        if w.from_cidr {
            s.push_str("    - fromCIDRSet:\n        - cidr: 203.0.113.0/24\n          except: [203.0.113.128/25]\n      toPorts:\n        - ports:\n            - port: \"8080\"\n              protocol: TCP\n");
        }
        if let Some((_, port, _)) = w.ports.iter().find(|(n, _, _)| n.starts_with("metrics")) {
            let _ = write!(
                s,
                "    - fromEndpoints:\n        - matchLabels:\n            k8s:io.kubernetes.pod.namespace: monitoring\n            app.kubernetes.io/name: prometheus\n      toPorts:\n        - ports:\n            - port: \"{port}\"\n              protocol: TCP\n"
            );
        }
        s.push_str("  egress:\n    - toEndpoints:\n        - matchLabels:\n            k8s:io.kubernetes.pod.namespace: kube-system\n            k8s-app: kube-dns\n      toPorts:\n        - ports:\n            - port: \"53\"\n              protocol: UDP\n            - port: \"53\"\n              protocol: TCP\n          rules:\n            dns:\n              - matchPattern: \"*\"\n");
        for (n, (t, port_name)) in w.calls.iter().enumerate() {
            if change == Some(Change::RemoveAllow) && n == 0 {
                continue;
            }
            let Some(target) = self.workloads.get(*t) else {
                continue;
            };
            let (port, protocol) = Self::port(target, port_name).unwrap_or((8080, "TCP"));
            s.push_str("    - toEndpoints:\n");
            self.endpoint_selector(&mut s, w, target);
            let _ = write!(
                s,
                "      toPorts:\n        - ports:\n            - port: \"{port}\"\n              protocol: {protocol}\n"
            );
        }
        if !w.fqdns.is_empty() {
            s.push_str("    - toFQDNs:\n");
            for f in &w.fqdns {
                if f.contains('*') {
                    let _ = writeln!(s, "        - matchPattern: \"{f}\"");
                } else {
                    let _ = writeln!(s, "        - matchName: {f}");
                }
            }
            s.push_str("      toPorts:\n        - ports:\n            - port: \"443\"\n              protocol: TCP\n");
        }
        if let Some(k) = w.cidr_set {
            // Widened: Postgres and the ports above it, up to 5499.
            let end = if change == Some(Change::WidenPort) {
                "\n              endPort: 5499"
            } else {
                ""
            };
            let _ = write!(
                s,
                "    - toCIDRSet:\n        - cidr: 10.{k}.0.0/16\n          except:\n            - 10.{k}.1.0/24\n      toPorts:\n        - ports:\n            - port: \"443\"\n              protocol: TCP\n            - port: \"5432\"{end}\n              protocol: TCP\n"
            );
        }
        if let Some(k) = w.cidr {
            let _ = writeln!(s, "    - toCIDR: [192.168.{k}.0/24]");
        }
        if w.to_world {
            s.push_str("    - toEntities: [world]\n      toPorts:\n        - ports:\n            - port: \"443\"\n              protocol: TCP\n            - port: \"53\"\n              protocol: UDP\n");
        }
        if w.to_apiserver {
            s.push_str("    - toEntities: [kube-apiserver]\n      toPorts:\n        - ports:\n            - port: \"6443\"\n              protocol: TCP\n");
        }
        s
    }

    /// A Kubernetes NetworkPolicy for `w` (its namespace is one of [`KNP_NAMESPACES`]).
    fn knp_policy(&self, i: usize, w: &Workload) -> String {
        let ns = self.namespace(w);
        let mut s = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  policyTypes: [Ingress, Egress]\n  ingress:\n",
            name = w.name
        );
        let pod_peer = |s: &mut String, peer: &Workload| {
            if peer.namespace == w.namespace {
                let _ = write!(
                    s,
                    "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: {}\n",
                    peer.name
                );
            } else {
                let _ = write!(
                    s,
                    "        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: {}\n          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: {}\n",
                    self.namespace(peer),
                    peer.name
                );
            }
        };
        for (c, port_name) in self.callers(i) {
            let Some(caller) = self.workloads.get(c) else {
                continue;
            };
            s.push_str("    - from:\n");
            pod_peer(&mut s, caller);
            if w.named_port {
                let _ = write!(s, "      ports:\n        - port: {port_name}\n");
            } else {
                let (port, protocol) = Self::port(w, port_name).unwrap_or((8080, "TCP"));
                let _ = write!(
                    s,
                    "      ports:\n        - port: {port}\n          protocol: {protocol}\n"
                );
            }
        }
        if let Some((_, port, _)) = w.ports.iter().find(|(n, _, _)| n.starts_with("metrics")) {
            let _ = write!(
                s,
                "    - from:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: monitoring\n          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n      ports:\n        - port: {port}\n"
            );
        }
        s.push_str("  egress:\n    - to:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: kube-system\n          podSelector:\n            matchLabels:\n              k8s-app: kube-dns\n      ports:\n        - port: 53\n          protocol: UDP\n        - port: 53\n          protocol: TCP\n");
        for (t, port_name) in &w.calls {
            let Some(target) = self.workloads.get(*t) else {
                continue;
            };
            let (port, protocol) = Self::port(target, port_name).unwrap_or((8080, "TCP"));
            s.push_str("    - to:\n");
            pod_peer(&mut s, target);
            let _ = write!(
                s,
                "      ports:\n        - port: {port}\n          protocol: {protocol}\n"
            );
        }
        if let Some(k) = w.cidr_set.or(w.cidr) {
            let _ = write!(
                s,
                "    - to:\n        - ipBlock:\n            cidr: 10.{k}.0.0/16\n            except: [10.{k}.1.0/24]\n      ports:\n        - port: 443\n"
            );
        }
        s
    }
}

/// The clusterwide policies: Prometheus scrapes every pod, nodes probe every pod, every pod
/// may resolve names, no pod reaches the cloud metadata service, CI runners reach the API
/// server.
const CLUSTERWIDE: &str = r#"apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: prometheus-scrape
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: monitoring
            app.kubernetes.io/name: prometheus
      toPorts:
        - ports:
            - port: "9090"
              protocol: TCP
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: node-health
spec:
  endpointSelector: {}
  ingress:
    - fromEntities: [host, remote-node]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: cluster-dns
spec:
  endpointSelector: {}
  egress:
    - toEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: kube-system
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
  name: no-cloud-metadata
spec:
  endpointSelector: {}
  egressDeny:
    - toCIDR: [169.254.169.254/32]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: ci-apiserver
spec:
  endpointSelector:
    matchLabels:
      k8s:io.kubernetes.pod.namespace: ci
  egress:
    - toEntities: [kube-apiserver]
      toPorts:
        - ports:
            - port: "443"
              protocol: TCP
"#;

pub fn run() -> Result<()> {
    let root = workspace_root();
    let netpol = process::release_netpol(&root, &[])?;
    let dir = root.join("target/bench-connectivity");
    let (base, head) = (dir.join("base"), dir.join("head"));
    let model = Model::new();
    let policies = model.write(&base, false)?;
    model.write(&head, true)?;
    let changed = model.changes.len();
    println!(
        "input: {} workloads (Deployments) in {} namespaces, {policies} policies ({} NetworkPolicies, 5 clusterwide); head: {changed} policies changed",
        model.workloads.len(),
        NAMESPACES.len(),
        KNP_NAMESPACES.len() * PER_NAMESPACE,
    );

    let mut connectivity = Command::new(&netpol);
    connectivity
        .arg("connectivity")
        .arg(&base)
        .args(["--format", "txt"]);
    let (times, output) = rounds(&mut connectivity)?;
    println!(
        "netpol connectivity --format txt: {} ({} lines)",
        summary(&times),
        output.lines().count()
    );
    time_diff(&netpol, &base, &head)?;
    Ok(())
}

/// TIMING `netpol diff --base DIR --head DIR` (issue 11), when the binary has the subcommand.
fn time_diff(netpol: &Path, base: &Path, head: &Path) -> Result<()> {
    let help = process::probe(Command::new(netpol).args(["diff", "--help"]))?;
    if !help.is_some_and(|o| o.status.success()) {
        println!("netpol diff: not in this binary, not timed");
        return Ok(());
    }
    let mut diff = Command::new(netpol);
    diff.arg("diff")
        .arg("--base")
        .arg(base)
        .arg("--head")
        .arg(head)
        .args(["--format", "txt"]);
    let (times, output) = rounds(&mut diff)?;
    let changes = output
        .lines()
        .filter(|l| l.starts_with("diff-type:"))
        .count();
    println!(
        "netpol diff --base DIR --head DIR --format txt: {} ({changes} changed connections)",
        summary(&times)
    );
    Ok(())
}

/// Runs `cmd` [`ROUNDS`] times: the wall-clock times (sorted) and the last run's stdout. Exit
/// statuses 0 and 1 (something found) are runs that worked.
fn rounds(cmd: &mut Command) -> Result<(Vec<Duration>, String)> {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut stdout = String::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot start `{}`", process::display(cmd)))?;
        times.push(started.elapsed());
        if !matches!(output.status.code(), Some(0 | 1)) {
            bail!(
                "`{}` failed ({}): {}",
                process::display(cmd),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        stdout = String::from_utf8(output.stdout)?;
    }
    times.sort();
    Ok((times, stdout))
}

/// `median 1.23 s (runs 1.20-1.30 s)`.
fn summary(times: &[Duration]) -> String {
    let s = |d: Option<&Duration>| d.copied().unwrap_or_default().as_secs_f64();
    format!(
        "median {:.2} s (runs {:.2}-{:.2} s)",
        s(times.get(times.len() / 2)),
        s(times.first()),
        s(times.last())
    )
}

/// `cargo xtask bench-lint`: `netpol lint` on the base revision of the same generated
/// repository (1,000 workloads, 1,005 policies; every rule runs, those that need the workloads
/// included, since the Deployments are beside the policies). Issue 13: under 1 s.
pub fn lint() -> Result<()> {
    let root = workspace_root();
    let netpol = process::release_netpol(&root, &[])?;
    let base = root.join("target/bench-connectivity/base");
    let model = Model::new();
    let policies = model.write(&base, false)?;
    println!(
        "input: {} workloads (Deployments) in {} namespaces, {policies} policies",
        model.workloads.len(),
        NAMESPACES.len(),
    );
    let mut lint = Command::new(&netpol);
    lint.arg("lint").arg(&base).args(["--format", "json"]);
    let (times, output) = rounds(&mut lint)?;
    let findings = output
        .lines()
        .filter(|l| l.trim_start().starts_with("\"code\":"))
        .count();
    println!(
        "netpol lint --format json: {} ({findings} findings)",
        summary(&times)
    );
    Ok(())
}
