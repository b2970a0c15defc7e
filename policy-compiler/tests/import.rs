//! Importing policies: what the CRD schema and Cilium's sanitize checks reject
//! (docs/semantics.md §1), each asserted precisely — message, help and the underlined text —
//! and what is accepted, counted or skipped.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::path::PathBuf;

use netpol_compiler::diagnostic::{Diagnostic, Severity};
use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::policy::{self, Imported};
use netpol_compiler::engine::settings::Settings;

fn import(files: &[(&str, &str)]) -> Imported {
    let fs = Memory::new(
        files
            .iter()
            .map(|(p, t)| (PathBuf::from(*p), (*t).to_owned())),
    );
    policy::import(&fs, &[PathBuf::from("p")])
}

fn underlined(imported: &Imported, d: &Diagnostic) -> String {
    let span = d.span.unwrap();
    imported
        .sources
        .get(span.source)
        .unwrap()
        .slice(span)
        .to_owned()
}

/// One invalid object: exactly one error, at `text`, with `message`; the object is rejected.
fn rejects(yaml: &str, message: &str, text: &str) {
    let imported = import(&[("p/x.yaml", yaml)]);
    let errors: Vec<&Diagnostic> = imported
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert_eq!(errors.len(), 1, "{yaml}\n{errors:#?}");
    let d = errors[0];
    assert_eq!(d.message, message, "{yaml}");
    assert_eq!(underlined(&imported, d), text, "{yaml}");
    assert!(d.help.is_some(), "every error has a hint");
    assert!(
        imported.set.policies.is_empty(),
        "the object contributes nothing"
    );
    assert_eq!(imported.set.stats.rejected, 1);
}

fn cnp(spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: t\n  namespace: ns\nspec:\n{spec}"
    )
}

#[test]
fn sanitize_two_peer_fields_in_one_item() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  egress:\n    - toEndpoints: [{}]\n      toFQDNs: [{matchName: a.com}]\n",
        ),
        "combining `toEndpoints` and `toFQDNs` is not supported yet",
        "toFQDNs",
    );
}

#[test]
fn sanitize_rule_without_sections() {
    rejects(
        &cnp("  endpointSelector: {}\n  ingress: []\n"),
        "rule must have at least one of `ingress`, `ingressDeny`, `egress`, `egressDeny`",
        "endpointSelector: {}\n  ingress: []",
    );
}

#[test]
fn sanitize_both_selectors_and_node_selector_in_cnp() {
    let imported = import(&[(
        "p/x.yaml",
        &cnp("  endpointSelector: {}\n  nodeSelector: {}\n  ingress: [{}]\n"),
    )]);
    let messages: Vec<&str> = imported
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "`endpointSelector` and `nodeSelector` cannot both be set",
            "a CiliumNetworkPolicy cannot have `nodeSelector`"
        ]
    );
}

#[test]
fn sanitize_icmps_with_to_ports() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  ingress:\n    - icmps: [{fields: [{type: 8}]}]\n      toPorts: [{ports: [{port: \"80\"}]}]\n",
        ),
        "the `icmps` block may only be present without `toPorts`",
        "icmps",
    );
}

#[test]
fn sanitize_dns_rules_on_ingress() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  ingress:\n    - toPorts:\n        - ports: [{port: \"53\", protocol: UDP}]\n          rules: {dns: [{matchPattern: \"*\"}]}\n",
        ),
        "DNS rules are not allowed on ingress",
        "dns",
    );
}

#[test]
fn sanitize_http_rules_need_tcp() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  ingress:\n    - toPorts:\n        - ports: [{port: \"80\", protocol: ANY}]\n          rules: {http: [{method: GET}]}\n",
        ),
        "L7 rules can only apply to TCP (not ANY) except for DNS rules",
        "ANY",
    );
}

#[test]
fn sanitize_dns_rule_with_port_range() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  egress:\n    - toPorts:\n        - ports: [{port: \"53\", endPort: 54, protocol: UDP}]\n          rules: {dns: [{matchPattern: \"*\"}]}\n",
        ),
        "DNS rules cannot use a port range",
        "54",
    );
}

#[test]
fn sanitize_except_outside_cidr() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  egress:\n    - toCIDRSet: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]\n",
        ),
        "`192.168.0.0/16` is not inside `10.0.0.0/8`",
        "192.168.0.0/16",
    );
}

