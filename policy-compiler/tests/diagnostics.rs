//! Every kind of profile error: code, message, hint and the exact text it underlines.
//!
//! Each case is a small set of in-memory files; a case passes only if the *first* error is
//! the expected one, so a case also proves that nothing else went wrong first.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::PathBuf;

use netpol_compiler::diagnostic::{Diagnostic, Style, render_human};
use netpol_compiler::document::files::Memory;
use netpol_compiler::profile::{Compilation, compile_paths};

/// A namespace `traefik` that other cases can point at.
const TRAEFIK: &str = "namespace: traefik\nservices:\n  traefik:\n    ports: {web: 8000}\n";

fn compile(files: &[(&str, &str)]) -> Compilation {
    let fs = Memory::new(files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())));
    compile_paths(&fs, &[PathBuf::from("p")])
}

fn errors(c: &Compilation) -> Vec<&Diagnostic> {
    c.diagnostics
        .sorted()
        .into_iter()
        .filter(|d| d.is_error())
        .collect()
}

fn underlined<'a>(c: &'a Compilation, d: &Diagnostic) -> &'a str {
    let span = d.span.expect("a span");
    c.sources.get(span.source).unwrap().slice(span)
}

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    code: &'static str,
    message: &'static str,
    help: &'static str,
    underlined: &'static str,
}

/// The mismatches of one case, empty when it passes.
fn run(case: &Case) -> Vec<String> {
    let c = compile(case.files);
    let errs = errors(&c);
    check_first(case, &c, errs.first().copied())
}

/// The mismatches of one warning case: the first warning is the expected one, and there is
/// no error (a warning never stops the output).
fn run_warning(case: &Case) -> Vec<String> {
    let c = compile(case.files);
    let mut problems = Vec::new();
    if c.diagnostics.has_errors() {
        problems.push(format!("{}: errors: {:?}", case.name, errors(&c)));
    }
    let warnings: Vec<&Diagnostic> = c
        .diagnostics
        .sorted()
        .into_iter()
        .filter(|d| d.is_warning())
        .collect();
    let Some(first) = warnings.first() else {
        problems.push(format!("{}: no warning", case.name));
        return problems;
    };
    let mut check = |what: &str, got: &str, want: &str| {
        if got != want {
            problems.push(format!("{}: {what}: got {got:?}, want {want:?}", case.name));
        }
    };
    check("code", first.code, case.code);
    check("message", &first.message, case.message);
    check("help", first.help.as_deref().unwrap_or(""), case.help);
    check("underlined text", underlined(&c, first), case.underlined);
    problems
}

fn check_first(case: &Case, c: &Compilation, first: Option<&Diagnostic>) -> Vec<String> {
    let Some(first) = first else {
        return vec![format!(
            "{}: no error; diagnostics: {:?}",
            case.name, c.diagnostics
        )];
    };
    let mut problems = Vec::new();
    let mut check = |what: &str, got: &str, want: &str| {
        if got != want {
            problems.push(format!("{}: {what}: got {got:?}, want {want:?}", case.name));
        }
    };
    check("code", first.code, case.code);
    check("message", &first.message, case.message);
    check("help", first.help.as_deref().unwrap_or(""), case.help);
    check("underlined text", underlined(c, first), case.underlined);
    if c.objects.is_some() {
        problems.push(format!("{}: errors must not produce output", case.name));
    }
    problems
}

