//! `netpol suggest` as users run it, and the property the issue asks of it: whatever the flows
//! and the existing profiles (none included), once the suggestion is applied — the patch to
//! the profiles compiled with the real compiler, the CiliumNetworkPolicies imported —
//! `verify` allows every input flow, and what the new policies allow that the old ones did
//! not is exactly what the flows need: over a universe of the flows' endpoints and the
//! cluster's workloads, no (source, destination, protocol, port) beyond them.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use netpol_compiler::cli::{Status, run_args};
use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::entry;
use netpol_compiler::engine::eval::NoPorts;
use netpol_compiler::engine::identity::Peer;
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::policy;
use netpol_compiler::engine::reach::PROTOCOLS;
use netpol_compiler::engine::settings::Settings;
use netpol_compiler::flow::Reader;
use netpol_compiler::objects::Proto;
use netpol_compiler::profile::{compile_paths, emit};
use proptest::prelude::*;

/// The cluster: two namespaces of two workloads, CoreDNS, the node, two addresses outside.
const PODS: &[(&str, &str, &str)] = &[
    ("a", "w0", "10.244.0.10"),
    ("a", "w1", "10.244.0.11"),
    ("b", "w2", "10.244.0.12"),
    ("b", "w3", "10.244.0.13"),
    ("kube-system", "coredns", "10.244.0.53"),
];

/// One end of a generated flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Pod(usize),
    Host,
    /// An address outside the cluster; destinations may carry a name.
    World(usize, bool),
}

