//! The deployment in `flow-observer/deploy`: the alert rules pass `promtool check rules` and
//! their `promtool test rules` cases, the PrometheusRule carries the same rules, the DaemonSet
//! is not privileged and only has the capabilities it needs, its probes ask for readiness and
//! liveness apart, RBAC is read-only, and the
//! observer's own CiliumNetworkPolicy is exactly what `netpol compile` makes of its profile.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use netpol_compiler::document::files::Memory;
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str_multiple(&text).unwrap()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("alerts"))
        .output()
        .expect("promtool (Debian package `prometheus`, installed by `cargo xtask setup`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let rules = yaml(&deploy().join("alerts/netpol.rules.yaml"));
    let alerts: Vec<&str> = rules[0]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    let checked = promtool(&["check", "rules", "netpol.rules.yaml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{checked}"
    );
    // Every alert has a case where it fires and one where it does not.
    let tests = yaml(&deploy().join("alerts/netpol.rules.test.yaml"));
    let cases: Vec<&Value> = tests[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    for alert in &alerts {
        let fires = |yes: bool| {
            cases.iter().any(|c| {
                c["alertname"].as_str() == Some(alert)
                    && c["exp_alerts"].as_array().unwrap().is_empty() != yes
            })
        };
        assert!(
            fires(true) && fires(false),
            "{alert} lacks a case that fires and one that does not"
        );
    }
    let tested = promtool(&["test", "rules", "netpol.rules.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn prometheus_rule_carries_the_same_rules() {
    let rules = yaml(&deploy().join("alerts/netpol.rules.yaml"));
    let crd = yaml(&deploy().join("components/monitoring/prometheusrule.yaml"));
    assert_eq!(crd[0]["kind"], "PrometheusRule");
    assert_eq!(crd[0]["spec"]["groups"], rules[0]["groups"]);
    let names: Vec<&str> = rules[0]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "NetpolWouldDrop",
            "NetpolObserverLosingEvents",
            "NetpolObserverEvictingRecords",
            "NetpolObserverTablesFull",
            "NetpolObserverIdentityStale",
            "NetpolObserverNotReady"
        ]
    );
    let alert = &rules[0]["groups"][0]["rules"][0];
    assert!(
        alert["expr"]
            .as_str()
            .unwrap()
            .contains("netpol_flow_verdicts_total")
    );
}

#[test]
fn daemonset_is_not_privileged_and_has_only_the_capabilities_it_needs() {
    let ds = &yaml(&deploy().join("daemonset.yaml"))[0];
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["BPF", "PERFMON", "NET_ADMIN", "SYS_RESOURCE"])
    );
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], Value::Null);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--cgroup=/host/sys/fs/cgroup"));
    assert_eq!(c["ports"][0]["containerPort"], 9965);
}

/// Readiness waits for the first sync (`/readyz`); liveness is only that the process serves
/// (`/healthz`): a watch that fails must not get the agent restarted.
#[test]
fn daemonset_probes_readiness_and_liveness_apart() {
    let ds = &yaml(&deploy().join("daemonset.yaml"))[0];
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            c[probe]["httpGet"]["port"], c["ports"][0]["name"],
            "{probe}"
        );
    }
}

#[test]
fn rbac_is_read_only() {
    for doc in yaml(&deploy().join("rbac.yaml")) {
        if doc["kind"] == "ClusterRole" {
            for rule in doc["rules"].as_array().unwrap() {
                assert_eq!(
                    rule["verbs"],
                    serde_json::json!(["get", "list", "watch"]),
                    "{rule}"
                );
            }
        }
    }
}