const CASES: &[Case] = &[
    Case {
        name: "unknown key with a did-you-mean",
        files: &[("p/a.yaml", "namespace: media\nsrevices:\n  sonarr: {}\n")],
        code: "unknown-key",
        message: "unknown key `srevices` in a profile",
        help: "did you mean `services`?",
        underlined: "srevices",
    },
    Case {
        name: "unknown key in a statement",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: world\n        pots: 443\n",
        )],
        code: "unknown-key",
        message: "unknown key `pots` in a statement",
        help: "did you mean `port`?",
        underlined: "pots",
    },
    Case {
        name: "unknown key in a statement, nothing close",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: world\n        via: 443\n",
        )],
        code: "unknown-key",
        message: "unknown key `via` in a statement",
        help: "a statement has the keys `from`, `to`, `port`, `on`, `http`, `description`, `acknowledge`",
        underlined: "via",
    },
    Case {
        name: "both spellings of the ports of a statement",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: world\n        on: 443\n        port: 443\n",
        )],
        code: "duplicate-key",
        message: "`port` and `on` are the same key",
        help: "`on` is the first spelling of `port`; keep one of them (`port` reads the same in every YAML reader)",
        underlined: "port",
    },
    Case {
        name: "an empty list of ports",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: world\n        port: []\n",
        )],
        code: "empty-ports",
        message: "no ports given",
        help: "leave out `port:` to allow every port and protocol, or list the ports",
        underlined: "[]",
    },
    Case {
        name: "a port name for no port",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    ports: {http: []}\n",
        )],
        code: "empty-ports",
        message: "port `http` has no port",
        help: "give the name a port number, a range, or a list of them",
        underlined: "[]",
    },
    Case {
        name: "a boolean as a port",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: world\n        port: true\n",
        )],
        code: "wrong-type",
        message: "expected a port such as `443`, `53/udp` or `http`, found a boolean",
        help: "`port:` takes one port or a list of ports",
        underlined: "true",
    },
    Case {
        name: "a number as a name",
        files: &[("p/a.yaml", "namespace: 2024\n")],
        code: "wrong-type",
        message: "expected a namespace, found a number",
        help: "names are strings; quote it: `\"2024\"`",
        underlined: "2024",
    },
    Case {
        name: "a group named after an entity",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr: {}\ngroups:\n  world: [sonarr]\n",
        )],
        code: "reserved-name",
        message: "`world` is the name of a Cilium entity",
        help: "peers named `world` mean the entity; give the group another name",
        underlined: "world",
    },
    Case {
        name: "a service peer named after an entity",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: {service: host}\n",
        )],
        code: "reserved-name",
        message: "`host` is the name of a Cilium entity",
        help: "for the entity write `{entity: host}`",
        underlined: "host",
    },
    Case {
        name: "an empty HTTP rule",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: world\n        port: 8989\n        http: [~]\n",
        )],
        code: "wrong-type",
        message: "expected an HTTP rule, found nothing (null)",
        help: "write e.g. `{method: GET, path: \"/api/.*\"}`; `{}` allows every request",
        underlined: "~",
    },
    Case {
        name: "a statement without any side",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - port: 443\n",
        )],
        code: "missing-peer",
        message: "the statement has neither `from` nor `to`",
        help: "say who talks to whom: `from: PEER`, `to: PEER`",
        underlined: "port: 443",
    },
    Case {
        name: "a resolver that is no service, pods or node",
        files: &[("p/c.yaml", "cluster:\n  dns:\n    resolver: 10.0.0.10/32\n")],
        code: "invalid-resolver",
        message: "the DNS resolver must be a service, pods or the node",
        help: "e.g. `resolver: kube-system/coredns`, `{namespace: kube-system, select: {k8s-app: kube-dns}}`, or `{entity: host}` with NodeLocal DNSCache",
        underlined: "10.0.0.10/32",
    },
    Case {
        name: "an empty baseline selection",
        files: &[(
            "p/c.yaml",
            "baselines:\n  - name: scrape\n    select: {}\n    allow:\n      - from: monitoring/*\n",
        )],
        code: "invalid-value",
        message: "the baseline selection is empty",
        help: "write `select: all` for every pod, or a map with `namespace`, `namespaces` and/or `select`",
        underlined: "{}",
    },
    Case {
        name: "a baseline selection with no namespaces",
        files: &[(
            "p/c.yaml",
            "baselines:\n  - name: scrape\n    select: {namespaces: []}\n    allow:\n      - from: monitoring/*\n",
        )],
        code: "invalid-value",
        message: "no namespaces given",
        help: "list the namespaces, or leave out `namespaces`",
        underlined: "[]",
    },
    Case {
        name: "a YAML 1.1 boolean where a boolean is expected",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    dns: yes\n",
        )],
        code: "wrong-type",
        message: "expected `true` or `false`, found a string",
        help: "`yes` is a boolean only in YAML 1.1; netpol reads YAML 1.2, where it is a string: write `true`",
        underlined: "yes",
    },
    Case {
        name: "wrong type",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    use: {arr-app: true}\n",
        )],
        code: "wrong-type",
        message: "expected a list of template names, found a map",
        help: "each entry is a name",
        underlined: "{arr-app: true}",
    },
    Case {
        name: "duplicate key",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    ports: {http: 8989}\n    ports: {http: 8990}\n",
        )],
        code: "duplicate-key",
        message: "duplicate key `ports`",
        help: "YAML keys must be unique; merge the two entries",
        underlined: "ports",
    },
    Case {
        name: "undefined service with a did-you-mean",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    ports: {http: 8989}\n  radarr:\n    allow:\n      - to: sonar\n        on: 8989\n",
        )],
        code: "unknown-service",
        message: "unknown service or group `sonar` in namespace `media`",
        help: "did you mean `sonarr`?",
        underlined: "sonar",
    },
    Case {
        name: "misspelt entity",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: wrold\n        port: 443\n",
        )],
        code: "unknown-service",
        message: "unknown service or group `wrold` in namespace `media`",
        help: "did you mean `world` (the Cilium entity)?",
        underlined: "wrold",
    },
    Case {
        name: "misspelt service of another namespace",
        files: &[
            (
                "p/a.yaml",
                "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - to: media/sonar\n        port: 8989\n",
            ),
            ("p/b.yaml", "namespace: media\nservices:\n  sonarr: {}\n"),
        ],
        code: "unknown-service",
        message: "unknown service or group `sonar` in namespace `media`",
        help: "did you mean `media/sonarr`?",
        underlined: "media/sonar",
    },
    Case {
        name: "misspelt namespace",
        files: &[
            (
                "p/a.yaml",
                "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - to: meda/sonarr\n        port: 8989\n",
            ),
            ("p/b.yaml", "namespace: media\nservices:\n  sonarr: {}\n"),
        ],
        code: "unknown-service",
        message: "unknown service or group `sonarr` in namespace `meda`",
        help: "did you mean `media/sonarr`?",
        underlined: "meda/sonarr",
    },
    Case {
        name: "misspelt namespace, unknown service",
        files: &[
            (
                "p/a.yaml",
                "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - to: meda/plex\n        port: 8989\n",
            ),
            ("p/b.yaml", "namespace: media\nservices:\n  sonarr: {}\n"),
        ],
        code: "unknown-service",
        message: "unknown service or group `plex` in namespace `meda`",
        help: "no profile declares namespace `meda`; did you mean namespace `media`?",
        underlined: "meda/plex",
    },
    Case {
        name: "service of another namespace without its namespace",
        files: &[
            (
                "p/a.yaml",
                "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: arr-postgres\n        port: 5432\n",
            ),
            (
                "p/b.yaml",
                "namespace: databases\nservices:\n  arr-postgres: {}\n",
            ),
        ],
        code: "unknown-service",
        message: "unknown service or group `arr-postgres` in namespace `media`",
        help: "did you mean `databases/arr-postgres`?",
        underlined: "arr-postgres",
    },
    Case {
        name: "service of an undeclared namespace",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: ingress-nginx/controller\n",
        )],
        code: "unknown-service",
        message: "unknown service or group `controller` in namespace `ingress-nginx`",
        help: "no profile declares namespace `ingress-nginx`; for pods without a profile write `{namespace: ingress-nginx, select: {LABEL: VALUE}}`",
        underlined: "ingress-nginx/controller",
    },
    Case {
        name: "undefined group member",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr: {}\ngroups:\n  arr: [sonarr, radar]\n",
        )],
        code: "unknown-service",
        message: "unknown service `radar` in namespace `media`",
        help: "namespace `media` declares no service `radar`",
        underlined: "radar",
    },
    Case {
        name: "undefined template",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    use: [arr-ap]\ntemplates:\n  arr-app:\n    allow:\n      - to: world\n",
        )],
        code: "unknown-template",
        message: "unknown template `arr-ap`",
        help: "did you mean `arr-app`?",
        underlined: "arr-ap",
    },
    Case {
        name: "port name the service lacks",
        files: &[
            (
                "p/a.yaml",
                "namespace: media\nservices:\n  sonarr:\n    ports: {http: 8989}\n    allow:\n      - from: traefik/traefik\n        on: htp\n",
            ),
            ("p/t.yaml", TRAEFIK),
        ],
        code: "unknown-port-name",
        message: "service `media/sonarr` has no port named `htp`",
        help: "did you mean `http`?",
        underlined: "htp",
    },
    Case {
        name: "port name towards a destination that has none",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: api.thetvdb.com\n        on: https\n",
        )],
        code: "unknown-port-name",
        message: "port name `https` cannot be resolved here",
        help: "port names resolve against the receiving service; for other destinations write a number such as `443`",
        underlined: "https",
    },
    Case {
        name: "port out of range",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    ports: {http: 89890}\n",
        )],
        code: "invalid-port",
        message: "port `89890` is out of range",
        help: "ports go from 1 to 65535",
        underlined: "89890",
    },
    Case {
        name: "reversed range",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  qbittorrent:\n    allow:\n      - from: world\n        on: 6889-6881/udp\n",
        )],
        code: "invalid-port",
        message: "the range `6889-6881/udp` ends before it starts",
        help: "write the lower port first: `6881-6889`",
        underlined: "6889-6881/udp",
    },
    Case {
        name: "unknown protocol",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: world\n        on: 443/quic\n",
        )],
        code: "invalid-port",
        message: "unknown protocol `quic`",
        help: "the protocols are `tcp` (the default), `udp` and `sctp`; ICMP is written `icmp/TYPE`",
        underlined: "443/quic",
    },
    Case {
        name: "ICMP without a type",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: world\n        on: icmp\n",
        )],
        code: "invalid-port",
        message: "`icmp` needs an ICMP type",
        help: "Cilium matches ICMP by type: write e.g. `icmp/echo-request` or `icmpv6/128`",
        underlined: "icmp",
    },
    Case {
        name: "invalid CIDR",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: 10.0.0.300/8\n",
        )],
        code: "invalid-cidr",
        message: "invalid CIDR `10.0.0.300/8`",
        help: "write a prefix such as `10.0.0.0/8` or `fd00::/8`",
        underlined: "10.0.0.300/8",
    },
    Case {
        name: "address without prefix length",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: 192.168.1.10\n",
        )],
        code: "invalid-cidr",
        message: "`192.168.1.10` is an address, not a CIDR",
        help: "write `192.168.1.10/32` for this one address",
        underlined: "192.168.1.10",
    },
    Case {
        name: "CIDR with host bits",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: 10.1.2.3/8\n",
        )],
        code: "invalid-cidr",
        message: "`10.1.2.3/8` has host bits set",
        help: "write the network address `10.0.0.0/8`",
        underlined: "10.1.2.3/8",
    },
    Case {
        name: "except outside the CIDR",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}\n",
        )],
        code: "invalid-cidr",
        message: "`192.168.0.0/16` is not inside `10.0.0.0/8`",
        help: "an `except` prefix must lie inside the CIDR (Cilium checks only its address, and a wider one excludes the whole CIDR)",
        underlined: "192.168.0.0/16",
    },
    Case {
        name: "DNS name Cilium would reject",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: api..thetvdb.com\n        on: 443\n",
        )],
        code: "invalid-dns-name",
        message: "invalid DNS name `api..thetvdb.com`",
        help: "Cilium accepts letters, digits, `-`, `_` and `*` between dots, and no empty labels",
        underlined: "api..thetvdb.com",
    },
    Case {
        name: "invalid label key",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    select: {-app: sonarr}\n",
        )],
        code: "invalid-label",
        message: "invalid label key `-app`",
        help: "a label name has 1 to 63 letters, digits, `-`, `_` or `.`, and starts and ends with a letter or digit",
        underlined: "-app",
    },
    Case {
        name: "invalid label value",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    select: {app: \"so narr\"}\n",
        )],
        code: "invalid-label",
        message: "invalid label value `so narr`",
        help: "a label value has at most 63 letters, digits, `-`, `_` or `.`, and starts and ends with a letter or digit",
        underlined: "\"so narr\"",
    },
    Case {
        name: "label Cilium leaves out of identities",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    select: {pod-template-hash: abc}\n",
        )],
        code: "unselectable-label",
        message: "label `pod-template-hash` is not part of Cilium identities",
        help: "Cilium leaves it out of pod identities, so a selector on it selects nothing; use a label such as `app.kubernetes.io/name`",
        underlined: "pod-template-hash",
    },
    Case {
        name: "invalid service name",
        files: &[("p/a.yaml", "namespace: media\nservices:\n  Sonarr_v4: {}\n")],
        code: "invalid-name",
        message: "invalid name `Sonarr_v4`",
        help: "a name is a lowercase DNS label (letters, digits, `-`, at most 63); e.g. `sonarr-v4`",
        underlined: "Sonarr_v4",
    },
    Case {
        name: "service named after an entity",
        files: &[("p/a.yaml", "namespace: media\nservices:\n  world: {}\n")],
        code: "reserved-name",
        message: "`world` is the name of a Cilium entity",
        help: "peers named `world` mean the `world` entity; give the service another name",
        underlined: "world",
    },
    Case {
        name: "duplicate service across the file",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr: {}\n  sonarr: {}\n",
        )],
        code: "duplicate-name",
        message: "`sonarr` is defined twice",
        help: "names must be unique; merge the two definitions",
        underlined: "sonarr",
    },
    Case {
        name: "two profiles for one namespace",
        files: &[
            ("p/a.yaml", "namespace: media\nservices:\n  sonarr: {}\n"),
            ("p/b.yaml", "namespace: media\nservices:\n  radarr: {}\n"),
        ],
        code: "duplicate-namespace",
        message: "namespace `media` has two profiles",
        help: "the other profile is at p/a.yaml:1; keep one file per namespace",
        underlined: "media",
    },
    Case {
        name: "two services selecting the same pods",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    select: {app: arr}\n  radarr:\n    select: {app: arr}\n",
        )],
        code: "duplicate-selector",
        message: "services `radarr` and `sonarr` select the same pods",
        help: "give each service a `select:` that matches only its own pods",
        underlined: "sonarr",
    },
    Case {
        name: "unknown enforcement",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    enforce: ingres\n",
        )],
        code: "invalid-value",
        message: "unknown enforcement `ingres`",
        help: "did you mean `ingress`?",
        underlined: "ingres",
    },
    Case {
        name: "unknown entity",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: {entity: remote-nodes}\n",
        )],
        code: "unknown-entity",
        message: "unknown entity `remote-nodes`",
        help: "did you mean `remote-node`?",
        underlined: "remote-nodes",
    },
    Case {
        name: "peer of two kinds",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: {entity: world, cidr: 10.0.0.0/8}\n",
        )],
        code: "mixed-peer",
        message: "a peer cannot be both `entity` and `cidr`",
        help: "write two peers in a list instead",
        underlined: "cidr",
    },
    Case {
        name: "DNS name as a source",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: api.thetvdb.com\n",
        )],
        code: "dns-source",
        message: "DNS name `api.thetvdb.com` cannot be a source",
        help: "Cilium learns the addresses of DNS names from lookups made by the pods, so DNS names only work in `to:`; use a CIDR for incoming traffic",
        underlined: "api.thetvdb.com",
    },
    Case {
        name: "top-level statement without a side",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr: {}\nallow:\n  - to: sonarr\n    on: 8989\n",
        )],
        code: "missing-peer",
        message: "the statement has no `from`",
        help: "only statements under a service, a template or a baseline may leave out one side, which then means that service",
        underlined: "to: sonarr\n    on: 8989",
    },
    Case {
        name: "statement between two peers without a profile",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr: {}\nallow:\n  - from: world\n    to: 10.0.0.0/8\n",
        )],
        code: "no-subject",
        message: "neither side of the statement is a service of a profile",
        help: "netpol writes policies for the services profiles declare; name one of them in `from` or `to`",
        underlined: "from: world\n    to: 10.0.0.0/8",
    },
    Case {
        name: "HTTP path that is no regular expression",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: world\n        on: 8989\n        http: [{method: GET, path: \"/api/[v3\"}]\n",
        )],
        code: "invalid-http-regex",
        message: "HTTP path `/api/[v3` is not a valid regular expression: missing closing ]: `[v3`",
        help: "Cilium compiles HTTP methods and paths as RE2 regular expressions and refuses a policy whose regex does not compile",
        underlined: "\"/api/[v3\"",
    },
    Case {
        name: "HTTP rules on UDP",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: world\n        on: 8989/udp\n        http: [{method: GET}]\n",
        )],
        code: "http-on-non-tcp",
        message: "HTTP rules on `8989/udp`",
        help: "Cilium applies HTTP rules to TCP only; move the other ports to a statement of their own",
        underlined: "{method: GET}",
    },
    Case {
        name: "HTTP rules on UDP towards a whole namespace",
        files: &[
            (
                "p/a.yaml",
                "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: web/*\n        on: 80/udp\n        http: [{method: GET}]\n",
            ),
            ("p/b.yaml", "namespace: web\nservices:\n  site: {}\n"),
        ],
        code: "http-on-non-tcp",
        message: "HTTP rules on `80/udp`",
        help: "Cilium applies HTTP rules to TCP only; move the other ports to a statement of their own",
        underlined: "{method: GET}",
    },
    Case {
        name: "HTTP rules without ports",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: world\n        http: [{method: GET}]\n",
        )],
        code: "http-without-ports",
        message: "HTTP rules need ports",
        help: "Cilium applies HTTP rules to TCP ports; add `port: http` or a port number",
        underlined: "{method: GET}",
    },
    Case {
        name: "YAML syntax error",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr: {ports: [8989\n",
        )],
        code: "yaml-syntax",
        message: "invalid YAML: unclosed bracket '['",
        help: "fix the YAML syntax; the file was not read",
        underlined: "[",
    },
    Case {
        name: "file without a namespace",
        files: &[("p/a.yaml", "services:\n  sonarr: {}\n")],
        code: "missing-namespace",
        message: "the profile has no `namespace:`",
        help: "a profile starts with `namespace: NAME`; a cluster file has `cluster:` or `baselines:`",
        underlined: "services:\n  sonarr: {}",
    },
    Case {
        name: "services in the cluster file",
        files: &[(
            "p/c.yaml",
            "cluster:\n  kubelet: true\nservices:\n  sonarr: {}\n",
        )],
        code: "misplaced-key",
        message: "`services` belongs in a namespace profile",
        help: "the cluster file holds `cluster:` and `baselines:`; put services in a file with `namespace:`",
        underlined: "services",
    },
    Case {
        name: "bare name in the cluster file",
        files: &[
            ("p/a.yaml", "namespace: media\nservices:\n  sonarr: {}\n"),
            (
                "p/c.yaml",
                "baselines:\n  - name: scrape\n    select: all\n    allow:\n      - to: sonarr\n",
            ),
        ],
        code: "ambiguous-name",
        message: "`sonarr` has no namespace here",
        help: "outside a namespace profile, write `NAMESPACE/sonarr`",
        underlined: "sonarr",
    },
    Case {
        name: "baseline without a selection",
        files: &[(
            "p/c.yaml",
            "baselines:\n  - name: dns\n    allow:\n      - to: world\n",
        )],
        code: "missing-key",
        message: "baseline `dns` has no `select`",
        help: "say which pods it applies to: `select: all`, `select: {namespace: media}` or `select: {select: {LABEL: VALUE}}`",
        underlined: "dns",
    },
    Case {
        name: "two documents in a profile",
        files: &[("p/a.yaml", "namespace: media\n---\nnamespace: games\n")],
        code: "multiple-documents",
        message: "a profile holds one YAML document",
        help: "put each namespace in a file of its own",
        underlined: "namespace: games",
    },
    Case {
        name: "empty label selector",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    select: {}\n",
        )],
        code: "empty-selector",
        message: "empty label selector",
        help: "leave out `select` to use `app.kubernetes.io/name: NAME`, or name the labels",
        underlined: "{}",
    },
];

