//! Calendar rules for the scheduler: quiet hours, workdays/holidays and cron schedules.
//!
//! Pure code: no I/O and no clock reads, so callers pass `now` in and every rule is testable.
//!
//! Wall-clock times are turned into instants with one rule everywhere:
//! - a local time skipped by a DST jump (e.g. 02:30 on 2026-03-08 in America/New_York) resolves to the first
//!   valid instant after the gap (03:00 EDT), so nothing scheduled there is silently dropped;
//! - a local time repeated by a DST fall-back resolves to its earliest instant, so nothing runs twice.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::{GapInfo, Tz};
use cron::TimeUnitSpec;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How far `Calendar::next_workday_on_or_after` looks before giving up (a bit over a year).
const WORKDAY_SEARCH_DAYS: u32 = 400;

/// Safety cap on schedule occurrences inspected per query. Searches skip at most the occurrences of one repeated
/// DST hour (3,600 for a per-second schedule), so the cap only guards against surprises in the `cron` crate.
const MAX_CRON_STEPS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CalendarError {
    #[error("quiet hours \"{input}\": expected HH:MM-HH:MM such as 21:00-08:00, or \"off\" for none")]
    QuietHoursFormat { input: String },
    #[error("quiet hours \"{input}\": start equals end; use \"off\" for no quiet hours or a range such as 21:00-08:00")]
    QuietHoursEmpty { input: String },
    #[error("unknown weekday \"{name}\" in calendar weekend: use names such as Sat, Sun, Saturday or 周六")]
    UnknownWeekday { name: String },
    #[error("date {date} is listed both as a holiday and as a workday in the calendar: keep it in one list only")]
    HolidayAndWorkday { date: NaiveDate },
    #[error(
        "cron expression \"{expr}\": {reason}; expected 5 fields (minute hour day-of-month month day-of-week) \
         such as \"0 9 * * Mon-Fri\", or 6-7 fields with seconds first such as \"0 0 9 * * Mon-Fri\""
    )]
    Cron { expr: String, reason: String },
}

// ---------------------------------------------------------------------------------------------------------------
// Quiet hours
// ---------------------------------------------------------------------------------------------------------------

/// A daily window (local time) in which nothing should be sent. `start` is inclusive, `end` exclusive; a window
/// with `start > end` wraps past midnight. `start == end` means "off" (see [`QuietHours::OFF`]), never 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// No quiet hours; parsed from "off", "none" or "" and displayed as "off".
    pub const OFF: QuietHours = QuietHours { start: NaiveTime::MIN, end: NaiveTime::MIN };

    pub fn is_off(&self) -> bool {
        self.start == self.end
    }

    /// Whether local time `t` falls inside the window.
    pub fn contains(&self, t: NaiveTime) -> bool {
        match self.start.cmp(&self.end) {
            Ordering::Less => self.start <= t && t < self.end,
            Ordering::Greater => t >= self.start || t < self.end,
            Ordering::Equal => false,
        }
    }

    /// The local moment the window ends if `local` is inside it, else `local` unchanged.
    pub fn release(&self, local: NaiveDateTime) -> NaiveDateTime {
        if !self.contains(local.time()) {
            return local;
        }
        if local.time() < self.end {
            local.date().and_time(self.end)
        } else {
            // Wrapping window, evening part: it ends tomorrow. At NaiveDate::MAX there is no tomorrow; keep `local`.
            local.date().succ_opt().map_or(local, |d| d.and_time(self.end))
        }
    }
}

impl FromStr for QuietHours {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input = s.trim();
        if input.is_empty() || input.eq_ignore_ascii_case("off") || input.eq_ignore_ascii_case("none") {
            return Ok(Self::OFF);
        }
        let format_error = || CalendarError::QuietHoursFormat { input: input.to_string() };
        // Accept the en dash too: it sneaks in when the value is copied from documents.
        let (start, end) = input.split_once(['-', '–']).ok_or_else(format_error)?;
        let start = parse_clock(start).ok_or_else(format_error)?;
        let end = parse_clock(end).ok_or_else(format_error)?;
        if start == end {
            return Err(CalendarError::QuietHoursEmpty { input: input.to_string() });
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        write_clock(f, self.start)?;
        f.write_str("-")?;
        write_clock(f, self.end)
    }
}

impl TryFrom<String> for QuietHours {
    type Error = CalendarError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<QuietHours> for String {
    fn from(q: QuietHours) -> String {
        q.to_string()
    }
}

/// Parses "H:MM", "HH:MM" or "HH:MM:SS" strictly (no "2100", no "9:5").
fn parse_clock(s: &str) -> Option<NaiveTime> {
    fn number(part: &str, min_len: usize, max_len: usize) -> Option<u32> {
        let ok = (min_len..=max_len).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
        if ok { part.parse().ok() } else { None }
    }
    let mut parts = s.trim().split(':');
    let hour = number(parts.next()?, 1, 2)?;
    let minute = number(parts.next()?, 2, 2)?;
    let second = match parts.next() {
        Some(p) => number(p, 2, 2)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    NaiveTime::from_hms_opt(hour, minute, second)
}

/// Writes "HH:MM", adding ":SS" only when needed so the output always parses back.
fn write_clock(f: &mut fmt::Formatter<'_>, t: NaiveTime) -> fmt::Result {
    write!(f, "{:02}:{:02}", t.hour(), t.minute())?;
    if t.second() != 0 {
        write!(f, ":{:02}", t.second())?;
    }
    Ok(())
}

/// If `at` falls inside `quiet` (in `tz` local time), the instant the window ends; otherwise `at`.
///
/// A window end skipped by DST resolves to the first valid instant after the gap; a repeated one to the earliest
/// instant that is not before `at`. Out-of-range inputs return `at` unchanged.
pub fn defer_past_quiet(at: DateTime<Utc>, tz: Tz, quiet: Option<&QuietHours>) -> DateTime<Utc> {
    let Some(quiet) = quiet else { return at };
    let Some(local) = to_local(at, tz) else { return at };
    let release = quiet.release(local);
    if release == local {
        return at;
    }
    let (earliest, later) = instants_for_wall(tz, release);
    // In a fall-back's second pass the earlier reading of the end time can lie before `at`; never defer backwards.
    [earliest, later].into_iter().flatten().find(|t| *t >= at).unwrap_or(at)
}

// ---------------------------------------------------------------------------------------------------------------
// Local-time helpers
// ---------------------------------------------------------------------------------------------------------------

/// Local wall time of `at` in `tz`; `None` only at the edges of chrono's range (where `naive_local` would panic).
fn to_local(at: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let utc = at.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// Instants whose local time is `wall`: (earliest, the later one if the wall time is repeated).
/// A wall time inside a DST gap yields the first instant after the gap.
fn instants_for_wall(tz: Tz, wall: NaiveDateTime) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => (Some(t.to_utc()), None),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.to_utc(), b.to_utc());
            (Some(a.min(b)), Some(a.max(b)))
        }
        LocalResult::None => (GapInfo::new(&wall, &tz).and_then(|gap| gap.end).map(|t| t.to_utc()), None),
    }
}

/// The single instant a wall-clock occurrence runs at. Monotonic in `wall`, which lets cron searches run over
/// wall times and still find the latest/earliest instant.
fn occurrence_instant(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    instants_for_wall(tz, wall).0
}

// ---------------------------------------------------------------------------------------------------------------
// Workday calendar
// ---------------------------------------------------------------------------------------------------------------

