//! Grammar of the lead-desk commands: the public pool, a lead's status, assignment rules and
//! leave. Pure, like the rest of the parser; every malformed input is a usage error with a reason.

use serde::Serialize;

use super::refs::{self, halfwidth};
use super::{Command, ParseError, is_cjk, is_sep, usage_because};
use crate::crm::lead_rules::Strategy;
use crate::crm::{Lang, LeadStatus};

/// What a `rules` message asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RuleAction {
    List,
    Create {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        industry: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// A user (handle or name, without `@`); the bot falls back to a team of that name.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        team: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        strategy: Option<Strategy>,
        #[serde(skip_serializing_if = "Option::is_none")]
        capacity: Option<i64>,
        /// 1 = first; absent = last.
        #[serde(skip_serializing_if = "Option::is_none")]
        position: Option<i64>,
    },
    /// `rule` is a name, `#id`, or a bare number: the rule's place in the list.
    Delete {
        rule: String,
    },
    Disable {
        rule: String,
    },
    Enable {
        rule: String,
    },
}

const NAME: &str = "rules";

/// Words after 公海 / 规则 that ask for nothing more: 公海里有什么, 规则列表, pool leads.
const POOL_TAILS: &[&str] = &[
    "里有什么线索",
    "有什么线索",
    "里有什么",
    "有什么",
    "里有啥",
    "有啥",
    "有哪些",
    "里的线索",
    "的线索",
    "里面",
    "线索",
    "列表",
    "里",
    "吗",
    "呢",
    "leads",
    "list",
    "please",
    "pls",
];
const LIST_TAILS: &[&str] = &["列表", "有哪些", "全部", "所有", "吧", "呢", "list", "all", "please", "pls"];

/// True when `rest` is nothing but words from `tails`.
pub(super) fn only_tails(rest: &str, tails: &[&str]) -> bool {
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

pub(super) fn pool(rest: &str, lang: Lang) -> Result<Command, ParseError> {
    if only_tails(rest, POOL_TAILS) {
        Ok(Command::Pool)
    } else {
        Err(usage_because(
            "pool",
            lang,
            "看公海只要发「公海」；认领请发「认领 #34」",
            "just send \"pool\"; to take a lead send \"claim #34\"",
        ))
    }
}

/// The status a trigger word implies.
pub(super) fn status_of(set: Option<&str>) -> Option<LeadStatus> {
    match set? {
        "contacted" => Some(LeadStatus::Contacted),
        "qualified" => Some(LeadStatus::Qualified),
        "discarded" => Some(LeadStatus::Discarded),
        "pool" => Some(LeadStatus::Pool),
        _ => None,
    }
}

/// Words that may follow a status without meaning anything: 联系了 #34 了, contacted #34 already.
const STATUS_PARTICLES: &[&str] = &["了", "过", "一下", "吧", "啦", "已经", "already", "now", "done"];
const REASON_KEYS: &[&str] = &["原因是", "原因", "因为", "理由", "reason", "because", "due to", "as"];

/// What is left after the lead number: the reason of a discard or release; nothing for the
/// other statuses (anything else there is a usage error).
pub(super) fn status_reason(
    status: LeadStatus,
    left: &str,
    name: &'static str,
    lang: Lang,
) -> Result<Option<String>, ParseError> {
    let left = left.trim_matches(is_sep);
    if matches!(status, LeadStatus::Discarded | LeadStatus::Pool) {
        let mut r = left;
        for key in REASON_KEYS {
            if let Some(rest) = strip_word(r, key) {
                r = rest.trim_matches(is_sep);
                break;
            }
        }
        let reason: String = r.chars().take(200).collect();
        return Ok(Some(reason).filter(|r| !r.is_empty()));
    }
    if only_tails(left, STATUS_PARTICLES) {
        return Ok(None);
    }
    let short: String = left.chars().take(30).collect();
    Err(usage_because(
        name,
        lang,
        &format!("看不懂「{short}」。标记线索只需要编号，例如 联系了 #34"),
        &format!("could not understand `{short}`; marking a lead needs only its number, e.g. contacted #34"),
    ))
}

/// `key` at the start of `text` (an English key only as a whole word, any case).
fn strip_word<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let head = text.get(..key.len())?;
    if !head.eq_ignore_ascii_case(key) {
        return None;
    }
    let rest = &text[key.len()..];
    let boundary = !key.is_ascii() || rest.chars().next().is_none_or(|c| !c.is_ascii_alphanumeric());
    boundary.then_some(rest)
}