#[test]
fn schema_cidr_needs_a_prefix() {
    rejects(
        &cnp("  endpointSelector: {}\n  egress:\n    - toCIDR: [10.0.0.1]\n"),
        "invalid CIDR `10.0.0.1`",
        "10.0.0.1",
    );
}

#[test]
fn sanitize_too_many_ports() {
    let ports: Vec<String> = (1..=41).map(|p| format!("{{port: \"{p}\"}}")).collect();
    rejects(
        &cnp(&format!(
            "  endpointSelector: {{}}\n  ingress:\n    - toPorts: [{{ports: [{}]}}]\n",
            ports.join(", ")
        )),
        "41 ports, at most 40 are allowed",
        &format!("[{}]", ports.join(", ")),
    );
}

#[test]
fn sanitize_match_expression_values() {
    rejects(
        &cnp(
            "  endpointSelector:\n    matchExpressions: [{key: app, operator: In}]\n  ingress: [{}]\n",
        ),
        "operator `In` needs `values`",
        "{key: app, operator: In}",
    );
}

#[test]
fn sanitize_fqdn_selector_needs_one_field() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  egress:\n    - toFQDNs: [{matchName: a.com, matchPattern: \"*.a.com\"}]\n",
        ),
        "a DNS selector needs exactly one of `matchName` and `matchPattern`",
        "{matchName: a.com, matchPattern: \"*.a.com\"}",
    );
}

#[test]
fn sanitize_icmp_name_of_the_wrong_family() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  ingress:\n    - icmps: [{fields: [{type: PacketTooBig}]}]\n",
        ),
        "unknown ICMP type name `PacketTooBig` for this family",
        "PacketTooBig",
    );
}

#[test]
fn schema_wrong_types_and_enums_point_at_the_value() {
    rejects(
        &cnp("  endpointSelector: {}\n  ingress:\n    - toPorts: [{ports: [{port: 80}]}]\n"),
        "expected a string, found the number `80`",
        "80",
    );
    rejects(
        &cnp("  endpointSelector: {}\n  egress:\n    - toEntities: [wrold]\n"),
        "unknown value `wrold`",
        "wrold",
    );
    rejects(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nspec: {endpointSelector: {}, ingress: [{}]}\n",
        "missing required field `metadata`",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nspec: {endpointSelector: {}, ingress: [{}]}",
    );
}

#[test]
fn knp_validation() {
    let knp = |spec: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: t, namespace: ns}}\nspec:\n{spec}"
        )
    };
    rejects(
        &knp(
            "  podSelector: {}\n  ingress:\n    - from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]\n",
        ),
        "`ipBlock` cannot be combined with `podSelector` or `namespaceSelector`",
        "{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}",
    );
    rejects(
        &knp("  podSelector: {}\n  ingress:\n    - ports: [{port: http, endPort: 90}]\n"),
        "`endPort` needs a numeric `port` not above it (and at most 65535)",
        "90",
    );
    rejects(
        &knp("  podSelector: {}\n  egress:\n    - ports: [{protocol: ICMP}]\n"),
        "unsupported protocol `ICMP`",
        "ICMP",
    );
}

/// `kubectl apply` (strict field validation, its default) refuses an object with an unknown
/// field: the object never reaches the cluster, so it contributes no rule.
#[test]
fn unknown_fields_are_errors_and_the_object_is_refused_like_the_api_server() {
    let imported = import(&[(
        "p/x.yaml",
        &cnp(
            "  endpointSelector: {}\n  ingress:\n    - fromEndpoints: [{}]\n      auth: {type: spire}\n      toPort: []\n",
        ),
    )]);
    let all: Vec<&Diagnostic> = imported.diagnostics.iter().collect();
    assert_eq!(all.len(), 2, "every unknown field is reported");
    assert!(all.iter().all(|d| d.severity == Severity::Error));
    assert_eq!(all[0].message, "unknown field `auth`");
    assert_eq!(underlined(&imported, all[0]), "auth");
    assert_eq!(all[1].message, "unknown field `toPort`");
    assert!(
        all[1]
            .help
            .as_deref()
            .unwrap()
            .starts_with("did you mean `toPorts`?"),
        "{:?}",
        all[1].help
    );
    assert!(imported.set.policies.is_empty());
    assert_eq!(imported.set.stats.rejected, 1);
}