/// Warnings: valid input that is probably not what was meant.
const WARNING_CASES: &[Case] = &[
    Case {
        name: "every DNS name",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - to: \"*\"\n        port: 443\n",
        )],
        code: "any-dns-name",
        message: "`*` matches every DNS name",
        help: "the pods may then reach every address a lookup returns; name the domains (`*.example.com`), or write `world` if every address is meant",
        underlined: "\"*\"",
    },
    Case {
        name: "a DNS pattern with a star inside a label",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  radarr:\n    allow:\n      - to: \"*tmdb.org\"\n        port: 443\n",
        )],
        code: "loose-dns-pattern",
        message: "`*tmdb.org` also matches `eviltmdb.org`",
        help: "`*` matches any characters within a label, so any domain ending in `tmdb.org` matches; for the subdomains of `tmdb.org` write `*.tmdb.org`",
        underlined: "\"*tmdb.org\"",
    },
    Case {
        name: "the internet on every port",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  qbittorrent:\n    allow:\n      - to: world\n",
        )],
        code: "world-all-ports",
        message: "`world` on every port and protocol",
        help: "every port of every address outside the cluster is rarely what is meant: list the ports, e.g. `port: 443`",
        underlined: "world",
    },
    Case {
        name: "HTTP rules made pointless by a broader statement",
        files: &[
            (
                "p/a.yaml",
                "namespace: media\nservices:\n  sonarr:\n    ports: {http: 8989}\n    allow:\n      - from: traefik/traefik\n        port: http\n      - from: traefik/traefik\n        port: http\n        http: [{method: GET}]\n",
            ),
            ("p/t.yaml", TRAEFIK),
        ],
        code: "shadowed-http",
        message: "the HTTP rules of this statement filter nothing",
        help: "the statement at p/a.yaml:6 allows the same peer on these ports without HTTP rules, so Cilium lets every request through; give that statement the HTTP rules too, or other ports",
        underlined: "{method: GET}",
    },
    Case {
        name: "a statement under a service that does not involve it",
        files: &[
            (
                "p/a.yaml",
                "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: traefik/traefik\n        to: radarr\n        port: 7878\n  radarr: {}\n",
            ),
            ("p/t.yaml", TRAEFIK),
        ],
        code: "foreign-statement",
        message: "the statement does not involve `media/sonarr`, the service it belongs to",
        help: "a statement under a service leaves out the side that is the service; put statements between other peers in the namespace's top-level `allow:`",
        underlined: "from: traefik/traefik\n        to: radarr\n        port: 7878",
    },
    Case {
        name: "an acknowledgement without a reason",
        files: &[(
            "p/a.yaml",
            "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - from: world\n        port: 8443\n        acknowledge: {open-to-world: }\n",
        )],
        code: "unjustified-acknowledgement",
        message: "acknowledgement of `open-to-world` without a reason",
        help: "say why the warning is fine here, e.g. `acknowledge: {open-to-world: \"the ingress controller\"}`",
        underlined: "open-to-world",
    },
    Case {
        name: "an acknowledgement of a warning that is not raised there",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    allow:\n      - from: traefik\n        port: 8989\n        acknowledge: {open-to-world: \"behind traefik\"}\n  traefik:\n    allow:\n      - from: world\n        port: 443\n        acknowledge: {open-to-world: \"the ingress controller\"}\n",
        )],
        code: "unused-acknowledgement",
        message: "no `open-to-world` warning here to acknowledge",
        help: "remove it, or move it to the statement or service the warning is about",
        underlined: "open-to-world",
    },
    Case {
        name: "an acknowledgement of a code that is no warning",
        files: &[(
            "p/a.yaml",
            "namespace: traefik\nservices:\n  traefik:\n    acknowledge: {open-to-wrold: \"the ingress controller\"}\n    allow:\n      - from: world\n        port: 8443\n        acknowledge: {open-to-world: \"the ingress controller\"}\n",
        )],
        code: "unused-acknowledgement",
        message: "`open-to-wrold` is not a warning that can be acknowledged",
        help: "did you mean `open-to-world`?",
        underlined: "open-to-wrold",
    },
    Case {
        name: "every pod of a namespace spelt like a declared one",
        files: &[
            (
                "p/a.yaml",
                "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - to: meda/*\n        port: 8989\n",
            ),
            ("p/b.yaml", "namespace: media\nservices:\n  sonarr: {}\n"),
        ],
        code: "unknown-namespace",
        message: "no profile declares namespace `meda`",
        help: "did you mean `media`? (if `meda` is a namespace without a profile, acknowledge this warning)",
        underlined: "meda/*",
    },
    Case {
        name: "a name YAML 1.1 reads as a boolean",
        files: &[("p/a.yaml", "namespace: media\nservices:\n  no: {}\n")],
        code: "yaml11-boolean",
        message: "`no` is a boolean in YAML 1.1",
        help: "netpol reads the string `no`, but PyYAML, yamllint and other YAML 1.1 readers read `false`; write `\"no\"`",
        underlined: "no",
    },
    Case {
        name: "a label value YAML 1.1 reads as a boolean",
        files: &[(
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr:\n    select: {app: sonarr, tier: on}\n",
        )],
        code: "yaml11-boolean",
        message: "`on` is a boolean in YAML 1.1",
        help: "netpol reads the string `on`, but PyYAML, yamllint and other YAML 1.1 readers read `true`; write `\"on\"`",
        underlined: "on",
    },
];

