//! What the engine's answers look like to a user: one module per report.
//!
//! [`verify`] judges recorded flows and renders text, Markdown or JSON, against the intended
//! drops of [`expect`]; [`explain`] walks one flow through every rule; [`connectivity`] lists
//! every allowed connection of a universe, [`diff`] compares two of them (a pull request),
//! [`graph`] draws one; [`suggest`] writes what dropped flows need, [`drift`] what the
//! flows never use and what they do undeclared. [`workload`] finds
//! workloads by the names users give them (pods, profile services, manifests) and their port
//! names; [`comment`] is what every pull-request
//! comment shares (GitHub's size limit). Uses the [`crate::engine`] and [`crate::flow`]; the
//! command line chooses the report and the exit status.

pub mod comment;
pub mod connectivity;
pub mod diff;
pub mod drift;
pub mod expect;
pub mod explain;
pub mod graph;
pub mod suggest;
pub mod verify;
pub mod workload;
