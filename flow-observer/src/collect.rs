//! `netpol-observer collect` (laptop side): find the agents through the API server, fetch their
//! `/flows` through its pod proxy, merge, print JSONL — ready for `netpol verify --flows -`.
//!
//! ```text
//! list the agent pods ──each: GET …/pods/NAME:PORT/proxy/flows──> Agent (records, start | error)
//!   ──report (pure)──> Report: merged records, agents not read, agents that started late
//!     ──outcome(--allow-partial, --strict)──> print (exit 0), print and warn (1), nothing (2)
//! ```
//!
//! A flow between pods on two nodes is seen by both agents (the client's at egress, the
//! server's at ingress): records with the same endpoints, protocol and port are merged into one,
//! keeping the larger counters (not their sum), the earliest first sighting and the latest one.
//!
//! An agent has seen nothing before it started (`x-netpol-agent-start`): one that started
//! within `--window` before now, or well after the oldest flow the other agents hold (a restart,
//! or a node that joined later), is reported, since its node's earlier flows are missing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use netpol_compiler::flow::Record;

use crate::clock::{parse_rfc3339, rfc3339};
use crate::cluster::human;
use crate::export::{AGENT_NODE, AGENT_START};

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

/// One agent: its pod, its node, and what it served or why it could not be read.
#[derive(Debug)]
pub struct Agent {
    pub pod: String,
    pub node: Option<String>,
    pub read: Result<Flows, String>,
}

/// What an agent served.
#[derive(Debug, Default)]
pub struct Flows {
    pub records: Vec<Record>,
    /// When it started; `None` if it does not say (an agent older than the header).
    pub started: Option<SystemTime>,
}

/// Read every agent (sorted by pod name). An error only if the agents cannot be listed, or
/// there are none; an agent that cannot be read is in the list with its error.
pub async fn collect(client: &Client, agents: &Agents) -> Result<Vec<Agent>> {
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
    let mut found: Vec<(String, Option<String>)> = list
        .items
        .iter()
        .filter_map(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            Some((p.metadata.name.clone()?, node))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        anyhow::bail!(
            "no agents in `{}` match `{}`",
            agents.namespace,
            agents.selector
        );
    }
    let mut read = Vec::new();
    for (pod, node) in found {
        let (flows, served_node) = match fetch(client, agents, &pod).await {
            Ok((flows, served_node)) => (Ok(flows), served_node),
            Err(e) => (Err(e), None),
        };
        read.push(Agent {
            pod,
            node: node.or(served_node),
            read: flows,
        });
    }
    Ok(read)
}

/// One agent's `/flows` through the API server's pod proxy, and the node it names.
async fn fetch(
    client: &Client,
    agents: &Agents,
    pod: &str,
) -> Result<(Flows, Option<String>), String> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{pod}:{}/proxy/flows",
        agents.namespace, agents.port
    );
    let request = http::Request::get(&path)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| e.to_string())?;
    let response = client
        .send(request)
        .await
        .map_err(|e| crate::cluster::api_error(&e))?;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let started = header(AGENT_START).as_deref().and_then(parse_rfc3339);
    let node = header(AGENT_NODE);
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| crate::cluster::api_error(&e))?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        // The API server says why in a Status; a proxied agent, in plain text.
        let why = serde_json::from_str::<kube::core::Status>(&text).map_or_else(
            |_| text.lines().next().unwrap_or_default().trim().to_owned(),
            |s| s.message,
        );
        return Err(format!("HTTP {}: {why}", status.as_u16()));
    }
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(e) => bad.push(format!("line {}: {e}", i + 1)),
        }
    }
    if let Some(first) = bad.first() {
        return Err(match bad.len() {
            1 => format!("unreadable record, {first}"),
            n => format!("{n} unreadable records, the first at {first}"),
        });
    }
    Ok((Flows { records, started }, node))
}

/// Below this, an agent that started after the oldest flow of the others is not reported: the
/// stagger of a rolling update.
pub const ROLLOUT_STAGGER: Duration = Duration::from_secs(300);

