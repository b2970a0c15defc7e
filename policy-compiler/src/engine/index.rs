//! The compiled policy index: evaluation by lookups, not scans (ARCHITECTURE.md, "evaluation
//! is compiled").
//!
//! ```text
//! Entries ──by namespace / cluster-wide──> candidates;  CIDR and DNS selectors numbered
//! label set ──(once per identity)──> selecting entries per direction, default deny
//! world peer ──(once per IP / per name list)──> CIDR class, DNS-name class
//! (subject, direction, peer identity [+ classes]) ──(once per pair)──> entries whose L3 holds
//! (pair, protocol, port) ──(once)──> the decision at that point, shared
//! ```
//!
//! Like Cilium's selector cache, ipcache and policy map, the work per identity, per pair and
//! per port is done once; judging a flow in the steady state is a handful of hash lookups.
//! World peers are keyed by the set of CIDR rules their IP falls into and the set of DNS
//! selectors their names match (Cilium's CIDR and FQDN identities), not by the IP itself, so
//! a million distinct internet addresses make a few pairs, not a million.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::entry::{Entries, Entry, EntryId, L3, PeerMatch, Subject};
use crate::engine::eval::{self, Decision, FlowKey, NamedPorts, Point, Query, Reason};
use crate::engine::identity::{Labels, Peer};
use crate::engine::reach::{self, Reach};
use crate::objects::fqdn::FqdnSelector;
use crate::objects::{Direction, Proto};

/// Entries grouped for lookup.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub entries: Entries,
    /// CNP/KNP entries by the namespace of their subjects.
    by_namespace: FxHashMap<String, Vec<EntryId>>,
    /// CCNP entries (any namespace, reserved endpoints).
    clusterwide: Vec<EntryId>,
    /// Every distinct CIDR predicate of the entries.
    cidrs: Vec<(IpNet, Vec<IpNet>)>,
    /// Every distinct DNS selector (`toFQDNs` and `rules.dns`).
    fqdns: Vec<FqdnSelector>,
}

impl Index {
    pub fn new(entries: Entries) -> Self {
        let mut by_namespace: FxHashMap<String, Vec<EntryId>> = FxHashMap::default();
        let mut clusterwide = Vec::new();
        let mut cidrs: Vec<(IpNet, Vec<IpNet>)> = Vec::new();
        let mut fqdns: Vec<FqdnSelector> = Vec::new();
        for (i, e) in entries.entries.iter().enumerate() {
            let Ok(id) = EntryId::try_from(i) else {
                continue;
            };
            if let L3::Peers(peers) = &e.l3 {
                for p in peers {
                    match p {
                        PeerMatch::Cidr { net, except, .. } => {
                            let c = (*net, except.clone());
                            if !cidrs.contains(&c) {
                                cidrs.push(c);
                            }
                        }
                        PeerMatch::Fqdn(s) if !fqdns.contains(s) => fqdns.push(s.clone()),
                        _ => {}
                    }
                }
            }
            for s in &e.dns {
                if !fqdns.contains(s) {
                    fqdns.push(s.clone());
                }
            }
            if matches!(
                e.subject,
                Subject::Nodes {
                    host_firewall: false,
                    ..
                }
            ) {
                // Host firewall off: host policies are never enforced.
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
            cidrs,
            fqdns,
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
    /// Egress allow entries with DNS rules, for `toFQDNs` visibility.
    dns: Vec<EntryId>,
}

#[derive(Debug)]
struct Identity {
    endpoint: bool,
    /// World-class: selectable by DNS name (and CIDR).
    world: bool,
    /// Selectable by CIDR: world-class, or a node in `policy-cidr-match-mode: nodes`.
    cidr: bool,
    subject: Option<SubjectInfo>,
}

/// No class (a peer that is not world-class).
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PairKey {
    subject: u32,
    direction: u8,
    peer: u32,
    cidr: u32,
    names: u32,
}

#[derive(Debug)]
struct Pair {
    entries: Vec<EntryId>,
    notes: Vec<String>,
    /// Some entry names a port: decisions depend on the pod, not only on the identities.
    named: bool,
    points: FxHashMap<(Proto, u16), Arc<Point>>,
}

/// Judges flows against an [`Index`], caching per identity, pair and port.
pub struct Evaluator<'a> {
    index: &'a Index,
    cluster: &'a dyn NamedPorts,
    by_ptr: FxHashMap<usize, u32>,
    by_content: FxHashMap<Arc<Labels>, u32>,
    /// Every label set whose address is a key of `by_ptr`, kept alive.
    alive: Vec<Arc<Labels>>,
    identities: Vec<Identity>,
    cidr_of_ip: FxHashMap<IpAddr, u32>,
    cidr_sets: FxHashMap<Vec<u32>, u32>,
    names_of: FxHashMap<Vec<String>, u32>,
    name_sets: FxHashMap<Vec<Vec<u32>>, u32>,
    pairs: FxHashMap<PairKey, Pair>,
    /// Every distinct decision, once: pairs that decide alike share it, so that reports
    /// describe each decision once however many pairs reach it.
    decisions: FxHashSet<Arc<Point>>,
    not_endpoint: Arc<Point>,
    /// [`Evaluator::reach`]: whether a point allows what none of its entries matches, by
    /// (subject, ingress, the peer is the host).
    unmatched: FxHashMap<(u32, bool, bool), bool>,
}

impl std::fmt::Debug for Evaluator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("identities", &self.identities.len())
            .field("pairs", &self.pairs.len())
            .finish_non_exhaustive()
    }
}