#[test]
fn lists_json_other_kinds_and_several_errors_at_once() {
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
      {"apiVersion":"cilium.io/v2","kind":"CiliumClusterwideNetworkPolicy","metadata":{"name":"a"},"spec":{"endpointSelector":{},"ingress":[{"fromEntities":["cluster"]}]}},
      {"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}]}"#;
    let typed = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n  - metadata: {name: k, namespace: ns}\n    spec: {podSelector: {}}\n";
    let broken = format!(
        "{}---\n{}",
        cnp("  endpointSelector: {}\n  ingress: []\n"),
        cnp("  endpointSelector: {}\n  egress:\n    - toCIDR: [nope]\n")
    );
    let imported = import(&[
        ("p/list.json", list),
        ("p/typed.yaml", typed),
        ("p/broken.yaml", &broken),
        (
            "p/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        ),
        ("p/notes.txt", "not a policy"),
    ]);
    let stats = &imported.set.stats;
    assert_eq!(stats.files, 4, "only .yaml/.yml/.json files are read");
    assert_eq!(
        stats.accepted.get("CiliumClusterwideNetworkPolicy"),
        Some(&1)
    );
    assert_eq!(stats.accepted.get("NetworkPolicy"), Some(&1));
    assert_eq!(stats.rejected, 2, "both broken objects are reported");
    // Workload manifests and Services are kept as the universe, not policies.
    assert_eq!(stats.manifests.get("Service"), Some(&1));
    assert_eq!(stats.manifests.get("Deployment"), Some(&1));
    assert!(stats.ignored.is_empty(), "{:?}", stats.ignored);
    let kinds: Vec<&str> = imported
        .set
        .manifests
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    assert_eq!(imported.diagnostics.error_count(), 2);
}

#[test]
fn the_last_definition_of_a_policy_wins() {
    let a = cnp("  endpointSelector: {}\n  ingress: [{}]\n");
    let b = cnp("  endpointSelector: {}\n  egress: [{}]\n");
    let imported = import(&[("p/a.yaml", &a), ("p/b.yaml", &b)]);
    assert_eq!(imported.set.policies.len(), 1);
    assert!(
        imported.set.policies[0]
            .node
            .get("spec")
            .unwrap()
            .get("egress")
            .is_some()
    );
    assert_eq!(imported.diagnostics.warning_count(), 1);
}

#[test]
fn cidr_groups_resolve_by_name_and_selector() {
    use netpol_compiler::engine::entry::{self, L3, PeerMatch};
    let yaml = "apiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {name: office, labels: {site: hq}}\nspec:\n  externalCIDRs: [203.0.113.0/24]\n---\n";
    let imported = import(&[(
        "p/x.yaml",
        &format!(
            "{yaml}{}",
            cnp(
                "  endpointSelector: {}\n  egress:\n    - toCIDRSet: [{cidrGroupRef: office}, {cidrGroupSelector: {matchLabels: {site: hq}}}, {cidrGroupRef: nope}]\n"
            )
        ),
    )]);
    assert!(!imported.diagnostics.has_errors());
    let entries = entry::build(&imported.set, None, &Settings::default());
    let L3::Peers(peers) = &entries.entries[0].l3 else {
        panic!("peers")
    };
    let nets: Vec<String> = peers
        .iter()
        .map(|p| match p {
            PeerMatch::Cidr { net, .. } => net.to_string(),
            PeerMatch::Unresolved(why) => why.clone(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        nets,
        [
            "203.0.113.0/24",
            "203.0.113.0/24",
            "CiliumCIDRGroup `nope` is not among the imported objects"
        ]
    );
}

#[test]
fn schema_patterns_of_server_names_cidr_groups_and_headers() {
    rejects(
        &cnp(
            "  endpointSelector: {}\n  egress:\n    - toPorts: [{ports: [{port: \"443\", protocol: TCP}], serverNames: [\"bad name\"]}]\n",
        ),
        "invalid server name `bad name`",
        "\"bad name\"",
    );
    rejects(
        &cnp("  endpointSelector: {}\n  egress:\n    - toCIDRSet: [{cidrGroupRef: Office_LAN}]\n"),
        "invalid CiliumCIDRGroup name `Office_LAN`",
        "Office_LAN",
    );
    rejects(
        &cnp(
            "  endpointSelector: {}\n  ingress:\n    - toPorts: [{ports: [{port: \"80\", protocol: TCP}], rules: {http: [{headerMatches: [{name: \"\"}]}]}}]\n",
        ),
        "a header match needs a `name`",
        "{name: \"\"}",
    );
}

/// HTTP `path` and `method` must compile as regular expressions, or the agent rejects the
/// policy (cilium/cilium pkg/policy/api/http.go, `PortRuleHTTP.Sanitize`); `host` is not
/// checked by Cilium.
#[test]
fn http_path_and_method_must_be_regular_expressions() {
    let imported = import(&[(
        "p/x.yaml",
        &cnp(
            "  endpointSelector: {}\n  ingress:\n    - toPorts:\n        - ports: [{port: \"80\", protocol: TCP}]\n          rules:\n            http:\n              - {method: \"GE(T\", path: \"/api/[a-z\"}\n              - {method: GET, path: \"/ok/.*\", host: \"(\"}\n",
        ),
    )]);
    let errors: Vec<&Diagnostic> = imported
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`path` is not a valid regular expression: missing closing ]: `[a-z`",
            "`method` is not a valid regular expression: missing closing ): `GE(T`",
        ]
    );
    assert_eq!(underlined(&imported, errors[0]), "\"/api/[a-z\"");
    assert_eq!(imported.set.stats.rejected, 1);
}

/// One invalid object: exactly one error, at `text`, with `message` and a help that starts with
/// `help`; the object is rejected.
fn rejects_with(yaml: &str, message: &str, help: &str, text: &str) {
    rejects(yaml, message, text);
    let imported = import(&[("p/x.yaml", yaml)]);
    let d = imported.diagnostics.iter().find(|d| d.is_error()).unwrap();
    let got = d.help.as_deref().unwrap();
    assert!(got.starts_with(help), "{yaml}\nhelp: {got}");
}

/// Every error of one invalid object, in order: (message, underlined text).
fn errors_of(yaml: &str) -> Vec<(String, String)> {
    let imported = import(&[("p/x.yaml", yaml)]);
    assert!(imported.set.policies.is_empty(), "{yaml}");
    imported
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.message.clone(), underlined(&imported, d)))
        .collect()
}

