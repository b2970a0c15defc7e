//! Ports as profiles write them: `443`, `53/udp`, `6881-6889/udp`, `http`, `icmp/echo-request`.

use std::fmt;

/// A transport protocol a port rule can name (docs/semantics.md §1.13: `ANY` is never
/// emitted by the compiler, which always writes the protocol explicitly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A port or an inclusive port range of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub protocol: Protocol,
    pub first: u16,
    /// Equal to `first` for a single port.
    pub last: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}/{}", self.first, self.protocol.as_str())
        } else {
            write!(f, "{}-{}/{}", self.first, self.last, self.protocol.as_str())
        }
    }
}

/// ICMP family (docs/semantics.md §1.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IcmpFamily {
    V4,
    V6,
}

/// One ICMP type of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IcmpType {
    pub family: IcmpFamily,
    pub kind: u8,
}

impl fmt::Display for IcmpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = match self.family {
            IcmpFamily::V4 => "icmp",
            IcmpFamily::V6 => "icmpv6",
        };
        write!(f, "{family}/{}", self.kind)
    }
}

/// What one entry of `on:` means once parsed (names not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    Range(PortRange),
    Icmp(IcmpType),
    /// A named port of the receiving service.
    Name(String),
}

/// A resolved L4 match: what ends up in `toPorts` or `icmps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    Port(PortRange),
    Icmp(IcmpType),
}

impl fmt::Display for L4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L4::Port(p) => p.fmt(f),
            L4::Icmp(i) => i.fmt(f),
        }
    }
}

/// Why a port text is invalid: the message, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    pub message: String,
    pub help: String,
}

fn err(message: impl Into<String>, help: impl Into<String>) -> PortError {
    PortError {
        message: message.into(),
        help: help.into(),
    }
}

const PORT_HELP: &str = "write a port as `443`, `53/udp`, `6881-6889/udp`, a port name such as `http`, or `icmp/echo-request`";

/// Parse one `on:` entry.
pub fn parse_ref(text: &str) -> Result<PortRef, PortError> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if let Some(kind) = lower
        .strip_prefix("icmpv6/")
        .map(|k| (IcmpFamily::V6, k))
        .or_else(|| lower.strip_prefix("icmp/").map(|k| (IcmpFamily::V4, k)))
    {
        return parse_icmp(kind.0, kind.1).map(PortRef::Icmp);
    }
    if lower == "icmp" || lower == "icmpv6" {
        return Err(err(
            format!("`{text}` needs an ICMP type"),
            "Cilium matches ICMP by type: write e.g. `icmp/echo-request` or `icmpv6/128`",
        ));
    }
    let first = text.chars().next().unwrap_or(' ');
    if first.is_ascii_digit() {
        return parse_range(text).map(PortRef::Range);
    }
    if is_port_name(text) {
        return Ok(PortRef::Name(text.to_string()));
    }
    Err(err(format!("invalid port `{text}`"), PORT_HELP))
}

/// Parse a port or a range with an optional protocol (`53/udp`). Names are not allowed.
pub fn parse_range(text: &str) -> Result<PortRange, PortError> {
    let (ports, protocol) = match text.split_once('/') {
        Some((ports, proto)) => (ports, parse_protocol(proto)?),
        None => (text, Protocol::Tcp),
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (parse_number(a, text)?, parse_number(b, text)?),
        None => {
            let p = parse_number(ports, text)?;
            (p, p)
        }
    };
    if first == 0 {
        return Err(err(
            format!("port 0 in `{text}` is not a port"),
            "to allow every port, leave out `port:`",
        ));
    }
    if last < first {
        return Err(err(
            format!("the range `{text}` ends before it starts"),
            format!("write the lower port first: `{last}-{first}`"),
        ));
    }
    Ok(PortRange {
        protocol,
        first,
        last,
    })
}

fn parse_number(digits: &str, whole: &str) -> Result<u16, PortError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("invalid port `{whole}`"), PORT_HELP));
    }
    digits.parse::<u16>().map_err(|_| {
        err(
            format!("port `{digits}` is out of range"),
            "ports go from 1 to 65535",
        )
    })
}

fn parse_protocol(text: &str) -> Result<Protocol, PortError> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        "any" => Err(err(
            "protocol `any` is not accepted",
            "list the protocols you mean, e.g. `[53/udp, 53/tcp]`: Cilium's ANY also opens SCTP",
        )),
        other => Err(err(
            format!("unknown protocol `{other}`"),
            "the protocols are `tcp` (the default), `udp` and `sctp`; ICMP is written `icmp/TYPE`",
        )),
    }
}

/// Kubernetes port names (IANA service names): 1–15 lowercase letters, digits and dashes, at
/// least one letter, no leading/trailing/double dash.
pub fn is_port_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 15
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && text.bytes().any(|b| b.is_ascii_lowercase())
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--")
}

/// A `port` string of a Cilium port rule, read as the agent reads it: an IANA service name
/// (case-insensitive) is a named port; anything else is a number in Go's `ParseUint(s, 0, 16)`
/// syntax: a leading `0` makes it octal (`"010"` is 8, `"08"` is an error), `0x`/`0o`/`0b`
/// prefixes, `_` between digits, no sign, at most 65535 (cilium/cilium@507103c6
/// pkg/policy/api/rule_validation.go:622-650, pkg/policy/l4.go:939-955).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulePort {
    Number(u16),
    /// Lowercased.
    Name(String),
}

