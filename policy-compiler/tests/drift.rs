//! `netpol drift` as users run it: the unused rules, the undeclared flows and the window, in
//! every format, on the fixture of `suggest` (`tests/fixtures/suggest`).

#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suggest")
}

fn netpol(dir: &Path, args: &[&str]) -> std::process::Output {
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
fn drift_reports_snapshot() {
    let dir = fixture();
    let run = |format: &str| {
        shown(&netpol(
            &dir,
            &[
                "drift",
                "--flows",
                "flows.jsonl",
                "--profiles",
                "profiles",
                "--format",
                format,
            ],
        ))
    };
    insta::assert_snapshot!("drift_text", run("text"));
    insta::assert_snapshot!("drift_markdown", run("markdown"));
    insta::assert_snapshot!("drift_json", run("json"));
}

#[test]
fn no_drift_exits_0_and_bad_input_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/a.yaml"),
        "namespace: a\ndns: false\nservices:\n  w0:\n    select: {app: w0}\n    allow:\n      - to: w1\n        port: 80\n  w1:\n    select: {app: w1}\n",
    )
    .unwrap();
    let pod = |name: &str, ip: &str| {
        format!(r#"{{"ip":"{ip}","namespace":"a","pod":"{name}-0","labels":{{"app":"{name}"}}}}"#)
    };
    let flow = format!(
        r#"{{"time":"2026-01-01T00:00:00Z","protocol":"tcp","source":{},"destination":{}}}"#,
        pod("w0", "10.0.0.1"),
        pod("w1", "10.0.0.2").replace("}}", "},\"port\":80}")
    );
    // Without the kubelet's rule (`allow-localhost` lets probes in before any rule), the
    // statement's two rules are all there is, and the flow uses both.
    std::fs::write(
        dir.path().join("profiles/cluster.yaml"),
        "cluster:\n  kubelet: false\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("flows.jsonl"), format!("{flow}\n")).unwrap();
    let out = netpol(
        dir.path(),
        &["drift", "--flows", "flows.jsonl", "--profiles", "profiles"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    std::fs::write(dir.path().join("flows.jsonl"), "not json\n").unwrap();
    let out = netpol(
        dir.path(),
        &["drift", "--flows", "flows.jsonl", "--profiles", "profiles"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(out.stdout.is_empty());
    let out = netpol(dir.path(), &["drift", "--flows", "flows.jsonl"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--policies or --profiles is required"
    );
}