/// `休假 @李雷`, `销假 李雷`, `leave @lilei` (the bot also reads `@李雷 休假` into this form).
pub(super) fn leave(rest: &str, set: Option<&str>, lang: Lang) -> Result<Command, ParseError> {
    const NAME: &str = "leave";
    let on_leave = set != Some("false");
    let mut f = super::Fields::new(rest);
    let user = f
        .take_token(|t| refs::mention(t).map(str::to_string))
        .or_else(|| f.take_keyed(&["给", "for"], |v| Some(v.trim_start_matches(['@', '＠']).to_string())))
        // A name without @ only when it is all there is: "休假 李雷", not "leave a note".
        .or_else(|| if f.rest().contains(is_sep) { None } else { f.take_first() })
        .filter(|u| !u.is_empty())
        .ok_or_else(|| usage_because(NAME, lang, "谁休假？例如 休假 @李雷", "who is on leave? e.g. leave @lilei"))?;
    if !only_tails(f.rest(), &["了", "啦", "吧", "一下", "now", "today"]) {
        let short: String = f.rest().chars().take(30).collect();
        return Err(usage_because(
            NAME,
            lang,
            &format!("看不懂「{short}」。一次设置一个人，例如 休假 @李雷，回来后发 销假 @李雷"),
            &format!("could not understand `{short}`; one person at a time, e.g. leave @lilei, then back @lilei"),
        ));
    }
    Ok(Command::Leave { user, on_leave })
}

/// One word of the message: as written, and half-width lower case for matching.
struct Tok {
    text: String,
    norm: String,
}

fn tokens(text: &str) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    for word in text.split(is_sep).filter(|w| !w.is_empty()) {
        let norm: String = word.chars().map(|c| halfwidth(c).to_ascii_lowercase()).collect::<String>().to_lowercase();
        // "round robin", "least loaded": one strategy word in two.
        if let Some(prev) = out.last_mut()
            && matches!((prev.norm.as_str(), norm.as_str()), ("round", "robin") | ("least", "loaded"))
        {
            prev.text = format!("{} {word}", prev.text);
            prev.norm = format!("{}_{norm}", prev.norm);
            continue;
        }
        out.push(Tok { text: word.to_string(), norm });
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Region,
    Industry,
    Source,
    Tag,
    To,
    Team,
    Capacity,
    Position,
}

impl Key {
    fn label(self, lang: Lang) -> &'static str {
        match (lang, self) {
            (Lang::Zh, Key::Region) => "地区",
            (Lang::Zh, Key::Industry) => "行业",
            (Lang::Zh, Key::Source) => "来源",
            (Lang::Zh, Key::Tag) => "标签",
            (Lang::Zh, Key::To) => "给",
            (Lang::Zh, Key::Team) => "团队",
            (Lang::Zh, Key::Capacity) => "上限",
            (Lang::Zh, Key::Position) => "位置",
            (Lang::En, Key::Region) => "region",
            (Lang::En, Key::Industry) => "industry",
            (Lang::En, Key::Source) => "source",
            (Lang::En, Key::Tag) => "tag",
            (Lang::En, Key::To) => "to",
            (Lang::En, Key::Team) => "team",
            (Lang::En, Key::Capacity) => "cap",
            (Lang::En, Key::Position) => "position",
        }
    }
}