#[test]
fn every_warning_kind_is_reported_precisely() {
    let problems: Vec<String> = WARNING_CASES.iter().flat_map(run_warning).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn quoted_yaml11_booleans_and_the_key_on_are_fine() {
    let c = compile(&[(
        "p/a.yaml",
        "namespace: media\nservices:\n  \"no\":\n    select: {tier: \"on\"}\n    allow:\n      - to: world\n        on: 443\n",
    )]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

#[test]
fn every_error_kind_is_reported_precisely() {
    let problems: Vec<String> = CASES.iter().flat_map(run).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let kinds: std::collections::BTreeSet<&str> = CASES.iter().map(|c| c.code).collect();
    assert!(kinds.len() >= 15, "only {} distinct kinds", kinds.len());
}

#[test]
fn all_errors_are_collected_not_just_the_first() {
    let c = compile(&[(
        "p/a.yaml",
        "namespace: media\nservices:\n  sonarr:\n    ports: {http: 99999}\n    enforce: sometimes\n  radarr:\n    allow:\n      - to: nowhere\n      - to: 10.0.0.1\n",
    )]);
    let codes: Vec<&str> = errors(&c).iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "invalid-port",
            "invalid-value",
            "unknown-service",
            "invalid-cidr"
        ],
        "shape errors and resolution errors are reported together, each once"
    );
}

#[test]
fn errors_in_several_files_are_all_reported() {
    let c = compile(&[
        (
            "p/a.yaml",
            "namespace: media\nservices:\n  sonarr: {ports: {http: 0}}\n",
        ),
        (
            "p/b.yaml",
            "namespace: games\nservices:\n  minecraft: {enforce: never}\n",
        ),
    ]);
    let files: Vec<&str> = errors(&c)
        .iter()
        .map(|d| c.sources.get(d.span.unwrap().source).unwrap().name.as_str())
        .collect();
    assert_eq!(files, ["p/a.yaml", "p/b.yaml"]);
}

#[test]
fn warnings_do_not_stop_compilation() {
    let c = compile(&[(
        "p/a.yaml",
        "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - from: world\n        on: 8443\ntemplates:\n  unused:\n    allow: []\n",
    )]);
    let codes: Vec<&str> = c.diagnostics.sorted().iter().map(|d| d.code).collect();
    assert_eq!(codes, ["open-to-world", "unused-template"]);
    assert!(c.objects.is_some());
}

#[test]
fn unused_templates_of_an_included_library_are_not_reported() {
    // `catalog/` is outside the paths given: a menu of templates, included for the few a
    // profile uses. A library among the paths given (`p/local.yaml`) is still checked.
    let c = compile(&[
        (
            "p/a.yaml",
            "namespace: a\ninclude: [../catalog/lib.yaml, local.yaml]\nservices:\n  x:\n    use: [lib-used]\n",
        ),
        (
            "p/local.yaml",
            "templates:\n  local-unused:\n    allow: []\n",
        ),
        (
            "catalog/lib.yaml",
            "templates:\n  lib-used:\n    allow:\n      - to: kube-apiserver\n        on: 6443\n  lib-unused:\n    allow: []\n",
        ),
    ]);
    let unused: Vec<&str> = c
        .diagnostics
        .sorted()
        .into_iter()
        .filter(|d| d.code == "unused-template")
        .map(|d| underlined(&c, d))
        .collect();
    assert_eq!(unused, ["local-unused"]);
    assert!(c.objects.is_some(), "{:?}", c.diagnostics);
}

#[test]
fn rendered_report_shows_file_line_snippet_and_hint() {
    let c = compile(&[(
        "p/media.yaml",
        "namespace: media\nservices:\n  sonarr:\n    ports: {http: 8989}\n  radarr:\n    allow:\n      - to: sonar\n        on: http\n",
    )]);
    let text = render_human(&c.diagnostics, &c.sources, Style::Plain);
    insta::assert_snapshot!(text);
}

fn notes(c: &Compilation) -> Vec<&Diagnostic> {
    c.diagnostics
        .sorted()
        .into_iter()
        .filter(|d| d.severity == netpol_compiler::diagnostic::Severity::Note)
        .collect()
}

fn warnings(c: &Compilation) -> Vec<&Diagnostic> {
    c.diagnostics
        .sorted()
        .into_iter()
        .filter(|d| d.is_warning())
        .collect()
}

/// The last line of the human report.
fn summary_line(c: &Compilation) -> String {
    let text = render_human(&c.diagnostics, &c.sources, Style::Plain);
    text.lines().last().unwrap_or_default().to_string()
}

/// A profile set where `traefik.yaml` and `db.yaml` name services and a template of
/// `media.yaml`, and `db.yaml` has a template only `media.yaml` could use.
fn around_media(media: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("p/media.yaml", media),
        (
            "p/traefik.yaml",
            "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - to: [media/sonarr, media/radarr]\n        on: http\n  other:\n    use: [arr-app]\n    allow:\n      - to: media/sonarr\n",
        ),
        (
            "p/db.yaml",
            "namespace: databases\ntemplates:\n  lonely:\n    allow: [{to: world, on: 443}]\nservices:\n  pg:\n    ports: {pg: 5432}\n    allow:\n      - from: media/sonarr\n        on: pg\n",
        ),
    ]
}

