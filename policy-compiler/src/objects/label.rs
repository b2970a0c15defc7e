//! Kubernetes label keys and values, and which of them Cilium keeps in identities.

/// Why a label key or value is invalid (message, hint).
pub type LabelError = (String, String);

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 characters (`[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`).
pub fn check_key(key: &str) -> Result<(), LabelError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err((
            format!("invalid label key prefix in `{key}`"),
            "a prefix is a lowercase DNS subdomain such as `app.kubernetes.io`".to_string(),
        ));
    }
    if !is_label_name(name) {
        return Err((
            format!("invalid label key `{key}`"),
            "a label name has 1 to 63 letters, digits, `-`, `_` or `.`, and starts and ends with a letter or digit"
                .to_string(),
        ));
    }
    Ok(())
}

/// A Kubernetes label value: empty, or like a label name.
pub fn check_value(value: &str) -> Result<(), LabelError> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err((
            format!("invalid label value `{value}`"),
            "a label value has at most 63 letters, digits, `-`, `_` or `.`, and starts and ends with a letter or digit"
                .to_string(),
        ))
    }
}

fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An RFC 1123 DNS subdomain as Kubernetes checks it (`IsDNS1123Subdomain`): at most 253
/// characters, dot-separated labels of lowercase letters, digits and `-` that start and end
/// with a letter or digit (no length limit per label).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            bytes.first().is_some_and(|b| *b != b'-')
                && bytes.last().is_some_and(|b| *b != b'-')
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

/// An RFC 1123 DNS label: lowercase letters, digits and `-`, 1–63, no dash at either end.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// Whether Cilium's default identity-label filter drops this pod label, so that a selector on
/// it can never match (pitfall 17). Returns the reason.
///
/// The filter's entries are regexes matched at the start of the key; a label is dropped when an
/// exclusion matches and no inclusion matches for longer (cilium/cilium@507103c6
/// pkg/labelsfilter/filter.go:58-77, 221-260, 297-345). So the listed names are prefixes
/// (`pod-template-hash-x` is dropped too), and `topology.kubernetes.io/*` is kept.
pub fn filtered_from_identity(key: &str) -> Option<&'static str> {
    let (included, excluded) = built_in(key);
    let excluded = excluded?;
    if included.is_some_and(|included| included > excluded) {
        return None;
    }
    Some(
        if key.starts_with("io.kubernetes") || key.starts_with("kubernetes.io") {
            "Cilium leaves `io.kubernetes*` and `kubernetes.io*` labels out of identities"
        } else if key.contains("beta.kubernetes.io") || key.starts_with("k8s.io") {
            "Cilium leaves Kubernetes-internal labels out of identities"
        } else {
            "Cilium leaves it out of pod identities"
        },
    )
}

/// The lengths of the longest inclusion and the shortest exclusion of Cilium's built-in
/// identity label filter that match `key` at its start.
fn built_in(key: &str) -> (Option<usize>, Option<usize>) {
    /// Inclusions that rescue keys an exclusion would drop.
    const INCLUDE: &[&str] = &[
        "io.kubernetes.pod.namespace",
        "io.cilium.k8s.namespace.labels",
        "app.kubernetes.io",
        "io.cilium.k8s.policy.cluster",
        "io.cilium.k8s.policy.serviceaccount",
    ];
    const EXCLUDE: &[&str] = &[
        "io.kubernetes",
        "kubernetes.io",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/job-completion-index",
        "batch.kubernetes.io/controller-uid",
        "k8s.io",
        "pod-template-generation",
        "pod-template-hash",
        "controller-revision-hash",
        "controller-uid",
        "annotation",
        "etcd_node",
    ];
    let matching = |list: &'static [&'static str]| {
        list.iter()
            .filter(move |p| key.starts_with(**p))
            .map(|p| p.len())
    };
    // `.*beta\.kubernetes\.io`: anywhere in the key, the match ending at its last occurrence.
    const BETA: &str = "beta.kubernetes.io";
    let beta = key.rfind(BETA).map(|at| at + BETA.len());
    (matching(INCLUDE).max(), matching(EXCLUDE).chain(beta).min())
}

