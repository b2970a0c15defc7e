//! The compiled policy index: evaluation by lookups, not scans (ARCHITECTURE.md, "evaluation
//! is compiled").
//!
//! ```text
//! Entries ──by namespace / cluster-wide──> candidates
//! endpoint identity ──(once per identity)──> selecting entries per direction, default deny
//! (endpoint identity, direction, peer identity) ──(once per pair)──> entries whose L3 holds
//! flow ──> L4 check over those few entries ──> eval::decide (deny > allow > default)
//! ```
//!
//! Like Cilium's selector cache and policy map, the work per identity and per identity pair is
//! done once; judging a flow is two hash lookups and an interval check. Identities are keyed by
//! their interned label sets (pointer identity of the `Arc`, kept alive by the cache).

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::entry::{Entries, Entry, EntryId, Subject};
use crate::eval::{self, Decision, Direction, NamedPorts, Point, Query, Reason};
use crate::identity::{Labels, Peer};

/// Entries grouped for lookup.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub entries: Entries,
    /// CNP/KNP entries by the namespace of their subjects.
    by_namespace: FxHashMap<String, Vec<EntryId>>,
    /// CCNP entries (any namespace, reserved endpoints).
    clusterwide: Vec<EntryId>,
}

impl Index {
    pub fn new(entries: Entries) -> Self {
        let mut by_namespace: FxHashMap<String, Vec<EntryId>> = FxHashMap::default();
        let mut clusterwide = Vec::new();
        for (i, e) in entries.entries.iter().enumerate() {
            let Ok(id) = EntryId::try_from(i) else {
                continue;
            };
            if matches!(e.subject, Subject::Nodes(_)) {
                // Host firewall off: never enforced.
                continue;
            }
            match &e.namespace {
                Some(ns) => by_namespace.entry(ns.clone()).or_default().push(id),
                None => clusterwide.push(id),
            }
        }
        Self {
            entries,
            by_namespace,
            clusterwide,
        }
    }

    pub fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.entries.entries.get(id as usize)
    }
}

#[derive(Debug, Default)]
struct SubjectInfo {
    selecting: [Vec<EntryId>; 2],
    default_deny: [bool; 2],
    /// Egress entries with DNS rules, for `toFQDNs` visibility.
    dns: Vec<EntryId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PeerKey {
    labels: u32,
    /// Only for world-class peers: CIDR and FQDN rules look at them.
    ip: Option<IpAddr>,
    names: Vec<String>,
}

#[derive(Debug, Default)]
struct L3Match {
    entries: Vec<EntryId>,
    notes: Vec<String>,
}

fn slot(d: Direction) -> usize {
    match d {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    }
}

/// Judges flows against an [`Index`], caching per identity and identity pair.
pub struct Evaluator<'a> {
    index: &'a Index,
    cluster: &'a dyn NamedPorts,
    labels: FxHashMap<*const Labels, (Arc<Labels>, u32)>,
    by_content: FxHashMap<Arc<Labels>, u32>,
    subjects: FxHashMap<u32, SubjectInfo>,
    peers: FxHashMap<PeerKey, u32>,
    pairs: FxHashMap<(u32, usize, u32), L3Match>,
}

