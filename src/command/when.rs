//! Rule-based Chinese + English time expressions ("下周三下午3点", "tomorrow 3pm") for chat messages.
//! A hand-written tokenizer and a small recursive-descent grammar over its tokens; no regex, one
//! allocation (the token vector) on the normal path, and no panics on any input.

use std::fmt;
use std::ops::Range;

use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDate, Offset, TimeDelta, TimeZone};
use chrono_tz::Tz;

/// Default hour applied to Day-granularity results by callers (09:00).
pub const DEFAULT_HOUR: u32 = 9;

/// How precise the text was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    Month,
}

#[derive(Debug, Clone, PartialEq)]
pub struct When {
    /// Resolved instant in the org's zone.
    pub at: DateTime<Tz>,
    /// Day/Month = no time of day was given (time set to `DEFAULT_HOUR`:00).
    pub granularity: Granularity,
    /// The text named a clock time (3点, 15:00, 3pm) or an exact offset (in 2 hours).
    pub explicit_time: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenError {
    NotATime,
    /// A time expression that names no real instant, e.g. "2月30日 does not exist".
    Invalid(String),
}

impl fmt::Display for WhenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhenError::NotATime => f.write_str("not a time expression"),
            WhenError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for WhenError {}

/// Parse a whole string that should be a time expression ("下周三下午3点", "tomorrow 3pm").
pub fn parse_when(text: &str, now: DateTime<Tz>) -> Result<When, WhenError> {
    let p = P::new(text, now);
    let first = p.ws(0);
    // Trailing spaces and sentence punctuation are ignored.
    let mut last = p.t.len();
    while last > first
        && matches!(p.kind(last - 1), Some(Kind::Space | Kind::Ch('。' | '.' | '!' | '！' | '?' | '？' | ',' | '，')))
    {
        last -= 1;
    }
    if first >= last {
        return Err(WhenError::NotATime);
    }
    match p.expr(first) {
        Some(e) if e.end >= last => e.res.map_err(WhenError::Invalid),
        _ => Err(WhenError::NotATime),
    }
}

/// Find the first time expression inside a longer message; returns the When and the byte range
/// of the matched text in `text` (so the caller can cut it out of the content).
pub fn find_time(text: &str, now: DateTime<Tz>) -> Option<(When, Range<usize>)> {
    let p = P::new(text, now);
    let mut i = 0;
    while i < p.t.len() {
        if p.can_start(i)
            && let Some(e) = p.expr(i)
        {
            if let Ok(w) = &e.res
                && !e.weak
                && p.boundary_ok(i, e.end)
            {
                return Some((w.clone(), p.range(i, e.end)));
            }
            // Invalid or rejected: skip the whole match so its tail is not re-read ("2月30日" → "30日").
            i = e.end.max(i + 1);
            continue;
        }
        i += 1;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// Value of a malformed number ("十十"); never a valid hour, day or month.
const BAD: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Value (saturated), Chinese numerals?, digit count (saturated).
    Num(u32, bool, u8),
    /// A run of ASCII letters.
    Word,
    /// A run of whitespace.
    Space,
    Ch(char),
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    s: usize,
    e: usize,
}

fn arabic(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        '０'..='９' => Some(c as u32 - '０' as u32),
        _ => None,
    }
}

/// Chinese numeral value; 10 stands for 十.
fn cn_digit(c: char) -> Option<u32> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        '十' => 10,
        _ => return None,
    })
}

/// Accumulates a run of Chinese numerals: "十一" 11, "二十三" 23, "二〇二六" 2026, "零五" 5.
#[derive(Default)]
struct CnNum {
    before: u64,
    n_before: u32,
    after: Option<u32>,
    ten: bool,
    bad: bool,
    n: u32,
}

impl CnNum {
    fn push(&mut self, d: u32) {
        self.n = self.n.saturating_add(1);
        if d == 10 {
            self.bad |= self.ten;
            self.ten = true;
        } else if self.ten {
            self.bad |= self.after.is_some();
            self.after = Some(d);
        } else {
            self.before = (self.before * 10 + u64::from(d)).min(u64::from(BAD - 1));
            self.n_before += 1;
        }
    }