#[test]
fn a_file_with_a_yaml_slip_is_reported_once_and_what_depends_on_it_in_one_note() {
    let c = compile(&around_media(
        "namespace: media\ntemplates:\n  arr-app:\n    allow:\n      - to: databases/pg\n        on: 5432\nservices:\n  sonarr: {ports: {http: 8989}\n  radarr: {}\n",
    ));
    let errs = errors(&c);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let first = c.diagnostics.sorted()[0];
    assert_eq!(first.code, "yaml-syntax", "the cause comes first");
    assert_eq!(
        c.sources.get(first.span.unwrap().source).unwrap().name,
        "p/media.yaml"
    );
    let notes = notes(&c);
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let note = notes[0];
    assert_eq!(note.code, "not-checked");
    assert_eq!(
        note.message,
        "5 references to `p/media.yaml` were not checked: that file has errors"
    );
    assert_eq!(
        note.help.as_deref(),
        Some(
            "fix `p/media.yaml` and check again; a template that may be unused was not reported either; also not checked: p/traefik.yaml:5, p/traefik.yaml:8, p/traefik.yaml:10"
        )
    );
    assert_eq!(underlined(&c, note), "media/sonarr");
    assert!(
        warnings(&c).is_empty(),
        "no false `unused-template`: {:#?}",
        warnings(&c)
    );
    assert_eq!(summary_line(&c), "1 error, 0 warnings, 1 note");
}

