//! Typed models of the Cilium policy CRDs.
