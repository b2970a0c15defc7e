//! The whole capture path on a buffer: reader → link layers → packets → flow table → records
//! → JSON lines, as `netpol-observer pcap` runs it.

use netpol_observer::capture::{Conversations, Settings, file};
use netpol_observer::identity::Identity;

pub fn run(capture: &[u8], per_connection: bool, short_idle: bool) {
    let settings = Settings {
        per_connection,
        idle_ns: if short_idle {
            1_000
        } else {
            Settings::default().idle_ns
        },
        ..Settings::default()
    };
    let mut conv = Conversations::new(settings, Identity::new(None, None));
    let read = file::read_from(
        capture,
        |f| conv.frame(f.linktype, f.data, f.time_ns),
        &mut |_| {},
    );
    if let Ok(read) = read {
        // Every frame handed over was counted (as a flow or as skipped).
        assert_eq!(read.frames, conv.packets);
        for r in conv.records() {
            let line = serde_json::to_string(&r).unwrap_or_default();
            assert!(!line.is_empty());
        }
    }
}