#[test]
fn a_misspelt_section_hides_its_names_without_cascading() {
    // `srevices`: every service of media is missing, and so are the ports of them all.
    let c = compile(&around_media(
        "namespace: media\ntemplates:\n  arr-app:\n    allow:\n      - to: databases/pg\n        on: 5432\nsrevices:\n  sonarr: {ports: {http: 8989}}\n",
    ));
    let codes: Vec<&str> = errors(&c).iter().map(|d| d.code).collect();
    assert_eq!(codes, ["unknown-key"]);
    assert_eq!(notes(&c).len(), 1);
    assert_eq!(
        notes(&c)[0].message,
        "4 references to `p/media.yaml` were not checked: that file has errors"
    );
}

#[test]
fn a_service_with_a_misspelt_key_hides_only_its_port_names() {
    let c = compile(&[
        (
            "p/media.yaml",
            "namespace: media\nservices:\n  sonarr:\n    prots: {http: 8989}\n  radarr:\n    ports: {http: 7878}\n",
        ),
        (
            "p/traefik.yaml",
            "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - to: media/sonarr\n        on: http\n      - to: media/radarr\n        on: htp\n      - to: media/sonar\n",
        ),
    ]);
    let codes: Vec<&str> = errors(&c).iter().map(|d| d.code).collect();
    // `htp` of radarr and the unknown `sonar` are mistakes of their own: still reported.
    assert_eq!(
        codes,
        ["unknown-key", "unknown-port-name", "unknown-service"]
    );
    let notes = notes(&c);
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].message,
        "1 reference to `p/media.yaml` was not checked: that file has errors"
    );
    assert_eq!(underlined(&c, notes[0]), "http");
}