#[test]
fn observer_policy_is_the_compiled_profile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    // The profiles and the catalog they include.
    for dir in ["profiles", "catalog"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                files.push((
                    PathBuf::from(dir).join(path.file_name().unwrap()),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    let c =
        netpol_compiler::profile::compile_paths(&Memory::new(files), &[PathBuf::from("profiles")]);
    assert!(!c.diagnostics.has_errors(), "{:?}", c.diagnostics);
    let out = netpol_compiler::profile::emit::files(
        &c.objects.unwrap(),
        netpol_compiler::profile::emit::Format::Yaml,
    )
    .unwrap();
    let (_, compiled) = out
        .iter()
        .find(|(path, _)| path == "netpol-observer/netpol-observer.yaml")
        .expect("profiles/netpol-observer.yaml compiles to netpol-observer/netpol-observer.yaml");
    let deployed = std::fs::read_to_string(deploy().join("cilium-network-policy.yaml")).unwrap();
    assert_eq!(
        &deployed, compiled,
        "regenerate: cargo run --bin netpol -- compile profiles -o out && cp out/netpol-observer/netpol-observer.yaml flow-observer/deploy/cilium-network-policy.yaml"
    );
}

#[test]
fn kustomization_lists_every_manifest_and_the_dashboard_is_valid() {
    let k = &yaml(&deploy().join("kustomization.yaml"))[0];
    for r in k["resources"].as_array().unwrap() {
        let path = deploy().join(r.as_str().unwrap());
        assert!(path.exists(), "{r}");
        // The base applies on a cluster without the Prometheus operator's CRDs.
        for doc in yaml(&path) {
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            assert!(!api.starts_with("monitoring.coreos.com"), "{r}: {api}");
        }
    }
    // The image can be overridden (`kustomize edit set image`): the entry names the image the
    // DaemonSet uses.
    let ds = &yaml(&deploy().join("daemonset.yaml"))[0];
    let image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    let entry = &k["images"][0];
    assert_eq!(
        format!(
            "{}:{}",
            entry["name"].as_str().unwrap(),
            entry["newTag"].as_str().unwrap()
        ),
        image
    );
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/netpol-observer.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["targets"][0]["expr"].as_str().unwrap())
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("netpol_flow_verdicts_total{verdict=\"denied\"}"))
    );
}

#[test]
fn monitoring_is_an_optional_component_that_scrapes_the_agents() {
    let dir = deploy().join("components/monitoring");
    let k = &yaml(&dir.join("kustomization.yaml"))[0];
    assert_eq!(k["kind"], "Component");
    let mut kinds = Vec::new();
    for r in k["resources"].as_array().unwrap() {
        for doc in yaml(&dir.join(r.as_str().unwrap())) {
            kinds.push(doc["kind"].as_str().unwrap().to_owned());
            if doc["kind"] == "PodMonitor" {
                let ds = &yaml(&deploy().join("daemonset.yaml"))[0];
                let pod = &ds["spec"]["template"];
                assert_eq!(
                    doc["spec"]["selector"]["matchLabels"],
                    pod["metadata"]["labels"]
                );
                assert_eq!(
                    doc["spec"]["podMetricsEndpoints"][0]["port"],
                    pod["spec"]["containers"][0]["ports"][0]["name"]
                );
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["PodMonitor", "PrometheusRule"]);
}

/// Talos enforces `baseline` and warns and audits at `restricted` by default: the namespace
/// sets all three modes to `privileged`, or the DaemonSet is refused (or warned about).
#[test]
fn namespace_admits_the_agent_under_pod_security() {
    let ns = &yaml(&deploy().join("namespace.yaml"))[0];
    for mode in ["enforce", "warn", "audit"] {
        assert_eq!(
            ns["metadata"]["labels"][format!("pod-security.kubernetes.io/{mode}")],
            "privileged",
            "{mode}"
        );
    }
}

/// The image's build context is the repository: build outputs stay out of it.
#[test]
fn docker_context_leaves_build_outputs_out() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for pattern in ["target", "**/target", ".git"] {
        assert!(
            lines.contains(&pattern),
            "{pattern} missing from .dockerignore"
        );
    }
}