impl RulePort {
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        if is_port_name(&lower) {
            return Ok(Self::Name(lower));
        }
        go_uint16(text).map(Self::Number)
    }
}

/// Go's `strconv.ParseUint(s, 0, 16)`.
fn go_uint16(text: &str) -> Result<u16, String> {
    let invalid = || format!("unable to parse port `{text}`: invalid syntax");
    let (radix, digits, prefixed) = match text.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, text.get(2..).unwrap_or_default(), true),
        [b'0', b'o' | b'O', ..] => (8, text.get(2..).unwrap_or_default(), true),
        [b'0', b'b' | b'B', ..] => (2, text.get(2..).unwrap_or_default(), true),
        [b'0', _, ..] => (8, text.get(1..).unwrap_or_default(), true),
        _ => (10, text, false),
    };
    // Underscores only between digits (or right after a base prefix), as Go allows them with
    // base 0.
    let bytes = digits.as_bytes();
    let bad_underscore = bytes.windows(2).any(|w| w == b"__")
        || bytes.last() == Some(&b'_')
        || (bytes.first() == Some(&b'_') && !prefixed);
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() || bad_underscore || !clean.chars().all(|c| c.is_digit(radix)) {
        return Err(invalid());
    }
    let value = u32::from_str_radix(&clean, radix).map_err(|_| invalid())?;
    u16::try_from(value).map_err(|_| format!("port `{text}` is out of range (0 to 65535)"))
}

fn parse_icmp(family: IcmpFamily, text: &str) -> Result<IcmpType, PortError> {
    if let Ok(n) = text.parse::<u8>() {
        return Ok(IcmpType { family, kind: n });
    }
    let table = match family {
        IcmpFamily::V4 => ICMP_V4,
        IcmpFamily::V6 => ICMP_V6,
    };
    let wanted: String = text.chars().filter(|c| *c != '-').collect();
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&wanted))
        .map(|(_, kind)| IcmpType {
            family,
            kind: *kind,
        })
        .ok_or_else(|| {
            let names: Vec<String> = table.iter().map(|(n, _)| kebab(n)).collect();
            err(
                format!("unknown ICMP type `{text}`"),
                format!("use a number from 0 to 255 or one of {}", names.join(", ")),
            )
        })
}

/// The number of a Cilium ICMP type name (`EchoRequest`), exactly as the CRD spells it.
pub fn icmp_type_named(family: IcmpFamily, name: &str) -> Option<u8> {
    let table = match family {
        IcmpFamily::V4 => ICMP_V4,
        IcmpFamily::V6 => ICMP_V6,
    };
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, kind)| *kind)
}

/// `EchoRequest` → `echo-request`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Cilium's ICMP type names (docs/semantics.md §1.15, `pkg/policy/api/icmp.go`).
const ICMP_V4: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

const ICMP_V6: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn ports_ranges_and_protocols() {
        assert_eq!(
            parse_ref("443").unwrap(),
            PortRef::Range(PortRange {
                protocol: Protocol::Tcp,
                first: 443,
                last: 443
            })
        );
        assert_eq!(
            parse_ref("6881-6889/udp").unwrap(),
            PortRef::Range(PortRange {
                protocol: Protocol::Udp,
                first: 6881,
                last: 6889
            })
        );
        assert_eq!(parse_ref("http").unwrap(), PortRef::Name("http".into()));
    }

    #[test]
    fn icmp_by_name_and_number() {
        assert_eq!(
            parse_ref("icmp/echo-request").unwrap(),
            PortRef::Icmp(IcmpType {
                family: IcmpFamily::V4,
                kind: 8
            })
        );
        assert_eq!(
            parse_ref("icmpv6/EchoRequest").unwrap(),
            PortRef::Icmp(IcmpType {
                family: IcmpFamily::V6,
                kind: 128
            })
        );
        assert!(parse_ref("icmp/bogus").is_err());
        assert!(parse_ref("icmp").is_err());
    }

    #[test]
    fn rejects_bad_ports() {
        for bad in [
            "0", "70000", "9-1", "80/xyz", "80/any", "8o", "-http", "a--b", "1-",
        ] {
            assert!(parse_ref(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn rule_ports_are_read_like_go_parse_uint_base_0() {
        let n = |s: &str| RulePort::parse(s);
        assert_eq!(n("80"), Ok(RulePort::Number(80)));
        assert_eq!(n("0"), Ok(RulePort::Number(0)));
        assert_eq!(n("010"), Ok(RulePort::Number(8)), "leading 0: octal");
        assert!(n("08").is_err(), "8 is no octal digit");
        assert_eq!(n("1_000"), Ok(RulePort::Number(1000)));
        assert_eq!(
            n("0x50"),
            Ok(RulePort::Name("0x50".to_owned())),
            "a valid service name first"
        );
        assert!(n("+80").is_err());
        assert!(n("1__0").is_err());
        assert_eq!(
            n("65536"),
            Err("port `65536` is out of range (0 to 65535)".to_owned())
        );
        assert_eq!(n("HTTP"), Ok(RulePort::Name("http".to_owned())));
    }
}