#[test]
fn the_summary_counts_what_is_shown() {
    // One mistake in a template used by three services: shown once, counted once.
    let c = compile(&[(
        "p/a.yaml",
        "namespace: media\ntemplates:\n  t:\n    allow:\n      - to: nowhere\nservices:\n  a: {use: [t]}\n  b: {use: [t]}\n  c: {use: [t]}\n",
    )]);
    let text = render_human(&c.diagnostics, &c.sources, Style::Plain);
    let shown = text.matches("netpol::").count();
    assert_eq!(shown, 1, "{text}");
    assert_eq!(summary_line(&c), "1 error, 0 warnings");
}

#[test]
fn an_error_in_a_template_is_reported_once_with_every_use() {
    let c = compile(&[
        (
            "p/templates.yaml",
            "templates:\n  arr-app:\n    allow:\n      - from: traefik/traefik\n        on: htp\n",
        ),
        (
            "p/media.yaml",
            "namespace: media\ninclude: [templates.yaml]\nservices:\n  sonarr:\n    ports: {http: 8989}\n    use: [arr-app]\n  radarr:\n    ports: {http: 7878}\n    use: [arr-app]\n  lidarr:\n    ports: {htp: 8686}\n    use: [arr-app]\n",
        ),
        ("p/traefik.yaml", TRAEFIK),
    ]);
    let errs = errors(&c);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = errs[0];
    assert_eq!(e.code, "unknown-port-name");
    assert_eq!(
        e.message,
        "service `media/radarr` has no port named `htp` (and 1 more use of template `arr-app`)"
    );
    assert_eq!(
        e.help.as_deref(),
        Some(
            "did you mean `http`? (in template `arr-app`, applied to `media/radarr` at p/media.yaml:9 and `media/sonarr` at p/media.yaml:6)"
        )
    );
    assert_eq!(underlined(&c, e), "htp");
    let uses: Vec<&str> = e
        .related
        .iter()
        .map(|(span, _)| c.sources.get(span.source).unwrap().slice(*span))
        .collect();
    assert_eq!(uses, ["arr-app", "arr-app"]);
    assert_eq!(summary_line(&c), "1 error, 0 warnings");
}