fn slot(d: Direction) -> usize {
    match d {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    }
}

fn intern<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, u32>, key: K) -> u32 {
    let next = u32::try_from(map.len()).unwrap_or(NONE - 1);
    *map.entry(key).or_insert(next)
}

impl<'a> Evaluator<'a> {
    pub fn new(index: &'a Index, cluster: &'a dyn NamedPorts) -> Self {
        Self {
            index,
            cluster,
            by_ptr: FxHashMap::default(),
            by_content: FxHashMap::default(),
            alive: Vec::new(),
            identities: Vec::new(),
            cidr_of_ip: FxHashMap::default(),
            cidr_sets: FxHashMap::default(),
            names_of: FxHashMap::default(),
            name_sets: FxHashMap::default(),
            pairs: FxHashMap::default(),
            decisions: FxHashSet::default(),
            not_endpoint: Arc::new(Point {
                reason: Some(Reason::NotAnEndpoint),
                ..Point::default()
            }),
            unmatched: FxHashMap::default(),
        }
    }

    /// The identity of a label set: by the `Arc`'s address first (flow readers intern label
    /// sets), by content otherwise.
    fn identity(&mut self, peer: &Peer) -> u32 {
        let ptr = Arc::as_ptr(&peer.labels) as usize;
        if let Some(id) = self.by_ptr.get(&ptr) {
            return *id;
        }
        let id = match self.by_content.get(&peer.labels) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.identities.len()).unwrap_or(NONE - 1);
                self.by_content.insert(peer.labels.clone(), id);
                self.identities.push(Identity {
                    endpoint: self.index.entries.enforces(peer),
                    world: peer.is_world(),
                    cidr: peer.is_world()
                        || (self.index.entries.cidr_selects_nodes && peer.is_node()),
                    subject: None,
                });
                id
            }
        };
        // INVARIANT: an address is a key only while its Arc lives; keep it alive.
        self.alive.push(peer.labels.clone());
        self.by_ptr.insert(ptr, id);
        id
    }

    fn subject_info(&mut self, id: u32, endpoint: &Peer) {
        let index = self.index;
        let Some(identity) = self.identities.get_mut(id as usize) else {
            return;
        };
        if identity.subject.is_some() {
            return;
        }
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
        identity.subject = Some(info);
    }

    /// The CIDR class of an IP: which CIDR predicates of the policies contain it.
    fn cidr_class(&mut self, ip: Option<IpAddr>) -> u32 {
        let Some(ip) = ip else { return NONE };
        if let Some(c) = self.cidr_of_ip.get(&ip) {
            return *c;
        }
        let set: Vec<u32> = self
            .index
            .cidrs
            .iter()
            .enumerate()
            .filter(|(_, (net, except))| {
                net.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
            })
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        let class = intern(&mut self.cidr_sets, set);
        self.cidr_of_ip.insert(ip, class);
        class
    }

    /// The DNS class of a list of names: for each name, which DNS selectors match it.
    fn names_class(&mut self, names: &[String]) -> u32 {
        if names.is_empty() {
            return NONE;
        }
        if let Some(c) = self.names_of.get(names) {
            return *c;
        }
        let mut set: Vec<Vec<u32>> = names
            .iter()
            .map(|n| {
                self.index
                    .fqdns
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.matches(n))
                    .filter_map(|(i, _)| u32::try_from(i).ok())
                    .collect::<Vec<u32>>()
            })
            .filter(|v| !v.is_empty())
            .collect();
        set.sort();
        set.dedup();
        let class = intern(&mut self.name_sets, set);
        self.names_of.insert(names.to_vec(), class);
        class
    }

    fn point(
        &mut self,
        direction: Direction,
        q: &FlowKey<'_>,
        ids: (u32, u32),
        classes: (u32, u32),
    ) -> Arc<Point> {
        let (endpoint, other, subject, peer) = match direction {
            Direction::Egress => (q.src, q.dst, ids.0, ids.1),
            Direction::Ingress => (q.dst, q.src, ids.1, ids.0),
        };
        if !self
            .identities
            .get(subject as usize)
            .is_some_and(|i| i.endpoint)
        {
            return self.not_endpoint.clone();
        }
        // The classes are NONE for a peer that no CIDR or DNS selector can select.
        let (cidr, names) = classes;
        let key = PairKey {
            subject,
            direction: u8::from(direction == Direction::Ingress),
            peer,
            cidr,
            names,
        };
        let proto = q.proto;
        if let Some(pair) = self.pairs.get(&key)
            && !pair.named
            && let Some(p) = proto.and_then(|p| pair.points.get(&(p, q.port)))
        {
            return p.clone();
        }
        if !self.pairs.contains_key(&key) {
            self.subject_info(subject, endpoint);
            self.subject_info(ids.0, q.src);
            let pair = self.pair(direction, subject, ids.0, other);
            self.pairs.insert(key, pair);
        }
        let index = self.index;
        let cluster = self.cluster;
        let Some(pair) = self.pairs.get(&key) else {
            return Arc::new(Point::default());
        };
        let mut notes = pair.notes.clone();
        let matched: Vec<EntryId> = pair
            .entries
            .iter()
            .copied()
            .filter(|id| {
                index
                    .entry(*id)
                    .is_some_and(|e| eval::l4_matches(e, q, cluster, &mut notes))
            })
            .collect();
        let info = self
            .identities
            .get(subject as usize)
            .and_then(|i| i.subject.as_ref());
        let s = slot(direction);
        let selecting = info
            .and_then(|i| i.selecting.get(s))
            .map_or(&[][..], Vec::as_slice);
        let default_deny = info
            .and_then(|i| i.default_deny.get(s))
            .copied()
            .unwrap_or(false);
        let point = eval::decide(
            &index.entries,
            direction,
            endpoint,
            other,
            selecting,
            default_deny,
            &matched,
            notes,
        );
        let point = match self.decisions.get(&point) {
            Some(shared) => shared.clone(),
            None => {
                let point = Arc::new(point);
                self.decisions.insert(point.clone());
                point
            }
        };
        if let Some(pair) = self.pairs.get_mut(&key)
            && !pair.named
            && let Some(p) = proto
        {
            pair.points.insert((p, q.port), point.clone());
        }
        point
    }

    /// The entries of `subject` in `direction` whose L3 part holds for `other`.
    fn pair(&self, direction: Direction, subject: u32, source: u32, other: &Peer) -> Pair {
        let index = self.index;
        let info = self
            .identities
            .get(subject as usize)
            .and_then(|i| i.subject.as_ref());
        // Gathered only when a `toFQDNs` selector matches a name: most pairs never ask.
        let dns_ids = self
            .identities
            .get(source as usize)
            .and_then(|i| i.subject.as_ref())
            .map_or(&[][..], |i| i.dns.as_slice());
        let visible = |name: &str| {
            let dns: Vec<&Entry> = dns_ids.iter().filter_map(|id| index.entry(*id)).collect();
            eval::dns_visible(&dns, name)
        };
        let mut pair = Pair {
            entries: Vec::new(),
            notes: Vec::new(),
            named: false,
            points: FxHashMap::default(),
        };
        let selecting = info
            .and_then(|i| i.selecting.get(slot(direction)))
            .map_or(&[][..], Vec::as_slice);
        let selected = || selecting.iter().filter_map(|id| index.entry(*id));
        let (requires_allow, requires_deny) = (
            eval::requirements(selected(), false),
            eval::requirements(selected(), true),
        );
        for id in selecting {
            if let Some(e) = index.entry(*id)
                && eval::l3_matches(e, other, &visible, &mut pair.notes)
                && eval::meets_requirements(
                    e,
                    other,
                    if e.deny {
                        &requires_deny
                    } else {
                        &requires_allow
                    },
                )
            {
                pair.named |= e.l4.iter().flatten().any(|p| p.name.is_some());
                pair.entries.push(*id);
            }
        }
        pair
    }

    /// What `src` may open to `dst`, on every protocol and port: the ports both enforcement
    /// points allow (ICMP: the types). Not cached per pair: a connectivity report asks each
    /// pair once.
    pub fn reach(&mut self, src: &Peer, dst: &Peer) -> Reach {
        let ids = (self.identity(src), self.identity(dst));
        let egress = self.reach_side(Direction::Egress, src, dst, ids);
        if egress.is_empty() {
            return egress;
        }
        let ingress = self.reach_side(Direction::Ingress, src, dst, ids);
        egress.intersect(&ingress)
    }

    /// Whether `endpoint` is default-deny in `direction`: what no rule allows is dropped.
    pub fn isolated(&mut self, endpoint: &Peer, direction: Direction) -> bool {
        let id = self.identity(endpoint);
        if !self.identities.get(id as usize).is_some_and(|i| i.endpoint) {
            return false;
        }
        self.subject_info(id, endpoint);
        let other = Peer {
            labels: Arc::new(crate::engine::identity::Reserved::World.labels()),
            ..Peer::default()
        };
        let (selecting, default_deny) = self.selecting(id, direction);
        let point = eval::decide(
            &self.index.entries,
            direction,
            endpoint,
            &other,
            &selecting,
            default_deny,
            &[],
            Vec::new(),
        );
        point.reason == Some(Reason::DefaultDeny)
    }

    fn selecting(&self, subject: u32, direction: Direction) -> (Vec<EntryId>, bool) {
        let info = self
            .identities
            .get(subject as usize)
            .and_then(|i| i.subject.as_ref());
        let s = slot(direction);
        (
            info.and_then(|i| i.selecting.get(s))
                .cloned()
                .unwrap_or_default(),
            info.and_then(|i| i.default_deny.get(s))
                .copied()
                .unwrap_or(false),
        )
    }

    /// [`Self::selecting`], borrowed.
    fn selecting_slice(&self, subject: u32, direction: Direction) -> (&[EntryId], bool) {
        let info = self
            .identities
            .get(subject as usize)
            .and_then(|i| i.subject.as_ref());
        let s = slot(direction);
        (
            info.and_then(|i| i.selecting.get(s))
                .map_or(&[][..], Vec::as_slice),
            info.and_then(|i| i.default_deny.get(s))
                .copied()
                .unwrap_or(false),
        )
    }

    /// One enforcement point's part of [`Evaluator::reach`].
    fn reach_side(
        &mut self,
        direction: Direction,
        src: &Peer,
        dst: &Peer,
        ids: (u32, u32),
    ) -> Reach {
        let (endpoint, other, subject) = match direction {
            Direction::Egress => (src, dst, ids.0),
            Direction::Ingress => (dst, src, ids.1),
        };
        if !self
            .identities
            .get(subject as usize)
            .is_some_and(|i| i.endpoint)
        {
            return Reach::all();
        }
        self.subject_info(subject, endpoint);
        self.subject_info(ids.0, src);
        let pair = self.pair(direction, subject, ids.0, other);
        if pair.entries.is_empty() {
            // What no entry matches: the same for every peer of this subject and direction
            // but the host (allowed in at ingress, `AllowedLocalhost`), decided once.
            let key = (subject, direction == Direction::Ingress, other.is_host());
            let allowed = match self.unmatched.get(&key) {
                Some(allowed) => *allowed,
                None => {
                    let (selecting, default_deny) = self.selecting_slice(subject, direction);
                    let allowed = eval::decide(
                        &self.index.entries,
                        direction,
                        endpoint,
                        other,
                        selecting,
                        default_deny,
                        &[],
                        Vec::new(),
                    )
                    .allows();
                    self.unmatched.insert(key, allowed);
                    allowed
                }
            };
            return if allowed { Reach::all() } else { Reach::none() };
        }
        let (selecting, default_deny) = self.selecting_slice(subject, direction);
        let index = self.index;
        let cluster = self.cluster;
        let decide = |matched: &[EntryId]| {
            eval::decide(
                &index.entries,
                direction,
                endpoint,
                other,
                selecting,
                default_deny,
                matched,
                Vec::new(),
            )
            .allows()
        };
        let entries: Vec<(EntryId, &Entry)> = pair
            .entries
            .iter()
            .filter_map(|id| index.entry(*id).map(|e| (*id, e)))
            .collect();
        if entries.iter().all(|(_, e)| e.l4.is_none()) {
            let ids: Vec<EntryId> = entries.iter().map(|(id, _)| *id).collect();
            return if decide(&ids) {
                Reach::all()
            } else {
                Reach::none()
            };
        }
        let mut reach = Reach::none();
        let mut decided: FxHashMap<Vec<EntryId>, bool> = FxHashMap::default();
        for proto in reach::PROTOCOLS {
            let (lo, hi) = reach::space(proto);
            // Every port where some entry's match starts or stops.
            let mut cuts: Vec<u32> = vec![u32::from(lo), u32::from(hi) + 1];
            for (_, e) in &entries {
                for pm in e.l4.iter().flatten() {
                    if !pm.protocols.contains(proto) {
                        continue;
                    }
                    let (first, last) = match &pm.name {
                        None => (pm.first, pm.last),
                        Some(name) => {
                            let resolved = match direction {
                                Direction::Ingress => dst
                                    .named_ports
                                    .iter()
                                    .find(|np| np.name == *name && np.protocol == proto)
                                    .map(|np| np.port),
                                Direction::Egress => cluster.resolve(name, proto),
                            };
                            match resolved {
                                Some(n) => (n, pm.last.max(n)),
                                None => continue,
                            }
                        }
                    };
                    cuts.push(u32::from(first));
                    cuts.push(u32::from(last) + 1);
                }
            }
            cuts.retain(|c| *c >= u32::from(lo) && *c <= u32::from(hi) + 1);
            cuts.sort_unstable();
            cuts.dedup();
            let mut allowed = Vec::new();
            for w in cuts.windows(2) {
                let (Some(a), Some(b)) = (w.first(), w.get(1)) else {
                    continue;
                };
                let (Ok(first), Ok(last)) = (u16::try_from(*a), u16::try_from(*b - 1)) else {
                    continue;
                };
                let key = FlowKey {
                    src,
                    dst,
                    proto: Some(proto),
                    port: first,
                };
                let mut notes = Vec::new();
                let matched: Vec<EntryId> = entries
                    .iter()
                    .filter(|(_, e)| eval::l4_matches(e, &key, cluster, &mut notes))
                    .map(|(id, _)| *id)
                    .collect();
                let ok = match decided.get(&matched) {
                    Some(ok) => *ok,
                    None => {
                        let ok = decide(&matched);
                        decided.insert(matched, ok);
                        ok
                    }
                };
                if ok {
                    allowed.push((first, last));
                }
            }
            reach.set(proto, allowed);
        }
        reach
    }

    /// The decision for one flow.
    pub fn decide(&mut self, q: &Query) -> Decision {
        self.decide_key(&q.key())
    }

    /// The decision for one flow, by reference.
    pub fn decide_key(&mut self, q: &FlowKey<'_>) -> Decision {
        let ids = (self.identity(q.src), self.identity(q.dst));
        // Only the peer side's classes matter: the source's for ingress, the destination's for
        // egress; a class only for what can select the peer (CIDR: world or, in
        // `policy-cidr-match-mode: nodes`, a node; names: world).
        let classes = |this: &mut Self, id: u32, peer: &Peer| {
            let (cidr, world) = this
                .identities
                .get(id as usize)
                .map_or((false, false), |i| (i.cidr, i.world));
            (
                if cidr { this.cidr_class(peer.ip) } else { NONE },
                if world {
                    this.names_class(&peer.names)
                } else {
                    NONE
                },
            )
        };
        let src_classes = classes(self, ids.0, q.src);
        let dst_classes = classes(self, ids.1, q.dst);
        Decision {
            egress: self.point(Direction::Egress, q, ids, dst_classes),
            ingress: self.point(Direction::Ingress, q, ids, src_classes),
        }
    }
}
