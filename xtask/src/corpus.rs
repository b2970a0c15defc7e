//! `cargo xtask corpus`: run the policy engine over the shared corpus of real inputs (a dev
//! check; the test suite itself is self-contained).
//!
//! * every CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy / NetworkPolicy is imported by
//!   netpol; each Cilium object is also validated against the CRD schema, and the two verdicts
//!   are compared: schema-valid objects netpol rejects must be Cilium sanitize rejections
//!   (listed with netpol's diagnostic) or carry fields the 1.19 schema does not know (which
//!   strict field validation refuses; the schema check here, like a pruning API server, lets
//!   them pass), schema-invalid objects netpol accepts are listed as mismatches;
//! * every Hubble flow export is read and judged against the accepted policies, and against no
//!   policy at all (everything must be allowed).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use netpol_compiler::diagnostic::Diagnostics;
use netpol_compiler::diagnostic::source::{SourceFile, SourceMap};
use netpol_compiler::engine::entry;
use netpol_compiler::engine::eval::NoPorts;
use netpol_compiler::engine::index::{Evaluator, Index};
use netpol_compiler::engine::policy::{self, PolicySet};
use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};
use netpol_compiler::flow::Reader;
use netpol_compiler::report::verify;
use serde_json::Value;

use crate::crd::{Schemas, objects};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The corpus directory [default: ../shared/corpus, from the workspace root]
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Tally {
    objects: usize,
    schema_valid_accepted: usize,
    schema_valid_rejected: Vec<String>,
    /// Schema-valid once unknown fields are pruned, refused by strict field validation.
    unknown_fields: Vec<String>,
    schema_invalid_rejected: usize,
    schema_invalid_accepted: Vec<String>,
    knp_accepted: usize,
    knp_rejected: Vec<String>,
}

