//! Capture files as a flow source: `netpol-observer pcap FILE...`.
//!
//! ```text
//! file (pcap | pcapng) ──file::read (pcap-parser; frames borrowed from the read buffer)──> Frame
//!   ──link::ip_packet (Ethernet/VLAN/QinQ/MPLS, SLL, SLL2, raw, NULL/LOOP, NFLOG)──> IP packet
//!   ──packet::decode (IPv4 + fragments, IPv6 + extension headers, TCP/UDP/SCTP/ICMP)──> Packet
//!   ──conversation: DNS answers → dns::DnsCache; Packet → aggregate::FlowTable (the live
//!     agent's table: directions paired, connections, records)──> export::record_of ──> JSONL
//! ```
//!
//! Exit codes: 0 read completely; 1 a file was cut short or damaged (the flows of every complete
//! packet are written, and a warning with the byte offset of the break); 2 a file is not a
//! capture, or cannot be opened (nothing is written).

pub mod conversation;
pub mod file;
pub mod link;
pub mod packet;

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;

use netpol_compiler::flow::inventory::Inventory;

use crate::identity::Identity;
pub use conversation::{Conversations, Settings};

/// `netpol-observer pcap`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    pub files: Vec<PathBuf>,
    pub inventory: Option<Inventory>,
    pub settings: Settings,
    /// Show a progress bar on stderr (a terminal, a large file).
    pub progress: bool,
}

/// Files at least this large get a progress bar on a terminal.
const PROGRESS_BYTES: u64 = 64 << 20;

/// Whether stderr is a terminal a progress bar can be drawn on.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Read every file into one flow table; write the records as JSON lines to `out` and
/// warnings to `err`. Returns the exit code.
pub fn run(opts: Options, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut conv = Conversations::new(opts.settings, Identity::new(opts.inventory, None));
    let mut code = 0u8;
    // Every file is checked before anything is written: one that is not a capture is an
    // error (exit 2) and nothing is printed.
    let mut broken = Vec::new();
    for path in &opts.files {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = opts.progress && size >= PROGRESS_BYTES;
        let name = path.display().to_string();
        let mut progress = |done: u64| {
            if bar {
                let pct = done.saturating_mul(100) / size.max(1);
                let _ = write!(
                    err,
                    "\r{name}: {pct:3}% ({} / {} MiB)",
                    done >> 20,
                    size >> 20
                );
            }
        };
        let read = file::read(
            path,
            |f| conv.frame(f.linktype, f.data, f.time_ns),
            &mut progress,
        );
        if bar {
            let _ = write!(err, "\r\x1b[2K");
        }
        match read {
            Ok(r) => {
                if let Some(b) = r.broken {
                    broken.push(format!(
                        "warning: `{name}` breaks at byte {}: {}; the flows of the {} packets before it are written",
                        b.offset, b.what, r.frames
                    ));
                    code = code.max(1);
                }
                if r.undeclared_interface > 0 {
                    broken.push(format!(
                        "warning: `{name}`: {} packets of an interface no block describes were skipped",
                        r.undeclared_interface
                    ));
                }
            }
            Err(e) => {
                let _ = writeln!(err, "error: `{name}`: {}", e.0);
                let _ = writeln!(
                    err,
                    "  help: give pcap or pcapng files (`tcpdump -w`, `tshark -w`, Wireshark)"
                );
                return 2;
            }
        }
    }
    for (linktype, n) in &conv.unknown_links {
        broken.push(format!(
            "warning: {n} packets of link type {linktype} were skipped: the link type is not read"
        ));
    }
    for r in conv.records() {
        let line = serde_json::to_string(&r).unwrap_or_default();
        if writeln!(out, "{line}").is_err() {
            // A closed pipe (`| head`) is not an error.
            break;
        }
    }
    let _ = out.flush();
    for line in broken {
        let _ = writeln!(err, "{line}");
    }
    code
}