/// What `collect` read, and what keeps it from being complete.
#[derive(Debug)]
pub struct Report {
    /// Every record read, merged and sorted.
    pub records: Vec<Record>,
    pub agents: usize,
    /// Agents that could not be read.
    pub unread: Vec<Unread>,
    /// Agents that started within the window, or do not say when.
    pub late: Vec<Late>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    pub pod: String,
    pub node: Option<String>,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Late {
    pub pod: String,
    pub node: Option<String>,
    pub why: Lateness,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lateness {
    /// It started this long before now, within the window.
    InWindow {
        started: SystemTime,
        ago: Duration,
        window: Duration,
    },
    /// It started this long after the oldest flow the other agents hold.
    AfterOthers {
        started: SystemTime,
        oldest: SystemTime,
    },
    /// It does not say when it started.
    Unknown,
}

/// What to do with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Print; exit 0 (warnings about late agents, if any, on stderr).
    Complete,
    /// Print what was read, warn; exit 1 (`--allow-partial`).
    Partial,
    /// Print nothing; exit 2.
    Refused,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Complete => 0,
            Self::Partial => 1,
            Self::Refused => 2,
        }
    }
}

/// The oldest sighting in `records` (`first_seen`, else `time`).
fn oldest(records: &[Record]) -> Option<SystemTime> {
    records
        .iter()
        .filter_map(|r| parse_rfc3339(r.first_seen.as_deref().unwrap_or(&r.time)))
        .min()
}

/// Merge what the agents served and say what is missing: the agents not read, and those that
/// started within `window` before `now` (`Duration::ZERO`: no window) or more than
/// [`ROLLOUT_STAGGER`] after the oldest flow the other agents hold. Pure: no API server.
pub fn report(agents: Vec<Agent>, now: SystemTime, window: Duration) -> Report {
    let count = agents.len();
    let oldest_by_agent: Vec<Option<SystemTime>> = agents
        .iter()
        .map(|a| a.read.as_ref().ok().and_then(|f| oldest(&f.records)))
        .collect();
    let mut unread = Vec::new();
    let mut late = Vec::new();
    let mut all = Vec::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let flows = match agent.read {
            Ok(flows) => flows,
            Err(error) => {
                unread.push(Unread {
                    pod: agent.pod,
                    node: agent.node,
                    error,
                });
                continue;
            }
        };
        let others_oldest = oldest_by_agent
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, t)| *t)
            .min();
        let why = match flows.started {
            None => Some(Lateness::Unknown),
            Some(started) => {
                let ago = now.duration_since(started).unwrap_or_default();
                if !window.is_zero() && ago < window {
                    Some(Lateness::InWindow {
                        started,
                        ago,
                        window,
                    })
                } else {
                    others_oldest
                        .filter(|oldest| {
                            started.duration_since(*oldest).unwrap_or_default() > ROLLOUT_STAGGER
                        })
                        .map(|oldest| Lateness::AfterOthers { started, oldest })
                }
            }
        };
        if let Some(why) = why {
            late.push(Late {
                pod: agent.pod,
                node: agent.node,
                why,
            });
        }
        all.extend(flows.records);
    }
    Report {
        records: merge(all),
        agents: count,
        unread,
        late,
    }
}

/// `` agent `POD` on node `NODE` ``.
fn agent(pod: &str, node: Option<&str>) -> String {
    match node {
        Some(node) => format!("agent `{pod}` on node `{node}`"),
        None => format!("agent `{pod}` (no node)"),
    }
}

fn at(t: SystemTime) -> String {
    rfc3339(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos())
}

impl Report {
    /// Print, warn or refuse: an agent not read makes the collection incomplete, and so does,
    /// with `strict`, a late one. Incomplete is refused unless `allow_partial`.
    pub fn outcome(&self, allow_partial: bool, strict: bool) -> Outcome {
        let incomplete = !self.unread.is_empty() || (strict && !self.late.is_empty());
        match (incomplete, allow_partial) {
            (false, _) => Outcome::Complete,
            (true, true) => Outcome::Partial,
            (true, false) => Outcome::Refused,
        }
    }

