//! The typed objects netpol reads and writes, and their value types.
//!
//! [`cilium`] (CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy, field for field with the
//! CRDs) and [`kubernetes`] (NetworkPolicy, the inventory's objects); the values inside them:
//! `label` keys and values, [`port`]s as profiles write them, [`fqdn`] names and patterns,
//! and the protocols and directions of flows ([`Proto`], [`ProtoSet`], [`Direction`]). Pure
//! data and its syntax rules: nothing here knows profiles, policies' meaning or flows, so
//! every layer above can use it.

pub mod cilium;
pub mod fqdn;
pub mod go_regex;
pub mod kubernetes;
pub(crate) mod label;
pub mod port;
mod protocol;

pub use protocol::{Direction, Proto, ProtoSet};
