//! Capture files → frames, with `pcap-parser`: pcap (either byte order, micro- or
//! nanosecond stamps, the "modified" format) and pcapng (any number of sections, of either
//! byte order, and interfaces with their own link types and timestamp resolutions; enhanced,
//! simple and obsolete packet blocks). The file is read in large blocks; frames are borrowed
//! from the read buffer, never copied.
//!
//! A file that ends inside a block, or has a damaged one, gives every frame before it and says
//! where it broke ([`Broken`]); a file that is not a capture at all is [`NotCapture`].

use std::fs::File;
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{PcapBlockOwned, PcapError};

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub linktype: i32,
    pub data: &'a [u8],
    /// Unix nanoseconds.
    pub time_ns: u64,
}

/// The file cannot be read as a capture at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCapture(pub String);

/// Where a file stopped being readable: every frame before `offset` was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub offset: u64,
    pub what: String,
}

/// What reading a file came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    pub frames: u64,
    /// Bytes read as complete blocks.
    pub bytes: u64,
    /// Packets for an interface no block described.
    pub undeclared_interface: u64,
    pub broken: Option<Broken>,
}

/// The read buffer; grown for larger blocks up to [`MAX_BLOCK`].
const BUFFER: usize = 1 << 20;
/// A block larger than this is taken for damage (pcap's largest snapshot is 256 KiB).
const MAX_BLOCK: usize = 1 << 26;

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp.
    offset_s: i64,
}

fn ns(ts: u64, units: u64, offset_s: i64) -> u64 {
    let units = u128::from(units.max(1));
    let n = u128::from(ts) * 1_000_000_000 / units;
    let n = i128::try_from(n).unwrap_or(i128::MAX) + i128::from(offset_s) * 1_000_000_000;
    u64::try_from(n.max(0)).unwrap_or(u64::MAX)
}

