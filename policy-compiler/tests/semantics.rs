//! Cilium's policy semantics, rule by rule. Each test is named after the rule it pins down and
//! cites the section of docs/semantics.md that states it (and, for the audit at the end, the
//! lines of Cilium's source that decide it). Every decision is computed twice — by the compiled
//! index and by the naive reference evaluator — and the two must agree.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::entry;
use netpol_compiler::engine::eval::{self, Decision, NamedPorts, NoPorts, Query, Reason};
use netpol_compiler::engine::identity::{self, Label, Labels, Peer, Reserved};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::policy;
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Enforcement, Settings};
use netpol_compiler::flow::inventory::Inventory;
use netpol_compiler::objects::Direction;

struct Engine {
    index: Index,
    inventory: Option<Inventory>,
}

fn engine_with(yaml: &str, inventory: Option<&str>) -> Engine {
    let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
    let imported = policy::import(&fs, &[PathBuf::from("p")]);
    let errors: Vec<String> = imported
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    let inventory = inventory.map(|t| Inventory::parse(t, DEFAULT_CLUSTER).unwrap());
    let services = inventory.as_ref().map(|i| i as &dyn entry::ServiceBackends);
    let entries = entry::build(&imported.set, services, &Settings::default());
    Engine {
        index: Index::new(entries),
        inventory,
    }
}

fn engine(yaml: &str) -> Engine {
    engine_with(yaml, None)
}

/// An engine for agents configured with `settings` (no inventory).
fn engine_for(yaml: &str, settings: &Settings) -> Engine {
    let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
    let imported = policy::import_for(&fs, &[PathBuf::from("p")], &settings.acceptance());
    Engine {
        index: Index::new(entry::build(&imported.set, None, settings)),
        inventory: None,
    }
}

impl Engine {
    fn decide(&self, src: &Peer, dst: &Peer, port: &str) -> Decision {
        let (proto, port) = netpol_compiler::report::explain::parse_port(port).unwrap();
        let q = Query {
            src: src.clone(),
            dst: dst.clone(),
            proto: Some(proto),
            port,
        };
        let cluster: &dyn NamedPorts = match &self.inventory {
            Some(inv) => inv,
            None => &NoPorts,
        };
        let reference = eval::reference(&self.index.entries, &q, cluster, None);
        let mut ev = Evaluator::new(&self.index, cluster);
        let indexed = ev.decide(&q);
        assert_eq!(indexed, reference, "index and reference evaluator disagree");
        indexed
    }

    fn allowed(&self, src: &Peer, dst: &Peer, port: &str) -> bool {
        self.decide(src, dst, port).allowed()
    }
}

fn pod(ns: &str, labels: &[(&str, &str)]) -> Peer {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Peer {
        labels: Arc::new(identity::pod_labels(
            ns,
            &labels,
            Some("default"),
            None,
            DEFAULT_CLUSTER,
        )),
        ..Peer::default()
    }
}

fn pod_sa(ns: &str, app: &str, sa: &str) -> Peer {
    let labels = BTreeMap::from([("app".to_owned(), app.to_owned())]);
    Peer {
        labels: Arc::new(identity::pod_labels(
            ns,
            &labels,
            Some(sa),
            None,
            DEFAULT_CLUSTER,
        )),
        ..Peer::default()
    }
}

fn world(ip: &str, names: &[&str]) -> Peer {
    Peer {
        labels: Arc::new(Reserved::World.labels()),
        ip: Some(ip.parse().unwrap()),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..Peer::default()
    }
}

fn reserved(r: Reserved) -> Peer {
    Peer {
        labels: Arc::new(r.labels()),
        ..Peer::default()
    }
}

fn web() -> Peer {
    pod("shop", &[("app", "web")])
}

fn frontend() -> Peer {
    pod("shop", &[("app", "frontend")])
}

const WEB_INGRESS_FROM_FRONTEND_8080: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#;

// §2.2: a direction is enforced only when some rule selecting the endpoint has entries in
// that direction; then it is default-deny.
#[test]
fn default_deny_is_per_direction_and_only_under_a_selecting_rule() {
    let e = engine(WEB_INGRESS_FROM_FRONTEND_8080);
    assert!(e.allowed(&frontend(), &web(), "8080/tcp"));
    let d = e.decide(&frontend(), &web(), "8081/tcp");
    assert_eq!(d.ingress.reason, Some(Reason::DefaultDeny));
    // frontend has no policy: its egress is not enforced.
    assert_eq!(d.egress.reason, Some(Reason::NoPolicy));
    // web's egress is not touched by an ingress-only rule.
    let d = e.decide(&web(), &world("1.1.1.1", &[]), "443/tcp");
    assert!(d.allowed());
    assert_eq!(d.egress.reason, Some(Reason::NoPolicy));
    // Another pod of the namespace is not selected at all.
    assert!(e.allowed(&frontend(), &pod("shop", &[("app", "db")]), "5432/tcp"));
}

// §2.1, §2.5, pitfall 9: `ingress: [{}]` in a CNP allows nothing but makes ingress default-deny.
#[test]
fn cnp_empty_ingress_item_allows_nothing_but_enables_default_deny() {
    let e = engine(
        r"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: lock, namespace: shop}
spec:
  endpointSelector: {}
  ingress: [{}]
",
    );
    let d = e.decide(&frontend(), &web(), "80/tcp");
    assert_eq!(d.ingress.reason, Some(Reason::DefaultDeny));
    assert!(!e.allowed(&world("8.8.8.8", &[]), &web(), "80/tcp"));
}

// §2.5, §8, pitfall 9: a Kubernetes NetworkPolicy `ingress: [{}]` allows everything.
#[test]
fn knp_empty_ingress_rule_allows_every_peer_and_port() {
    let e = engine(
        r"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all, namespace: shop}
spec:
  podSelector: {}
  ingress: [{}]
",
    );
    assert!(e.allowed(&world("8.8.8.8", &[]), &web(), "80/tcp"));
    assert!(e.allowed(&frontend(), &web(), "icmp/8"));
    assert_eq!(
        e.decide(&frontend(), &web(), "1/udp").ingress.reason,
        Some(Reason::AllowedByRule)
    );
}

// §8: a KNP without ingress rules but `policyTypes: [Ingress]` is a default deny; Egress only
// when listed (or when egress rules exist).
#[test]
fn knp_policy_types_decide_the_directions() {
    let e = engine(
        r"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
",
    );
    let d = e.decide(&frontend(), &web(), "80/tcp");
    assert_eq!(d.egress.reason, Some(Reason::DefaultDeny));
    assert_eq!(d.ingress.reason, Some(Reason::DefaultDeny));
    let e = engine(
        r"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-in, namespace: shop}
spec:
  podSelector: {}
",
    );
    let d = e.decide(&frontend(), &web(), "80/tcp");
    assert_eq!(d.egress.reason, Some(Reason::NoPolicy));
    assert_eq!(d.ingress.reason, Some(Reason::DefaultDeny));
}

// §2.2, pitfall 8: a deny-only policy also switches the direction to default deny.
#[test]
fn deny_only_policy_enables_default_deny() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny80, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingressDeny:
    - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
    );
    assert_eq!(
        e.decide(&frontend(), &web(), "80/tcp").ingress.reason,
        Some(Reason::DeniedByRule)
    );
    assert_eq!(
        e.decide(&frontend(), &web(), "81/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    assert!(!e.allowed(&frontend(), &web(), "icmp/8"));
}

// §2.3: with `enableDefaultDeny: false` the rule's entries do not make the direction
// default-deny: only its denies bite.
#[test]
fn enable_default_deny_false_keeps_the_direction_open() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny80, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  enableDefaultDeny: {ingress: false}
  ingressDeny:
    - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
    );
    assert!(!e.allowed(&frontend(), &web(), "80/tcp"));
    let d = e.decide(&frontend(), &web(), "81/tcp");
    assert_eq!(d.ingress.reason, Some(Reason::NotDefaultDeny));
    assert!(d.allowed());
}

// §2.3: "any rule wins" — one default-deny rule selecting the endpoint makes it default-deny.
#[test]
fn one_default_deny_rule_wins_over_enable_default_deny_false() {
    let e = engine(&format!(
        r#"{WEB_INGRESS_FROM_FRONTEND_8080}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {{name: visibility}}
spec:
  endpointSelector: {{}}
  enableDefaultDeny: {{ingress: false, egress: false}}
  ingress:
    - fromEntities: [world]
"#
    ));
    assert!(!e.allowed(&frontend(), &web(), "81/tcp"));
    // The CCNP's allow still counts as an allow where the CNP made web default-deny.
    assert!(e.allowed(&world("8.8.8.8", &[]), &web(), "81/tcp"));
    // A pod no default-deny rule selects stays open.
    assert!(e.allowed(&frontend(), &pod("shop", &[("app", "db")]), "81/tcp"));
}

// §2.4, §8: allows of CNP, CCNP and KNP union; a deny from any kind wins over all of them.
#[test]
fn cnp_ccnp_knp_together_allows_union_and_deny_wins() {
    let e = engine(&format!(
        r#"{WEB_INGRESS_FROM_FRONTEND_8080}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: metrics, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress:
    - from: [{{namespaceSelector: {{matchLabels: {{team: obs}}}}}}]
      ports: [{{port: 9090}}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {{name: no-debug}}
spec:
  endpointSelector: {{}}
  ingressDeny:
    - fromEntities: [cluster]
      toPorts: [{{ports: [{{port: "8080", protocol: TCP}}]}}]
"#
    ));
    let prom = Peer {
        labels: Arc::new(identity::pod_labels(
            "monitoring",
            &BTreeMap::from([("app".to_owned(), "prometheus".to_owned())]),
            None,
            Some(&BTreeMap::from([("team".to_owned(), "obs".to_owned())])),
            DEFAULT_CLUSTER,
        )),
        ..Peer::default()
    };
    assert!(e.allowed(&prom, &web(), "9090/tcp"));
    let d = e.decide(&frontend(), &web(), "8080/tcp");
    assert_eq!(d.ingress.reason, Some(Reason::DeniedByRule));
    assert_eq!(
        d.ingress.allowed_by.len(),
        1,
        "the CNP allow matched too, and lost"
    );
}

// §2.1, §2.4: an L3-only allow allows every port and protocol of that peer, ICMP included.
#[test]
fn l3_only_allow_allows_every_port_and_icmp() {
    let e = engine(
        r"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
",
    );
    for port in ["80/tcp", "53/udp", "9/sctp", "icmp/8", "icmpv6/128"] {
        assert!(e.allowed(&frontend(), &web(), port), "{port}");
    }
    assert!(!e.allowed(&pod("shop", &[("app", "other")]), &web(), "80/tcp"));
}

// §2.1, §2.5: ports without a peer field allow those ports from every identity, world too.
#[test]
fn l4_only_rule_allows_every_peer_on_its_ports() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#,
    );
    assert!(e.allowed(&world("203.0.113.9", &[]), &web(), "443/tcp"));
    assert!(e.allowed(&reserved(Reserved::RemoteNode), &web(), "443/tcp"));
    assert!(e.allowed(&pod("other", &[("app", "x")]), &web(), "443/tcp"));
    assert!(!e.allowed(&world("203.0.113.9", &[]), &web(), "80/tcp"));
}

