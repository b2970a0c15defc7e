//! Time: the kernel stamps events with `CLOCK_BOOTTIME` nanoseconds; records carry RFC 3339
//! wall-clock times (written by [`rfc3339`], read back by [`parse_rfc3339`] in `collect`).

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

    /// The clock of stamps that are already Unix time (capture files).
    pub fn unix() -> Self {
        Self { boot_unix_ns: 0 }
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 time (`2026-11-27T10:00:00.123Z`, `2026-11-27T11:00:00+01:00`; any fraction,
/// `t`/`z` or a space as the RFC allows), or `None`. Before 1970 is `None` too.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    fn number(s: &str) -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let sep = rest.chars().next()?;
    if !matches!(sep, 'T' | 't' | ' ') {
        return None;
    }
    let rest = rest.get(1..)?;
    let (year, month, day) = match date.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            (number(y)?, number(m)?, number(d)?)
        }
        _ => return None,
    };
    let (hour, minute, second) = (
        number(rest.get(0..2)?)?,
        number(rest.get(3..5)?)?,
        number(rest.get(6..8)?)?,
    );
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" {
        return None;
    }
    let rest = rest.get(8..)?;
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after) => {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            (after.get(..digits)?, after.get(digits..)?)
        }
        None => ("", rest),
    };
    if rest.starts_with('.') && fraction.is_empty() {
        return None;
    }
    let offset_s = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if zone.len() != 6 || zone.get(3..4)? != ":" {
                return None;
            }
            let (h, m) = (number(zone.get(1..3)?)?, number(zone.get(4..6)?)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    // A leap second (60) is read as the next second.
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    let nanos: u32 = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn unix_ns(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_nanos()
    }

    #[test]
    fn reads_back_what_it_writes() {
        for ns in [
            0,
            951_782_400_000_000_000,
            1_795_773_600_123_000_000,
            4_102_444_799_999_000_000,
        ] {
            let text = rfc3339(ns);
            assert_eq!(parse_rfc3339(&text).map(unix_ns), Some(ns), "{text}");
        }
    }

    #[test]
    fn reads_offsets_fractions_and_refuses_what_is_not_a_time() {
        let at = |t: &str| parse_rfc3339(t).map(unix_ns);
        let ten = Some(1_795_773_600_000_000_000);
        assert_eq!(at("2026-11-27T10:00:00Z"), ten);
        assert_eq!(at("2026-11-27T11:00:00+01:00"), ten);
        assert_eq!(at("2026-11-27T04:30:00-05:30"), ten);
        assert_eq!(at("2026-11-27t10:00:00z"), ten);
        assert_eq!(at("2026-11-27 10:00:00Z"), ten);
        assert_eq!(
            at("2026-11-27T10:00:00.123456789Z"),
            Some(1_795_773_600_123_456_789)
        );
        assert_eq!(
            at("2026-11-27T10:00:00.5Z"),
            Some(1_795_773_600_500_000_000)
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:00.Z",
            "2026-11-27T10:00Z",
            "2026-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T10:00:00+0100",
            "1969-12-31T23:59:59Z",
            "+026-11-27T10:00:00Z",
            "2026-11-27T10:00:00Zjunk",
            "2026-11-27T10:\u{e9}0:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(at("2024-02-29T00:00:00Z"), Some(1_709_164_800_000_000_000));
    }

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