    /// One line per agent not read.
    pub fn unread_lines(&self) -> Vec<String> {
        self.unread
            .iter()
            .map(|u| {
                format!(
                    "{} could not be read: {}",
                    agent(&u.pod, u.node.as_deref()),
                    u.error
                )
            })
            .collect()
    }

    /// One line per late agent.
    pub fn late_lines(&self) -> Vec<String> {
        self.late
            .iter()
            .map(|l| {
                let who = agent(&l.pod, l.node.as_deref());
                match &l.why {
                    Lateness::InWindow {
                        started,
                        ago,
                        window,
                    } => format!(
                        "{who} started {} ago ({}), within the {} window: its node's flows before then are missing",
                        human(*ago),
                        at(*started),
                        human(*window)
                    ),
                    Lateness::AfterOthers { started, oldest } => format!(
                        "{who} started {} ({} after the oldest flow the other agents hold, {}): its node's flows before then are missing",
                        at(*started),
                        human(started.duration_since(*oldest).unwrap_or_default()),
                        at(*oldest)
                    ),
                    Lateness::Unknown => format!(
                        "{who} does not say when it started (no `{AGENT_START}` header: an older agent): its flows may not cover the window"
                    ),
                }
            })
            .collect()
    }
}

impl Report {
    /// What `collect` says on stderr for `outcome`: the agents not read and the late ones
    /// (errors when they are why nothing is printed, else warnings), then a summary.
    pub fn stderr(&self, outcome: Outcome, strict: bool) -> Vec<String> {
        let refused = outcome == Outcome::Refused;
        let level = |error: bool| if error { "error" } else { "warning" };
        let mut lines: Vec<String> = self
            .unread_lines()
            .into_iter()
            .map(|l| format!("{}: {l}", level(refused)))
            .chain(
                self.late_lines()
                    .into_iter()
                    .map(|l| format!("{}: {l}", level(refused && strict))),
            )
            .collect();
        let read = self.agents - self.unread.len();
        let flows = self.records.len();
        let agents = self.agents;
        match outcome {
            Outcome::Complete => {
                lines.push(format!("collected {flows} flows from {agents} agents"))
            }
            Outcome::Partial => lines.push(format!(
                "warning: collected {flows} flows from {read} of {agents} agents: incomplete"
            )),
            Outcome::Refused => {
                lines.push(format!(
                    "error: incomplete ({read} of {agents} agents read, {} started late); nothing printed",
                    self.late.len()
                ));
                lines.push("  help: `--allow-partial` prints what was read and exits 1".to_owned());
            }
        }
        lines
    }
}

