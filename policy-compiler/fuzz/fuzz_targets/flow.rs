//! Any bytes as a flow file (netpol JSONL or Hubble JSON): reading must never panic, and every
//! flow read is judged against a fixed policy set, the compiled index agreeing with the
//! reference evaluator on each decision.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use netpol_compiler::engine::settings::{Settings, DEFAULT_CLUSTER};
use netpol_compiler::diagnostic::{self, Diagnostics, Style};
use netpol_compiler::engine::eval::{self, NoPorts};
use netpol_compiler::flow::Reader;
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::diagnostic::source::{SourceFile, SourceMap};
use netpol_compiler::engine::{entry, policy};
use netpol_compiler::report::verify;

const POLICIES: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: sonarr
  namespace: media
spec:
  endpointSelector:
    matchLabels:
      app: sonarr
  ingress:
    - fromEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: traefik
            app.kubernetes.io/name: traefik
      toPorts:
        - ports:
            - port: "8989"
              protocol: TCP
  egress:
    - toEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: kube-system
            k8s-app: kube-dns
      toPorts:
        - ports:
            - port: "53"
              protocol: ANY
          rules:
            dns:
              - matchPattern: "*"
    - toFQDNs:
        - matchName: api.thetvdb.com
        - matchPattern: "*.themoviedb.org"
      toPorts:
        - ports:
            - port: "443"
              protocol: TCP
    - toCIDRSet:
        - cidr: 192.168.0.0/16
          except:
            - 192.168.1.0/24
      toPorts:
        - ports:
            - port: "445"
              protocol: TCP
  egressDeny:
    - toCIDR:
        - 169.254.169.254/32
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: media-default
  namespace: media
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints:
        - {}
  egress:
    - toEndpoints:
        - {}
"#;

/// The fixed policies, compiled once.
static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let mut sources = SourceMap::new();
    let id = sources.add(SourceFile::new(Path::new("policies.yaml"), POLICIES));
    let mut diags = Diagnostics::new();
    let mut set = policy::PolicySet::default();
    policy::import_text(id, POLICIES, &mut diags, &mut set);
    assert!(
        !diags.has_errors() && set.policies.len() == 2,
        "fixed policies: {}",
        diagnostic::render_human(&diags, &sources, Style::Plain)
    );
    Index::new(entry::build(&set, None, &Settings::default()))
});

fuzz_target!(|data: &[u8]| {
    let index = &*INDEX;

    let mut reader = Reader::new(None, DEFAULT_CLUSTER);
    let mut input = data;
    // Invalid UTF-8 stops reading with an error; the flows read before it are still judged.
    let _ = reader.read_all(&mut input, &mut |_| {});
    let mut evaluator = Evaluator::new(index, &NoPorts);
    let verification = verify::judge(&reader.set.flows, &mut evaluator);
    assert_eq!(verification.judged.len(), reader.set.flows.len());
    let _ = verification.denied();
    for judged in &verification.judged {
        // A reply that found its connection takes that connection's decision (judged from
        // the record that opened it, whose endpoints may be better identified).
        let (flow, reply) = match judged.same_as {
            Some(first) => (&reader.set.flows[first], verification.judged[first].reply),
            None => (&reader.set.flows[judged.index], judged.reply),
        };
        let query = verify::View::of(flow, reply).query();
        let reference = eval::reference(&index.entries, &query, &NoPorts, None);
        assert_eq!(judged.decision, reference, "flow {flow:?}");
    }
});
