//! The real homelab in `profiles/`, compiled end to end: the exact output is pinned by a
//! snapshot, and the promises users rely on are checked one by one.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::{Path, PathBuf};

use netpol_compiler::document::files::Memory;
use netpol_compiler::objects::cilium::{EgressRule, Entity, IngressRule, PolicyObject, Rule};
use netpol_compiler::profile::{compile_paths, emit};

/// The profiles and the app catalog they include (`../catalog/*.yaml`), read into memory under
/// their repository-relative names, so that the provenance annotations are the same on every
/// machine.
fn profiles() -> Memory {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["profiles", "catalog"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let name = PathBuf::from(dir).join(path.file_name().unwrap());
                files.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    assert!(
        files.len() >= 10,
        "the homelab has one profile per namespace"
    );
    Memory::new(files)
}

fn compiled() -> Vec<PolicyObject> {
    let c = compile_paths(&profiles(), &[PathBuf::from("profiles")]);
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    c.objects.unwrap()
}

fn rule<'a>(objects: &'a [PolicyObject], ns: &str, name: &str) -> &'a Rule {
    objects
        .iter()
        .find(|o| o.namespace() == Some(ns) && o.name() == name)
        .and_then(|o| o.rules().next())
        .unwrap_or_else(|| panic!("no policy for {ns}/{name}"))
}

fn egress(rule: &Rule) -> &[EgressRule] {
    rule.egress.as_deref().unwrap_or_default()
}

fn ingress(rule: &Rule) -> &[IngressRule] {
    rule.ingress.as_deref().unwrap_or_default()
}

fn ports(items: &[netpol_compiler::objects::cilium::PortRule]) -> Vec<String> {
    items
        .iter()
        .flat_map(|r| r.ports.iter().flatten())
        .map(|p| {
            format!(
                "{}/{}",
                p.port,
                p.protocol.map(|p| p.as_str()).unwrap_or("ANY")
            )
        })
        .collect()
}

#[test]
fn compiled_homelab_matches_the_snapshot() {
    let yaml = emit::stream(&compiled(), emit::Format::Yaml).unwrap();
    insta::assert_snapshot!("homelab", yaml);
}

#[test]
fn output_is_byte_identical_across_runs() {
    let a = emit::stream(&compiled(), emit::Format::Yaml).unwrap();
    let b = emit::stream(&compiled(), emit::Format::Yaml).unwrap();
    assert_eq!(a, b);
}

#[test]
fn every_object_reads_back_through_the_typed_models() {
    let objects = compiled();
    let yaml = emit::stream(&objects, emit::Format::Yaml).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&yaml).unwrap();
    let back: Vec<PolicyObject> = docs
        .into_iter()
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    assert_eq!(back, objects);
}

#[test]
fn every_workload_is_default_deny_in_both_directions_unless_it_opts_out() {
    for object in compiled() {
        let PolicyObject::Cnp(cnp) = &object else {
            continue;
        };
        let enforce = cnp.metadata.annotations.as_ref().unwrap()["netpol.dev/enforce"].as_str();
        let rule = cnp.spec.as_ref().unwrap();
        let dd = rule.enable_default_deny.as_ref().unwrap();
        assert_eq!(
            dd.ingress,
            Some(matches!(enforce, "both" | "ingress")),
            "{}",
            cnp.metadata.name
        );
        assert_eq!(
            dd.egress,
            Some(matches!(enforce, "both" | "egress")),
            "{}",
            cnp.metadata.name
        );
        assert!(
            !ingress(rule).is_empty() && !egress(rule).is_empty(),
            "{}",
            cnp.metadata.name
        );
    }
}

#[test]
fn sonarr_is_reachable_from_traefik_and_reaches_postgres_and_tvdb() {
    let objects = compiled();
    let sonarr = rule(&objects, "media", "sonarr");
    let from_traefik = ingress(sonarr)
        .iter()
        .find(|i| {
            i.from_endpoints.iter().flatten().any(|s| {
                s.match_labels
                    .as_ref()
                    .unwrap()
                    .get("k8s:io.kubernetes.pod.namespace")
                    .map(String::as_str)
                    == Some("traefik")
            })
        })
        .expect("traefik may reach sonarr");
    assert_eq!(
        ports(from_traefik.to_ports.as_deref().unwrap()),
        ["8989/TCP"]
    );

    let to_tvdb = egress(sonarr)
        .iter()
        .find(|e| {
            e.to_fqdns
                .iter()
                .flatten()
                .any(|f| f.match_name.as_deref() == Some("api.thetvdb.com"))
        })
        .expect("sonarr may reach api.thetvdb.com");
    assert_eq!(ports(to_tvdb.to_ports.as_deref().unwrap()), ["443/TCP"]);

    // The FQDN rule works only through the DNS proxy: sonarr's DNS goes to kube-dns with an
    // L7 DNS rule (docs/semantics.md §4.1).
    let dns = egress(sonarr)
        .iter()
        .find(|e| {
            e.to_ports
                .iter()
                .flatten()
                .any(|p| p.rules.as_ref().is_some_and(|r| r.dns.is_some()))
        })
        .expect("a DNS rule");
    assert_eq!(
        ports(dns.to_ports.as_deref().unwrap()),
        ["53/TCP", "53/UDP"]
    );

    let postgres = rule(&objects, "databases", "arr-postgres");
    assert!(ingress(postgres).iter().any(|i| {
        i.from_endpoints.iter().flatten().any(|s| {
            s.match_labels
                .as_ref()
                .unwrap()
                .get("k8s:app.kubernetes.io/name")
                .map(String::as_str)
                == Some("sonarr")
        }) && ports(i.to_ports.as_deref().unwrap_or_default()) == ["5432/TCP"]
    }));
}

#[test]
fn kubelet_probes_keep_working() {
    for object in compiled() {
        if let PolicyObject::Cnp(cnp) = &object {
            let rule = cnp.spec.as_ref().unwrap();
            assert!(
                ingress(rule).iter().any(|i| i
                    .from_entities
                    .iter()
                    .flatten()
                    .any(|e| *e == Entity::Host)
                    && i.to_ports.is_none()),
                "{} must accept its node (kubelet probes)",
                cnp.metadata.name
            );
        }
    }
}

#[test]
fn qbittorrent_reaches_the_internet_only_through_the_vpn_gateway() {
    let objects = compiled();
    let qbit = rule(&objects, "media", "qbittorrent");
    for item in egress(qbit) {
        assert!(
            item.to_entities.is_none() && item.to_cidr_set.is_none() && item.to_fqdns.is_none(),
            "{item:?}"
        );
    }
}

#[test]
fn profiles_point_at_the_current_schema() {
    // Editors validate profiles against `profiles/.schema/profile.json`; it must be what
    // `netpol schema` prints (refresh it with `netpol schema > profiles/.schema/profile.json`).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let on_disk = std::fs::read_to_string(root.join("profiles/.schema/profile.json")).unwrap();
    assert_eq!(on_disk, netpol_compiler::profile::schema::PROFILE_SCHEMA);
}
