//! The rules, one file each, in number order. A new rule takes the next free number; a
//! retired rule's code and number are never given to another.

mod apiserver_port;
mod default_deny_disabled;
mod deny_only_default_deny;
mod dns_to_foreign_resolver;
mod egress_to_all;
mod egress_without_dns;
mod empty_peer_list;
mod fqdn_without_dns_proxy;
mod ingress_deny_host;
mod ingress_from_world;
mod knp_policy_types;
mod named_port;
mod octal_port;
mod open_cidr;
mod peer_selects_nothing;
mod service_port;
mod shadowed_rule;
mod subject_selects_nothing;
mod toports_without_ports;
mod unisolated_workloads;
mod unmatched_service;
mod wide_port_range;

pub use apiserver_port::ApiserverPort;
pub use default_deny_disabled::DefaultDenyDisabled;
pub use deny_only_default_deny::DenyOnlyDefaultDeny;
pub use dns_to_foreign_resolver::DnsToForeignResolver;
pub use egress_to_all::EgressToAll;
pub use egress_without_dns::EgressWithoutDns;
pub use empty_peer_list::EmptyPeerList;
pub use fqdn_without_dns_proxy::FqdnWithoutDnsProxy;
pub use ingress_deny_host::IngressDenyHost;
pub use ingress_from_world::IngressFromWorld;
pub use knp_policy_types::KnpPolicyTypes;
pub use named_port::NamedPort;
pub use octal_port::OctalPort;
pub use open_cidr::OpenCidr;
pub use peer_selects_nothing::PeerSelectsNothing;
pub use service_port::ServicePort;
pub use shadowed_rule::ShadowedRule;
pub use subject_selects_nothing::SubjectSelectsNothing;
pub use toports_without_ports::ToPortsWithoutPorts;
pub use unisolated_workloads::UnisolatedWorkloads;
pub use unmatched_service::UnmatchedService;
pub use wide_port_range::WidePortRange;

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
    IngressFromWorld,
    EgressToAll,
    OpenCidr,
    WidePortRange,
    IngressDenyHost,
    ApiserverPort,
    ServicePort,
    EmptyPeerList,
    ToPortsWithoutPorts,
    OctalPort,
    KnpPolicyTypes,
    UnmatchedService,
    NamedPort,
    SubjectSelectsNothing,
    PeerSelectsNothing,
    ShadowedRule,
    UnisolatedWorkloads,
];
