//! The compiler: profiles in, default-deny Cilium policies out.
//!
//! ```text
//! profiles/*.yaml ──load (find files, follow includes)──> document (YAML nodes with spans)
//!     ──syntax::decode──> ProfileFile (syntax tree)  ──model::resolve──> Model (rules per workload)
//!     ──compile──> cilium::PolicyObject (typed CNP / CCNP) ──emit──> YAML stream | files + kustomization
//! ```
//!
//! Every stage reports all the problems it finds as diagnostics with spans; nothing is emitted
//! when there is an error. [`schema`] is the JSON Schema of the language, for editors. Uses
//! [`crate::objects`], [`crate::document`] and [`crate::diagnostic`]; the engine never looks at
//! profiles (it reads the compiled objects like any other policy).

pub(crate) mod compile;
pub mod emit;
mod load;
pub mod model;
pub mod schema;
pub mod syntax;

use std::path::PathBuf;

pub use load::{Loaded, Unread, load};

use crate::diagnostic::source::SourceMap;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::document::files::Files;
use crate::objects::cilium::PolicyObject;
use crate::profile::model::Model;

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
pub fn compile_paths(fs: &dyn Files, paths: &[PathBuf]) -> Compilation {
    let loaded = load(fs, paths);
    let mut diagnostics = loaded.diagnostics;
    let sources = loaded.sources;
    if loaded.files.is_empty() && !diagnostics.has_errors() {
        diagnostics.push(
            Diagnostic::global("no-profiles", "no profiles to compile")
                .with_help("give a profile file or a directory of profiles"),
        );
    }
    let model = model::resolve_with(&loaded.files, &loaded.unread, &sources, &mut diagnostics);
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