    fn value(&self) -> u32 {
        if self.bad || (self.ten && self.n_before > 1) {
            BAD
        } else if self.ten {
            let tens = if self.n_before == 0 { 1 } else { self.before };
            u32::try_from(tens * 10).unwrap_or(BAD).saturating_add(self.after.unwrap_or(0))
        } else {
            u32::try_from(self.before).unwrap_or(BAD)
        }
    }
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut out = Vec::with_capacity(text.len() / 2 + 2);
    let mut it = text.char_indices().peekable();
    while let Some((s, c)) = it.next() {
        let mut e = s + c.len_utf8();
        let kind = if let Some(d) = arabic(c) {
            let mut v = u64::from(d);
            let mut nd: u32 = 1;
            while let Some(&(p, c2)) = it.peek() {
                let Some(d2) = arabic(c2) else { break };
                v = (v * 10 + u64::from(d2)).min(u64::from(BAD - 1));
                nd = nd.saturating_add(1);
                e = p + c2.len_utf8();
                it.next();
            }
            Kind::Num(u32::try_from(v).unwrap_or(BAD), false, u8::try_from(nd).unwrap_or(u8::MAX))
        } else if let Some(d) = cn_digit(c) {
            let mut acc = CnNum::default();
            acc.push(d);
            while let Some(&(p, c2)) = it.peek() {
                let Some(d2) = cn_digit(c2) else { break };
                acc.push(d2);
                e = p + c2.len_utf8();
                it.next();
            }
            Kind::Num(acc.value(), true, u8::try_from(acc.n).unwrap_or(u8::MAX))
        } else if c.is_ascii_alphabetic() {
            while let Some(&(p, c2)) = it.peek() {
                if !c2.is_ascii_alphabetic() {
                    break;
                }
                e = p + 1;
                it.next();
            }
            Kind::Word
        } else if c.is_whitespace() {
            while let Some(&(p, c2)) = it.peek() {
                if !c2.is_whitespace() {
                    break;
                }
                e = p + c2.len_utf8();
                it.next();
            }
            Kind::Space
        } else {
            Kind::Ch(c)
        };
        out.push(Tok { kind, s, e });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Grammar pieces

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    /// 凌晨
    Dawn,
    /// 早上 / 上午 / morning
    Morning,
    /// 中午
    Noon,
    /// 下午 / afternoon
    Afternoon,
    /// 傍晚
    Dusk,
    /// 晚上 / 夜里 / evening / tonight
    Evening,
}

impl Period {
    fn default_hour(self) -> u32 {
        match self {
            Period::Dawn => 5,
            Period::Morning => DEFAULT_HOUR,
            Period::Noon => 12,
            Period::Afternoon => 15,
            Period::Dusk => 18,
            Period::Evening => 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mer {
    Am,
    Pm,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    h: u32,
    m: u32,
    mer: Option<Mer>,
    /// Token range, for error messages.
    s: usize,
    e: usize,
    /// A bare "N点"/"N时" with nothing after it (candidate for "一点" = "a bit").
    dian_only: bool,
}

impl Clock {
    /// (hour, minute, days to add) on the named day, or None when no such clock time exists.
    fn resolve(&self, per: Option<Period>) -> Option<(u32, u32, u64)> {
        let (h, m) = (self.h, self.m);
        if m > 59 {
            return None;
        }
        if let Some(mer) = self.mer {
            if !(1..=12).contains(&h) {
                return None;
            }
            return Some((if mer == Mer::Am { h % 12 } else { h % 12 + 12 }, m, 0));
        }
        if h > 24 || (h == 24 && m > 0) {
            return None;
        }
        if h == 24 {
            return Some((0, 0, 1));
        }
        Some(match per {
            None if (1..=6).contains(&h) => (h + 12, m, 0),
            None | Some(Period::Morning) => (h, m, 0),
            Some(Period::Dawn) => (if h == 12 { 0 } else { h }, m, 0),
            Some(Period::Noon) => (if (1..=2).contains(&h) { h + 12 } else { h }, m, 0),
            Some(Period::Afternoon | Period::Dusk) => (if (1..=11).contains(&h) { h + 12 } else { h }, m, 0),
            Some(Period::Evening) => match h {
                0 | 12 => (0, m, 1),
                1..=4 => (h, m, 1),
                5..=11 => (h + 12, m, 0),
                _ => (h, m, 0),
            },
        })
    }
}

/// A resolved day (or a date that does not exist).
#[derive(Debug, Clone)]
struct DayRes {
    date: Result<NaiveDate, String>,
    gran: Granularity,
    /// 今晚 / 明早 carry a part of day.
    implied: Option<Period>,
    /// Ambiguous alone ("sat", "sun", "wed"); find_time skips it unless a time follows.
    weak: bool,
}

impl DayRes {
    fn day(date: Option<NaiveDate>) -> Self {
        DayRes {
            date: date.ok_or_else(|| "date out of range".to_string()),
            gran: Granularity::Day,
            implied: None,
            weak: false,
        }
    }

    fn month(date: Option<NaiveDate>) -> Self {
        DayRes { gran: Granularity::Month, ..DayRes::day(date) }
    }
}

enum Span {
    /// Minutes from now, with granularity.
    Short(i64, Granularity),
    /// Months then days from today.
    Long(u32, u64),
}

struct Expr {
    end: usize,
    res: Result<When, String>,
    weak: bool,
}

const ZH_REL: &[(&str, i64, Option<Period>)] = &[
    ("大后天", 3, None),
    ("大前天", -3, None),
    ("今天", 0, None),
    ("今日", 0, None),
    ("今儿", 0, None),
    ("明天", 1, None),
    ("明日", 1, None),
    ("明儿", 1, None),
    ("后天", 2, None),
    ("昨天", -1, None),
    ("昨日", -1, None),
    ("昨儿", -1, None),
    ("前天", -2, None),
    ("今晚", 0, Some(Period::Evening)),
    ("今夜", 0, Some(Period::Evening)),
    ("今早", 0, Some(Period::Morning)),
    ("明早", 1, Some(Period::Morning)),
    ("明晚", 1, Some(Period::Evening)),
    ("昨晚", -1, Some(Period::Evening)),
];

const ZH_PERIOD: &[(&str, Period)] = &[
    ("凌晨", Period::Dawn),
    ("清晨", Period::Morning),
    ("早上", Period::Morning),
    ("早晨", Period::Morning),
    ("上午", Period::Morning),
    ("中午", Period::Noon),
    ("下午", Period::Afternoon),
    ("傍晚", Period::Dusk),
    ("晚上", Period::Evening),
    ("晚间", Period::Evening),
    ("夜里", Period::Evening),
    ("夜间", Period::Evening),
];

/// Single-character parts of day, only right after a day ("周五晚8点", "明天早8点").
const ZH_PERIOD_SHORT: &[(&str, Period)] = &[("早", Period::Morning), ("晚", Period::Evening)];

const EN_PERIOD: &[(&str, Period)] = &[
    ("morning", Period::Morning),
    ("afternoon", Period::Afternoon),
    ("evening", Period::Evening),
    ("night", Period::Evening),
];

const EN_WEEKDAY: &[(&str, (u32, bool))] = &[
    ("monday", (0, false)),
    ("mon", (0, false)),
    ("tuesday", (1, false)),
    ("tue", (1, false)),
    ("tues", (1, false)),
    ("wednesday", (2, false)),
    ("wed", (2, true)),
    ("thursday", (3, false)),
    ("thu", (3, false)),
    ("thur", (3, false)),
    ("thurs", (3, false)),
    ("friday", (4, false)),
    ("fri", (4, false)),
    ("saturday", (5, false)),
    ("sat", (5, true)),
    ("sunday", (6, false)),
    ("sun", (6, true)),
];

const EN_MONTH: &[(&str, u32)] = &[
    ("jan", 1),
    ("january", 1),
    ("feb", 2),
    ("february", 2),
    ("mar", 3),
    ("march", 3),
    ("apr", 4),
    ("april", 4),
    ("may", 5),
    ("jun", 6),
    ("june", 6),
    ("jul", 7),
    ("july", 7),
    ("aug", 8),
    ("august", 8),
    ("sep", 9),
    ("sept", 9),
    ("september", 9),
    ("oct", 10),
    ("october", 10),
    ("nov", 11),
    ("november", 11),
    ("dec", 12),
    ("december", 12),
];

const EN_NUM: &[(&str, u32)] = &[
    ("a", 1),
    ("an", 1),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("fifteen", 15),
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Min,
    Quarter,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

const EN_UNIT: &[(&str, Unit)] = &[
    ("min", Unit::Min),
    ("mins", Unit::Min),
    ("minute", Unit::Min),
    ("minutes", Unit::Min),
    ("hour", Unit::Hour),
    ("hours", Unit::Hour),
    ("hr", Unit::Hour),
    ("hrs", Unit::Hour),
    ("day", Unit::Day),
    ("days", Unit::Day),
    ("week", Unit::Week),
    ("weeks", Unit::Week),
    ("wk", Unit::Week),
    ("wks", Unit::Week),
    ("month", Unit::Month),
    ("months", Unit::Month),
    ("year", Unit::Year),
    ("years", Unit::Year),
];

/// Chinese span units, after an optional 个.
const ZH_UNIT: &[(&str, Unit)] = &[
    ("小时", Unit::Hour),
    ("钟头", Unit::Hour),
    ("分钟", Unit::Min),
    ("刻钟", Unit::Quarter),
    ("天", Unit::Day),
    ("日", Unit::Day),
    ("星期", Unit::Week),
    ("礼拜", Unit::Week),
    ("周", Unit::Week),
    ("月", Unit::Month),
    ("年", Unit::Year),
];

// Chinese New Year's Day and Mid-Autumn Festival, 2025–2035 / 2025–2030.
const CNY: &[(i32, u32, u32)] = &[
    (2025, 1, 29),
    (2026, 2, 17),
    (2027, 2, 6),
    (2028, 1, 26),
    (2029, 2, 13),
    (2030, 2, 3),
    (2031, 1, 23),
    (2032, 2, 11),
    (2033, 1, 31),
    (2034, 2, 19),
    (2035, 2, 8),
];
const MID_AUTUMN: &[(i32, u32, u32)] =
    &[(2025, 10, 6), (2026, 9, 25), (2027, 9, 15), (2028, 10, 3), (2029, 9, 22), (2030, 9, 12)];

#[derive(Debug, Clone, Copy)]
enum Holiday {
    Fixed(u32, u32),
    /// Table entry plus a day offset (除夕 = 春节 - 1).
    Table(&'static [(i32, u32, u32)], i64),
}

const ZH_HOLIDAY: &[(&str, Holiday)] = &[
    ("元旦节", Holiday::Fixed(1, 1)),
    ("元旦", Holiday::Fixed(1, 1)),
    ("春节", Holiday::Table(CNY, 0)),
    ("除夕", Holiday::Table(CNY, -1)),
    ("国庆节", Holiday::Fixed(10, 1)),
    ("国庆", Holiday::Fixed(10, 1)),
    ("劳动节", Holiday::Fixed(5, 1)),
    ("中秋节", Holiday::Table(MID_AUTUMN, 0)),
    ("中秋", Holiday::Table(MID_AUTUMN, 0)),
    ("圣诞节", Holiday::Fixed(12, 25)),
];

/// Nouns after "N点" that make it "N points" rather than a clock time ("有三点建议").
const DIAN_NOUNS: &[&str] = &[
    "问题", "建议", "意见", "需求", "要求", "原因", "理由", "内容", "好处", "看法", "共识", "不足", "优势", "注意",
    "想法", "考虑", "疑问", "改进", "补充", "说明", "结论", "体会", "收获",
];

/// Characters after "D号" that make it a room/line/seat number, not a date.
const HAO_NOUNS: &str = "线楼门店房厅馆位桌床机车箱柜窗院栋座单仓库码口包件台";

fn last_day_of_month(y: i32, m: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, 1)?.checked_add_months(Months::new(1))?.pred_opt()
}

fn add_days(d: NaiveDate, n: i64) -> Option<NaiveDate> {
    d.checked_add_signed(TimeDelta::try_days(n)?)
}

/// Local date + time → instant; ambiguous → earliest, nonexistent (DST gap) → shifted forward.
fn local(tz: Tz, date: NaiveDate, h: u32, m: u32) -> Option<DateTime<Tz>> {
    let ndt = date.and_hms_opt(h, m, 0)?;
    match tz.from_local_datetime(&ndt) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
        LocalResult::None => {
            // Read the wall time with the offset in force before the gap: 02:30 → 03:30.
            let before = ndt.checked_sub_signed(TimeDelta::try_hours(3)?)?;
            let off = tz.offset_from_local_datetime(&before).earliest()?.fix();
            let utc = ndt.checked_sub_signed(TimeDelta::try_seconds(i64::from(off.local_minus_utc()))?)?;
            Some(tz.from_utc_datetime(&utc))
        }
    }
}

struct P<'a> {
    text: &'a str,
    t: Vec<Tok>,
    now: DateTime<Tz>,
    today: NaiveDate,
}

impl<'a> P<'a> {
    fn new(text: &'a str, now: DateTime<Tz>) -> Self {
        // Not `date_naive()`: it panics when the local time is outside chrono's range.
        let utc = now.naive_utc();
        let today = utc.checked_add_offset(now.offset().fix()).unwrap_or(utc).date();
        P { text, t: tokenize(text), now, today }
    }

    // --- token helpers ---

    fn kind(&self, i: usize) -> Option<Kind> {
        self.t.get(i).map(|t| t.kind)
    }

    fn is_ch(&self, i: usize, c: char) -> bool {
        self.kind(i) == Some(Kind::Ch(c))
    }

    fn ch_in(&self, i: usize, set: &str) -> bool {
        matches!(self.kind(i), Some(Kind::Ch(c)) if set.contains(c))
    }

    fn lit(&self, i: usize, s: &str) -> Option<usize> {
        let mut j = i;
        for c in s.chars() {
            if !self.is_ch(j, c) {
                return None;
            }
            j += 1;
        }
        Some(j)
    }

    /// First entry of `list` spelled at `i` (list longer spellings first).
    fn lit_map<T: Copy>(&self, i: usize, list: &[(&str, T)]) -> Option<(T, usize)> {
        if !matches!(self.kind(i), Some(Kind::Ch(_))) {
            return None;
        }
        list.iter().find_map(|&(s, v)| self.lit(i, s).map(|j| (v, j)))
    }

    fn raw(&self, i: usize) -> &'a str {
        self.t.get(i).and_then(|t| self.text.get(t.s..t.e)).unwrap_or("")
    }

    fn is_word(&self, i: usize, w: &str) -> bool {
        self.kind(i) == Some(Kind::Word) && self.raw(i).eq_ignore_ascii_case(w)
    }

    fn word_map<T: Copy>(&self, i: usize, list: &[(&str, T)]) -> Option<(T, usize)> {
        if self.kind(i) != Some(Kind::Word) {
            return None;
        }
        let r = self.raw(i);
        list.iter().find(|(s, _)| r.eq_ignore_ascii_case(s)).map(|&(_, v)| (v, i + 1))
    }

    fn num(&self, i: usize) -> Option<(u32, bool, u8)> {
        match self.kind(i) {
            Some(Kind::Num(v, cn, nd)) => Some((v, cn, nd)),
            _ => None,
        }
    }

    /// ASCII/full-width number of at most `max_digits` digits.
    fn anum(&self, i: usize, max_digits: u8) -> Option<u32> {
        match self.kind(i) {
            Some(Kind::Num(v, false, nd)) if nd <= max_digits => Some(v),
            _ => None,
        }
    }

    /// Skip one whitespace token.
    fn ws(&self, i: usize) -> usize {
        if self.kind(i) == Some(Kind::Space) { i + 1 } else { i }
    }

    fn range(&self, a: usize, b: usize) -> Range<usize> {
        let s = self.t.get(a).map_or(0, |t| t.s);
        let e = b.checked_sub(1).and_then(|l| self.t.get(l)).map_or(s, |t| t.e);
        s..e.max(s)
    }

    fn snip(&self, a: usize, b: usize) -> &'a str {
        self.text.get(self.range(a, b)).unwrap_or("")
    }

    /// Cheap filter: can an expression start at token `i`?
    fn can_start(&self, i: usize) -> bool {
        match self.kind(i) {
            Some(Kind::Num(..) | Kind::Word) => true,
            Some(Kind::Ch(c)) => "今明后大昨前下这本上当周星礼月年元春除国劳中圣凌清早傍晚夜半@".contains(c),
            _ => false,
        }
    }

    /// find_time guard: a match must not be glued to ids, amounts or decimals.
    fn boundary_ok(&self, a: usize, b: usize) -> bool {
        let glue = "#.$¥￥/-:：+*=_%";
        if matches!(self.kind(a), Some(Kind::Num(..))) && a > 0 && self.ch_in(a - 1, glue) {
            return false;
        }
        if matches!(self.kind(a), Some(Kind::Num(..))) && a > 0 && matches!(self.kind(a - 1), Some(Kind::Word)) {
            return false;
        }
        if b > 0 && matches!(self.kind(b - 1), Some(Kind::Num(..))) {
            if self.is_ch(b, '%') || matches!(self.kind(b), Some(Kind::Word)) {
                return false;
            }
            if self.ch_in(b, "./-:：") && matches!(self.kind(b + 1), Some(Kind::Num(..))) {
                return false;
            }
        }
        true
    }

    // --- expression ---