// §2.4 (deny table): an L3-only deny denies every port even where a port allow exists; an
// L4-only deny denies its port for everybody.
#[test]
fn l3_only_deny_beats_port_allow_and_l4_only_deny_hits_everyone() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: "80", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {app: admin}}]
  ingressDeny:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
    - toPorts: [{ports: [{port: "22", protocol: TCP}]}]
"#,
    );
    assert_eq!(
        e.decide(&frontend(), &web(), "80/tcp").ingress.reason,
        Some(Reason::DeniedByRule)
    );
    assert_eq!(
        e.decide(&frontend(), &web(), "icmp/8").ingress.reason,
        Some(Reason::DeniedByRule)
    );
    let admin = pod("shop", &[("app", "admin")]);
    assert!(e.allowed(&admin, &web(), "80/tcp"));
    assert_eq!(
        e.decide(&admin, &web(), "22/tcp").ingress.reason,
        Some(Reason::DeniedByRule)
    );
}

// §2.1: a peer field given as an empty list selects nothing.
#[test]
fn explicitly_empty_peer_list_selects_nothing() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: []
      toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
    );
    assert_eq!(
        e.decide(&frontend(), &web(), "80/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
}

// §3.3 rule 2: CNP peer selectors without a namespace key select the policy's namespace only.
#[test]
fn cnp_peer_selector_is_scoped_to_the_policy_namespace() {
    let e = engine(WEB_INGRESS_FROM_FRONTEND_8080);
    assert!(!e.allowed(&pod("other", &[("app", "frontend")]), &web(), "8080/tcp"));
}

// §3.3 rule 2: a namespace key in the peer selector is kept (In/Exists for several/all).
#[test]
fn cnp_peer_selector_with_namespace_key_reaches_other_namespaces() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints:
        - matchLabels: {"k8s:io.kubernetes.pod.namespace": traefik, "app.kubernetes.io/name": traefik}
    - fromEndpoints:
        - matchExpressions: [{key: "k8s:io.kubernetes.pod.namespace", operator: In, values: [a, b]}]
      toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
"#,
    );
    let traefik = pod("traefik", &[("app.kubernetes.io/name", "traefik")]);
    assert!(e.allowed(&traefik, &web(), "8080/tcp"));
    assert!(e.allowed(&pod("b", &[]), &web(), "9000/tcp"));
    assert!(!e.allowed(&pod("c", &[]), &web(), "9000/tcp"));
    assert!(!e.allowed(&pod("shop", &[]), &web(), "9000/tcp"));
}

// §3.3 rule 2 (1.16+): namespace-label keys select pods of every namespace with those labels.
#[test]
fn namespace_label_selector_spans_namespaces() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints:
        - matchLabels: {"k8s:io.cilium.k8s.namespace.labels.team": payments}
"#,
    );
    let in_ns = |ns: &str, team: &str| Peer {
        labels: Arc::new(identity::pod_labels(
            ns,
            &BTreeMap::new(),
            None,
            Some(&BTreeMap::from([("team".to_owned(), team.to_owned())])),
            DEFAULT_CLUSTER,
        )),
        ..Peer::default()
    };
    assert!(e.allowed(&in_ns("billing", "payments"), &web(), "80/tcp"));
    assert!(!e.allowed(&in_ns("billing", "search"), &web(), "80/tcp"));
}

// §3.3 rule 1: a CNP's endpointSelector never leaves its namespace, even if it names another.
#[test]
fn cnp_endpoint_selector_is_forced_into_its_namespace() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web, "k8s:io.kubernetes.pod.namespace": other}}
  ingress: [{}]
"#,
    );
    assert!(!e.allowed(&frontend(), &web(), "80/tcp"));
    assert!(e.allowed(&frontend(), &pod("other", &[("app", "web")]), "80/tcp"));
}

// §2.5, pitfall 10: CCNP `fromEndpoints: [{}]` = all pods of all namespaces, not host/world.
#[test]
fn ccnp_empty_endpoint_selector_selects_pods_of_every_namespace_only() {
    let e = engine(
        r"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: pods-only}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{}]
",
    );
    assert!(e.allowed(&pod("any", &[]), &web(), "80/tcp"));
    assert!(!e.allowed(&world("8.8.8.8", &[]), &web(), "80/tcp"));
    assert!(!e.allowed(&reserved(Reserved::RemoteNode), &web(), "80/tcp"));
    // CNP `fromEndpoints: [{}]`: the policy's namespace only.
    let e = engine(
        r"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: same-ns, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints: [{}]
",
    );
    assert!(e.allowed(&frontend(), &web(), "80/tcp"));
    assert!(!e.allowed(&pod("any", &[]), &web(), "80/tcp"));
}

// §3.4: service accounts are selectable with `io.cilium.k8s.policy.serviceaccount`.
#[test]
fn service_account_selector() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {"io.cilium.k8s.policy.serviceaccount": web-sa}}
  ingress:
    - fromEndpoints: [{matchLabels: {"k8s:io.cilium.k8s.policy.serviceaccount": api}}]
"#,
    );
    let server = pod_sa("shop", "web", "web-sa");
    assert!(e.allowed(&pod_sa("shop", "x", "api"), &server, "80/tcp"));
    assert!(!e.allowed(&pod_sa("shop", "x", "other"), &server, "80/tcp"));
}