/// Key words, longest first within a key (a glued Chinese key takes the longest that fits).
const KEYS: &[(Key, &[&str])] = &[
    (Key::Region, &["地区", "区域", "城市", "省份", "region", "city", "area"]),
    (Key::Industry, &["行业", "industry"]),
    (Key::Source, &["来源", "渠道", "source", "channel"]),
    (Key::Tag, &["标签", "tag"]),
    (Key::To, &["分配给", "分给", "交给", "给", "to"]),
    (Key::Team, &["团队", "小组", "team"]),
    (Key::Capacity, &["每人上限", "每人最多", "上限", "容量", "最多", "cap", "capacity", "max"]),
    (Key::Position, &["优先级", "位置", "顺序", "排序", "position", "pos", "priority"]),
];

/// Put the rule first: 优先, 置顶, first.
const FIRST_WORDS: &[&str] = &["优先", "最优先", "置顶", "first", "top"];
/// Words between the fields that carry nothing: "by round robin", "cap 20 per rep".
const NOISE: &[&str] = &["by", "and", "with", "using", "per", "rep", "each", "并且", "并", "然后"];

#[derive(Debug, Clone, PartialEq)]
enum Class {
    /// A key word; with the value when a Chinese key is glued to it (地区青岛, 上限20).
    Key(Key, Option<String>),
    Strategy(Strategy),
    Position(i64),
    Mention(String),
    Noise,
}

fn strategy_word(norm: &str) -> Option<Strategy> {
    let w = norm.strip_prefix('按').unwrap_or(norm);
    let w = w.strip_suffix("分配").unwrap_or(w);
    // "least" and "rr" alone are too short to take from free text; the rest are unambiguous.
    if matches!(w, "least" | "rr") {
        return None;
    }
    w.parse().ok()
}

/// 1–99 in digits or Chinese numerals (十五, 二十), with an optional unit (条, 个, 位).
fn small_number(token: &str) -> Option<i64> {
    let t: String = token.chars().map(halfwidth).collect();
    let t = ["条线索", "个线索", "条", "个", "位", "名", "人"].iter().find_map(|u| t.strip_suffix(u)).unwrap_or(&t);
    if !t.is_empty() && t.len() <= 6 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    let digit = |c: char| "一二三四五六七八九".chars().position(|d| d == c).map(|p| p as i64 + 1);
    let cs: Vec<char> = t.chars().map(|c| if c == '两' { '二' } else { c }).collect();
    match cs.as_slice() {
        ['十'] => Some(10),
        [c] => digit(*c),
        ['十', u] => digit(*u).map(|u| 10 + u),
        [t, '十'] => digit(*t).map(|t| t * 10),
        [t, '十', u] => Some(digit(*t)? * 10 + digit(*u)?),
        _ => None,
    }
}

/// 第2位, 第二条, 排第3: a place in the rule order.
fn position_word(norm: &str) -> Option<i64> {
    let w = ["放在", "排在", "排", "放"].iter().find_map(|p| norm.strip_prefix(p)).unwrap_or(norm);
    let w = w.strip_prefix('第')?;
    small_number(w)
}