/// Read `path`, handing every frame to `each`; `progress` gets the bytes read so far, every few
/// megabytes.
pub fn read(
    path: &Path,
    each: impl FnMut(Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<Read, NotCapture> {
    let file = File::open(path).map_err(|e| NotCapture(format!("cannot open: {e}")))?;
    read_from(file, each, progress)
}

/// [`read`] from any source of a capture's bytes (a file, a buffer).
pub fn read_from(
    source: impl std::io::Read + Send,
    mut each: impl FnMut(Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<Read, NotCapture> {
    let mut reader = match pcap_parser::create_reader(BUFFER, source) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(NotCapture("the file is empty".to_owned())),
        Err(PcapError::ReadError) => return Err(NotCapture("cannot read".to_owned())),
        Err(_) => {
            return Err(NotCapture(
                "not a capture file: neither pcap nor pcapng".to_owned(),
            ));
        }
    };
    let mut out = Read::default();
    let mut legacy: Option<(i32, u64)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut big_endian = false;
    let mut last_ns = 0u64;
    let mut next_progress = 0u64;
    let mut capacity = BUFFER;
    loop {
        let offset = match reader.next() {
            Ok((offset, block)) => {
                let emit = match &block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        let units = if h.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                        legacy = Some((h.network.0, units));
                        Got::Nothing
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, units) = legacy.unwrap_or((1, 1_000_000));
                        if b.caplen > b.origlen && b.caplen > 1 << 18 {
                            out.broken = Some(Broken {
                                offset: out.bytes,
                                what: format!(
                                    "a damaged packet record: {} bytes captured of {}",
                                    b.caplen, b.origlen
                                ),
                            });
                            break;
                        }
                        let t = u64::from(b.ts_sec) * units + u64::from(b.ts_usec);
                        Got::Frame(linktype, b.data, ns(t, units, 0))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        interfaces.clear();
                        big_endian = shb.big_endian();
                        Got::Nothing
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            linktype: idb.linktype.0,
                            units: resolution(idb.if_tsresol),
                            offset_s: idb.ts_offset(),
                        });
                        Got::Nothing
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match interfaces.get(epb.if_id as usize) {
                            Some(i) => {
                                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                Got::Frame(
                                    i.linktype,
                                    epb.packet_data(),
                                    ns(ts, i.units, i.offset_s),
                                )
                            }
                            None => Got::Undeclared,
                        }
                    }
                    // No timestamp: the last packet's; always the first interface.
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match interfaces.first() {
                        Some(i) => Got::Frame(i.linktype, spb.packet_data(), last_ns),
                        None => Got::Undeclared,
                    },
                    // The obsolete Packet Block (type 2): interface (16 bits), drops (16),
                    // timestamp high and low, captured and original lengths, data.
                    PcapBlockOwned::NG(Block::Unknown(u)) if u.block_type == 2 => {
                        let Some((if_id, ts, data)) = obsolete_packet(u.data, big_endian) else {
                            out.broken = Some(Broken {
                                offset: out.bytes,
                                what: "a damaged packet block".to_owned(),
                            });
                            break;
                        };
                        match interfaces.get(usize::from(if_id)) {
                            Some(i) => Got::Frame(i.linktype, data, ns(ts, i.units, i.offset_s)),
                            None => Got::Undeclared,
                        }
                    }
                    PcapBlockOwned::NG(_) => Got::Nothing,
                };
                match emit {
                    Got::Frame(linktype, data, time_ns) => {
                        out.frames += 1;
                        last_ns = time_ns;
                        each(Frame {
                            linktype,
                            data,
                            time_ns,
                        });
                    }
                    Got::Undeclared => out.undeclared_interface += 1,
                    Got::Nothing => {}
                }
                offset
            }
            Err(e) => {
                let what = match e {
                    PcapError::Eof => break,
                    PcapError::Incomplete(_) => {
                        if reader.refill().is_ok() {
                            continue;
                        }
                        "a read error".to_owned()
                    }
                    PcapError::BufferTooSmall => {
                        capacity *= 2;
                        if capacity > MAX_BLOCK || !reader.grow(capacity) {
                            format!("a block larger than {} MiB: damaged", MAX_BLOCK >> 20)
                        } else if reader.refill().is_ok() {
                            continue;
                        } else {
                            "a read error".to_owned()
                        }
                    }
                    PcapError::ReadError => "a read error".to_owned(),
                    PcapError::UnexpectedEof => {
                        "the file ends inside a block (cut short?)".to_owned()
                    }
                    _ => "a damaged block".to_owned(),
                };
                out.broken = Some(Broken {
                    offset: out.bytes,
                    what,
                });
                break;
            }
        };
        reader.consume(offset);
        out.bytes += offset as u64;
        if out.bytes >= next_progress {
            progress(out.bytes);
            next_progress = out.bytes + (8 << 20);
        }
    }
    progress(out.bytes);
    Ok(out)
}

/// Timestamp units per second of an `if_tsresol` (pcap-parser's own helper refuses binary
/// resolutions): `10^-n`, or `2^-n` with the top bit set; nonsense falls back to microseconds.
fn resolution(tsresol: u8) -> u64 {
    let n = u32::from(tsresol & 0x7f);
    let units = if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n)
    };
    units.filter(|u| *u > 0).unwrap_or(1_000_000)
}

/// What a block gave.
enum Got<'a> {
    Nothing,
    Frame(i32, &'a [u8], u64),
    /// A packet of an interface no block described.
    Undeclared,
}

/// The body of an obsolete Packet Block: interface, timestamp, data.
fn obsolete_packet(body: &[u8], big_endian: bool) -> Option<(u16, u64, &[u8])> {
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = body.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = body.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let if_id = u16_at(0)?;
    let ts = (u64::from(u32_at(4)?) << 32) | u64::from(u32_at(8)?);
    let caplen = usize::try_from(u32_at(12)?).ok()?;
    let data = body.get(20..20usize.checked_add(caplen)?)?;
    Some((if_id, ts, data))
}