    fn expr(&self, i: usize) -> Option<Expr> {
        let day = match self.span(i) {
            Some((Span::Short(min, gran), end)) => {
                let res = TimeDelta::try_minutes(min)
                    .and_then(|d| self.now.checked_add_signed(d))
                    .map(|at| When { at, granularity: gran, explicit_time: true })
                    .ok_or_else(|| format!("{} is out of range", self.snip(i, end)));
                return Some(Expr { end, res, weak: false });
            }
            Some((Span::Long(months, days), end)) => {
                let d = self
                    .today
                    .checked_add_months(Months::new(months))
                    .and_then(|d| d.checked_add_days(Days::new(days)));
                Some((DayRes::day(d), end))
            }
            None => self.day(i),
        };
        if let Some((d, j)) = day {
            return Some(self.after_day(d, j));
        }
        if let Some((per, j)) = self.lit_map(i, ZH_PERIOD) {
            let k = self.ws(j);
            if let Some((c, end)) = self.clock(k, false) {
                return Some(Expr {
                    end,
                    res: self.build(Ok(self.today), Granularity::Day, Some(per), Some(c)),
                    weak: false,
                });
            }
            if self.ch_in(j, "好茶") {
                return None; // 早上好 / 晚上好 are greetings, 下午茶 is tea
            }
            return Some(Expr {
                end: j,
                res: self.build(Ok(self.today), Granularity::Day, Some(per), None),
                weak: false,
            });
        }
        let (c, j) = self.clock_at(i)?;
        if c.mer.is_none() && self.kind(i).is_some_and(|k| matches!(k, Kind::Num(..))) {
            // Reject "有三点建议", "便宜一点" and the like.
            if i > 0 && self.ch_in(i - 1, "有这那几第每") {
                return None;
            }
            if c.dian_only && matches!(self.kind(i), Some(Kind::Num(1, true, 1))) {
                return None;
            }
            if DIAN_NOUNS.iter().any(|n| self.lit(j, n).is_some()) {
                return None;
            }
        }
        // English order: "3pm tomorrow", "10am on friday".
        let k = self.ws(j);
        if k > j
            && self.kind(k) == Some(Kind::Word)
            && let Some((d, end)) = self.day(k)
        {
            return Some(Expr { end, res: self.build(d.date, d.gran, d.implied, Some(c)), weak: false });
        }
        Some(Expr { end: j, res: self.build(Ok(self.today), Granularity::Day, None, Some(c)), weak: false })
    }

    /// Day, then optional part of day, then optional clock.
    fn after_day(&self, d: DayRes, j: usize) -> Expr {
        let mut k = self.ws(j);
        if self.is_ch(k, '的') {
            k = self.ws(k + 1);
        }
        let mut per = d.implied;
        let mut end = j;
        let p = self
            .lit_map(k, ZH_PERIOD)
            .or_else(|| if k == j { self.lit_map(k, ZH_PERIOD_SHORT) } else { None })
            .or_else(|| self.en_period(k));
        if let Some((p, e)) = p {
            per = Some(p);
            end = e;
            k = self.ws(e);
        }
        let clock = self.clock_at(k);
        if let Some((_, e)) = clock {
            end = e;
        }
        if end == j {
            return Expr { end: j, res: self.build(d.date, d.gran, d.implied, None), weak: d.weak };
        }
        Expr { end, res: self.build(d.date, d.gran, per, clock.map(|c| c.0)), weak: false }
    }

    fn en_period(&self, i: usize) -> Option<(Period, usize)> {
        let j = if self.is_word(i, "in") && self.is_word(self.ws(i + 1), "the") {
            self.ws(self.ws(i + 1) + 1)
        } else if self.is_word(i, "at") && self.is_word(self.ws(i + 1), "night") {
            self.ws(i + 1)
        } else {
            i
        };
        self.word_map(j, EN_PERIOD)
    }

    fn build(
        &self,
        date: Result<NaiveDate, String>,
        gran: Granularity,
        per: Option<Period>,
        clock: Option<Clock>,
    ) -> Result<When, String> {
        let date = date?;
        let tz = self.now.timezone();
        let oor = || "date out of range".to_string();
        if let Some(c) = clock {
            let (h, m, plus) = c.resolve(per).ok_or_else(|| format!("{} is not a valid time", self.snip(c.s, c.e)))?;
            let date = date.checked_add_days(Days::new(plus)).ok_or_else(oor)?;
            let at = local(tz, date, h, m).ok_or_else(oor)?;
            return Ok(When { at, granularity: Granularity::Minute, explicit_time: true });
        }
        if let Some(p) = per {
            let at = local(tz, date, p.default_hour(), 0).ok_or_else(oor)?;
            return Ok(When { at, granularity: Granularity::Hour, explicit_time: false });
        }
        let at = local(tz, date, DEFAULT_HOUR, 0).ok_or_else(oor)?;
        Ok(When { at, granularity: gran, explicit_time: false })
    }

    // --- clock ---

    /// Optional "at"/"@" then a clock; after "at" a bare number is an hour ("at 3").
    fn clock_at(&self, i: usize) -> Option<(Clock, usize)> {
        if self.is_word(i, "at") || self.is_ch(i, '@') {
            let j = self.ws(i + 1);
            return self.clock(j, true).map(|(mut c, e)| {
                c.s = i;
                (c, e)
            });
        }
        self.clock(i, false)
    }

    fn clock(&self, i: usize, bare_ok: bool) -> Option<(Clock, usize)> {
        let mk = |h, m, mer, e, dian_only| (Clock { h, m, mer, s: i, e, dian_only }, e);
        if self.is_word(i, "noon") {
            return Some(mk(12, 0, Some(Mer::Pm), i + 1, false));
        }
        if self.is_word(i, "midnight") {
            return Some(mk(24, 0, None, i + 1, false));
        }
        let (h, cn, nd) = self.num(i)?;
        let j = i + 1;
        // H:MM, H：MM
        if !cn && nd <= 2 && self.ch_in(j, ":：") {
            let m = self.anum(j + 1, 2).filter(|_| matches!(self.kind(j + 1), Some(Kind::Num(_, false, 2))))?;
            let mut e = j + 2;
            // Optional :SS.
            if self.ch_in(e, ":：") && matches!(self.kind(e + 1), Some(Kind::Num(_, false, 2))) {
                e += 2;
            }
            if let Some((mer, e2)) = self.ampm(self.ws(e)) {
                return Some(mk(h, m, Some(mer), e2, false));
            }
            return Some(mk(h, m, None, e, false));
        }
        // N点… / N时…
        if self.ch_in(j, "点时") {
            if self.is_ch(j, '时') && i > 0 && self.is_ch(i - 1, '小') {
                return None;
            }
            let k = j + 1;
            if self.is_ch(k, '半') {
                return Some(mk(h, 30, None, k + 1, false));
            }
            if let Some((q, _, _)) = self.num(k) {
                if self.is_ch(k + 1, '刻') && (1..=3).contains(&q) {
                    return Some(mk(h, q * 15, None, k + 2, false));
                }
                if self.is_ch(k + 1, '分') {
                    let e = if self.is_ch(k + 2, '钟') { k + 3 } else { k + 2 };
                    return Some(mk(h, q, None, e, false));
                }
                // "3点20", "三点二十", "三点零五" (no 分).
                let ok_form = match self.kind(k) {
                    Some(Kind::Num(_, false, 2)) => true,
                    Some(Kind::Num(v, true, nd)) => v >= 10 || nd >= 2,
                    _ => false,
                };
                if ok_form && !self.ch_in(k + 1, "个万千百元块人次倍岁年月天号日%") {
                    return Some(mk(h, q, None, k + 1, false));
                }
            }
            if self.ch_in(k, "钟整") {
                return Some(mk(h, 0, None, k + 1, false));
            }
            return Some(mk(h, 0, None, k, true));
        }
        if cn || nd > 2 {
            return None;
        }
        // 3pm, 3 pm
        if let Some((mer, e)) = self.ampm(self.ws(j)) {
            return Some(mk(h, 0, Some(mer), e, false));
        }
        // 3 o'clock
        let k = self.ws(j);
        if self.is_word(k, "o") && self.ch_in(k + 1, "'’") && self.is_word(k + 2, "clock") {
            return Some(mk(h, 0, None, k + 3, false));
        }
        // "at 3" is an hour, "at 3 people" is not.
        if bare_ok && h <= 24 && (self.kind(k) != Some(Kind::Word) || self.day(k).is_some()) {
            return Some(mk(h, 0, None, j, false));
        }
        None
    }

    fn ampm(&self, i: usize) -> Option<(Mer, usize)> {
        if let Some(r) = self.word_map(i, &[("am", Mer::Am), ("pm", Mer::Pm)]) {
            return Some(r);
        }
        // a.m. / p.m.
        let (m, j) = self.word_map(i, &[("a", Mer::Am), ("p", Mer::Pm)])?;
        if !(self.is_ch(j, '.') && self.is_word(j + 1, "m")) {
            return None;
        }
        Some((m, if self.is_ch(j + 2, '.') { j + 3 } else { j + 2 }))
    }

    // --- spans ---

    fn span(&self, i: usize) -> Option<(Span, usize)> {
        let (halves, unit, e) = self.span_zh(i).or_else(|| self.span_en(i))?;
        let whole = halves / 2;
        let odd = halves % 2 == 1;
        let span = match unit {
            Unit::Min if !odd => Span::Short(i64::try_from(whole).ok()?, Granularity::Minute),
            Unit::Quarter if !odd => Span::Short(i64::try_from(whole).ok()?.checked_mul(15)?, Granularity::Minute),
            Unit::Hour => {
                let g = if odd { Granularity::Minute } else { Granularity::Hour };
                Span::Short(i64::try_from(halves).ok()?.checked_mul(30)?, g)
            }
            Unit::Day if !odd => Span::Long(0, whole),
            Unit::Week if !odd => Span::Long(0, whole.checked_mul(7)?),
            Unit::Month => Span::Long(u32::try_from(whole).ok()?, if odd { 15 } else { 0 }),
            Unit::Year if !odd => Span::Long(u32::try_from(whole).ok()?.checked_mul(12)?, 0),
            _ => return None,
        };
        Some((span, e))
    }

    /// "3天后", "两个小时后", "半个月后", "一个半小时后", "一刻钟后" → (quantity in halves, unit, end).
    fn span_zh(&self, i: usize) -> Option<(u64, Unit, usize)> {
        let (mut halves, mut j, counted) = if self.is_ch(i, '半') {
            (1u64, i + 1, false)
        } else {
            let (v, _, _) = self.num(i)?;
            if v == BAD {
                return None;
            }
            (u64::from(v) * 2, i + 1, true)
        };
        let ge = self.is_ch(j, '个');
        if ge {
            j += 1;
            if counted && self.is_ch(j, '半') {
                halves += 1;
                j += 1;
            }
        }
        let (unit, k) = self.lit_map(j, ZH_UNIT)?;
        // "3月后" is March; months need 个 ("3个月后").
        if unit == Unit::Month && !ge {
            return None;
        }
        if unit == Unit::Quarter && !counted {
            return None;
        }
        let e = self.lit_map(k, &[("以后", ()), ("之后", ()), ("后", ())])?.1;
        Some((halves, unit, e))
    }