/// A valid object: no error, accepted.
fn accepts(yaml: &str) -> Imported {
    let imported = import(&[("p/x.yaml", yaml)]);
    let errors: Vec<&Diagnostic> = imported
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "{yaml}\n{errors:#?}");
    assert_eq!(imported.set.policies.len(), 1, "{yaml}");
    imported
}

fn egress_port(rules: &str) -> String {
    cnp(&format!(
        "  endpointSelector: {{}}\n  egress:\n    - toPorts:\n        - ports: [{{port: \"80\", protocol: TCP}}]\n{rules}"
    ))
}

/// `rules: {}` names no L7 protocol: the CRD's `oneOf` on `rules` (http, kafka, dns, l7proto)
/// finds none valid (cilium/cilium@507103c6 pkg/policy/api/l4.go:281-314, `L7Rules`).
#[test]
fn crd_rules_naming_no_protocol() {
    rejects_with(
        &egress_port("          rules: {}\n"),
        "`rules` names no L7 protocol",
        "set one of `http`, `kafka`, `dns` or `l7proto`, or remove `rules`",
        "rules",
    );
}

/// Kafka rules: `role` with `apiKey`, an API key not in `APIKeyMap` (numbers included), an
/// `apiVersion` that `strconv.ParseInt(v, 10, 16)` refuses or that is negative, a topic over
/// 255 characters or outside `[a-zA-Z0-9\\._\\-]` (cilium/proxy pkg/policy/api/kafka/kafka.go
/// `PortRule.Sanitize`, vendored in cilium/cilium@507103c6). All errors are reported.
#[test]
fn sanitize_kafka_rules() {
    let long = "t".repeat(256);
    let yaml = egress_port(&format!(
        "          rules:\n            kafka:\n              - {{role: produce, apiKey: fetch}}\n              - {{apiKey: \"0\"}}\n              - {{apiKey: producer}}\n              - {{apiVersion: \"-1\"}}\n              - {{apiVersion: \"32768\"}}\n              - {{topic: \"a b\"}}\n              - {{topic: {long}}}\n"
    ));
    let errors = errors_of(&yaml);
    let expected: Vec<(String, String)> = [
        ("`role` and `apiKey` cannot both be set", "apiKey"),
        ("unknown Kafka API key `0`", "\"0\""),
        ("unknown Kafka API key `producer`", "producer"),
        ("invalid Kafka `apiVersion` `-1`", "\"-1\""),
        ("invalid Kafka `apiVersion` `32768`", "\"32768\""),
        ("invalid Kafka topic `a b`", "\"a b\""),
        (
            "the Kafka topic is longer than 255 characters",
            long.as_str(),
        ),
    ]
    .iter()
    .map(|(m, t)| ((*m).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(errors, expected);
    rejects_with(
        &egress_port("          rules: {kafka: [{apiKey: \"1\"}]}\n"),
        "unknown Kafka API key `1`",
        "use an API key name such as `produce`, `fetch` or `metadata`",
        "\"1\"",
    );
}

/// What Kafka's `Sanitize` lets through: API key names in any case, `+7` (`ParseInt` takes a
/// sign), a topic with `\` (the raw string `[a-zA-Z0-9\\._\\-]` holds a backslash), and any
/// `clientID`, which is not checked.
#[test]
fn sanitize_kafka_rules_accepted() {
    accepts(&egress_port(
        "          rules:\n            kafka:\n              - {apiKey: FETCH, apiVersion: \"+7\", topic: 'a\\b.c_d-e', clientID: \"any thing\"}\n              - {role: consume, topic: orders}\n",
    ));
}

/// `serverNames` is a set (`+listType=set`, the API server refuses a "Duplicate value"), has
/// `minItems: 1` with or without `rules`, and each name matches
/// `^(\*?\*\.)?([-a-zA-Z0-9_]+\.?)+$`: one trailing dot at most (cilium/cilium@507103c6
/// pkg/policy/api/l4.go:186-227).
#[test]
fn crd_server_names() {
    let tls = "  endpointSelector: {}\n  egress:\n    - toPorts:\n        - ports: [{port: \"443\", protocol: TCP}]\n";
    rejects_with(
        &cnp(&format!(
            "{tls}          serverNames: [a.com, b.com, a.com]\n"
        )),
        "duplicate server name `a.com`",
        "`serverNames` is a set: list each name once",
        "a.com",
    );
    rejects_with(
        &cnp(&format!(
            "{tls}          serverNames: []\n          terminatingTLS: {{secret: {{name: s}}}}\n          rules: {{http: [{{method: GET}}]}}\n"
        )),
        "empty `serverNames`",
        "list at least one server name, or remove `serverNames`",
        "[]",
    );
    rejects_with(
        &cnp(&format!("{tls}          serverNames: [\"a.com..\"]\n")),
        "invalid server name `a.com..`",
        "a TLS server name is a DNS name",
        "\"a.com..\"",
    );
    accepts(&cnp(&format!(
        "{tls}          serverNames: [\"a.com.\", \"*.b.com\", \"**.c.com\"]\n"
    )));
}

/// `matchName` and `matchPattern` match `^([-a-zA-Z0-9_]+[.]?)+$` (with `*` for patterns):
/// at most one trailing dot, not empty, not `.` (cilium/cilium@507103c6 pkg/policy/api/fqdn.go,
/// the markers of `FQDNSelector`).
#[test]
fn crd_fqdn_trailing_dots_and_empty_patterns() {
    let fqdn = |sel: &str| {
        cnp(&format!(
            "  endpointSelector: {{}}\n  egress:\n    - toFQDNs: [{sel}]\n"
        ))
    };
    rejects_with(
        &fqdn("{matchName: \"a.com..\"}"),
        "invalid DNS name `a.com..`",
        "letters, digits, `-` and `_` between single dots, at most one trailing dot",
        "\"a.com..\"",
    );
    rejects_with(
        &fqdn("{matchPattern: \"\"}"),
        "invalid DNS pattern ``",
        "letters, digits, `-`, `_` and `*` between single dots",
        "\"\"",
    );
    rejects_with(
        &fqdn("{matchPattern: \".\"}"),
        "invalid DNS pattern `.`",
        "letters, digits, `-`, `_` and `*` between single dots",
        "\".\"",
    );
    accepts(&fqdn(
        "{matchName: \"a.com.\"}, {matchPattern: \"*.\"}, {matchPattern: \"*\"}",
    ));
}

/// Cilium validates selector keys as `<source>.<key>` (`any.` without a source) with
/// `ValidateLabelSelector`, `matchExpressions` keys and values included
/// (cilium/cilium@507103c6 pkg/policy/api/selector.go:280-300, pkg/labels/labels.go:520-537):
/// `_foo` is `any._foo`, valid; a 60-character key is `any.` + 60 = 64, too long; `k8s:` alone
/// is `k8s.`, invalid.
#[test]
fn sanitize_selector_keys_with_their_source() {
    let sel = |s: &str| cnp(&format!("  endpointSelector:\n{s}  ingress: [{{}}]\n"));
    let long = "a".repeat(60);
    rejects_with(
        &sel(&format!("    matchLabels: {{{long}: x}}\n")),
        &format!("invalid label key `{long}`"),
        "a key is `[source:][prefix/]name`; Cilium checks `<source>.<key>`",
        "matchLabels",
    );
    rejects_with(
        &sel("    matchExpressions: [{key: \"k8s:\", operator: Exists}]\n"),
        "invalid label key `k8s:`",
        "a key is `[source:][prefix/]name`",
        "\"k8s:\"",
    );
    rejects_with(
        &sel("    matchExpressions: [{key: app, operator: In, values: [\"bad value\"]}]\n"),
        "invalid label value `bad value`",
        "label values have at most 63 characters",
        "\"bad value\"",
    );
    accepts(&sel(&format!(
        "    matchLabels: {{_foo: x, \"k8s:{}\": y}}\n    matchExpressions: [{{key: \"-bar\", operator: Exists}}]\n",
        "b".repeat(59)
    )));
}

/// A NetworkPolicy's selector keys are checked as written by the API server
/// (`ValidateLabelSelector` in k8s.io/kubernetes pkg/apis/networking/validation): a Cilium
/// source prefix is not a valid key there.
#[test]
fn knp_selector_keys_are_kubernetes_keys() {
    rejects_with(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: t, namespace: ns}\nspec:\n  podSelector: {matchLabels: {\"k8s:app\": x}}\n",
        "invalid label key `k8s:app`",
        "a key is `[prefix/]name`",
        "matchLabels",
    );
}

/// The API server checks `metadata`: a custom resource's or NetworkPolicy's name is a DNS
/// subdomain (`NameIsDNSSubdomain`: k8s.io/apiextensions-apiserver customresource validator,
/// `ValidateNetworkPolicyName`), a namespace a DNS label (`ValidateNamespaceName`).
#[test]
fn api_server_names_and_namespaces() {
    rejects_with(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: Allow_All, namespace: ns}\nspec: {endpointSelector: {}, ingress: [{}]}\n",
        "invalid CiliumNetworkPolicy name `Allow_All`",
        "a name is lowercase letters, digits, `-` and `.`",
        "Allow_All",
    );
    rejects_with(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: t, namespace: my.ns}\nspec: {endpointSelector: {}, ingress: [{}]}\n",
        "invalid namespace `my.ns`",
        "a namespace is lowercase letters, digits and `-`",
        "my.ns",
    );
    rejects_with(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: -t, namespace: ns}\nspec: {podSelector: {}}\n",
        "invalid NetworkPolicy name `-t`",
        "a name is lowercase letters",
        "-t",
    );
    accepts(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: a.b-c}\nspec: {endpointSelector: {}, ingress: [{}]}\n",
    );
}