pub fn run(args: &Args) -> Result<bool> {
    let root = args
        .corpus
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join("../shared/corpus"));
    if !root.is_dir() {
        bail!("no corpus at `{}`; pass `--corpus DIR`", root.display());
    }
    let mut schemas = Schemas::load(&root.join("cilium-crds/derived"), false)?;
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    let mut tally = Tally::default();
    let mut all = PolicySet::default();
    let mut sources = SourceMap::new();
    let mut unparsable = 0;
    for file in files
        .iter()
        .filter(|f| !f.starts_with(root.join("hubble-flows")))
    {
        let text = fs::read_to_string(file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let Ok(documents): Result<Vec<Value>, _> = serde_saphyr::from_str_multiple(&text) else {
            unparsable += 1;
            continue;
        };
        for doc in &documents {
            for object in objects(doc) {
                check(
                    object,
                    file,
                    &mut schemas,
                    &mut tally,
                    &mut sources,
                    &mut all,
                )?;
            }
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "policy objects: {} (files not parsable as YAML, e.g. Go templates: {unparsable})",
        tally.objects
    )?;
    writeln!(
        out,
        "  Cilium, schema-valid, accepted by netpol:   {}",
        tally.schema_valid_accepted
    )?;
    writeln!(
        out,
        "  Cilium, schema-valid, rejected by sanitize: {}",
        tally.schema_valid_rejected.len()
    )?;
    for r in &tally.schema_valid_rejected {
        writeln!(out, "    {r}")?;
    }
    writeln!(
        out,
        "  Cilium, fields unknown to the schema, refused (strict field validation): {}",
        tally.unknown_fields.len()
    )?;
    for r in &tally.unknown_fields {
        writeln!(out, "    {r}")?;
    }
    writeln!(
        out,
        "  Cilium, schema-invalid, rejected by netpol: {}",
        tally.schema_invalid_rejected
    )?;
    writeln!(
        out,
        "  Cilium, schema-invalid, ACCEPTED by netpol: {}",
        tally.schema_invalid_accepted.len()
    )?;
    for r in &tally.schema_invalid_accepted {
        writeln!(out, "    {r}")?;
    }
    writeln!(
        out,
        "  NetworkPolicy accepted: {}, rejected: {}",
        tally.knp_accepted,
        tally.knp_rejected.len()
    )?;
    for r in &tally.knp_rejected {
        writeln!(out, "    {r}")?;
    }

    let index = Index::new(entry::build(&all, None, &Settings::default()));
    let empty = Index::new(entry::build(
        &PolicySet::default(),
        None,
        &Settings::default(),
    ));
    let mut flows_total = 0;
    let mut ok = tally.schema_invalid_accepted.is_empty();
    for file in files
        .iter()
        .filter(|f| f.starts_with(root.join("hubble-flows")))
    {
        let Some(ext) = file.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if ext != "json" && ext != "jsonl" {
            continue;
        }
        let text = fs::read_to_string(file)?;
        let mut reader = Reader::new(None, DEFAULT_CLUSTER);
        reader.read_all(&mut text.as_bytes(), &mut |_| {})?;
        let mut ev = Evaluator::new(&index, &NoPorts);
        let v = verify::judge(&reader.set.flows, &mut ev);
        flows_total += v.judged.len();
        // Without any policy, Cilium allows everything.
        let mut open = Evaluator::new(&empty, &NoPorts);
        let unpoliced = verify::judge(&reader.set.flows, &mut open);
        if unpoliced.denied() > 0 {
            writeln!(
                out,
                "  MISMATCH: {} flows denied without any policy",
                unpoliced.denied()
            )?;
            ok = false;
        }
        writeln!(
            out,
            "{}: {} flows judged ({} denied, {} replies), skipped {:?}, {} bad records",
            file.strip_prefix(&root).unwrap_or(file).display(),
            v.judged.len(),
            v.denied(),
            v.judged.iter().filter(|j| j.reply).count(),
            reader.set.skipped,
            reader.error_count
        )?;
        ok &= reader.error_count == 0;
    }
    writeln!(
        out,
        "hubble flows judged: {flows_total} against {} policies",
        all.policies.len()
    )?;
    Ok(ok)
}

fn check(
    object: &Value,
    file: &Path,
    schemas: &mut Schemas,
    tally: &mut Tally,
    sources: &mut SourceMap,
    all: &mut PolicySet,
) -> Result<()> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !matches!(
        kind,
        "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy" | "NetworkPolicy"
    ) {
        return Ok(());
    }
    if kind == "NetworkPolicy"
        && object.get("apiVersion").and_then(Value::as_str) != Some("networking.k8s.io/v1")
    {
        return Ok(());
    }
    tally.objects += 1;
    let text = serde_json::to_string_pretty(object)?;
    let id = sources.add(SourceFile::new(file, text.as_str()));
    let mut diags = Diagnostics::new();
    let mut set = PolicySet::default();
    policy::import_text(id, &text, &mut diags, &mut set);
    let accepted = !set.policies.is_empty();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let first_error = diags
        .iter()
        .find(|d| d.is_error())
        .map(|d| d.message.clone())
        .unwrap_or_default();
    let label = format!("{}: {kind}/{name}: {first_error}", file.display());
    let unknown_field = diags
        .iter()
        .find(|d| d.is_error())
        .is_some_and(|d| d.code == "unknown-field");
    if kind == "NetworkPolicy" {
        if accepted {
            tally.knp_accepted += 1;
        } else {
            tally.knp_rejected.push(label);
        }
    } else {
        let valid = schemas.violations(object)?.is_none_or(|v| v.is_empty());
        match (valid, accepted) {
            (true, true) => tally.schema_valid_accepted += 1,
            (true, false) if unknown_field => tally.unknown_fields.push(label),
            (true, false) => tally.schema_valid_rejected.push(label),
            (false, false) => tally.schema_invalid_rejected += 1,
            (false, true) => tally
                .schema_invalid_accepted
                .push(format!("{}: {kind}/{name}", file.display())),
        }
    }
    all.policies.extend(set.policies);
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs::DirEntry::path);
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            // Go templates are not policies until rendered.
            if path.file_name().is_some_and(|n| n == "templated") {
                continue;
            }
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json" | "jsonl"))
        {
            out.push(path);
        }
    }
    Ok(())
}
