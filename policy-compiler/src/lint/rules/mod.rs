//! The rules, one file each, in number order. A new rule takes the next free number; a
//! retired rule's code and number are never given to another.

mod default_deny_disabled;
mod deny_only_default_deny;
mod dns_to_foreign_resolver;
mod egress_without_dns;
mod fqdn_without_dns_proxy;

pub use default_deny_disabled::DefaultDenyDisabled;
pub use deny_only_default_deny::DenyOnlyDefaultDeny;
pub use dns_to_foreign_resolver::DnsToForeignResolver;
pub use egress_without_dns::EgressWithoutDns;
pub use fqdn_without_dns_proxy::FqdnWithoutDnsProxy;

use crate::lint::{Meta, Rule};

/// Implement [`Rule`] for rule structs whose `check` is an inherent function.
macro_rules! rules {
    ($($name:ident),* $(,)?) => {
        $(
            impl Rule for $name {
                fn meta(&self) -> &'static Meta {
                    &$name::META
                }
                fn check(&self, cx: &crate::lint::Context<'_>, out: &mut Vec<crate::diagnostic::Diagnostic>) {
                    $name::run(cx, out);
                }
            }
        )*
        /// Every rule, in number order.
        pub static ALL: &[&dyn Rule] = &[$(&$name),*];
    };
}

rules![
    FqdnWithoutDnsProxy,
    DnsToForeignResolver,
    EgressWithoutDns,
    DenyOnlyDefaultDeny,
    DefaultDenyDisabled,
];
