//! Protocols and directions: the vocabulary every layer shares (profiles, policies, flows).

use std::fmt;

/// A protocol of a flow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
    /// Any other IP protocol number.
    #[serde(untagged)]
    Other(u8),
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Icmp => "icmp",
            Self::Icmpv6 => "icmpv6",
            Self::Other(_) => "ip",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "sctp" => Self::Sctp,
            "icmp" | "icmpv4" => Self::Icmp,
            "icmpv6" => Self::Icmpv6,
            other => Self::Other(other.parse().ok()?),
        })
    }

    fn bit(self) -> u8 {
        match self {
            Self::Tcp => 1,
            Self::Udp => 2,
            Self::Sctp => 4,
            Self::Icmp => 8,
            Self::Icmpv6 => 16,
            Self::Other(_) => 32,
        }
    }

    /// ICMP: the "port" of a flow is its type.
    pub fn is_icmp(self) -> bool {
        matches!(self, Self::Icmp | Self::Icmpv6)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(n) => write!(f, "ip/{n}"),
            p => f.write_str(p.as_str()),
        }
    }
}

/// A set of protocols (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtoSet(u8);

impl ProtoSet {
    /// `ANY` in a Cilium port rule: TCP, UDP and SCTP — never ICMP (docs/semantics.md §1.13).
    pub const ANY: Self = Self(1 | 2 | 4);
    /// No protocol: matches nothing.
    pub const NONE: Self = Self(0);

    pub fn of(p: Proto) -> Self {
        Self(p.bit())
    }

    pub fn contains(self, p: Proto) -> bool {
        self.0 & p.bit() != 0
    }
}

impl fmt::Display for ProtoSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ANY {
            return f.write_str("any");
        }
        let names: Vec<&str> = [
            Proto::Tcp,
            Proto::Udp,
            Proto::Sctp,
            Proto::Icmp,
            Proto::Icmpv6,
            Proto::Other(0),
        ]
        .into_iter()
        .filter(|p| self.contains(*p))
        .map(Proto::as_str)
        .collect();
        f.write_str(&names.join("+"))
    }
}

/// The direction of an enforcement point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Egress,
    Ingress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Egress => "egress",
            Self::Ingress => "ingress",
        })
    }
}
