//! netpol-observer: records every pod's real traffic with eBPF and serves it as netpol flow
//! records.
//!
//! ```text
//! kernel (ebpf/programs): cgroup_skb ingress + egress ──FLOWS map, FLOW_EVENTS, DNS_EVENTS──┐
//! ebpf::Programs (load, attach, detach on drop) <───────────────────────────────────────────┘
//!   new flows + periodic map reads ──aggregate::FlowTable (pairs directions, bounded)
//!   DNS answers ──dns::DnsCache (IP → names, TTLs)
//!   identity (inventory: IP → pod / node / world) ──export: /flows (JSONL), /metrics, /healthz
//! ```

pub mod agent;
pub mod aggregate;
pub mod audit;
pub mod clock;
pub mod cluster;
pub mod collect;
pub mod dns;
pub mod ebpf;
pub mod export;
pub mod identity;