// §3.1: `k8s:` keys match only the k8s source, bare keys any source, `reserved:` reserved labels.
#[test]
fn label_sources_in_selector_keys() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: sources}
spec:
  endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
    - fromEndpoints: [{matchLabels: {"reserved:host": ""}}]
      toPorts: [{ports: [{port: "1", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {"any:tier": fe}}]
      toPorts: [{ports: [{port: "2", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {"container:tier": fe}}]
      toPorts: [{ports: [{port: "3", protocol: TCP}]}]
"#,
    );
    let fe = pod("x", &[("tier", "fe")]);
    assert!(e.allowed(&fe, &web(), "2/tcp"));
    assert!(
        !e.allowed(&fe, &web(), "3/tcp"),
        "source `container` does not match k8s labels"
    );
    let host_lbl = Peer {
        labels: Arc::new(Labels::new(vec![Label::new("reserved", "host", "")])),
        ..Peer::default()
    };
    assert!(e.allowed(&host_lbl, &web(), "1/tcp"));
    assert!(!e.allowed(&world("1.2.3.4", &[]), &web(), "1/tcp"));
}

// §3.1: a key is read the way the agent sanitizes it. `GetExtendedKeyFrom` turns a key into
// `<source>.<key>`: before the first `:` is the source, a `$` or a `reserved.` prefix (with no
// `:`) is `reserved`, anything else gets `any.`; matching reads that back splitting at the first
// `.` (cilium/cilium@507103c6 pkg/labels/labels.go:525-537 and 804-822,
// pkg/policy/api/selector.go:276-299, pkg/policy/types/requirements.go:142-150,
// pkg/k8s/apis/cilium.io/v2/cnp_types.go:195-202). So `reserved.world` is the world, a
// reserved selector is not confined to the namespace (utils.go:123-126), while `k8s.app` and
// `any.app` are plain keys of any source, dots and all, like `app.kubernetes.io/name`.
#[test]
fn selector_keys_are_read_as_the_agent_sanitizes_them() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: keys, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {"reserved.world": ""}}]
      toPorts: [{ports: [{port: "1", protocol: TCP}]}]
    - fromEndpoints: [{matchExpressions: [{key: "$host", operator: Exists}]}]
      toPorts: [{ports: [{port: "2", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {"k8s.app": fe}}]
      toPorts: [{ports: [{port: "3", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {"any.app": fe}}]
      toPorts: [{ports: [{port: "4", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {"app.kubernetes.io/name": fe}}]
      toPorts: [{ports: [{port: "5", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {"k8s.io.kubernetes.pod.namespace": other, app: fe}}]
      toPorts: [{ports: [{port: "6", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": other, "any:app": fe}}]
      toPorts: [{ports: [{port: "7", protocol: TCP}]}]
"#,
    );
    let world = world("1.2.3.4", &[]);
    assert!(
        e.allowed(&world, &web(), "1/tcp"),
        "`reserved.world` is the world"
    );
    assert!(!e.allowed(&pod("shop", &[("reserved.world", "")]), &web(), "1/tcp"));
    assert!(
        e.allowed(&reserved(Reserved::Host), &web(), "2/tcp"),
        "`$host` is the host"
    );
    assert!(!e.allowed(&world, &web(), "2/tcp"));
    assert!(
        !e.allowed(&pod("shop", &[("app", "fe")]), &web(), "3/tcp"),
        "`k8s.app` is not `k8s:app`"
    );
    assert!(e.allowed(&pod("shop", &[("k8s.app", "fe")]), &web(), "3/tcp"));
    assert!(!e.allowed(&pod("shop", &[("app", "fe")]), &web(), "4/tcp"));
    assert!(e.allowed(&pod("shop", &[("any.app", "fe")]), &web(), "4/tcp"));
    let named = pod("shop", &[("app.kubernetes.io/name", "fe")]);
    assert!(
        e.allowed(&named, &web(), "5/tcp"),
        "an unknown prefix is kept"
    );
    assert!(!e.allowed(
        &pod("shop", &[("kubernetes.io/name", "fe")]),
        &web(),
        "5/tcp"
    ));
    assert!(
        !e.allowed(&pod("other", &[("app", "fe")]), &web(), "6/tcp"),
        "`k8s.io.kubernetes.pod.namespace` is not the namespace key: the peer stays in `shop`"
    );
    assert!(!e.allowed(&pod("shop", &[("app", "fe")]), &web(), "6/tcp"));
    assert!(e.allowed(&pod("other", &[("app", "fe")]), &web(), "7/tcp"));
}

// §3.3: the subject's `reserved.init` (in any spelling) is the init identity, whose CCNP peers
// get no `namespace Exists` (cilium/cilium@507103c6 pkg/k8s/apis/cilium.io/utils/utils.go:
// 136-149, 344-349: `HasKey("reserved.init")` on the sanitized selector).
#[test]
fn init_subject_is_recognised_in_every_key_spelling() {
    let policy = |key: &str| {
        engine(&format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {{name: init}}
spec:
  endpointSelector: {{matchLabels: {{"{key}": ""}}}}
  egress:
    - toEndpoints: [{{}}]
"#
        ))
    };
    // An endpoint of the local cluster without a namespace label.
    let no_namespace = Peer {
        labels: Arc::new(Labels::new(vec![Label::new(
            "k8s",
            identity::CLUSTER,
            DEFAULT_CLUSTER,
        )])),
        ..Peer::default()
    };
    for key in ["reserved:init", "reserved.init", "$init"] {
        let e = policy(key);
        assert!(
            e.allowed(&reserved(Reserved::Init), &no_namespace, "53/udp"),
            "{key}: an init subject's `toEndpoints: [{{}}]` gets no `namespace Exists`"
        );
    }
    let e = policy("reserved.health");
    assert!(!e.allowed(&reserved(Reserved::Health), &no_namespace, "53/udp"));
}

// §3.2, pitfall 17: labels the identity filter drops are never matched.
#[test]
fn filtered_labels_are_not_part_of_identities() {
    let p = pod(
        "shop",
        &[
            ("app", "web"),
            ("pod-template-hash", "abc"),
            ("statefulset.kubernetes.io/pod-name", "web-0"),
        ],
    );
    assert!(!p.labels.has(None, "pod-template-hash"));
    assert!(!p.labels.has(None, "statefulset.kubernetes.io/pod-name"));
    assert!(p.labels.has(Some("k8s"), "app"));
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {"statefulset.kubernetes.io/pod-name": db-0}}]
"#,
    );
    let db0 = pod(
        "shop",
        &[
            ("app", "db"),
            ("statefulset.kubernetes.io/pod-name", "db-0"),
        ],
    );
    assert!(!e.allowed(&db0, &p, "80/tcp"));
}

fn entity_policy(entity: &str) -> Engine {
    engine(&format!(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: web, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: web}}}}
  ingress:
    - fromEntities: [{entity}]
      toPorts: [{{ports: [{{port: "80", protocol: TCP}}]}}]
"#
    ))
}

// §5.2: every entity selects exactly its reserved identities; `cluster` covers pods of the
// local cluster and every reserved in-cluster identity, `all` everything, `none` nothing.
#[test]
fn every_entity_selects_its_identities() {
    let peers: Vec<(&str, Peer)> = vec![
        ("host", reserved(Reserved::Host)),
        ("remote-node", reserved(Reserved::RemoteNode)),
        ("kube-apiserver", reserved(Reserved::KubeApiserver)),
        ("health", reserved(Reserved::Health)),
        ("ingress", reserved(Reserved::Ingress)),
        ("init", reserved(Reserved::Init)),
        ("unmanaged", reserved(Reserved::Unmanaged)),
        ("world", world("8.8.8.8", &[])),
        ("pod", pod("other", &[("app", "x")])),
    ];
    let expect: &[(&str, &[&str])] = &[
        ("host", &["host"]),
        ("remote-node", &["remote-node", "kube-apiserver"]),
        ("kube-apiserver", &["kube-apiserver"]),
        ("health", &["health"]),
        ("ingress", &["ingress"]),
        ("init", &["init"]),
        ("unmanaged", &["unmanaged"]),
        ("world", &["world"]),
        (
            "cluster",
            &[
                "host",
                "remote-node",
                "kube-apiserver",
                "health",
                "ingress",
                "init",
                "unmanaged",
                "pod",
            ],
        ),
        (
            "all",
            &[
                "host",
                "remote-node",
                "kube-apiserver",
                "health",
                "ingress",
                "init",
                "unmanaged",
                "world",
                "pod",
            ],
        ),
        ("none", &[]),
    ];
    for (entity, selected) in expect {
        let e = entity_policy(entity);
        for (name, peer) in &peers {
            // Host ingress is always allowed (allow-localhost); look at the rule match instead.
            let d = e.decide(peer, &web(), "80/tcp");
            let matched = !d.ingress.allowed_by.is_empty();
            assert_eq!(
                matched,
                selected.contains(name),
                "entity `{entity}`, peer `{name}`"
            );
        }
    }
}

// §1.7, §5.3, pitfall 7: CIDR rules match world-class IPs inside the prefix and outside every
// `except`, never pods or nodes.
#[test]
fn cidr_set_with_except_matches_only_world_ips() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toCIDRSet:
        - cidr: 10.0.0.0/8
          except: [10.96.0.0/12]
    - toCIDR: ["2001:db8::/32"]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#,
    );
    assert!(e.allowed(&web(), &world("10.1.2.3", &[]), "80/tcp"));
    assert!(!e.allowed(&web(), &world("10.96.0.10", &[]), "80/tcp"));
    assert!(!e.allowed(&web(), &world("11.0.0.1", &[]), "80/tcp"));
    assert!(e.allowed(&web(), &world("2001:db8::1", &[]), "443/tcp"));
    let mut inside_pod = pod("shop", &[("app", "db")]);
    inside_pod.ip = Some("10.1.2.3".parse().unwrap());
    assert!(!e.allowed(&web(), &inside_pod, "80/tcp"));
    let mut node = reserved(Reserved::RemoteNode);
    node.ip = Some("10.1.2.4".parse().unwrap());
    assert!(!e.allowed(&web(), &node, "80/tcp"));
}

const FQDN_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: sonarr, namespace: media}
spec:
  endpointSelector: {matchLabels: {app: sonarr}}
  egress:
    - toEndpoints:
        - matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}
      toPorts:
        - ports: [{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]
          rules:
            dns: [{matchPattern: "*.thetvdb.com"}, {matchName: "github.com"}]
    - toFQDNs: [{matchName: api.thetvdb.com}, {matchPattern: "**.github.com"}, {matchName: github.com}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#;

// §4.2, §4.3: `toFQDNs` matches world IPs by the names the DNS proxy saw, and the DNS lookup
// itself is allowed by the DNS rule; names the DNS rule does not cover get no FQDN identity.
#[test]
fn to_fqdns_needs_a_dns_rule_that_sees_the_name() {
    let e = engine(FQDN_POLICY);
    let sonarr = pod("media", &[("app", "sonarr")]);
    let dns = pod("kube-system", &[("k8s-app", "kube-dns")]);
    assert!(e.allowed(&sonarr, &dns, "53/udp"));
    assert!(e.allowed(&sonarr, &dns, "53/tcp"));
    assert!(!e.allowed(&sonarr, &dns, "5353/udp"));
    assert!(e.allowed(
        &sonarr,
        &world("151.101.1.1", &["api.thetvdb.com"]),
        "443/tcp"
    ));
    assert!(!e.allowed(
        &sonarr,
        &world("151.101.1.1", &["api.thetvdb.com"]),
        "80/tcp"
    ));
    assert!(!e.allowed(&sonarr, &world("151.101.1.1", &["evil.com"]), "443/tcp"));
    assert!(!e.allowed(&sonarr, &world("151.101.1.1", &[]), "443/tcp"));
    assert!(e.allowed(&sonarr, &world("140.82.1.1", &["github.com"]), "443/tcp"));
    // `**.github.com` matches, but the DNS rule does not let the proxy see api.github.com.
    let d = e.decide(
        &sonarr,
        &world("140.82.1.2", &["api.github.com"]),
        "443/tcp",
    );
    assert!(!d.allowed());
    assert!(
        d.egress.notes.iter().any(|n| n.contains("DNS proxy")),
        "{:?}",
        d.egress.notes
    );
}

// §1.8: `*` stays within one label, a leading `**.` spans several.
#[test]
fn fqdn_wildcards() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: w, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system}}]
      toPorts: [{ports: [{port: "53", protocol: ANY}], rules: {dns: [{matchPattern: "*"}]}}]
    - toFQDNs: [{matchPattern: "*.example.com"}, {matchPattern: "**.deep.org"}]
"#,
    );
    let ok = |name: &str| e.allowed(&web(), &world("192.0.2.1", &[name]), "443/tcp");
    assert!(ok("a.example.com"));
    assert!(!ok("a.b.example.com"));
    assert!(!ok("example.com"));
    assert!(ok("a.b.deep.org"));
    assert!(!ok("deep.org"));
    assert!(ok("A.Example.COM."), "case and trailing dot do not matter");
}

// §1.13: `endPort` makes a range; `port: "0"` every port; no protocol/ANY = TCP+UDP+SCTP,
// never ICMP (pitfall 14).
#[test]
fn port_ranges_wildcards_and_any() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: "6881", endPort: 6889, protocol: UDP}, {port: "8000"}]}]
    - fromEndpoints: [{matchLabels: {app: admin}}]
      toPorts: [{ports: [{port: "0", protocol: TCP}]}]
"#,
    );
    assert!(e.allowed(&frontend(), &web(), "6885/udp"));
    assert!(!e.allowed(&frontend(), &web(), "6890/udp"));
    assert!(!e.allowed(&frontend(), &web(), "6885/tcp"));
    for p in ["8000/tcp", "8000/udp", "8000/sctp"] {
        assert!(e.allowed(&frontend(), &web(), p), "{p}");
    }
    assert!(!e.allowed(&frontend(), &web(), "icmp/8"));
    let admin = pod("shop", &[("app", "admin")]);
    assert!(e.allowed(&admin, &web(), "65535/tcp"));
    assert!(!e.allowed(&admin, &web(), "53/udp"));
}

// §1.15: ICMP types by number or name, per family.
#[test]
fn icmp_types_by_number_and_name() {
    let e = engine(
        r"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      icmps:
        - fields: [{type: 8}, {type: EchoRequest, family: IPv6}]
",
    );
    assert!(e.allowed(&frontend(), &web(), "icmp/8"));
    assert!(e.allowed(&frontend(), &web(), "icmpv6/128"));
    assert!(!e.allowed(&frontend(), &web(), "icmp/13"));
    assert!(!e.allowed(&frontend(), &web(), "8/tcp"));
}

const INVENTORY: &str = r#"{"apiVersion":"v1","kind":"List","items":[
 {"kind":"Namespace","metadata":{"name":"shop","labels":{"team":"web"}}},
 {"kind":"Pod","metadata":{"name":"web-7f9c6d5b4-8m2lp","namespace":"shop","labels":{"app":"web","pod-template-hash":"7f9c6d5b4"},
   "ownerReferences":[{"kind":"ReplicaSet","name":"web-7f9c6d5b4","controller":true}]},
  "spec":{"serviceAccountName":"web","nodeName":"n1","containers":[{"name":"c","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}]}]},
  "status":{"podIP":"10.0.1.5","podIPs":[{"ip":"10.0.1.5"}]}},
 {"kind":"Pod","metadata":{"name":"frontend-0","namespace":"shop","labels":{"app":"frontend"},
   "ownerReferences":[{"kind":"StatefulSet","name":"frontend","controller":true}]},
  "spec":{"nodeName":"n2","containers":[{"name":"c"}]},"status":{"podIP":"10.0.2.7"}},
 {"kind":"Service","metadata":{"name":"web","namespace":"shop","labels":{"tier":"front"}},
  "spec":{"selector":{"app":"web"},"clusterIP":"10.96.0.20","ports":[{"port":80,"targetPort":"http","protocol":"TCP"}]}},
 {"kind":"Node","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.11"}]}},
 {"kind":"Node","metadata":{"name":"n2"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.12"}]}}
]}"#;

