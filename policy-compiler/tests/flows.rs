//! Flow inputs: Hubble exports and netpol's own JSONL, read into flows whose peers carry the
//! identities Cilium would see (docs/semantics.md §7.3, §10.1, §10.8). The Hubble lines are
//! composed here in the shape `hubble observe -o jsonpb` prints.
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::path::PathBuf;

use netpol_compiler::document::files::Memory;
use netpol_compiler::engine::eval::NoPorts;
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::engine::{entry, policy};
use netpol_compiler::flow::inventory::Inventory;
use netpol_compiler::flow::{Format, Reader};
use netpol_compiler::objects::Proto;
use netpol_compiler::report::verify;

fn read<'i>(text: &str, inventory: Option<&'i Inventory>) -> Reader<'i> {
    let mut r = Reader::new(inventory, DEFAULT_CLUSTER);
    r.read_all(&mut text.as_bytes(), &mut |_| {}).unwrap();
    r
}

const SYN: &str = r#"{"flow":{"time":"2026-11-20T08:00:00.000000001Z","verdict":"FORWARDED","IP":{"source":"10.0.1.23","destination":"10.0.2.45","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":51234,"destination_port":8080,"flags":{"SYN":true}}},"source":{"ID":11,"identity":48213,"namespace":"shop","labels":["k8s:app=frontend","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"frontend-6d4b7c9f8-x2kq9","workloads":[{"name":"frontend","kind":"Deployment"}]},"destination":{"ID":12,"identity":30977,"namespace":"shop","labels":["k8s:app=web","k8s:io.cilium.k8s.policy.cluster=default","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"web-7f9c6d5b4-8m2lp"},"Type":"L3_L4","node_name":"c1/worker-1","is_reply":false,"event_type":{"type":4},"traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT"},"node_name":"c1/worker-1","time":"2026-11-20T08:00:00.000000001Z"}"#;
const SYNACK: &str = r#"{"flow":{"time":"2026-11-20T08:00:00.000000002Z","verdict":"FORWARDED","IP":{"source":"10.0.2.45","destination":"10.0.1.23","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":8080,"destination_port":51234,"flags":{"SYN":true,"ACK":true}}},"source":{"identity":30977,"namespace":"shop","labels":["k8s:app=web","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"web-7f9c6d5b4-8m2lp"},"destination":{"identity":48213,"namespace":"shop","labels":["k8s:app=frontend","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"frontend-6d4b7c9f8-x2kq9"},"Type":"L3_L4"}}"#;
const WORLD_BARE: &str = r#"{"time":"2026-11-20T08:00:01Z","verdict":"DROPPED","drop_reason_desc":"POLICY_DENIED","IP":{"source":"10.0.1.23","destination":"151.101.1.1","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":40022,"destination_port":443,"flags":{"SYN":true}}},"source":{"identity":48213,"namespace":"shop","labels":["k8s:app=frontend","k8s:io.kubernetes.pod.namespace=shop"],"pod_name":"frontend-6d4b7c9f8-x2kq9"},"destination":{"identity":2},"destination_names":["API.Example.com."],"Type":"L3_L4","traffic_direction":"EGRESS"}"#;
const PING: &str = r#"{"flow":{"IP":{"source":"10.0.1.23","destination":"fd00::1","ipVersion":"IPv6"},"l4":{"ICMPv6":{"type":128}},"source":{"namespace":"shop","labels":["k8s:app=frontend","k8s:io.kubernetes.pod.namespace=shop"]},"destination":{"identity":6,"labels":["reserved:remote-node"]}}}"#;
const OTHER_LINES: &str = "{\"node_status\":{\"state_change\":\"NODE_CONNECTED\",\"node_names\":[\"worker-1\"]},\"node_name\":\"c1/worker-1\"}\n{\"lost_events\":{\"source\":\"PERF_EVENT_RING_BUFFER\",\"num_events_lost\":\"12\"}}\n";

