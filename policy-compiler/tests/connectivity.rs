//! `netpol connectivity`, `netpol graph` and `netpol diff` as users run them: snapshots of every
//! format on a fixture pair (`tests/fixtures/diff/cluster/{base,head}`), the diff between two
//! commits of a repository the test builds, and properties of the diff.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netpol_compiler::cli::{Status, run_args};
use netpol_compiler::document::files::Disk;
use proptest::prelude::*;

const FIXTURE: &str = "tests/fixtures/diff/cluster";

/// Run the CLI in-process (from the crate's directory, where the fixtures are).
fn run(args: &[&str]) -> (Status, String, String) {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let argv = std::iter::once("netpol").chain(args.iter().copied());
    let status = run_args(argv, &Disk, &mut stdout, &mut stderr);
    (
        status,
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn fixture(side: &str) -> String {
    format!("{FIXTURE}/{side}")
}

#[test]
fn connectivity_of_the_fixture_in_every_format() {
    let head = fixture("head");
    for format in ["txt", "json", "csv", "md", "dot", "mermaid"] {
        let (status, out, err) = run(&["connectivity", &head, "--format", format]);
        assert_eq!(status, Status::Ok, "{err}");
        insta::assert_snapshot!(format!("connectivity_{format}"), out);
    }
}

#[test]
fn connectivity_lists_what_both_ends_allow() {
    let (_, out, _) = run(&["connectivity", &fixture("head")]);
    let lines: Vec<&str> = out.lines().collect();
    // The named port `http` resolves to sonarr's container port; DNS through `ANY`.
    assert!(lines.contains(&"traefik/traefik[Deployment] => media/sonarr[Deployment] : TCP 8989"));
    assert!(lines.contains(
        &"media/sonarr[Deployment] => kube-system/coredns-5d78c9869d[ReplicaSet] : SCTP 53,TCP 53,UDP 53"
    ));
    // A running pod is named by its owner as the ownerReference says; no self-connections.
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("media/sonarr[Deployment] => media/sonarr"))
    );
    // sonarr is default-deny for egress: nothing it was not given.
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("media/sonarr[Deployment] => media/jellyfin"))
    );
    // Sorted and unique.
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(lines, sorted);
}

#[test]
fn focus_keeps_one_workloads_connections_and_names_a_typo() {
    let (status, out, _) = run(&[
        "connectivity",
        &fixture("head"),
        "--focus-workload",
        "media/sonarr",
    ]);
    assert_eq!(status, Status::Ok);
    assert!(!out.is_empty());
    assert!(
        out.lines().all(|l| l.contains("media/sonarr[Deployment]")),
        "{out}"
    );
    let (status, out, err) = run(&[
        "connectivity",
        &fixture("head"),
        "--focus-workload",
        "sonar",
    ]);
    assert_eq!(status, Status::BadInput);
    assert!(out.is_empty());
    assert!(
        err.contains("error: no workload `sonar` in the universe\n  help: did you mean `sonarr`?"),
        "{err}"
    );
}

#[test]
fn graph_draws_namespaces_as_boxes() {
    let (status, out, _) = run(&["graph", &fixture("head")]);
    assert_eq!(status, Status::Ok);
    assert!(out.starts_with("flowchart LR\n"));
    assert!(out.contains("  subgraph ns_media[\"media\"]\n"));
    let (_, dot, _) = run(&["graph", &fixture("head"), "--format", "dot"]);
    assert!(dot.contains("subgraph \"cluster_media\""));
    assert!(dot.ends_with("}\n"));
}

#[test]
fn diff_of_the_fixture_pair_in_every_format() {
    let (base, head) = (fixture("base"), fixture("head"));
    for format in ["txt", "csv", "json", "md"] {
        let (status, out, err) =
            run(&["diff", "--base", &base, "--head", &head, "--format", format]);
        assert_eq!(status, Status::Ok, "{err}");
        insta::assert_snapshot!(format!("diff_{format}"), out);
    }
}