// §1.13, pitfall 13: named ports resolve from the pod's container ports (inventory); without an
// inventory they cannot be resolved and the rule does not match (reported).
#[test]
fn named_ports_resolve_from_the_inventory() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: http, protocol: TCP}]}]
"#;
    let e = engine_with(yaml, Some(INVENTORY));
    let inv = e.inventory.as_ref().unwrap();
    let web = inv.pod_peer(inv.pod("shop", "web-7f9c6d5b4-8m2lp").unwrap());
    let fe = inv.pod_peer(inv.pod("shop", "frontend-0").unwrap());
    assert!(e.allowed(&fe, &web, "8080/tcp"));
    assert!(!e.allowed(&fe, &web, "80/tcp"));
    // Without the inventory the name is unknown.
    let e = engine(yaml);
    let mut bare = web.clone();
    bare.named_ports = Arc::new(Vec::new());
    let d = e.decide(&fe, &bare, "8080/tcp");
    assert!(!d.allowed());
    assert!(
        d.ingress
            .notes
            .iter()
            .any(|n| n.contains("named port `http`")),
        "{:?}",
        d.ingress.notes
    );
}

// §1.9: `toServices` selects the Service's pods (selector + namespace), from the inventory.
#[test]
fn to_services_select_the_service_pods() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fe, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
    - toServices: [{k8sService: {serviceName: web, namespace: shop}}]
    - toServices: [{k8sServiceSelector: {selector: {matchLabels: {tier: none}}}}]
"#;
    let e = engine_with(yaml, Some(INVENTORY));
    let inv = e.inventory.as_ref().unwrap();
    let web = inv.pod_peer(inv.pod("shop", "web-7f9c6d5b4-8m2lp").unwrap());
    let fe = inv.pod_peer(inv.pod("shop", "frontend-0").unwrap());
    assert!(e.allowed(&fe, &web, "8080/tcp"));
    assert!(!e.allowed(&fe, &pod("shop", &[("app", "db")]), "8080/tcp"));
    // Without an inventory nothing is resolved.
    let e = engine(yaml);
    assert!(!e.allowed(&fe, &web, "8080/tcp"));
}

// §1.9: with both `k8sService` and `k8sServiceSelector`, the selector decides and the name is
// ignored; with neither, the item matches no Service (cilium/cilium@507103c6
// pkg/policy/k8s/service.go:300-314, 439-469, `processRule`).
#[test]
fn to_services_selector_wins_over_the_name() {
    let both = |selector: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: fe, namespace: shop}}\nspec:\n  endpointSelector: {{matchLabels: {{app: frontend}}}}\n  egress:\n    - toServices: [{{k8sService: {{serviceName: web, namespace: shop}}, k8sServiceSelector: {{selector: {{matchLabels: {selector}}}}}}}]\n    - toServices: [{{}}]\n"
        )
    };
    let e = engine_with(&both("{tier: none}"), Some(INVENTORY));
    let inv = e.inventory.as_ref().unwrap();
    let web = inv.pod_peer(inv.pod("shop", "web-7f9c6d5b4-8m2lp").unwrap());
    let fe = inv.pod_peer(inv.pod("shop", "frontend-0").unwrap());
    assert!(!e.allowed(&fe, &web, "8080/tcp"), "the name is ignored");
    let e = engine_with(&both("{tier: front}"), Some(INVENTORY));
    assert!(
        e.allowed(&fe, &web, "8080/tcp"),
        "the selector matches `web`"
    );
}

// §8: KNP `namespaceSelector` maps to namespace labels, `{}` = every namespace; `ipBlock`
// is a CIDR with except.
#[test]
fn knp_namespace_selector_and_ip_block() {
    let e = engine(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - namespaceSelector: {}
          podSelector: {matchLabels: {app: prometheus}}
        - podSelector: {matchLabels: {app: frontend}}
  egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
      ports: [{port: 443}]
"#,
    );
    assert!(e.allowed(
        &pod("monitoring", &[("app", "prometheus")]),
        &web(),
        "9090/tcp"
    ));
    assert!(!e.allowed(
        &pod("monitoring", &[("app", "grafana")]),
        &web(),
        "9090/tcp"
    ));
    assert!(e.allowed(&frontend(), &web(), "80/tcp"));
    assert!(!e.allowed(&pod("other", &[("app", "frontend")]), &web(), "80/tcp"));
    assert!(e.allowed(&web(), &world("1.1.1.1", &[]), "443/tcp"));
    assert!(
        !e.allowed(&web(), &world("1.1.1.1", &[]), "443/udp"),
        "KNP ports default to TCP"
    );
    assert!(!e.allowed(&web(), &world("10.1.1.1", &[]), "443/tcp"));
}

// §5.4, §6.3: ingress from the local node is always allowed (allow-localhost) — unless a deny
// rule matches.
#[test]
fn host_ingress_is_allowed_unless_denied() {
    let e = engine(WEB_INGRESS_FROM_FRONTEND_8080);
    let d = e.decide(&reserved(Reserved::Host), &web(), "8080/tcp");
    assert_eq!(d.ingress.reason, Some(Reason::AllowedLocalhost));
    let e = engine(
        r"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingressDeny:
    - fromEntities: [host]
",
    );
    assert!(!e.allowed(&reserved(Reserved::Host), &web(), "8080/tcp"));
}

// Pitfall 18: a pod label `host` makes Cilium skip enforcement; a label `init` forces default
// deny in both directions.
#[test]
fn pod_labels_named_host_or_init_change_enforcement() {
    let e = engine(WEB_INGRESS_FROM_FRONTEND_8080);
    let hosty = pod("shop", &[("app", "web"), ("host", "yes")]);
    assert_eq!(
        e.decide(&world("1.1.1.1", &[]), &hosty, "22/tcp")
            .ingress
            .reason,
        Some(Reason::HostLabel)
    );
    let inity = pod("shop", &[("app", "x"), ("init", "1")]);
    assert_eq!(
        e.decide(&inity, &world("1.1.1.1", &[]), "443/tcp")
            .egress
            .reason,
        Some(Reason::DefaultDeny)
    );
}

// §10.6, pitfall 11: a pod-to-pod flow needs the client's egress and the server's ingress.
#[test]
fn both_ends_must_allow() {
    let e = engine(&format!(
        r#"{WEB_INGRESS_FROM_FRONTEND_8080}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: frontend, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: frontend}}}}
  egress:
    - toEndpoints: [{{matchLabels: {{app: api}}}}]
"#
    ));
    let d = e.decide(&frontend(), &web(), "8080/tcp");
    assert_eq!(d.egress.reason, Some(Reason::DefaultDeny));
    assert_eq!(d.ingress.reason, Some(Reason::AllowedByRule));
    assert_eq!(d.dropped_at(), Some(Direction::Egress));
}

// §1.1, pitfall 20: an object with one invalid rule contributes no rule at all.
#[test]
fn invalid_object_contributes_no_rules() {
    let fs = Memory::new([(
        PathBuf::from("p/x.yaml"),
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
specs:
  - endpointSelector: {matchLabels: {app: web}}
    ingress: [{fromEndpoints: [{}]}]
  - endpointSelector: {matchLabels: {app: web}}
    ingress:
      - fromEndpoints: [{}]
        fromEntities: [world]
"#
        .to_owned(),
    )]);
    let imported = policy::import(&fs, &[PathBuf::from("p")]);
    assert_eq!(imported.set.policies.len(), 0);
    assert_eq!(imported.set.stats.rejected, 1);
    let d = imported.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(
        d.message,
        "combining `fromEndpoints` and `fromEntities` is not supported yet"
    );
}

// Nodes selectors are host policies: enforced only with the host firewall, off by default (§2.2).
#[test]
fn node_selector_rules_are_not_enforced_without_host_firewall() {
    let e = engine(
        r"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: hosts}
spec:
  nodeSelector: {}
  ingress:
    - fromEntities: [cluster]
",
    );
    assert!(e.allowed(&world("1.1.1.1", &[]), &reserved(Reserved::Host), "22/tcp"));
    assert!(e.allowed(&world("1.1.1.1", &[]), &web(), "22/tcp"));
}

// §2.4, §10.5: an allow with HTTP rules redirects to the proxy; the report says so.
#[test]
fn l7_http_allow_is_reported_as_filtered() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts:
        - ports: [{port: "80", protocol: TCP}]
          rules: {http: [{method: GET, path: "/api/.*"}]}
"#,
    );
    let d = e.decide(&frontend(), &web(), "80/tcp");
    assert!(d.allowed());
    assert!(
        d.ingress
            .notes
            .iter()
            .any(|n| n.contains("HTTP requests are filtered"))
    );
}

// ---------------------------------------------------------------------------------------------
// Audit against Cilium's source: cilium/cilium@507103c61fe20d13d023bbe2a730d829bd2902d6
// (2026-01-07, 1.19.0-dev). Each test cites the code that decides the behaviour; docs/semantics.md
// explains it.

/// The errors an import reports, by message.
fn import_errors(yaml: &str) -> Vec<String> {
    let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
    let imported = policy::import(&fs, &[PathBuf::from("p")]);
    imported
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect()
}

/// A `toPorts` item without `ports` allows nothing, yet its rule turns on default deny:
/// Cilium makes one filter per listed port and none for the item, and the item keeps the rule
/// from being L3-only (pkg/policy/rule.go:361-413; pkg/policy/api/l4.go:345-366, `Len` counts
/// items).
#[test]
fn to_ports_without_ports_allows_nothing_but_enforces() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - toPorts:
        - rules: {http: [{method: GET}]}
"#,
    );
    let d = e.decide(&frontend(), &web(), "80/tcp");
    assert_eq!(d.ingress.reason, Some(Reason::DefaultDeny));
}

/// The same under a deny rule denies nothing (pkg/policy/utils/parserules.go:160-166 copies only
/// `ports` of a deny item).
#[test]
fn a_deny_to_ports_item_without_ports_denies_nothing() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  enableDefaultDeny: {ingress: false}
  ingressDeny:
    - fromEntities: [world]
      toPorts: [{}]