#[test]
fn hubble_wrapper_bare_flows_and_skipped_lines() {
    let text = format!("{SYN}\n{SYNACK}\n{OTHER_LINES}{WORLD_BARE}\n\n{PING}\n");
    let r = read(&text, None);
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    assert_eq!(r.set.format, Some(Format::Hubble));
    let flows = &r.set.flows;
    assert_eq!(flows.len(), 4);
    assert_eq!(r.set.skipped.get("node_status"), Some(&1));
    assert_eq!(r.set.skipped.get("lost_events"), Some(&1));
    // Indexes count flow records; lines count lines.
    assert_eq!((flows[2].index, flows[2].line), (2, 5));

    let syn = &flows[0];
    assert_eq!(syn.proto, Some(Proto::Tcp));
    assert_eq!(syn.port(), 8080);
    assert!(!syn.is_reply());
    assert_eq!(syn.src.display(), "shop/Deployment/frontend");
    assert_eq!(syn.dst.display(), "shop/web");
    // The cluster label Cilium's pods carry is added when an export leaves it out.
    assert!(
        syn.src
            .peer
            .labels
            .has(Some("k8s"), "io.cilium.k8s.policy.cluster")
    );
    assert!(flows[1].is_reply(), "SYN-ACK is the reply direction");

    let world = &flows[2];
    assert!(
        world.dst.peer.is_world(),
        "identity 2 without labels is world"
    );
    assert_eq!(world.dst.peer.names, ["api.example.com"]);
    assert_eq!(world.observed.as_deref(), Some("DROPPED"));
    assert_eq!(world.dst.display(), "world (api.example.com)");

    let ping = &flows[3];
    assert_eq!((ping.proto, ping.port()), (Some(Proto::Icmpv6), 128));
    assert!(ping.dst.peer.labels.reserved("remote-node"));
}

#[test]
fn replies_are_judged_with_their_connection() {
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
"#;
    let fs = Memory::new([(PathBuf::from("p/x.yaml"), yaml.to_owned())]);
    let imported = policy::import(&fs, &[PathBuf::from("p")]);
    let index = Index::new(entry::build(&imported.set, None, &Settings::default()));
    // The reply alone first (its connection started before the capture), then a SYN.
    let r = read(&format!("{SYNACK}\n{SYN}\n{SYNACK}\n"), None);
    let mut ev = Evaluator::new(&index, &NoPorts);
    let v = verify::judge(&r.set.flows, &mut ev);
    assert_eq!(v.judged.len(), 3);
    assert!(v.judged.iter().all(|j| j.decision.allowed()));
    // The lone reply was judged as frontend -> web:8080, not as web -> frontend:51234.
    let view = verify::View::of(&r.set.flows[0], v.judged[0].reply);
    assert_eq!(
        (view.src.display(), view.port),
        ("shop/frontend".to_owned(), 8080)
    );
    assert_eq!(v.judged[2].same_as, Some(0));
}

const INVENTORY: &str = r#"{"kind":"List","items":[
 {"kind":"Namespace","metadata":{"name":"shop","labels":{"team":"web"}}},
 {"kind":"Pod","metadata":{"name":"web-7f9c6d5b4-8m2lp","namespace":"shop","labels":{"app":"web","pod-template-hash":"7f9c6d5b4"},"ownerReferences":[{"kind":"ReplicaSet","name":"web-7f9c6d5b4","controller":true}]},
  "spec":{"serviceAccountName":"web","nodeName":"n1","containers":[{"name":"c","ports":[{"name":"http","containerPort":8080}]}]},"status":{"podIP":"10.0.2.45"}},
 {"kind":"Pod","metadata":{"name":"node-exporter-abcde","namespace":"mon","labels":{"app":"node-exporter"},"ownerReferences":[{"kind":"DaemonSet","name":"node-exporter","controller":true}]},
  "spec":{"hostNetwork":true,"nodeName":"n2","containers":[{"name":"c"}]},"status":{"podIP":"192.168.1.12"}},
 {"kind":"Service","metadata":{"name":"web","namespace":"shop"},"spec":{"selector":{"app":"web"},"clusterIP":"10.96.0.20","ports":[{"port":80,"targetPort":"http","protocol":"TCP"}]}},
 {"kind":"Node","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.11"}]}},
 {"kind":"Node","metadata":{"name":"n2"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.12"}]}}
]}"#;