#[test]
fn diff_security_summary_names_what_matters() {
    let (base, head) = (fixture("base"), fixture("head"));
    let (_, out, err) = run(&["diff", "--base", &base, "--head", &head, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let summary = &doc["summary"];
    let exposed: Vec<&str> = summary["new_world_exposure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["workload"].as_str().unwrap())
        .collect();
    assert!(exposed.contains(&"media/jellyfin[Deployment]"), "{summary}");
    let egress = summary["new_egress"].as_array().unwrap();
    assert!(
        egress
            .iter()
            .any(|o| o["workload"] == "media/sonarr[Deployment]"
                && o["peers"] == serde_json::json!(["*.tmdb.org[DNS]"])
                && o["conn"] == "TCP 443")
    );
    assert_eq!(
        summary["isolation"],
        serde_json::json!([{"workload": "databases/postgres[StatefulSet]", "direction": "ingress", "gained": false}])
    );
    assert_eq!(
        summary["invalid_policies"],
        serde_json::json!(["CiliumNetworkPolicy media/radarr"])
    );
    // sonarr lost Postgres; radarr appeared.
    let changes = doc["changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["diff-type"] == "removed"
        && c["source"] == "media/sonarr[Deployment]"
        && c["destination"] == "databases/postgres[StatefulSet]"
        && c["ref1"] == "TCP 5432"
        && c["ref2"] == "No Connections"));
    assert!(
        changes
            .iter()
            .any(|c| c["workloads-diff-info"] == "workload media/radarr[Deployment] added")
    );
    // The txt format keeps stdout netpol-analyzer's; the summary goes to stderr.
    let (_, txt, err_txt) = run(&["diff", "--base", &base, "--head", &head]);
    assert!(txt.starts_with("Connectivity diff:\n"));
    assert!(err_txt.contains("security summary:\n"), "{err_txt}");
    assert!(err.contains("rule must have at least one of"), "{err}");
}

#[test]
fn fail_on_gates_with_exit_one() {
    let (base, head) = (fixture("base"), fixture("head"));
    for (what, expected) in [
        ("new-world-exposure", Status::Found),
        ("new-egress", Status::Found),
        ("lost-isolation", Status::Found),
        ("invalid-policy", Status::Found),
        ("any", Status::Found),
    ] {
        let (status, _, _) = run(&["diff", "--base", &base, "--head", &head, "--fail-on", what]);
        assert_eq!(status, expected, "{what}");
    }
    // Nothing changed: nothing fails, and txt prints nothing.
    let (status, out, _) = run(&["diff", "--base", &base, "--head", &base, "--fail-on", "any"]);
    assert_eq!(status, Status::Ok);
    assert_eq!(out, "");
    // Reversed, the change gains isolation and exposes nothing new to world.
    let (status, _, _) = run(&[
        "diff",
        "--base",
        &head,
        "--head",
        &base,
        "--fail-on",
        "new-world-exposure,lost-isolation,invalid-policy",
    ]);
    assert_eq!(status, Status::Ok);
    let (status, _, err) = run(&[
        "diff",
        "--base",
        &base,
        "--head",
        &head,
        "--fail-on",
        "everything",
    ]);
    assert_eq!(status, Status::BadInput);
    assert!(err.contains("invalid value 'everything'"), "{err}");
}

#[test]
fn the_first_policy_pull_request_has_a_base_without_policies() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    copy_dir(&Path::new(FIXTURE).join("base/apps"), &base.join("apps"));
    let (status, out, err) = run(&[
        "diff",
        "--base",
        base.to_str().unwrap(),
        "--head",
        &fixture("base"),
        "--format",
        "json",
    ]);
    assert_eq!(status, Status::Ok, "{err}");
    assert!(
        err.contains("without policies Cilium allows every flow"),
        "{err}"
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Before: everything allowed; after: sonarr reaches Postgres on 5432 only.
    assert!(
        doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["diff-type"] == "changed"
                && c["source"] == "media/sonarr[Deployment]"
                && c["destination"] == "databases/postgres[StatefulSet]"
                && c["ref1"] == "All Connections"
                && c["ref2"] == "TCP 5432")
    );
    let gained = doc["summary"]["isolation"].as_array().unwrap();
    assert!(gained.iter().all(|i| i["gained"] == true) && !gained.is_empty());
}

#[test]
fn bad_revisions_and_paths_are_named() {
    let (status, out, err) = run(&[
        "diff",
        "--base",
        "no-such-rev-or-dir",
        "--head",
        &fixture("head"),
    ]);
    assert_eq!(status, Status::BadInput);
    assert!(out.is_empty());
    assert!(
        err.contains("error: cannot read `no-such-rev-or-dir`"),
        "{err}"
    );
    let (status, _, err) = run(&[
        "diff",
        "nowhere",
        "--base",
        &fixture("base"),
        "--head",
        &fixture("head"),
    ]);
    assert_eq!(status, Status::BadInput);
    assert!(err.contains("error: `nowhere` exists in neither"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

// ---- a repository built by the test: git init, commit base, change a profile, commit head ----

const PROFILE_BASE: &str = "namespace: media
services:
  sonarr:
    ports: {http: 8989}
    allow:
      - to: databases/postgres
        on: 5432
      - to: api.thetvdb.com
        on: 443
  jellyfin:
    ports: {http: 8096}
";

const DATABASES: &str = "namespace: databases
services:
  postgres:
    select: {app: postgres}
    ports: {pg: 5432}
    allow:
      - from: media/sonarr
        on: pg
";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=netpol",
            "-c",
            "user.email=netpol@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn netpol(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netpol"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::create_dir(root.join("profiles")).unwrap();
    std::fs::write(root.join("profiles/media.yaml"), PROFILE_BASE).unwrap();
    std::fs::write(root.join("profiles/databases.yaml"), DATABASES).unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "base"]);
    // The change: sonarr loses Postgres (both statements go), jellyfin may reach TMDB.
    let head = PROFILE_BASE
        .replace("      - to: databases/postgres\n        on: 5432\n", "")
        .replace(
            "    ports: {http: 8096}\n",
            "    ports: {http: 8096}\n    allow:\n      - to: api.themoviedb.org\n        on: 443\n",
        );
    std::fs::write(root.join("profiles/media.yaml"), head).unwrap();
    let databases = DATABASES.replace(
        "    allow:\n      - from: media/sonarr\n        on: pg\n",
        "",
    );
    std::fs::write(root.join("profiles/databases.yaml"), databases).unwrap();
    git(root, &["commit", "-q", "-am", "head"]);
    dir
}

#[test]
fn diff_between_two_commits_reports_exactly_the_change() {
    let repo = repository();
    let root = repo.path();
    let out = netpol(
        root,
        &["diff", "profiles", "--base", "HEAD~1", "--head", "HEAD"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Connectivity diff:
diff-type: added, source: media/jellyfin[Profile], destination: api.themoviedb.org[DNS], ref1: No Connections, ref2: TCP 443
diff-type: removed, source: media/sonarr[Profile], destination: databases/postgres[Profile], ref1: TCP 5432, ref2: No Connections
"
    );
    let out = netpol(
        root,
        &[
            "diff", "profiles", "--base", "HEAD~1", "--head", "HEAD", "--format", "csv",
        ],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "diff-type,source,destination,ref1,ref2,workloads-diff-info
added,media/jellyfin[Profile],api.themoviedb.org[DNS],No Connections,TCP 443,
removed,media/sonarr[Profile],databases/postgres[Profile],TCP 5432,No Connections,
"
    );
    let out = netpol(
        root,
        &[
            "diff", "profiles", "--base", "HEAD~1", "--head", "HEAD", "--format", "json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["base"], "HEAD~1");
    assert_eq!(doc["changes"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["summary"]["new_egress"],
        serde_json::json!([{"workload": "media/jellyfin[Profile]", "peers": ["api.themoviedb.org[DNS]"], "conn": "TCP 443"}])
    );
    assert_eq!(doc["summary"]["isolation"], serde_json::json!([]));
    let out = netpol(
        root,
        &[
            "diff", "profiles", "--base", "HEAD~1", "--head", "HEAD", "--format", "md",
        ],
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("<!-- netpol-diff -->\n"), "{md}");
    assert!(
        md.contains("1 connection added · 1 removed · 0 changed"),
        "{md}"
    );
    assert!(md.contains("| removed | media/sonarr[Profile] | databases/postgres[Profile] | TCP 5432 | No Connections |  |"), "{md}");
    // The working tree is head by default; from a subdirectory, paths are relative to it.
    let out = netpol(&root.join("profiles"), &["diff", ".", "--base", "HEAD~1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().lines().count() == 3);
    // Unknown revision.
    let out = netpol(root, &["diff", "profiles", "--base", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`nope` is no revision of this repository")
    );
}

#[test]
fn diff_between_two_commits_follows_includes_outside_the_paths() {
    // The profiles include a catalog file outside `profiles/`: each revision reads its own.
    let repo = repository();
    let root = repo.path();
    std::fs::create_dir(root.join("catalog")).unwrap();
    let catalog = |port: u16| {
        format!(
            "templates:\n  pg-client:\n    allow:\n      - to: databases/postgres\n        on: {port}\n"
        )
    };
    std::fs::write(root.join("catalog/pg.yaml"), catalog(5432)).unwrap();
    std::fs::write(
        root.join("profiles/media.yaml"),
        "namespace: media\ninclude: [../catalog/pg.yaml]\nservices:\n  sonarr:\n    use: [pg-client]\n",
    )
    .unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "catalog"]);
    std::fs::write(root.join("catalog/pg.yaml"), catalog(6432)).unwrap();
    git(root, &["commit", "-q", "-am", "pgbouncer"]);
    let out = netpol(
        root,
        &[
            "diff", "profiles", "--base", "HEAD~1", "--head", "HEAD", "--format", "csv",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "diff-type,source,destination,ref1,ref2,workloads-diff-info
changed,media/sonarr[Profile],databases/postgres[Profile],TCP 5432,TCP 6432,
"
    );
    // From inside `profiles/`, and with an include that leaves the repository: an error.
    let out = netpol(&root.join("profiles"), &["diff", ".", "--base", "HEAD~1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        root.join("profiles/media.yaml"),
        "namespace: media\ninclude: [../../outside.yaml]\nservices:\n  sonarr: {}\n",
    )
    .unwrap();
    git(root, &["commit", "-q", "-am", "outside"]);
    let out = netpol(
        root,
        &["diff", "profiles", "--base", "HEAD", "--head", "HEAD"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read `../outside.yaml`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn diff_reads_a_base_that_predates_the_profiles() {
    let repo = repository();
    let root = repo.path();
    std::fs::write(root.join("README"), "x").unwrap();
    // An orphan commit without profiles stands for the repository before the first policy.
    git(root, &["checkout", "-q", "--orphan", "empty"]);
    git(root, &["rm", "-rq", "--cached", "profiles"]);
    git(root, &["add", "README"]);
    git(root, &["commit", "-q", "-m", "empty"]);
    let out = netpol(
        root,
        &[
            "diff", "profiles", "--base", "empty", "--head", "main~1", "--format", "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = doc["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["source"] == "media/sonarr[Profile]"
                && c["destination"] == "databases/postgres[Profile]"
                && c["ref1"] == "All Connections"
                && c["ref2"] == "TCP 5432")
    );
}

// ---- properties ----

/// Policies to pick from: each selects one of the fixture's workloads or all of them.
const POOL: &[&str] = &[
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p0, namespace: media}\nspec:\n  endpointSelector: {matchLabels: {app.kubernetes.io/name: sonarr}}\n  ingress: [{fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: traefik}}], toPorts: [{ports: [{port: http, protocol: TCP}]}]}]\n",
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p1, namespace: media}\nspec:\n  endpointSelector: {}\n  egress: [{toEndpoints: [{}]}, {toFQDNs: [{matchPattern: \"*.tmdb.org\"}], toPorts: [{ports: [{port: \"443\"}]}]}]\n",
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p2, namespace: databases}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 5432}, {port: 6000, endPort: 6010}]}]\n",
    "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: p3}\nspec:\n  endpointSelector: {}\n  ingressDeny: [{fromEntities: [world], toPorts: [{ports: [{port: \"22\"}]}]}]\n  ingress: [{fromEntities: [all]}]\n",
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p4, namespace: traefik}\nspec:\n  endpointSelector: {}\n  egress: [{toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: media}}], toPorts: [{ports: [{port: \"8000\", endPort: 9000, protocol: TCP}]}]}, {toCIDR: [0.0.0.0/0]}]\n",
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p5, namespace: media}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/name: jellyfin}}\n  policyTypes: [Ingress, Egress]\n  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443, protocol: TCP}, {port: 53, protocol: UDP}]}]\n",
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p6, namespace: media}\nspec:\n  endpointSelector: {matchLabels: {app.kubernetes.io/name: jellyfin}}\n  ingress: [{fromEntities: [world], toPorts: [{ports: [{port: \"8096\"}]}]}]\n  egress: [{toEntities: [kube-apiserver]}, {icmps: [{fields: [{type: 8}]}]}]\n",
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p7, namespace: media}\nspec:\n  endpointSelector: {matchLabels: {app.kubernetes.io/name: sonarr}}\n  ingress: []\n",
];

/// A revision: the fixture's workloads and the policies `pick` selects from the pool.
fn revision(root: &Path, name: &str, pick: &[bool]) -> PathBuf {
    let dir = root.join(name);
    copy_dir(&Path::new(FIXTURE).join("base/apps"), &dir.join("apps"));
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    for (i, p) in POOL.iter().enumerate() {
        if pick.get(i).copied().unwrap_or(false) {
            std::fs::write(dir.join(format!("policies/p{i}.yaml")), p).unwrap();
        }
    }
    dir
}

fn diff_json(base: &Path, head: &Path) -> serde_json::Value {
    let (status, out, err) = run(&[
        "diff",
        "--base",
        base.to_str().unwrap(),
        "--head",
        head.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(status, Status::Ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// `diff(a, a)` is empty, and `diff(a, b)` mirrors `diff(b, a)`: added ↔ removed, changed
    /// with its refs swapped, default deny gained ↔ lost, the same pairs.
    #[test]
    fn diff_is_empty_on_itself_and_mirrors(
        a in proptest::collection::vec(any::<bool>(), POOL.len()),
        b in proptest::collection::vec(any::<bool>(), POOL.len()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (ra, rb) = (revision(dir.path(), "a", &a), revision(dir.path(), "b", &b));
        let same = diff_json(&ra, &ra);
        prop_assert_eq!(&same["changes"], &serde_json::json!([]));
        prop_assert_eq!(&same["summary"]["isolation"], &serde_json::json!([]));
        let (ab, ba) = (diff_json(&ra, &rb), diff_json(&rb, &ra));
        let key = |c: &serde_json::Value| (
            c["source"].as_str().unwrap().to_owned(),
            c["destination"].as_str().unwrap().to_owned(),
        );
        let mirrored: std::collections::BTreeMap<_, _> = ba["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (key(c), c.clone()))
            .collect();
        prop_assert_eq!(ab["changes"].as_array().unwrap().len(), mirrored.len());
        for c in ab["changes"].as_array().unwrap() {
            let m = mirrored.get(&key(c)).unwrap();
            let flipped = match c["diff-type"].as_str().unwrap() {
                "added" => "removed",
                "removed" => "added",
                other => other,
            };
            prop_assert_eq!(m["diff-type"].as_str().unwrap(), flipped);
            prop_assert_eq!(&m["ref1"], &c["ref2"]);
            prop_assert_eq!(&m["ref2"], &c["ref1"]);
        }
        let isolation = |d: &serde_json::Value| -> std::collections::BTreeSet<(String, String, bool)> {
            d["summary"]["isolation"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (
                    i["workload"].as_str().unwrap().to_owned(),
                    i["direction"].as_str().unwrap().to_owned(),
                    i["gained"].as_bool().unwrap(),
                ))
                .collect()
        };
        let flipped: std::collections::BTreeSet<_> =
            isolation(&ba).into_iter().map(|(w, d, g)| (w, d, !g)).collect();
        prop_assert_eq!(isolation(&ab), flipped);
    }
}

#[test]
fn the_readme_shows_the_homelab_picture_as_netpol_draws_it() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let after = readme
        .split_once("(`netpol graph profiles --namespace media`")
        .unwrap()
        .1;
    let block = after
        .split_once("```mermaid\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles");
    let (status, out, err) = run(&["graph", profiles, "--namespace", "media"]);
    assert_eq!(status, Status::Ok, "{err}");
    assert_eq!(
        block, out,
        "README.md's picture is stale: paste `netpol graph profiles --namespace media` into it"
    );
}
