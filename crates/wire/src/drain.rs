//! Drains (`lvsctl drain`): a real server kept at weight 0, or out of the table, on a director.

use serde::{Deserialize, Serialize};

/// A real server kept drained on a director: since when, from which services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    /// Seconds since the epoch.
    pub since: u64,
    pub services: Vec<crate::ipvs::ServiceKey>,
    /// Taken out of the table (`drain --remove`), not only at weight 0.
    #[serde(default)]
    pub removed: bool,
}

impl Drained {
    /// When the drain began, as people read it: `2026-12-04 18:06:00 UTC`.
    pub fn since_utc(&self) -> String {
        utc(self.since)
    }
}

/// `2026-12-04 18:06:00 UTC`.
pub fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_407_560), "2026-12-04 18:06:00 UTC");
    }
}
