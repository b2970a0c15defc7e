//! `netpol verify`: judge recorded flows against the policies and report.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};

use clap::ValueEnum;

use super::{Output, Status, policies, revision};
use crate::document::files::Files;
use crate::engine::index::Evaluator;
use crate::flow::{Chunk, Decoder, Reader};
use crate::report::expect::Expectations;
use crate::report::verify;
use crate::report::workload::Workloads;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    inputs: policies::Inputs,
    /// Flow records: a file, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    flows: PathBuf,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Expectations: a YAML list of flows meant to be dropped (or allowed), each `expect:
    /// dropped|allowed` with `from`, `to` and `on` as in a profile statement. Exit 0 when every
    /// drop is expected and every expectation holds, 1 otherwise.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Markdown,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let flows = &args.flows;
    let Some(mut settings) = policies::settings(fs, &args.inputs, out) else {
        return Status::BadInput;
    };
    // A broken expectation file ends the run before anything is read.
    let expect = match &args.expect {
        None => None,
        Some(path) => match read_expectations(fs, path, out) {
            Some(read) => Some(read),
            None => return Status::BadInput,
        },
    };
    // The flows are opened first: without `--cilium-config`, their start says which cluster
    // they come from, and the policies are indexed for that cluster.
    let from_stdin = flows.as_os_str() == "-";
    let Some(mut input) = policies::open_flows(fs, flows, out) else {
        return Status::BadInput;
    };
    if args.inputs.cluster.cilium_config.is_none() {
        policies::cluster_from_flows(&mut *input, &mut settings, out);
    }
    // Decoding the flows' JSON needs neither the policies nor the reader: one thread decodes
    // chunks of lines while this one loads the policies, then identifies and judges.
    let (sender, chunks) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
    // Chunks judged come back, their buffers reused (and freed by the thread that made them).
    let (done, spares) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD + 1);
    let decode = move || {
        let mut decoder = Decoder::new(None);
        while let Some(next) = decoder
            .next(&mut *input, spares.try_recv().ok())
            .transpose()
        {
            let failed = next.is_err();
            // A closed channel: the judging stopped (bad policies), nothing more is wanted.
            if sender.send(next).is_err() || failed {
                break;
            }
        }
    };
    std::thread::scope(move |scope| {
        let mut decode = Some(decode);
        // A file is decoded while the policies load; stdin only once they have loaded, so that
        // bad policies end the run without waiting on a stream.
        if !from_stdin {
            scope.spawn(decode.take()?);
        }
        let inputs = &args.inputs;
        let loaded = revision::read_with(
            fs,
            &inputs.policies,
            &inputs.cluster,
            settings,
            revision::Warnings::Count,
            out,
        )?;
        if let Some(decode) = decode.take() {
            scope.spawn(decode);
        }
        let expectations = match expect {
            None => None,
            Some((mut expectations, sources)) => {
                let policies = &loaded.policies;
                let workloads = Workloads::new(
                    policies.inventory.as_ref(),
                    &loaded.declared,
                    &policies.settings.cluster_name,
                );
                let problems = expectations.resolve(&workloads);
                out.report(&problems, &sources);
                if problems.has_errors() {
                    return None;
                }
                Some(expectations)
            }
        };
        let status = judge(
            args,
            &loaded.policies,
            expectations.as_ref(),
            (chunks, done),
            out,
        );
        // The process ends with the run: the index is not freed piece by piece.
        std::mem::forget(loaded);
        Some(status)
    })
    .unwrap_or(Status::BadInput)
}

/// How many decoded chunks (1 MB of lines each) may wait for the judging thread: enough for
/// the decoding to go on while the policies load (about 40 MB of a Hubble export in the time
/// 1,000 policies take), a constant bound on memory.
const CHUNKS_AHEAD: usize = 48;

/// Read `--expect FILE`: the expectations and their text (for diagnostics), or `None` after
/// reporting every problem.
fn read_expectations(
    fs: &dyn Files,
    path: &std::path::Path,
    out: &mut Output<'_>,
) -> Option<(Expectations, crate::diagnostic::source::SourceMap)> {
    let text = match fs.read(path) {
        Ok(text) => text,
        Err(e) => {
            let _ = writeln!(out.stderr, "error: cannot read `{}`: {e}", path.display());
            return None;
        }
    };
    let read = Expectations::read(path, &text);
    out.report(&read.diagnostics, &read.sources);
    Some((read.expectations?, read.sources))
}