#[test]
fn netpol_jsonl_with_inventory_resolves_ips_nodes_and_services() {
    let inv = Inventory::parse(INVENTORY, DEFAULT_CLUSTER).unwrap();
    let text = concat!(
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.0.1.23","port":40000,"namespace":"shop","pod":"frontend-0","labels":{"app":"frontend"},"service_account":"fe","node":"n1"},"destination":{"ip":"10.96.0.20","port":80},"packets":3,"bytes":180,"connections":1}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:01Z","protocol":"tcp","source":{"ip":"192.168.1.11"},"destination":{"ip":"10.0.2.45","port":8080,"node":"n1"}}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:02Z","protocol":"tcp","source":{"ip":"192.168.1.12","port":9100},"destination":{"ip":"10.0.2.45","port":8080,"node":"n1"}}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:03Z","protocol":"udp","source":{"ip":"10.0.2.45","port":5000},"destination":{"ip":"9.9.9.9","port":53,"names":["dns.quad9.net"]}}"#,
        "\n"
    );
    let r = read(text, Some(&inv));
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    assert_eq!(r.set.format, Some(Format::Netpol));
    let f = &r.set.flows;
    // Service address → backend pod and target port (policy sees the backend, pitfall 6).
    assert_eq!(f[0].dst.display(), "shop/Deployment/web");
    assert_eq!(f[0].port(), 8080);
    assert_eq!(f[0].service.as_deref(), Some("shop/web 10.96.0.20:80"));
    assert!(
        f[0].src
            .peer
            .labels
            .has(Some("k8s"), "io.cilium.k8s.policy.serviceaccount")
    );
    assert_eq!(
        f[0].src
            .peer
            .labels
            .get(Some("k8s"), "io.cilium.k8s.namespace.labels.team"),
        Some("web")
    );
    assert_eq!(f[0].packets, 3);
    // The node of the destination pod is `host`, another node `remote-node` (§10.1).
    assert!(
        f[1].src.peer.labels.reserved("host"),
        "{}",
        f[1].src.peer.labels
    );
    assert!(
        f[2].src.peer.labels.reserved("remote-node"),
        "hostNetwork pods are their node"
    );
    assert_eq!(f[3].src.display(), "shop/Deployment/web");
    assert_eq!(f[3].dst.peer.names, ["dns.quad9.net"]);
}

#[test]
fn bad_records_are_reported_with_line_and_column_and_all_of_them() {
    let text = concat!(
        r#"{"time":"t","protocol":"tcp","source":{"ip":"10.0.0.1"},"destination":{"ip":"10.0.0.2","port":80}}"#,
        "\n",
        r#"{"time":"t","protocol":"tcp","source":{"ip":"10.0.0.1","prot":1},"destination":{"ip":"10.0.0.2"}}"#,
        "\n",
        r#"{"time":"t","protocol":"gre2","source":{"ip":"10.0.0.1"},"destination":{"ip":"10.0.0.2"}}"#,
        "\n",
        r#"{"protocol":"tcp","source":{"ip":"10.0.0.1"},"destination":{"ip":"10.0.0.2"}}"#,
        "\n",
        r#"{"time":"t","protocol":"tcp","source":{"entity":"moon"},"destination":{"ip":"10.0.0.2"}}"#,
        "\n",
        "{\"time\": \"t\", \"protocol\": \"tcp\", \"source\": {\"ip\"",
        "\n"
    );
    let r = read(text, None);
    let errors: Vec<(usize, &str)> = r
        .set
        .errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert_eq!(errors[0].0, 2);
    assert!(
        errors[0].1.contains("unknown field `prot`"),
        "{}",
        errors[0].1
    );
    assert_eq!(errors[1], (3, "unknown protocol `gre2`"));
    assert!(errors[2].1.contains("missing field `time`"));
    assert_eq!(errors[3], (5, "unknown entity `moon`"));
    assert_eq!(errors[4].0, 6);
    assert!(r.set.errors[4].column > 1);
}

#[test]
fn unknown_formats_are_rejected_on_the_first_line() {
    let r = read("{\"hello\":1}\n", None);
    assert_eq!(r.set.errors.len(), 1);
    assert_eq!(
        r.set.errors[0].message,
        "not a flow record: neither netpol's format nor Hubble's"
    );
    let r = read("[1,2]\n", None);
    assert_eq!(r.set.errors[0].message, "expected a JSON object");
}