"#,
    );
    let d = e.decide(&world("198.51.100.1", &[]), &web(), "443/tcp");
    assert!(d.allowed(), "{d:?}");
    assert_eq!(d.ingress.reason, Some(Reason::NotDefaultDeny));
}

/// `authentication.mode: required` with no mutual-auth backend: nobody writes the auth map, so
/// the datapath drops with AUTH_REQUIRED (bpf/bpf_lxc.c:855-878; bpf/lib/auth.h:22-54;
/// pkg/auth/mutual_authhandler.go:65-75: the handler is off while the listener port is 0). A
/// deny still wins; with mutual auth configured the flow passes once authenticated.
#[test]
fn authentication_required_without_a_backend_drops() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      authentication: {mode: required}
"#;
    let d = engine(yaml).decide(&frontend(), &web(), "8080/tcp");
    assert!(!d.allowed());
    assert_eq!(d.ingress.reason, Some(Reason::AuthRequired));
    // With the agents' mutual authentication on.
    let settings = Settings {
        mutual_auth: true,
        ..Settings::default()
    };
    let d = engine_for(yaml, &settings).decide(&frontend(), &web(), "8080/tcp");
    assert!(d.allowed());
    assert!(
        d.ingress
            .notes
            .iter()
            .any(|n| n.contains("mutual authentication")),
        "{:?}",
        d.ingress.notes
    );
}

/// Port strings are read like Go's `ParseUint(s, 0, 16)`: a leading 0 is octal, `"08"` is an
/// error that refuses the whole policy (pkg/policy/api/rule_validation.go:622-650;
/// pkg/policy/l4.go:939-955).
#[test]
fn port_strings_are_parsed_like_go_with_octal() {
    let policy = |port: &str| {
        format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: web, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: web}}}}
  ingress:
    - toPorts: [{{ports: [{{port: "{port}", protocol: TCP}}]}}]
"#
        )
    };
    let e = engine(&policy("010"));
    assert!(e.allowed(&frontend(), &web(), "8/tcp"));
    assert!(!e.allowed(&frontend(), &web(), "10/tcp"));
    assert_eq!(
        import_errors(&policy("08")),
        ["unable to parse port `08`: invalid syntax"]
    );
}

/// `port: "0"` with an `endPort` below 65535 is the range 0..endPort, not every port
/// (pkg/policy/portrange.go:32-45).
#[test]
fn port_zero_with_an_end_port_is_a_range() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - toPorts: [{ports: [{port: "0", endPort: 1024, protocol: TCP}]}]
"#,
    );
    assert!(e.allowed(&frontend(), &web(), "80/tcp"));
    assert!(e.allowed(&frontend(), &web(), "1024/tcp"));
    assert!(!e.allowed(&frontend(), &web(), "8080/tcp"));
}

/// Egress named ports resolve against one cluster-wide map of every endpoint's named ports,
/// never the destination's own: a name with two numbers resolves to nothing, and a unique name
/// allows its number to every selected destination (pkg/endpoint/policy.go:51-89;
/// pkg/types/portmap.go:164-219).
#[test]
fn egress_named_ports_resolve_cluster_wide_only() {
    let inventory = |b_port: &str| {
        format!(
            r#"{{"kind":"List","items":[
 {{"kind":"Pod","metadata":{{"name":"a","namespace":"shop","labels":{{"app":"a"}}}},"spec":{{"containers":[{{"name":"c","ports":[{{"name":"http","containerPort":8080}}]}}]}},"status":{{"phase":"Running","podIP":"10.0.0.1"}}}},
 {{"kind":"Pod","metadata":{{"name":"b","namespace":"shop","labels":{{"app":"b"}}}},"spec":{{"containers":[{{"name":"c","ports":[{b_port}]}}]}},"status":{{"phase":"Running","podIP":"10.0.0.2"}}}}]}}"#
        )
    };
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: c}}
  egress:
    - toEndpoints: [{matchLabels: {app: b}}]
      toPorts: [{ports: [{port: http, protocol: TCP}]}]
"#;
    let c = pod("shop", &[("app", "c")]);
    // `http` is 8080 on a and 9090 on b: ambiguous, so nothing.
    let e = engine_with(
        yaml,
        Some(&inventory(r#"{"name":"http","containerPort":9090}"#)),
    );
    let inv = e.inventory.as_ref().unwrap();
    let b = inv.pod_peer(inv.pod("shop", "b").unwrap());
    assert!(!e.allowed(&c, &b, "9090/tcp"));
    assert!(!e.allowed(&c, &b, "8080/tcp"));
    // Only a names it: 8080, to b as well, though b has no such port.
    let e = engine_with(
        yaml,
        Some(&inventory(r#"{"name":"metrics","containerPort":9100}"#)),
    );
    let inv = e.inventory.as_ref().unwrap();
    let b = inv.pod_peer(inv.pod("shop", "b").unwrap());
    assert!(e.allowed(&c, &b, "8080/tcp"));
}

/// An empty `toFQDNs` (or `toServices`, groups) list is as if absent: with `toPorts` the item
/// allows every peer on those ports (pkg/policy/utils/parserules.go:140-158 leaves them out of
/// the nil check; pkg/policy/l4.go:964-970 turns an empty L3 with ports into the wildcard).
#[test]
fn an_empty_to_fqdns_list_with_ports_allows_every_peer_on_them() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  egress:
    - toFQDNs: []
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#,
    );
    let api = pod("shop", &[("app", "api")]);
    assert!(e.allowed(&api, &world("93.184.216.34", &[]), "443/tcp"));
    assert!(e.allowed(&api, &web(), "443/tcp"));
    assert!(!e.allowed(&api, &world("93.184.216.34", &[]), "80/tcp"));
}

/// An empty list beside another peer field is valid (only non-empty fields count,
/// pkg/policy/api/rule_validation.go:202-218), and an empty endpoints/CIDR/entities list
/// makes the whole item select nothing (parserules.go:140-149); the rule still enforces.
#[test]
fn an_empty_endpoints_list_beside_a_cidr_selects_nothing() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: []
      fromCIDR: ["203.0.113.0/24"]
    - fromEntities: [world]
      icmps: []
      toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#;
    assert!(import_errors(yaml).is_empty(), "{:?}", import_errors(yaml));
    let e = engine(yaml);
    let d = e.decide(&world("203.0.113.7", &[]), &web(), "443/tcp");
    assert_eq!(d.ingress.reason, Some(Reason::DefaultDeny));
    // `icmps: []` beside `toPorts` is fine: world on 80 is allowed by the second item.
    assert!(e.allowed(&world("203.0.113.7", &[]), &web(), "80/tcp"));
    // Two non-empty peer fields are still refused.
    let both = yaml.replace("fromEndpoints: []", "fromEndpoints: [{}]");
    assert_eq!(
        import_errors(&both),
        ["combining `fromEndpoints` and `fromCIDR` is not supported yet"]
    );
}

/// Cilium enforces every rule of a NetworkPolicy whatever `policyTypes` says; the types only
/// decide the default deny of a direction without rules (pkg/k8s/network_policy.go:158-274),
/// and an empty list is defaulted like a missing one (kubernetes/kubernetes@030880a5
/// pkg/apis/networking/v1/defaults.go:38-46).
#[test]
fn knp_rules_are_enforced_whatever_policy_types_says() {
    let e = engine(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: frontend}}}]
  egress:
    - to: [{podSelector: {matchLabels: {app: db}}}]
"#,
    );
    // The ingress rule is enforced though only Egress is listed: other pods are dropped.
    assert!(e.allowed(&frontend(), &web(), "8080/tcp"));
    let other = pod("shop", &[("app", "other")]);
    assert_eq!(
        e.decide(&other, &web(), "8080/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    // `policyTypes: []` is `[Ingress]`: default deny for ingress, egress untouched.
    let e = engine(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: []
"#,
    );
    assert_eq!(
        e.decide(&frontend(), &web(), "80/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    assert_eq!(
        e.decide(&web(), &frontend(), "80/tcp").egress.reason,
        Some(Reason::NoPolicy)
    );
}

/// A label with the key `host` turns enforcement off before `init` forces default deny
/// (pkg/policy/repository.go:360-418): a pod labelled both is not enforced.
#[test]
fn a_host_label_wins_over_init() {
    let e = engine(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: all, namespace: shop}
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints: [{matchLabels: {app: x}}]
"#,
    );
    let odd = pod("shop", &[("host", "1"), ("init", "1")]);
    let d = e.decide(&world("203.0.113.5", &[]), &odd, "80/tcp");
    assert!(d.allowed());
    assert_eq!(d.ingress.reason, Some(Reason::HostLabel));
    // `init` alone, no policy selecting it: default deny all the same.
    let lone = pod("other", &[("init", "1")]);
    assert_eq!(
        e.decide(&world("203.0.113.5", &[]), &lone, "80/tcp")
            .ingress
            .reason,
        Some(Reason::DefaultDeny)
    );
}

/// `enable-policy`: `never` enforces nothing; `always` enforces default deny both ways on every
/// endpoint, selected by a rule or not (pkg/policy/repository.go:360-437).
#[test]
fn enable_policy_never_and_always() {
    let with = |enforcement| Settings {
        enforcement,
        ..Settings::default()
    };
    let never = engine_for(WEB_INGRESS_FROM_FRONTEND_8080, &with(Enforcement::Never));
    let other = pod("shop", &[("app", "other")]);
    let d = never.decide(&other, &web(), "8080/tcp");
    assert!(d.allowed());
    assert_eq!(d.ingress.reason, Some(Reason::PolicyDisabled));
    let always = engine_for(WEB_INGRESS_FROM_FRONTEND_8080, &with(Enforcement::Always));
    assert!(!always.allowed(&frontend(), &web(), "8080/tcp"));
    // frontend has no egress rule: `always` denies its egress too.
    assert_eq!(
        always.decide(&frontend(), &web(), "8080/tcp").egress.reason,
        Some(Reason::DefaultDeny)
    );
    // A pod no rule selects: default deny both ways, and the host may still reach it.
    assert_eq!(
        always
            .decide(&world("203.0.113.5", &[]), &other, "80/tcp")
            .ingress
            .reason,
        Some(Reason::DefaultDeny)
    );
    assert!(always.allowed(&reserved(Reserved::Host), &other, "80/tcp"));
}

fn version(v: &str) -> Settings {
    Settings {
        version: Some(v.to_owned()),
        ..Settings::default()
    }
}

/// The local-cluster requirement of peer selectors: `policy-default-local-cluster` came in
/// 1.18, off by default, and is on by default from 1.19 (pkg/clustermesh/types/option.go:
/// 139-167; pkg/k8s/apis/cilium.io/utils/utils.go:106-112). Without it a namespace
/// `NotIn` selector also matches identities outside any namespace, such as the world.
#[test]
fn the_local_cluster_default_follows_the_version() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints:
        - matchExpressions:
            - {key: "k8s:io.kubernetes.pod.namespace", operator: NotIn, values: [kube-system]}
"#;
    let outside = world("203.0.113.5", &[]);
    assert!(engine_for(yaml, &version("1.18")).allowed(&outside, &web(), "80/tcp"));
    assert!(engine_for(yaml, &version("1.17")).allowed(&outside, &web(), "80/tcp"));
    assert!(!engine_for(yaml, &version("1.19")).allowed(&outside, &web(), "80/tcp"));
    let on = Settings {
        default_local_cluster: Some(true),
        ..version("1.18")
    };
    assert!(!engine_for(yaml, &on).allowed(&outside, &web(), "80/tcp"));
    // Pods of the cluster match in every version.
    assert!(engine_for(yaml, &version("1.18")).allowed(&frontend(), &web(), "80/tcp"));
}

