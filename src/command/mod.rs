//! Chat text → [`Command`]. Trigger words, help and examples come from `bot-commands/`; this module
//! holds each command's argument grammar. Pure: no I/O; "now" and the org's time zone come in.

pub mod amount;
pub mod bench;
mod fields;
mod lead_admin;
pub mod refs;
pub mod spec;
pub mod when;

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde::Serialize;

use crate::crm::{ActivityKind, Grade, Lang, LostReason};
use fields::Fields;
pub use lead_admin::RuleAction;
use refs::halfwidth;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FollowUp {
    pub at: DateTime<FixedOffset>,
    pub title: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Won,
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Me,
    Team,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
}

/// One parsed message. Serialises to the stable JSON of `chatcrm parse --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    LogActivity {
        kind: ActivityKind,
        customer: String,
        content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        occurred_at: Option<DateTime<FixedOffset>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        follow_up: Option<FollowUp>,
    },
    CreateCustomer {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        industry: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        grade: Option<Grade>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tags_add: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        contact: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
    ShowCustomer {
        customer: String,
    },
    UpdateCustomer {
        customer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        grade: Option<Grade>,
        #[serde(skip_serializing_if = "Option::is_none")]
        industry: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tags_add: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tags_remove: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    MyCustomers {
        #[serde(skip_serializing_if = "Option::is_none")]
        grade: Option<Grade>,
    },
    CreateDeal {
        customer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        stage: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expected_close: Option<NaiveDate>,
    },
    UpdateDeal {
        deal: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        stage: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expected_close: Option<NaiveDate>,
    },
    CloseDeal {
        deal: i64,
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<LostReason>,
    },
    CreateLead {
        company: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        contact: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        industry: Option<String>,
    },
    AssignLead {
        lead: i64,
        to: String,
    },
    ClaimLead {
        lead: i64,
    },
    ConvertLead {
        lead: i64,
    },
    /// The public pool's claimable leads.
    Pool,
    /// A rep moves their lead along: contacted, qualified, discarded, or back to the pool.
    LeadStatus {
        lead: i64,
        status: crate::crm::LeadStatus,
        /// Why it was discarded or released, as written.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Assignment rules: list, create, delete, disable, enable (managers and admins).
    Rules {
        #[serde(flatten)]
        action: RuleAction,
    },
    /// A monthly sales target for a user (`None`: oneself); `amount` None clears it. `month` is
    /// `this`, `next`, a month number or `YYYY-MM`.
    SetTarget {
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        amount: Option<i64>,
        month: String,
    },
    /// A user goes on leave (rules skip them) or comes back.
    Leave {
        user: String,
        on_leave: bool,
    },
    CreateReminder {
        at: DateTime<FixedOffset>,
        title: String,
    },
    Today,
    CompleteTask {
        task: i64,
    },
    SnoozeTask {
        task: i64,
        until: DateTime<FixedOffset>,
    },
    Pipeline {
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
    },
    Digest {
        period: Period,
    },
    Undo,
    Help {
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    Select {
        choice: usize,
    },
    Unknown {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        suggestion: Option<String>,
    },
}

impl Command {
    /// The canonical name (the `command` field of the JSON).
    pub fn name(&self) -> &'static str {
        match self {
            Command::LogActivity { .. } => "log_activity",
            Command::CreateCustomer { .. } => "create_customer",
            Command::ShowCustomer { .. } => "show_customer",
            Command::UpdateCustomer { .. } => "update_customer",
            Command::MyCustomers { .. } => "my_customers",
            Command::CreateDeal { .. } => "create_deal",
            Command::UpdateDeal { .. } => "update_deal",
            Command::CloseDeal { .. } => "close_deal",
            Command::CreateLead { .. } => "create_lead",
            Command::AssignLead { .. } => "assign_lead",
            Command::ClaimLead { .. } => "claim_lead",
            Command::ConvertLead { .. } => "convert_lead",
            Command::Pool => "pool",
            Command::LeadStatus { .. } => "lead_status",
            Command::Rules { .. } => "rules",
            Command::Leave { .. } => "leave",
            Command::SetTarget { .. } => "set_target",
            Command::CreateReminder { .. } => "create_reminder",
            Command::Today => "today",
            Command::CompleteTask { .. } => "complete_task",
            Command::SnoozeTask { .. } => "snooze_task",
            Command::Pipeline { .. } => "pipeline",
            Command::Digest { .. } => "digest",
            Command::Undo => "undo",
            Command::Help { .. } => "help",
            Command::Select { .. } => "select",
            Command::Unknown { .. } => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub command: Command,
    pub lang: Lang,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The command was recognised but its arguments are missing or malformed; `detail` says
    /// which, in both languages.
    #[error("usage of {command}")]
    Usage { command: &'static str, lang: Lang, detail: Option<(String, String)> },
    #[error("empty message")]
    Empty,
}

/// Longest accepted message; chat platforms cap theirs well below this.
pub const MAX_TEXT_CHARS: usize = 4000;

pub(crate) fn is_sep(c: char) -> bool {
    c.is_whitespace() || matches!(halfwidth(c), ':' | ',' | ';' | '.' | '!' | '?') || matches!(c, '、' | '。')
}

pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Chinese when the text has any Chinese character; English otherwise.
pub fn detect_lang(text: &str) -> Lang {
    if text.chars().any(is_cjk) { Lang::Zh } else { Lang::En }
}

struct TriggerRef {
    word: Vec<char>,
    spec: &'static spec::Spec,
    set: &'static std::collections::BTreeMap<String, String>,
}

fn triggers() -> &'static [TriggerRef] {
    static T: std::sync::OnceLock<Vec<TriggerRef>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut all: Vec<TriggerRef> = spec::specs()
            .iter()
            .flat_map(|s| {
                s.triggers.iter().flat_map(move |t| {
                    t.words.iter().map(move |w| TriggerRef {
                        word: w.chars().map(|c| halfwidth(c).to_ascii_lowercase()).collect(),
                        spec: s,
                        set: &t.set,
                    })
                })
            })
            .collect();
        // Longest first, so 新客户 wins over 客户 and "my customers" over "customer".
        all.sort_by_key(|t| std::cmp::Reverse(t.word.len()));
        all
    })
}

/// Words people put before the command, especially when dictating: stripped before matching.
const FILLERS: &[&str] = &[
    "嗯", "呃", "啊", "额", "那个", "就是", "然后", "刚才", "刚刚", "刚", "我", "我们", "去", "帮我", "请", "麻烦",
    "ok", "okay", "um", "uh", "so", "please", "pls", "hey", "i", "just", "bot",
];

/// Asking to see something, or 把 before the object: "看一下漏斗", "把客户 海尔 转给 @王芳".
const LEAD_INS: &[&str] = &["把", "看一下", "看下", "看看", "查一下", "查下", "查看"];

/// Words after an activity trigger that carry no meaning: 拜访了, 拜访了一下.
const ACTIVITY_PARTICLES: &[&str] = &["了一下", "了下", "了", "一下", "过"];

pub fn parse(text: &str, now: DateTime<Tz>) -> Result<Parsed, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    let original: Vec<char> = trimmed.chars().take(MAX_TEXT_CHARS).collect();
    let norm: Vec<char> = original.iter().map(|c| halfwidth(*c).to_ascii_lowercase()).collect();
    let lang = detect_lang(trimmed);

    if let Some(choice) = selection(&norm) {
        return Ok(Parsed { command: Command::Select { choice }, lang });
    }

    // A message that is exactly a command word, even one made of punctuation ("?").
    if let Some((t, n)) = match_trigger(&norm)
        && n == norm.len()
    {
        let lang = trigger_lang(t, lang);
        return build(t, "", lang, now, None).map(|command| Parsed { command, lang });
    }

    // Try the command word at the start; then after a leading time ("昨天拜访了海尔") or fillers.
    // Some people type "/help" out of habit from other bots.
    let mut start = skip_seps(&norm, usize::from(norm.first() == Some(&'/')));
    let mut leading_time: Option<when::When> = None;
    for _ in 0..6 {
        if start >= norm.len() {
            break;
        }
        // The record first, then the verb: "线索 #34 转客户", "任务5 推迟到明天", "#5 搞定了".
        if let Some((t, id, n)) = record_then_verb(&norm[start..]) {
            let lang = trigger_lang(t, lang);
            let rest: String = original[start + n..].iter().collect();
            let rest = format!("#{id} {rest}");
            return build(t, &rest, lang, now, leading_time).map(|command| Parsed { command, lang });
        }
        // The customer before the verb: "给美的打了电话，确认了报价单", "跟海尔开了个会，…".
        if let Some((t, customer, n)) = customer_then_activity(&original[start..], &norm[start..]) {
            let rest: String = original[start + n..].iter().collect();
            let rest = format!("{customer} {rest}");
            return build(t, &rest, Lang::Zh, now, leading_time).map(|command| Parsed { command, lang: Lang::Zh });
        }
        // The person before the verb: "@李雷 休假", "@lilei is back".
        if let Some((t, who, n)) = mention_then_verb(&original[start..], &norm[start..]) {
            let lang = trigger_lang(t, lang);
            let rest: String = original[start + n..].iter().collect();
            let rest = format!("@{who} {rest}");
            return build(t, &rest, lang, now, leading_time).map(|command| Parsed { command, lang });
        }
        if let Some((t, n)) = match_trigger(&norm[start..]) {
            let lang = trigger_lang(t, lang);
            let rest: String = original[start + n..].iter().collect();
            // 今天 / 撤销 take no arguments: "今天下午拜访海尔…" is a time, then a command. Small
            // tails are allowed: 今天有什么事, 撤销一下, undo that.
            let bare_only = matches!(t.spec.name.as_str(), "today" | "undo");
            if !bare_only || bare_tail(&t.spec.name, &rest) {
                let rest = if bare_only { String::new() } else { rest };
                return build(t, &rest, lang, now, leading_time).map(|command| Parsed { command, lang });
            }
        }
        let s: String = norm[start..].iter().collect();
        if leading_time.is_none()
            && let Some((w, range)) = when::find_time(&s, now)
            && range.start == 0
        {
            leading_time = Some(w);
            start = skip_seps(&norm, start + s[..range.end].chars().count());
            continue;
        }
        let mut words = FILLERS.iter().chain(LEAD_INS);
        match words.find(|f| s.starts_with(*f) && filler_ends(&norm, start + f.chars().count(), f)) {
            Some(f) => start = skip_seps(&norm, start + f.chars().count()),
            None => break,
        }
    }
    Ok(Parsed { command: unknown(trimmed, &norm), lang })
}

/// Words that may follow 今天 / 撤销 without making them something else: "今天有什么事",
/// "撤销一下", "undo that". Anything else after 今天 is the start of a sentence ("今天天气不错").
fn bare_tail(name: &str, rest: &str) -> bool {
    const TODAY: &[&str] = &[
        "有什么任务",
        "有什么事",
        "有什么安排",
        "有啥事",
        "要做什么",
        "要干什么",
        "做什么",
        "干什么",
        "的任务",
        "任务",
        "的待办",
        "待办",
        "的安排",
        "安排",
        "的",
        "吗",
        "呢",
        "啊",
        "plan",
        "tasks",
    ];
    const UNDO: &[&str] =
        &["刚才那条", "刚才的", "上一步", "上一条", "那条", "一下", "吧", "了", "last", "that", "it", "please", "pls"];
    let tails = if name == "today" { TODAY } else { UNDO };
    let lower = rest.to_lowercase();
    let mut r = lower.trim_matches(is_sep);
    loop {
        if r.is_empty() {
            return true;
        }
        match tails.iter().find_map(|t| r.strip_prefix(t)) {
            Some(tail) => r = tail.trim_matches(is_sep),
            None => return false,
        }
    }
}

/// Commands that act on one record, by the words that name its kind.
const RECORD_VERBS: &[(&[&str], &[&str])] = &[
    (&["线索", "lead"], &["assign_lead", "claim_lead", "convert_lead", "lead_status"]),
    (&["商机", "deal"], &["close_deal"]),
    (&["任务", "task"], &["complete_task", "snooze_task"]),
];

/// `[把] <kind word> <number> <verb>` or `#<number> <verb>`: a reference to an existing record
/// before the command word ("线索 #34 转客户", "任务5 推迟到明天", "#5 搞定了", "deal #12 won").
/// Returns the verb's trigger, the number and where the verb's arguments start.
fn record_then_verb(norm: &[char]) -> Option<(&'static TriggerRef, i64, usize)> {
    let mut i = usize::from(norm.first() == Some(&'把'));
    i = skip_seps(norm, i);
    let kind = RECORD_VERBS.iter().find_map(|(words, verbs)| {
        words.iter().find_map(|w| {
            let w: Vec<char> = w.chars().collect();
            norm[i..].starts_with(&w).then_some((w.len(), *verbs))
        })
    });
    let mut allowed: Vec<&str> = RECORD_VERBS.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    if let Some((n, verbs)) = kind {
        i = skip_seps(norm, i + n);
        allowed = verbs.to_vec();
    }
    let hash = matches!(norm.get(i), Some('#'));
    if kind.is_none() && !hash {
        return None;
    }
    i += usize::from(hash);
    let digits = norm[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 12 {
        return None;
    }
    let id: i64 = norm[i..i + digits].iter().collect::<String>().parse().ok().filter(|n| *n > 0)?;
    i = skip_seps(norm, i + digits);
    let (t, n) = match_trigger(&norm[i..])?;
    allowed.contains(&t.spec.name.as_str()).then_some((t, id, i + n))
}

/// Longest @mention read before a verb ("@李雷 休假"); handles are at most 32 characters.
const MENTION_MAX_CHARS: usize = 32;

/// `@<who> [is|已经] <verb>` for the commands that act on a person (leave): the verb's trigger,
/// the person (as written, without `@`) and where the verb's arguments start. The verb may be
/// glued to the name ("@李雷休假").
fn mention_then_verb(original: &[char], norm: &[char]) -> Option<(&'static TriggerRef, String, usize)> {
    if norm.first() != Some(&'@') {
        return None;
    }
    let end = norm.iter().position(|c| is_sep(*c)).unwrap_or(norm.len());
    for i in 2..=end.min(MENTION_MAX_CHARS + 1) {
        let mut j = if i == end { skip_seps(norm, end) } else { i };
        for word in ["is", "已经", "开始"] {
            let w: Vec<char> = word.chars().collect();
            let glued_ok = !word.is_ascii() || norm.get(j + w.len()).is_some_and(|c| is_sep(*c));
            if norm.get(j..j + w.len()) == Some(&w[..]) && glued_ok {
                j = skip_seps(norm, j + w.len());
                break;
            }
        }
        if let Some((t, n)) = match_trigger(&norm[j..])
            && t.spec.name == "leave"
        {
            let who: String = original.get(1..i)?.iter().collect();
            return Some((t, who, j + n));
        }
    }
    None
}

/// Chinese verb phrases that follow the customer in "给/跟/和 <customer> <verb>", by the trigger
/// word of the activity kind they mean.
const ACTIVITY_VERBS: &[(&str, &str)] = &[
    ("打了个电话", "电话"),
    ("打了电话", "电话"),
    ("打过电话", "电话"),
    ("打电话", "电话"),
    ("通了电话", "电话"),
    ("通电话", "电话"),
    ("开了个会", "会议"),
    ("开了会", "会议"),
    ("开会", "会议"),
    ("见了面", "见面"),
    ("见面", "见面"),
    ("发了微信", "微信"),
    ("发微信", "微信"),
    ("发了邮件", "邮件"),
    ("发了封邮件", "邮件"),
    ("发邮件", "邮件"),
];

/// `给|跟|和|同 <customer> <verb>…` within the first clause: the activity's trigger, the customer
/// (as written) and where what follows the verb starts.
fn customer_then_activity(original: &[char], norm: &[char]) -> Option<(&'static TriggerRef, String, usize)> {
    if !matches!(norm.first(), Some('给' | '跟' | '和' | '同')) {
        return None;
    }
    let clause = norm.iter().position(|c| is_sep(*c)).unwrap_or(norm.len());
    for i in 2..clause {
        for (verb, word) in ACTIVITY_VERBS {
            let verb: Vec<char> = verb.chars().collect();
            if i + verb.len() <= clause && norm[i..i + verb.len()] == verb[..] {
                let word: Vec<char> = word.chars().collect();
                let (t, _) = match_trigger(&word)?;
                let customer: String = original[1..i].iter().collect();
                // "给我打电话" is a request, not a record.
                let pronoun =
                    ["我", "你", "他", "她", "我们", "你们", "他们", "她们", "您"].contains(&customer.as_str());
                return (!pronoun).then_some((t, customer, i + verb.len()));
            }
        }
    }
    None
}

/// An English filler must end at a word boundary ("i" is not the start of "invite").
fn filler_ends(norm: &[char], end: usize, filler: &str) -> bool {
    !filler.is_ascii() || norm.get(end).is_none_or(|c| !c.is_ascii_alphanumeric())
}

fn skip_seps(norm: &[char], mut i: usize) -> usize {
    while norm.get(i).is_some_and(|c| is_sep(*c)) {
        i += 1;
    }
    i
}

/// "2", "２", "第2个", "第二个", "选1", "1号": an answer to "which one?".
fn selection(norm: &[char]) -> Option<usize> {
    let s: String = norm.iter().filter(|c| !c.is_whitespace()).collect();
    let s = s.trim_start_matches('第').trim_start_matches('选').trim_start_matches("no.").trim_start_matches('#');
    let s = s.trim_end_matches('个').trim_end_matches('号').trim_end_matches('.').trim_end_matches(')');
    if s.is_empty() || s.chars().count() > 2 {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let digits = "一二三四五六七八九";
    match s.chars().collect::<Vec<_>>().as_slice() {
        ['十'] => Some(10),
        [c] => digits.chars().position(|d| d == *c).map(|p| p + 1),
        _ => None,
    }
}

fn match_trigger(norm: &[char]) -> Option<(&'static TriggerRef, usize)> {
    for t in triggers() {
        let n = t.word.len();
        if norm.len() < n || norm[..n] != t.word[..] {
            continue;
        }
        // An English word must end at a boundary ("callback" is not "call"); Chinese needs none.
        let last_ascii = t.word.last().is_some_and(|c| c.is_ascii_alphanumeric());
        let boundary = !last_ascii || norm.get(n).is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary {
            return Some((t, n));
        }
    }
    None
}

/// The command word sets the language: "visit 海尔 ..." is an English speaker.
fn trigger_lang(t: &TriggerRef, fallback: Lang) -> Lang {
    if t.word.iter().any(|c| is_cjk(*c)) {
        Lang::Zh
    } else if t.word.iter().any(char::is_ascii_alphabetic) {
        Lang::En
    } else {
        fallback
    }
}

fn fixed(w: &when::When) -> DateTime<FixedOffset> {
    w.at.fixed_offset()
}

fn usage(name: &'static str, lang: Lang) -> ParseError {
    ParseError::Usage { command: name, lang, detail: None }
}

fn usage_because(name: &'static str, lang: Lang, zh: &str, en: &str) -> ParseError {
    ParseError::Usage { command: name, lang, detail: Some((zh.into(), en.into())) }
}

const PHONE_KEYS: &[&str] = &["电话号码", "手机号码", "手机号", "电话", "手机", "phone", "tel", "mobile"];

/// Words before a new stage: 推进到谈判, 进入谈判阶段, 阶段 报价, to negotiation.
const STAGE_KEYS: &[&str] = &[
    "阶段",
    "推进到",
    "推到",
    "进入",
    "进到",
    "到了",
    "改成",
    "改为",
    "转到",
    "到",
    "stage",
    "to",
    "move to",
    "moved to",
];

const REF_PREFIXES: &[&str] = &["商机", "线索", "任务", "deal", "lead", "task", "no."];

fn build(
    t: &TriggerRef,
    rest: &str,
    lang: Lang,
    now: DateTime<Tz>,
    leading_time: Option<when::When>,
) -> Result<Command, ParseError> {
    let name: &'static str = spec_name(&t.spec.name);
    let mut f = Fields::new(rest);
    let set = |k: &str| t.set.get(k).map(String::as_str);
    let take_ref = |f: &mut Fields| {
        f.take_token(|tok| refs::record_ref(tok, REF_PREFIXES)).or_else(|| f.take_ref_head(REF_PREFIXES))
    };
    let text_fields = |f: &mut Fields, keys: &[&str]| f.take_keyed(keys, |v| Some(v.to_string()));
    Ok(match name {
        "log_activity" => {
            let rest = strip_fillers(strip_particles(rest));
            let mut f = Fields::new(rest);
            let kind = set("kind").and_then(|k| k.parse().ok()).unwrap_or(ActivityKind::Note);
            let customer = f.take_first().ok_or_else(|| usage(name, lang))?;
            let mut occurred_at = leading_time.filter(|w| w.at <= now).map(|w| fixed(&w));
            let mut follow_up = None;
            let whole = strip_fillers(f.rest()).to_string();
            let mut content = whole.clone();
            if let Some((w, range)) = f.find_time(now) {
                let raw = f.raw();
                let before = strip_fillers(raw.get(..range.start).unwrap_or_default()).trim_matches(is_sep);
                let after = raw.get(range.end..).unwrap_or_default().trim_matches(is_sep);
                if w.at > now
                    && let Some((said, action)) = follow_up_split(before, after)
                {
                    let title = if action.is_empty() { default_follow_up(lang, &customer) } else { action };
                    follow_up = Some(FollowUp { at: fixed(&w), title });
                    // "约了周五下午见面" is all follow-up: then the whole sentence is what was said.
                    content = if said.is_empty() { whole } else { said.to_string() };
                } else if occurred_at.is_none() && before.is_empty() && w.at <= now {
                    // "拜访 海尔 昨天下午 聊了报价": when it happened.
                    occurred_at = Some(fixed(&w));
                    content = strip_fillers(after).to_string();
                }
            }
            if content.is_empty() {
                return Err(usage(name, lang));
            }
            Command::LogActivity { kind, customer, content, occurred_at, follow_up }
        }
        "show_customer" | "update_customer" => {
            let customer = f.take_first().ok_or_else(|| usage(name, lang))?;
            let grade = f.take_keyed(&["等级", "级别", "grade", "评级"], refs::grade).or_else(|| f.take_token(graded));
            let industry = text_fields(&mut f, &["行业", "industry"]);
            let region = text_fields(&mut f, &["地区", "区域", "城市", "region", "city"]);
            let source = text_fields(&mut f, &["来源", "渠道", "source"]);
            let to = owner_target(&mut f);
            f.take_word(&["标签", "tag", "tags"]);
            let tags_add: Vec<String> = take_all(&mut f, |t| tag_with(t, '+'));
            let tags_remove: Vec<String> = take_all(&mut f, |t| tag_with(t, '-'));
            let changes = grade.is_some()
                || industry.is_some()
                || region.is_some()
                || source.is_some()
                || to.is_some()
                || !tags_add.is_empty()
                || !tags_remove.is_empty();
            if !changes {
                if name == "update_customer" {
                    return Err(usage_because(
                        name,
                        lang,
                        "没有看到要改什么（等级、标签、行业、地区、来源、负责人）",
                        "nothing to change was given (grade, tags, industry, region, source, owner)",
                    ));
                }
                // Everything after the command word is the name: "customer Haier Smart Home".
                let customer = rest.trim_matches(is_sep).to_string();
                return Ok(Command::ShowCustomer { customer });
            }
            if !f.is_empty() {
                return Err(usage_because(
                    name,
                    lang,
                    &format!("看不懂「{}」", f.rest()),
                    &format!("could not understand `{}`", f.rest()),
                ));
            }
            Command::UpdateCustomer { customer, grade, industry, region, source, tags_add, tags_remove, to }
        }
        "create_customer" => {
            let grade = f.take_keyed(&["等级", "级别", "grade"], refs::grade).or_else(|| f.take_token(graded));
            let industry = text_fields(&mut f, &["行业", "industry"]);
            let region = text_fields(&mut f, &["地区", "区域", "城市", "region", "city"]);
            let source = text_fields(&mut f, &["来源", "渠道", "source"]);
            let phone = f.take_phone(PHONE_KEYS);
            let contact = text_fields(&mut f, &["联系人", "contact"]).or_else(|| f.take_token(contact_token));
            f.take_word(&["标签", "tag", "tags"]);
            let tags_add = take_all(&mut f, |t| tag_with(t, '+').or_else(|| tag_with(t, '#')));
            let name_text = f.rest().to_string();
            if name_text.is_empty() {
                return Err(usage(name, lang));
            }
            Command::CreateCustomer { name: name_text, industry, region, grade, source, tags_add, contact, phone }
        }
        "my_customers" => {
            let grade = f.take_keyed(&["等级", "grade"], refs::grade).or_else(|| f.take_token(graded));
            Command::MyCustomers { grade }
        }
        "create_deal" => {
            let customer = f.take_first().ok_or_else(|| usage(name, lang))?;
            let expected_close = take_close_date(&mut f, now);
            let amount = f.take_amount();
            let stage = f.take_keyed(&["阶段", "stage"], refs::stage).or_else(|| f.take_token(refs::stage));
            let title = Some(f.rest().to_string()).filter(|s| !s.is_empty());
            Command::CreateDeal { customer, title, amount, stage, expected_close }
        }
        "update_deal" => {
            let deal = take_ref(&mut f)
                .ok_or_else(|| usage_because(name, lang, "请写商机编号，例如 #12", "give the deal number, e.g. #12"))?;
            let expected_close = take_close_date(&mut f, now);
            let amount = f.take_amount();
            let stage = f.take_keyed(STAGE_KEYS, refs::stage).or_else(|| f.take_token(refs::stage));
            if amount.is_none() && stage.is_none() && expected_close.is_none() {
                return Err(usage_because(
                    name,
                    lang,
                    "没有看到要改什么（阶段、金额、预计成交日期）",
                    "nothing to change was given (stage, amount, expected close)",
                ));
            }
            Command::UpdateDeal { deal, stage, amount, expected_close }
        }
        "close_deal" => {
            let outcome = if set("outcome") == Some("lost") { Outcome::Lost } else { Outcome::Won };
            let deal = take_ref(&mut f)
                .ok_or_else(|| usage_because(name, lang, "请写商机编号，例如 #12", "give the deal number, e.g. #12"))?;
            let amount = f.take_amount();
            let reason = match outcome {
                Outcome::Lost => {
                    f.take_keyed(&["原因", "因为", "reason", "because"], refs::lost_reason).or_else(|| {
                        let r = refs::lost_reason(f.rest());
                        r.or_else(|| f.take_token(refs::lost_reason)).or_else(|| refs::lost_reason_in(f.rest()))
                    })
                }
                Outcome::Won => None,
            };
            Command::CloseDeal { deal, outcome, amount, reason }
        }
        "create_lead" => {
            let phone = f.take_phone(PHONE_KEYS);
            let source = text_fields(&mut f, &["来源", "渠道", "source", "from"]);
            let region = text_fields(&mut f, &["地区", "区域", "城市", "region", "city"]);
            let industry = text_fields(&mut f, &["行业", "industry"]);
            let contact = text_fields(&mut f, &["联系人", "contact"]);
            let company = f.take_first().ok_or_else(|| usage(name, lang))?;
            let contact = contact.or_else(|| f.take_token(contact_token)).or_else(|| f.take_first());
            Command::CreateLead { company, contact, phone, source, region, industry }
        }
        "assign_lead" => {
            let lead = take_ref(&mut f)
                .ok_or_else(|| usage_because(name, lang, "请写线索编号，例如 #34", "give the lead number, e.g. #34"))?;
            let to = f
                .take_keyed(&["分给", "交给", "给", "to"], |v| {
                    Some(v.trim_start_matches(['@', '＠']).to_string()).filter(|v| !v.is_empty())
                })
                .or_else(|| f.take_token(|t| refs::mention(t).map(str::to_string)))
                .or_else(|| f.take_first())
                .ok_or_else(|| {
                    usage_because(name, lang, "分配给谁？例如 给 @李雷", "assign to whom? e.g. to @lilei")
                })?;
            Command::AssignLead { lead, to }
        }
        "claim_lead" | "convert_lead" | "complete_task" => {
            let id = take_ref(&mut f).ok_or_else(|| usage(name, lang))?;
            match name {
                "claim_lead" => Command::ClaimLead { lead: id },
                "convert_lead" => Command::ConvertLead { lead: id },
                _ => Command::CompleteTask { task: id },
            }
        }
        "pool" => lead_admin::pool(rest, lang)?,
        "lead_status" => {
            let status = lead_admin::status_of(set("status")).ok_or_else(|| usage(name, lang))?;
            let lead = take_ref(&mut f).ok_or_else(|| lead_admin::no_lead_number(status, name, lang))?;
            f.take_word(&["线索", "lead", "the"]);
            let reason = lead_admin::status_reason(status, f.rest(), name, lang)?;
            Command::LeadStatus { lead, status, reason }
        }
        "rules" => Command::Rules { action: lead_admin::rules(rest, set("action"), lang)? },
        "leave" => lead_admin::leave(rest, set("on_leave"), lang)?,
        "set_target" => lead_admin::target(rest, lang)?,
        "snooze_task" => {
            let task = take_ref(&mut f).ok_or_else(|| usage(name, lang))?;
            // "推迟 #5 2天" / "snooze #5 2 hours": by that much from now.
            let until = match snooze_by(f.rest()) {
                Some(by) => now.fixed_offset() + by,
                None => fixed(&f.take_time(now).ok_or_else(|| {
                    usage_because(
                        name,
                        lang,
                        "推迟到什么时候？例如 到明天下午3点，或 2天",
                        "until when? e.g. until tomorrow 3pm, or 2 days",
                    )
                })?),
            };
            Command::SnoozeTask { task, until }
        }
        "create_reminder" => {
            let at = leading_time.or_else(|| f.take_time(now)).ok_or_else(|| {
                usage_because(name, lang, "什么时候提醒？例如 明天下午3点", "when? e.g. tomorrow 3pm")
            })?;
            f.take_word(&["我", "me", "to", "that"]);
            // 提醒我一下明天… : the particle is not part of what to remember.
            let title = f.rest();
            let title = title.strip_prefix("一下").unwrap_or(title).trim_matches(is_sep).to_string();
            if title.is_empty() {
                return Err(usage_because(name, lang, "提醒什么事？", "remind you of what?"));
            }
            Command::CreateReminder { at: fixed(&at), title }
        }
        "pipeline" => {
            let scope = match set("scope") {
                Some("team") => Some(Scope::Team),
                Some("me") => Some(Scope::Me),
                _ if f.take_word(&["团队", "team", "全组", "组"]) => Some(Scope::Team),
                _ if f.take_word(&["我的", "我", "my", "mine", "me"]) => Some(Scope::Me),
                _ => None,
            };
            Command::Pipeline { scope }
        }
        "digest" => {
            // A word after the command says which ("digest week"); else the command word does.
            let period = if f.take_word(&["周", "本周", "这周", "week", "weekly"]) {
                Period::Week
            } else if f.take_word(&["日", "今天", "今日", "day", "daily", "today"]) {
                Period::Day
            } else if set("period") == Some("week") {
                Period::Week
            } else {
                Period::Day
            };
            Command::Digest { period }
        }
        "today" | "undo" => {
            if !f.is_empty() && name == "today" {
                return Err(usage(name, lang));
            }
            if name == "today" { Command::Today } else { Command::Undo }
        }
        "help" => {
            let topic = f.rest();
            let topic = if topic.is_empty() {
                None
            } else {
                Some(find_spec(topic).map_or_else(|| topic.to_string(), |s| s.name.clone()))
            };
            Command::Help { topic }
        }
        _ => return Err(usage("help", lang)),
    })
}

/// Words that make a future time in a visit note a follow-up ("下周三下午再跟进"), rather than
/// part of what was said ("wants a demo next week").
const FOLLOW_UP_AFTER: &[&str] = &[
    "再跟进",
    "跟进",
    "回访",
    "再联系",
    "联系",
    "再去",
    "再约",
    "再打",
    "打电话",
    "电话",
    "拜访",
    "见面",
    "提醒",
    "复查",
    "确认",
    "发方案",
    "发报价",
    "出方案",
    "发合同",
    "送样",
    "演示",
    "再聊",
    "再谈",
    "再沟通",
    "沟通",
    "回电话",
    "回电",
    "follow up",
    "follow-up",
    "followup",
    "call back",
    "call",
    "visit",
    "check in",
    "again",
    "remind",
];
const FOLLOW_UP_BEFORE: &[&str] =
    &["约了", "约好", "约在", "约", "定在", "下次", "next step", "follow up", "follow-up"];

/// English puts the action before the time: "no answer, call back tomorrow 3pm". The last clause
/// of what comes before the time, when it is one of these (after "then", "will", "to"…).
const FOLLOW_UP_LEAD_INS: &[&str] = &["and then ", "then ", "and ", "will ", "i'll ", "we'll ", "need to ", "to "];
const FOLLOW_UP_OBJECTS: &[&str] = &["", " again", " them", " him", " her"];

/// Splits a visit note around a future time into (what was said, the follow-up's title) when the
/// time is a follow-up ("聊了报价，下周三下午再跟进", "talked pricing, follow up in 3 days") rather
/// than part of what was said ("wants a demo next week"). The title may be empty (then a default).
fn follow_up_split<'a>(before: &'a str, after: &str) -> Option<(&'a str, String)> {
    let after_l = after.trim_start_matches(is_sep).to_lowercase();
    // "半小时后给他回电话": who it is for does not change what it is.
    let after_l = ["给他", "给她", "给对方", "给客户", "和他", "跟他", "跟对方", "和对方"]
        .iter()
        .find_map(|p| after_l.strip_prefix(p))
        .map_or(after_l.clone(), str::to_string);
    let before_l = before.trim_end_matches(is_sep).to_lowercase();
    let after_word = FOLLOW_UP_AFTER.iter().any(|w| after_l.starts_with(w) || after_l.starts_with(&format!("再{w}")));
    let before_word = FOLLOW_UP_BEFORE.iter().any(|w| before_l.ends_with(w));
    if after_word || before_word {
        return Some((strip_follow_up_before(before), after.to_string()));
    }
    // English: "…, call back tomorrow 3pm".
    let clause_start = before
        .rfind(|c: char| matches!(halfwidth(c), ',' | ';' | '.') || c == '。')
        .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8));
    let clause = before[clause_start..].trim();
    let mut action = clause.to_lowercase();
    for lead in FOLLOW_UP_LEAD_INS {
        if let Some(a) = action.strip_prefix(lead) {
            action = a.to_string();
        }
    }
    let is_action = FOLLOW_UP_AFTER
        .iter()
        .filter(|w| w.is_ascii())
        .any(|w| FOLLOW_UP_OBJECTS.iter().any(|o| action == format!("{w}{o}")));
    if !is_action || !clause.is_ascii() {
        return None;
    }
    let title = clause[clause.len() - action.len()..].to_string();
    let title = if after.is_empty() { title } else { format!("{title} {after}") };
    Some((before[..clause_start].trim_matches(is_sep), title))
}