#[test]
fn hubble_pods_without_labels_take_them_from_the_inventory() {
    let inv = Inventory::parse(INVENTORY, DEFAULT_CLUSTER).unwrap();
    let line = r#"{"flow":{"verdict":"DROPPED","IP":{"source":"10.244.1.60","destination":"10.0.2.45","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":44916,"destination_port":8080,"flags":{"SYN":true}}},"source":{"namespace":"shop","pod_name":"xwing"},"destination":{"namespace":"shop","pod_name":"web-7f9c6d5b4-8m2lp"},"drop_reason_desc":"POLICY_DENIED"}}"#;
    let r = read(line, Some(&inv));
    let f = &r.set.flows[0];
    assert!(
        f.dst.peer.labels.has(Some("k8s"), "app"),
        "from the inventory: {}",
        f.dst.peer.labels
    );
    assert_eq!(f.dst.peer.named_ports.len(), 1);
    assert_eq!(
        f.src.peer.labels.namespace(),
        Some("shop"),
        "unknown pod: namespace only"
    );
    assert!(!f.src.peer.labels.has(Some("k8s"), "app"));
}

#[test]
fn hubble_pods_with_labels_still_get_their_port_names_from_the_inventory() {
    let inv = Inventory::parse(INVENTORY, DEFAULT_CLUSTER).unwrap();
    let r = read(SYN, Some(&inv));
    let dst = &r.set.flows[0].dst;
    assert_eq!(dst.peer.named_ports.len(), 1, "web's `http` container port");
    assert_eq!(dst.display(), "shop/Deployment/web");
}

/// The record the README shows under "netpol flow records", read as a user would paste it.
fn readme_record() -> String {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("**netpol flow records**")
        .nth(1)
        .and_then(|rest| rest.split("```json\n").nth(1))
        .and_then(|rest| rest.split("\n```").next())
        .unwrap();
    // One JSON object, printed over several lines for reading: one line of JSONL.
    serde_json::to_string(&serde_json::from_str::<serde_json::Value>(block).unwrap()).unwrap()
}

