//! DNS names and Cilium's wildcard patterns (docs/semantics.md §1.8).

/// A `toFQDNs` selector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FqdnSelector {
    /// `matchName`: one exact name (case-insensitive; stored lowercase, no trailing dot).
    Name(String),
    /// `matchPattern`: `*` matches within one label, a leading `**.` one or more labels (1.19+).
    Pattern(String),
}

impl FqdnSelector {
    pub fn text(&self) -> &str {
        match self {
            FqdnSelector::Name(s) | FqdnSelector::Pattern(s) => s,
        }
    }

    /// Whether a concrete DNS name is selected, as Cilium's anchored regexp would decide.
    pub fn matches(&self, name: &str) -> bool {
        let name = normalize(name);
        match self {
            FqdnSelector::Name(n) => *n == name,
            FqdnSelector::Pattern(p) => pattern_matches(p, &name),
        }
    }
}

/// Lowercase, without the trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `text` matches the CRD's pattern of `matchName` (`^([-a-zA-Z0-9_]+[.]?)+$`), or
/// with `wildcard` that of `matchPattern` (`*` allowed too), and its `maxLength: 255`: labels
/// of those characters between single dots, at most one trailing dot, not empty
/// (cilium/cilium@507103c6 pkg/policy/api/fqdn.go, the kubebuilder markers of `FQDNSelector`).
pub fn matches_crd_pattern(text: &str, wildcard: bool) -> bool {
    let body = text.strip_suffix('.').unwrap_or(text);
    text.chars().count() <= 255
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (wildcard && b == b'*')
                })
        })
}

/// Parse a name or pattern, checking it against the CRD patterns
/// (`^([-a-zA-Z0-9_]+[.]?)+$` for names, with `*` for patterns; at most 255 characters).
pub fn parse(text: &str) -> Result<FqdnSelector, (String, String)> {
    let normalized = normalize(text);
    if normalized.is_empty() || text.len() > 255 {
        return Err((
            format!("invalid DNS name `{text}`"),
            "a DNS name has 1 to 255 characters".to_string(),
        ));
    }
    // At most one trailing dot: `a.com..` has an empty label.
    let body = text.strip_suffix('.').unwrap_or(text);
    let labels_ok = body.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
    });
    if !labels_ok {
        return Err((
            format!("invalid DNS name `{text}`"),
            "Cilium accepts letters, digits, `-`, `_` and `*` between dots, and no empty labels"
                .to_string(),
        ));
    }
    if normalized.contains('*') {
        // `**` is only special as a whole leading label; elsewhere runs of stars mean `*`.
        Ok(FqdnSelector::Pattern(normalized))
    } else {
        Ok(FqdnSelector::Name(normalized))
    }
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern.bytes().all(|b| b == b'*') {
        return true;
    }
    if let Some(rest) = pattern.strip_prefix("**.") {
        // One or more whole labels, then the rest.
        let mut remaining = name;
        while let Some((_, tail)) = remaining.split_once('.') {
            if labels_match(rest, tail) {
                return true;
            }
            remaining = tail;
        }
        return false;
    }
    labels_match(pattern, name)
}

fn labels_match(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len()
        && p.iter()
            .zip(&n)
            .all(|(p, n)| glob(p.as_bytes(), n.as_bytes()))
}

/// `*` matches any run of DNS characters within one label.
fn glob(p: &[u8], n: &[u8]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some((b'*', rest)) => {
            (0..=n.len()).any(|i| n.get(i..).is_some_and(|tail| glob(rest, tail)))
        }
        Some((c, rest)) => n
            .split_first()
            .is_some_and(|(m, tail)| m.eq_ignore_ascii_case(c) && glob(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn patterns_follow_cilium() {
        // The table of docs/semantics.md §1.8.
        let cases = [
            ("*", "anything.at.all", true),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("**.example.com", "a.b.example.com", true),
            ("**.example.com", "example.com", false),
            ("*example.com", "example.com", true),
            ("*example.com", "my-example.com", true),
            ("*example.com", "www.example.com", false),
            ("api*.example.com", "api-eu.example.com", true),
            ("api*.example.com", "x.api.example.com", false),
            ("*.*.svc.cluster.local", "svc1.ns1.svc.cluster.local", true),
            ("*.*.svc.cluster.local", "a.b.c.svc.cluster.local", false),
        ];
        for (pattern, name, expected) in cases {
            let sel = parse(pattern).unwrap();
            assert_eq!(sel.matches(name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(
            parse("API.TheTVDB.com.").unwrap(),
            FqdnSelector::Name("api.thetvdb.com".into())
        );
        assert!(parse("bad..name").is_err());
        assert!(parse("bad name.com").is_err());
    }
}
