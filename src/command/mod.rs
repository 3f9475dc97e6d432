//! Chat text → [`Command`]. Trigger words, help and examples come from `bot-commands/`; this module
//! holds each command's argument grammar. Pure: no I/O; "now" and the org's time zone come in.

pub mod amount;
pub mod bench;
mod fields;
pub mod refs;
pub mod spec;
pub mod when;

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde::Serialize;

use crate::crm::{ActivityKind, Grade, Lang, LostReason};
use fields::Fields;
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

    // Try the command word at the start; then after a leading time ("昨天拜访了海尔") or fillers.
    // Some people type "/help" out of habit from other bots.
    let mut start = skip_seps(&norm, usize::from(norm.first() == Some(&'/')));
    let mut leading_time: Option<when::When> = None;
    for _ in 0..6 {
        if start >= norm.len() {
            break;
        }
        if let Some((t, n)) = match_trigger(&norm[start..]) {
            let lang = trigger_lang(t, lang);
            let rest: String = original[start + n..].iter().collect();
            // 今天 / 撤销 take no arguments: "今天下午拜访海尔…" is a time, then a command.
            let bare_only = matches!(t.spec.name.as_str(), "today" | "undo");
            if !bare_only || rest.trim_matches(is_sep).is_empty() {
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
        match FILLERS.iter().find(|f| s.starts_with(*f) && filler_ends(&norm, start + f.chars().count(), f)) {
            Some(f) => start = skip_seps(&norm, start + f.chars().count()),
            None => break,
        }
    }
    Ok(Parsed { command: unknown(trimmed, &norm), lang })
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
    let take_ref = |f: &mut Fields| f.take_token(|tok| refs::record_ref(tok, REF_PREFIXES));
    let text_fields = |f: &mut Fields, keys: &[&str]| f.take_keyed(keys, |v| Some(v.to_string()));
    Ok(match name {
        "log_activity" => {
            let rest = strip_particles(rest);
            let mut f = Fields::new(rest);
            let kind = set("kind").and_then(|k| k.parse().ok()).unwrap_or(ActivityKind::Note);
            let customer = f.take_first().ok_or_else(|| usage(name, lang))?;
            let mut occurred_at = leading_time.filter(|w| w.at <= now).map(|w| fixed(&w));
            let mut follow_up = None;
            let mut content = f.rest().to_string();
            if let Some((w, range)) = f.find_time(now) {
                let raw = f.raw();
                let before = raw.get(..range.start).unwrap_or_default().trim_matches(is_sep);
                let after = raw.get(range.end..).unwrap_or_default().trim_matches(is_sep);
                if w.at > now && is_follow_up(before, after) {
                    let title = if after.is_empty() { default_follow_up(lang, &customer) } else { after.to_string() };
                    follow_up = Some(FollowUp { at: fixed(&w), title });
                    content = if before.is_empty() { after.to_string() } else { before.to_string() };
                } else if occurred_at.is_none() && before.is_empty() {
                    // "拜访 海尔 昨天下午 聊了报价": when it happened.
                    occurred_at = Some(fixed(&w));
                    content = after.to_string();
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
            let phone =
                f.take_keyed(&["电话", "手机", "phone", "tel"], refs::phone).or_else(|| f.take_token(phone_token));
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
            let stage = f.take_keyed(&["阶段", "到", "stage", "to"], refs::stage).or_else(|| f.take_token(refs::stage));
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
                        r.or_else(|| f.take_token(refs::lost_reason))
                    })
                }
                Outcome::Won => None,
            };
            Command::CloseDeal { deal, outcome, amount, reason }
        }
        "create_lead" => {
            let phone =
                f.take_keyed(&["电话", "手机", "phone", "tel"], refs::phone).or_else(|| f.take_token(phone_token));
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
            f.take_word(&["给", "to", "分给", "交给"]);
            let to =
                f.take_token(|t| refs::mention(t).map(str::to_string)).or_else(|| f.take_first()).ok_or_else(|| {
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
        "snooze_task" => {
            let task = take_ref(&mut f).ok_or_else(|| usage(name, lang))?;
            let until = f.take_time(now).ok_or_else(|| {
                usage_because(name, lang, "推迟到什么时候？例如 到明天下午3点", "until when? e.g. until tomorrow 3pm")
            })?;
            Command::SnoozeTask { task, until: fixed(&until) }
        }
        "create_reminder" => {
            let at = leading_time.or_else(|| f.take_time(now)).ok_or_else(|| {
                usage_because(name, lang, "什么时候提醒？例如 明天下午3点", "when? e.g. tomorrow 3pm")
            })?;
            f.take_word(&["我", "me", "to", "that"]);
            let title = f.rest().to_string();
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
            let period = match set("period") {
                Some("week") => Period::Week,
                Some("day") => Period::Day,
                _ if f.take_word(&["周", "本周", "week", "weekly", "this week"]) => Period::Week,
                _ => Period::Day,
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
    "送样",
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

fn is_follow_up(before: &str, after: &str) -> bool {
    let after = after.trim_start_matches(is_sep).to_lowercase();
    let before = before.trim_end_matches(is_sep).to_lowercase();
    FOLLOW_UP_AFTER.iter().any(|w| after.starts_with(w) || after.starts_with(&format!("再{w}")))
        || FOLLOW_UP_BEFORE.iter().any(|w| before.ends_with(w))
}

fn default_follow_up(lang: Lang, customer: &str) -> String {
    match lang {
        Lang::Zh => format!("跟进{customer}"),
        Lang::En => format!("Follow up {customer}"),
    }
}

fn strip_particles(rest: &str) -> &str {
    let r = rest.trim_start_matches(is_sep);
    ACTIVITY_PARTICLES.iter().find_map(|p| r.strip_prefix(p)).unwrap_or(r)
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

fn phone_token(token: &str) -> Option<String> {
    if refs::looks_like_phone(token) { refs::phone(token) } else { None }
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

/// `预计 12月底` / `预计12月底成交` / `close by Dec 31` / `expected Dec 31`: the expected close date.
fn take_close_date(f: &mut Fields, now: DateTime<Tz>) -> Option<NaiveDate> {
    let keyed = f.take_keyed(&["预计", "预计成交", "成交日期", "close", "closing", "expected", "by"], |v| {
        when::parse_when(v.trim_end_matches("成交").trim_end_matches("签"), now).ok()
    });
    if let Some(w) = keyed {
        f.take_word(&["成交", "签约"]);
        return Some(w.at.date_naive());
    }
    None
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
            let prefix: String = norm.iter().take(t.word.len()).collect();
            let s = strsim::normalized_levenshtein(&prefix, &word);
            // An exact word followed by other text was not a typo of that word ("今天天气不错").
            if (0.5..1.0).contains(&s) && t.word.len() >= 2 { s } else { 0.0 }
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

#[cfg(test)]
mod tests;
