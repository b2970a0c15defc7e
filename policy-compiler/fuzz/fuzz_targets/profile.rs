//! Any bytes as a profile (plus a fixed second profile it can refer to): the compiler must
//! answer with diagnostics or policies, never panic, and never both errors and output.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use netpol_compiler::document::files::Memory;
use netpol_compiler::profile::{compile_paths, emit};

const TRAEFIK: &str = "namespace: traefik\nservices:\n  traefik:\n    ports: {web: 8000}\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fs = Memory::new([
        (PathBuf::from("p/fuzz.yaml"), text.to_string()),
        (PathBuf::from("p/traefik.yaml"), TRAEFIK.to_string()),
    ]);
    let c = compile_paths(&fs, &[PathBuf::from("p")]);
    let _ = netpol_compiler::diagnostic::render_human(&c.diagnostics, &c.sources, netpol_compiler::diagnostic::Style::Plain);
    let _ = netpol_compiler::diagnostic::render_json(&c.diagnostics, &c.sources);
    match c.objects {
        Some(objects) => {
            assert!(!c.diagnostics.has_errors());
            let _ = emit::stream(&objects, emit::Format::Yaml);
        }
        None => assert!(c.diagnostics.has_errors()),
    }
});
