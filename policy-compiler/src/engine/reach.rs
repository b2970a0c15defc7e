//! What one peer may open to another: for each protocol, the ports (ICMP: the types) that both
//! enforcement points allow. The connectivity and diff reports are made of these.
//!
//! ```text
//! (src, dst) ──Evaluator::reach──> egress side ∩ ingress side ──> Reach {protocol → intervals}
//!   each side: the entries whose L3 holds for the pair cut every protocol's port space at their
//!   port boundaries; one decision per piece (the decision cannot change inside a piece)
//! ```

use crate::objects::Proto;

/// The protocols a [`Reach`] covers, in name order (how reports print them).
pub const PROTOCOLS: [Proto; 5] = [
    Proto::Icmp,
    Proto::Icmpv6,
    Proto::Sctp,
    Proto::Tcp,
    Proto::Udp,
];

/// The port space of a protocol: ICMP types 0-255, ports 1-65535 (port 0 is no port a
/// connection can use; Cilium's `port: 0` means every port).
pub fn space(proto: Proto) -> (u16, u16) {
    if proto.is_icmp() {
        (0, 255)
    } else {
        (1, 65535)
    }
}

fn slot(proto: Proto) -> Option<usize> {
    PROTOCOLS.iter().position(|p| *p == proto)
}

/// Allowed ports per protocol: sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reach {
    sets: [Vec<(u16, u16)>; 5],
}

impl Reach {
    /// Nothing allowed.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every protocol and port.
    pub fn all() -> Self {
        let mut r = Self::default();
        for p in PROTOCOLS {
            r.set(p, vec![space(p)]);
        }
        r
    }

    /// The intervals allowed for `proto` (none for protocols outside [`PROTOCOLS`]).
    pub fn get(&self, proto: Proto) -> &[(u16, u16)] {
        slot(proto)
            .and_then(|i| self.sets.get(i))
            .map_or(&[], Vec::as_slice)
    }

    /// Set the intervals of `proto`; they are sorted and merged.
    pub fn set(&mut self, proto: Proto, mut intervals: Vec<(u16, u16)>) {
        intervals.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(intervals.len());
        for (a, b) in intervals {
            match merged.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        if let Some(s) = slot(proto).and_then(|i| self.sets.get_mut(i)) {
            *s = merged;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sets.iter().all(Vec::is_empty)
    }

    /// Whether `proto` is open on its whole port space.
    pub fn is_full(&self, proto: Proto) -> bool {
        self.get(proto) == [space(proto)]
    }

    /// Every protocol on every port.
    pub fn is_all(&self) -> bool {
        PROTOCOLS.iter().all(|p| self.is_full(*p))
    }

    pub fn allows(&self, proto: Proto, port: u16) -> bool {
        self.get(proto)
            .iter()
            .any(|(a, b)| *a <= port && port <= *b)
    }

    /// What both allow.
    pub fn intersect(&self, other: &Self) -> Self {
        let mut out = Self::default();
        for p in PROTOCOLS {
            let (mut i, mut j) = (0, 0);
            let (x, y) = (self.get(p), other.get(p));
            let mut v = Vec::new();
            while let (Some(a), Some(b)) = (x.get(i), y.get(j)) {
                let lo = a.0.max(b.0);
                let hi = a.1.min(b.1);
                if lo <= hi {
                    v.push((lo, hi));
                }
                if a.1 < b.1 { i += 1 } else { j += 1 }
            }
            out.set(p, v);
        }
        out
    }

    /// What either allows.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = Self::default();
        for p in PROTOCOLS {
            out.set(p, self.get(p).iter().chain(other.get(p)).copied().collect());
        }
        out
    }

    /// What `self` allows and `other` does not.
    pub fn minus(&self, other: &Self) -> Self {
        let mut out = Self::default();
        for p in PROTOCOLS {
            let mut v = Vec::new();
            for &(a, b) in self.get(p) {
                let mut start = u32::from(a);
                for &(c, d) in other.get(p) {
                    if u32::from(d) < start || u32::from(c) > u32::from(b) {
                        continue;
                    }
                    if u32::from(c) > start {
                        v.push((start, u32::from(c) - 1));
                    }
                    start = u32::from(d) + 1;
                }
                if start <= u32::from(b) {
                    v.push((start, u32::from(b)));
                }
            }
            out.set(
                p,
                v.into_iter()
                    .filter_map(|(a, b)| Some((u16::try_from(a).ok()?, u16::try_from(b).ok()?)))
                    .collect(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reach(tcp: &[(u16, u16)]) -> Reach {
        let mut r = Reach::none();
        r.set(Proto::Tcp, tcp.to_vec());
        r
    }

    #[test]
    fn intervals_are_merged_when_they_touch() {
        let r = reach(&[(80, 80), (81, 90), (100, 100), (85, 95)]);
        assert_eq!(r.get(Proto::Tcp), [(80, 95), (100, 100)]);
    }

    #[test]
    fn all_is_every_protocol_on_its_whole_space() {
        assert!(Reach::all().is_all());
        assert!(Reach::all().is_full(Proto::Icmp));
        assert_eq!(Reach::all().get(Proto::Icmp), [(0, 255)]);
        assert!(!reach(&[(1, 65535)]).is_all());
        assert!(Reach::none().is_empty());
    }

    fn arb() -> impl Strategy<Value = Reach> {
        proptest::collection::vec((0u16..200, 0u16..20), 0..6).prop_map(|v| {
            reach(
                &v.into_iter()
                    .map(|(a, w)| (a, a.saturating_add(w)))
                    .collect::<Vec<_>>(),
            )
        })
    }

    proptest! {
        /// Set algebra against a port-by-port model.
        #[test]
        fn algebra_matches_ports(a in arb(), b in arb()) {
            let (i, u, m) = (a.intersect(&b), a.union(&b), a.minus(&b));
            for port in 0u16..230 {
                let (x, y) = (a.allows(Proto::Tcp, port), b.allows(Proto::Tcp, port));
                prop_assert_eq!(i.allows(Proto::Tcp, port), x && y);
                prop_assert_eq!(u.allows(Proto::Tcp, port), x || y);
                prop_assert_eq!(m.allows(Proto::Tcp, port), x && !y);
            }
        }
    }
}