fn endpoint(e: End) -> String {
    match e {
        End::Pod(i) => {
            let (ns, name, ip) = PODS[i];
            let labels = if name == "coredns" {
                r#"{"k8s-app":"kube-dns"}"#.to_owned()
            } else {
                format!(r#"{{"app":"{name}"}}"#)
            };
            format!(r#"{{"ip":"{ip}","namespace":"{ns}","pod":"{name}-0","labels":{labels}}}"#)
        }
        End::Host => r#"{"ip":"192.168.0.1","entity":"host"}"#.to_owned(),
        End::World(i, named) => {
            let names = if named {
                format!(r#","names":["x{i}.example.com"]"#)
            } else {
                String::new()
            };
            // A named address is another address than the unnamed one.
            let ip = if named { 10 + i } else { 1 + i };
            format!(r#"{{"ip":"203.0.113.{ip}","entity":"world"{names}}}"#)
        }
    }
}

fn flow_line(src: End, dst: End, proto: &str, port: u16) -> String {
    let port_field = if proto == "icmp" {
        format!(r#","icmp":{{"type":{port},"code":0}}"#)
    } else {
        String::new()
    };
    let (src, dst) = (endpoint(src), endpoint(dst));
    let dst = if proto == "icmp" {
        dst
    } else {
        format!("{},\"port\":{port}}}", dst.strip_suffix('}').unwrap())
    };
    format!(
        r#"{{"time":"2026-01-01T00:00:00Z","protocol":"{proto}","source":{src},"destination":{dst}{port_field}}}"#
    )
}

#[derive(Debug, Clone)]
struct Case {
    flows: Vec<(End, End, &'static str, u16)>,
    /// Per workload `w0`..`w3`: declared in a profile, and the statements it has (index into
    /// [`STATEMENTS`]).
    profiles: Option<Vec<(bool, Vec<usize>)>>,
    /// Per namespace `a`, `b`: a profile even without services (its undeclared workloads then
    /// become new services), and `default-deny: both`.
    namespaces: Vec<(bool, bool)>,
}

/// Statements an existing profile may have (`{other}`: another workload of the namespace).
const STATEMENTS: &[&str] = &[
    "      - to: {other}\n        port: http\n",
    "      - from: {other}\n        port: 443\n",
    "      - to: x0.example.com\n        port: 443\n",
    "      - to: \"203.0.113.2/32\"\n        port: [53/udp, 80]\n",
    "      - from: host\n        port: icmp/8\n",
];

fn profile_texts(
    declared: &[(bool, Vec<usize>)],
    namespaces: &[(bool, bool)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, (ns, members)) in [("a", [0, 1]), ("b", [2, 3])].into_iter().enumerate() {
        let (always, deny) = namespaces.get(k).copied().unwrap_or_default();
        let mut text = format!("namespace: {ns}\n");
        if deny {
            text.push_str("default-deny: both\n");
        }
        if members
            .iter()
            .any(|i| declared.get(*i).is_some_and(|d| d.0))
        {
            text.push_str("services:\n");
        }
        let mut any = always;
        for i in members {
            let Some((true, statements)) = declared.get(i) else {
                continue;
            };
            any = true;
            let name = PODS[i].1;
            let other = PODS[if i % 2 == 0 { i + 1 } else { i - 1 }].1;
            let other_declared = declared
                .get(if i % 2 == 0 { i + 1 } else { i - 1 })
                .is_some_and(|d| d.0);
            text.push_str(&format!(
                "  {name}:\n    select: {{app: {name}}}\n    ports: {{http: 8080}}\n"
            ));
            let chosen: Vec<&usize> = statements
                .iter()
                .filter(|s| other_declared || !STATEMENTS[**s].contains("{other}"))
                .collect();
            if !chosen.is_empty() {
                text.push_str("    allow:\n");
                for s in chosen {
                    text.push_str(&STATEMENTS[*s].replace("{other}", other));
                }
            }
        }
        // Both workloads declared: a group of the two, which statements to both name.
        if members
            .iter()
            .all(|i| declared.get(*i).is_some_and(|d| d.0))
        {
            let [x, y] = members.map(|i| PODS[i].1);
            text.push_str(&format!("groups:\n  pair: [{x}, {y}]\n"));
        }
        if any {
            out.push((format!("profiles/{ns}.yaml"), text));
        }
    }
    out
}

fn arb_end(source: bool) -> impl Strategy<Value = End> {
    prop_oneof![
        4 => (0..PODS.len()).prop_map(End::Pod),
        1 => Just(End::Host),
        2 => (0usize..2, any::<bool>()).prop_map(move |(i, n)| End::World(i, n && !source)),
    ]
}

fn arb_case() -> impl Strategy<Value = Case> {
    let flow = (
        arb_end(true),
        arb_end(false),
        prop_oneof![Just("tcp"), Just("udp"), Just("icmp")],
        prop_oneof![Just(80u16), Just(443), Just(8080), Just(53)],
    )
        .prop_filter("one end is a pod", |(s, d, ..)| {
            matches!(s, End::Pod(_)) || matches!(d, End::Pod(_))
        })
        .prop_map(|(s, d, p, port)| (s, d, p, if p == "icmp" { 8 } else { port }));
    let profiles = proptest::option::weighted(
        0.75,
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::collection::vec(0..STATEMENTS.len(), 0..3),
            ),
            4,
        ),
    );
    let namespaces = proptest::collection::vec((any::<bool>(), any::<bool>()), 2);
    (proptest::collection::vec(flow, 1..10), profiles, namespaces).prop_map(
        |(flows, profiles, namespaces)| Case {
            flows,
            profiles,
            namespaces,
        },
    )
}

fn run(fs: &Memory, args: &[&str]) -> (Status, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run_args(
        std::iter::once("netpol").chain(args.iter().copied()),
        fs,
        &mut out,
        &mut err,
    );
    (
        status,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Apply a unified diff to the files it names (a small reader of what `suggest` writes; it
/// checks every context line).
fn apply_patch(files: &mut BTreeMap<String, String>, patch: &str) {
    let mut lines = patch.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(names) = line.strip_prefix("diff --git a/") else {
            continue;
        };
        let name = names.split(" b/").next().unwrap().to_owned();
        let old: Vec<String> = files[&name].lines().map(str::to_owned).collect();
        let mut new: Vec<String> = Vec::new();
        let mut at = 0;
        lines.next();
        lines.next();
        while let Some(h) = lines.peek().and_then(|l| l.strip_prefix("@@ -")) {
            let start: usize = h.split(',').next().unwrap().parse().unwrap();
            lines.next();
            new.extend(old[at..start - 1].iter().cloned());
            at = start - 1;
            while let Some(l) = lines.peek() {
                if let Some(c) = l.strip_prefix(' ') {
                    assert_eq!(old[at], c, "context of {name}");
                    new.push(c.to_owned());
                    at += 1;
                } else if let Some(c) = l.strip_prefix('-') {
                    assert_eq!(old[at], c);
                    at += 1;
                } else if let Some(c) = l.strip_prefix('+') {
                    new.push(c.to_owned());
                } else if !l.starts_with('\\') {
                    break;
                }
                lines.next();
            }
        }
        new.extend(old[at..].iter().cloned());
        files.insert(name, new.join("\n") + "\n");
    }
}

/// The warnings `netpol check` reports on profiles, by code and message.
fn warnings(profiles: &BTreeMap<String, String>) -> BTreeSet<String> {
    let (status, out, err) = run(
        &Memory::new(profiles.clone()),
        &["check", "--error-format", "json", "profiles"],
    );
    assert_ne!(status, Status::BadInput, "{out}{err}\n{profiles:#?}");
    out.lines()
        .chain(err.lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|d| d["severity"] == "warning")
        .map(|d| format!("{}: {}", d["code"], d["message"]))
        .collect()
}

/// The YAML stream after the patch (from the first `apiVersion:` document on).
fn policies_of(stdout: &str) -> String {
    match stdout.find("\napiVersion:") {
        Some(i) => stdout[i + 1..].to_owned(),
        None if stdout.starts_with("apiVersion:") => stdout.to_owned(),
        None => String::new(),
    }
}

/// The index of profiles (compiled) and policy texts.
fn index(profiles: &BTreeMap<String, String>, policies: &str) -> Index {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if !profiles.is_empty() {
        let fs = Memory::new(profiles.clone());
        let c = compile_paths(&fs, &[PathBuf::from("profiles")]);
        let objects = c.objects.unwrap_or_else(|| {
            panic!(
                "{:?}\n{profiles:#?}",
                c.diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .collect::<Vec<_>>()
            )
        });
        files.push((
            "compiled.yaml".into(),
            emit::stream(&objects, emit::Format::Yaml).unwrap(),
        ));
    }
    if !policies.is_empty() {
        files.push(("suggested.yaml".into(), policies.to_owned()));
    }
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let fs = Memory::new(files);
    let imported = policy::import(&fs, &paths);
    assert!(
        !imported.diagnostics.has_errors(),
        "{:?}\n{policies}",
        imported.diagnostics
    );
    Index::new(entry::build(&imported.set, None, &Settings::default()))
}

/// Every peer of the universe, and the (source, destination, protocol, port) the flows need,
/// by peer number.
type Needs = BTreeSet<(usize, usize, Proto, u16)>;

fn universe(flows: &str) -> (Vec<Peer>, Needs) {
    let mut lines: Vec<String> = Vec::new();
    let ends: Vec<End> = (0..PODS.len())
        .map(End::Pod)
        .chain([End::Host])
        .chain((0..2).flat_map(|i| [End::World(i, false), End::World(i, true)]))
        .collect();
    for e in &ends {
        lines.push(flow_line(*e, End::Host, "tcp", 1));
    }
    let mut reader = Reader::new(None, "default");
    for (n, l) in lines
        .iter()
        .chain(flows.lines().map(str::to_owned).collect::<Vec<_>>().iter())
        .enumerate()
    {
        reader.line(n + 1, l);
    }
    assert_eq!(reader.error_count, 0, "{:?}", reader.set.errors);
    let mut peers: Vec<Peer> = Vec::new();
    let mut number = |p: &Peer| {
        let key = |q: &Peer| {
            (
                q.labels.clone(),
                q.ip.filter(|_| q.is_world()),
                q.names.clone(),
            )
        };
        match peers.iter().position(|q| key(q) == key(p)) {
            Some(i) => i,
            None => {
                peers.push(p.clone());
                peers.len() - 1
            }
        }
    };
    let mut needs = Needs::new();
    for (i, f) in reader.set.flows.iter().enumerate() {
        let (s, d) = (number(&f.src.peer), number(&f.dst.peer));
        if i >= ends.len() {
            needs.insert((s, d, f.proto.unwrap(), f.port()));
        }
    }
    (peers, needs)
}

/// Check one case in one format; `Err` describes what went wrong.
fn check(case: &Case, format: &str) -> Result<(), String> {
    let flows: String = case
        .flows
        .iter()
        .map(|(s, d, p, port)| flow_line(*s, *d, p, *port) + "\n")
        .collect();
    let profiles: BTreeMap<String, String> = case
        .profiles
        .as_deref()
        .map(|p| profile_texts(p, &case.namespaces))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut files = profiles.clone();
    files.insert("flows.jsonl".into(), flows.clone());
    let mut args = vec!["suggest", "--flows", "flows.jsonl", "--format", format];
    if !profiles.is_empty() {
        args.extend(["--profiles", "profiles"]);
    }
    let (status, stdout, stderr) = run(&Memory::new(files), &args);
    if status == Status::BadInput {
        return Err(format!("suggest failed: {stderr}"));
    }
    if stderr.contains("warning: nothing suggested") {
        return Err(format!("unsuggested: {stderr}"));
    }
    if stdout.contains("pair\n") {
        eprintln!("GROUPPROBE {format}");
    }
    let mut patched = profiles.clone();
    apply_patch(&mut patched, &stdout);
    let policies = policies_of(&stdout);
    // The patched profiles warn of nothing new (`unmanaged-pods`: pods of a profiled namespace
    // named by labels, not by a service).
    if !profiles.is_empty() {
        let (before, after) = (warnings(&profiles), warnings(&patched));
        if let Some(new) = after.difference(&before).next() {
            return Err(format!(
                "new warning after the patch: {new}\n--- suggest:\n{stdout}"
            ));
        }
    }
    // verify: every input flow passes.
    let mut files = patched.clone();
    files.insert("flows.jsonl".into(), flows.clone());
    let mut args = vec![
        "verify",
        "--as-enforced",
        "--flows",
        "flows.jsonl",
        "--policies",
    ];
    if !patched.is_empty() {
        args.push("profiles");
    }
    if !policies.is_empty() {
        files.insert("suggested.yaml".into(), policies.clone());
        args.push("suggested.yaml");
    }
    if args.last() != Some(&"--policies") {
        let (status, out, err) = run(&Memory::new(files), &args);
        if status != Status::Ok {
            return Err(format!(
                "verify: {status:?}\n{out}\n{err}\n--- suggest:\n{stdout}"
            ));
        }
    }
    // Nothing newly allowed beyond the needs (and the DNS lookups of the names they go to).
    let before = index(&profiles, "");
    let after = index(&patched, &policies);
    let (peers, needs) = universe(&flows);
    let dns_users: BTreeSet<usize> = needs
        .iter()
        .filter(|(_, d, ..)| !peers[*d].names.is_empty())
        .map(|(s, ..)| *s)
        .collect();
    let coredns = peers
        .iter()
        .position(|p| p.labels.to_string().contains("k8s-app=kube-dns"));
    let (mut eb, mut ea) = (
        Evaluator::new(&before, &NoPorts),
        Evaluator::new(&after, &NoPorts),
    );
    for (i, p) in peers.iter().enumerate() {
        for (j, q) in peers.iter().enumerate() {
            let extra = ea.reach(p, q).minus(&eb.reach(p, q));
            for proto in PROTOCOLS {
                for &(a, b) in extra.get(proto) {
                    for port in a..=b {
                        let dns = Some(j) == coredns
                            && dns_users.contains(&i)
                            && port == 53
                            && matches!(proto, Proto::Udp | Proto::Tcp);
                        if !needs.contains(&(i, j, proto, port)) && !dns {
                            return Err(format!(
                                "newly allowed and not needed: {} -> {} {proto}/{port}\n--- suggest:\n{stdout}",
                                p.labels, q.labels
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn applied_suggestions_allow_every_flow_and_nothing_more(case in arb_case()) {
        for format in ["profile", "cnp"] {
            if let Err(e) = check(&case, format) {
                prop_assert!(false, "{format}: {e}\n{case:?}");
            }
        }
    }
}

/// The fixture: profiles of three namespaces and a day of flows (`tests/fixtures/suggest`).
fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suggest")
}

fn netpol(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn shown(out: &std::process::Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn suggest_reports_snapshot() {
    let dir = fixture();
    let base = [
        "suggest",
        "--flows",
        "flows.jsonl",
        "--profiles",
        "profiles",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        shown(&netpol(&dir, &args))
    };
    insta::assert_snapshot!("suggest_profile", run(&[]));
    insta::assert_snapshot!("suggest_cnp", run(&["--format", "cnp"]));
    insta::assert_snapshot!("suggest_generalize", run(&["--generalize"]));
    // No policy at all: every flow between pods, as default-deny policies.
    insta::assert_snapshot!(
        "suggest_bootstrap",
        shown(&netpol(&dir, &["suggest", "--flows", "flows.jsonl"]))
    );
}

#[test]
fn suggest_exits_0_when_nothing_is_dropped_and_2_on_bad_flows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/a.yaml"),
        "namespace: a\nservices:\n  w0:\n    select: {app: w0}\n    allow:\n      - to: w0\n        port: 80\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("flows.jsonl"),
        flow_line(End::Pod(0), End::Pod(0), "tcp", 80) + "\n",
    )
    .unwrap();
    let out = netpol(
        dir.path(),
        &[
            "suggest",
            "--flows",
            "flows.jsonl",
            "--profiles",
            "profiles",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(out.stdout.is_empty());
    std::fs::write(dir.path().join("flows.jsonl"), "{\"time\": 1}\n").unwrap();
    let out = netpol(
        dir.path(),
        &[
            "suggest",
            "--flows",
            "flows.jsonl",
            "--profiles",
            "profiles",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error: flows.jsonl:1:"),
        "{}",
        shown(&out)
    );
    assert!(out.stdout.is_empty());
}

/// Flows → suggest → `git apply` the patch, the policies beside → compile → verify: no drop.
#[test]
fn suggested_statements_applied_with_git_compile_and_verify_without_drops() {
    let git = |dir: &std::path::Path, args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
    };
    let dir = tempfile::tempdir().unwrap();
    if git(dir.path(), &["init", "-q"]).is_err() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let from = fixture();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    for f in ["media.yaml", "databases.yaml", "traefik.yaml"] {
        std::fs::copy(
            from.join("profiles").join(f),
            dir.path().join("profiles").join(f),
        )
        .unwrap();
    }
    // What the patch cannot carry (a flow-style service) and what a deny rule drops are left
    // out: the rest must pass once applied.
    let flows: String = std::fs::read_to_string(from.join("flows.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains("bazarr") && !l.contains("192.0.2.5"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("flows.jsonl"), &flows).unwrap();
    let check = |dir: &std::path::Path| {
        let out = netpol(dir, &["check", "--error-format", "json", "profiles"]);
        assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .filter(|l| l.contains(r#""severity":"warning""#))
            .map(|l| {
                let d: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{}: {}", d["code"], d["message"])
            })
            .collect::<BTreeSet<String>>()
    };
    let warned = check(dir.path());
    let out = netpol(
        dir.path(),
        &[
            "suggest",
            "--flows",
            "flows.jsonl",
            "--profiles",
            "profiles",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    std::fs::write(dir.path().join("suggest.patch"), &stdout).unwrap();
    let applied = git(dir.path(), &["apply", "suggest.patch"]).unwrap();
    assert!(
        applied.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&applied.stderr)
    );
    // The flows of flaresolverr and unpackerr (pods of `media`, which has a profile, that no
    // service declares) make new services: the profiles name them, nothing warns.
    assert!(stdout.contains("+  flaresolverr: # suggested"), "{stdout}");
    assert!(
        stdout.contains("+      - to: flaresolverr\n+        port: 8191\n"),
        "{stdout}"
    );
    let new: Vec<String> = check(dir.path()).difference(&warned).cloned().collect();
    assert!(new.is_empty(), "new warnings: {new:?}\n{stdout}");
    std::fs::write(dir.path().join("suggested.yaml"), policies_of(&stdout)).unwrap();
    let out = netpol(dir.path(), &["compile", "profiles", "-o", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let out = netpol(
        dir.path(),
        &[
            "verify",
            "--policies",
            "out",
            "suggested.yaml",
            "--flows",
            "flows.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": 0 would be dropped"),
        "{}",
        shown(&out)
    );
    // Once applied, nothing is left to suggest.
    let out = netpol(
        dir.path(),
        &[
            "suggest",
            "--flows",
            "flows.jsonl",
            "--policies",
            "out",
            "suggested.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
}
