//! Time: the kernel stamps events with `CLOCK_BOOTTIME` nanoseconds; records carry RFC 3339
//! wall-clock times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Converts kernel boot-time stamps to wall-clock time, calibrated once from `/proc/uptime`
/// (boot time, 10 ms resolution: enough for flow records).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall-clock time of boot, in nanoseconds since the Unix epoch.
    boot_unix_ns: u128,
}

impl Clock {
    pub fn calibrate() -> Self {
        let uptime = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let up = Duration::from_secs_f64(uptime.max(0.0));
        Self {
            boot_unix_ns: now.saturating_sub(up).as_nanos(),
        }
    }

    /// RFC 3339 (UTC, milliseconds) of a boot-time stamp.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        rfc3339(self.boot_unix_ns + u128::from(boot_ns))
    }
}

/// `2026-11-27T10:00:00.123Z` for nanoseconds since the Unix epoch.
pub fn rfc3339(unix_ns: u128) -> String {
    let secs = i64::try_from(unix_ns / 1_000_000_000).unwrap_or(i64::MAX);
    let millis = (unix_ns / 1_000_000) % 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(1_795_773_600_123_000_000),
            "2026-11-27T10:00:00.123Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