/// A leading `**.` in `matchPattern` is one or more labels from 1.19 on (cilium/cilium
/// 4ef872ef), one label before; `***.` is the same as `**.` in 1.19.
#[test]
fn multi_label_patterns_follow_the_version() {
    let yaml = |pattern: &str| {
        format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: api, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: api}}}}
  egress:
    - toEndpoints: [{{matchLabels: {{"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}}}}]
      toPorts: [{{ports: [{{port: "53", protocol: ANY}}], rules: {{dns: [{{matchPattern: "*"}}]}}}}]
    - toFQDNs: [{{matchPattern: "{pattern}"}}]
"#
        )
    };
    let api = pod("shop", &[("app", "api")]);
    let deep = world("151.101.1.1", &["a.b.example.com"]);
    let one = world("151.101.1.2", &["a.example.com"]);
    for pattern in ["**.example.com", "***.example.com"] {
        let new = engine_for(&yaml(pattern), &version("1.19"));
        assert!(new.allowed(&api, &deep, "443/tcp"), "{pattern}");
        let old = engine_for(&yaml(pattern), &version("1.18"));
        assert!(!old.allowed(&api, &deep, "443/tcp"), "{pattern}");
        assert!(old.allowed(&api, &one, "443/tcp"), "{pattern}");
    }
}

/// A CNP's subject: only the `matchLabels` key `k8s:io.kubernetes.pod.namespace` is set to the
/// policy's namespace; a namespace key without the `k8s:` source and `matchExpressions` on it
/// are kept and ANDed, so such a rule selects nothing (pkg/k8s/apis/cilium.io/utils/utils.go:
/// 364-406; pkg/policy/api/selector.go:249-255).
#[test]
fn a_cnp_subject_keeps_namespace_requirements_it_does_not_overwrite() {
    let policy = |selector: &str| {
        format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: web, namespace: shop}}
spec:
  endpointSelector: {selector}
  ingress:
    - fromEntities: [world]
"#
        )
    };
    let x = pod("shop", &[("app", "x")]);
    // Overwritten: selects shop/web, so x → web is dropped (ingress from world only).
    let e = engine(&policy(
        r#"{matchLabels: {"k8s:io.kubernetes.pod.namespace": other, app: web}}"#,
    ));
    assert_eq!(
        e.decide(&x, &web(), "80/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    // Kept and ANDed: selects nothing, web is not enforced.
    for selector in [
        r#"{matchLabels: {io.kubernetes.pod.namespace: other, app: web}}"#,
        r#"{matchLabels: {app: web}, matchExpressions: [{key: "k8s:io.kubernetes.pod.namespace", operator: In, values: [other]}]}"#,
    ] {
        let e = engine(&policy(selector));
        assert_eq!(
            e.decide(&x, &web(), "80/tcp").ingress.reason,
            Some(Reason::NoPolicy),
            "{selector}"
        );
    }
}

/// `toServices` is rewritten into the matching Services' peers under `egress` only; a
/// Service that does not exist adds nothing, so with `toPorts` the item allows every peer on
/// those ports (1.17+, cilium/cilium issue #20067); under `egressDeny` it is never rewritten,
/// so it denies everyone on the ports; a Service without a selector is its endpoints'
/// addresses (pkg/policy/k8s/service.go:236-257, 417-434, 439-467).
#[test]
fn to_services_follow_cilium_rewrite() {
    let inventory = r#"{"kind":"List","items":[
 {"kind":"Service","metadata":{"name":"db","namespace":"data"},"spec":{"selector":{"app":"db"},"clusterIP":"10.96.0.30","ports":[{"port":5432}]}},
 {"kind":"Service","metadata":{"name":"nas","namespace":"data"},"spec":{"clusterIP":"10.96.0.31","ports":[{"port":445}]}},
 {"kind":"EndpointSlice","metadata":{"name":"nas-1","namespace":"data","labels":{"kubernetes.io/service-name":"nas"}},"endpoints":[{"addresses":["192.168.1.50"]}],"ports":[{"port":445}]}]}"#;
    let allow = |service: &str, port: &str| {
        format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: api, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: api}}}}
  egress:
    - toServices: [{{k8sService: {{serviceName: {service}, namespace: data}}}}]
      toPorts: [{{ports: [{{port: "{port}", protocol: TCP}}]}}]
"#
        )
    };
    let api = pod("shop", &[("app", "api")]);
    let db = pod("data", &[("app", "db")]);
    let stranger = world("198.51.100.10", &[]);
    // An existing Service: its pods only.
    let e = engine_with(&allow("db", "5432"), Some(inventory));
    assert!(e.allowed(&api, &db, "5432/tcp"));
    assert!(!e.allowed(&api, &stranger, "5432/tcp"));
    // No such Service: every peer on the port.
    let e = engine_with(&allow("does-not-exist", "5432"), Some(inventory));
    assert!(e.allowed(&api, &stranger, "5432/tcp"));
    assert!(!e.allowed(&api, &stranger, "443/tcp"));
    // Without a selector: the endpoint addresses.
    let e = engine_with(&allow("nas", "445"), Some(inventory));
    assert!(e.allowed(&api, &world("192.168.1.50", &[]), "445/tcp"));
    assert!(!e.allowed(&api, &stranger, "445/tcp"));
    // Under egressDeny: never rewritten, so everyone on the port is denied.
    let deny = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  enableDefaultDeny: {egress: false}
  egressDeny:
    - toServices: [{k8sService: {serviceName: db, namespace: data}}]
      toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
"#;
    let e = engine_with(deny, Some(inventory));
    assert_eq!(
        e.decide(&api, &stranger, "5432/tcp").egress.reason,
        Some(Reason::DeniedByRule)
    );
    assert!(e.allowed(&api, &stranger, "443/tcp"));
}

/// `allow-localhost: policy`: ingress from the local host is no longer allowed implicitly
/// (pkg/policy/mapstate.go:1073-1082); `enable-non-default-deny-policies: false`: Sanitize
/// forces default deny, so `enableDefaultDeny: false` is ignored (pkg/policy/api/
/// rule_validation.go:47-64).
#[test]
fn allow_localhost_policy_and_forced_default_deny() {
    let host = reserved(Reserved::Host);
    let by_policy = Settings {
        localhost_by_policy: true,
        ..Settings::default()
    };
    let e = engine(WEB_INGRESS_FROM_FRONTEND_8080);
    assert!(
        e.allowed(&host, &web(), "80/tcp"),
        "auto: the host is always allowed"
    );
    let e = engine_for(WEB_INGRESS_FROM_FRONTEND_8080, &by_policy);
    assert_eq!(
        e.decide(&host, &web(), "80/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    let lenient = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  enableDefaultDeny: {ingress: false}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
"#;
    let y = pod("shop", &[("app", "y")]);
    assert!(engine(lenient).allowed(&y, &web(), "80/tcp"));
    let forced = Settings {
        default_deny_forced: true,
        ..Settings::default()
    };
    assert!(!engine_for(lenient, &forced).allowed(&y, &web(), "80/tcp"));
    assert!(engine_for(lenient, &forced).allowed(&frontend(), &web(), "80/tcp"));
}

/// The live audit's `audit_as_enforced` (no Cilium setting): a policy `netpol compile` wrote
/// for an `enforce: audit` profile (annotation `netpol.dev/enforce: audit`) is judged as if its
/// `enableDefaultDeny: false` were true; a user's own lenient policy is not.
#[test]
fn audit_phase_policies_are_judged_as_enforced_when_asked() {
    let compiled = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: shop
  annotations: {netpol.dev/enforce: audit}
spec:
  endpointSelector: {matchLabels: {app: web}}
  enableDefaultDeny: {ingress: false, egress: false}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
"#;
    let own = compiled.replace("  annotations: {netpol.dev/enforce: audit}\n", "");
    let y = pod("shop", &[("app", "y")]);
    let as_enforced = Settings {
        audit_as_enforced: true,
        ..Settings::default()
    };
    assert!(
        engine(compiled).allowed(&y, &web(), "80/tcp"),
        "Cilium allows it"
    );
    let judged = engine_for(compiled, &as_enforced).decide(&y, &web(), "80/tcp");
    assert_eq!(judged.ingress.reason, Some(Reason::DefaultDeny));
    assert!(engine_for(compiled, &as_enforced).allowed(&frontend(), &web(), "80/tcp"));
    assert!(engine_for(&own, &as_enforced).allowed(&y, &web(), "80/tcp"));
}

/// `policy-audit-mode: true`: every drop policy decides becomes a pass that Hubble logs as
/// `AUDIT` — default deny, a deny rule and missing authentication alike; the reason is kept so
/// that reports say what would happen once audit mode is off (cilium/cilium@507103c6
/// bpf/lib/policy.h, `policy_can_ingress`/`policy_can_egress`: `IS_ERR(ret)` under
/// POLICY_AUDIT_MODE sets `*audited` and returns `CTX_ACT_OK`).
#[test]
fn audit_mode_passes_every_policy_drop() {
    let policies = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {app: admin}}]
      authentication: {mode: required}
  ingressDeny:
    - fromEndpoints: [{matchLabels: {app: banned}}]
"#;
    let audit = Settings {
        audit_mode: true,
        ..Settings::default()
    };
    let cases = [
        (pod("shop", &[("app", "stranger")]), Reason::DefaultDeny),
        (pod("shop", &[("app", "banned")]), Reason::DeniedByRule),
        (pod("shop", &[("app", "admin")]), Reason::AuthRequired),
    ];
    for (src, reason) in &cases {
        let enforced = engine_for(policies, &Settings::default()).decide(src, &web(), "8080/tcp");
        assert_eq!(enforced.ingress.reason, Some(*reason));
        assert!(!enforced.ingress.audited, "{reason:?} drops when enforced");
        let audited = engine_for(policies, &audit).decide(src, &web(), "8080/tcp");
        assert_eq!(audited.ingress.reason, Some(*reason), "the reason is kept");
        assert!(audited.ingress.audited, "{reason:?} passes as AUDIT");
    }
    // What policy allows is not audited.
    let allowed = engine_for(policies, &audit).decide(&frontend(), &web(), "8080/tcp");
    assert!(allowed.allowed() && !allowed.ingress.audited);
}