/// Regression: the README's record (`tcp_flags` SYN and ACK, no `reply`) was read as a reply
/// and judged backwards, `world → sonarr`. A netpol record's direction is its `reply` field.
#[test]
fn the_readme_record_is_judged_as_written() {
    let r = read(&(readme_record() + "\n"), None);
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    let flow = &r.set.flows[0];
    assert!(!flow.is_reply());
    assert_eq!(flow.src.display(), "media/Deployment/sonarr");
    assert_eq!(flow.dst.display(), "world (api.thetvdb.com)");
    assert_eq!(flow.port(), 443);
    // The same record with the flags the old README listed.
    let old = readme_record().replace(r#"["SYN","SYN-ACK"]"#, r#"["SYN","ACK"]"#);
    assert_ne!(old, readme_record());
    let r = read(&(old + "\n"), None);
    assert!(!r.set.flows[0].is_reply());
    // `reply: true` says it is the answer, whatever the flags.
    let reply = readme_record().replace(r#""tcp_flags""#, r#""reply":true,"tcp_flags""#);
    let r = read(&(reply + "\n"), None);
    assert!(r.set.flows[0].is_reply());
}

#[test]
fn unknown_tcp_flags_are_errors() {
    let line = readme_record().replace(r#"["SYN","SYN-ACK"]"#, r#"["SYN","SYNACK"]"#);
    let r = read(&(line + "\n"), None);
    assert_eq!(r.set.errors.len(), 1);
    assert_eq!(r.set.errors[0].message, "unknown TCP flag `SYNACK`");
    assert_eq!(r.set.errors[0].line, 1);
    assert!(
        r.set.errors[0].help.contains("SYN, SYN-ACK, ACK"),
        "{}",
        r.set.errors[0].help
    );
}

/// Hubble says the direction with `is_reply`; only a record without it is read from its
/// packet: SYN is a request, SYN-ACK a reply, else a packet from a server port to an ephemeral
/// one is a reply.
#[test]
fn hubble_direction_is_is_reply_else_the_packet() {
    let without = |text: &str| text.replace(r#","is_reply":false"#, "");
    // Explicit `is_reply: false` wins over a SYN-ACK.
    let explicit = SYNACK.replace(r#""Type":"L3_L4""#, r#""Type":"L3_L4","is_reply":false"#);
    let cases = [
        (SYN.to_owned(), false),
        (without(SYN), false),
        (SYNACK.to_owned(), true),
        (explicit, false),
        // FIN-ACK from the server port 9080 to the client's 58634: the server's answer.
        (
            without(SYN).replace(
                r#""source_port":51234,"destination_port":8080,"flags":{"SYN":true}"#,
                r#""source_port":9080,"destination_port":58634,"flags":{"FIN":true,"ACK":true}"#,
            ),
            true,
        ),
        // ACK from the client's 51234 to 8080: a request.
        (
            without(SYN).replace(r#""flags":{"SYN":true}"#, r#""flags":{"ACK":true}"#),
            false,
        ),
    ];
    for (i, (line, reply)) in cases.iter().enumerate() {
        let r = read(&format!("{line}\n"), None);
        assert!(r.set.errors.is_empty(), "case {i}: {:?}", r.set.errors);
        assert_eq!(r.set.flows[0].is_reply(), *reply, "case {i}: {line}");
    }
}

/// A Talos cluster as `kubectl get pods,services,endpointslices,namespaces,nodes -A -o json`
/// prints it: the API server listens on the control-plane node's 6443, behind the
/// selectorless `default/kubernetes` Service (10.96.0.1:443); `external` points at an API
/// server outside the cluster.
const TALOS: &str = r#"{"kind":"List","items":[
 {"kind":"Pod","metadata":{"name":"arr-postgres-1","namespace":"databases","labels":{"cnpg.io/cluster":"arr-postgres"}},
  "spec":{"serviceAccountName":"arr-postgres","nodeName":"worker-1","containers":[{"name":"postgres"}]},"status":{"podIP":"10.244.1.9"}},
 {"kind":"Pod","metadata":{"name":"velero-0","namespace":"velero","labels":{"app":"velero"}},
  "spec":{"nodeName":"cp-1","containers":[{"name":"velero"}]},"status":{"podIP":"10.244.0.7"}},
 {"kind":"Service","metadata":{"name":"kubernetes","namespace":"default","labels":{"component":"apiserver"}},
  "spec":{"clusterIP":"10.96.0.1","ports":[{"name":"https","port":443,"protocol":"TCP","targetPort":6443}]}},
 {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"kubernetes","namespace":"default","labels":{"kubernetes.io/service-name":"kubernetes"}},
  "addressType":"IPv4","endpoints":[{"addresses":["192.168.1.10"],"conditions":{"ready":true}}],"ports":[{"name":"https","port":6443,"protocol":"TCP"}]},
 {"kind":"Service","metadata":{"name":"external","namespace":"velero"},"spec":{"clusterIP":"10.96.0.50","ports":[{"name":"s3","port":9000,"protocol":"TCP"}]}},
 {"kind":"Endpoints","metadata":{"name":"external","namespace":"velero"},"subsets":[{"addresses":[{"ip":"203.0.113.9"}],"ports":[{"name":"s3","port":9443,"protocol":"TCP"}]}]},
 {"kind":"Node","metadata":{"name":"cp-1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.10"}]}},
 {"kind":"Node","metadata":{"name":"worker-1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.11"}]}}
]}"#;

/// Regression: traffic to the `kubernetes` Service stayed a `world` peer on 443 and was
/// dropped; Cilium translates it to its endpoint first and sees the `kube-apiserver` identity
/// on the endpoint's port.
#[test]
fn the_kubernetes_service_is_the_api_server_on_its_endpoint_port() {
    let inv = Inventory::parse(TALOS, DEFAULT_CLUSTER).unwrap();
    let flow = |ns: &str, pod: &str, ip: &str, dst: &str, port: u16| {
        format!(
            r#"{{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{{"ip":"{ip}","namespace":"{ns}","pod":"{pod}"}},"destination":{{"ip":"{dst}","port":{port}}}}}"#
        )
    };
    let text = [
        flow(
            "databases",
            "arr-postgres-1",
            "10.244.1.9",
            "10.96.0.1",
            443,
        ),
        flow("velero", "velero-0", "10.244.0.7", "10.96.0.1", 443),
        flow("velero", "velero-0", "10.244.0.7", "10.96.0.50", 9000),
    ]
    .join("\n")
        + "\n";
    let r = read(&text, Some(&inv));
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    let f = &r.set.flows;
    // From a pod on another node: identity 7, kube-apiserver and remote-node, on 6443.
    assert_eq!(f[0].dst.display(), "kube-apiserver");
    assert_eq!(f[0].port(), 6443);
    assert_eq!(
        f[0].service.as_deref(),
        Some("default/kubernetes 10.96.0.1:443")
    );
    assert!(f[0].dst.peer.labels.reserved("kube-apiserver"));
    assert!(f[0].dst.peer.labels.reserved("remote-node"));
    // From a pod on the control-plane node: the host identity, with kube-apiserver.
    assert!(f[1].dst.peer.labels.reserved("kube-apiserver"));
    assert!(f[1].dst.peer.labels.reserved("host"));
    assert!(!f[1].dst.peer.labels.reserved("remote-node"));
    // A selectorless Service to an address outside the cluster: world, on the endpoint port.
    assert_eq!(f[2].dst.display(), "world (203.0.113.9)");
    assert_eq!(f[2].port(), 9443);

    let policy = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: arr-postgres, namespace: databases}