impl std::fmt::Debug for Evaluator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("identities", &self.by_content.len())
            .field("pairs", &self.pairs.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Evaluator<'a> {
    pub fn new(index: &'a Index, cluster: &'a dyn NamedPorts) -> Self {
        Self {
            index,
            cluster,
            labels: FxHashMap::default(),
            by_content: FxHashMap::default(),
            subjects: FxHashMap::default(),
            peers: FxHashMap::default(),
            pairs: FxHashMap::default(),
        }
    }

    fn label_id(&mut self, labels: &Arc<Labels>) -> u32 {
        let ptr = Arc::as_ptr(labels);
        if let Some((_, id)) = self.labels.get(&ptr) {
            return *id;
        }
        let next = u32::try_from(self.by_content.len()).unwrap_or(u32::MAX);
        let id = *self.by_content.entry(labels.clone()).or_insert(next);
        self.labels.insert(ptr, (labels.clone(), id));
        id
    }

    fn subject(&mut self, id: u32, endpoint: &Peer) -> &SubjectInfo {
        let index = self.index;
        self.subjects.entry(id).or_insert_with(|| {
            let mut info = SubjectInfo::default();
            let ns = endpoint.labels.namespace();
            let candidates = index.clusterwide.iter().chain(
                ns.and_then(|ns| index.by_namespace.get(ns))
                    .into_iter()
                    .flatten(),
            );
            for id in candidates {
                let Some(e) = index.entry(*id) else { continue };
                if !eval::selects(e, endpoint) {
                    continue;
                }
                let s = slot(e.direction);
                if let Some(list) = info.selecting.get_mut(s) {
                    list.push(*id);
                }
                if let Some(dd) = info.default_deny.get_mut(s) {
                    *dd |= e.default_deny;
                }
                if e.direction == Direction::Egress && !e.dns.is_empty() && !e.deny {
                    info.dns.push(*id);
                }
            }
            for list in &mut info.selecting {
                list.sort_unstable();
            }
            info
        })
    }

    fn peer_id(&mut self, peer: &Peer) -> u32 {
        let labels = self.label_id(&peer.labels);
        let key = if peer.is_world() {
            PeerKey {
                labels,
                ip: peer.ip,
                names: peer.names.clone(),
            }
        } else {
            PeerKey {
                labels,
                ip: None,
                names: Vec::new(),
            }
        };
        let next = u32::try_from(self.peers.len()).unwrap_or(u32::MAX);
        *self.peers.entry(key).or_insert(next)
    }

    fn point(&mut self, direction: Direction, q: &Query) -> Point {
        let (endpoint, other) = match direction {
            Direction::Egress => (&q.src, &q.dst),
            Direction::Ingress => (&q.dst, &q.src),
        };
        if !endpoint.is_endpoint() {
            return Point {
                reason: Some(Reason::NotAnEndpoint),
                ..Point::default()
            };
        }
        let subject_id = self.label_id(&endpoint.labels);
        let source_id = self.label_id(&q.src.labels);
        let peer_id = self.peer_id(other);
        let s = slot(direction);
        // DNS visibility is the source's; make sure its info exists.
        if q.src.is_endpoint() {
            self.subject(source_id, &q.src);
        }
        self.subject(subject_id, endpoint);
        let index = self.index;
        if !self.pairs.contains_key(&(subject_id, s, peer_id)) {
            let dns: Vec<&Entry> = self
                .subjects
                .get(&source_id)
                .map(|i| i.dns.iter().filter_map(|id| index.entry(*id)).collect())
                .unwrap_or_default();
            let visible = |name: &str| eval::dns_visible(&dns, name);
            let mut m = L3Match::default();
            let selecting = self
                .subjects
                .get(&subject_id)
                .and_then(|i| i.selecting.get(s))
                .cloned()
                .unwrap_or_default();
            for id in selecting {
                if let Some(e) = index.entry(id)
                    && eval::l3_matches(e, other, &visible, &mut m.notes)
                {
                    m.entries.push(id);
                }
            }
            self.pairs.insert((subject_id, s, peer_id), m);
        }
        let Some(info) = self.subjects.get(&subject_id) else {
            return Point::default();
        };
        let Some(l3) = self.pairs.get(&(subject_id, s, peer_id)) else {
            return Point::default();
        };
        let mut notes = l3.notes.clone();
        let matched: Vec<EntryId> = l3
            .entries
            .iter()
            .copied()
            .filter(|id| {
                index
                    .entry(*id)
                    .is_some_and(|e| eval::l4_matches(e, q, self.cluster, &mut notes))
            })
            .collect();
        let selecting = info.selecting.get(s).map_or(&[][..], Vec::as_slice);
        let default_deny = info.default_deny.get(s).copied().unwrap_or(false);
        eval::decide(
            &index.entries.entries,
            direction,
            endpoint,
            other,
            selecting,
            default_deny,
            &matched,
            notes,
        )
    }

    /// The decision for one flow.
    pub fn decide(&mut self, q: &Query) -> Decision {
        Decision {
            egress: self.point(Direction::Egress, q),
            ingress: self.point(Direction::Ingress, q),
        }
    }
}