/// `enable-l7-proxy: false`: a rule whose `toPorts` carry L7 rules (HTTP, Kafka, DNS, a
/// generic parser) makes the agent refuse the whole object; an item without `rules` is fine
/// (cilium/cilium@507103c6 pkg/policy/api/rule_validation.go, the ingress and egress checks
/// that return `L7 policy is not supported since L7 proxy is not enabled`, counting every
/// port rule whose `rules` are not empty).
#[test]
fn l7_proxy_off_refuses_policies_with_l7_rules() {
    let with_rules = |ports: &str, rules: &str| {
        format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: web, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: web}}}}
  egress:
    - toPorts: [{{ports: [{ports}]{rules}}}]
"#
        )
    };
    let off = Settings {
        l7_proxy: false,
        ..Settings::default()
    };
    let import = |yaml: &str, settings: &Settings| {
        let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
        policy::import_for(&fs, &[PathBuf::from("p")], &settings.acceptance())
    };
    for (ports, rules) in [
        (
            r#"{port: "80", protocol: TCP}"#,
            r#", rules: {http: [{method: GET}]}"#,
        ),
        (
            r#"{port: "53", protocol: ANY}"#,
            r#", rules: {dns: [{matchPattern: "*"}]}"#,
        ),
    ] {
        let yaml = with_rules(ports, rules);
        assert_eq!(import(&yaml, &Settings::default()).set.policies.len(), 1);
        let refused = import(&yaml, &off);
        assert!(refused.set.policies.is_empty(), "{rules}");
        let d = refused.diagnostics.iter().find(|d| d.is_error()).unwrap();
        assert_eq!(
            d.message,
            "L7 rules need the L7 proxy, which is off (`enable-l7-proxy: false`)"
        );
        // The refused policy enforces nothing.
        let e = engine_for(&yaml, &off);
        assert_eq!(
            e.decide(&web(), &world("198.51.100.1", &[]), "443/tcp")
                .egress
                .reason,
            Some(Reason::NoPolicy)
        );
    }
    let plain = with_rules(r#"{port: "80", protocol: TCP}"#, "");
    assert_eq!(import(&plain, &off).set.policies.len(), 1);
}

/// `policy-cidr-match-mode: nodes`: node addresses carry CIDR labels, so CIDR selectors (and
/// KNP `ipBlock`) select the local host and remote nodes in both directions; the entities keep
/// working, DNS names still select only world (cilium/cilium@507103c6
/// pkg/node/manager/manager.go `nodeIdentityLabels`, pkg/ipcache/metadata.go
/// `resolveIdentity`, which keeps a node's CIDR labels only in this mode).
#[test]
fn cidr_match_mode_nodes_lets_cidr_rules_select_nodes() {
    let policies = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toCIDRSet: [{cidr: 192.168.1.0/24, except: [192.168.1.128/25]}]
  ingress:
    - fromCIDR: [192.168.1.0/24]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
    - from: [{ipBlock: {cidr: 192.168.1.0/24}}]
"#;
    let node = |r: Reserved, ip: &str| Peer {
        labels: Arc::new(r.labels()),
        ip: Some(ip.parse().unwrap()),
        ..Peer::default()
    };
    let remote = node(Reserved::RemoteNode, "192.168.1.11");
    let host = node(Reserved::Host, "192.168.1.10");
    let nodes = Settings {
        cidr_selects_nodes: true,
        ..Settings::default()
    };
    let db = pod("shop", &[("app", "db")]);
    let default = engine_for(policies, &Settings::default());
    assert_eq!(
        default.decide(&web(), &remote, "10250/tcp").egress.reason,
        Some(Reason::DefaultDeny)
    );
    assert!(!default.allowed(&remote, &web(), "80/tcp"));
    assert!(!default.allowed(&remote, &db, "5432/tcp"));
    let e = engine_for(policies, &nodes);
    assert!(e.allowed(&web(), &remote, "10250/tcp"));
    assert!(e.allowed(&web(), &host, "10250/tcp"));
    assert!(e.allowed(&remote, &web(), "80/tcp"));
    assert!(e.allowed(&remote, &db, "5432/tcp"));
    // `except` still applies, and addresses outside the range stay unselected.
    assert!(!e.allowed(
        &web(),
        &node(Reserved::RemoteNode, "192.168.1.200"),
        "10250/tcp"
    ));
    assert!(!e.allowed(&web(), &node(Reserved::RemoteNode, "10.0.0.5"), "10250/tcp"));
    // Pods are never CIDR-selected, in either mode.
    let mut pod_with_ip = pod("shop", &[("app", "other")]);
    pod_with_ip.ip = Some("192.168.1.20".parse().unwrap());
    assert!(!e.allowed(&web(), &pod_with_ip, "80/tcp"));
}

/// The `labels` setting adds entries to the identity label filter: `[source:][!]regex`,
/// matched at the start of the key; one inclusion turns the filter into an allow-list, where
/// a label is kept only if an inclusion matches it for longer than every exclusion; the
/// built-in inclusions (namespace, namespace labels, service account, cluster) still apply
/// (cilium/cilium@507103c6 pkg/labelsfilter/filter.go, `parseLabelPrefix`,
/// `ParseLabelPrefixCfg`, `filterLabels`).
#[test]
fn identity_label_filter_from_the_labels_setting() {
    use netpol_compiler::engine::settings::LabelFilter;
    let labels = BTreeMap::from([
        ("app".to_owned(), "web".to_owned()),
        ("team".to_owned(), "shop".to_owned()),
        ("release".to_owned(), "v2".to_owned()),
        ("pod-template-hash".to_owned(), "abc".to_owned()),
    ]);
    let keys = |filter: &str| {
        let filter = LabelFilter::parse(filter).unwrap();
        let ids = identity::filtered_pod_labels(
            "shop",
            &labels,
            Some("default"),
            None,
            DEFAULT_CLUSTER,
            filter.as_ref(),
        );
        let mut keys: Vec<String> = ids
            .iter()
            .filter(|l| !l.key.starts_with("io."))
            .map(|l| l.key.clone())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(""), ["app", "release", "team"], "the built-in filter");
    assert_eq!(keys("k8s:!release"), ["app", "team"], "an exclusion");
    assert_eq!(keys("k8s:team"), ["team"], "an allow-list");
    assert_eq!(
        keys("k8s:te k8s:!team"),
        Vec::<String>::new(),
        "longer exclusion wins"
    );
    assert_eq!(
        keys("k8s:te.* k8s:!team"),
        Vec::<String>::new(),
        "a tie drops"
    );
    assert_eq!(keys("k8s:team k8s:!te"), ["team"], "longer inclusion wins");
    assert_eq!(
        keys("container:app"),
        Vec::<String>::new(),
        "other sources do not match"
    );
    assert_eq!(
        keys("pod-template"),
        Vec::<String>::new(),
        "an inclusion shorter than the built-in exclusion does not rescue"
    );
    assert_eq!(keys("k8s:!te k8s:!ap"), ["release"], "exclusions alone");
    // The namespace and the service account stay in an allow-list's identities.
    let filter = LabelFilter::parse("k8s:team").unwrap();
    let ids = identity::filtered_pod_labels(
        "shop",
        &labels,
        Some("web"),
        None,
        DEFAULT_CLUSTER,
        filter.as_ref(),
    );
    assert_eq!(ids.namespace(), Some("shop"));
    assert_eq!(ids.get(None, identity::SERVICE_ACCOUNT), Some("web"));
    assert!(LabelFilter::parse("k8s:(").is_err());
    // A selector on a filtered label matches nothing.
    let e = engine(WEB_INGRESS_FROM_FRONTEND_8080);
    let frontend_filtered = Peer {
        labels: Arc::new(identity::filtered_pod_labels(
            "shop",
            &BTreeMap::from([("app".to_owned(), "frontend".to_owned())]),
            Some("default"),
            None,
            DEFAULT_CLUSTER,
            filter.as_ref(),
        )),
        ..Peer::default()
    };
    assert!(e.allowed(&frontend(), &web(), "8080/tcp"));
    assert!(!e.allowed(&frontend_filtered, &web(), "8080/tcp"));
}

/// `toServices` beside `toPorts`: Cilium 1.17 and older refuse the rule (`Combining ToServices
/// and ToPorts is not supported yet`, `l3DependentL4Support` of those releases'
/// pkg/policy/api/rule_validation.go); 1.18 accepts it (toServices became endpoint selectors,
/// cilium/cilium#34208).
#[test]
fn to_services_beside_to_ports_follows_the_version() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  egress:
    - toServices: [{k8sService: {serviceName: db, namespace: data}}]
      toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
"#;
    let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
    let at = |version: &str| {
        let settings = Settings {
            version: Some(version.to_owned()),
            ..Settings::default()
        };
        policy::import_for(&fs, &[PathBuf::from("p")], &settings.acceptance())
    };
    for old in ["1.16", "1.17"] {
        let imported = at(old);
        assert!(imported.set.policies.is_empty(), "{old}");
        let d = imported.diagnostics.iter().find(|d| d.is_error()).unwrap();
        assert_eq!(
            d.message,
            format!("Cilium {old} refuses `toServices` beside `toPorts`")
        );
    }
    for new in ["1.18", "1.19", "1.20"] {
        assert_eq!(at(new).set.policies.len(), 1, "{new}");
    }
}

fn node_peer(r: Reserved, ip: &str, source: &str, labels: &[(&str, &str)]) -> Peer {
    let mut set = r.labels();
    for (k, v) in labels {
        set.insert(Label::new(source, k, v));
    }
    Peer {
        labels: Arc::new(set),
        ip: Some(ip.parse().unwrap()),
        ..Peer::default()
    }
}

/// `enable-host-firewall: true`: CCNP rules with `nodeSelector` select the host endpoints of
/// the nodes whose labels match (the local host and, at its own node, a remote node), with
/// default deny per direction as for pods; an `endpointSelector` never selects a host, not
/// even `{}`; off (Cilium's default) they are never enforced (cilium/cilium@507103c6
/// pkg/policy/rule.go `rule.matches`; bpf/bpf_host.c and bpf/lib/host_firewall.h enforce
/// them only under ENABLE_HOST_FIREWALL).
#[test]
fn host_firewall_enforces_node_selector_rules() {
    let policies = r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: ssh-nodes}