/// `headerMatches[].secret` needs a name ("Secret name missing", cilium/cilium@507103c6
/// pkg/policy/api/http.go:148-150).
#[test]
fn sanitize_header_match_secret_name() {
    rejects_with(
        &egress_port(
            "          rules: {http: [{headerMatches: [{name: X-Token, secret: {name: \"\"}}]}]}\n",
        ),
        "a header match's `secret` needs a `name`",
        "name the Kubernetes Secret",
        "\"\"",
    );
}

/// `l7` rules: a key may not be empty ("Empty key not allowed", pkg/policy/api/l7.go:21-29),
/// and `l7proto: ""` is as if absent (`pr.L7 != nil && pr.L7Proto == ""`,
/// pkg/policy/api/rule_validation.go `L7Rules.sanitize`).
#[test]
fn sanitize_l7_keys_and_empty_l7proto() {
    rejects_with(
        &egress_port("          rules: {l7proto: myproto, l7: [{\"\": x}]}\n"),
        "an `l7` rule has an empty key",
        "give every key/value pair of an `l7` rule a key",
        "{\"\": x}",
    );
    rejects_with(
        &egress_port("          rules: {l7proto: \"\", l7: [{a: b}]}\n"),
        "`l7` requires `l7proto`",
        "name the proxylib parser in `l7proto`",
        "l7",
    );
}

