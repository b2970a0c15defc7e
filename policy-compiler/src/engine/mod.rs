//! The policy engine: deciding flows as Cilium would.
//!
//! ```text
//! files ──policy::import (typed decoding, Cilium's sanitize checks)──> PolicySet
//! PolicySet ──entry::build──> Entries (every rule item: subject, direction, verdict, L3, L4, L7)
//! Entries ──index::Index──> lookups per identity, identity pair and port (like Cilium's
//!                            selector cache and policy map)
//! Query {src, dst, proto, port} ──index::Evaluator | eval::reference──> Decision (and why)
//! ```
//!
//! [`identity`] gives the two ends of a flow their label sets, [`selector`] matches them;
//! [`eval`] holds the decision types and the naive reference evaluator that property tests hold
//! the [`index`] to. Uses [`crate::objects`], [`crate::document`] and [`crate::diagnostic`];
//! what the cluster knows (pods behind a Service, port names) comes in through the traits
//! [`entry::ServiceBackends`] and [`eval::NamedPorts`], which the flow layer's inventory
//! implements.

pub mod entry;
pub mod eval;
pub mod identity;
pub mod index;
pub mod policy;
pub mod reach;
pub mod selector;
pub mod settings;
