//! netpol-observer: records every pod's real traffic with eBPF and serves it as netpol flow
//! records.
//!
//! ```text
//! kernel (ebpf/programs): cgroup_skb ingress + egress ──FLOWS map, FLOW_EVENTS, DNS_EVENTS──┐
//! ebpf::Programs (load, attach, detach on drop) <───────────────────────────────────────────┘
//!   new flows + periodic map reads ──aggregate::FlowTable (pairs directions, bounded)
//!   DNS answers ──dns::DnsCache (IP → names, TTLs)
//!   identity (inventory: IP → pod / node / world) ──export: /flows (JSONL), /metrics, /healthz
//!   start time, readiness, identity age, API errors ──health──┘ (/readyz; no lock)
//! capture files (pcap, pcapng) ──capture: frames → IP → packets──> the same FlowTable + DnsCache
//!   ──export::record_of──> JSON lines (`netpol-observer pcap`)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`agent`] | `run`: wires the others together, the refresh loop, clean detach |
//! | [`ebpf`] | loading and attaching the kernel programs (aya) |
//! | [`aggregate`] | the flow table: kernel keys or captured packets → connections → records, bounded |
//! | [`capture`] | capture files (pcap/pcapng: `file`; link layers: `link`; IP and transport: `packet`; direction, DNS, the table: `conversation`) as a flow source |
//! | [`dns`] | DNS answers → IP → names, with TTLs |
//! | [`clock`] | kernel boot-time stamps → wall-clock times |
//! | [`identity`] | who an address is (inventory file or the cluster's index, this node's own addresses), captured with each record |
//! | [`cluster`] | kube-rs reflectors feeding the identity index and the live audit's policies |
//! | [`audit`] | the live audit: records judged by the policy engine, again when the policies or their ends change |
//! | [`health`] | the agent's own state: start time, readiness, identity age, API errors |
//! | [`export`] | `/flows`, `/metrics`, `/healthz`, `/readyz` |
//! | [`collect`] | the laptop side: every agent's `/flows` through the API server, merged |
//!
//! `capture` stands on `aggregate`, `dns`, `identity` and `export` as the agent does.
//! `agent` is the top; `export` reads the table, DNS cache, identities and audit, and `health`;
//! `health` reads `cluster`'s watch groups; `identity` and `cluster` stand on `aggregate`'s and
//! `audit`'s types, `aggregate` keeps `audit`'s verdict with each record. The policy engine, flow records and
//! inventory come from `netpol-compiler`.

pub mod agent;
pub mod aggregate;
pub mod audit;
pub mod capture;
pub mod clock;
pub mod cluster;
pub mod collect;
pub mod dns;
pub mod ebpf;
pub mod export;
pub mod health;
pub mod identity;
