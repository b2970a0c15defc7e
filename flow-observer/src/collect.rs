//! `netpol-observer collect` (laptop side): find the agents through the API server, fetch their
//! `/flows` through its pod proxy, merge, print JSONL — ready for `netpol verify --flows -`.
//!
//! A flow between pods on two nodes is seen by both agents (the client's at egress, the
//! server's at ingress): records with the same endpoints, protocol and port are merged into one,
//! keeping the larger counters (not their sum), the earliest first sighting and the latest one.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use netpol_compiler::flow::Record;

/// Where the agents are.
#[derive(Debug, Clone)]
pub struct Agents {
    pub namespace: String,
    pub selector: String,
    pub port: u16,
}

impl Default for Agents {
    fn default() -> Self {
        Self {
            namespace: "netpol-observer".to_owned(),
            selector: "app.kubernetes.io/name=netpol-observer".to_owned(),
            port: 9965,
        }
    }
}

/// Fetch every agent's records. Returns them merged, and what could not be read.
pub async fn collect(client: &Client, agents: &Agents) -> Result<(Vec<Record>, Vec<String>)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &agents.namespace);
    let list = pods
        .list(&ListParams::default().labels(&agents.selector))
        .await
        .with_context(|| {
            format!(
                "cannot list the agents in `{}` ({})",
                agents.namespace, agents.selector
            )
        })?;
    let mut all = Vec::new();
    let mut problems = Vec::new();
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    for name in names {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{name}:{}/proxy/flows",
            agents.namespace, agents.port
        );
        let request = match http::Request::get(&path).body(Vec::new()) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        match client.request_text(request).await {
            Ok(text) => {
                for (i, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    match serde_json::from_str::<Record>(line) {
                        Ok(r) => all.push(r),
                        Err(e) => problems.push(format!("{name}: line {}: {e}", i + 1)),
                    }
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    Ok((merge(all), problems))
}

/// One record per flow, whichever agents saw it (see the module docs); sorted.
pub fn merge(records: Vec<Record>) -> Vec<Record> {
    let mut merged: BTreeMap<String, Record> = BTreeMap::new();
    for r in records {
        let key = format!(
            "{}|{}|{}|{:?}",
            r.protocol,
            serde_json::to_string(&r.source).unwrap_or_default(),
            serde_json::to_string(&r.destination).unwrap_or_default(),
            r.icmp
        );
        match merged.get_mut(&key) {
            None => {
                merged.insert(key, r);
            }
            Some(m) => {
                m.packets = m.packets.max(r.packets);
                m.bytes = m.bytes.max(r.bytes);
                m.connections = m.connections.max(r.connections);
                if r.time > m.time {
                    m.time = r.time;
                }
                m.first_seen = match (m.first_seen.take(), r.first_seen) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                for f in r.tcp_flags {
                    if !m.tcp_flags.contains(&f) {
                        m.tcp_flags.push(f);
                    }
                }
                m.tcp_flags.sort();
            }
        }
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use http::{Request, Response};
    use kube::client::Body;

    use super::*;

    const FLOW: &str = r#"{"time":"2026-11-27T10:00:0SZ","first_seen":"2026-11-27T09:00:0SZ","protocol":"tcp","source":{"ip":"10.42.0.17","namespace":"media","pod":"sonarr-5d8f7c9b6-x2kq9","workload":"Deployment/sonarr"},"destination":{"ip":"10.42.1.9","port":5432,"namespace":"databases","pod":"arr-postgres-1","workload":"StatefulSet/arr-postgres"},"tcp_flags":["SYN","SYN-ACK"],"packets":P,"bytes":1000,"connections":C}"#;

    fn flow(second: u8, packets: u64, connections: u64) -> String {
        FLOW.replace("0S", &format!("{second:02}"))
            .replace("\"packets\":P", &format!("\"packets\":{packets}"))
            .replace(
                "\"connections\":C",
                &format!("\"connections\":{connections}"),
            )
    }

    #[tokio::test]
    async fn agents_are_found_read_through_the_pod_proxy_and_merged() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let pods = include_str!("../tests/fixtures/api/observer-pods.json");
            let mut seen = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let uri = request.uri().to_string();
                seen.push(uri.clone());
                let body = if uri.starts_with("/api/v1/namespaces/netpol-observer/pods?") {
                    assert!(
                        uri.contains("labelSelector=app.kubernetes.io%2Fname%3Dnetpol-observer"),
                        "{uri}"
                    );
                    pods.to_owned()
                } else if uri
                    == "/api/v1/namespaces/netpol-observer/pods/netpol-observer-a1:9965/proxy/flows"
                {
                    format!("{}\n", flow(1, 10, 2))
                } else if uri
                    == "/api/v1/namespaces/netpol-observer/pods/netpol-observer-b2:9965/proxy/flows"
                {
                    format!(
                        "{}\n{}\n",
                        flow(2, 12, 2),
                        flow(3, 1, 1).replace("5432", "9187")
                    )
                } else {
                    panic!("unexpected {uri}");
                };
                send.send_response(
                    Response::builder()
                        .status(200)
                        .body(Body::from(body.into_bytes()))
                        .unwrap(),
                );
            }
            seen
        });
        let (records, problems) = collect(&client, &Agents::default()).await.unwrap();
        drop(client);
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 3);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            records.len(),
            2,
            "the 5432 flow seen on both nodes counts once"
        );
        let pg = records
            .iter()
            .find(|r| r.destination.port == Some(5432))
            .unwrap();
        assert_eq!((pg.packets, pg.connections), (12, 2));
        assert_eq!(pg.time, "2026-11-27T10:00:02Z");
        assert_eq!(pg.first_seen.as_deref(), Some("2026-11-27T09:00:01Z"));
    }
}