/// "聊了报价，约了" → "聊了报价": the words that introduce the follow-up are not content.
fn strip_follow_up_before(before: &str) -> &str {
    fn strip<'a>(b: &'a str, w: &str) -> Option<&'a str> {
        let cut = b.len().checked_sub(w.len())?;
        b.get(cut..).filter(|tail| tail.eq_ignore_ascii_case(w)).map(|_| &b[..cut])
    }
    let mut b = before.trim_end_matches(is_sep);
    while let Some(rest) = FOLLOW_UP_BEFORE.iter().find_map(|w| strip(b, w)) {
        b = rest.trim_end_matches(is_sep);
    }
    b
}

/// Voice fillers at the start of a phrase: "嗯，对方说…" → "对方说…". 嗯/呃/就是/然后 go even when
/// glued; 那个 and the English ones only when they stand alone ("那个，" but not "那个方案").
fn strip_fillers(text: &str) -> &str {
    const INTERJECTIONS: &[&str] = &["嗯", "呃", "额", "唔", "就是", "然后"];
    const WORDS: &[&str] = &["那个", "就是", "然后", "啊", "um", "uh", "so"];
    let mut t = text.trim_start_matches(is_sep);
    loop {
        if let Some(r) = INTERJECTIONS.iter().find_map(|w| t.strip_prefix(w)) {
            t = r.trim_start_matches(is_sep);
            continue;
        }
        let word = WORDS.iter().find_map(|w| {
            let r = t
                .strip_prefix(w)
                .or_else(|| t.get(..w.len()).filter(|h| h.eq_ignore_ascii_case(w)).map(|_| &t[w.len()..]))?;
            r.starts_with(is_sep).then_some(r)
        });
        match word {
            Some(r) => t = r.trim_start_matches(is_sep),
            None => return t,
        }
    }
}