/// `log.value` matches the CRD's `^\PC*$`: no character of Unicode's "Other" categories,
/// format characters such as U+200B included, not only control characters.
#[test]
fn crd_log_value_has_no_other_characters() {
    rejects_with(
        &cnp("  endpointSelector: {}\n  ingress: [{}]\n  log: {value: \"a\\u200bb\"}\n"),
        "`log.value` `a\\u{200b}b` is longer than 32 characters or not printable",
        "use at most 32 printable characters",
        "\"a\\u200bb\"",
    );
}

/// HTTP `path` and `method` are Go regular expressions (`regexp.Compile`, pkg/policy/api/
/// http.go:121-134): a `{` that starts no repeat count is a literal and `\Q…\E` quotes, so
/// `/api/{id}` is valid; stacked repetitions and counts above 1000 are not.
#[test]
fn http_regexes_follow_go() {
    accepts(&egress_port(
        "          rules: {http: [{path: \"/api/{id}\", method: \"GET|POST\"}, {path: '/files/\\Q*.txt\\E'}]}\n",
    ));
    rejects_with(
        &egress_port("          rules: {http: [{path: \"/.*+\"}]}\n"),
        "`path` is not a valid regular expression: invalid nested repetition operator: `*+`",
        "Cilium compiles `path` and `method` as Go (RE2) regular expressions",
        "\"/.*+\"",
    );
    rejects_with(
        &egress_port("          rules: {http: [{path: \"/a{1001}\"}]}\n"),
        "`path` is not a valid regular expression: invalid repeat count: `{1001}`",
        "Cilium compiles `path` and `method`",
        "\"/a{1001}\"",
    );
}

