//! `netpol verify`: judge recorded flows against the policies and report.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;

use super::{Output, Status, policies};
use crate::document::files::Files;
use crate::engine::index::Evaluator;
use crate::flow::Reader;
use crate::report::verify;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Policy files or directories.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    policies: Vec<PathBuf>,
    /// Flow records: a file, or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    flows: PathBuf,
    /// `kubectl get pods,services,namespaces,nodes -A -o json`: resolves IPs, named ports,
    /// namespace labels and `toServices`.
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Markdown,
}

pub(super) fn run(args: &Args, fs: &dyn Files, out: &mut Output<'_>) -> Status {
    let Some(loaded) = policies::load(fs, &args.policies, args.inventory.as_deref(), out) else {
        return Status::BadInput;
    };
    let flows = &args.flows;
    let mut reader = Reader::new(loaded.inventory.as_ref());
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
    let read = if flows.as_os_str() == "-" {
        reader.read_all(&mut std::io::stdin().lock(), &mut progress)
    } else {
        match fs.open(flows) {
            Ok(mut input) => reader.read_all(&mut input, &mut progress),
            Err(e) => Err(e),
        }
    };
    let stderr = &mut *out.stderr;
    if interactive {
        let _ = write!(stderr, "\r{:60}\r", "");
    }
    if let Err(e) = read {
        let _ = writeln!(stderr, "error: cannot read `{}`: {e}", flows.display());
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
    let set = reader.set;
    let mut evaluator = Evaluator::new(&loaded.index, loaded.named_ports());
    let verification = verify::judge(&set.flows, &mut evaluator);
    let report = (
        &verification,
        &set,
        &loaded.index,
        &loaded.sources,
        loaded.accepted,
    );
    let status = match args.format {
        ReportFormat::Text => out.write(&verify::render_text(
            report.0, report.1, report.2, report.3, report.4,
        )),
        ReportFormat::Markdown => out.write(&verify::render_markdown(
            report.0, report.1, report.2, report.3, report.4,
        )),
        ReportFormat::Json => {
            let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut *out.stdout);
            let written = verify::render_json(
                &mut buffered,
                report.0,
                report.1,
                report.2,
                report.3,
                report.4,
            )
            .and_then(|()| buffered.flush());
            match written {
                Ok(()) => Status::Ok,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Ok,
                Err(_) => Status::BadInput,
            }
        }
    };
    if status != Status::Ok {
        return status;
    }
    if verification.denied() > 0 || loaded.rejected > 0 {
        Status::Found
    } else {
        Status::Ok
    }
}