fn default_follow_up(lang: Lang, customer: &str) -> String {
    match lang {
        Lang::Zh => format!("跟进{customer}"),
        Lang::En => format!("Follow up {customer}"),
    }
}

/// 拜访了一下 / 打电话给美的 / met with acme: particles right after the activity word.
fn strip_particles(rest: &str) -> &str {
    let glued = !rest.starts_with(is_sep);
    let r = rest.trim_start_matches(is_sep);
    if let Some(r) = r.strip_prefix("with ") {
        return r;
    }
    let (r, particle) = match ACTIVITY_PARTICLES.iter().find_map(|p| r.strip_prefix(p)) {
        Some(r) => (r, true),
        None => (r, false),
    };
    // "打电话给美的", "微信了一下给格力": 给 glued to the word introduces the customer.
    if glued || particle { r.strip_prefix('给').unwrap_or(r) } else { r }
}

/// "A级", "B类": a grade token on its own (bare "A" is too ambiguous outside a keyword).
fn graded(token: &str) -> Option<Grade> {
    let t: String = token.chars().map(halfwidth).collect();
    if t.ends_with('级') || t.ends_with('类') || t.to_lowercase().starts_with("grade") {
        refs::grade(&t)
    } else {
        None
    }
}

/// 王经理, 刘总, 陈工, 杨主任: a contact person by title.
fn contact_token(token: &str) -> Option<String> {
    let n = token.chars().count();
    let titled =
        ["经理", "总监", "主任", "老师", "先生", "女士", "小姐", "总", "工"].iter().any(|s| token.ends_with(s));
    (titled && (2..=5).contains(&n) && token.chars().all(is_cjk)).then(|| token.to_string())
}

