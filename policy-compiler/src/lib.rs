//! netpol: compile intent profiles into default-deny Cilium network policies, and audit any
//! Cilium or Kubernetes policy against recorded flows.
//!
//! Two pipelines share the object models, the YAML layer and the diagnostics:
//!
//! ```text
//! compiler   profiles/*.yaml ──profile::load──> document (YAML with spans) ──profile::syntax──> ProfileFile
//!                ──profile::model──> Model ──profile::compile──> objects::cilium (CNP / CCNP) ──profile::emit──> YAML
//!
//! auditor    *.yaml (CNP | CCNP | NetworkPolicy) ──engine::policy::import──> PolicySet ──engine::entry──> Entries
//!                ──engine::index──> Index
//!            flows (netpol JSONL | Hubble) + inventory ──flow──> Query ──Index──> Decision
//!                ──report::{verify, explain}──> text | Markdown | JSON
//! ```
//!
//! One folder per concern; dependencies point one way (a test, `tests/layout.rs`, keeps it so):
//!
//! ```text
//! cli ──> report, lint ──> flow ──> engine ──┐
//!  └────────────> profile ───────────────────┴──> objects, document ──> diagnostic
//! ```
//!
//! | folder | owns |
//! |---|---|
//! | [`cli`] | arguments, one file per subcommand, exit statuses |
//! | [`lint`] | `netpol lint`: one file per rule, its doc comment the rule's documentation; text, JSON, SARIF |
//! | [`report`] | `verify`, `explain`, `connectivity`, `diff`, `graph` (and the reports to come) |
//! | [`flow`] | flow records (netpol JSONL, Hubble), the inventory, the universe of peers |
//! | [`engine`] | policy import and sanitize, entries, identities, selectors, evaluators, index |
//! | [`profile`] | the compiler: profile files, syntax tree, model, compile, emit, JSON Schema |
//! | [`objects`] | typed Cilium and Kubernetes objects; labels, ports, FQDNs, protocols |
//! | [`document`] | input files, YAML with spans, its serde deserializer |
//! | [`diagnostic`] | diagnostics, source map and spans, "did you mean" |

pub mod cli;
pub mod diagnostic;
pub mod document;
pub mod engine;
pub mod flow;
pub mod lint;
pub mod objects;
pub mod profile;
pub mod report;