spec:
  endpointSelector: {matchLabels: {cnpg.io/cluster: arr-postgres}}
  egress:
    - toEntities: [kube-apiserver]
      toPorts: [{ports: [{port: "6443", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: velero, namespace: velero}
spec:
  endpointSelector: {matchLabels: {app: velero}}
  egress:
    - toEntities: [kube-apiserver]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#;
    let fs = Memory::new([(PathBuf::from("p/x.yaml"), policy.to_owned())]);
    let imported = policy::import(&fs, &[PathBuf::from("p")]);
    let index = Index::new(entry::build(&imported.set, None, &Settings::default()));
    let mut ev = Evaluator::new(&index, &NoPorts);
    let v = verify::judge(&r.set.flows, &mut ev);
    let allowed: Vec<bool> = v.judged.iter().map(|j| j.decision.allowed()).collect();
    // 6443 is what the policy sees; `on: 443` towards the API server never matches on Talos.
    assert_eq!(allowed, [true, false, false]);
}

#[test]
fn an_api_server_outside_the_cluster_is_kube_apiserver_and_world() {
    let talos = TALOS.replace(
        r#""addresses":["192.168.1.10"]"#,
        r#""addresses":["198.51.100.4"]"#,
    );
    let inv = Inventory::parse(&talos, DEFAULT_CLUSTER).unwrap();
    let peer = inv.classify("198.51.100.4".parse().unwrap(), None).unwrap();
    assert!(peer.labels.reserved("kube-apiserver"));
    assert!(peer.is_world(), "CIDR and world rules select it too");
    assert!(!peer.labels.reserved("remote-node"));
}

/// The observer records the API server seen under socket load balancing (a node address on
/// 6443) as `host`/`remote-node`: with the inventory it is also `kube-apiserver`.
#[test]
fn a_node_address_that_is_the_api_server_is_kube_apiserver() {
    let inv = Inventory::parse(TALOS, DEFAULT_CLUSTER).unwrap();
    let text = concat!(
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.244.1.9","namespace":"databases","pod":"arr-postgres-1"},"destination":{"ip":"192.168.1.10","port":6443,"entity":"remote-node","node":"cp-1"}}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.244.1.9","namespace":"databases","pod":"arr-postgres-1"},"destination":{"ip":"192.168.1.11","port":10250,"entity":"remote-node","node":"worker-1"}}"#,
        "\n",
    );
    let r = read(text, Some(&inv));
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    assert!(r.set.flows[0].dst.peer.labels.reserved("kube-apiserver"));
    assert!(r.set.flows[0].dst.peer.labels.reserved("remote-node"));
    assert!(!r.set.flows[1].dst.peer.labels.reserved("kube-apiserver"));
}

/// A pod reaching itself through its own Service (hairpin) skips policy in Cilium's datapath
/// (cilium/cilium@507103c6 bpf/bpf_lxc.c:1369-1376), even when its policy allows nothing.
#[test]
fn a_pod_reaching_itself_through_its_service_skips_policy() {
    let inv = Inventory::parse(INVENTORY, DEFAULT_CLUSTER).unwrap();
    let text = concat!(
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.0.2.45","port":40000,"namespace":"shop","pod":"web-7f9c6d5b4-8m2lp"},"destination":{"ip":"10.96.0.20","port":80}}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:01Z","protocol":"tcp","source":{"ip":"10.0.1.23","port":40001,"namespace":"shop","pod":"frontend-0","labels":{"app":"frontend"}},"destination":{"ip":"10.96.0.20","port":80}}"#,
        "\n",
    );
    let r = read(text, Some(&inv));
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    assert!(r.set.flows[0].hairpin);
    assert!(!r.set.flows[1].hairpin, "another pod through the Service");
    let yaml = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{}]
  egress: [{}]