fn tag_with(token: &str, sign: char) -> Option<String> {
    let t = token.strip_prefix(sign).or_else(|| token.strip_prefix(halfwidth_inverse(sign)))?;
    (!t.is_empty()).then(|| t.to_string())
}

fn halfwidth_inverse(c: char) -> char {
    char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
}

fn take_all<T>(f: &mut Fields, g: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(v) = f.take_token(&g) {
        out.push(v);
    }
    out
}

/// `给 @王芳` / `转给 王芳` / `to @wangfang` / a bare @mention: the new owner.
fn owner_target(f: &mut Fields) -> Option<String> {
    if let Some(v) = f.take_keyed(&["转给", "给", "负责人", "owner", "to"], |v| {
        Some(v.trim_start_matches(['@', '＠']).to_string())
    }) {
        return Some(v);
    }
    f.take_token(|t| refs::mention(t).map(str::to_string))
}

/// `预计 12月底` / `预计12月底成交` / `close by Dec 31` / `expected end of month`: the expected close date.
fn take_close_date(f: &mut Fields, now: DateTime<Tz>) -> Option<NaiveDate> {
    let keys = [
        "预计成交日期",
        "预计成交",
        "预计签约",
        "成交日期",
        "预计",
        "expected close",
        "close by",
        "closing",
        "expected",
        "close",
        "by",
    ];
    let w = f.take_time_after(&keys, now)?;
    f.take_word(&["成交", "签约", "签", "前"]);
    Some(w.at.date_naive())
}

