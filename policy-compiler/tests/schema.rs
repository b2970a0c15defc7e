//! The JSON Schema of the profile language (`schema/profile.schema.json`, served by
//! `netpol schema`) against the repository's profiles and a few broken ones.
//!
//! * the schema is a valid draft 2020-12 document and compiles;
//! * every `profiles/*.yaml` validates (all violations are printed, per file);
//! * the examples of docs/profile-language.md validate;
//! * typical mistakes are rejected.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde_json::Value;

const SCHEMA: &str = include_str!("../schema/profile.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("profile.schema.json is not JSON")
}

fn validator() -> Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema does not compile")
}

/// YAML as the compiler reads it: YAML 1.2 booleans only, so that the statement key `on:` stays
/// a string (YAML 1.1 would read it as `true`).
fn parse_yaml(text: &str) -> Result<Value, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<Value>(text, options)
}

/// Every violation of `instance`, one per line, `  at /path: message`.
fn violations(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            format!("  at {path}: {e}")
        })
        .collect()
}

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles")
}

#[test]
fn schema_is_valid_draft_2020_12() {
    let schema = schema();
    assert_eq!(
        schema.get("$schema").and_then(Value::as_str),
        Some("https://json-schema.org/draft/2020-12/schema")
    );
    jsonschema::meta::validate(&schema)
        .map_err(|e| format!("at {}: {e}", e.instance_path()))
        .expect("the schema violates the draft 2020-12 meta-schema");
    validator();
}

/// Editors show `description`s as hover text: every property of the schema has one.
#[test]
fn every_property_is_described() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        if prop.get("description").is_none() && prop.get("$ref").is_none() {
                            missing.push(format!("{path}/properties/{name}"));
                        }
                        if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
                            // A bare `$ref` is fine when the target is described.
                            let target = r.trim_start_matches("#/$defs/");
                            let described = schema()
                                .get("$defs")
                                .and_then(|d| d.get(target))
                                .and_then(|t| t.get("description"))
                                .is_some();
                            if prop.get("description").is_none() && !described {
                                missing.push(format!("{path}/properties/{name}"));
                            }
                        }
                    }
                }
                for (key, child) in map {
                    walk(child, &format!("{path}/{key}"), missing);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&schema(), "#", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_profile_validates() {
    let validator = validator();
    let dir = profiles_dir();
    let yaml_in = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
            .expect("cannot read the directory")
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        files
    };
    let files = yaml_in(&dir);
    assert!(
        files.len() >= 3,
        "expected the homelab profiles in {}, found {}",
        dir.display(),
        files.len()
    );
    // The app catalog's template libraries point at the same schema from `catalog/`.
    let catalog = yaml_in(&dir.join("../catalog"));
    assert!(
        !catalog.is_empty(),
        "expected the app catalog next to the profiles"
    );

    let mut report = String::new();
    let mut kinds = Vec::new();
    for (path, schema) in files.iter().map(|p| (p, ".schema/profile.json")).chain(
        catalog
            .iter()
            .map(|p| (p, "../profiles/.schema/profile.json")),
    ) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(path).unwrap();
        let first = format!("# yaml-language-server: $schema={schema}\n");
        if !text.starts_with(&first) {
            writeln!(report, "{name}: first line must be `{}`", first.trim_end()).unwrap();
        }
        let doc = match parse_yaml(&text) {
            Ok(doc) => doc,
            Err(e) => {
                writeln!(report, "{name}: invalid YAML: {e}").unwrap();
                continue;
            }
        };
        let errors = violations(&validator, &doc);
        if errors.is_empty() {
            println!("{name}: ok");
        } else {
            writeln!(report, "{name}: {} violation(s)", errors.len()).unwrap();
            for e in errors {
                writeln!(report, "{e}").unwrap();
            }
        }
        kinds.push(if doc.get("namespace").is_some() {
            "namespace"
        } else if doc.get("cluster").is_some() || doc.get("baselines").is_some() {
            "cluster"
        } else {
            "library"
        });
    }
    assert!(report.is_empty(), "profiles violate the schema:\n{report}");
    // The three shapes of file are all exercised by the real profiles and the catalog.
    for kind in ["namespace", "cluster", "library"] {
        assert!(kinds.contains(&kind), "no {kind} file among the profiles");
    }
}

