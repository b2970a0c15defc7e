//! The app catalog (`catalog/*.yaml`): every template of every catalog file is applied to a
//! sample service by a small profile set in `e2e/catalog/<file>/`, compiled, pinned by a
//! snapshot, validated back through the typed models, and read back by the policy engine (as
//! `netpol verify` reads any policy): every declared flow is allowed at both of its ends.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::eval::{Decision, NoPorts, Query};
use netpol_compiler::engine::identity::{self, Peer, Reserved};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::engine::{entry, policy};
use netpol_compiler::objects::Proto;
use netpol_compiler::objects::cilium::{Entity, PolicyObject};
use netpol_compiler::objects::fqdn::FqdnSelector;
use netpol_compiler::objects::port::{IcmpFamily, L4, Protocol};
use netpol_compiler::profile::model::{Direction, Model, Subject, Target};
use netpol_compiler::profile::{Compilation, compile_paths, emit};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The catalog's files by name (`traefik` for `catalog/traefik.yaml`).
fn catalog_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("catalog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the catalog has a file per app family");
    names
}

/// The catalog and the fixtures, in memory under their repository-relative paths (so that
/// provenance annotations are the same on every machine). Fixtures include
/// `../../../../catalog/<file>.yaml`, as a profile of a user's repository includes the catalog.
fn files() -> Memory {
    let mut files = Vec::new();
    let mut add_dir = |dir: &Path| {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push((
                    dir.join(path.file_name().unwrap()),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    };
    add_dir(Path::new("catalog"));
    for name in catalog_files() {
        add_dir(&fixture(&name));
    }
    Memory::new(files)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from("tests/e2e/catalog").join(name)
}

fn compile(name: &str) -> Compilation {
    let c = compile_paths(&files(), &[fixture(name)]);
    assert!(!c.diagnostics.has_errors(), "{name}: {:?}", c.diagnostics);
    c
}

#[test]
fn every_catalog_file_has_a_fixture_and_nothing_else_does() {
    let mut fixtures: Vec<String> = std::fs::read_dir(root().join("tests/e2e/catalog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fixtures.sort();
    assert_eq!(fixtures, catalog_files());
}

#[test]
fn every_catalog_template_is_applied_in_its_fixture() {
    // Given as a path (not only included), the catalog file's unused templates are reported.
    for name in catalog_files() {
        let c = compile_paths(
            &files(),
            &[
                fixture(&name),
                PathBuf::from(format!("catalog/{name}.yaml")),
            ],
        );
        assert!(!c.diagnostics.has_errors(), "{name}: {:?}", c.diagnostics);
        let unused: Vec<&str> = c
            .diagnostics
            .iter()
            .filter(|d| d.code == "unused-template")
            .map(|d| d.message.as_str())
            .collect();
        assert!(unused.is_empty(), "{name}: {unused:?}");
        // The only warning a catalog template may bring: Traefik's LoadBalancer is open to the
        // internet, as an ingress controller is.
        for d in c.diagnostics.iter() {
            assert!(
                d.code == "open-to-world" && name == "traefik",
                "{name}: unexpected {} {}",
                d.code,
                d.message
            );
        }
    }
}

#[test]
fn compiled_fixtures_match_their_snapshots() {
    for name in catalog_files() {
        let objects = compile(&name).objects.unwrap();
        let yaml = emit::stream(&objects, emit::Format::Yaml).unwrap();
        // Back through the typed models, which reject unknown fields.
        let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&yaml).unwrap();
        let back: Vec<PolicyObject> = docs
            .into_iter()
            .map(|d| serde_json::from_value(d).unwrap())
            .collect();
        assert_eq!(back, objects, "{name}");
        insta::assert_snapshot!(format!("catalog-{name}"), yaml);
    }
}

#[test]
fn every_declared_flow_is_allowed_at_both_ends() {
    let mut checked = 0;
    for name in catalog_files() {
        let c = compile(&name);
        let objects = c.objects.unwrap();
        let model = c.model.unwrap();
        // Through the emitted YAML, exactly as a user would feed `netpol verify`.
        let emitted = emit::files(&objects, emit::Format::Yaml).unwrap();
        let fs = Memory::new(
            emitted
                .iter()
                .map(|f| (PathBuf::from("out").join(&f.0), f.1.clone())),
        );
        let imported = policy::import(&fs, &[PathBuf::from("out")]);
        assert!(
            !imported.diagnostics.has_errors(),
            "{name}: {:?}",
            imported.diagnostics
        );
        assert_eq!(imported.set.policies.len(), objects.len(), "{name}");
        let index = Index::new(entry::build(&imported.set, None, &Settings::default()));
        let declared = model.rules.len();
        for rule in &model.rules {
            let Subject::Service(id) = rule.subject else {
                continue;
            };
            let subject = service(&model, id);
            let peer = peer(&model, &rule.peer);
            let (src, dst) = match rule.direction {
                Direction::Egress => (&subject, &peer),
                Direction::Ingress => (&peer, &subject),
            };
            for (proto, port) in probes(&rule.ports) {
                let d = decide(&index, src, dst, proto, port);
                let point = match rule.direction {
                    Direction::Egress => &d.egress,
                    Direction::Ingress => &d.ingress,
                };
                assert!(
                    point.allows(),
                    "{name}: declared {:?} {} {proto}/{port} is not allowed: {point:?}",
                    rule.direction,
                    peer.labels
                );
                // Between two profiled workloads the whole flow must pass: both ends declared.
                if matches!(rule.peer, Target::Service(_)) {
                    assert!(
                        d.allowed(),
                        "{name}: {} -> {} {proto}/{port}: {d:?}",
                        src.labels,
                        dst.labels
                    );
                }
                checked += 1;
            }
        }
        assert!(declared > 0, "{name} declares nothing");
    }
    assert!(checked > 150, "only {checked} declared flows checked");
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

fn service(model: &Model, id: usize) -> Peer {
    let s = &model.services[id];
    pod(&s.namespace, &s.selector)
}

/// A concrete peer the target stands for.
fn peer(model: &Model, t: &Target) -> Peer {
    match t {
        Target::Service(id) => service(model, *id),
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
        Target::Cidr { cidr, .. } => world(&cidr.network().to_string(), &[]),
        Target::Fqdn(sel) => {
            let name = match sel {
                FqdnSelector::Name(n) => n.clone(),
                FqdnSelector::Pattern(p) => p.replacen("**.", "a.b.", 1).replace('*', "x"),
            };
            world("198.51.100.7", &[name])
        }
    }
}

fn decide(index: &Index, src: &Peer, dst: &Peer, proto: Proto, port: u16) -> Decision {
    let q = Query {
        src: src.clone(),
        dst: dst.clone(),
        proto: Some(proto),
        port,
    };
    let d = Evaluator::new(index, &NoPorts).decide(&q);
    assert_eq!(
        d,
        netpol_compiler::engine::eval::reference(&index.entries, &q, &NoPorts, None)
    );
    d
}

/// `(protocol, port)` probes for the ports of a rule: both ends of ranges, ICMP types.
fn probes(ports: &BTreeSet<L4>) -> Vec<(Proto, u16)> {
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
