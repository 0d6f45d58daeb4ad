//! Cron schedules: five fields (minute hour day-of-month month day-of-week) with `*`, `?`,
//! lists, ranges, steps and month/day names, or a macro (`@hourly`, `@daily`, ...). Times are
//! UTC. As in cron, when both day fields are restricted a day matching either one counts.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day of month and day of week were both restricted.
    either_day: bool,
}

const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + offset);
    }
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

/// One field as a bit set over `min..=max`; also whether it was unrestricted.
fn field(s: &str, min: u32, max: u32, names: &[&str], offset: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, st.parse::<u32>().map_err(|_| format!("bad step in {part:?}"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("zero step in {part:?}"));
        }
        let (lo, hi) = if range == "*" || range == "?" {
            star |= step == 1;
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, offset)?, value(b, names, offset)?)
        } else {
            let v = value(range, names, offset)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is outside {min}-{max}"));
        }
        for v in (lo..=hi).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let expanded = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        let [mi, h, dom, mo, dow] = f[..] else {
            return Err(format!("expected 5 fields, found {}: {s:?}", f.len()));
        };
        let (minutes, _) = field(mi, 0, 59, &[], 0)?;
        let (hours, _) = field(h, 0, 23, &[], 0)?;
        let (days, dom_star) = field(dom, 1, 31, &[], 0)?;
        let (months, _) = field(mo, 1, 12, &MONTHS, 1)?;
        let (mut weekdays, dow_star) = field(dow, 0, 7, &DAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7); // 7 is Sunday too
        }
        Ok(Self { minutes, hours, days, months, weekdays, either_day: !dom_star && !dow_star })
    }

    fn day_matches(&self, t: &DateTime<Utc>) -> bool {
        let dom = self.days & (1 << t.day()) != 0;
        let dow = self.weekdays & (1 << t.weekday().num_days_from_sunday()) != 0;
        if self.either_day { dom || dow } else { dom && dow }
    }

    /// The first scheduled minute strictly after `t` (None if there is none within 5 years).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = t.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let limit = t + Duration::days(5 * 366);
        while t < limit {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) =
                    if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(&t) {
                t = Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0).single()?
                    + Duration::days(1);
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.with_minute(0)? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_times_follow_cron() {
        let every = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(every.next_after(at("2026-01-01T10:07:30Z")), Some(at("2026-01-01T10:15:00Z")));
        assert_eq!(every.next_after(at("2026-01-01T10:45:00Z")), Some(at("2026-01-01T11:00:00Z")));
        let weekday_mornings = Schedule::parse("30 9 * * mon-fri").unwrap();
        // 2026-01-03 is a Saturday.
        assert_eq!(
            weekday_mornings.next_after(at("2026-01-03T12:00:00Z")),
            Some(at("2026-01-05T09:30:00Z"))
        );
        let yearly = Schedule::parse("@yearly").unwrap();
        assert_eq!(yearly.next_after(at("2026-03-01T00:00:00Z")), Some(at("2027-01-01T00:00:00Z")));
        let feb29 = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(feb29.next_after(at("2026-01-01T00:00:00Z")), Some(at("2028-02-29T00:00:00Z")));
        // Both day fields restricted: either matches (the 1st, or any Sunday).
        let either = Schedule::parse("0 0 1 * sun").unwrap();
        assert_eq!(either.next_after(at("2026-01-01T00:00:00Z")), Some(at("2026-01-04T00:00:00Z")));
        assert_eq!(Schedule::parse("0 0 * * 7").unwrap(), Schedule::parse("0 0 * * 0").unwrap());
    }

    #[test]
    fn bad_schedules_are_refused() {
        for s in ["* * * *", "60 * * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *", "* * * 13 *"]
        {
            assert!(Schedule::parse(s).is_err(), "{s}");
        }
    }
}