/// What a word is; `in_name` while reading the rule's name, where only keys, mentions and
/// strategies end it ("Food and drink" is a name).
fn classify(tok: &Tok, in_name: bool) -> Option<Class> {
    let n = tok.norm.as_str();
    for (key, words) in KEYS {
        if words.contains(&n) {
            return Some(Class::Key(*key, None));
        }
    }
    if let Some(m) = refs::mention(&tok.text) {
        return Some(Class::Mention(m.to_string()));
    }
    if let Some(s) = strategy_word(n) {
        return Some(Class::Strategy(s));
    }
    // Chinese keys glue to their value: 地区青岛, 上限20, 给@李雷, 给团队华东组.
    for (key, words) in KEYS {
        for w in words.iter().filter(|w| w.chars().any(is_cjk)) {
            let Some(value) = tok.text.strip_prefix(w) else { continue };
            let value = value.trim_start_matches(['=', '＝', ':', '：']);
            if value.is_empty() {
                continue;
            }
            // 给 glued to a plain word is part of a name (给排水); only 给@某人 and 给团队… count.
            let team_next = KEYS[5].1.iter().any(|t| value.starts_with(t));
            if *key == Key::To && !(value.starts_with(['@', '＠']) || team_next) {
                continue;
            }
            // A single-character key never glues (省 is not 省份).
            if w.chars().count() < 2 && *key != Key::To {
                continue;
            }
            return Some(Class::Key(*key, Some(value.to_string())));
        }
    }
    if in_name {
        return None;
    }
    if FIRST_WORDS.contains(&n) {
        return Some(Class::Position(1));
    }
    if let Some(p) = position_word(n) {
        return Some(Class::Position(p));
    }
    if NOISE.contains(&n) {
        return Some(Class::Noise);
    }
    None
}

fn detail(lang: Lang, zh: String, en: String) -> ParseError {
    usage_because(NAME, lang, &zh, &en)
}

/// The rule's name in quotes at the start: 「青岛 大客户」, "Key accounts", “重点”.
fn quoted_name(rest: &str) -> Option<(String, &str)> {
    let t = rest.trim_start_matches(is_sep);
    let open = t.chars().next()?;
    let close = match open {
        '「' => '」',
        '『' => '』',
        '“' => '”',
        '"' => '"',
        '\'' => '\'',
        _ => return None,
    };
    let inner = &t[open.len_utf8()..];
    let end = inner.find(close)?;
    Some((inner[..end].trim().to_string(), &inner[end + close.len_utf8()..]))
}

pub(super) fn rules(rest: &str, set: Option<&str>, lang: Lang) -> Result<RuleAction, ParseError> {
    match set {
        Some("create") => create_rule(rest, lang),
        Some(action @ ("delete" | "disable" | "enable")) => {
            let rule = rule_ref(rest).ok_or_else(|| {
                let (zh, en) = match action {
                    "delete" => ("删除规则 青岛制造业", "delete rule Qingdao"),
                    "disable" => ("停用规则 青岛制造业", "disable rule Qingdao"),
                    _ => ("启用规则 青岛制造业", "enable rule Qingdao"),
                };
                detail(
                    lang,
                    format!("哪条规则？写名称、#编号或列表里的序号，例如 {zh}"),
                    format!("which rule? give its name, #id or place in the list, e.g. {en}"),
                )
            })?;
            Ok(match action {
                "delete" => RuleAction::Delete { rule },
                "disable" => RuleAction::Disable { rule },
                _ => RuleAction::Enable { rule },
            })
        }
        _ => {
            if only_tails(rest, LIST_TAILS) {
                Ok(RuleAction::List)
            } else {
                Err(detail(
                    lang,
                    "看全部规则请发「规则」；新建请发「新规则 名称 地区 青岛 给 @李雷」".into(),
                    "send \"rules\" to see them all, or \"new rule <name> region Qingdao to @lilei\" to add one".into(),
                ))
            }
        }
    }
}

/// A rule named by `#id`, its place in the list (3, 第3条) or its name.
fn rule_ref(rest: &str) -> Option<String> {
    let t = rest.trim_matches(is_sep);
    let t = strip_word(t, "规则").or_else(|| strip_word(t, "rule")).map_or(t, |r| r.trim_matches(is_sep));
    let t = quoted_name(t).map_or_else(|| t.to_string(), |(name, _)| name);
    let norm: String = t.chars().map(halfwidth).collect();
    if let Some(n) = position_word(&norm) {
        return Some(n.to_string());
    }
    if let Some(id) = norm.strip_prefix('#').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
        return Some(format!("#{id}"));
    }
    if !norm.is_empty() && norm.bytes().all(|b| b.is_ascii_digit()) {
        return Some(norm);
    }
    let name = t.trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[derive(Default)]