/// The identity label filter of an agent started with `labels` (the `cilium-config` key): its
/// entries are added to the built-in list. Each entry is `[source:][!]regex`; the regex must
/// match at the start of the key, and `!` makes it an exclusion. Once any entry includes, only
/// labels that an inclusion matches for longer than every exclusion are kept
/// (cilium/cilium@507103c6 pkg/labelsfilter/filter.go, `parseLabelPrefix`,
/// `ParseLabelPrefixCfg`, `filterLabels`).
#[derive(Debug, Clone)]
pub struct LabelFilter {
    text: String,
    entries: Vec<FilterEntry>,
    /// Some entry includes: labels no inclusion matches are dropped.
    allow_list: bool,
}

#[derive(Debug, Clone)]
struct FilterEntry {
    /// `None`: any source.
    source: Option<String>,
    regex: regex::Regex,
    exclude: bool,
}

impl PartialEq for LabelFilter {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for LabelFilter {}

impl LabelFilter {
    /// The entries of the setting, separated by spaces or commas; `None` when there are none.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let mut entries = Vec::new();
        for word in text.split([' ', ',', '\n', '\t']).filter(|w| !w.is_empty()) {
            let (source, rest) = match word.split_once(':') {
                Some((source, rest)) => (Some(source.to_owned()), rest),
                None => (None, word),
            };
            let (exclude, pattern) = match rest.strip_prefix('!') {
                Some(pattern) => (true, pattern),
                None => (false, rest),
            };
            let regex = regex::Regex::new(&format!("^(?:{pattern})")).map_err(|e| {
                format!(
                    "`{word}` is not a regular expression ({})",
                    crate::diagnostic::regex_reason(&e)
                )
            })?;
            entries.push(FilterEntry {
                source,
                regex,
                exclude,
            });
        }
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            allow_list: entries.iter().any(|e| !e.exclude),
            entries,
        }))
    }

    /// Whether a pod label `source:key` is left out of the identity.
    pub fn drops(&self, source: &str, key: &str) -> bool {
        let (mut included, mut excluded) = built_in(key);
        for e in &self.entries {
            if e.source.as_deref().is_some_and(|s| s != source) {
                continue;
            }
            let Some(len) = e.regex.find(key).map(|m| m.end()) else {
                continue;
            };
            if e.exclude {
                excluded = Some(excluded.map_or(len, |x| x.min(len)));
            } else {
                included = Some(included.map_or(len, |x| x.max(len)));
            }
        }
        let kept = (!self.allow_list && excluded.is_none())
            || included.unwrap_or(0) > excluded.unwrap_or(0);
        !kept
    }
}

impl std::fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert!(check_key("app.kubernetes.io/name").is_ok());
        assert!(check_key("cnpg.io/cluster").is_ok());
        assert!(check_key("k8s-app").is_ok());
        assert!(check_key("-bad").is_err());
        assert!(check_key("Bad_Prefix/x").is_err());
        assert!(check_key(&"a".repeat(64)).is_err());
        assert!(check_value("").is_ok());
        assert!(check_value("arr-postgres").is_ok());
        assert!(check_value("has space").is_err());
    }

    #[test]
    fn identity_filter() {
        assert!(filtered_from_identity("pod-template-hash").is_some());
        assert!(filtered_from_identity("statefulset.kubernetes.io/pod-name").is_some());
        assert!(filtered_from_identity("app.kubernetes.io/name").is_none());
        assert!(filtered_from_identity("k8s-app").is_none());
    }

    /// The default filter of cilium/cilium@507103c6 pkg/labelsfilter/filter.go:221-260: prefixes,
    /// inclusions rescue only what they match for longer.
    #[test]
    fn identity_filter_matches_prefixes_and_keeps_topology() {
        assert!(filtered_from_identity("topology.kubernetes.io/zone").is_none());
        assert!(filtered_from_identity("pod-template-hash-x").is_some());
        assert!(filtered_from_identity("controller-uid2").is_some());
        assert!(filtered_from_identity("failure-domain.beta.kubernetes.io/zone").is_some());
        assert!(filtered_from_identity("io.kubernetes.pod.namespace").is_none());
        assert!(filtered_from_identity("io.kubernetes.pod.name").is_some());
        assert!(filtered_from_identity("kubernetes.io/hostname").is_some());
        assert!(filtered_from_identity("helm.sh/chart").is_none());
    }
}
