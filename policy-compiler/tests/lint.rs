//! `netpol lint`: every rule on its fixtures, the rules' documentation, the SARIF log against
//! the SARIF 2.1.0 schema, exit codes and `--explain`.
//!
//! Each rule has a folder `tests/fixtures/lint/<code>/` with `bad.yaml` (findings of the rule,
//! snapshotted as rendered text) and `ok.yaml` (none of the rule), plus `cluster.yaml`
//! (workload manifests) for the rules that need to know the workloads. Adding a case = adding
//! a fixture file.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::{Path, PathBuf};

use netpol_compiler::cli::{Status, run_args};
use netpol_compiler::document::files::Disk;
use netpol_compiler::lint;

const FIXTURES: &str = "tests/fixtures/lint";

struct Run {
    status: Status,
    stdout: String,
    stderr: String,
}

fn lint(args: &[&str]) -> Run {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let status = run_args(
        ["netpol", "lint"].iter().chain(args),
        &Disk,
        &mut stdout,
        &mut stderr,
    );
    Run {
        status,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// The paths of one case: the file, and the rule's cluster manifests when it has some.
fn case(code: &str, file: &str) -> Vec<String> {
    let dir = Path::new(FIXTURES).join(code);
    let mut paths = vec![dir.join(file).display().to_string()];
    let cluster = dir.join("cluster.yaml");
    if cluster.exists() {
        paths.push(cluster.display().to_string());
    }
    paths
}

fn codes(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_rule_flags_its_bad_fixture_and_not_its_ok_one() {
    let mut problems = Vec::new();
    for rule in lint::rules() {
        let code = rule.meta().code;
        for (file, want) in [("bad.yaml", true), ("ok.yaml", false)] {
            let paths = case(code, file);
            if !Path::new(&paths[0]).exists() {
                problems.push(format!("{code}: no fixture {}", paths[0]));
                continue;
            }
            let mut args: Vec<&str> = paths.iter().map(String::as_str).collect();
            args.extend(["--format", "json"]);
            let run = lint(&args);
            assert_ne!(
                run.status,
                Status::BadInput,
                "{code} {file}: {}",
                run.stderr
            );
            let found = codes(&run.stdout).iter().any(|c| c == code);
            if found != want {
                problems.push(format!(
                    "{code}: {file} {} the rule:\n{}",
                    if want { "does not trigger" } else { "triggers" },
                    run.stdout
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_rule_renders_its_findings_like_check() {
    for rule in lint::rules() {
        let code = rule.meta().code;
        let paths = case(code, "bad.yaml");
        let args: Vec<&str> = paths.iter().map(String::as_str).collect();
        let run = lint(&args);
        insta::assert_snapshot!(format!("lint_{code}"), run.stdout);
    }
}

#[test]
fn every_rule_is_documented_with_what_why_example_and_fix() {
    let mut seen_codes = std::collections::BTreeSet::new();
    let mut seen_ids = std::collections::BTreeSet::new();
    for rule in lint::rules() {
        let m = rule.meta();
        assert!(seen_codes.insert(m.code), "code {} twice", m.code);
        assert!(seen_ids.insert(m.id), "number {} twice", m.id);
        assert!(
            m.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{}: codes are kebab-case",
            m.code
        );
        assert!(
            m.id.starts_with("NP2") && m.id.len() == 5,
            "{}: numbers are NP2xx",
            m.id
        );
        assert!(!m.summary().is_empty(), "{}: no summary line", m.code);
        for section in ["What", "Why", "Example", "Fix"] {
            let text = m.section(section);
            assert!(
                text.as_deref().is_some_and(|t| !t.is_empty()),
                "{}: no `## {section}` section in its doc comment",
                m.code
            );
        }
    }
}

#[test]
fn the_sarif_log_is_valid_sarif_2_1_0() {
    // rtm.5's pattern for `run.language` has a stray `]` that the validator refuses as a
    // regular expression; the final 2.1.0 schema writes it as below (no field netpol writes).
    let text = std::fs::read_to_string("tests/fixtures/sarif/sarif-2.1.0-rtm.5.json")
        .unwrap()
        .replace(
            r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#,
            r#""^[a-zA-Z]{2}(-[a-zA-Z]{2})?$""#,
        );
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::draft4::new(&schema).expect("the schema compiles");
    // Every fixture at once: results of every rule, import diagnostics, findings without a
    // place (coverage notes).
    let mut paths: Vec<String> = Vec::new();
    for rule in lint::rules() {
        paths.extend(case(rule.meta().code, "bad.yaml"));
    }
    paths.sort();
    paths.dedup();
    // `bad.yaml` files define the same objects; lint them a folder at a time would hide
    // nothing, but one run is what CI uploads.
    let mut args: Vec<&str> = paths.iter().map(String::as_str).collect();
    args.extend(["--format", "sarif"]);
    let run = lint(&args);
    let log: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let run0 = &log["runs"][0];
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.len() >= lint::rules().len());
    let first = &run0["results"][0];
    let location = &first["locations"][0]["physicalLocation"];
    assert!(
        location["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("tests/fixtures/lint/")
    );
    assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
    // Every result names a rule of the driver, and has a place (code scanning needs one).
    for result in run0["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
        let locations = result["locations"].as_array();
        assert!(
            locations.is_some_and(|l| !l.is_empty()),
            "a result without a location: {result}"
        );
        let region = &result["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1, "{result}");
        assert!(region["startColumn"].as_u64().unwrap() >= 1, "{result}");
    }
    // Coverage notes, about no place, are in the JSON but left out of SARIF.
    let args: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .chain(["--format", "json"])
        .collect();
    let json = lint(&args).stdout;
    assert!(codes(&json).contains(&"unisolated-workloads".to_owned()));
    assert!(
        !run0["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ruleId"] == "unisolated-workloads")
    );
}

#[test]
fn warnings_exit_0_unless_denied_and_errors_exit_1() {
    let warning = case("octal-port", "bad.yaml");
    let run = lint(&[&warning[0]]);
    assert_eq!(run.status, Status::Ok, "{}", run.stdout);
    let run = lint(&[&warning[0], "--deny-warnings"]);
    assert_eq!(run.status, Status::Found);
    let run = lint(&[&warning[0], "--deny", "NP215"]);
    assert_eq!(run.status, Status::Found);
    assert!(
        run.stdout.contains("× `0443` is port 291 to Cilium"),
        "{}",
        run.stdout
    );
    let error = case("service-port", "bad.yaml");
    let args: Vec<&str> = error.iter().map(String::as_str).collect();
    assert_eq!(lint(&args).status, Status::Found);
}

#[test]
fn allowed_rules_are_not_run() {
    let paths = case("octal-port", "bad.yaml");
    let run = lint(&[&paths[0], "--allow", "octal-port", "--format", "json"]);
    assert_eq!(run.status, Status::Ok);
    assert!(!codes(&run.stdout).contains(&"octal-port".to_owned()));
}

#[test]
fn an_annotation_silences_a_rule_for_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("octal-port/bad.yaml")).unwrap();
    let annotated = text.replace(
        "  namespace: shop\n",
        "  namespace: shop\n  annotations:\n    netpol.dev/lint-allow: \"octal-port: a legacy client\"\n",
    );
    let path: PathBuf = dir.path().join("a.yaml");
    std::fs::write(&path, annotated).unwrap();
    let run = lint(&[path.to_str().unwrap(), "--format", "json"]);
    assert!(
        !codes(&run.stdout).contains(&"octal-port".to_owned()),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_input_exits_2() {
    let run = lint(&["tests/fixtures/lint/no-such-file.yaml"]);
    assert_eq!(run.status, Status::BadInput);
    let run = lint(&["--allow", "octal-prot", "tests/fixtures/lint/octal-port"]);
    assert_eq!(run.status, Status::BadInput);
    assert!(
        run.stderr.contains("did you mean `octal-port`?"),
        "{}",
        run.stderr
    );
    assert_eq!(lint(&["--explain", "NP999"]).status, Status::BadInput);
    assert_eq!(lint(&[]).status, Status::BadInput);
}

#[test]
fn explain_lists_every_rule_and_prints_one() {
    let run = lint(&["--explain"]);
    assert_eq!(run.status, Status::Ok);
    assert_eq!(run.stdout.lines().count(), lint::rules().len());
    assert!(run.stdout.starts_with("NP201  fqdn-without-dns-proxy"));
    let run = lint(&["--explain", "NP204"]);
    assert_eq!(run.status, Status::Ok);
    assert!(run.stdout.starts_with("# deny-only-default-deny (NP204)\n"));
    assert!(run.stdout.contains("## Why\n"));
    assert_eq!(
        lint(&["--explain", "deny-only-default-deny"]).stdout,
        run.stdout
    );
}

/// `shadowed-rule` is sound on its fixture: dropping a shadowed item's entries changes no
/// verdict of the engine, for peers and ports around every item.
#[test]
fn dropping_a_shadowed_item_changes_no_decision() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use netpol_compiler::document::files::Memory;
    use netpol_compiler::engine::entry::{self, Entries};
    use netpol_compiler::engine::eval::{NoPorts, Query};
    use netpol_compiler::engine::identity::{self, Peer, Reserved};
    use netpol_compiler::engine::index::{Evaluator, Index};
    use netpol_compiler::engine::policy;
    use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};

    let file = Path::new(FIXTURES).join("shadowed-rule/bad.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let run = lint(&[file.to_str().unwrap(), "--format", "json"]);
    let found = codes(&run.stdout)
        .iter()
        .filter(|c| *c == "shadowed-rule")
        .count();
    // (policy, item) of each finding, as the snapshot shows them.
    let shadowed = [
        ("api", "spec.ingress[1]"),
        ("api", "spec.ingress[2]"),
        ("api", "spec.egress[1]"),
        ("api-http", "spec.ingress[1]"),
        ("api-extra", "spec.ingress[0]"),
    ];
    assert_eq!(found, shadowed.len(), "{}", run.stdout);

    let fs = Memory::new([(PathBuf::from("p/bad.yaml"), text)]);
    let imported = policy::import(&fs, &[PathBuf::from("p")]);
    let all = entry::build(&imported.set, None, &Settings::default());
    let pod = |labels: &[(&str, &str)]| {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Peer {
            labels: Arc::new(identity::pod_labels(
                "shop",
                &labels,
                None,
                None,
                DEFAULT_CLUSTER,
            )),
            ..Peer::default()
        }
    };
    let world = |ip: &str| Peer {
        labels: Arc::new(Reserved::World.labels()),
        ip: Some(ip.parse().unwrap()),
        ..Peer::default()
    };
    let api = pod(&[("app", "api")]);
    let peers = [
        pod(&[("app", "web")]),
        pod(&[("app", "web"), ("tier", "front")]),
        pod(&[("app", "other")]),
        Peer {
            labels: Arc::new(Reserved::Host.labels()),
            ..Peer::default()
        },
        world("10.2.3.4"),
        world("10.1.2.3"),
        world("8.8.8.8"),
    ];
    let ports = [
        "8000/tcp",
        "8001/udp",
        "8080/tcp",
        "8081/tcp",
        "8100/sctp",
        "9000/tcp",
        "443/tcp",
    ];
    let decisions = |entries: Entries| {
        let index = Index::new(entries);
        let mut ev = Evaluator::new(&index, &NoPorts);
        let mut out = Vec::new();
        for peer in &peers {
            for port in ports {
                let (proto, port) = netpol_compiler::report::explain::parse_port(port).unwrap();
                for (src, dst) in [(peer, &api), (&api, peer)] {
                    let q = Query {
                        src: src.clone(),
                        dst: dst.clone(),
                        proto: Some(proto),
                        port,
                    };
                    out.push(ev.decide(&q).allowed());
                }
            }
        }
        out
    };
    let before = decisions(all.clone());
    assert!(before.iter().any(|a| *a) && before.iter().any(|a| !*a));
    for (name, path) in shadowed {
        let mut kept = all.clone();
        kept.entries.retain(|e| {
            !(e.origin.name == name
                && (e.origin.path == path || e.origin.path.starts_with(&format!("{path}."))))
        });
        assert!(kept.entries.len() < all.entries.len(), "{name} {path}");
        assert_eq!(decisions(kept), before, "dropping {name} {path}");
    }
    // The covering item does matter.
    let mut kept = all.clone();
    kept.entries
        .retain(|e| !(e.origin.name == "api" && e.origin.path.starts_with("spec.ingress[0]")));
    assert_ne!(decisions(kept), before);
}