/// A quoted ICMP type number is the number: `IntValue()` parses strings, and only non-numbers
/// are looked up as names (cilium/cilium@507103c6 pkg/policy/api/icmp.go:124-154); the CRD's
/// pattern admits 0–255 without leading zeros, and lists `ExtendedEcho Reply` with a space.
#[test]
fn icmp_quoted_numbers() {
    use netpol_compiler::objects::cilium::IcmpType;
    let icmp = |t: &str| {
        cnp(&format!(
            "  endpointSelector: {{}}\n  ingress:\n    - icmps: [{{fields: [{{type: {t}}}]}}]\n"
        ))
    };
    let imported = accepts(&icmp("\"8\""));
    let policy::Body::Cilium(rules) = &imported.set.policies[0].body else {
        panic!("cilium")
    };
    let field = &rules[0].0.ingress.as_ref().unwrap()[0]
        .icmps
        .as_ref()
        .unwrap()[0]
        .fields
        .as_ref()
        .unwrap()[0];
    assert_eq!(field.icmp_type, IcmpType::Number(8));
    rejects_with(
        &icmp("\"08\""),
        "invalid ICMP type `08`",
        "write a number from 0 to 255 without leading zeros",
        "\"08\"",
    );
    rejects_with(
        &icmp("ExtendedEchoReply"),
        "the CRD does not accept the ICMP type name `ExtendedEchoReply`",
        "write the number instead",
        "ExtendedEchoReply",
    );
}

/// `toServices` items with both `k8sService` and `k8sServiceSelector`, or neither, are
/// accepted: the agent uses the selector when set, and an item with neither matches no
/// Service (cilium/cilium@507103c6 pkg/policy/k8s/service.go:300-314, 439-469).
#[test]
fn to_services_with_both_or_neither() {
    use netpol_compiler::engine::entry::{self, L3, PeerMatch};
    let imported = accepts(&cnp(
        "  endpointSelector: {}\n  egress:\n    - toServices:\n        - {}\n        - {k8sService: {serviceName: a}, k8sServiceSelector: {selector: {matchLabels: {x: y}}}}\n",
    ));
    let warnings: Vec<&str> = imported
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "this `toServices` item names no Service and matches nothing",
            "`k8sService` is ignored beside `k8sServiceSelector`"
        ]
    );
    let entries = entry::build(&imported.set, None, &Settings::default());
    let L3::Peers(peers) = &entries.entries[0].l3 else {
        panic!("peers")
    };
    assert_eq!(peers.len(), 1, "the empty item contributes no peer");
    assert!(matches!(peers[0], PeerMatch::Unresolved(_)));
}