/// Which dates are workdays. Precedence: `workdays` (make-up workdays, 调休) > `holidays` > `weekend`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "CalendarConfig")]
pub struct Calendar {
    pub weekend: Vec<Weekday>,
    pub holidays: BTreeSet<NaiveDate>,
    pub workdays: BTreeSet<NaiveDate>,
}

impl Default for Calendar {
    fn default() -> Self {
        Self { weekend: vec![Weekday::Sat, Weekday::Sun], holidays: BTreeSet::new(), workdays: BTreeSet::new() }
    }
}

impl Calendar {
    pub fn is_workday(&self, d: NaiveDate) -> bool {
        if self.workdays.contains(&d) {
            return true;
        }
        !self.holidays.contains(&d) && !self.weekend.contains(&d.weekday())
    }

    /// First workday on or after `d`, looking at most 400 days ahead (None if, e.g., every weekday is weekend).
    pub fn next_workday_on_or_after(&self, d: NaiveDate) -> Option<NaiveDate> {
        let mut day = d;
        for _ in 0..WORKDAY_SEARCH_DAYS {
            if self.is_workday(day) {
                return Some(day);
            }
            day = day.succ_opt()?;
        }
        None
    }
}

/// Calendar as written in configuration. `weekend: None` means Sat+Sun; an empty list means no weekend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    pub weekend: Option<Vec<String>>,
    pub holidays: Vec<NaiveDate>,
    pub workdays: Vec<NaiveDate>,
}

impl TryFrom<CalendarConfig> for Calendar {
    type Error = CalendarError;

    fn try_from(config: CalendarConfig) -> Result<Self, Self::Error> {
        let weekend = match config.weekend {
            None => Calendar::default().weekend,
            Some(names) => {
                let mut days = Vec::new();
                for name in names {
                    let day = parse_weekday(&name).ok_or(CalendarError::UnknownWeekday { name })?;
                    if !days.contains(&day) {
                        days.push(day);
                    }
                }
                days
            }
        };
        let holidays: BTreeSet<NaiveDate> = config.holidays.into_iter().collect();
        let workdays: BTreeSet<NaiveDate> = config.workdays.into_iter().collect();
        // A date in both lists is a config mistake; silently picking one would hide it.
        if let Some(date) = holidays.intersection(&workdays).next() {
            return Err(CalendarError::HolidayAndWorkday { date: *date });
        }
        Ok(Self { weekend, holidays, workdays })
    }
}

