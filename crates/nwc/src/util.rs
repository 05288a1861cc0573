//! Time helpers: the clock and calendar periods (UTC) for budgets.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const DAY: u64 = 86_400;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn secs_of_day(days: i64) -> u64 {
    u64::try_from(days).unwrap_or(0).saturating_mul(DAY)
}

/// Start of the UTC day containing `t`.
pub(crate) fn start_of_day(t: u64) -> u64 {
    t - t % DAY
}

/// Start of the ISO week (Monday 00:00 UTC) containing `t`.
pub(crate) fn start_of_week(t: u64) -> u64 {
    let days = t / DAY;
    // 1970-01-01 was a Thursday: Monday-based index 3.
    let since_monday = (days + 3) % 7;
    (days - since_monday) * DAY
}

/// Start of the UTC month containing `t`.
pub(crate) fn start_of_month(t: u64) -> u64 {
    let (y, m, _) = civil_from_days((t / DAY) as i64);
    secs_of_day(days_from_civil(y, m, 1))
}

/// Start of the UTC year containing `t`.
pub(crate) fn start_of_year(t: u64) -> u64 {
    let (y, _, _) = civil_from_days((t / DAY) as i64);
    secs_of_day(days_from_civil(y, 1, 1))
}

/// Start of the month after the one containing `t`.
pub(crate) fn start_of_next_month(t: u64) -> u64 {
    let (y, m, _) = civil_from_days((t / DAY) as i64);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    secs_of_day(days_from_civil(y, m, 1))
}

/// Start of the year after the one containing `t`.
pub(crate) fn start_of_next_year(t: u64) -> u64 {
    let (y, _, _) = civil_from_days((t / DAY) as i64);
    secs_of_day(days_from_civil(y + 1, 1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-1000i64, 0, 1, 59, 60, 365, 10_957, 19_723, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2024-02-29 (leap day) is day 19782.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn period_starts() {
        // 2024-03-15 12:34:56 UTC, a Friday.
        let t = 1_710_506_096;
        assert_eq!(start_of_day(t), 1_710_460_800); // 2024-03-15
        assert_eq!(start_of_week(t), 1_710_115_200); // Monday 2024-03-11
        assert_eq!(start_of_month(t), 1_709_251_200); // 2024-03-01
        assert_eq!(start_of_year(t), 1_704_067_200); // 2024-01-01
        assert_eq!(start_of_next_month(t), 1_711_929_600); // 2024-04-01
        assert_eq!(start_of_next_year(t), 1_735_689_600); // 2025-01-01
                                                          // December rolls into the next year.
        let dec = 1_734_264_000; // 2024-12-15
        assert_eq!(start_of_next_month(dec), 1_735_689_600);
    }
}