/// `specs: []` without `spec` is accepted and contributes nothing; only an object with neither
/// is refused (`r.Spec == nil && r.Specs == nil`, cilium/cilium@507103c6
/// pkg/k8s/apis/cilium.io/v2/cnp_types.go:190).
#[test]
fn empty_specs_list_is_accepted() {
    let imported = accepts(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: t, namespace: ns}\nspecs: []\n",
    );
    let policy::Body::Cilium(rules) = &imported.set.policies[0].body else {
        panic!("cilium")
    };
    assert!(rules.is_empty());
    rejects_with(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: t, namespace: ns}\n",
        "the CiliumNetworkPolicy has no rules",
        "add `spec` or `specs`",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: t, namespace: ns}",
    );
}

/// Cilium checks only that an except's address lies in `cidr` (`prefix.Contains(
/// except.Addr())`, pkg/policy/api/rule_validation.go `CIDRRule.sanitize`): a wider except is
/// accepted, and as a `DoesNotExist` requirement on its CIDR label it excludes every address
/// it covers (pkg/policy/types/selector.go:434-465), here the whole `cidr`.
#[test]
fn wider_except_is_accepted_and_excludes_its_addresses() {
    use netpol_compiler::engine::entry::{self, L3, PeerMatch};
    let imported = accepts(&cnp(
        "  endpointSelector: {}\n  egress:\n    - toCIDRSet: [{cidr: 10.0.0.0/16, except: [10.0.0.0/8]}]\n",
    ));
    let entries = entry::build(&imported.set, None, &Settings::default());
    let L3::Peers(peers) = &entries.entries[0].l3 else {
        panic!("peers")
    };
    let PeerMatch::Cidr { net, except, .. } = &peers[0] else {
        panic!("cidr")
    };
    let ip: std::net::IpAddr = "10.0.1.2".parse().unwrap();
    assert!(net.contains(&ip) && except.iter().any(|e| e.contains(&ip)));
    rejects_with(
        &cnp(
            "  endpointSelector: {}\n  egress:\n    - toCIDRSet: [{cidr: 10.0.0.0/16, except: [10.1.0.0/8]}]\n",
        ),
        "`10.1.0.0/8` is not inside `10.0.0.0/16`",
        "the address of every `except` prefix must lie inside `cidr`",
        "10.1.0.0/8",
    );
}

/// Empty rule lists are no L7 rules: `L7Rules.IsEmpty` sums the lengths of `http`, `kafka`,
/// `dns` and `l7` (pkg/policy/api/l4.go:316-328), so the L7 checks (TCP only, no port 0) do
/// not run, and the parser is chosen by `len(...) > 0` (pkg/policy/l4.go:1004-1025): plain L4.
#[test]
fn empty_rule_lists_are_no_l7_rules() {
    use netpol_compiler::engine::entry;
    let imported = accepts(&cnp(
        "  endpointSelector: {}\n  egress:\n    - toPorts:\n        - ports: [{port: \"0\", protocol: ANY}]\n          rules: {http: []}\n",
    ));
    let entries = entry::build(&imported.set, None, &Settings::default());
    assert_eq!(entries.entries[0].l7, None);
}

/// On host egress Cilium refuses HTTP and Kafka rules only; `l7proto` and DNS rules pass
/// (`l7EgressSupport` in `EgressRule.sanitize`, cilium/cilium@507103c6
/// pkg/policy/api/rule_validation.go:294-326).
#[test]
fn host_egress_l7proto_is_accepted() {
    let host = |rules: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {{name: h}}\nspec:\n  nodeSelector: {{}}\n  egress:\n    - toPorts:\n        - ports: [{{port: \"80\", protocol: TCP}}]\n          rules: {rules}\n"
        )
    };
    accepts(&host("{l7proto: myproto, l7: [{a: b}]}"));
    rejects_with(
        &host("{http: [{method: GET}]}"),
        "HTTP rules are not allowed on egress of a host policy",
        "host policies allow DNS and `l7proto` rules on egress",
        "{http: [{method: GET}]}",
    );
}