/// The spec's name with a `'static` lifetime (names are compiled in).
fn spec_name(name: &str) -> &'static str {
    spec::spec(name).map_or("help", |s| s.name.as_str())
}

/// Finds the command a help topic names: a canonical name or any trigger word.
pub fn find_spec(topic: &str) -> Option<&'static spec::Spec> {
    let want: Vec<char> = topic.trim().chars().map(|c| halfwidth(c).to_ascii_lowercase()).collect();
    let as_str: String = want.iter().collect();
    spec::spec(&as_str).or_else(|| triggers().iter().find(|t| t.word == want).map(|t| t.spec))
}

/// An unrecognised message, with the closest trigger word when one is close enough.
fn unknown(text: &str, norm: &[char]) -> Command {
    let end = norm.iter().position(|c| is_sep(*c)).unwrap_or(norm.len());
    let head: String = norm[..end].iter().collect();
    let mut best: Option<(f64, &TriggerRef)> = None;
    // Text that starts with a real command word is not a typo of another one ("今天天气不错").
    let starts_with_word = triggers().iter().any(|t| t.word.iter().any(|c| is_cjk(*c)) && norm.starts_with(&t.word));
    for t in triggers().iter().filter(|_| !starts_with_word) {
        let word: String = t.word.iter().collect();
        let score = if t.word.iter().any(|c| is_cjk(*c)) {
            // Chinese has no space after the command, so compare the text's prefix of the word's
            // length; one wrong character in a two-character word is still a likely typo.
            let prefix: Vec<char> = norm.iter().take(t.word.len()).copied().collect();
            let s = strsim::normalized_levenshtein(&prefix.iter().collect::<String>(), &word);
            // An exact word followed by other text was not a typo of that word ("今天天气不错"),
            // and a typo from a pinyin input method sounds the same: 拜仿 → 拜访, 提星 → 提醒,
            // but 收到 is not 改到.
            if (0.5..1.0).contains(&s) && t.word.len() >= 2 && sounds_alike(&prefix, &t.word) { s } else { 0.0 }
        } else {
            let s = strsim::jaro_winkler(&head, &word);
            if s >= 0.85 && head.len() >= 3 { s } else { 0.0 }
        };
        if score > 0.0 && best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, t));
        }
    }
    Command::Unknown { text: text.chars().take(200).collect(), suggestion: best.map(|(_, t)| t.word.iter().collect()) }
}

