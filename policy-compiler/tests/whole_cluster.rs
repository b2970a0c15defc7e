//! Profiles for a whole cluster: namespace default deny, deny statements, host-network
//! services and the cluster file's facts. The compiled output of a fixture
//! (`tests/fixtures/whole-cluster`) is snapshotted and read back by the policy engine, which
//! must allow the declared flows and deny the rest; every new diagnostic has a case.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use netpol_compiler::diagnostic::Diagnostic;
use netpol_compiler::document::files::{Disk, Memory};
use netpol_compiler::engine::eval::{Decision, NoPorts, Query, Reason};
use netpol_compiler::engine::identity::{self, Peer, Reserved};
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::engine::{entry, policy};
use netpol_compiler::objects::Proto;
use netpol_compiler::profile::{Compilation, compile_paths, emit};

const FIXTURE: &str = "tests/fixtures/whole-cluster";

fn fixture() -> Compilation {
    compile_paths(&Disk, &[PathBuf::from(FIXTURE)])
}

#[test]
fn the_compiled_whole_cluster_fixture() {
    let c = fixture();
    let errors: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let objects = c.objects.unwrap();
    insta::assert_snapshot!(emit::stream(&objects, emit::Format::Yaml).unwrap());
}

fn pod(ns: &str, app: &str) -> Peer {
    let labels = BTreeMap::from([("app.kubernetes.io/name".to_owned(), app.to_owned())]);
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

fn world(ip: &str, names: &[&str]) -> Peer {
    Peer {
        labels: Arc::new(Reserved::World.labels()),
        ip: Some(ip.parse().unwrap()),
        names: names.iter().map(ToString::to_string).collect(),
        ..Peer::default()
    }
}

fn node(r: Reserved, ip: &str) -> Peer {
    Peer {
        labels: Arc::new(r.labels()),
        ip: Some(ip.parse().unwrap()),
        ..Peer::default()
    }
}

/// The fixture compiled, emitted as YAML and read back as `netpol verify` reads policies.
fn engine() -> Index {
    let objects = fixture().objects.unwrap();
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
    Index::new(entry::build(&imported.set, None, &Settings::default()))
}

fn decide(index: &Index, src: &Peer, dst: &Peer, proto: Proto, port: u16) -> Decision {
    Evaluator::new(index, &NoPorts).decide(&Query {
        src: src.clone(),
        dst: dst.clone(),
        proto: Some(proto),
        port,
    })
}

#[test]
fn the_engine_allows_what_the_fixture_declares_and_denies_the_rest() {
    let index = engine();
    let sonarr = pod("media", "sonarr");
    let radarr = pod("media", "radarr");
    let forgotten = pod("media", "flaresolverr");
    let dns = Peer {
        labels: Arc::new(identity::pod_labels(
            "kube-system",
            &BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
            Some("coredns"),
            None,
            DEFAULT_CLUSTER,
        )),
        ..Peer::default()
    };
    let tvdb = world("203.0.113.7", &["api.thetvdb.com"]);
    // Declared: allowed.
    assert!(decide(&index, &sonarr, &tvdb, Proto::Tcp, 443).allowed());
    assert!(decide(&index, &sonarr, &dns, Proto::Udp, 53).allowed());
    let apiserver = node(Reserved::KubeApiserver, "192.168.1.2");
    assert!(decide(&index, &sonarr, &apiserver, Proto::Tcp, 6443).allowed());
    // Home Assistant on the host network: sonarr reaches it on its node and on the others.
    for r in [Reserved::Host, Reserved::RemoteNode] {
        let ha = node(r, "192.168.1.20");
        let d = decide(&index, &sonarr, &ha, Proto::Tcp, 8123);
        assert!(d.allowed(), "{r:?}: {d:?}");
        let d = decide(&index, &ha, &sonarr, Proto::Tcp, 8989);
        assert!(d.allowed(), "{r:?} to sonarr: {d:?}");
    }
    // The forgotten pod of the default-deny namespace: DNS and probes only.
    let d = decide(
        &index,
        &forgotten,
        &world("203.0.113.9", &[]),
        Proto::Tcp,
        443,
    );
    assert_eq!(d.egress.reason, Some(Reason::DefaultDeny), "{d:?}");
    assert!(decide(&index, &forgotten, &dns, Proto::Udp, 53).allowed());
    let d = decide(
        &index,
        &pod("default", "curl"),
        &forgotten,
        Proto::Tcp,
        8080,
    );
    assert_eq!(d.ingress.reason, Some(Reason::DefaultDeny), "{d:?}");
    assert!(
        decide(
            &index,
            &node(Reserved::Host, "192.168.1.20"),
            &forgotten,
            Proto::Tcp,
            8080
        )
        .allowed()
    );
    // Denies win: the LAN for every pod of `media`, the metadata service for every pod.
    let nas = world("192.168.1.10", &[]);
    let d = decide(&index, &sonarr, &nas, Proto::Tcp, 445);
    assert_eq!(d.egress.reason, Some(Reason::DeniedByRule), "{d:?}");
    let metadata = world("169.254.169.254", &[]);
    let d = decide(&index, &pod("other", "app"), &metadata, Proto::Tcp, 80);
    assert_eq!(d.egress.reason, Some(Reason::DeniedByRule), "{d:?}");
    let d = decide(&index, &pod("default", "curl"), &radarr, Proto::Tcp, 7878);
    assert_eq!(d.ingress.reason, Some(Reason::DeniedByRule), "{d:?}");
}

// ---- diagnostics ----

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    code: &'static str,
    message: &'static str,
    help: &'static str,
    underlined: &'static str,
}