/// English short/full names (case-insensitive) and the common Chinese forms.
fn parse_weekday(name: &str) -> Option<Weekday> {
    let day = match name.trim().to_lowercase().as_str() {
        "mon" | "monday" | "周一" | "星期一" => Weekday::Mon,
        "tue" | "tues" | "tuesday" | "周二" | "星期二" => Weekday::Tue,
        "wed" | "wednesday" | "周三" | "星期三" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" | "周四" | "星期四" => Weekday::Thu,
        "fri" | "friday" | "周五" | "星期五" => Weekday::Fri,
        "sat" | "saturday" | "周六" | "星期六" => Weekday::Sat,
        "sun" | "sunday" | "周日" | "周天" | "星期日" | "星期天" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

// ---------------------------------------------------------------------------------------------------------------
// Cron
// ---------------------------------------------------------------------------------------------------------------

/// A cron schedule evaluated in a caller-given time zone.
///
/// Accepted syntax:
/// - 5 fields, Unix style: `minute hour day-of-month month day-of-week`, e.g. "0 9 * * Mon-Fri". Seconds are 0.
///   Numeric days of week use **Unix numbering** (0 or 7 = Sunday, 1 = Monday … 6 = Saturday); they are
///   rewritten to names because the `cron` crate numbers them differently (see below).
/// - 6 or 7 fields, `cron` crate style: `second minute hour day-of-month month day-of-week [year]`. Here numeric
///   days of week use the **crate's numbering: 1 = Sunday … 7 = Saturday** (0 is rejected), so "2-6" is Mon-Fri.
///   Prefer names (Mon-Fri), which mean the same in every form.
/// - `@hourly`, `@daily`, `@weekly` (Sunday), `@monthly`, `@yearly`.
///
/// Unlike Unix cron, a restricted day-of-month *and* day-of-week must both match (the crate ANDs them).
/// Years are limited to 1970–2100 by the crate. DST follows the module rule: an occurrence in a DST gap runs at
/// the first instant after the gap, a repeated one runs once, at its earliest instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronSchedule {
    schedule: cron::Schedule,
    source: String,
}

impl CronSchedule {
    /// The expression as written by the user.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The latest occurrence `o` with `after < o <= now`, or None.
    ///
    /// Used to run a job once after downtime, however many occurrences were missed. It walks backwards from
    /// `now` (the crate supports reverse iteration), so the cost does not depend on how long ago `after` was.
    pub fn latest_due(&self, after: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if now <= after {
            return None;
        }
        let (min_wall, max_wall) = cron_wall_range()?;
        // Past the crate's last year nothing changes; clamping keeps local-time math away from chrono's limits.
        let now = now.min(max_wall.and_utc() + TimeDelta::days(2));
        let upper = latest_wall_not_after(now, tz)?;
        if upper < min_wall {
            return None;
        }
        let upper = self.last_wall_in_schedule_years(upper.min(max_wall))?;
        // Schedules are searched in wall time by treating local times as UTC: no DST, so the crate's iteration
        // is strictly ordered; `occurrence_instant` then maps each wall time to its real instant.
        let start = upper.checked_add_signed(TimeDelta::nanoseconds(1))?.and_utc();
        self.schedule
            .after(&start)
            .rev()
            .take(MAX_CRON_STEPS)
            .filter_map(|wall| occurrence_instant(tz, wall.naive_utc()))
            .find(|o| *o <= now)
            .filter(|o| *o > after)
    }

    /// `upper`, or if the schedule excludes its year, the last moment of the latest included year before it.
    /// Works around the crate's reverse search (0.17.0), which, started in an excluded year, keeps the start's
    /// month/day/time as the limit in the previous year and so misses or mis-orders occurrences.
    fn last_wall_in_schedule_years(&self, upper: NaiveDateTime) -> Option<NaiveDateTime> {
        let year = u32::try_from(upper.year()).ok()?;
        if self.schedule.years().includes(year) {
            return Some(upper);
        }
        let last_year = self.schedule.years().range(..year).next_back()?;
        NaiveDate::from_ymd_opt(i32::try_from(last_year).ok()?, 12, 31)?.and_hms_nano_opt(23, 59, 59, 999_999_999)
    }

    /// The first occurrence strictly after `t`, or None (e.g. past year 2100 or a date that never exists).
    pub fn next_after(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let (min_wall, max_wall) = cron_wall_range()?;
        // Before the crate's first year there is nothing to find; clamping keeps local-time math in range.
        let local = to_local(t.max(min_wall.and_utc() - TimeDelta::days(2)), tz)?;
        if local > max_wall {
            return None;
        }
        // Every wall time <= local(t) maps to an instant <= t, so the search can start there; the filter skips the
        // few wall times of a fall-back's repeated hour that still map before `t`.
        let start = local.max(min_wall).and_utc();
        self.schedule
            .after(&start)
            .take(MAX_CRON_STEPS)
            .filter_map(|wall| occurrence_instant(tz, wall.naive_utc()))
            .find(|o| *o > t)
    }
}

/// Wall-time limits handed to the `cron` crate: its years are 1970..=2100, and staying inside keeps its internal
/// `± 1 second` arithmetic far from chrono's overflow panics.
fn cron_wall_range() -> Option<(NaiveDateTime, NaiveDateTime)> {
    let min = NaiveDate::from_ymd_opt(1969, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let max = NaiveDate::from_ymd_opt(2101, 1, 1)?.and_hms_opt(0, 0, 0)?;
    Some((min, max))
}

/// An upper bound on wall times whose occurrence instant is <= `now`. Usually local(now); during a fall-back's
/// second pass, later wall times of the repeated hour map (earliest reading) to before `now`, so extend the bound.
fn latest_wall_not_after(now: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let local = to_local(now, tz)?;
    match tz.offset_from_local_datetime(&local) {
        LocalResult::Ambiguous(a, b) => {
            let largest = a.fix().local_minus_utc().max(b.fix().local_minus_utc());
            now.naive_utc().checked_add_signed(TimeDelta::seconds(i64::from(largest)))
        }
        _ => Some(local),
    }
}

impl FromStr for CronSchedule {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let source = s.trim();
        let error = |reason: String| CalendarError::Cron { expr: source.to_string(), reason };
        let fields: Vec<&str> = source.split_whitespace().collect();
        let expr = match fields.as_slice() {
            [] => return Err(error("it is empty".to_string())),
            [shorthand] if shorthand.starts_with('@') => {
                return cron::Schedule::from_str(shorthand)
                    .map(|schedule| Self { schedule, source: source.to_string() })
                    .map_err(|_| {
                        error("unknown shorthand; use @hourly, @daily, @weekly, @monthly or @yearly".to_string())
                    });
            }
            [minute, hour, day_of_month, month, day_of_week] => {
                let day_of_week = unix_day_of_week(day_of_week).map_err(error)?;
                format!("0 {minute} {hour} {day_of_month} {month} {day_of_week}")
            }
            [_, _, _, _, _, _] | [_, _, _, _, _, _, _] => fields.join(" "),
            other => return Err(error(format!("found {} fields", other.len()))),
        };
        let schedule = cron::Schedule::from_str(&expr).map_err(|e| error(crate_error_reason(&e, &expr)))?;
        Ok(Self { schedule, source: source.to_string() })
    }
}

/// One-line reason from a `cron` crate error. The crate's text is "expression / caret line / message" and echoes
/// the rewritten expression (with our added seconds), so keep the message and name the field the caret points at.
fn crate_error_reason(e: &cron::error::Error, expr: &str) -> String {
    const FIELDS: [&str; 7] = ["second", "minute", "hour", "day-of-month", "month", "day-of-week", "year"];
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let Some(column) = lines.get(1).and_then(|caret| caret.trim_end().strip_suffix('^')).map(str::len) else {
        // Unknown layout (a future crate version): pass it on, on one line.
        return lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    };
    let message = lines.get(2..).unwrap_or_default().join(" ");
    let message = message.trim().trim_end_matches('.');
    let before: String = expr.chars().take(column).collect();
    let mut index = before.split_whitespace().count();
    if before.ends_with(|c: char| !c.is_whitespace()) {
        index = index.saturating_sub(1);
    }
    // Field names line up for 5-field input too: the added seconds field sits before "minute".
    let field = FIELDS.get(index).map_or_else(|| "an extra field".to_string(), |name| format!("the {name} field"));
    if message.is_empty() { format!("cannot parse {field}") } else { format!("{message} (in {field})") }
}

/// Rewrites numeric days of week from Unix numbering (0/7 = Sun … 6 = Sat) to names, which the `cron` crate
/// reads unambiguously (its own numbers are 1 = Sun … 7 = Sat). Items without digits (names, `*`, `?`, `*/2`)
/// pass through: for those both numberings select the same days.
fn unix_day_of_week(field: &str) -> Result<String, String> {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let parse = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= 7)
            .ok_or_else(|| format!("day of week \"{s}\" must be 0-7 (0 or 7 = Sunday) or a name such as Mon"))
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if !base.bytes().any(|b| b.is_ascii_digit()) {
            items.push(item.to_string());
            continue;
        }
        if base.chars().any(char::is_alphabetic) {
            return Err(format!("day of week \"{base}\" mixes names and numbers; write Mon-Fri or 1-5"));
        }
        let (first, last) = match base.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            // "N/step" runs to the end of the week, as in the crate's other fields.
            None => (parse(base)?, if step.is_some() { 6 } else { parse(base)? }),
        };
        if first > last {
            return Err(format!("day-of-week range \"{base}\" runs backwards"));
        }
        let step = match step {
            None => 1,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("day-of-week step \"{s}\" must be a positive number"))?,
        };
        let mut names: Vec<&str> = Vec::new();
        for n in (first..=last).step_by(step) {
            let name = NAMES[(n % 7) as usize];
            if !names.contains(&name) {
                names.push(name);
            }
        }
        items.push(names.join(","));
    }
    Ok(items.join(","))
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl TryFrom<String> for CronSchedule {
    type Error = CalendarError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CronSchedule> for String {
    fn from(c: CronSchedule) -> String {
        c.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Asia::Shanghai;
    use chrono_tz::Europe::London;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as ValueError, MapDeserializer};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn time(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn quiet(s: &str) -> QuietHours {
        s.parse().unwrap()
    }

    fn cron(s: &str) -> CronSchedule {
        s.parse().unwrap()
    }

    /// Wall time in `tz` for an instant, for readable assertions.
    fn local_of(t: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
        t.with_timezone(&tz).naive_local()
    }

    // --- quiet hours: parsing and display ---

    #[test]
    fn quiet_hours_parse_and_display_round_trip() {
        let q = quiet("21:00-08:00");
        assert_eq!(q, QuietHours { start: time("21:00"), end: time("08:00") });
        assert_eq!(q.to_string(), "21:00-08:00");
        assert_eq!(q.to_string().parse::<QuietHours>().unwrap(), q);

        assert_eq!(quiet("21:00–08:00"), q, "en dash");
        assert_eq!(quiet("  21:00 - 08:00 "), q, "spaces around");
        assert_eq!(quiet("9:00-17:30").to_string(), "09:00-17:30");
        assert_eq!(quiet("12:00-13:30"), QuietHours { start: time("12:00"), end: time("13:30") });
        let with_seconds = quiet("21:00:30-08:00");
        assert_eq!(with_seconds.to_string(), "21:00:30-08:00");
        assert_eq!(quiet(&with_seconds.to_string()), with_seconds);
    }

    #[test]
    fn quiet_hours_off() {
        for s in ["off", "OFF", "none", "None", "", "   "] {
            let q = quiet(s);
            assert!(q.is_off(), "{s:?}");
            assert_eq!(q, QuietHours::OFF);
        }
        assert_eq!(QuietHours::OFF.to_string(), "off");
        assert_eq!(quiet(&QuietHours::OFF.to_string()), QuietHours::OFF);
        assert!(!QuietHours::OFF.contains(time("00:00")));
        assert!(!QuietHours::OFF.contains(time("12:00")));
    }

    #[test]
    fn quiet_hours_parse_errors_explain_format() {
        for bad in [
            "25:00-08:00",
            "21:00",
            "2100-0800",
            "21:00-08:60",
            "21:0-08:00",
            "21:00-08:00-09:00",
            "abc",
            "21:00-",
            "-08:00",
        ] {
            let err = bad.parse::<QuietHours>().unwrap_err();
            assert_eq!(err, CalendarError::QuietHoursFormat { input: bad.to_string() }, "{bad}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("\"{bad}\"")), "{msg}");
            assert!(msg.contains("HH:MM-HH:MM such as 21:00-08:00"), "{msg}");
        }
        assert_eq!(
            "25:00-08:00".parse::<QuietHours>().unwrap_err().to_string(),
            "quiet hours \"25:00-08:00\": expected HH:MM-HH:MM such as 21:00-08:00, or \"off\" for none"
        );
        let err = "08:00-08:00".parse::<QuietHours>().unwrap_err();
        assert_eq!(err, CalendarError::QuietHoursEmpty { input: "08:00-08:00".to_string() });
        assert!(err.to_string().contains("\"off\""));
    }

    #[test]
    fn quiet_hours_serde() {
        let q = QuietHours::deserialize(IntoDeserializer::<ValueError>::into_deserializer("21:00-08:00")).unwrap();
        assert_eq!(q, quiet("21:00-08:00"));
        let off = QuietHours::deserialize(IntoDeserializer::<ValueError>::into_deserializer("off")).unwrap();
        assert!(off.is_off());
        let err =
            QuietHours::deserialize(IntoDeserializer::<ValueError>::into_deserializer("25:00-08:00")).unwrap_err();
        assert!(err.to_string().contains("such as 21:00-08:00"), "{err}");
        assert_eq!(String::from(q), "21:00-08:00");
    }

    // --- quiet hours: contains and release ---

    #[test]
    fn contains_wrapping_window_at_boundaries() {
        let q = quiet("21:00-08:00");
        assert!(q.contains(time("21:00")), "start is inclusive");
        assert!(q.contains(time("23:00")));
        assert!(q.contains(time("00:00")));
        assert!(q.contains(time("03:00")));
        assert!(q.contains(NaiveTime::from_hms_nano_opt(7, 59, 59, 999_999_999).unwrap()));
        assert!(!q.contains(time("08:00")), "end is exclusive");
        assert!(!q.contains(time("12:00")));
        assert!(!q.contains(NaiveTime::from_hms_nano_opt(20, 59, 59, 999_999_999).unwrap()));
    }

    #[test]
    fn contains_same_day_window() {
        let q = quiet("12:00-13:30");
        assert!(!q.contains(time("11:59")));
        assert!(q.contains(time("12:00")));
        assert!(q.contains(time("13:29")));
        assert!(!q.contains(time("13:30")));
        assert!(!q.contains(time("00:00")));
        assert!(!q.contains(time("23:00")));
    }

    #[test]
    fn release_across_midnight_and_same_day() {
        let q = quiet("21:00-08:00");
        assert_eq!(q.release(wall("2026-11-24 22:00")), wall("2026-11-25 08:00"));
        assert_eq!(q.release(wall("2026-11-24 21:00")), wall("2026-11-25 08:00"));
        assert_eq!(q.release(wall("2026-12-31 23:30")), wall("2027-01-01 08:00"), "year boundary");
        assert_eq!(q.release(wall("2026-11-25 03:00")), wall("2026-11-25 08:00"));
        assert_eq!(q.release(wall("2026-11-25 08:00")), wall("2026-11-25 08:00"), "outside: unchanged");
        assert_eq!(q.release(wall("2026-11-25 12:34")), wall("2026-11-25 12:34"));

        let lunch = quiet("12:00-13:30");
        assert_eq!(lunch.release(wall("2026-11-25 12:15")), wall("2026-11-25 13:30"));
        assert_eq!(lunch.release(wall("2026-11-25 13:30")), wall("2026-11-25 13:30"));
        assert_eq!(QuietHours::OFF.release(wall("2026-11-25 03:00")), wall("2026-11-25 03:00"));
    }

    #[test]
    fn release_at_end_of_time_does_not_panic() {
        let q = quiet("21:00-08:00");
        let last = NaiveDate::MAX.and_hms_opt(23, 0, 0).unwrap();
        assert_eq!(q.release(last), last);
        assert_eq!(q.release(NaiveDateTime::MAX), NaiveDateTime::MAX);
    }

    // --- defer_past_quiet ---

    #[test]
    fn defer_in_shanghai() {
        let q = quiet("21:00-08:00");
        // 14:00Z is 22:00 in UTC+8; quiet until 08:00 local = 00:00Z next day.
        assert_eq!(defer_past_quiet(utc("2026-11-24T14:00:00Z"), Shanghai, Some(&q)), utc("2026-11-25T00:00:00Z"));
        // 19:00Z is 03:00 local, same local day's 08:00.
        assert_eq!(defer_past_quiet(utc("2026-11-24T19:00:00Z"), Shanghai, Some(&q)), utc("2026-11-25T00:00:00Z"));
        // 02:00Z is 10:00 local: not quiet.
        let day = utc("2026-11-25T02:00:00Z");
        assert_eq!(defer_past_quiet(day, Shanghai, Some(&q)), day);
        // Exactly at the end: not quiet any more.
        let end = utc("2026-11-25T00:00:00Z");
        assert_eq!(defer_past_quiet(end, Shanghai, Some(&q)), end);
        // No quiet hours.
        let night = utc("2026-11-24T14:00:00Z");
        assert_eq!(defer_past_quiet(night, Shanghai, None), night);
        assert_eq!(defer_past_quiet(night, Shanghai, Some(&QuietHours::OFF)), night);
    }

    #[test]
    fn defer_in_new_york_across_spring_forward() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
        let q = quiet("21:00-08:00");
        // 23:00 EST on Mar 7 -> 08:00 EDT on Mar 8, which is 12:00Z (not 13:00Z as in winter).
        assert_eq!(defer_past_quiet(utc("2026-03-08T04:00:00Z"), New_York, Some(&q)), utc("2026-03-08T12:00:00Z"));
        // A night earlier the same window ends at 08:00 EST = 13:00Z.
        assert_eq!(defer_past_quiet(utc("2026-03-07T04:00:00Z"), New_York, Some(&q)), utc("2026-03-07T13:00:00Z"));

        // Window ending inside the gap: 02:00 and 02:30 do not exist, take the first valid instant after (03:00 EDT).
        for window in ["21:00-02:00", "21:00-02:30"] {
            let q = quiet(window);
            let deferred = defer_past_quiet(utc("2026-03-08T05:30:00Z"), New_York, Some(&q));
            assert_eq!(deferred, utc("2026-03-08T07:00:00Z"), "{window}");
            assert_eq!(local_of(deferred, New_York), wall("2026-03-08 03:00"));
        }
    }

    #[test]
    fn defer_in_new_york_across_fall_back() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00Z), so 01:00-01:59 happens twice.
        let q = quiet("00:00-01:30");
        // 00:30 EDT -> 01:30 is ambiguous: take the earliest, 01:30 EDT = 05:30Z.
        assert_eq!(defer_past_quiet(utc("2026-11-01T04:30:00Z"), New_York, Some(&q)), utc("2026-11-01T05:30:00Z"));
        // 01:10 EST (second pass, 06:10Z): 01:30 EDT is already past, so the window ends at 01:30 EST = 06:30Z.
        assert_eq!(defer_past_quiet(utc("2026-11-01T06:10:00Z"), New_York, Some(&q)), utc("2026-11-01T06:30:00Z"));
        // Ordinary wrap-around night: 22:00 EDT Oct 31 -> 08:00 EST Nov 1 = 13:00Z.
        let night = quiet("21:00-08:00");
        assert_eq!(defer_past_quiet(utc("2026-11-01T02:00:00Z"), New_York, Some(&night)), utc("2026-11-01T13:00:00Z"));
    }

    #[test]
    fn defer_in_london() {
        let q = quiet("22:00-07:00");
        // Winter: GMT = UTC.
        assert_eq!(defer_past_quiet(utc("2026-01-15T23:00:00Z"), London, Some(&q)), utc("2026-01-16T07:00:00Z"));
        // Summer: 22:30 BST (21:30Z) -> 07:00 BST = 06:00Z.
        assert_eq!(defer_past_quiet(utc("2026-07-01T21:30:00Z"), London, Some(&q)), utc("2026-07-02T06:00:00Z"));
        // Night of the change (2026-03-29 01:00 GMT -> 02:00 BST): 23:00 GMT -> 07:00 BST = 06:00Z.
        assert_eq!(defer_past_quiet(utc("2026-03-28T23:00:00Z"), London, Some(&q)), utc("2026-03-29T06:00:00Z"));
        // Window end inside the gap (01:30 does not exist): first valid instant is 02:00 BST = 01:00Z.
        let q = quiet("00:00-01:30");
        assert_eq!(defer_past_quiet(utc("2026-03-29T00:15:00Z"), London, Some(&q)), utc("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn defer_never_panics_at_extremes() {
        let all_day = quiet("00:00-23:59");
        for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, DateTime::UNIX_EPOCH] {
            for tz in [Shanghai, New_York, London, chrono_tz::Pacific::Kiritimati, chrono_tz::Etc::GMTPlus12] {
                let deferred = defer_past_quiet(at, tz, Some(&all_day));
                assert!(deferred >= at);
            }
        }
    }

    // --- calendar ---

    fn national_day_2026() -> Calendar {
        let config = CalendarConfig {
            weekend: None,
            holidays: (1..=7).map(|d| NaiveDate::from_ymd_opt(2026, 10, d).unwrap()).collect(),
            workdays: vec![date("2026-09-20"), date("2026-10-10")],
        };
        Calendar::try_from(config).unwrap()
    }

    #[test]
    fn default_calendar_is_mon_to_fri() {
        let cal = Calendar::default();
        assert_eq!(cal.weekend, vec![Weekday::Sat, Weekday::Sun]);
        let monday = date("2026-11-30");
        assert_eq!(monday.weekday(), Weekday::Mon);
        for offset in 0..7 {
            let d = monday + TimeDelta::days(offset);
            assert_eq!(cal.is_workday(d), offset < 5, "{d}");
        }
    }

    #[test]
    fn national_day_holidays_and_make_up_workdays() {
        let cal = national_day_2026();
        let make_up = date("2026-10-10");
        assert_eq!(make_up.weekday(), Weekday::Sat, "test assumes a Saturday make-up day");
        assert_eq!(date("2026-09-20").weekday(), Weekday::Sun);
        assert!(cal.is_workday(make_up), "make-up workday on a Saturday");
        assert!(cal.is_workday(date("2026-09-20")), "make-up workday on a Sunday");
        assert!(!cal.is_workday(date("2026-10-11")), "ordinary Sunday");

        for d in 1..=7 {
            let day = NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
            assert!(!cal.is_workday(day), "{day} ({}) is a holiday", day.weekday());
        }
        assert_eq!(date("2026-10-01").weekday(), Weekday::Thu);
        assert!(cal.is_workday(date("2026-09-30")));
        assert!(cal.is_workday(date("2026-10-08")));

        assert_eq!(cal.next_workday_on_or_after(date("2026-09-30")), Some(date("2026-09-30")));
        assert_eq!(cal.next_workday_on_or_after(date("2026-10-01")), Some(date("2026-10-08")));
        assert_eq!(cal.next_workday_on_or_after(date("2026-10-10")), Some(date("2026-10-10")));
        assert_eq!(cal.next_workday_on_or_after(date("2026-10-11")), Some(date("2026-10-12")));
        assert_eq!(cal.next_workday_on_or_after(date("2026-09-19")), Some(date("2026-09-20")));
    }

    #[test]
    fn next_workday_is_bounded() {
        let never = Calendar { weekend: all_weekdays(), ..Calendar::default() };
        assert_eq!(never.next_workday_on_or_after(date("2026-01-01")), None);
        // A lone make-up day 300 days out is still found; one 500 days out is beyond the bound.
        let mut cal = never.clone();
        cal.workdays.insert(date("2026-10-28"));
        assert_eq!(cal.next_workday_on_or_after(date("2026-01-01")), Some(date("2026-10-28")));
        let mut far = never.clone();
        far.workdays.insert(date("2027-05-16"));
        assert_eq!(far.next_workday_on_or_after(date("2026-01-01")), None);
        // No panic at the end of the calendar.
        assert_eq!(never.next_workday_on_or_after(NaiveDate::MAX), None);
        let last_day = NaiveDate::MAX;
        let expected = Calendar::default().is_workday(last_day).then_some(last_day);
        assert_eq!(Calendar::default().next_workday_on_or_after(last_day), expected);
    }

    fn all_weekdays() -> Vec<Weekday> {
        vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun]
    }

    #[test]
    fn calendar_config_weekend_names() {
        let names = |list: &[&str]| CalendarConfig {
            weekend: Some(list.iter().map(|s| s.to_string()).collect()),
            ..CalendarConfig::default()
        };
        let cal = Calendar::try_from(names(&["Fri", "SATURDAY"])).unwrap();
        assert_eq!(cal.weekend, vec![Weekday::Fri, Weekday::Sat]);
        let cal = Calendar::try_from(names(&["sat", "Sun", "sunday", " Sat "])).unwrap();
        assert_eq!(cal.weekend, vec![Weekday::Sat, Weekday::Sun], "duplicates collapse");
        let cal = Calendar::try_from(names(&["周六", "星期日"])).unwrap();
        assert_eq!(cal.weekend, vec![Weekday::Sat, Weekday::Sun]);
        let cal = Calendar::try_from(names(&[])).unwrap();
        assert!(cal.weekend.is_empty(), "explicit empty list: no weekend");
        assert!(cal.is_workday(date("2026-11-29")));
        assert_eq!(Calendar::try_from(CalendarConfig::default()).unwrap(), Calendar::default());

        let err = Calendar::try_from(names(&["Sat", "Sonday"])).unwrap_err();
        assert_eq!(err, CalendarError::UnknownWeekday { name: "Sonday".to_string() });
        assert!(err.to_string().contains("\"Sonday\"") && err.to_string().contains("Sat, Sun"), "{err}");
    }

    #[test]
    fn calendar_config_rejects_date_in_both_lists() {
        let config = CalendarConfig {
            weekend: None,
            holidays: vec![date("2026-10-01"), date("2026-10-10")],
            workdays: vec![date("2026-10-10")],
        };
        let err = Calendar::try_from(config).unwrap_err();
        assert_eq!(err, CalendarError::HolidayAndWorkday { date: date("2026-10-10") });
        assert!(err.to_string().contains("2026-10-10"), "{err}");
    }

    #[test]
    fn calendar_deserializes_from_map() {
        let map = vec![("holidays", vec!["2026-10-01", "2026-10-02"]), ("workdays", vec!["2026-10-10"])];
        let de = MapDeserializer::<_, ValueError>::new(map.into_iter());
        let cal = Calendar::deserialize(de).unwrap();
        assert_eq!(cal.weekend, vec![Weekday::Sat, Weekday::Sun]);
        assert!(cal.is_workday(date("2026-10-10")));
        assert!(!cal.is_workday(date("2026-10-02")));

        let clash = vec![("holidays", vec!["2026-10-10"]), ("workdays", vec!["2026-10-10"])];
        let err = Calendar::deserialize(MapDeserializer::<_, ValueError>::new(clash.into_iter())).unwrap_err();
        assert!(err.to_string().contains("2026-10-10"), "{err}");

        let typo = vec![("holiday", vec!["2026-10-10"])];
        assert!(CalendarConfig::deserialize(MapDeserializer::<_, ValueError>::new(typo.into_iter())).is_err());
    }

    // --- cron: parsing ---

    /// Weekdays (local) of the first `n` occurrences after `from`.
    fn fire_days(c: &CronSchedule, from: DateTime<Utc>, tz: Tz, n: usize) -> Vec<(Weekday, NaiveTime)> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = c.next_after(t, tz).unwrap();
            let local = local_of(t, tz);
            out.push((local.weekday(), local.time()));
        }
        out
    }

    fn weekday_set(fires: &[(Weekday, NaiveTime)]) -> BTreeSet<u32> {
        fires.iter().map(|(d, _)| d.num_days_from_monday()).collect()
    }

    #[test]
    fn cron_mon_fri_fires_only_on_weekdays() {
        let start = utc("2026-11-01T00:00:00Z");
        for expr in ["0 9 * * Mon-Fri", "0 9 * * MON-FRI", "0 9 * * 1-5", "0 0 9 * * Mon-Fri", "0 0 9 * * 2-6"] {
            let fires = fire_days(&cron(expr), start, Shanghai, 15);
            assert!(fires.iter().all(|(_, t)| *t == time("09:00")), "{expr}: {fires:?}");
            assert_eq!(weekday_set(&fires), (0..5).collect(), "{expr}: {fires:?}");
            for day in 0..5 {
                assert_eq!(fires.iter().filter(|(d, _)| d.num_days_from_monday() == day).count(), 3, "{expr}");
            }
        }
    }

    #[test]
    fn cron_weekday_numbering() {
        let start = utc("2026-11-01T00:00:00Z");
        let days = |expr: &str| weekday_set(&fire_days(&cron(expr), start, Shanghai, 12));
        let set = |ds: &[Weekday]| ds.iter().map(|d| d.num_days_from_monday()).collect::<BTreeSet<_>>();
        use Weekday::*;
        // 5-field: Unix numbering, 0 and 7 are Sunday.
        assert_eq!(days("0 9 * * 0"), set(&[Sun]));
        assert_eq!(days("0 9 * * 7"), set(&[Sun]));
        assert_eq!(days("0 9 * * 1"), set(&[Mon]));
        assert_eq!(days("0 9 * * 6"), set(&[Sat]));
        assert_eq!(days("0 9 * * 5-7"), set(&[Fri, Sat, Sun]));
        assert_eq!(days("0 9 * * 1-5/2"), set(&[Mon, Wed, Fri]));
        assert_eq!(days("0 9 * * 1,3,Fri"), set(&[Mon, Wed, Fri]));
        assert_eq!(days("0 9 * * */2"), set(&[Sun, Tue, Thu, Sat]));
        // 6-field: the cron crate's numbering, 1 = Sunday. "1-5" there is Sunday-Thursday, NOT Mon-Fri.
        assert_eq!(days("0 0 9 * * 1"), set(&[Sun]));
        assert_eq!(days("0 0 9 * * 7"), set(&[Sat]));
        assert_eq!(days("0 0 9 * * 1-5"), set(&[Sun, Mon, Tue, Wed, Thu]));
        assert!("0 0 9 * * 0".parse::<CronSchedule>().is_err(), "crate has no day 0");
    }

    #[test]
    fn cron_six_and_seven_field_and_shorthand() {
        let every_30s = cron("*/30 * * * * *");
        let t = utc("2026-11-24T10:00:05Z");
        assert_eq!(every_30s.next_after(t, Shanghai), Some(utc("2026-11-24T10:00:30Z")));
        assert_eq!(every_30s.latest_due(utc("2026-11-24T09:00:00Z"), t, Shanghai), Some(utc("2026-11-24T10:00:00Z")));

        let only_2027 = cron("0 0 9 1 Jan * 2027");
        assert_eq!(only_2027.next_after(utc("2026-01-01T00:00:00Z"), Shanghai), Some(utc("2027-01-01T01:00:00Z")));
        assert_eq!(only_2027.next_after(utc("2027-01-01T01:00:00Z"), Shanghai), None);

        let daily = cron("@daily");
        assert_eq!(daily.next_after(utc("2026-11-24T10:00:00Z"), Shanghai), Some(utc("2026-11-24T16:00:00Z")));
        let weekly = cron("@weekly");
        let next = weekly.next_after(utc("2026-11-24T10:00:00Z"), Shanghai).unwrap();
        assert_eq!(local_of(next, Shanghai), wall("2026-11-29 00:00"));
        assert_eq!(local_of(next, Shanghai).weekday(), Weekday::Sun);
    }

    #[test]
    fn cron_display_and_serde() {
        let c = cron("  0 9 * * Mon-Fri ");
        assert_eq!(c.to_string(), "0 9 * * Mon-Fri");
        assert_eq!(c.source(), "0 9 * * Mon-Fri");
        assert_eq!(String::from(c.clone()), "0 9 * * Mon-Fri");
        let de = CronSchedule::deserialize(IntoDeserializer::<ValueError>::into_deserializer("0 9 * * Mon-Fri"));
        assert_eq!(de.unwrap(), c);
        let err = CronSchedule::deserialize(IntoDeserializer::<ValueError>::into_deserializer("0 9 * *")).unwrap_err();
        assert!(err.to_string().contains("0 9 * * Mon-Fri"), "{err}");
    }

    #[test]
    fn cron_bad_expressions_are_errors() {
        for bad in [
            "",
            "0 9 * *",
            "0 9 * * Mon-Fri * * *",
            "61 9 * * *",
            "0 25 * * *",
            "0 9 32 * *",
            "0 9 * 13 *",
            "0 9 * * Funday",
            "0 9 * * 8",
            "0 9 * * 5-1",
            "0 9 * * 1/0",
            "0 9 * * Mon-5",
            "every day at nine",
            "@sometimes",
            "*/0 * * * *",
        ] {
            let err = bad.parse::<CronSchedule>().unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, CalendarError::Cron { .. }), "{bad}");
            assert!(msg.contains(&format!("cron expression \"{}\"", bad.trim())), "{msg}");
            assert!(msg.contains("such as \"0 9 * * Mon-Fri\""), "{msg}");
        }
        let msg = "0 9 * * 8".parse::<CronSchedule>().unwrap_err().to_string();
        assert!(msg.contains("0-7"), "{msg}");
        let reason = |expr: &str| match expr.parse::<CronSchedule>() {
            Err(CalendarError::Cron { reason, .. }) => reason,
            other => panic!("{expr}: {other:?}"),
        };
        // One line, no echo of the internally rewritten expression.
        for bad in ["0 9 * * Funday", "61 9 * * *", "0 9 * * Mon-5", "0 0 9 * * Mon-Fri * *", "@sometimes"] {
            let r = reason(bad);
            assert!(!r.contains('\n') && !r.contains('^') && !r.contains("0 0 9 * * Funday"), "{bad}: {r}");
        }
        assert_eq!(reason("0 9 * * Funday"), "'Funday' is not a valid day of the week (in the day-of-week field)");
        assert!(reason("61 9 * * *").ends_with("(in the minute field)"), "{}", reason("61 9 * * *"));
        assert!(reason("0 0 25 * * *").ends_with("(in the hour field)"), "{}", reason("0 0 25 * * *"));
        assert!(reason("0 9 * * Mon-5").contains("\"Mon-5\" mixes names and numbers"), "{}", reason("0 9 * * Mon-5"));
        assert!(reason("0 0 9 * * Mon-5").contains("day-of-week field"), "{}", reason("0 0 9 * * Mon-5"));
        assert!(reason("@sometimes").contains("@daily"));
    }

    // --- cron: latest_due / next_after ---

    #[test]
    fn latest_due_over_weekend_in_shanghai() {
        let c = cron("0 9 * * Mon-Fri");
        assert_eq!(date("2026-11-27").weekday(), Weekday::Fri);
        // Friday 08:00 local -> Monday 10:00 local: Fri 09:00 and Mon 09:00 were due; the latest is Monday's.
        let due = c.latest_due(utc("2026-11-27T00:00:00Z"), utc("2026-11-30T02:00:00Z"), Shanghai);
        assert_eq!(due, Some(utc("2026-11-30T01:00:00Z")));
        assert_eq!(local_of(due.unwrap(), Shanghai), wall("2026-11-30 09:00"));
        // Saturday -> Sunday: nothing due.
        assert_eq!(c.latest_due(utc("2026-11-28T00:00:00Z"), utc("2026-11-29T15:00:00Z"), Shanghai), None);
        // Friday 08:00 -> Saturday 10:00: Friday 09:00.
        let due = c.latest_due(utc("2026-11-27T00:00:00Z"), utc("2026-11-28T02:00:00Z"), Shanghai);
        assert_eq!(due, Some(utc("2026-11-27T01:00:00Z")));
    }

    #[test]
    fn latest_due_bounds_are_exclusive_after_inclusive_now() {
        let c = cron("0 9 * * Mon-Fri");
        let nine = utc("2026-11-30T01:00:00Z");
        assert_eq!(c.latest_due(utc("2026-11-27T00:00:00Z"), nine, Shanghai), Some(nine), "now is inclusive");
        assert_eq!(c.latest_due(nine, utc("2026-11-30T02:00:00Z"), Shanghai), None, "after is exclusive");
        let just_before = nine - TimeDelta::nanoseconds(1);
        assert_eq!(c.latest_due(utc("2026-11-29T00:00:00Z"), just_before, Shanghai), None);
        assert_eq!(c.latest_due(just_before, nine, Shanghai), Some(nine));
        assert_eq!(c.latest_due(nine, nine, Shanghai), None);
        assert_eq!(c.latest_due(utc("2026-12-01T00:00:00Z"), nine, Shanghai), None, "after > now");
        assert_eq!(c.next_after(just_before, Shanghai), Some(nine));
        assert_eq!(c.next_after(nine, Shanghai), Some(utc("2026-12-01T01:00:00Z")), "strictly after");
    }

    #[test]
    fn latest_due_over_long_gaps_returns_only_the_last() {
        let daily = cron("0 9 * * *");
        let due = daily.latest_due(utc("2026-08-01T00:00:00Z"), utc("2026-10-30T03:00:00Z"), Shanghai);
        assert_eq!(due, Some(utc("2026-10-30T01:00:00Z")));
        let weekdays = cron("0 9 * * Mon-Fri");
        assert_eq!(date("2026-10-31").weekday(), Weekday::Sat);
        let due = weekdays.latest_due(utc("2026-08-01T00:00:00Z"), utc("2026-11-01T03:00:00Z"), Shanghai);
        assert_eq!(due, Some(utc("2026-10-30T01:00:00Z")), "last Friday");
        // Decades apart, and per-minute over a year: still instant.
        let due = weekdays.latest_due(utc("1970-01-01T00:00:00Z"), utc("2100-06-01T00:00:00Z"), Shanghai);
        assert_eq!(due.map(|d| local_of(d, Shanghai)), Some(wall("2100-05-31 09:00")));
        let minutely = cron("* * * * *");
        let due = minutely.latest_due(utc("2025-11-24T00:00:00Z"), utc("2026-11-24T10:00:30Z"), Shanghai);
        assert_eq!(due, Some(utc("2026-11-24T10:00:00Z")));
    }

    #[test]
    fn cron_dst_gap_runs_at_first_instant_after() {
        // 02:30 does not exist in New York on 2026-03-08; the job runs at 03:00 EDT (07:00Z) instead of being lost.
        let c = cron("30 2 * * *");
        assert_eq!(c.next_after(utc("2026-03-08T06:00:00Z"), New_York), Some(utc("2026-03-08T07:00:00Z")));
        assert_eq!(c.next_after(utc("2026-03-08T07:00:00Z"), New_York), Some(utc("2026-03-09T06:30:00Z")));
        assert_eq!(
            c.latest_due(utc("2026-03-07T12:00:00Z"), utc("2026-03-08T07:00:00Z"), New_York),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        assert_eq!(c.latest_due(utc("2026-03-07T12:00:00Z"), utc("2026-03-08T06:59:59Z"), New_York), None);
        // Europe/London: 01:30 skipped on 2026-03-29 -> 02:00 BST = 01:00Z.
        let c = cron("30 1 * * *");
        assert_eq!(c.next_after(utc("2026-03-28T12:00:00Z"), London), Some(utc("2026-03-29T01:00:00Z")));
    }

    #[test]
    fn cron_dst_repeated_hour_runs_once() {
        // 01:30 happens twice in New York on 2026-11-01 (05:30Z EDT, 06:30Z EST); run only at the first.
        let c = cron("30 1 * * *");
        assert_eq!(c.next_after(utc("2026-11-01T04:00:00Z"), New_York), Some(utc("2026-11-01T05:30:00Z")));
        assert_eq!(c.next_after(utc("2026-11-01T05:30:00Z"), New_York), Some(utc("2026-11-02T06:30:00Z")));
        assert_eq!(c.latest_due(utc("2026-11-01T05:30:00Z"), utc("2026-11-01T07:00:00Z"), New_York), None);
        // `now` = 01:10 EST (second pass): local time reads earlier than 01:30, but 01:30 EDT has already passed.
        assert_eq!(
            c.latest_due(utc("2026-10-31T12:00:00Z"), utc("2026-11-01T06:10:00Z"), New_York),
            Some(utc("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn latest_due_with_year_field_outside_the_current_year() {
        // The crate's own reverse search gets this wrong when `now` is in a year the schedule excludes.
        let c = cron("0 0 9 20 Dec * 2027");
        let now = utc("2028-03-15T00:00:00Z");
        assert_eq!(c.latest_due(utc("2020-01-01T00:00:00Z"), now, Shanghai), Some(utc("2027-12-20T01:00:00Z")));
        assert_eq!(c.latest_due(utc("2027-12-20T01:00:00Z"), now, Shanghai), None);
        let c = cron("0 30 8 * * Mon 2026,2028");
        let due = c.latest_due(utc("2020-01-01T00:00:00Z"), utc("2027-06-01T00:00:00Z"), Shanghai);
        assert_eq!(due.map(|d| local_of(d, Shanghai)), Some(wall("2026-12-28 08:30")));
        assert_eq!(date("2026-12-28").weekday(), Weekday::Mon);
        assert_eq!(c.latest_due(utc("2020-01-01T00:00:00Z"), utc("2025-06-01T00:00:00Z"), Shanghai), None);
    }

    #[test]
    fn cron_never_matching_and_extreme_inputs() {
        let feb_30 = cron("0 9 30 2 *");
        assert_eq!(feb_30.next_after(utc("2026-01-01T00:00:00Z"), Shanghai), None);
        assert_eq!(feb_30.latest_due(utc("2026-01-01T00:00:00Z"), utc("2030-01-01T00:00:00Z"), Shanghai), None);

        let c = cron("0 9 * * Mon-Fri");
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        for tz in [Shanghai, New_York, chrono_tz::Pacific::Kiritimati, chrono_tz::Etc::GMTPlus12] {
            assert_eq!(c.next_after(max, tz), None);
            assert_eq!(c.latest_due(min, min, tz), None);
            assert_eq!(c.latest_due(min, utc("1960-01-01T00:00:00Z"), tz), None, "before the crate's 1970");
            let first = c.next_after(min, tz).unwrap();
            assert_eq!(local_of(first, tz), wall("1970-01-01 09:00"), "1970-01-01 was a Thursday");
            let last = c.latest_due(min, max, tz).unwrap();
            assert_eq!(local_of(last, tz).date(), date("2100-12-31"));
            assert_eq!(c.next_after(last, tz), None);
        }
        assert_eq!(c.next_after(utc("2101-01-01T00:00:00Z"), Shanghai), None);
    }

    /// Reference model: every matching wall minute in a window, mapped with the module's DST rule.
    fn brute_force_instants(c: &CronSchedule, tz: Tz, first: NaiveDateTime, last: NaiveDateTime) -> Vec<DateTime<Utc>> {
        let mut set = BTreeSet::new();
        let mut w = first;
        while w <= last {
            if c.schedule.includes(w.and_utc()) {
                set.insert(occurrence_instant(tz, w).unwrap());
            }
            w += TimeDelta::minutes(1);
        }
        set.into_iter().collect()
    }

    #[test]
    fn next_after_and_latest_due_match_brute_force_around_dst() {
        let cases = [
            (New_York, "2026-03-08"),
            (New_York, "2026-11-01"),
            (London, "2026-03-29"),
            (London, "2026-10-25"),
            (Shanghai, "2026-11-24"),
            (Shanghai, "2026-12-31"),                        // year boundary
            (Shanghai, "2028-02-28"),                        // leap day
            (chrono_tz::Australia::Lord_Howe, "2026-04-05"), // 30-minute DST shift
        ];
        let exprs = [
            "*/20 * * * *",
            "30 1 * * *",
            "30 2 * * *",
            "0 * * * *",
            "15 1-3 * * Sun",
            "0 0 2 * * *",
            "45 1 * * 0",
            "0 9 * * Mon-Fri",
            "5,35 */3 * * Sat,Sun",
            "0 0 1 * *",
            "0 12 29 2 *",
            "0 0 0 1 1 * 2027",
        ];
        for (tz, day) in cases {
            let day = date(day);
            let first = (day - TimeDelta::days(1)).and_hms_opt(0, 0, 0).unwrap();
            let last = (day + TimeDelta::days(2)).and_hms_opt(0, 0, 0).unwrap();
            // Only judge instants whose wall times are surely inside the scanned range.
            let lo = occurrence_instant(tz, first + TimeDelta::hours(6)).unwrap();
            let hi = occurrence_instant(tz, last - TimeDelta::hours(6)).unwrap();
            for expr in exprs {
                let c = cron(expr);
                let all: Vec<_> =
                    brute_force_instants(&c, tz, first, last).into_iter().filter(|t| *t >= lo && *t <= hi).collect();
                let expected: Vec<_> = all.iter().copied().filter(|t| *t > lo).collect();

                let mut actual = Vec::new();
                let mut t = lo;
                while let Some(next) = c.next_after(t, tz).filter(|n| *n <= hi) {
                    actual.push(next);
                    t = next;
                }
                assert_eq!(actual, expected, "next_after {expr} in {tz} around {day}");

                // latest_due on a grid of (after, now) pairs, including odd seconds.
                let mut now = lo + TimeDelta::minutes(600);
                while now <= hi {
                    for back_minutes in [1, 7, 59, 61, 125, 600] {
                        let after = now - TimeDelta::minutes(back_minutes);
                        let want = all.iter().copied().filter(|o| *o > after && *o <= now).max();
                        assert_eq!(c.latest_due(after, now, tz), want, "{expr} in {tz}: ({after}, {now}]");
                    }
                    now += TimeDelta::seconds(17 * 60 + 13);
                }
            }
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        // Deterministic LCG: no extra dependency, same cases every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap() % n
        };
        // Per field: mostly plausible values, sometimes junk, so both parsing and searching get exercised.
        let seconds: &[&str] = &["0", "*/30", "59"];
        let minutes: &[&str] = &["*", "0", "*/15", "5,35", "0-59/10", "59"];
        let hours: &[&str] = &["*", "9", "1-3", "*/6", "23"];
        let days: &[&str] = &["*", "1", "15", "29", "31", "?", "1-10", "30"];
        let months: &[&str] = &["*", "1", "Feb", "Dec", "2-11"];
        let weekdays: &[&str] = &["*", "Mon-Fri", "0", "7", "1-5", "5-7", "*/2", "Sun", "2-6", "?"];
        let years: &[&str] = &["*", "2026", "2027-2030", "1970", "2100", "2026,2028"];
        let junk: &[&str] = &[
            "*/0",
            "8",
            "60",
            "5-1",
            "3/4",
            "Fri-Mon",
            "L",
            "5#2",
            "2101",
            "99999999999",
            ",",
            "-",
            "/",
            "周六",
            "@daily",
        ];
        let times = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            utc("2026-03-08T06:59:59Z"),
            utc("2026-11-01T06:10:00Z"),
            utc("2100-12-31T23:59:59Z"),
            utc("1970-01-01T00:00:00Z"),
        ];
        let zones = [New_York, Shanghai, London, chrono_tz::Pacific::Kiritimati, chrono_tz::Etc::GMTPlus12];
        let mut parsed = 0;
        for _ in 0..3000 {
            let layout: Vec<&[&str]> = match next(4) {
                0 => vec![minutes, hours, days, months, weekdays],
                1 => vec![seconds, minutes, hours, days, months, weekdays],
                2 => vec![seconds, minutes, hours, days, months, weekdays, years],
                _ => vec![minutes, hours, days, months],
            };
            let expr: Vec<&str> = layout
                .into_iter()
                .map(|choices| if next(10) == 0 { junk[next(junk.len())] } else { choices[next(choices.len())] })
                .collect();
            let expr = expr.join(" ");
            let _ = expr.parse::<QuietHours>();
            let Ok(c) = expr.parse::<CronSchedule>() else { continue };
            parsed += 1;
            let tz = zones[next(zones.len())];
            let (a, b) = (times[next(times.len())], times[next(times.len())]);
            if let Some(n) = c.next_after(a, tz) {
                assert!(n > a, "{expr}");
            }
            if let Some(d) = c.latest_due(a, b, tz) {
                assert!(a < d && d <= b, "{expr}");
            }
        }
        assert!(parsed > 1000, "only {parsed} random expressions parsed");
        for s in ["21:00-", "–", "-", "1:1-2:2", "23:59:59-00:00:00", "99:99-99:99", "周六-周日", "21:00-08:00:00:00"]
        {
            let _ = s.parse::<QuietHours>();
        }
    }
}