"#;
    let fs = Memory::new([(PathBuf::from("p/x.yaml"), yaml.to_owned())]);
    let imported = policy::import(&fs, &[PathBuf::from("p")]);
    let index = Index::new(entry::build(&imported.set, None, &Settings::default()));
    let mut ev = Evaluator::new(&index, &inv);
    let v = verify::judge(&r.set.flows, &mut ev);
    assert!(v.judged[0].decision.allowed());
    assert_eq!(
        v.judged[0].decision.ingress.reason,
        Some(netpol_compiler::engine::eval::Reason::Hairpin)
    );
    assert!(
        !v.judged[1].decision.allowed(),
        "directly to itself: policy applies"
    );
}

/// Host-network pods have their node's identity (`host` on the node of the other end, else
/// `remote-node`), also behind a Service; reports name the pod by the port it listens on
/// (docs/semantics.md §5.1, §12).
#[test]
fn host_network_pods_have_their_node_identity_and_are_named() {
    let inventory = r#"{"kind":"List","items":[
 {"kind":"Pod","metadata":{"name":"client-a","namespace":"shop","labels":{"app":"client"}},
  "spec":{"nodeName":"n1","containers":[{"name":"c"}]},"status":{"podIP":"10.0.1.5"}},
 {"kind":"Pod","metadata":{"name":"client-b","namespace":"shop","labels":{"app":"client"}},
  "spec":{"nodeName":"n2","containers":[{"name":"c"}]},"status":{"podIP":"10.0.2.5"}},
 {"kind":"Pod","metadata":{"name":"home-assistant-0","namespace":"home","labels":{"app":"home-assistant"},"ownerReferences":[{"kind":"StatefulSet","name":"home-assistant","controller":true}]},
  "spec":{"hostNetwork":true,"nodeName":"n1","containers":[{"name":"c","ports":[{"containerPort":8123}]}]},"status":{"podIP":"192.168.1.11"}},
 {"kind":"Service","metadata":{"name":"home-assistant","namespace":"home"},"spec":{"selector":{"app":"home-assistant"},"clusterIP":"10.96.0.50","ports":[{"port":80,"targetPort":8123,"protocol":"TCP"}]}},
 {"kind":"Node","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.11"}]}},
 {"kind":"Node","metadata":{"name":"n2"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.12"}]}}
]}"#;
    let inv = Inventory::parse(inventory, DEFAULT_CLUSTER).unwrap();
    let text = concat!(
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.0.1.5","port":40000},"destination":{"ip":"10.96.0.50","port":80}}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.0.2.5","port":40000},"destination":{"ip":"10.96.0.50","port":80}}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.0.2.5","port":40001},"destination":{"ip":"192.168.1.11","port":8123}}"#,
        "\n",
        r#"{"time":"2026-11-20T08:00:00Z","protocol":"tcp","source":{"ip":"10.0.2.5","port":40002},"destination":{"ip":"192.168.1.11","port":10250}}"#,
        "\n"
    );
    let r = read(text, Some(&inv));
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    let f = &r.set.flows;
    // Through the Service: the backend's node, on the target port.
    assert!(
        f[0].dst.peer.labels.reserved("host"),
        "{}",
        f[0].dst.peer.labels
    );
    assert_eq!(
        f[0].dst.display(),
        "host (home/StatefulSet/home-assistant, host network)"
    );
    assert_eq!(f[0].port(), 8123);
    assert!(f[1].dst.peer.labels.reserved("remote-node"));
    assert_eq!(
        f[1].dst.display(),
        "remote-node (home/StatefulSet/home-assistant, host network)"
    );
    // To the node address: named by the port, the kubelet's port is just the node.
    assert_eq!(
        f[2].dst.display(),
        "remote-node (home/StatefulSet/home-assistant, host network)"
    );
    assert_eq!(f[3].dst.display(), "remote-node");
}

