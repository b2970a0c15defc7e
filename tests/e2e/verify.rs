//! The homelab round trip: `netpol compile` output for `profiles/`, read back by the policy
//! engine (as `netpol verify` reads any policy), must allow exactly what the profiles say.
//!
//! The intended flows are generated from the resolved profiles (the compiler's model): every
//! declared allow, at both of its ends. The flows that must be denied are generated from the
//! same model — undeclared peers and ports for every enforcing workload — plus hand-picked
//! homelab cases.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::eval::{Decision, NoPorts, Query, Reason};
use netpol_compiler::engine::identity::{self, Peer, Reserved};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::engine::{entry, policy};
use netpol_compiler::objects::Proto;
use netpol_compiler::objects::cilium::Entity;
use netpol_compiler::objects::fqdn::FqdnSelector;
use netpol_compiler::objects::port::{IcmpFamily, L4, Protocol};
use netpol_compiler::profile::model::{Direction, Model, Subject, Target};
use netpol_compiler::profile::{compile_paths, emit};

/// The profiles and the app catalog they include (`../catalog/*.yaml`).
fn profiles() -> Memory {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["profiles", "catalog"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push((
                    PathBuf::from(dir).join(path.file_name().unwrap()),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    Memory::new(files)
}

struct Homelab {
    model: Model,
    index: Index,
}

fn homelab() -> Homelab {
    let c = compile_paths(&profiles(), &[PathBuf::from("profiles")]);
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    let objects = c.objects.unwrap();
    // Through the emitted YAML, exactly as a user would feed `netpol verify`.
    let files = emit::files(&objects, emit::Format::Yaml).unwrap();
    let fs = Memory::new(
        files
            .iter()
            .map(|f| (PathBuf::from("out").join(&f.0), f.1.clone())),
    );
    let imported = policy::import(&fs, &[PathBuf::from("out")]);
    assert!(
        !imported.diagnostics.has_errors(),
        "{:?}",
        imported.diagnostics
    );
    assert_eq!(imported.set.policies.len(), objects.len());
    Homelab {
        model: c.model.unwrap(),
        index: Index::new(entry::build(&imported.set, None, &Settings::default())),
    }
}

fn pod(ns: &str, labels: &[(String, String)]) -> Peer {
    let labels: BTreeMap<String, String> = labels.iter().cloned().collect();
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

fn reserved(r: Reserved) -> Peer {
    Peer {
        labels: Arc::new(r.labels()),
        ..Peer::default()
    }
}

fn world(ip: &str, names: &[String]) -> Peer {
    Peer {
        labels: Arc::new(Reserved::World.labels()),
        ip: Some(ip.parse().unwrap()),
        names: names.to_vec(),
        ..Peer::default()
    }
}

impl Homelab {
    fn service(&self, id: usize) -> Peer {
        let s = &self.model.services[id];
        pod(&s.namespace, &s.selector)
    }

    /// A concrete peer the target stands for.
    fn peer(&self, t: &Target) -> Peer {
        match t {
            Target::Service(id) => self.service(*id),
            Target::Pods { namespaces, labels } => pod(
                namespaces.first().map_or("somewhere", String::as_str),
                labels,
            ),
            Target::Entity(e) => match e {
                Entity::World | Entity::All => world("203.0.113.10", &[]),
                Entity::Host => reserved(Reserved::Host),
                Entity::RemoteNode | Entity::Cluster => reserved(Reserved::RemoteNode),
                Entity::KubeApiserver => reserved(Reserved::KubeApiserver),
                Entity::Ingress => reserved(Reserved::Ingress),
                Entity::Health => reserved(Reserved::Health),
                Entity::Init => reserved(Reserved::Init),
                Entity::Unmanaged => reserved(Reserved::Unmanaged),
                Entity::None => panic!("profiles cannot name `none`"),
            },
            Target::Cidr { cidr, except } => {
                let ip = cidr
                    .hosts()
                    .find(|ip| !except.iter().any(|e| e.contains(ip)))
                    .unwrap_or_else(|| cidr.network());
                world(&ip.to_string(), &[])
            }
            Target::Fqdn(sel) => {
                let name = match sel {
                    FqdnSelector::Name(n) => n.clone(),
                    FqdnSelector::Pattern(p) => p.replacen("**.", "a.b.", 1).replace('*', "x"),
                };
                world("198.51.100.7", &[name])
            }
        }
    }

    fn decide(&self, src: &Peer, dst: &Peer, proto: Proto, port: u16) -> Decision {
        let q = Query {
            src: src.clone(),
            dst: dst.clone(),
            proto: Some(proto),
            port,
        };
        let mut ev = Evaluator::new(&self.index, &NoPorts);
        let d = ev.decide(&q);
        assert_eq!(
            d,
            netpol_compiler::engine::eval::reference(&self.index.entries, &q, &NoPorts, None)
        );
        d
    }
}

/// `(protocol, port)` probes for the ports of a rule: both ends of ranges, ICMP types.
fn probes(ports: &std::collections::BTreeSet<L4>) -> Vec<(Proto, u16)> {
    if ports.is_empty() {
        return vec![(Proto::Tcp, 12345), (Proto::Udp, 5353), (Proto::Icmp, 8)];
    }
    let mut v = Vec::new();
    for p in ports {
        match p {
            L4::Port(r) => {
                let proto = match r.protocol {
                    Protocol::Tcp => Proto::Tcp,
                    Protocol::Udp => Proto::Udp,
                    Protocol::Sctp => Proto::Sctp,
                };
                v.push((proto, r.first));
                v.push((proto, r.last));
            }
            L4::Icmp(t) => v.push((
                if t.family == IcmpFamily::V4 {
                    Proto::Icmp
                } else {
                    Proto::Icmpv6
                },
                u16::from(t.kind),
            )),
        }
    }
    v
}

#[test]
fn every_declared_allow_is_allowed_at_both_ends() {
    let h = homelab();
    let mut checked = 0;
    for rule in &h.model.rules {
        let subject = match rule.subject {
            Subject::Service(id) => h.service(id),
            // Baselines select many pods; take an unprofiled pod they apply to.
            Subject::Baseline(_) => pod("default", &[("app".to_owned(), "unprofiled".to_owned())]),
            // A namespace's own policy: a pod no profile declares.
            Subject::Namespace(i) => pod(
                &h.model.namespaces[i].namespace,
                &[("app".to_owned(), "undeclared".to_owned())],
            ),
        };
        let peer = h.peer(&rule.peer);
        let (src, dst) = match rule.direction {
            Direction::Egress => (&subject, &peer),
            Direction::Ingress => (&peer, &subject),
        };
        for (proto, port) in probes(&rule.ports) {
            let d = h.decide(src, dst, proto, port);
            let point = match rule.direction {
                Direction::Egress => &d.egress,
                Direction::Ingress => &d.ingress,
            };
            if rule.deny {
                assert!(
                    !point.allows(),
                    "declared deny {:?} {} {proto}/{port} is allowed at its {:?} end: {point:?}",
                    rule.direction,
                    peer.labels,
                    rule.direction
                );
                checked += 1;
                continue;
            }
            assert!(
                point.allows(),
                "declared {:?} {} {proto}/{port} is not allowed at its {:?} end: {point:?}",
                rule.direction,
                peer.labels,
                rule.direction
            );
            // Between two profiled workloads, the whole flow must pass: both ends are declared.
            if matches!(rule.peer, Target::Service(_))
                && matches!(rule.subject, Subject::Service(_))
            {
                assert!(
                    d.allowed(),
                    "{} -> {} {proto}/{port}: {d:?}",
                    src.labels,
                    dst.labels
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} declared flows checked");
}

#[test]
fn undeclared_flows_of_enforcing_workloads_are_denied() {
    let h = homelab();
    let intruder = pod("default", &[("app".to_owned(), "intruder".to_owned())]);
    let odd = world("192.0.2.99", &["not-declared.example".to_owned()]);
    let mut checked = 0;
    for (id, s) in h.model.services.iter().enumerate() {
        let me = h.service(id);
        let rules: Vec<_> = h
            .model
            .rules
            .iter()
            .filter(|r| r.subject == Subject::Service(id))
            .collect();
        // The oracle: would any declared rule of this workload cover the probe?
        let covers = |dir: Direction, peer_is_world: bool| {
            rules.iter().any(|r| {
                r.direction == dir
                    && (r.ports.is_empty() || r.ports.iter().any(|p| matches!(p, L4::Port(r) if r.first <= 4444 && 4444 <= r.last && r.protocol == Protocol::Tcp)))
                    && match &r.peer {
                        Target::Entity(Entity::All) => true,
                        Target::Entity(Entity::World) => peer_is_world,
                        Target::Entity(Entity::Cluster) => !peer_is_world,
                        Target::Cidr { cidr, except } => {
                            let ip: IpAddr = "192.0.2.99".parse().unwrap();
                            peer_is_world && cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
                        }
                        Target::Pods { namespaces, labels } => {
                            !peer_is_world && labels.is_empty() && (namespaces.is_empty() || namespaces.iter().any(|n| n == "default"))
                        }
                        _ => false,
                    }
            })
        };
        if s.enforce.egress() && !covers(Direction::Egress, true) {
            let d = h.decide(&me, &odd, Proto::Tcp, 4444);
            assert_eq!(
                d.egress.reason,
                Some(Reason::DefaultDeny),
                "{}/{} egress to an undeclared IP",
                s.namespace,
                s.name
            );
            checked += 1;
        }
        if s.enforce.ingress() && !covers(Direction::Ingress, false) {
            let d = h.decide(&intruder, &me, Proto::Tcp, 4444);
            assert_eq!(
                d.ingress.reason,
                Some(Reason::DefaultDeny),
                "{}/{} ingress from an undeclared pod",
                s.namespace,
                s.name
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} must-deny flows checked");
}

#[test]
fn undeclared_pods_of_a_default_deny_namespace_are_isolated() {
    let h = homelab();
    let intruder = pod("default", &[("app".to_owned(), "intruder".to_owned())]);
    let odd = world("192.0.2.99", &["not-declared.example".to_owned()]);
    for def in &h.model.namespaces {
        let Some(enforce) = def.default_deny else {
            continue;
        };
        let forgotten = pod(
            &def.namespace,
            &[("app".to_owned(), "forgotten".to_owned())],
        );
        let d = h.decide(&forgotten, &odd, Proto::Tcp, 443);
        assert_eq!(
            d.egress.allows(),
            !enforce.egress(),
            "an undeclared pod of `{}` to the internet: {d:?}",
            def.namespace
        );
        let d = h.decide(&intruder, &forgotten, Proto::Tcp, 8080);
        assert_eq!(
            d.ingress.allows(),
            !enforce.ingress(),
            "another namespace's pod to an undeclared pod of `{}`: {d:?}",
            def.namespace
        );
    }
}

fn find(h: &Homelab, ns: &str, name: &str) -> Peer {
    let id = h
        .model
        .services
        .iter()
        .position(|s| s.namespace == ns && s.name == name)
        .unwrap_or_else(|| panic!("no {ns}/{name}"));
    h.service(id)
}

#[test]
fn homelab_promises_hold() {
    let h = homelab();
    let sonarr = find(&h, "media", "sonarr");
    let traefik = find(&h, "traefik", "traefik");
    let postgres = find(&h, "databases", "arr-postgres");
    let coredns = find(&h, "kube-system", "coredns");
    let tvdb = world("151.101.2.1", &["api.thetvdb.com".to_owned()]);
    // Declared.
    assert!(h.decide(&traefik, &sonarr, Proto::Tcp, 8989).allowed());
    assert!(h.decide(&sonarr, &postgres, Proto::Tcp, 5432).allowed());
    assert!(h.decide(&sonarr, &tvdb, Proto::Tcp, 443).allowed());
    assert!(h.decide(&sonarr, &coredns, Proto::Udp, 53).allowed());
    assert!(
        h.decide(&reserved(Reserved::Host), &sonarr, Proto::Tcp, 8989)
            .allowed(),
        "kubelet probes"
    );
    // Undeclared.
    assert!(
        !h.decide(&sonarr, &tvdb, Proto::Tcp, 80).allowed(),
        "TVDB on 80"
    );
    assert!(
        !h.decide(
            &sonarr,
            &world("151.101.2.2", &["evil.example.com".to_owned()]),
            Proto::Tcp,
            443
        )
        .allowed()
    );
    assert!(
        !h.decide(&world("203.0.113.5", &[]), &sonarr, Proto::Tcp, 8989)
            .allowed(),
        "world straight to sonarr"
    );
    assert!(!h.decide(&sonarr, &postgres, Proto::Tcp, 22).allowed());
    let radarr = find(&h, "media", "radarr");
    assert!(
        !h.decide(&radarr, &sonarr, Proto::Tcp, 8989).allowed(),
        "arr apps do not talk to each other"
    );
    if let Some(q) = h
        .model
        .services
        .iter()
        .position(|s| s.name == "qbittorrent")
    {
        let qb = h.service(q);
        let d = h.decide(&qb, &world("203.0.113.77", &[]), Proto::Tcp, 443);
        assert!(
            !d.allowed(),
            "qbittorrent reaches the internet only through the VPN gateway"
        );
    }
}