/// Identify and judge the decoded flows as they come, then report.
fn judge(
    args: &Args,
    loaded: &policies::Policies,
    expectations: Option<&Expectations>,
    (chunks, done): (Receiver<std::io::Result<Chunk>>, SyncSender<Chunk>),
    out: &mut Output<'_>,
) -> Status {
    let flows = &args.flows;
    let mut reader = Reader::new(loaded.inventory.as_ref(), &loaded.settings.cluster_name);
    reader.label_filter = loaded.settings.identity_labels.clone();
    let json = matches!(args.format, ReportFormat::Json);
    // Only the JSON report lists flows with their time.
    reader.keep_times = json;
    let evaluator = Evaluator::new(&loaded.index, loaded.named_ports());
    let mut run = match verify::Run::new(evaluator, &loaded.index, &loaded.sources, json) {
        Ok(run) => run,
        Err(e) => {
            let _ = writeln!(out.stderr, "error: cannot create a temporary file: {e}");
            return Status::BadInput;
        }
    };
    if let Some(expectations) = expectations {
        run.expect(expectations);
    }
    let interactive = out.interactive;
    let stderr = &mut *out.stderr;
    let started = std::time::Instant::now();
    let mut progress = |bytes: u64| {
        if interactive {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            #[expect(clippy::cast_precision_loss, reason = "progress display")]
            let mb = bytes as f64 / 1e6;
            let _ = write!(
                stderr,
                "\rreading flows: {mb:.0} MB ({:.0} MB/s)   ",
                mb / secs
            );
        }
    };
    // Flows are judged as they are read; only connections, groups and decisions are kept.
    let mut spooled = Ok(());
    let mut read = Ok(());
    for chunk in chunks {
        match chunk {
            Ok(chunk) => {
                reader.take(&chunk, &mut progress, &mut |flow| {
                    if spooled.is_ok() {
                        spooled = run.push(&flow);
                    }
                });
                // The decoder may have stopped: the chunk is then dropped here.
                let _ = done.try_send(chunk);
            }
            Err(e) => {
                read = Err(e);
                break;
            }
        }
    }
    progress(reader.set.bytes);
    let stderr = &mut *out.stderr;
    if interactive {
        let _ = write!(stderr, "\r{:60}\r", "");
    }
    if let Err(e) = read {
        let _ = writeln!(stderr, "error: cannot read `{}`: {e}", flows.display());
        return Status::BadInput;
    }
    if let Err(e) = spooled {
        let _ = writeln!(
            stderr,
            "error: cannot write the report's temporary file: {e}"
        );
        return Status::BadInput;
    }
    if reader.error_count > 0 {
        for e in &reader.set.errors {
            let _ = writeln!(
                stderr,
                "error: {}:{}:{}: {}\n  help: {}",
                flows.display(),
                e.line,
                e.column,
                e.message,
                e.help
            );
        }
        if reader.error_count > reader.set.errors.len() {
            let _ = writeln!(
                stderr,
                "... and {} more errors",
                reader.error_count - reader.set.errors.len()
            );
        }
        let _ = writeln!(
            stderr,
            "error: {} bad flow records; nothing was judged",
            reader.error_count
        );
        return Status::BadInput;
    }
    let mut report = match run.finish(&reader.set.skipped, loaded.accepted, &loaded.settings) {
        Ok(report) => report,
        Err(e) => {
            let _ = writeln!(
                out.stderr,
                "error: cannot read the report's temporary file: {e}"
            );
            return Status::BadInput;
        }
    };
    let status = match args.format {
        ReportFormat::Text => out.write(&verify::render_text(&report)),
        ReportFormat::Markdown => out.write(&verify::render_markdown(&report)),
        ReportFormat::Json => {
            let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut *out.stdout);
            let written =
                verify::render_json(&mut buffered, &mut report).and_then(|()| buffered.flush());
            match written {
                Ok(()) => Status::Ok,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Ok,
                Err(_) => Status::BadInput,
            }
        }
    };
    // With --expect, only drops nobody meant and expectations the flows contradict fail.
    let found = report.fails() || loaded.rejected > 0;
    // The process ends with the run: freeing the connections, groups and names of a large
    // export one allocation at a time would cost several percent of the whole run.
    std::mem::forget((run, reader, report));
    if status != Status::Ok {
        status
    } else if found {
        Status::Found
    } else {
        Status::Ok
    }
}