    /// "in 3 days", "in half an hour", "2 hours later", "3 days from now".
    fn span_en(&self, i: usize) -> Option<(u64, Unit, usize)> {
        if self.is_word(i, "in") {
            let j = self.ws(i + 1);
            if self.is_word(j, "half") {
                let k = self.ws(j + 1);
                let k = if self.is_word(k, "an") || self.is_word(k, "a") { self.ws(k + 1) } else { k };
                let (unit, e) = self.word_map(k, EN_UNIT)?;
                return Some((1, unit, e));
            }
            let (n, k) = self.en_qty(j)?;
            let (unit, e) = self.word_map(self.ws(k), EN_UNIT)?;
            // "in a minute" is a figure of speech.
            if unit == Unit::Min && (self.is_word(j, "a") || self.is_word(j, "an")) {
                return None;
            }
            return Some((u64::from(n) * 2, unit, e));
        }
        let (n, k) = self.en_qty(i)?;
        let (unit, e) = self.word_map(self.ws(k), EN_UNIT)?;
        let f = self.ws(e);
        if self.is_word(f, "later") {
            return Some((u64::from(n) * 2, unit, f + 1));
        }
        if self.is_word(f, "from") && self.is_word(self.ws(f + 1), "now") {
            return Some((u64::from(n) * 2, unit, self.ws(f + 1) + 1));
        }
        None
    }

    fn en_qty(&self, i: usize) -> Option<(u32, usize)> {
        if let Some(v) = self.anum(i, 6) {
            return Some((v, i + 1));
        }
        self.word_map(i, EN_NUM)
    }

    // --- days ---

    fn day(&self, i: usize) -> Option<(DayRes, usize)> {
        if self.is_word(i, "on") {
            let (mut d, e) = self.day_inner(self.ws(i + 1))?;
            d.weak = false;
            return Some((d, e));
        }
        self.day_inner(i)
    }

    fn day_inner(&self, i: usize) -> Option<(DayRes, usize)> {
        match self.kind(i)? {
            Kind::Num(..) => self
                .date_full(i)
                .or_else(|| self.date_md_zh(i))
                .or_else(|| self.date_slash(i))
                .or_else(|| self.date_en(i))
                .or_else(|| self.holiday(i))
                .or_else(|| self.day_of_month(i)),
            Kind::Word => {
                self.rel_en(i).or_else(|| self.weekday_en(i)).or_else(|| self.month_en(i)).or_else(|| self.date_en(i))
            }
            Kind::Ch(_) => {
                self.rel_zh(i).or_else(|| self.weekday_zh(i)).or_else(|| self.month_zh(i)).or_else(|| self.holiday(i))
            }
            Kind::Space => None,
        }
    }

    fn invalid(&self, a: usize, b: usize) -> String {
        format!("{} does not exist", self.snip(a, b))
    }

    fn ymd(&self, y: u32, m: u32, d: u32, a: usize, b: usize) -> DayRes {
        let date = i32::try_from(y).ok().and_then(|y| NaiveDate::from_ymd_opt(y, m, d));
        DayRes { date: date.ok_or_else(|| self.invalid(a, b)), ..DayRes::day(None) }
    }

    /// Next occurrence of month/day not before today (Feb 29 → next leap year).
    fn next_md(&self, m: u32, d: u32, a: usize, b: usize) -> DayRes {
        let mut y = self.today.year();
        if (m, d) < (self.today.month(), self.today.day()) {
            y += 1;
        }
        let mut date = NaiveDate::from_ymd_opt(y, m, d);
        if m == 2 && d == 29 {
            date = (y..y + 8).find_map(|y| NaiveDate::from_ymd_opt(y, 2, 29));
        }
        DayRes { date: date.ok_or_else(|| self.invalid(a, b)), ..DayRes::day(None) }
    }

    /// YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日.
    fn date_full(&self, i: usize) -> Option<(DayRes, usize)> {
        let (y, _, 4) = self.num(i)? else { return None };
        if self.is_ch(i + 1, '年') {
            let (m, _, _) = self.num(i + 2)?;
            if !self.is_ch(i + 3, '月') {
                return None;
            }
            let (d, _, _) = self.num(i + 4)?;
            let e = if self.ch_in(i + 5, "日号") { i + 6 } else { i + 5 };
            return Some((self.ymd(y, m, d, i, e), e));
        }
        let Some(Kind::Ch(sep @ ('-' | '/' | '.'))) = self.kind(i + 1) else { return None };
        let m = self.anum(i + 2, 2)?;
        if !self.is_ch(i + 3, sep) {
            return None;
        }
        let d = self.anum(i + 4, 2)?;
        Some((self.ymd(y, m, d, i, i + 5), i + 5))
    }

    /// M月D日 / M月D号 / M月D (before a time or a break) / M月底 / M月初 / M月中.
    fn date_md_zh(&self, i: usize) -> Option<(DayRes, usize)> {
        let (m, _, _) = self.num(i)?;
        if !self.is_ch(i + 1, '月') {
            return None;
        }
        let j = i + 2;
        if let Some(Kind::Ch(c @ ('底' | '末' | '初' | '中'))) = self.kind(j) {
            if !(1..=12).contains(&m) {
                return None;
            }
            let y = if m < self.today.month() { self.today.year() + 1 } else { self.today.year() };
            let date = match c {
                '底' | '末' => last_day_of_month(y, m),
                '初' => NaiveDate::from_ymd_opt(y, m, 1),
                _ => NaiveDate::from_ymd_opt(y, m, 15),
            };
            let e = if c == '中' && self.is_ch(j + 1, '旬') { j + 2 } else { j + 1 };
            return Some((DayRes::month(date), e));
        }
        let (d, _, dnd) = self.num(j)?;
        if self.ch_in(j + 1, "日号") {
            return Some((self.next_md(m, d, i, j + 2), j + 2));
        }
        let k = j + 1;
        let follow_ok = match self.kind(k) {
            None | Some(Kind::Space) => true,
            Some(Kind::Ch(c)) => !c.is_alphanumeric() || self.lit_map(k, ZH_PERIOD).is_some(),
            _ => false,
        };
        if follow_ok && (1..=12).contains(&m) && (1..=31).contains(&d) && dnd <= 2 {
            return Some((self.next_md(m, d, i, k), k));
        }
        None
    }

    /// M/D (month first).
    fn date_slash(&self, i: usize) -> Option<(DayRes, usize)> {
        let m = self.anum(i, 2)?;
        if !self.is_ch(i + 1, '/') {
            return None;
        }
        let d = self.anum(i + 2, 2)?;
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        // Not part of a longer a/b/c or a/b.c.
        if self.ch_in(i + 3, "/.") && matches!(self.kind(i + 4), Some(Kind::Num(..))) {
            return None;
        }
        if i > 0 && self.ch_in(i - 1, "/.") {
            return None;
        }
        Some((self.next_md(m, d, i, i + 3), i + 3))
    }

    /// Dec 3 / December 3rd / Dec. 3, 2026 / 3 Dec / 3rd of December.
    fn date_en(&self, i: usize) -> Option<(DayRes, usize)> {
        let ordinal = |k: usize| {
            if self.word_map(k, &[("st", ()), ("nd", ()), ("rd", ()), ("th", ())]).is_some() { k + 1 } else { k }
        };
        let mut weak = false;
        let (m, d, mut e) = if let Some((m, j)) = self.word_map(i, EN_MONTH) {
            let j = if self.is_ch(j, '.') { j + 1 } else { j };
            let k = self.ws(j);
            let d = self.anum(k, 2)?;
            let e = ordinal(k + 1);
            // "may 3 people" is a verb, not May 3rd.
            weak = self.is_word(i, "may") && e == k + 1 && self.kind(self.ws(e)) == Some(Kind::Word);
            (m, d, e)
        } else {
            let d = self.anum(i, 2)?;
            let j = ordinal(i + 1);
            let k = self.ws(j);
            let k = if self.is_word(k, "of") { self.ws(k + 1) } else { k };
            let (m, e) = self.word_map(k, EN_MONTH)?;
            (m, d, e)
        };
        if !(1..=31).contains(&d) {
            return None;
        }
        // Optional year: ", 2026" / " 2026".
        let mut k = e;
        if self.is_ch(k, ',') {
            k += 1;
        }
        k = self.ws(k);
        if let Some(Kind::Num(y, false, 4)) = self.kind(k) {
            e = k + 1;
            return Some((self.ymd(y, m, d, i, e), e));
        }
        Some((DayRes { weak, ..self.next_md(m, d, i, e) }, e))
    }

    /// D号 / D日 alone: this month, or next month if already past.
    fn day_of_month(&self, i: usize) -> Option<(DayRes, usize)> {
        let (d, _, nd) = self.num(i)?;
        if nd > 2 || !(1..=31).contains(&d) || !self.ch_in(i + 1, "号日") {
            return None;
        }
        if i > 0 && (self.ch_in(i - 1, "#第") || matches!(self.kind(i - 1), Some(Kind::Word))) {
            return None;
        }
        if self.ch_in(i + 2, HAO_NOUNS) || (self.is_ch(i + 1, '日') && self.ch_in(i + 2, "游元票")) {
            return None;
        }
        let mut base = self.today.with_day(1)?;
        if d < self.today.day() {
            base = base.checked_add_months(Months::new(1))?;
        }
        let date = base.with_day(d);
        let err = || format!("{} does not exist in {}", self.snip(i, i + 2), base.format("%Y-%m"));
        Some((DayRes { date: date.ok_or_else(err), ..DayRes::day(None) }, i + 2))
    }

    fn rel_zh(&self, i: usize) -> Option<(DayRes, usize)> {
        let ((off, per), e) = ZH_REL.iter().find_map(|&(s, off, per)| self.lit(i, s).map(|e| ((off, per), e)))?;
        Some((DayRes { implied: per, ..DayRes::day(add_days(self.today, off)) }, e))
    }

    fn rel_en(&self, i: usize) -> Option<(DayRes, usize)> {
        const REL: &[(&str, (i64, Option<Period>))] = &[
            ("today", (0, None)),
            ("tonight", (0, Some(Period::Evening))),
            ("tomorrow", (1, None)),
            ("tmr", (1, None)),
            ("tmrw", (1, None)),
            ("yesterday", (-1, None)),
        ];
        let rel = |off: i64, per: Option<Period>, e: usize| {
            Some((DayRes { implied: per, ..DayRes::day(add_days(self.today, off)) }, e))
        };
        if let Some(((off, per), e)) = self.word_map(i, REL) {
            return rel(off, per, e);
        }
        if self.is_word(i, "this") {
            let (p, e) = self.word_map(self.ws(i + 1), EN_PERIOD)?;
            return rel(0, Some(p), e);
        }
        // (the) day after tomorrow
        let j = if self.is_word(i, "the") { self.ws(i + 1) } else { i };
        let k = self.ws(j + 1);
        let l = self.ws(k + 1);
        if self.is_word(j, "day") && self.is_word(k, "after") && self.is_word(l, "tomorrow") {
            return rel(2, None, l + 1);
        }
        None
    }