spec:
  nodeSelector: {matchLabels: {node-access: ssh}}
  ingress:
    - fromCIDR: [192.168.1.0/24]
      toPorts: [{ports: [{port: "22", protocol: TCP}]}]
    - fromEntities: [cluster]
      toPorts: [{ports: [{port: "6443", protocol: TCP}]}]
  egress:
    - toEntities: [cluster]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: every-endpoint}
spec:
  endpointSelector: {}
  ingress:
    - fromEntities: [cluster]
"#;
    let host = node_peer(
        Reserved::Host,
        "192.168.1.10",
        "k8s",
        &[("node-access", "ssh")],
    );
    let other_host = node_peer(Reserved::Host, "192.168.1.12", "k8s", &[]);
    let remote = node_peer(
        Reserved::RemoteNode,
        "192.168.1.11",
        "node",
        &[("node-access", "ssh")],
    );
    let admin = world("192.168.1.5", &[]);
    let internet = world("203.0.113.1", &[]);
    let on = Settings {
        host_firewall: true,
        ..Settings::default()
    };
    let off = engine_for(policies, &Settings::default());
    assert!(off.allowed(&internet, &host, "22/tcp"));
    assert_eq!(
        off.decide(&internet, &host, "22/tcp").ingress.reason,
        Some(Reason::NotAnEndpoint)
    );
    let e = engine_for(policies, &on);
    assert!(e.allowed(&admin, &host, "22/tcp"));
    assert_eq!(
        e.decide(&internet, &host, "22/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    assert!(e.allowed(&web(), &host, "6443/tcp"));
    assert!(!e.allowed(&web(), &host, "10250/tcp"));
    // A remote node's host enforces the same rules at its node.
    assert!(!e.allowed(&web(), &remote, "10250/tcp"));
    assert!(e.allowed(&admin, &remote, "22/tcp"));
    // A node without the label is not selected: not enforced.
    assert_eq!(
        e.decide(&internet, &other_host, "22/tcp").ingress.reason,
        Some(Reason::NoPolicy)
    );
    // Host egress: default deny to the world, the cluster allowed.
    assert_eq!(
        e.decide(&host, &internet, "443/tcp").egress.reason,
        Some(Reason::DefaultDeny)
    );
    assert!(e.allowed(&host, &web(), "80/tcp"));
    // `endpointSelector: {}` selects pods (world is dropped at web) but never the host.
    assert_eq!(
        e.decide(&internet, &web(), "80/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    // A pod label `host` turns enforcement off only while the host firewall is off.
    let labelled = pod("shop", &[("app", "web"), ("host", "yes")]);
    assert_eq!(
        off.decide(&internet, &labelled, "80/tcp").ingress.reason,
        Some(Reason::HostLabel)
    );
    assert_eq!(
        e.decide(&internet, &labelled, "80/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
}

/// `enable-node-selector-labels: true`: `fromNodes`/`toNodes` are accepted (refused without it)
/// and select remote nodes by the labels of their Node (`node:` in the remote-node identity),
/// never the local host (cilium/cilium@507103c6 pkg/policy/api/rule_validation.go,
/// `ErrFromToNodesRequiresNodeSelectorOption`; pkg/k8s/apis/cilium.io/utils/utils.go:170-178,
/// 276-284 add `reserved:remote-node Exists`; pkg/node/manager/manager.go
/// `nodeIdentityLabels`).
#[test]
fn node_selector_labels_let_from_nodes_select_remote_nodes() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kubelet-scrape, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromNodes: [{matchLabels: {role: worker}}]
"#;
    let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
    let on = Settings {
        node_selector_labels: true,
        ..Settings::default()
    };
    let refused = policy::import_for(
        &fs,
        &[PathBuf::from("p")],
        &Settings::default().acceptance(),
    );
    assert!(refused.set.policies.is_empty());
    let accepted = policy::import_for(&fs, &[PathBuf::from("p")], &on.acceptance());
    assert_eq!(accepted.set.policies.len(), 1);
    let e = engine_for(yaml, &on);
    let worker = node_peer(
        Reserved::RemoteNode,
        "192.168.1.11",
        "node",
        &[("role", "worker")],
    );
    let control = node_peer(
        Reserved::RemoteNode,
        "192.168.1.12",
        "node",
        &[("role", "control-plane")],
    );
    let local = node_peer(Reserved::Host, "192.168.1.10", "k8s", &[("role", "worker")]);
    assert!(e.allowed(&worker, &web(), "80/tcp"));
    assert!(!e.allowed(&control, &web(), "80/tcp"));
    // The local host: allowed by allow-localhost, not by the rule.
    assert_eq!(
        e.decide(&local, &web(), "80/tcp").ingress.reason,
        Some(Reason::AllowedLocalhost)
    );
}

/// Nodes from the inventory carry their Node's labels: the local host with source `k8s`
/// through the identity label filter (`kubernetes.io/hostname` is left out), a remote node
/// with source `node`, unfiltered.
#[test]
fn inventory_nodes_carry_their_labels() {
    let inventory = r#"{"kind":"List","items":[
 {"kind":"Node","metadata":{"name":"n1","labels":{"kubernetes.io/hostname":"n1","node-access":"ssh"}},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.10"}]}},
 {"kind":"Node","metadata":{"name":"n2","labels":{"kubernetes.io/hostname":"n2"}},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.11"}]}}]}"#;
    let inv = Inventory::parse(inventory, DEFAULT_CLUSTER).unwrap();
    let host = inv
        .classify("192.168.1.10".parse().unwrap(), Some("n1"))
        .unwrap();
    assert_eq!(host.labels.to_string(), "k8s:node-access=ssh,reserved:host");
    let remote = inv
        .classify("192.168.1.11".parse().unwrap(), Some("n1"))
        .unwrap();
    assert_eq!(
        remote.labels.to_string(),
        "node:kubernetes.io/hostname=n2,reserved:remote-node"
    );
}

/// `fromRequires`/`toRequires` (Cilium 1.18 and older): the requirement selectors of every rule
/// selecting an endpoint are ANDed into the `fromEndpoints`/`toEndpoints` selectors of all its
/// rules of the same direction (deny requirements into deny rules), never into entities or
/// CIDRs, and grant nothing by themselves; like `fromEndpoints`, a CNP's requirement is bound to
/// its namespace. Removed in 1.19: the API server refuses them (cilium/cilium v1.18
/// pkg/policy/rules.go `resolveL4IngressPolicy`; pkg/policy/api/ingress.go
/// `GetSourceEndpointSelectorsWithRequirements`; pkg/k8s/apis/cilium.io/utils/utils.go
/// `parseToCiliumIngressCommonRule`; removal: cilium/cilium#42615).
#[test]
fn from_requires_merge_across_rules_until_1_19() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
    - fromEntities: [world]
  egress:
    - toEndpoints: [{matchLabels: {app: db}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-prod-only, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromRequires: [{matchLabels: {env: prod}}]
  egress:
    - toRequires: [{matchLabels: {env: prod}}]
"#;
    let at = |version: &str| Settings {
        version: Some(version.to_owned()),
        ..Settings::default()
    };
    let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
    for new in ["1.19", "1.20"] {
        let imported = policy::import_for(&fs, &[PathBuf::from("p")], &at(new).acceptance());
        assert_eq!(imported.set.policies.len(), 1, "{new}");
        let messages: Vec<&str> = imported
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            messages,
            [
                "`fromRequires` was removed in Cilium 1.19",
                "`toRequires` was removed in Cilium 1.19"
            ]
        );
    }
    let e = engine_for(yaml, &at("1.18"));
    let prod_frontend = pod("shop", &[("app", "frontend"), ("env", "prod")]);
    let dev_frontend = pod("shop", &[("app", "frontend"), ("env", "dev")]);
    assert!(e.allowed(&prod_frontend, &web(), "80/tcp"));
    assert_eq!(
        e.decide(&dev_frontend, &web(), "80/tcp").ingress.reason,
        Some(Reason::DefaultDeny)
    );
    // Entities are not constrained; the requirement itself allows nothing.
    assert!(e.allowed(&world("198.51.100.7", &[]), &web(), "80/tcp"));
    assert!(!e.allowed(&pod("shop", &[("env", "prod")]), &web(), "80/tcp"));
    // The same on egress; a requirement of a CNP is bound to its namespace.
    let web_prod = pod("shop", &[("app", "web"), ("env", "prod")]);
    assert!(e.allowed(
        &web_prod,
        &pod("shop", &[("app", "db"), ("env", "prod")]),
        "5432/tcp"
    ));
    assert!(!e.allowed(&web_prod, &pod("shop", &[("app", "db")]), "5432/tcp"));
    // Without the second policy, the first alone allows every frontend.
    let first = yaml.split("---").next().unwrap();
    assert!(engine_for(first, &at("1.18")).allowed(&dev_frontend, &web(), "80/tcp"));
}

/// Ports and `--enable-extended-ip-protocols`: an empty `port` needs the flag; VRRP and IGMP
/// carry no ports, so only an empty port or `"0"` is accepted, and `"0"` without the flag too
/// (cilium/cilium@507103c6 pkg/policy/api/rule_validation.go, `PortProtocol.Validate`).
#[test]
fn extended_ip_protocols_and_empty_ports() {
    let with_port = |protocol: &str, port: &str| {
        format!(
            r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {{name: vrrp}}
spec:
  endpointSelector: {{matchLabels: {{app: keepalived}}}}
  egress:
    - toEntities: [world]
      toPorts: [{{ports: [{{port: "{port}", protocol: {protocol}}}]}}]
"#
        )
    };
    let on = Settings {
        extended_ip_protocols: true,
        ..Settings::default()
    };
    let errors = |yaml: &str, settings: &Settings| -> Vec<String> {
        let fs = Memory::new([(PathBuf::from("p/policies.yaml"), yaml.to_owned())]);
        policy::import_for(&fs, &[PathBuf::from("p")], &settings.acceptance())
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect()
    };
    let off = Settings::default();
    assert!(errors(&with_port("VRRP", "0"), &off).is_empty());
    assert!(errors(&with_port("IGMP", "0"), &off).is_empty());
    assert_eq!(errors(&with_port("VRRP", ""), &off), ["a port is required"]);
    assert!(errors(&with_port("VRRP", ""), &on).is_empty());
    assert_eq!(
        errors(&with_port("IGMP", "2"), &on),
        ["`IGMP` carries no ports: `port` must be empty or `\"0\"`"]
    );
    assert_eq!(errors(&with_port("TCP", ""), &off), ["a port is required"]);
    assert!(errors(&with_port("TCP", ""), &on).is_empty());
}