/// Cilium merges `kube-apiserver` into the single host identity of the node the API server
/// runs on: from that node, every address of it is `kube-apiserver` too; from other nodes only
/// the API server's own address is (cilium/cilium@507103c6 pkg/ipcache/metadata.go:803-826).
#[test]
fn the_host_identity_of_the_api_server_node_is_kube_apiserver_everywhere() {
    let talos = TALOS.replace(
        r#"{"type":"InternalIP","address":"192.168.1.10"}"#,
        r#"{"type":"InternalIP","address":"192.168.1.10"},{"type":"InternalIP","address":"fd00::10"}"#,
    );
    let inv = Inventory::parse(&talos, DEFAULT_CLUSTER).unwrap();
    let second: std::net::IpAddr = "fd00::10".parse().unwrap();
    let local = inv.classify(second, Some("cp-1")).unwrap();
    assert!(local.labels.reserved("host") && local.labels.reserved("kube-apiserver"));
    let remote = inv.classify(second, Some("worker-1")).unwrap();
    assert!(remote.labels.reserved("remote-node"));
    assert!(!remote.labels.reserved("kube-apiserver"));
    // A node without the API server: its host is only `host`.
    let worker = inv
        .classify("192.168.1.11".parse().unwrap(), Some("worker-1"))
        .unwrap();
    assert!(worker.labels.reserved("host") && !worker.labels.reserved("kube-apiserver"));
}

/// Hubble's `reserved:host` and `reserved:remote-node` carry no Node labels; with the inventory
/// the reader adds them (what host policies and `fromNodes` select by), once per node.
#[test]
fn hubble_node_peers_get_their_node_labels_from_the_inventory() {
    let inventory = r#"{"kind":"List","items":[
 {"kind":"Node","metadata":{"name":"n1","labels":{"node-access":"ssh"}},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.11"}]}},
 {"kind":"Node","metadata":{"name":"n2","labels":{"role":"worker"}},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.12"}]}}]}"#;
    let inv = Inventory::parse(inventory, DEFAULT_CLUSTER).unwrap();
    let line = |dst: &str, labels: &str| {
        format!(
            r#"{{"flow":{{"IP":{{"source":"10.0.1.23","destination":"{dst}"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":10250,"flags":{{"SYN":true}}}}}},"source":{{"namespace":"shop","labels":["k8s:app=frontend","k8s:io.kubernetes.pod.namespace=shop"]}},"destination":{{"labels":["{labels}"]}},"is_reply":false}}}}"#
        )
    };
    let text = [
        line("192.168.1.11", "reserved:host"),
        line("192.168.1.12", "reserved:remote-node"),
        line("192.168.1.11", "reserved:host"),
    ]
    .join("\n");
    let r = read(&text, Some(&inv));
    assert!(r.set.errors.is_empty(), "{:?}", r.set.errors);
    let f = &r.set.flows;
    assert_eq!(
        f[0].dst.peer.labels.to_string(),
        "k8s:node-access=ssh,reserved:host"
    );
    assert_eq!(
        f[1].dst.peer.labels.to_string(),
        "node:role=worker,reserved:remote-node"
    );
    assert!(std::sync::Arc::ptr_eq(
        &f[0].dst.peer.labels,
        &f[2].dst.peer.labels
    ));
}

/// A finished pod (a Job's, an evicted one) holds no address although its status may still
/// show one; an address that a leaving and a starting pod both claim is the running pod's.
#[test]
fn finished_pods_own_no_address_and_the_running_pod_wins() {
    let pod = |name: &str, phase: &str, ip: &str| {
        format!(
            r#"{{"kind":"Pod","metadata":{{"name":"{name}","namespace":"media","labels":{{"app":"{name}"}}}},"spec":{{"nodeName":"n1","containers":[{{"name":"c"}}]}},"status":{{"phase":"{phase}","podIP":"{ip}"}}}}"#
        )
    };
    let inventory = format!(
        r#"{{"kind":"List","items":[{},{},{},{}]}}"#,
        pod("a-backup-job", "Succeeded", "10.0.5.5"),
        pod("b-sonarr", "Running", "10.0.5.5"),
        pod("c-starting", "Pending", "10.0.5.5"),
        pod("d-evicted", "Failed", "10.0.5.6"),
    );
    let inv = Inventory::parse(&inventory, DEFAULT_CLUSTER).unwrap();
    let reused = inv.classify("10.0.5.5".parse().unwrap(), None).unwrap();
    assert_eq!(reused.labels.get(Some("k8s"), "app"), Some("b-sonarr"));
    assert!(inv.classify("10.0.5.6".parse().unwrap(), None).is_none());
}