    /// Monday of the week `weeks` from the current one, plus `wd` days (0 = Monday).
    fn week_day(&self, weeks: i64, wd: u32, bare: bool) -> Option<NaiveDate> {
        let monday = add_days(self.today, -i64::from(self.today.weekday().num_days_from_monday()))?;
        let d = add_days(monday, weeks * 7 + i64::from(wd))?;
        if bare && d < self.today { add_days(d, 7) } else { Some(d) }
    }

    fn weekday_zh(&self, i: usize) -> Option<(DayRes, usize)> {
        const PREFIX: &[(&str, i64)] = &[
            ("下下个", 2),
            ("下下", 2),
            ("下个", 1),
            ("下", 1),
            ("这个", 0),
            ("这", 0),
            ("本", 0),
            ("上上个", -2),
            ("上上", -2),
            ("上个", -1),
            ("上", -1),
        ];
        let (weeks, j, bare) = match self.lit_map(i, PREFIX) {
            Some((w, j)) => (w, j, false),
            None => {
                // "两周一次" is a frequency, not Monday.
                if i > 0 && matches!(self.kind(i - 1), Some(Kind::Num(..))) {
                    return None;
                }
                (0, i, true)
            }
        };
        let (_, k) = self.lit_map(j, &[("星期", ()), ("礼拜", ()), ("周", ())])?;
        let wd = match self.kind(k) {
            Some(Kind::Num(v @ 1..=6, true, 1) | Kind::Num(v @ 1..=7, false, 1)) => Some(v - 1),
            Some(Kind::Ch('日' | '天')) => Some(6),
            Some(Kind::Ch('末')) => Some(5),
            _ => None,
        };
        match wd {
            Some(wd) => Some((DayRes::day(self.week_day(weeks, wd, bare)), k + 1)),
            // 下周 / 下下周 alone → Monday of that week.
            None if weeks > 0 => Some((DayRes::day(self.week_day(weeks, 0, false)), k)),
            None => None,
        }
    }

    fn weekday_en(&self, i: usize) -> Option<(DayRes, usize)> {
        let (weeks, j, bare) = match self.word_map(i, &[("next", 1), ("this", 0), ("last", -1), ("coming", 0)]) {
            Some((w, j)) => (w, self.ws(j), self.is_word(i, "coming")),
            None => (0, i, true),
        };
        if let Some(((wd, weak), e)) = self.word_map(j, EN_WEEKDAY) {
            let d = DayRes { weak: weak && j == i, ..DayRes::day(self.week_day(weeks, wd, bare)) };
            return Some((d, e));
        }
        if self.is_word(j, "weekend") {
            return Some((DayRes::day(self.week_day(weeks, 5, bare)), j + 1));
        }
        if weeks > 0 && self.is_word(j, "week") {
            return Some((DayRes::day(self.week_day(weeks, 0, false)), j + 1));
        }
        None
    }

    /// First day of the month `months` from the current one (may be negative).
    fn month_start(&self, months: i32) -> Option<NaiveDate> {
        let first = self.today.with_day(1)?;
        let n = Months::new(months.unsigned_abs());
        if months < 0 { first.checked_sub_months(n) } else { first.checked_add_months(n) }
    }

    fn month_end(&self, months: i32) -> Option<NaiveDate> {
        self.month_start(months.checked_add(1)?)?.pred_opt()
    }

    /// 月底 / 下个月初 / 下个月3号 / 年底 …
    fn month_zh(&self, i: usize) -> Option<(DayRes, usize)> {
        if let Some((_, e)) = self.lit_map(i, &[("今年年底", ()), ("今年底", ()), ("年底", ()), ("年末", ())])
        {
            return Some((DayRes::month(NaiveDate::from_ymd_opt(self.today.year(), 12, 31)), e));
        }
        const PREFIX: &[(&str, i32)] = &[
            ("上个月", -1),
            ("上月", -1),
            ("下下个月", 2),
            ("下个月", 1),
            ("下月", 1),
            ("本月", 0),
            ("这个月", 0),
            ("这月", 0),
            ("当月", 0),
            ("月", 0),
        ];
        let (months, j) = self.lit_map(i, PREFIX)?;
        let prefixed = j - i > 1;
        match self.kind(j) {
            Some(Kind::Ch('底' | '末')) => Some((DayRes::month(self.month_end(months)), j + 1)),
            Some(Kind::Ch('初')) => Some((DayRes::month(self.month_start(if prefixed { months } else { 1 })), j + 1)),
            Some(Kind::Ch('中')) => {
                let e = if self.is_ch(j + 1, '旬') { j + 2 } else { j + 1 };
                let mut d = self.month_start(months).and_then(|d| d.with_day(15));
                if !prefixed && d.is_some_and(|d| d < self.today) {
                    d = self.month_start(1).and_then(|d| d.with_day(15));
                }
                Some((DayRes::month(d), e))
            }
            Some(Kind::Num(d, _, nd)) if prefixed && nd <= 2 && self.ch_in(j + 1, "号日") => {
                let base = self.month_start(months)?;
                let date = base.with_day(d);
                let err = || self.invalid(i, j + 2);
                Some((DayRes { date: date.ok_or_else(err), ..DayRes::day(None) }, j + 2))
            }
            _ if prefixed && months > 0 => Some((DayRes::month(self.month_start(months)), j)),
            _ => None,
        }
    }

    /// end of month / end of the month / eom / next month / end of year.
    fn month_en(&self, i: usize) -> Option<(DayRes, usize)> {
        if self.is_word(i, "eom") {
            return Some((DayRes::month(self.month_end(0)), i + 1));
        }
        if self.is_word(i, "eoy") {
            return Some((DayRes::month(NaiveDate::from_ymd_opt(self.today.year(), 12, 31)), i + 1));
        }
        if self.is_word(i, "next") {
            let j = self.ws(i + 1);
            if self.is_word(j, "month") {
                return Some((DayRes::month(self.month_start(1)), j + 1));
            }
            return None;
        }
        let start = self.is_word(i, "start") || self.is_word(i, "beginning");
        if !(self.is_word(i, "end") || start) {
            return None;
        }
        let j = self.ws(i + 1);
        if !self.is_word(j, "of") {
            return None;
        }
        let k = self.ws(j + 1);
        let (months, k) = match self.word_map(k, &[("the", 0), ("this", 0), ("next", 1)]) {
            Some((n, k2)) => (n, self.ws(k2)),
            None => (0, k),
        };
        if self.is_word(k, "month") {
            let d = if start { self.month_start(if months == 0 { 1 } else { months }) } else { self.month_end(months) };
            return Some((DayRes::month(d), k + 1));
        }
        if self.is_word(k, "year") && !start && months == 0 {
            return Some((DayRes::month(NaiveDate::from_ymd_opt(self.today.year(), 12, 31)), k + 1));
        }
        None
    }

    fn holiday(&self, i: usize) -> Option<(DayRes, usize)> {
        let (h, e) = if self.raw(i) == "五一" {
            (Holiday::Fixed(5, 1), if self.is_ch(i + 1, '节') { i + 2 } else { i + 1 })
        } else {
            self.lit_map(i, ZH_HOLIDAY)?
        };
        let date = match h {
            Holiday::Fixed(m, d) => self.next_md(m, d, i, e).date.ok(),
            Holiday::Table(table, off) => table
                .iter()
                .filter_map(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).and_then(|x| add_days(x, off)))
                .find(|d| *d >= self.today),
        };
        let err = || format!("{} is beyond the known calendar", self.snip(i, e));
        Some((DayRes { date: date.ok_or_else(err), ..DayRes::day(None) }, e))
    }
}

#[cfg(test)]
mod tests {
    use super::Granularity::{Day, Hour, Minute, Month};
    use super::*;