struct Draft {
    region: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    tag: Option<String>,
    to: Option<String>,
    team: Option<String>,
    strategy: Option<Strategy>,
    capacity: Option<i64>,
    position: Option<i64>,
}

fn create_rule(rest: &str, lang: Lang) -> Result<RuleAction, ParseError> {
    let (quoted, rest) = match quoted_name(rest) {
        Some((name, after)) => (Some(name), after),
        None => (None, rest),
    };
    let toks = tokens(rest);
    let mut i = 0;
    let mut name_parts: Vec<&str> = Vec::new();
    if quoted.is_none() {
        while i < toks.len() && classify(&toks[i], true).is_none() {
            name_parts.push(&toks[i].text);
            i += 1;
        }
    }
    let name = quoted.unwrap_or_else(|| name_parts.join(" "));
    if name.trim().is_empty() {
        return Err(detail(
            lang,
            "请先写规则名称，例如 新规则 青岛制造业 地区 青岛 行业 制造业 给 @李雷".into(),
            "give the rule a name first, e.g. new rule Qingdao region Qingdao to @lilei".into(),
        ));
    }
    let mut d = Draft::default();
    while i < toks.len() {
        let class = classify(&toks[i], false);
        i += 1;
        match class {
            Some(Class::Key(key, glued)) => take_value(&mut d, key, glued, &toks, &mut i, lang)?,
            Some(Class::Mention(m)) => set_target(&mut d.to, &d.team, m, lang)?,
            Some(Class::Strategy(s)) => set_once(&mut d.strategy, s, "轮流/最少负载", "strategy", lang)?,
            Some(Class::Position(p)) => set_position(&mut d.position, p, lang)?,
            Some(Class::Noise) => {}
            None => {
                let short: String = toks[i - 1].text.chars().take(30).collect();
                return Err(detail(
                    lang,
                    format!("看不懂「{short}」。条件写成 地区 青岛 / 行业 制造业 / 来源 展会 / 标签 重点"),
                    format!("could not understand `{short}`; conditions are region X / industry X / source X / tag X"),
                ));
            }
        }
    }
    if d.to.is_none() && d.team.is_none() {
        return Err(detail(
            lang,
            "分给谁？加上「给 @李雷」或「给 团队 华东组」".into(),
            "who gets the leads? add \"to @lilei\" or \"to team East\"".into(),
        ));
    }
    Ok(RuleAction::Create {
        name: name.trim().to_string(),
        region: d.region,
        industry: d.industry,
        source: d.source,
        tag: d.tag,
        to: d.to,
        team: d.team,
        strategy: d.strategy,
        capacity: d.capacity,
        position: d.position,
    })
}

fn set_once<T>(slot: &mut Option<T>, v: T, zh: &str, en: &str, lang: Lang) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(detail(lang, format!("「{zh}」写了两次"), format!("`{en}` is given twice")));
    }
    *slot = Some(v);
    Ok(())
}

fn set_position(slot: &mut Option<i64>, p: i64, lang: Lang) -> Result<(), ParseError> {
    if p < 1 {
        return Err(detail(lang, "位置从 1 开始，例如 第1位".into(), "positions start at 1, e.g. position 1".into()));
    }
    set_once(slot, p, "位置", "position", lang)
}

fn set_target(to: &mut Option<String>, team: &Option<String>, who: String, lang: Lang) -> Result<(), ParseError> {
    if team.is_some() || to.is_some() {
        return Err(detail(
            lang,
            "一条规则只能分给一个人或一个团队".into(),
            "a rule goes to one person or one team".into(),
        ));
    }
    *to = Some(who);
    Ok(())
}