/// Same length, and every character the same or pronounced the same (toneless pinyin, any of a
/// character's readings: 削 is xue and xiao).
fn sounds_alike(a: &[char], b: &[char]) -> bool {
    use pinyin::ToPinyinMulti;
    let sounds = |c: char| -> Vec<&'static str> {
        c.to_pinyin_multi().map(|m| m.into_iter().map(|p| p.plain()).collect()).unwrap_or_default()
    };
    let alike = |x: char, y: char| x == y || sounds(x).iter().any(|s| sounds(y).contains(s));
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| alike(*x, *y))
}

#[cfg(test)]
mod tests;

/// A bare amount of time to snooze by: "2天", "两小时", "30分钟", "1周", "2 days", "3h".
fn snooze_by(text: &str) -> Option<chrono::Duration> {
    let t = text.trim();
    let t = t.strip_prefix("延后").or_else(|| t.strip_prefix('到')).unwrap_or(t).trim();
    let t = t.strip_prefix("by ").unwrap_or(t).trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || "一二两三四五六七八九十".contains(c)))?;
    let (num, unit) = t.split_at(split);
    let n: i64 = match num.parse() {
        Ok(n) => n,
        Err(_) => match num {
            "一" => 1,
            "二" | "两" => 2,
            "三" => 3,
            "四" => 4,
            "五" => 5,
            "六" => 6,
            "七" => 7,
            "八" => 8,
            "九" => 9,
            "十" => 10,
            _ => return None,
        },
    };
    if !(1..=366).contains(&n) {
        return None;
    }
    let unit = unit.trim();
    let by = match unit.to_lowercase().as_str() {
        "天" | "日" | "day" | "days" | "d" => chrono::Duration::days(n),
        "小时" | "个小时" | "钟头" | "个钟头" | "hour" | "hours" | "hr" | "hrs" | "h" => {
            chrono::Duration::hours(n)
        }
        "分钟" | "分" | "minute" | "minutes" | "min" | "mins" | "m" => chrono::Duration::minutes(n),
        "周" | "星期" | "个星期" | "礼拜" | "个礼拜" | "week" | "weeks" | "w" => chrono::Duration::weeks(n),
        _ => return None,
    };
    Some(by)
}
