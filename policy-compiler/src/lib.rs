//! netpol: compile intent profiles into default-deny Cilium network policies.
//!
//! ```text
//! profiles/*.yaml ──document (spans)──> profile AST ──model──> Model ──compile──> cilium objects ──emit──> YAML
//! ```

pub mod cilium;
