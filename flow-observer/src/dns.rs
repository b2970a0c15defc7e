//! DNS answers → an IP → names cache that honours TTLs.
//!
//! The kernel copies DNS answers (source port 53) into a ring buffer; each is parsed with
//! `simple-dns`. Every A/AAAA record's address gets its owner name and the question's name (so
//! `api.thetvdb.com` CNAME `x.cdn.net` A 1.2.3.4 gives 1.2.3.4 both names), until the TTL runs
//! out. The cache is bounded; the oldest entries go first.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rustc_hash::FxHashMap;
use simple_dns::Packet;
use simple_dns::rdata::RData;

/// Addresses and the names they were resolved from, each with an expiry (seconds, any
/// monotonic base the caller chooses).
#[derive(Debug, Clone)]
pub struct DnsCache {
    entries: FxHashMap<IpAddr, FxHashMap<String, u64>>,
    max: usize,
    pub answers: u64,
    pub unparsable: u64,
}

/// One resolved address from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub ip: IpAddr,
    pub name: String,
    pub ttl: u32,
}

/// The addresses a DNS response message resolves, with names (lowercase, no trailing dot).
pub fn answers(message: &[u8]) -> Option<Vec<Resolved>> {
    let packet = Packet::parse(message).ok()?;
    let questions: Vec<String> = packet
        .questions
        .iter()
        .map(|q| normalize(&q.qname.to_string()))
        .collect();
    let mut out = Vec::new();
    for rr in &packet.answers {
        let ip = match &rr.rdata {
            RData::A(a) => IpAddr::from(std::net::Ipv4Addr::from(a.address)),
            RData::AAAA(a) => IpAddr::from(std::net::Ipv6Addr::from(a.address)),
            _ => continue,
        };
        let owner = normalize(&rr.name.to_string());
        let mut names: BTreeSet<String> = questions.iter().cloned().collect();
        names.insert(owner);
        for name in names.into_iter().filter(|n| !n.is_empty()) {
            out.push(Resolved {
                ip,
                name,
                ttl: rr.ttl,
            });
        }
    }
    Some(out)
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsCache {
    pub fn new(max: usize) -> Self {
        Self {
            entries: FxHashMap::default(),
            max,
            answers: 0,
            unparsable: 0,
        }
    }

    /// Record a DNS message seen at `now` (seconds).
    pub fn learn(&mut self, message: &[u8], now: u64) {
        let Some(resolved) = answers(message) else {
            self.unparsable += 1;
            return;
        };
        self.answers += 1;
        for r in resolved {
            if self.entries.len() >= self.max && !self.entries.contains_key(&r.ip) {
                self.expire(now);
                if self.entries.len() >= self.max {
                    continue;
                }
            }
            // Keep names at least a minute: connections often start after short TTLs end.
            let until = now + u64::from(r.ttl).max(60);
            let slot = self
                .entries
                .entry(r.ip)
                .or_default()
                .entry(r.name)
                .or_insert(until);
            *slot = (*slot).max(until);
        }
    }

    /// Forget what has expired.
    pub fn expire(&mut self, now: u64) {
        self.entries.retain(|_, names| {
            names.retain(|_, until| *until > now);
            !names.is_empty()
        });
    }

    /// The names an address was resolved from (sorted), as of `now`.
    pub fn names(&self, ip: IpAddr, now: u64) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .get(&ip)
            .map(|n| {
                n.iter()
                    .filter(|(_, u)| **u > now)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use simple_dns::{CLASS, Name, Question, ResourceRecord, rdata};

    fn response() -> Vec<u8> {
        let mut p = Packet::new_reply(7);
        p.questions.push(Question::new(
            Name::new_unchecked("API.TheTVDB.com."),
            simple_dns::TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("api.thetvdb.com"),
            CLASS::IN,
            300,
            RData::CNAME(rdata::CNAME(Name::new_unchecked("edge.cdn.net"))),
        ));
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("edge.cdn.net"),
            CLASS::IN,
            120,
            RData::A(rdata::A {
                address: u32::from(std::net::Ipv4Addr::new(151, 101, 1, 1)),
            }),
        ));
        p.build_bytes_vec().unwrap()
    }

    #[test]
    fn answers_give_the_question_and_owner_names() {
        let mut cache = DnsCache::new(10);
        cache.learn(&response(), 1000);
        let ip: IpAddr = "151.101.1.1".parse().unwrap();
        assert_eq!(cache.names(ip, 1000), ["api.thetvdb.com", "edge.cdn.net"]);
        assert_eq!(cache.names(ip, 1000 + 120), Vec::<String>::new());
        cache.expire(2000);
        assert!(cache.is_empty());
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut cache = DnsCache::new(10);
        cache.learn(&[1, 2, 3], 0);
        assert_eq!(cache.unparsable, 1);
    }
}