/// `90s`, `30m`, `24h`, `7d`, `1h30m`; `0` or `0s` is no time.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration `{text}`: give a number and a unit (s, m, h, d), e.g. `1h` or `7d`"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let n: u64 = number.parse().map_err(|_| invalid())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(invalid)?;
        number.clear();
    }
    if !number.is_empty() || text.is_empty() {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
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
    #![expect(
        clippy::unwrap_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "tests"
    )]

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

    /// 2026-11-27T10:00:00Z plus `s` seconds.
    fn t(s: i64) -> SystemTime {
        let base = parse_rfc3339("2026-11-27T10:00:00Z").unwrap();
        if s >= 0 {
            base + Duration::from_secs(s.unsigned_abs())
        } else {
            base - Duration::from_secs(s.unsigned_abs())
        }
    }

    /// A record first seen at `t(first_seen)`, to port `port`.
    fn seen(first_seen: i64, port: u16) -> Record {
        let mut r: Record = serde_json::from_str(&flow(1, 1, 1)).unwrap();
        r.first_seen = Some(at(t(first_seen)));
        r.destination.port = Some(port);
        r
    }

    fn read(pod: &str, node: &str, started: Option<i64>, records: Vec<Record>) -> Agent {
        Agent {
            pod: pod.to_owned(),
            node: Some(node.to_owned()),
            read: Ok(Flows {
                records,
                started: started.map(t),
            }),
        }
    }

    fn unread(pod: &str, node: &str, error: &str) -> Agent {
        Agent {
            pod: pod.to_owned(),
            node: Some(node.to_owned()),
            read: Err(error.to_owned()),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: i64 = 86_400;

    #[test]
    fn agents_that_ran_all_along_are_complete() {
        let report = report(
            vec![
                read(
                    "a1",
                    "talos-1",
                    Some(-7 * DAY),
                    vec![seen(-7 * DAY + 60, 5432)],
                ),
                read(
                    "b2",
                    "talos-2",
                    Some(-7 * DAY + 30),
                    vec![seen(-6 * DAY, 9187)],
                ),
            ],
            t(0),
            HOUR,
        );
        assert_eq!(report.outcome(false, true), Outcome::Complete);
        assert!(report.late.is_empty() && report.unread.is_empty());
        assert_eq!((report.records.len(), report.agents), (2, 2));
    }

    #[test]
    fn an_agent_not_read_refuses_the_collection_unless_partial_is_allowed() {
        let report = report(
            vec![
                read("a1", "talos-1", Some(-DAY), vec![seen(-DAY + 5, 5432)]),
                unread("b2", "talos-2", "HTTP 503: no endpoints available"),
                unread("c3", "talos-3", "tcp connect error: Connection refused"),
            ],
            t(0),
            HOUR,
        );
        assert_eq!(report.outcome(false, false), Outcome::Refused);
        assert_eq!(report.outcome(true, false), Outcome::Partial);
        assert_eq!(report.outcome(true, true), Outcome::Partial);
        assert_eq!(
            report.unread_lines(),
            [
                "agent `b2` on node `talos-2` could not be read: HTTP 503: no endpoints available",
                "agent `c3` on node `talos-3` could not be read: tcp connect error: Connection refused",
            ]
        );
        assert_eq!(report.records.len(), 1, "what was read");
        assert_eq!(report.agents, 3);
    }

    #[test]
    fn an_agent_that_started_within_the_window_is_a_warning_or_with_strict_incomplete() {
        let report = report(
            vec![
                read("a1", "talos-1", Some(-DAY), vec![seen(-DAY + 5, 5432)]),
                // Restarted 12 minutes ago: the others' day of flows on talos-2 is gone.
                read("b2", "talos-2", Some(-12 * 60), vec![seen(-11 * 60, 9187)]),
            ],
            t(0),
            HOUR,
        );
        assert_eq!(report.outcome(false, false), Outcome::Complete);
        assert_eq!(report.outcome(false, true), Outcome::Refused);
        assert_eq!(report.outcome(true, true), Outcome::Partial);
        assert_eq!(
            report.late_lines(),
            [
                "agent `b2` on node `talos-2` started 12m00s ago (2026-11-27T09:48:00.000Z), within the 1h00m window: its node's flows before then are missing"
            ]
        );
        assert_eq!(report.records.len(), 2, "its flows are kept");
    }

    #[test]
    fn every_agent_is_late_after_a_rollout_within_the_window() {
        let agents = || {
            vec![
                read("a1", "talos-1", Some(-20 * 60), vec![seen(-19 * 60, 5432)]),
                read("b2", "talos-2", Some(-19 * 60), vec![seen(-18 * 60, 9187)]),
            ]
        };
        let late = report(agents(), t(0), HOUR).late;
        assert_eq!(
            late.len(),
            2,
            "the collection covers 20 minutes, not the hour"
        );
        let late = report(agents(), t(0), Duration::ZERO).late;
        assert!(
            late.is_empty(),
            "no window, and a stagger of a minute: {late:?}"
        );
    }

    #[test]
    fn an_agent_that_started_well_after_the_others_oldest_flow_is_late_whatever_the_window() {
        let agents = vec![
            read(
                "a1",
                "talos-1",
                Some(-7 * DAY),
                vec![seen(-7 * DAY + 60, 5432)],
            ),
            // Restarted three hours ago: outside the 1h window, but a1 holds a week.
            read(
                "b2",
                "talos-2",
                Some(-3 * 3600),
                vec![seen(-3 * 3600 + 60, 9187)],
            ),
            // Started four minutes after a1's oldest flow: a rolling update's stagger.
            read(
                "c3",
                "talos-3",
                Some(-7 * DAY + 300),
                vec![seen(-7 * DAY + 400, 53)],
            ),
        ];
        let report = report(agents, t(0), HOUR);
        assert_eq!(
            report.late,
            [Late {
                pod: "b2".to_owned(),
                node: Some("talos-2".to_owned()),
                why: Lateness::AfterOthers {
                    started: t(-3 * 3600),
                    oldest: t(-7 * DAY + 60),
                },
            }]
        );
        assert_eq!(
            report.late_lines(),
            [
                "agent `b2` on node `talos-2` started 2026-11-27T07:00:00.000Z (6d20h after the oldest flow the other agents hold, 2026-11-20T10:01:00.000Z): its node's flows before then are missing"
            ]
        );
    }

    #[test]
    fn an_agent_that_does_not_say_when_it_started_is_late() {
        let report = report(
            vec![read("a1", "talos-1", None, vec![seen(-60, 5432)])],
            t(0),
            HOUR,
        );
        assert_eq!(report.late[0].why, Lateness::Unknown);
        assert_eq!(
            report.late_lines(),
            [
                "agent `a1` on node `talos-1` does not say when it started (no `x-netpol-agent-start` header: an older agent): its flows may not cover the window"
            ]
        );
        assert_eq!(report.outcome(false, true), Outcome::Refused);
    }

    #[test]
    fn stderr_says_errors_when_nothing_is_printed_and_warnings_otherwise() {
        let agents = || {
            vec![
                read("a1", "talos-1", Some(-DAY), vec![seen(-DAY + 5, 5432)]),
                read("b2", "talos-2", Some(-600), vec![seen(-500, 9187)]),
                unread("c3", "talos-3", "HTTP 503: no endpoints available"),
            ]
        };
        let r = report(agents(), t(0), HOUR);
        let refused = r.outcome(false, false);
        assert_eq!((refused, refused.exit_code()), (Outcome::Refused, 2));
        assert_eq!(
            r.stderr(refused, false),
            [
                "error: agent `c3` on node `talos-3` could not be read: HTTP 503: no endpoints available",
                "warning: agent `b2` on node `talos-2` started 10m00s ago (2026-11-27T09:50:00.000Z), within the 1h00m window: its node's flows before then are missing",
                "error: incomplete (2 of 3 agents read, 1 started late); nothing printed",
                "  help: `--allow-partial` prints what was read and exits 1",
            ]
        );
        let partial = r.outcome(true, true);
        assert_eq!((partial, partial.exit_code()), (Outcome::Partial, 1));
        assert_eq!(
            r.stderr(partial, true),
            [
                "warning: agent `c3` on node `talos-3` could not be read: HTTP 503: no endpoints available",
                "warning: agent `b2` on node `talos-2` started 10m00s ago (2026-11-27T09:50:00.000Z), within the 1h00m window: its node's flows before then are missing",
                "warning: collected 2 flows from 2 of 3 agents: incomplete",
            ]
        );
        let mut complete = agents();
        complete.pop();
        let r = report(complete, t(0), HOUR);
        let outcome = r.outcome(false, false);
        assert_eq!((outcome, outcome.exit_code()), (Outcome::Complete, 0));
        assert_eq!(
            r.stderr(outcome, false),
            [
                "warning: agent `b2` on node `talos-2` started 10m00s ago (2026-11-27T09:50:00.000Z), within the 1h00m window: its node's flows before then are missing",
                "collected 2 flows from 2 agents",
            ]
        );
        let strict = r.outcome(false, true);
        assert_eq!(
            r.stderr(strict, true)[0],
            "error: agent `b2` on node `talos-2` started 10m00s ago (2026-11-27T09:50:00.000Z), within the 1h00m window: its node's flows before then are missing"
        );
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("24h", 86_400),
            ("7d", 604_800),
            ("1h30m", 5400),
            ("0s", 0),
            ("0", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in ["", "1", "h", "1w", "1.5h", "-1h", "99999999999999999999d"] {
            assert_eq!(
                parse_duration(bad),
                Err(format!(
                    "invalid duration `{bad}`: give a number and a unit (s, m, h, d), e.g. `1h` or `7d`"
                )),
                "{bad}"
            );
        }
    }

    fn ok(body: String, started: Option<&str>) -> Response<Body> {
        let mut response = Response::builder().status(200);
        if let Some(started) = started {
            response = response
                .header(AGENT_START, started)
                .header(AGENT_NODE, "from-header");
        }
        response.body(Body::from(body.into_bytes())).unwrap()
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
                let response = if uri.starts_with("/api/v1/namespaces/netpol-observer/pods?") {
                    assert!(
                        uri.contains("labelSelector=app.kubernetes.io%2Fname%3Dnetpol-observer"),
                        "{uri}"
                    );
                    ok(pods.to_owned(), None)
                } else if uri
                    == "/api/v1/namespaces/netpol-observer/pods/netpol-observer-a1:9965/proxy/flows"
                {
                    ok(
                        format!("{}\n", flow(1, 10, 2)),
                        Some("2026-11-20T08:00:00.000Z"),
                    )
                } else if uri
                    == "/api/v1/namespaces/netpol-observer/pods/netpol-observer-b2:9965/proxy/flows"
                {
                    ok(
                        format!(
                            "{}\n{}\n",
                            flow(2, 12, 2),
                            flow(3, 1, 1).replace("5432", "9187")
                        ),
                        Some("2026-11-20T08:00:01.000Z"),
                    )
                } else {
                    panic!("unexpected {uri}");
                };
                send.send_response(response);
            }
            seen
        });
        let agents = collect(&client, &Agents::default()).await.unwrap();
        drop(client);
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            agents
                .iter()
                .map(|a| (a.pod.as_str(), a.node.as_deref()))
                .collect::<Vec<_>>(),
            [
                ("netpol-observer-a1", Some("talos-1")),
                ("netpol-observer-b2", Some("talos-2"))
            ],
            "the pod's node, sorted by pod"
        );
        assert_eq!(
            agents[0].read.as_ref().unwrap().started,
            parse_rfc3339("2026-11-20T08:00:00Z")
        );
        let report = report(agents, t(0), HOUR);
        assert_eq!(report.outcome(false, true), Outcome::Complete);
        let records = report.records;
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

    #[tokio::test]
    async fn agents_that_cannot_be_read_say_why() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        tokio::spawn(async move {
            let pods = include_str!("../tests/fixtures/api/observer-pods.json");
            while let Some((request, send)) = handle.next_request().await {
                let uri = request.uri().to_string();
                let response = if uri.starts_with("/api/v1/namespaces/netpol-observer/pods?") {
                    ok(pods.to_owned(), None)
                } else if uri.contains("netpol-observer-a1") {
                    // The API server cannot reach the pod.
                    Response::builder()
                        .status(503)
                        .body(Body::from(
                            br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error trying to reach service: dial tcp 10.42.0.4:9965: connect: connection refused","reason":"ServiceUnavailable","code":503}"#.to_vec(),
                        ))
                        .unwrap()
                } else {
                    ok(
                        format!("{}\nnot a record\n", flow(2, 12, 2)),
                        Some("2026-11-20T08:00:00.000Z"),
                    )
                };
                send.send_response(response);
            }
        });
        let agents = collect(&client, &Agents::default()).await.unwrap();
        let report = report(agents, t(0), HOUR);
        assert_eq!(
            report.unread_lines(),
            [
                "agent `netpol-observer-a1` on node `talos-1` could not be read: HTTP 503: error trying to reach service: dial tcp 10.42.0.4:9965: connect: connection refused",
                "agent `netpol-observer-b2` on node `talos-2` could not be read: unreadable record, line 2: expected ident at line 1 column 2",
            ]
        );
        assert_eq!(report.outcome(false, false), Outcome::Refused);
    }

    #[tokio::test]
    async fn no_agents_is_an_error() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                send.send_response(ok(
                    r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#
                        .to_owned(),
                    None,
                ));
            }
        });
        let e = collect(&client, &Agents::default()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "no agents in `netpol-observer` match `app.kubernetes.io/name=netpol-observer`"
        );
    }
}
