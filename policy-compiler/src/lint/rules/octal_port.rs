use crate::diagnostic::Diagnostic;
use crate::document::Step;
use crate::lint::{Context, cilium_items, finding};
use crate::objects::port::RulePort;

declare_rule! {
    /// A port written so that Cilium reads another number: `"010"` is port 8.
    ///
    /// ## What
    /// A `toPorts` port is a number not written in plain decimal: a leading `0` (octal),
    /// `0x`/`0o`/`0b` prefixes or `_` between digits.
    ///
    /// ## Why
    /// Cilium parses ports with Go's `strconv.ParseUint(port, 0, 16)`, which reads a leading
    /// `0` as octal: `"010"` is 8 and `"0443"` is 291, while `"080"` is refused outright
    /// (cilium/cilium@507103c6 pkg/policy/api/rule_validation.go:622-650). The rule then
    /// allows a port nobody meant.
    ///
    /// ## Example
    /// ```yaml
    ///       toPorts:
    ///         - ports: [{port: "0443", protocol: TCP}]
    /// ```
    ///
    /// ## Fix
    /// Write the decimal number without leading zeros: `port: "443"`.
    pub struct OctalPort {
        code: "octal-port",
        id: "NP215",
        level: Warning,
        compiled: true,
    }
}

impl OctalPort {
    pub(super) fn run(cx: &Context<'_>, out: &mut Vec<Diagnostic>) {
        for item in cilium_items(cx) {
            for (i, pv) in item.item.ports.iter().flatten().enumerate() {
                for (j, p) in pv.ports.unwrap_or_default().iter().enumerate() {
                    let Ok(RulePort::Number(n)) = RulePort::parse(&p.port) else {
                        continue;
                    };
                    if n.to_string() == p.port {
                        continue;
                    }
                    let path = [
                        Step::Key("toPorts"),
                        Step::Index(i),
                        Step::Key("ports"),
                        Step::Index(j),
                        Step::Key("port"),
                    ];
                    out.push(finding(
                        &Self::META,
                        item.span(&path),
                        format!("`{}` is port {n} to Cilium", p.port),
                        format!("port {n}"),
                        format!("a leading `0` is octal; write `port: \"{n}\"` if {n} is meant, else the decimal port"),
                    ));
                }
            }
        }
    }
}