const CLUSTER: &str = "cluster:\n  pod-cidrs: [10.244.0.0/16]\n  service-cidrs: [10.96.0.0/12]\n  apiserver-ports: [6443]\n  cilium-version: \"1.18\"\n";

const CASES: &[Case] = &[
    Case {
        name: "the API server on the Service's port",
        files: &[
            ("p/cluster.yaml", CLUSTER),
            (
                "p/a.yaml",
                "namespace: a\nservices:\n  x:\n    allow:\n      - to: kube-apiserver\n        on: 443\n",
            ),
        ],
        code: "apiserver-port",
        message: "the API server listens on `6443`, not on `443/tcp`",
        help: "policies see the port after the `kubernetes` Service is translated (the cluster file's `apiserver-ports`); write `on: 6443`",
        underlined: "443",
    },
    Case {
        name: "a CIDR inside the pod range",
        files: &[
            ("p/cluster.yaml", CLUSTER),
            (
                "p/a.yaml",
                "namespace: a\nservices:\n  x:\n    allow:\n      - to: 10.244.3.0/24\n",
            ),
        ],
        code: "cidr-in-cluster",
        message: "`10.244.3.0/24` is inside the pod range `10.244.0.0/16`",
        help: "CIDR rules select addresses outside the cluster only; name the pods instead: a service (`NAMESPACE/NAME`) or `{namespace: NS, select: {LABEL: VALUE}}`",
        underlined: "10.244.3.0/24",
    },
    Case {
        name: "a CIDR inside the Service range",
        files: &[
            ("p/cluster.yaml", CLUSTER),
            (
                "p/a.yaml",
                "namespace: a\nservices:\n  x:\n    allow:\n      - to: 10.96.0.10/32\n        on: 53/udp\n",
            ),
        ],
        code: "cidr-in-cluster",
        message: "`10.96.0.10/32` is inside the Service range `10.96.0.0/12`",
        help: "policies see the pod a Service address is translated to, never the ClusterIP: name the service behind it (`NAMESPACE/NAME`)",
        underlined: "10.96.0.10/32",
    },
    Case {
        name: "a DNS name of the cluster",
        files: &[(
            "p/a.yaml",
            "namespace: a\nservices:\n  x:\n    allow:\n      - to: sonarr.media.svc.cluster.local\n        on: 8989\n",
        )],
        code: "cluster-dns-name",
        message: "`sonarr.media.svc.cluster.local` is a name inside the cluster (`cluster.local`)",
        help: "`toFQDNs` selects addresses outside the cluster; for a Service of the cluster name its workload (`NAMESPACE/NAME`)",
        underlined: "sonarr.media.svc.cluster.local",
    },
    Case {
        name: "Cilium older than enableDefaultDeny",
        files: &[("p/cluster.yaml", "cluster:\n  cilium-version: \"1.15\"\n")],
        code: "cilium-too-old",
        message: "netpol compiles for Cilium 1.16 and later",
        help: "every compiled policy sets `enableDefaultDeny`, which Cilium 1.15 does not know: its API server drops the field, so `enforce: audit` and baselines would enforce default deny; upgrade Cilium first",
        underlined: "\"1.15\"",
    },
    Case {
        name: "a version as a number",
        files: &[("p/cluster.yaml", "cluster:\n  cilium-version: 1.10\n")],
        code: "invalid-value",
        message: "expected a Cilium version such as `\"1.18\"`",
        help: "write the version in quotes, major and minor: `cilium-version: \"1.18\"`",
        underlined: "1.10",
    },
    Case {
        name: "** before Cilium 1.19",
        files: &[
            ("p/cluster.yaml", CLUSTER),
            (
                "p/a.yaml",
                "namespace: a\nservices:\n  x:\n    allow:\n      - to: \"**.example.com\"\n        on: 443\n",
            ),
        ],
        code: "too-new-for-cilium",
        message: "`**.` patterns need Cilium 1.19; the cluster runs 1.18",
        help: "write `*.` (one label) per level, or upgrade Cilium",
        underlined: "\"**.example.com\"",
    },
    Case {
        name: "a deny with both sides",
        files: &[(
            "p/a.yaml",
            "namespace: a\nservices:\n  x:\n    deny:\n      - {from: world, to: world}\n",
        )],
        code: "deny-sides",
        message: "a deny statement names one side: `to:` or `from:`",
        help: "the other side is where the statement sits (the service, the namespace or the baseline): `deny: [{to: 169.254.169.254/32}]`",
        underlined: "{from: world, to: world}",
    },
    Case {
        name: "a deny of a DNS name",
        files: &[(
            "p/a.yaml",
            "namespace: a\nservices:\n  x:\n    deny:\n      - to: evil.example.com\n",
        )],
        code: "deny-dns",
        message: "DNS name `evil.example.com` cannot be denied",
        help: "Cilium's deny rules take no `toFQDNs`: deny the addresses (a CIDR), or simply do not allow the name",
        underlined: "evil.example.com",
    },
    Case {
        name: "a deny with HTTP rules",
        files: &[(
            "p/a.yaml",
            "namespace: a\nservices:\n  x:\n    deny:\n      - to: world\n        on: 80\n        http: [{path: /admin}]\n",
        )],
        code: "deny-http",
        message: "a deny cannot have HTTP rules",
        help: "Cilium's deny rules are L3/L4 only; deny the port, or allow only the requests you want",
        underlined: "{path: /admin}",
    },
];