/// The complete files shown in docs/profile-language.md.
#[test]
fn documented_examples_validate() {
    let namespace_file = r#"
namespace: media
description: the *arr media stack
enforce: both
services:
  sonarr:
    select: {app.kubernetes.io/name: sonarr}
    ports: {http: 8989}
    use: [arr-app]
    allow:
      - to: api.thetvdb.com
        on: 443
  qbittorrent:
    ports: {http: 8080, peers: [6881/tcp, 6881/udp]}
    enforce: ingress
groups:
  arr: [sonarr, radarr, prowlarr, lidarr, readarr]
templates:
  arr-app:
    allow:
      - from: traefik/traefik
        on: http
      - to: databases/arr-postgres
        on: postgresql
allow:
  - from: traefik/traefik
    to: [overseerr, jellyfin]
    on: http
include: [shared/templates.yaml]
"#;
    let cluster_file = r#"
cluster:
  dns:
    resolver: kube-system/coredns
    ports: [53/udp, 53/tcp]
    queries: any
  kubelet: true
baselines:
  - name: kube-dns
    select: all
    allow:
      - to: kube-system/coredns
        on: [53/udp, 53/tcp]
"#;
    let peers_and_ports = r#"
namespace: demo
services:
  app:
    ports: {http: 8080, range: 6881-6889/udp, sctp: 9/sctp}
    dns: false
    allow:
      - to: {entity: kube-apiserver}
      - to: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}
        on: [443, 443/tcp, 53/udp, 6881-6889/udp]
      - to: {dns: api.themoviedb.org}
        on: 443
        http:
          - {method: GET, path: "/api/.*"}
        description: why
      - from: {namespace: monitoring}
      - from: {namespace: monitoring, select: {app.kubernetes.io/name: grafana}}
      - to: {service: arr-postgres, namespace: databases}
        on: postgresql
      - to: [world, host, remote-node, kube-apiserver, cluster, ingress, health, all]
        on: [icmp/echo-request, icmp/8, icmpv6/128]
      - to: [10.0.0.0/8, fd00::/8, 192.168.1.10/32]
      - to: [api.thetvdb.com, "*.tmdb.org", "**.github.com"]
        on: 443
      - to: [monitoring/*, databases/arr-postgres]
"#;
    let library = r#"
templates:
  scraped:
    allow:
      - from: monitoring/alloy
        on: metrics
include: [other.yaml]
"#;
    let validator = validator();
    for (name, text) in [
        ("namespace file", namespace_file),
        ("cluster file", cluster_file),
        ("peers and ports", peers_and_ports),
        ("template library", library),
    ] {
        let doc = parse_yaml(text).unwrap();
        let errors = violations(&validator, &doc);
        assert!(
            errors.is_empty(),
            "{name} should validate:\n{}",
            errors.join("\n")
        );
    }
}

/// Each case is a valid profile and the same profile with one mistake: the first must validate
/// and the second must not, so that each mistake is rejected for its own reason.
#[test]
fn mistakes_are_rejected() {
    const SERVICE: &str = "namespace: media\nservices:\n  sonarr:\n";
    let statement = |line: &str| format!("{SERVICE}    allow:\n      - {line}\n");
    let cases: Vec<(&str, String, String)> = vec![
        (
            "unknown top-level key",
            "namespace: media\nservices: {}\n".into(),
            "namespace: media\nservice: {}\n".into(),
        ),
        (
            "unknown service key",
            format!("{SERVICE}    ports: {{http: 8989}}\n"),
            format!("{SERVICE}    port: {{http: 8989}}\n"),
        ),
        (
            "unknown statement key",
            statement("{to: world, on: 443}"),
            statement("{to: world, pots: 443}"),
        ),
        (
            "both spellings of the ports",
            statement("{to: world, port: 443}"),
            statement("{to: world, port: 443, on: 443}"),
        ),
        (
            "unknown HTTP rule key",
            statement("{from: world, on: 8989, http: [{method: GET}]}"),
            statement("{from: world, on: 8989, http: [{verb: GET}]}"),
        ),
        (
            "bad port spec: out of range",
            format!("{SERVICE}    ports: {{http: 65535}}\n"),
            format!("{SERVICE}    ports: {{http: 70000}}\n"),
        ),
        (
            "bad port spec: unknown protocol",
            format!("{SERVICE}    ports: {{http: 8989/tcp}}\n"),
            format!("{SERVICE}    ports: {{http: 8989/http}}\n"),
        ),
        (
            "bad port spec: port 0",
            format!("{SERVICE}    ports: {{peers: 6881-6889/udp}}\n"),
            format!("{SERVICE}    ports: {{peers: 0-6889/udp}}\n"),
        ),
        (
            "bad port spec: a name is not a port spec",
            format!("{SERVICE}    ports: {{http: [8989, 9898/udp]}}\n"),
            format!("{SERVICE}    ports: {{http: [8989, web]}}\n"),
        ),
        (
            "bad port name",
            format!("{SERVICE}    ports: {{http-alt: 8989}}\n"),
            format!("{SERVICE}    ports: {{http_alt: 8989}}\n"),
        ),
        (
            "bad port in `on`",
            statement("{to: world, on: 443/udp}"),
            statement("{to: world, on: 443/icmp}"),
        ),
        (
            "bad ICMP type",
            statement("{to: world, on: icmp/echo-request}"),
            statement("{to: world, on: icmp/echo-requset}"),
        ),
        (
            "bad service name: uppercase",
            "namespace: media\nservices:\n  sonarr: {}\n".into(),
            "namespace: media\nservices:\n  Sonarr: {}\n".into(),
        ),
        (
            "bad service name: underscore",
            "namespace: media\nservices:\n  sonarr-v4: {}\n".into(),
            "namespace: media\nservices:\n  sonarr_v4: {}\n".into(),
        ),
        (
            "bad service name: entity",
            "namespace: media\nservices:\n  worldwide: {}\n".into(),
            "namespace: media\nservices:\n  world: {}\n".into(),
        ),
        (
            "bad service name: too long",
            format!("namespace: media\nservices:\n  {}: {{}}\n", "a".repeat(63)),
            format!("namespace: media\nservices:\n  {}: {{}}\n", "a".repeat(64)),
        ),
        (
            "enforce: wrong",
            "namespace: media\nenforce: audit\n".into(),
            "namespace: media\nenforce: wrong\n".into(),
        ),
        (
            "service enforce: wrong",
            format!("{SERVICE}    enforce: ingress\n"),
            format!("{SERVICE}    enforce: strict\n"),
        ),
        (
            "top-level statement without `to`",
            "namespace: media\nallow:\n  - {from: traefik/traefik, to: sonarr, on: http}\n".into(),
            "namespace: media\nallow:\n  - {from: traefik/traefik, on: http}\n".into(),
        ),
        (
            "a DNS name as a source",
            statement("{from: world}"),
            statement("{from: api.example.com}"),
        ),
        (
            "HTTP rules without ports",
            statement("{from: world, port: 80, http: [{method: GET}]}"),
            statement("{from: world, http: [{method: GET}]}"),
        ),
        (
            "no ports at all",
            statement("{to: world, port: 443}"),
            statement("{to: world, port: []}"),
        ),
        (
            "service statement without a side",
            statement("{to: world, on: 443}"),
            statement("{on: 443}"),
        ),
        (
            "invalid peer",
            statement("{to: databases/arr-postgres}"),
            statement("{to: Databases/arr-postgres}"),
        ),
        (
            "address without prefix length",
            statement("{to: 192.168.1.10/32}"),
            statement("{to: 192.168.1.10}"),
        ),
        (
            "unknown entity",
            statement("{to: {entity: world}}"),
            statement("{to: {entity: internet}}"),
        ),
        (
            "two kinds in one peer map",
            statement("{to: {dns: api.thetvdb.com}}"),
            statement("{to: {dns: api.thetvdb.com, cidr: 0.0.0.0/0}}"),
        ),
        (
            "bad label value",
            format!("{SERVICE}    select: {{app.kubernetes.io/name: sonarr}}\n"),
            format!("{SERVICE}    select: {{app.kubernetes.io/name: -sonarr-}}\n"),
        ),
        (
            "label Cilium leaves out of identities",
            format!("{SERVICE}    select: {{app: sonarr}}\n"),
            format!("{SERVICE}    select: {{pod-template-hash: abc123}}\n"),
        ),
        (
            "namespace that is not a DNS label",
            "namespace: media\n".into(),
            "namespace: Media\n".into(),
        ),
        (
            "no namespace",
            "namespace: media\nservices:\n  sonarr: {}\n".into(),
            "services:\n  sonarr: {}\n".into(),
        ),
        (
            "namespace profile with cluster settings",
            "cluster: {kubelet: true}\n".into(),
            "namespace: media\ncluster: {kubelet: true}\n".into(),
        ),
        (
            "template library with a description",
            "templates:\n  scraped:\n    allow:\n      - from: monitoring/alloy\n".into(),
            "description: shared\ntemplates:\n  scraped:\n    allow:\n      - from: monitoring/alloy\n"
                .into(),
        ),
        (
            "queries: some",
            "cluster:\n  dns:\n    resolver: kube-system/coredns\n    queries: declared\n".into(),
            "cluster:\n  dns:\n    resolver: kube-system/coredns\n    queries: some\n".into(),
        ),
        (
            "DNS resolver port range",
            "cluster:\n  dns:\n    resolver: kube-system/coredns\n    ports: [53/udp]\n".into(),
            "cluster:\n  dns:\n    resolver: kube-system/coredns\n    ports: [53-54/udp]\n".into(),
        ),
        (
            "baseline without name",
            "baselines:\n  - name: dns\n    select: all\n    allow:\n      - to: kube-system/coredns\n"
                .into(),
            "baselines:\n  - select: all\n    allow:\n      - to: kube-system/coredns\n".into(),
        ),
        (
            "baseline select: everything",
            "baselines:\n  - name: dns\n    select: all\n    allow:\n      - to: kube-system/coredns\n"
                .into(),
            "baselines:\n  - name: dns\n    select: everything\n    allow:\n      - to: kube-system/coredns\n"
                .into(),
        ),
    ];
    let validator = validator();
    let mut wrong = Vec::new();
    for (name, good, bad) in &cases {
        let good = parse_yaml(good)
            .map_err(|e| format!("{name}: {e}"))
            .expect("test case is not YAML");
        let bad = parse_yaml(bad)
            .map_err(|e| format!("{name}: {e}"))
            .expect("test case is not YAML");
        let errors = violations(&validator, &good);
        if !errors.is_empty() {
            wrong.push(format!(
                "{name}: the valid variant is rejected\n{}",
                errors.join("\n")
            ));
        }
        let errors = violations(&validator, &bad);
        if errors.is_empty() {
            wrong.push(format!("{name}: accepted"));
        } else {
            println!("{name}: rejected\n{}", errors.join("\n"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