/// The value after a key: one token, or for English several (`source trade show`, `team Team A`)
/// up to the next key word.
fn take_value(
    d: &mut Draft,
    key: Key,
    glued: Option<String>,
    toks: &[Tok],
    i: &mut usize,
    lang: Lang,
) -> Result<(), ParseError> {
    let missing = || {
        detail(
            lang,
            format!("「{}」后面要写内容", key.label(Lang::Zh)),
            format!("`{}` needs a value", key.label(Lang::En)),
        )
    };
    let value = match glued {
        // 给团队华东组: the team words glued after 给.
        Some(v) if key == Key::To && KEYS[5].1.iter().any(|t| v.starts_with(t)) => {
            let team = KEYS[5].1.iter().find_map(|t| v.strip_prefix(t)).unwrap_or_default();
            let team = team.trim_start_matches(['=', '＝', ':', '：']).to_string();
            return take_value(d, Key::Team, Some(team), toks, i, lang);
        }
        Some(v) => v,
        None => {
            let Some(first) = toks.get(*i) else { return Err(missing()) };
            let first_class = classify(first, false);
            // 给 团队 华东组 / to team East: the team words come after 给.
            if key == Key::To
                && let Some(Class::Key(Key::Team, glued)) = first_class
            {
                *i += 1;
                return take_value(d, Key::Team, glued, toks, i, lang);
            }
            if key == Key::To
                && let Some(Class::Mention(m)) = first_class
            {
                *i += 1;
                return set_target(&mut d.to, &d.team, m, lang);
            }
            // A team may be called "Team A": its first word is taken as it is.
            if first_class.is_some() && key != Key::Team {
                return Err(missing());
            }
            *i += 1;
            let mut v = first.text.clone();
            if !matches!(key, Key::Capacity | Key::Position) {
                while let Some(next) = toks.get(*i) {
                    let ascii = next.text.is_ascii() && v.is_ascii();
                    if !ascii || classify(next, false).is_some() {
                        break;
                    }
                    v = format!("{v} {}", next.text);
                    *i += 1;
                }
            }
            v
        }
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(missing());
    }
    match key {
        Key::Region => set_once(&mut d.region, value, "地区", "region", lang),
        Key::Industry => set_once(&mut d.industry, value, "行业", "industry", lang),
        Key::Source => set_once(&mut d.source, value, "来源", "source", lang),
        Key::Tag => {
            let tag = value.trim_start_matches(['#', '＃', '+', '＋']).to_string();
            if tag.is_empty() {
                return Err(missing());
            }
            set_once(&mut d.tag, tag, "标签", "tag", lang)
        }
        Key::To => {
            let who = value.trim_start_matches(['@', '＠']).to_string();
            set_target(&mut d.to, &d.team, who, lang)
        }
        Key::Team => {
            if d.team.is_some() || d.to.is_some() {
                return Err(detail(
                    lang,
                    "一条规则只能分给一个人或一个团队".into(),
                    "a rule goes to one person or one team".into(),
                ));
            }
            d.team = Some(value);
            Ok(())
        }
        Key::Capacity => {
            let n = small_number(&value).filter(|n| *n >= 1).ok_or_else(|| {
                detail(
                    lang,
                    "上限要写 1 以上的整数，例如 上限 20".into(),
                    "the cap is a whole number from 1, e.g. cap 20".into(),
                )
            })?;
            // "上限 20 条", "cap 20 leads per rep".
            while toks
                .get(*i)
                .is_some_and(|t| ["条", "个", "条线索", "个线索", "leads", "lead"].contains(&t.norm.as_str()))
            {
                *i += 1;
            }
            set_once(&mut d.capacity, n, "上限", "cap", lang)
        }
        Key::Position => {
            let n = small_number(&value).or_else(|| position_word(&value)).ok_or_else(|| {
                detail(lang, "位置要写数字，例如 第1位".into(), "the position is a number, e.g. position 1".into())
            })?;
            set_position(&mut d.position, n, lang)
        }
    }
}