fn compile(files: &[(&str, &str)]) -> Compilation {
    let fs = Memory::new(files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())));
    compile_paths(&fs, &[PathBuf::from("p")])
}

fn underlined<'a>(c: &'a Compilation, d: &Diagnostic) -> &'a str {
    let span = d.span.expect("a span");
    c.sources.get(span.source).unwrap().slice(span)
}

#[test]
fn every_new_error_is_reported_precisely() {
    let mut problems = Vec::new();
    for case in CASES {
        let c = compile(case.files);
        let errors: Vec<&Diagnostic> = c.diagnostics.iter().filter(|d| d.is_error()).collect();
        let Some(first) = errors.first() else {
            problems.push(format!("{}: no error: {:?}", case.name, c.diagnostics));
            continue;
        };
        for (what, got, want) in [
            ("code", first.code, case.code),
            ("message", first.message.as_str(), case.message),
            ("help", first.help.as_deref().unwrap_or(""), case.help),
            ("underlined", underlined(&c, first), case.underlined),
        ] {
            if got != want {
                problems.push(format!("{}: {what}: got {got:?}, want {want:?}", case.name));
            }
        }
        if c.objects.is_some() {
            problems.push(format!("{}: errors must not produce output", case.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The warnings of a compilation that succeeds: `(code, message, underlined)`.
fn warnings(files: &[(&str, &str)]) -> Vec<(String, String, String)> {
    let c = compile(files);
    assert!(c.objects.is_some(), "{:?}", c.diagnostics);
    c.diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .map(|d| {
            (
                d.code.to_owned(),
                d.message.clone(),
                underlined(&c, d).to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_allow_a_deny_covers_is_dead() {
    let w = warnings(&[(
        "p/a.yaml",
        "namespace: a\ndeny:\n  - to: 192.168.0.0/16\nservices:\n  x:\n    allow:\n      - to: 192.168.1.10/32\n        on: 445\n      - to: 10.0.0.1/32\n",
    )]);
    assert_eq!(
        w,
        [(
            "dead-allow".to_owned(),
            "this allow never takes effect: a deny covers it".to_owned(),
            "to: 192.168.1.10/32\n        on: 445".to_owned()
        )]
    );
}

#[test]
fn a_service_the_namespace_enforces_anyway_is_warned() {
    let w = warnings(&[(
        "p/a.yaml",
        "namespace: a\ndefault-deny: both\nservices:\n  x:\n    enforce: audit\n  web: {}\n",
    )]);
    assert_eq!(
        w,
        [(
            "enforce-overridden".to_owned(),
            "`x` is `enforce: audit`, but the namespace's `default-deny: both` enforces it"
                .to_owned(),
            "x".to_owned()
        )]
    );
}

#[test]
fn host_network_services_get_no_policy_and_a_warning() {
    let c = compile(&[(
        "p/a.yaml",
        "namespace: home\nservices:\n  ha:\n    host-network: true\n    ports: {api: 8123}\n  web:\n    allow:\n      - to: ha\n        on: api\n",
    )]);
    let yaml = emit::stream(&c.objects.unwrap(), emit::Format::Yaml).unwrap();
    assert!(yaml.contains("  name: web\n"), "{yaml}");
    assert!(!yaml.contains("  name: ha\n"), "{yaml}");
    // web reaches ha on its node and on the others, on its port.
    assert!(yaml.contains("- toEntities:\n        - host\n        - remote-node\n      toPorts:\n        - ports:\n            - port: \"8123\""), "{yaml}");
    assert!(c.diagnostics.iter().any(|d| d.code == "host-network"));
}

#[test]
fn the_namespace_policy_name_is_reserved_when_used() {
    let c = compile(&[(
        "p/a.yaml",
        "namespace: a\ndefault-deny: egress\nservices:\n  netpol-namespace: {}\n",
    )]);
    let first = c.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(first.code, "reserved-name");
    assert_eq!(underlined(&c, first), "netpol-namespace");
}

#[test]
fn verify_as_enforced_judges_the_audit_phase_as_it_will_be_enforced() {
    use netpol_compiler::cli::{Status, run_args};
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(
        profiles.join("media.yaml"),
        "namespace: media\ndefault-deny: audit\nservices:\n  sonarr:\n    enforce: audit\n    allow:\n      - to: api.thetvdb.com\n        on: 443\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (p, o) = (profiles.to_str().unwrap(), out.to_str().unwrap());
    let mut sink = (Vec::new(), Vec::new());
    assert_eq!(
        run_args(
            ["netpol", "compile", p, "-o", o],
            &Disk,
            &mut sink.0,
            &mut sink.1
        ),
        Status::Ok
    );
    // A pod no profile declares, to the internet: allowed in audit, dropped once enforced.
    let flows = dir.path().join("flows.jsonl");
    std::fs::write(
        &flows,
        r#"{"time":"2026-12-07T10:00:00Z","protocol":"tcp","source":{"ip":"10.244.0.9","port":40000,"namespace":"media","pod":"flaresolverr-0","labels":{"app":"flaresolverr"}},"destination":{"ip":"203.0.113.9","port":443,"entity":"world"}}"#,
    )
    .unwrap();
    let f = flows.to_str().unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["netpol", "verify", "--policies", o, "--flows", f];
        args.extend_from_slice(extra);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let status = run_args(args, &Disk, &mut stdout, &mut stderr);
        (status, String::from_utf8(stdout).unwrap())
    };
    assert_eq!(verify(&[]).0, Status::Ok);
    let (status, report) = verify(&["--as-enforced"]);
    assert_eq!(status, Status::Found, "{report}");
    assert!(report.contains("DROPPED"), "{report}");
}
