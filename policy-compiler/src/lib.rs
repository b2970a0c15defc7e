//! netpol: compile intent profiles into default-deny Cilium network policies.
//!
//! ```text
//! profiles/*.yaml ──input (read, follow includes)──> document (YAML nodes with spans)
//!     ──profile::decode──> ProfileFile (syntax tree)  ──model::resolve──> Model (rules per workload)
//!     ──compile──> cilium::PolicyObject (typed CNP / CCNP) ──emit──> YAML stream | files + kustomization
//! ```
//!
//! Every stage reports all the problems it finds as [`diagnostic::Diagnostic`]s with spans;
//! nothing is emitted when there is an error.

pub mod cilium;
pub mod cli;
pub mod compile;
pub mod diagnostic;
pub mod document;
pub mod emit;
pub mod entry;
pub mod eval;
pub mod explain;
pub mod flow;
pub mod fqdn;
pub mod identity;
pub mod index;
pub mod input;
pub mod inventory;
pub mod kubernetes;
pub mod label;
pub mod model;
pub mod policy;
pub mod port;
pub mod profile;
pub mod schema;
pub mod selector;
pub mod source;
pub mod suggest;
pub mod verify;

use std::path::PathBuf;

use crate::cilium::PolicyObject;
use crate::diagnostic::Diagnostics;
use crate::model::Model;
use crate::source::SourceMap;

/// The result of compiling a set of profiles.
#[derive(Debug)]
pub struct Compilation {
    pub sources: SourceMap,
    pub diagnostics: Diagnostics,
    /// `None` when there were errors: never partial output.
    pub model: Option<Model>,
    pub objects: Option<Vec<PolicyObject>>,
}

/// Read, check and compile the profiles at `paths` (files or directories).
pub fn compile_paths(fs: &dyn input::Files, paths: &[PathBuf]) -> Compilation {
    let loaded = input::load(fs, paths);
    let mut diagnostics = loaded.diagnostics;
    let sources = loaded.sources;
    if loaded.files.is_empty() && !diagnostics.has_errors() {
        diagnostics.push(
            diagnostic::Diagnostic::global("no-profiles", "no profiles to compile")
                .with_help("give a profile file or a directory of profiles"),
        );
    }
    let model = model::resolve(&loaded.files, &sources, &mut diagnostics);
    let model = if diagnostics.has_errors() {
        None
    } else {
        model
    };
    let objects = model.as_ref().map(|m| compile::compile(m, &sources));
    Compilation {
        sources,
        diagnostics,
        model,
        objects,
    }
}