    /// Tuesday 2026-11-24 10:00 Asia/Shanghai.
    fn now() -> DateTime<Tz> {
        at(Tz::Asia__Shanghai, 2026, 11, 24, 10, 0)
    }

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Tz> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().expect("valid test instant")
    }

    const ZH: &[(&str, &str, Granularity)] = &[
        // relative days
        ("今天", "2026-11-24T09:00:00+08:00", Day),
        ("今日", "2026-11-24T09:00:00+08:00", Day),
        ("明天", "2026-11-25T09:00:00+08:00", Day),
        ("明日", "2026-11-25T09:00:00+08:00", Day),
        ("明儿", "2026-11-25T09:00:00+08:00", Day),
        ("后天", "2026-11-26T09:00:00+08:00", Day),
        ("大后天", "2026-11-27T09:00:00+08:00", Day),
        ("昨天", "2026-11-23T09:00:00+08:00", Day),
        ("前天", "2026-11-22T09:00:00+08:00", Day),
        ("今晚", "2026-11-24T20:00:00+08:00", Hour),
        ("今晚8点", "2026-11-24T20:00:00+08:00", Minute),
        ("明早", "2026-11-25T09:00:00+08:00", Hour),
        ("明早8点", "2026-11-25T08:00:00+08:00", Minute),
        ("明晚", "2026-11-25T20:00:00+08:00", Hour),
        ("明天早上", "2026-11-25T09:00:00+08:00", Hour),
        ("明天早上7点半", "2026-11-25T07:30:00+08:00", Minute),
        ("今天下午", "2026-11-24T15:00:00+08:00", Hour),
        ("明天下午三点半", "2026-11-25T15:30:00+08:00", Minute),
        ("明天中午", "2026-11-25T12:00:00+08:00", Hour),
        ("后天9:30", "2026-11-26T09:30:00+08:00", Minute),
        ("后天晚上", "2026-11-26T20:00:00+08:00", Hour),
        ("大后天上午10点", "2026-11-27T10:00:00+08:00", Minute),
        ("今晚12点", "2026-11-25T00:00:00+08:00", Minute),
        ("明天凌晨3点", "2026-11-25T03:00:00+08:00", Minute),
        ("今天晚上9点", "2026-11-24T21:00:00+08:00", Minute),
        ("昨晚", "2026-11-23T20:00:00+08:00", Hour),
        ("今早", "2026-11-24T09:00:00+08:00", Hour),
        ("明天 下午 3点", "2026-11-25T15:00:00+08:00", Minute),
        ("明天的下午3点", "2026-11-25T15:00:00+08:00", Minute),
        ("明天3pm", "2026-11-25T15:00:00+08:00", Minute),
        ("明天15:00", "2026-11-25T15:00:00+08:00", Minute),
        // parts of day alone
        ("上午", "2026-11-24T09:00:00+08:00", Hour),
        ("中午", "2026-11-24T12:00:00+08:00", Hour),
        ("下午", "2026-11-24T15:00:00+08:00", Hour),
        ("晚上", "2026-11-24T20:00:00+08:00", Hour),
        ("傍晚", "2026-11-24T18:00:00+08:00", Hour),
        ("凌晨", "2026-11-24T05:00:00+08:00", Hour),
        // clock times
        ("3点", "2026-11-24T15:00:00+08:00", Minute),
        ("9点", "2026-11-24T09:00:00+08:00", Minute),
        ("12点", "2026-11-24T12:00:00+08:00", Minute),
        ("11点", "2026-11-24T11:00:00+08:00", Minute),
        ("7点", "2026-11-24T07:00:00+08:00", Minute),
        ("6点", "2026-11-24T18:00:00+08:00", Minute),
        ("3点半", "2026-11-24T15:30:00+08:00", Minute),
        ("3点一刻", "2026-11-24T15:15:00+08:00", Minute),
        ("3点三刻", "2026-11-24T15:45:00+08:00", Minute),
        ("3点15分", "2026-11-24T15:15:00+08:00", Minute),
        ("10点05分", "2026-11-24T10:05:00+08:00", Minute),
        ("15:00", "2026-11-24T15:00:00+08:00", Minute),
        ("15：30", "2026-11-24T15:30:00+08:00", Minute),
        ("9:30", "2026-11-24T09:30:00+08:00", Minute),
        ("14时", "2026-11-24T14:00:00+08:00", Minute),
        ("14时30分", "2026-11-24T14:30:00+08:00", Minute),
        ("三点", "2026-11-24T15:00:00+08:00", Minute),
        ("十点", "2026-11-24T10:00:00+08:00", Minute),
        ("十一点", "2026-11-24T11:00:00+08:00", Minute),
        ("十二点半", "2026-11-24T12:30:00+08:00", Minute),
        ("两点", "2026-11-24T14:00:00+08:00", Minute),
        ("一点半", "2026-11-24T13:30:00+08:00", Minute),
        ("3点20", "2026-11-24T15:20:00+08:00", Minute),
        ("三点二十", "2026-11-24T15:20:00+08:00", Minute),
        ("三点零五分", "2026-11-24T15:05:00+08:00", Minute),
        ("24点", "2026-11-25T00:00:00+08:00", Minute),
        ("0点", "2026-11-24T00:00:00+08:00", Minute),
        ("３点", "2026-11-24T15:00:00+08:00", Minute),
        ("１５：００", "2026-11-24T15:00:00+08:00", Minute),
        ("下午3点", "2026-11-24T15:00:00+08:00", Minute),
        ("下午三点", "2026-11-24T15:00:00+08:00", Minute),
        ("下午3点钟", "2026-11-24T15:00:00+08:00", Minute),
        ("上午10点", "2026-11-24T10:00:00+08:00", Minute),
        ("上午十点半", "2026-11-24T10:30:00+08:00", Minute),
        ("早上8点", "2026-11-24T08:00:00+08:00", Minute),
        ("中午12点", "2026-11-24T12:00:00+08:00", Minute),
        ("中午1点", "2026-11-24T13:00:00+08:00", Minute),
        ("晚上8点", "2026-11-24T20:00:00+08:00", Minute),
        ("晚上12点", "2026-11-25T00:00:00+08:00", Minute),
        ("凌晨2点", "2026-11-24T02:00:00+08:00", Minute),
        ("傍晚6点", "2026-11-24T18:00:00+08:00", Minute),
        ("夜里11点", "2026-11-24T23:00:00+08:00", Minute),
        ("下午 4点", "2026-11-24T16:00:00+08:00", Minute),
        // weekdays
        ("周五", "2026-11-27T09:00:00+08:00", Day),
        ("周一", "2026-11-30T09:00:00+08:00", Day),
        ("周二", "2026-11-24T09:00:00+08:00", Day),
        ("这周四", "2026-11-26T09:00:00+08:00", Day),
        ("本周一", "2026-11-23T09:00:00+08:00", Day),
        ("下周三", "2026-12-02T09:00:00+08:00", Day),
        ("下下周一", "2026-12-07T09:00:00+08:00", Day),
        ("星期五", "2026-11-27T09:00:00+08:00", Day),
        ("星期天", "2026-11-29T09:00:00+08:00", Day),
        ("周日", "2026-11-29T09:00:00+08:00", Day),
        ("礼拜六", "2026-11-28T09:00:00+08:00", Day),
        ("礼拜天", "2026-11-29T09:00:00+08:00", Day),
        ("周5", "2026-11-27T09:00:00+08:00", Day),
        ("星期7", "2026-11-29T09:00:00+08:00", Day),
        ("下星期二", "2026-12-01T09:00:00+08:00", Day),
        ("下个星期一", "2026-11-30T09:00:00+08:00", Day),
        ("这个周五", "2026-11-27T09:00:00+08:00", Day),
        ("上周五", "2026-11-20T09:00:00+08:00", Day),
        ("下周", "2026-11-30T09:00:00+08:00", Day),
        ("下下周", "2026-12-07T09:00:00+08:00", Day),
        ("周末", "2026-11-28T09:00:00+08:00", Day),
        ("下周末", "2026-12-05T09:00:00+08:00", Day),
        ("周五下午4点", "2026-11-27T16:00:00+08:00", Minute),
        ("下周三下午3点", "2026-12-02T15:00:00+08:00", Minute),
        ("下周三下午", "2026-12-02T15:00:00+08:00", Hour),
        ("下周一上午10点", "2026-11-30T10:00:00+08:00", Minute),
        ("周五晚8点", "2026-11-27T20:00:00+08:00", Minute),
        ("星期四晚上", "2026-11-26T20:00:00+08:00", Hour),
        // spans
        ("3天后", "2026-11-27T09:00:00+08:00", Day),
        ("三天后", "2026-11-27T09:00:00+08:00", Day),
        ("3天以后", "2026-11-27T09:00:00+08:00", Day),
        ("5日后", "2026-11-29T09:00:00+08:00", Day),
        ("十天之后", "2026-12-04T09:00:00+08:00", Day),
        ("两周后", "2026-12-08T09:00:00+08:00", Day),
        ("2周后", "2026-12-08T09:00:00+08:00", Day),
        ("2个星期后", "2026-12-08T09:00:00+08:00", Day),
        ("3个月后", "2027-02-24T09:00:00+08:00", Day),
        ("半个月后", "2026-12-09T09:00:00+08:00", Day),
        ("1年后", "2027-11-24T09:00:00+08:00", Day),
        ("半小时后", "2026-11-24T10:30:00+08:00", Minute),
        ("2小时后", "2026-11-24T12:00:00+08:00", Hour),
        ("两个小时后", "2026-11-24T12:00:00+08:00", Hour),
        ("30分钟后", "2026-11-24T10:30:00+08:00", Minute),
        ("一刻钟后", "2026-11-24T10:15:00+08:00", Minute),
        ("一个半小时后", "2026-11-24T11:30:00+08:00", Minute),
        ("3天后下午2点", "2026-11-27T14:00:00+08:00", Minute),
        // dates
        ("12月3日", "2026-12-03T09:00:00+08:00", Day),
        ("12月3号", "2026-12-03T09:00:00+08:00", Day),
        ("12月3", "2026-12-03T09:00:00+08:00", Day),
        ("1月5号", "2027-01-05T09:00:00+08:00", Day),
        ("11月24日", "2026-11-24T09:00:00+08:00", Day),
        ("11月23日", "2027-11-23T09:00:00+08:00", Day),
        ("十二月三日", "2026-12-03T09:00:00+08:00", Day),
        ("二〇二六年十二月三日", "2026-12-03T09:00:00+08:00", Day),
        ("2026-12-03", "2026-12-03T09:00:00+08:00", Day),
        ("2027/1/15", "2027-01-15T09:00:00+08:00", Day),
        ("2026.12.31", "2026-12-31T09:00:00+08:00", Day),
        ("2026年12月25日", "2026-12-25T09:00:00+08:00", Day),
        ("2025年3月1日", "2025-03-01T09:00:00+08:00", Day),
        ("12/3", "2026-12-03T09:00:00+08:00", Day),
        ("12月3号上午10点", "2026-12-03T10:00:00+08:00", Minute),
        ("12月3 下午2点", "2026-12-03T14:00:00+08:00", Minute),
        ("2026-12-03 15:00", "2026-12-03T15:00:00+08:00", Minute),
        ("3号", "2026-12-03T09:00:00+08:00", Day),
        ("28号", "2026-11-28T09:00:00+08:00", Day),
        ("28号下午3点", "2026-11-28T15:00:00+08:00", Minute),
        // month-ish
        ("12月底", "2026-12-31T09:00:00+08:00", Month),
        ("月底", "2026-11-30T09:00:00+08:00", Month),
        ("本月底", "2026-11-30T09:00:00+08:00", Month),
        ("下个月初", "2026-12-01T09:00:00+08:00", Month),
        ("月初", "2026-12-01T09:00:00+08:00", Month),
        ("下个月", "2026-12-01T09:00:00+08:00", Month),
        ("下月底", "2026-12-31T09:00:00+08:00", Month),
        ("年底", "2026-12-31T09:00:00+08:00", Month),
        ("月中", "2026-12-15T09:00:00+08:00", Month),
        ("下个月3号", "2026-12-03T09:00:00+08:00", Day),
        ("上个月底", "2026-10-31T09:00:00+08:00", Month),
        ("当月底", "2026-11-30T09:00:00+08:00", Month),
        ("下月15号", "2026-12-15T09:00:00+08:00", Day),
        ("3月初", "2027-03-01T09:00:00+08:00", Month),
        ("月底下午3点", "2026-11-30T15:00:00+08:00", Minute),
        // holidays
        ("元旦", "2027-01-01T09:00:00+08:00", Day),
        ("春节", "2027-02-06T09:00:00+08:00", Day),
        ("除夕", "2027-02-05T09:00:00+08:00", Day),
        ("国庆", "2027-10-01T09:00:00+08:00", Day),
        ("国庆节", "2027-10-01T09:00:00+08:00", Day),
        ("劳动节", "2027-05-01T09:00:00+08:00", Day),
        ("五一", "2027-05-01T09:00:00+08:00", Day),
        ("中秋", "2027-09-15T09:00:00+08:00", Day),
        ("中秋节", "2027-09-15T09:00:00+08:00", Day),
        ("元旦上午10点", "2027-01-01T10:00:00+08:00", Minute),
    ];

    const EN: &[(&str, &str, Granularity)] = &[
        ("today", "2026-11-24T09:00:00+08:00", Day),
        ("Today", "2026-11-24T09:00:00+08:00", Day),
        ("tonight", "2026-11-24T20:00:00+08:00", Hour),
        ("tomorrow", "2026-11-25T09:00:00+08:00", Day),
        ("TOMORROW", "2026-11-25T09:00:00+08:00", Day),
        ("tmr", "2026-11-25T09:00:00+08:00", Day),
        ("day after tomorrow", "2026-11-26T09:00:00+08:00", Day),
        ("the day after tomorrow", "2026-11-26T09:00:00+08:00", Day),
        ("yesterday", "2026-11-23T09:00:00+08:00", Day),
        ("next Monday", "2026-11-30T09:00:00+08:00", Day),
        ("next mon", "2026-11-30T09:00:00+08:00", Day),
        ("next wed", "2026-12-02T09:00:00+08:00", Day),
        ("next Wednesday", "2026-12-02T09:00:00+08:00", Day),
        ("next tuesday", "2026-12-01T09:00:00+08:00", Day),
        ("this Friday", "2026-11-27T09:00:00+08:00", Day),
        ("this monday", "2026-11-23T09:00:00+08:00", Day),
        ("on Friday", "2026-11-27T09:00:00+08:00", Day),
        ("Friday", "2026-11-27T09:00:00+08:00", Day),
        ("fri", "2026-11-27T09:00:00+08:00", Day),
        ("monday", "2026-11-30T09:00:00+08:00", Day),
        ("tuesday", "2026-11-24T09:00:00+08:00", Day),
        ("thursday", "2026-11-26T09:00:00+08:00", Day),
        ("saturday", "2026-11-28T09:00:00+08:00", Day),
        ("sunday", "2026-11-29T09:00:00+08:00", Day),
        ("coming friday", "2026-11-27T09:00:00+08:00", Day),
        ("last friday", "2026-11-20T09:00:00+08:00", Day),
        ("next week", "2026-11-30T09:00:00+08:00", Day),
        ("this weekend", "2026-11-28T09:00:00+08:00", Day),
        ("weekend", "2026-11-28T09:00:00+08:00", Day),
        ("next weekend", "2026-12-05T09:00:00+08:00", Day),
        ("in 3 days", "2026-11-27T09:00:00+08:00", Day),
        ("in 1 day", "2026-11-25T09:00:00+08:00", Day),
        ("in two days", "2026-11-26T09:00:00+08:00", Day),
        ("in 2 weeks", "2026-12-08T09:00:00+08:00", Day),
        ("in a week", "2026-12-01T09:00:00+08:00", Day),
        ("in 3 months", "2027-02-24T09:00:00+08:00", Day),
        ("in 30 minutes", "2026-11-24T10:30:00+08:00", Minute),
        ("in 10 minutes", "2026-11-24T10:10:00+08:00", Minute),
        ("in 45 mins", "2026-11-24T10:45:00+08:00", Minute),
        ("in 2 hours", "2026-11-24T12:00:00+08:00", Hour),
        ("in 2 hrs", "2026-11-24T12:00:00+08:00", Hour),
        ("in an hour", "2026-11-24T11:00:00+08:00", Hour),
        ("in half an hour", "2026-11-24T10:30:00+08:00", Minute),
        ("2 days later", "2026-11-26T09:00:00+08:00", Day),
        ("3 days from now", "2026-11-27T09:00:00+08:00", Day),
        ("end of month", "2026-11-30T09:00:00+08:00", Month),
        ("end of the month", "2026-11-30T09:00:00+08:00", Month),
        ("end of this month", "2026-11-30T09:00:00+08:00", Month),
        ("eom", "2026-11-30T09:00:00+08:00", Month),
        ("EOM", "2026-11-30T09:00:00+08:00", Month),
        ("next month", "2026-12-01T09:00:00+08:00", Month),
        ("end of next month", "2026-12-31T09:00:00+08:00", Month),
        ("start of next month", "2026-12-01T09:00:00+08:00", Month),
        ("end of year", "2026-12-31T09:00:00+08:00", Month),
        ("Dec 3", "2026-12-03T09:00:00+08:00", Day),
        ("December 3", "2026-12-03T09:00:00+08:00", Day),
        ("3 Dec", "2026-12-03T09:00:00+08:00", Day),
        ("Dec 3rd", "2026-12-03T09:00:00+08:00", Day),
        ("Dec. 3", "2026-12-03T09:00:00+08:00", Day),
        ("3rd of December", "2026-12-03T09:00:00+08:00", Day),
        ("Jan 5", "2027-01-05T09:00:00+08:00", Day),
        ("May 3", "2027-05-03T09:00:00+08:00", Day),
        ("may 3 at 3pm", "2027-05-03T15:00:00+08:00", Minute),
        ("December 25, 2026", "2026-12-25T09:00:00+08:00", Day),
        ("at 3pm", "2026-11-24T15:00:00+08:00", Minute),
        ("3pm", "2026-11-24T15:00:00+08:00", Minute),
        ("3 pm", "2026-11-24T15:00:00+08:00", Minute),
        ("3PM", "2026-11-24T15:00:00+08:00", Minute),
        ("3 p.m.", "2026-11-24T15:00:00+08:00", Minute),
        ("3:30pm", "2026-11-24T15:30:00+08:00", Minute),
        ("10:30 am", "2026-11-24T10:30:00+08:00", Minute),
        ("9am", "2026-11-24T09:00:00+08:00", Minute),
        ("12pm", "2026-11-24T12:00:00+08:00", Minute),
        ("12am", "2026-11-24T00:00:00+08:00", Minute),
        ("noon", "2026-11-24T12:00:00+08:00", Minute),
        ("midnight", "2026-11-25T00:00:00+08:00", Minute),
        ("at 3", "2026-11-24T15:00:00+08:00", Minute),
        ("at 10", "2026-11-24T10:00:00+08:00", Minute),
        ("at noon", "2026-11-24T12:00:00+08:00", Minute),
        ("at 3 o'clock", "2026-11-24T15:00:00+08:00", Minute),
        ("at 10:30", "2026-11-24T10:30:00+08:00", Minute),
        ("tomorrow 3pm", "2026-11-25T15:00:00+08:00", Minute),
        ("Tomorrow at 3pm", "2026-11-25T15:00:00+08:00", Minute),
        ("tomorrow 2 pm", "2026-11-25T14:00:00+08:00", Minute),
        ("tomorrow 3:30", "2026-11-25T15:30:00+08:00", Minute),
        ("tomorrow at 8", "2026-11-25T08:00:00+08:00", Minute),
        ("tomorrow noon", "2026-11-25T12:00:00+08:00", Minute),
        ("next wed 10:00", "2026-12-02T10:00:00+08:00", Minute),
        ("fri 4pm", "2026-11-27T16:00:00+08:00", Minute),
        ("tue 3pm", "2026-11-24T15:00:00+08:00", Minute),
        ("next fri 9am", "2026-12-04T09:00:00+08:00", Minute),
        ("monday 9:30am", "2026-11-30T09:30:00+08:00", Minute),
        ("friday at noon", "2026-11-27T12:00:00+08:00", Minute),
        ("3pm tomorrow", "2026-11-25T15:00:00+08:00", Minute),
        ("10am on friday", "2026-11-27T10:00:00+08:00", Minute),
        ("on Dec 3 at 10am", "2026-12-03T10:00:00+08:00", Minute),
        ("Dec 3 at 2:30pm", "2026-12-03T14:30:00+08:00", Minute),
        ("tomorrow morning", "2026-11-25T09:00:00+08:00", Hour),
        ("tomorrow afternoon", "2026-11-25T15:00:00+08:00", Hour),
        ("tomorrow evening", "2026-11-25T20:00:00+08:00", Hour),
        ("tomorrow night", "2026-11-25T20:00:00+08:00", Hour),
        ("Friday morning", "2026-11-27T09:00:00+08:00", Hour),
        ("this afternoon", "2026-11-24T15:00:00+08:00", Hour),
        ("tonight at 8", "2026-11-24T20:00:00+08:00", Minute),
        ("tonight 9pm", "2026-11-24T21:00:00+08:00", Minute),
    ];

    fn check(table: &[(&str, &str, Granularity)]) -> Vec<String> {
        let mut fails = Vec::new();
        for &(input, want, gran) in table {
            match parse_when(input, now()) {
                Ok(w) if w.at.to_rfc3339() == want && w.granularity == gran => {}
                other => fails.push(format!("{input:?}: want {want} {gran:?}, got {other:?}")),
            }
        }
        fails
    }

    #[test]
    fn table_zh() {
        let fails = check(ZH);
        assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
    }

    #[test]
    fn table_en() {
        let fails = check(EN);
        assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
    }

    #[test]
    fn table_is_big_and_distinct() {
        let mut all: Vec<&str> = ZH.iter().chain(EN).map(|c| c.0).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate inputs in the tables");
        assert!(ZH.len() >= 100 && EN.len() >= 50 && n >= 170, "zh {} en {}", ZH.len(), EN.len());
    }

    #[test]
    fn explicit_time_flag() {
        let cases = [
            ("下午3点", true),
            ("3pm", true),
            ("15:00", true),
            ("下午", false),
            ("今晚", false),
            ("明天", false),
            ("月底", false),
            ("tonight", false),
            ("in 2 hours", true),
            ("半小时后", true),
            ("3天后", false),
        ];
        for (input, want) in cases {
            let w = parse_when(input, now()).expect(input);
            assert_eq!(w.explicit_time, want, "{input}");
        }
    }

    #[test]
    fn errors() {
        let invalid = [
            ("2月30日", "2月30日 does not exist"),
            ("13月5日", "13月5日 does not exist"),
            ("99999999月5日", "99999999月5日 does not exist"),
            ("2026-02-30", "2026-02-30 does not exist"),
            ("Feb 30", "Feb 30 does not exist"),
            ("2/30", "2/30 does not exist"),
            ("31号", "31号 does not exist in 2026-11"),
            ("25点", "25点 is not a valid time"),
            ("下午3点70分", "3点70分 is not a valid time"),
            ("15pm", "15pm is not a valid time"),
            ("明天25:00", "25:00 is not a valid time"),
        ];
        for (input, msg) in invalid {
            assert_eq!(parse_when(input, now()), Err(WhenError::Invalid(msg.to_string())), "{input}");
        }
        let not_time = [
            "",
            "   ",
            "hello",
            "5万",
            "13800000000",
            "#12",
            "50k",
            "1.2万元",
            "3个人",
            "二期需求",
            "周",
            "3",
            "99999999月",
            "明天见",
            "下周三下午再跟进",
            "一点",
            "早上好",
            "good morning",
            "in a minute",
            "at",
            "3月后",
            "12-3",
        ];
        for input in not_time {
            assert_eq!(parse_when(input, now()), Err(WhenError::NotATime), "{input:?}");
        }
        // Holidays beyond the hard-coded table.
        let late = at(Tz::Asia__Shanghai, 2036, 3, 1, 10, 0);
        assert!(matches!(parse_when("春节", late), Err(WhenError::Invalid(_))));
        assert_eq!(parse_when("元旦", late).map(|w| w.at.to_rfc3339()), Ok("2037-01-01T09:00:00+08:00".to_string()));
        // Trailing punctuation is fine.
        assert!(parse_when("明天下午3点。", now()).is_ok());
        // Weak weekday abbreviations parse alone but are not picked out of running text.
        assert!(parse_when("sat", now()).is_ok());
    }

    #[test]
    fn find_time_in_messages() {
        let found: &[(&str, &str, &str, Granularity)] = &[
            ("拜访 海尔 聊了报价，对方嫌贵，下周三下午再跟进", "下周三下午", "2026-12-02T15:00:00+08:00", Hour),
            ("call acme tomorrow 3pm", "tomorrow 3pm", "2026-11-25T15:00:00+08:00", Minute),
            ("今天下午聊了，客户说明天再定", "今天下午", "2026-11-24T15:00:00+08:00", Hour),
            ("电话 13800000000 明天打", "明天", "2026-11-25T09:00:00+08:00", Day),
            ("50k deal, follow up next monday", "next monday", "2026-11-30T09:00:00+08:00", Day),
            ("约了周五下午4点见面", "周五下午4点", "2026-11-27T16:00:00+08:00", Minute),
            ("12月3号上午10点 演示", "12月3号上午10点", "2026-12-03T10:00:00+08:00", Minute),
            ("2月30日交付不了，明天确认", "明天", "2026-11-25T09:00:00+08:00", Day),
            ("后天9:30开会", "后天9:30", "2026-11-26T09:30:00+08:00", Minute),
            ("meet them on Friday at 3pm re: pricing", "on Friday at 3pm", "2026-11-27T15:00:00+08:00", Minute),
            ("send the quote in 2 hours", "in 2 hours", "2026-11-24T12:00:00+08:00", Hour),
            ("交付日期 2026-12-03 确认", "2026-12-03", "2026-12-03T09:00:00+08:00", Day),
            ("回访 28号", "28号", "2026-11-28T09:00:00+08:00", Day),
            ("3天后回电", "3天后", "2026-11-27T09:00:00+08:00", Day),
            ("约 12/3 见", "12/3", "2026-12-03T09:00:00+08:00", Day),
            ("下周再聊", "下周", "2026-11-30T09:00:00+08:00", Day),
            ("Call Acme at 10:30 about renewal", "at 10:30", "2026-11-24T10:30:00+08:00", Minute),
            ("商机 #12 金额 12万，月底前签", "月底", "2026-11-30T09:00:00+08:00", Month),
            ("客户说春节后再说", "春节", "2027-02-06T09:00:00+08:00", Day),
            ("需求评审 明早8点 会议室A", "明早8点", "2026-11-25T08:00:00+08:00", Minute),
            ("王总：下午三点半到，带合同", "下午三点半", "2026-11-24T15:30:00+08:00", Minute),
            ("sat down with acme, demo fri 4pm", "fri 4pm", "2026-11-27T16:00:00+08:00", Minute),
            ("有三点建议，明天讨论", "明天", "2026-11-25T09:00:00+08:00", Day),
            ("ping them in half an hour", "in half an hour", "2026-11-24T10:30:00+08:00", Minute),
            ("今晚8点前发方案", "今晚8点", "2026-11-24T20:00:00+08:00", Minute),
        ];
        let mut fails = Vec::new();
        for &(msg, span, want, gran) in found {
            match find_time(msg, now()) {
                Some((w, r))
                    if msg.get(r.clone()) == Some(span) && w.at.to_rfc3339() == want && w.granularity == gran => {}
                other => fails.push(format!("{msg:?}: want {span:?} {want} {gran:?}, got {other:?}")),
            }
        }
        let none = [
            "商机 #12 金额 12万",
            "客户预算5万，电话13800000000",
            "二期需求 3个人 1.2万元",
            "price is 50k, margin 3.5%",
            "能不能便宜一点",
            "有三点建议",
            "早上好 王总",
            "两周一次回访",
            "3号楼 2层",
            "sat down with acme",
            "may 3 people join the call?",
            "discount at 3 percent",
            "下午茶很好喝",
            "买了3日票",
            "版本 v2.5 已上线",
            "订单号 #2026",
            "报价 12-3 版本",
            "",
        ];
        for msg in none {
            if let Some(got) = find_time(msg, now()) {
                fails.push(format!("{msg:?}: want nothing, got {got:?}"));
            }
        }
        assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
        // Byte range points into the original string.
        let msg = "拜访 海尔 聊了报价，对方嫌贵，下周三下午再跟进";
        let (_, r) = find_time(msg, now()).expect("found");
        let start = msg.find("下周三下午").expect("present");
        assert_eq!(r, start..start + "下周三下午".len());
    }

    #[test]
    fn dst_new_york() {
        let ny = Tz::America__New_York;
        let before_spring = at(ny, 2026, 3, 7, 10, 0);
        let rfc = |s: &str, now| parse_when(s, now).map(|w| w.at.to_rfc3339());
        assert_eq!(rfc("tomorrow 3pm", before_spring), Ok("2026-03-08T15:00:00-04:00".to_string()));
        assert_eq!(rfc("tomorrow", before_spring), Ok("2026-03-08T09:00:00-04:00".to_string()));
        assert_eq!(rfc("today 3pm", before_spring), Ok("2026-03-07T15:00:00-05:00".to_string()));
        // 02:30 does not exist on 2026-03-08: falls forward by the gap.
        assert_eq!(rfc("tomorrow 2:30am", before_spring), Ok("2026-03-08T03:30:00-04:00".to_string()));
        // Exact offsets are absolute: 24 hours across the gap is 11:00 local.
        assert_eq!(rfc("in 24 hours", before_spring), Ok("2026-03-08T11:00:00-04:00".to_string()));
        // 01:30 happens twice on 2026-11-01: the earlier one.
        let before_fall = at(ny, 2026, 10, 31, 10, 0);
        assert_eq!(rfc("tomorrow 1:30am", before_fall), Ok("2026-11-01T01:30:00-04:00".to_string()));
        assert_eq!(rfc("明天下午3点", before_fall), Ok("2026-11-01T15:00:00-05:00".to_string()));
    }

    /// Small deterministic generator for the robustness test.
    fn lcg(state: &mut u64) -> usize {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        usize::try_from(*state >> 33).unwrap_or(0)
    }

    #[test]
    fn never_panics() {
        let long = "下周三下午3点".repeat(1500);
        let long_digits = "9".repeat(10_000);
        let mut inputs: Vec<String> = [
            "",
            " ",
            "\u{0}",
            "\u{7}\u{1b}[31m",
            "\r\n\t",
            "😀",
            "👨‍👩‍👧‍👦明天",
            "明天😀3点",
            "\u{200b}明天\u{200b}",
            "99999999月",
            "99999999月99999999日",
            "25点",
            "2月30号",
            "2月29日",
            "0月0日",
            "12月0号",
            "0号",
            "32号",
            "周0",
            "周8",
            "星期十",
            "十十点",
            "二十二十点",
            "一二三四五六七八九十点",
            "99999999天后",
            "4294967295个月后",
            "99999999999999999999年后",
            "in 99999999 years",
            "in 4294967295 hours",
            "9999-99-99",
            "0000-01-01",
            "2026/13/45",
            "12/",
            "/3",
            ":",
            "：",
            "3:",
            ":30",
            "3:3",
            "12:345",
            "at",
            "at at at",
            "in",
            "in half",
            "in half a",
            "on",
            "on on",
            "next",
            "next next",
            "end of",
            "the day",
            "day after",
            "p.",
            "3 p.",
            "3 a.m",
            "点",
            "点半",
            "时",
            "号",
            "月",
            "月月月",
            "下下下下周",
            "下个",
            "周末末",
            "年底底",
            "中秋节节",
            "元旦旦",
            "五一一",
            "十",
            "两",
            "半",
            "半个",
            "个半小时后",
            "Dec",
            "Dec 99",
            "99 Dec",
            "Dec 0",
            "0 Dec",
            "Dec 31, 99999",
            "3rd",
            "of December",
            "noon noon",
            "midnight at",
            "\u{ffff}\u{10ffff}",
            "１２月３１日２４：００",
            "０点０分",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push(long);
        inputs.push(long_digits);
        inputs.push("a".repeat(10_000));
        inputs.push("，".repeat(5_000));
        // Random soups of grammar fragments.
        let parts = [
            "明天", "下午", "3", "点", "半", "周", "五", "下", "月", "日", "号", "十", "二", "天", "后", "个", "小时",
            "/", ":", "-", ".", " ", "at", "pm", "am", "in", "next", "fri", "dec", "of", "the", "end", "month", "2026",
            "99", "#", "，", "😀", "晚上", "凌晨", "元旦", "春节", "五一", "刻", "分", "时", "０", "９", "：", "on",
            "day",
        ];
        let mut state = 42u64;
        for _ in 0..3000 {
            let n = lcg(&mut state) % 8 + 1;
            let s: String = (0..n).filter_map(|_| parts.get(lcg(&mut state) % parts.len()).copied()).collect();
            inputs.push(s);
        }
        let nows = [
            now(),
            at(Tz::America__New_York, 2026, 3, 8, 1, 59),
            at(Tz::UTC, 2026, 2, 28, 23, 59),
            at(Tz::Pacific__Kiritimati, 2026, 12, 31, 23, 59),
            at(Tz::UTC, 262_000, 12, 31, 23, 0),
            at(Tz::UTC, -262_000, 1, 1, 0, 0),
            Tz::Pacific__Kiritimati.from_utc_datetime(&chrono::NaiveDateTime::MAX),
            Tz::Pacific__Pago_Pago.from_utc_datetime(&chrono::NaiveDateTime::MIN),
        ];
        for now in nows {
            for s in &inputs {
                let _ = parse_when(s, now);
                if let Some((_, r)) = find_time(s, now) {
                    assert!(s.get(r.clone()).is_some_and(|t| !t.is_empty()), "bad range {r:?} in {s:?}");
                }
            }
        }
    }

    /// Rough speed check: `cargo test --release -- --ignored --nocapture bench`.
    #[test]
    #[ignore]
    fn bench_find_time() {
        let long = "客户说价格偏高，需要再内部讨论一下，".repeat(500);
        let msgs = [
            "拜访海尔聊了报价，对方嫌贵，下周三下午再跟进",
            "call acme tomorrow 3pm about renewal",
            "商机 #12 金额 12万，客户说下个月再看",
            "拜访海尔，聊了二期需求和报价，对方嫌贵，预算只有5万，3个人参与，电话13800000000",
            long.as_str(),
        ];
        let n = 1_000_000;
        for msg in msgs {
            let t = std::time::Instant::now();
            let mut hits = 0usize;
            for _ in 0..n {
                hits += usize::from(find_time(std::hint::black_box(msg), now()).is_some());
            }
            let ns = t.elapsed().as_nanos() / n;
            let label: String = msg.chars().take(40).collect();
            println!("{label:?} ({} chars): {ns} ns/call, hits {hits}", msg.chars().count());
        }
    }
}