/// Usage when a status word came without a lead number; a customer name there means the user
/// wanted to log a call or visit, so that is pointed out too.
pub(super) fn no_lead_number(status: LeadStatus, name: &'static str, lang: Lang) -> ParseError {
    let (zh, en) = match status {
        LeadStatus::Qualified => ("确认 #34", "qualified #34"),
        LeadStatus::Discarded => ("放弃 #34 原因 空号", "discard #34 reason wrong number"),
        LeadStatus::Pool => ("退回公海 #34", "release #34"),
        _ => ("联系了 #34", "contacted #34"),
    };
    usage_because(
        name,
        lang,
        &format!("请写线索编号，例如 {zh}（记录客户跟进请用「电话 海尔 …」）"),
        &format!("give the lead number, e.g. {en} (to log a customer call use \"call Haier …\")"),
    )
}

/// `目标 @李雷 50万 [12月|下月|2026-12]`, `target @lilei 500k next month`, `目标 @李雷 清除`.
pub(super) fn target(rest: &str, lang: Lang) -> Result<Command, ParseError> {
    const NAME: &str = "set_target";
    let lowered = rest.to_lowercase();
    let text = lowered.replace("next month", "下月").replace("this month", "本月");
    let mut f = super::Fields::new(&text);
    let month = f.take_token(month_token).unwrap_or_else(|| "this".to_string());
    let user = f
        .take_token(|t| refs::mention(t).map(str::to_string))
        .or_else(|| f.take_keyed(&["给", "for"], |v| Some(v.trim_start_matches(['@', '＠']).to_string())))
        .filter(|u| !u.is_empty());
    f.take_word(&["给", "for", "of"]);
    let clear = f.take_word(&["清除", "取消", "删除", "清空", "clear", "remove", "none"]);
    let amount = if clear { None } else { f.take_amount() };
    if !clear && amount.is_none() {
        return Err(usage_because(
            NAME,
            lang,
            "目标多少？例如 目标 @李雷 50万，或 目标 @李雷 50万 下月",
            "how much? e.g. target @lilei 500k, or target @lilei 500k next month",
        ));
    }
    f.take_word(&["目标", "业绩", "target", "to", "is", "为", "是", "设为", "设置为"]);
    if !only_tails(f.rest(), &["了", "吧", "一下"]) {
        let short: String = f.rest().chars().take(30).collect();
        return Err(usage_because(
            NAME,
            lang,
            &format!("看不懂「{short}」。例如 目标 @李雷 50万 12月"),
            &format!("could not understand `{short}`; e.g. target @lilei 500k december"),
        ));
    }
    Ok(Command::SetTarget { user, amount, month })
}

/// A month as a target names it: `this`, `next`, a month number (`12`) or `YYYY-MM`.
fn month_token(t: &str) -> Option<String> {
    let t = t.trim();
    match t {
        "本月" | "这个月" | "当月" | "本月份" => return Some("this".into()),
        "下月" | "下个月" | "下月份" => return Some("next".into()),
        _ => {}
    }
    const EN: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    if t.len() >= 3
        && t.is_ascii()
        && let Some(i) = EN.iter().position(|m| t.starts_with(m))
        && [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ][i]
            .starts_with(t)
    {
        return Some((i + 1).to_string());
    }
    let month_no = |s: &str| s.parse::<u32>().ok().filter(|m| (1..=12).contains(m));
    if let Some(m) = t.strip_suffix("月份").or_else(|| t.strip_suffix('月')) {
        if let Some((y, m)) = m.split_once('年') {
            let y = y.parse::<i32>().ok().filter(|y| (2000..=2100).contains(y))?;
            return month_no(m).map(|m| format!("{y}-{m:02}"));
        }
        return month_no(m).map(|m| m.to_string());
    }
    let (y, m) = t.split_once(['-', '/'])?;
    let y = y.parse::<i32>().ok().filter(|y| (2000..=2100).contains(y))?;
    month_no(m).map(|m| format!("{y}-{m:02}"))
}