#[test]
fn an_acknowledged_warning_is_counted_not_shown() {
    let c = compile(&[(
        "p/a.yaml",
        "namespace: traefik\nservices:\n  traefik:\n    allow:\n      - from: world\n        port: 8443\n        acknowledge: {open-to-world: \"the ingress controller\"}\n",
    )]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.diagnostics.counts().acknowledged, 1);
    assert_eq!(
        summary_line(&c),
        "0 errors, 0 warnings, 1 acknowledged warning"
    );
    assert!(c.objects.is_some());
}

#[test]
fn a_service_acknowledges_the_warnings_about_it_wherever_they_are_raised() {
    // From a template it uses, and from a top-level statement that names it.
    let c = compile(&[(
        "p/a.yaml",
        "namespace: web\ntemplates:\n  public:\n    allow:\n      - from: world\n        port: 443\nservices:\n  site:\n    use: [public]\n    acknowledge: {open-to-world: \"the public web site\"}\n  blog:\n    use: [public]\nallow:\n  - from: world\n    to: site\n    port: 80\n",
    )]);
    let shown: Vec<(&str, &str)> = c
        .diagnostics
        .sorted()
        .iter()
        .map(|d| (d.code, d.message.as_str()))
        .collect();
    assert_eq!(
        shown,
        [(
            "open-to-world",
            "`web/blog` accepts connections from the internet"
        )],
        "blog did not acknowledge it"
    );
    assert_eq!(c.diagnostics.counts().acknowledged, 2);
}

#[test]
fn an_acknowledgement_in_a_template_covers_every_use() {
    let c = compile(&[(
        "p/a.yaml",
        "namespace: media\ntemplates:\n  torrent:\n    allow:\n      - to: world\n        acknowledge: {world-all-ports: \"peers use any port\"}\nservices:\n  qbittorrent: {use: [torrent]}\n  transmission: {use: [torrent]}\n",
    )]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(
        c.diagnostics.counts().acknowledged,
        1,
        "one place, one code"
    );
    assert_eq!(
        summary_line(&c),
        "0 errors, 0 warnings, 1 acknowledged warning"
    );
}

#[test]
fn a_yaml_syntax_error_comes_before_the_errors_of_files_read_before_it() {
    let c = compile(&[
        (
            "p/a.yaml",
            "namespace: games\nservices:\n  minecraft: {enforce: never}\n",
        ),
        (
            "p/b.yaml",
            "namespace: media\nservices:\n  sonarr: {ports: [1\n",
        ),
    ]);
    let codes: Vec<&str> = errors(&c).iter().map(|d| d.code).collect();
    assert_eq!(codes, ["yaml-syntax", "invalid-value"]);
}
