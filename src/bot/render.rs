//! Reply texts, in the user's language. Short, phone-friendly, each with the one next step.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::IncomingMessage;
use crate::command::spec;
use crate::crm::activities::Logged;
use crate::crm::customers::CustomerDetail;
use crate::crm::lead_rules::Rule;
use crate::crm::matching::Ranked;
use crate::crm::tasks::Today;
use crate::crm::undo::Undone;
use crate::crm::{Customer, Deal, DealStatus, Lang, Lead, LeadStatus, LostReason, Stage, Task, User};

pub(crate) fn pick(lang: Lang, zh: String, en: String) -> String {
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%m-%d %H:%M").to_string()
}

/// Amount in 分 as 元 with thousands separators, e.g. 12345600 → ¥123,456.
pub fn yuan(fen: i64) -> String {
    let yuan = fen / 100;
    let cents = fen % 100;
    let digits = yuan.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    let sign = if fen < 0 { "-" } else { "" };
    if cents == 0 { format!("{sign}¥{out}") } else { format!("{sign}¥{out}.{:02}", cents.abs()) }
}

pub fn not_linked(lang: Lang, msg: &IncomingMessage) -> String {
    pick(
        lang,
        format!(
            "你的账号还没有绑定 chatcrm 用户。请管理员运行：\nchatcrm users link <用户名> --platform {} --corp {} --id {}",
            msg.platform, msg.corp_id, msg.sender
        ),
        format!(
            "Your chat account is not linked to a chatcrm user yet. Ask an admin to run:\nchatcrm users link <handle> --platform {} --corp {} --id {}",
            msg.platform, msg.corp_id, msg.sender
        ),
    )
}

pub fn usage(lang: Lang, command: &str, detail: Option<&(String, String)>) -> String {
    let why = detail.map(|(zh, en)| pick(lang, format!("{zh}。"), format!("{en}. "))).unwrap_or_default();
    match spec::spec(command) {
        Some(s) => pick(
            lang,
            format!("{why}格式：{}\n例如：{}", s.usage.zh, s.examples.first().map_or("", |e| e.text.as_str())),
            format!("{why}Usage: {}\ne.g. {}", s.usage.en, first_english_example(s)),
        ),
        None => help(lang, None),
    }
}

fn first_english_example(s: &spec::Spec) -> &str {
    s.examples
        .iter()
        .find(|e| !e.text.chars().any(crate::command::is_cjk))
        .or(s.examples.first())
        .map_or("", |e| e.text.as_str())
}

pub fn help(lang: Lang, topic: Option<&str>) -> String {
    if let Some(topic) = topic {
        return match crate::command::find_spec(topic) {
            Some(s) => {
                let ex = s.examples.iter().map(|e| format!("- {}", e.text)).collect::<Vec<_>>().join("\n");
                pick(
                    lang,
                    format!("**{}**\n格式：{}\n{}\n例子：\n{ex}", s.summary.zh, s.usage.zh, s.help.zh.trim()),
                    format!("**{}**\nUsage: {}\n{}\nExamples:\n{ex}", s.summary.en, s.usage.en, s.help.en.trim()),
                )
            }
            None => pick(
                lang,
                format!("没有「{topic}」这个命令。发送「帮助」看全部命令。"),
                format!("There is no command `{topic}`. Send \"help\" for the list."),
            ),
        };
    }
    let lines = spec::specs()
        .iter()
        .map(|s| match lang {
            Lang::Zh => format!("- {} — {}", s.usage.zh, s.summary.zh),
            Lang::En => format!("- {} — {}", s.usage.en, s.summary.en),
        })
        .collect::<Vec<_>>()
        .join("\n");
    pick(
        lang,
        format!("**chatcrm 命令**\n{lines}\n发送「帮助 拜访」看某个命令的详细说明。"),
        format!("**chatcrm commands**\n{lines}\nSend \"help visit\" for details on one command."),
    )
}

pub fn unknown(lang: Lang, text: &str, suggestion: Option<&str>) -> String {
    let short: String = text.chars().take(30).collect();
    match suggestion.and_then(crate::command::find_spec) {
        Some(s) => pick(
            lang,
            format!(
                "没看懂「{short}」。你是想用「{}」吗？格式：{}",
                s.usage.zh.split(' ').next().unwrap_or(""),
                s.usage.zh
            ),
            format!(
                "I did not understand `{short}`. Did you mean `{}`? Usage: {}",
                s.usage.en.split(' ').next().unwrap_or(""),
                s.usage.en
            ),
        ),
        None => pick(
            lang,
            format!("没看懂「{short}」。发送「帮助」看我能做什么。"),
            format!("I did not understand `{short}`. Send \"help\" to see what I can do."),
        ),
    }
}

pub fn today(lang: Lang, t: &Today, tz: Tz, now: DateTime<Utc>) -> String {
    if t.overdue.is_empty() && t.due_today.is_empty() && t.quiet.is_empty() {
        return pick(
            lang,
            "今天没有待办，也没有被冷落的 A 级客户。👍".into(),
            "Nothing due today and no quiet A-grade customers. 👍".into(),
        );
    }
    let task_line = |task: &crate::crm::Task| {
        let customer = task.customer_name.as_deref().map(|c| format!(" · {c}")).unwrap_or_default();
        format!("- #{} {}{customer}（{}）", task.id, task.title, local(task.due_at, tz))
    };
    let mut out = Vec::new();
    out.push(pick(
        lang,
        format!("**今天** {}", now.with_timezone(&tz).format("%m-%d")),
        format!("**Today** {}", now.with_timezone(&tz).format("%m-%d")),
    ));
    if !t.overdue.is_empty() {
        out.push(pick(lang, format!("⚠️ 已逾期 {} 项", t.overdue.len()), format!("⚠️ Overdue: {}", t.overdue.len())));
        out.extend(t.overdue.iter().map(task_line));
    }
    if !t.due_today.is_empty() {
        out.push(pick(
            lang,
            format!("📋 今天到期 {} 项", t.due_today.len()),
            format!("📋 Due today: {}", t.due_today.len()),
        ));
        out.extend(t.due_today.iter().map(task_line));
    }
    if !t.quiet.is_empty() {
        out.push(pick(lang, "💤 超过 3 天没联系的 A 级客户".into(), "💤 A-grade customers quiet for 3+ days".into()));
        for c in &t.quiet {
            let days = c.last_contacted_at.map(|d| (now - d).num_days());
            out.push(match (lang, days) {
                (Lang::Zh, Some(d)) => format!("- {}（{d} 天未联系）", c.name),
                (Lang::Zh, None) => format!("- {}（从未联系）", c.name),
                (Lang::En, Some(d)) => format!("- {} ({d} days)", c.name),
                (Lang::En, None) => format!("- {} (never contacted)", c.name),
            });
        }
    }
    out.join("\n")
}

pub fn customer_created(lang: Lang, c: &Customer) -> String {
    pick(
        lang,
        format!("已创建客户 #{} {}，由你负责。可以接着发「拜访 {} 内容」记录跟进。", c.id, c.name, c.name),
        format!("Created customer #{} {}, owned by you. Next: \"visit {} <what happened>\".", c.id, c.name, c.name),
    )
}

pub fn customer_detail(lang: Lang, d: &CustomerDetail, tz: Tz) -> String {
    let c = &d.customer;
    let none = pick(lang, "—".into(), "—".into());
    let grade = c.grade.map_or(none.clone(), |g| g.as_str().to_string());
    let owner = c.owner_name.clone().unwrap_or(none.clone());
    let mut out = vec![format!("**#{} {}**", c.id, c.name)];
    out.push(pick(
        lang,
        format!(
            "等级 {grade} · 负责人 {owner} · 行业 {} · 地区 {}",
            c.industry.as_deref().unwrap_or("—"),
            c.region.as_deref().unwrap_or("—")
        ),
        format!(
            "Grade {grade} · owner {owner} · industry {} · region {}",
            c.industry.as_deref().unwrap_or("—"),
            c.region.as_deref().unwrap_or("—")
        ),
    ));
    if !d.tags.is_empty() {
        out.push(format!("🏷 {}", d.tags.join(" ")));
    }
    out.push(match c.last_contacted_at {
        Some(t) => pick(lang, format!("最近联系：{}", local(t, tz)), format!("Last contact: {}", local(t, tz))),
        None => pick(lang, "还没有跟进记录".into(), "No contact logged yet".into()),
    });
    for ct in &d.contacts {
        let title = ct.title.as_deref().map(|t| format!(" {t}")).unwrap_or_default();
        let phone = ct.phone.as_deref().map(|p| format!(" {p}")).unwrap_or_default();
        out.push(format!("👤 {}{title}{phone}", ct.name));
    }
    for deal in d.deals.iter().filter(|d| d.status == crate::crm::DealStatus::Open) {
        let stage = d.stages.iter().find(|s| s.key == deal.stage).map_or(deal.stage.as_str(), |s| match lang {
            Lang::Zh => s.name_zh.as_str(),
            Lang::En => s.name_en.as_str(),
        });
        out.push(format!("💼 #{} {} {} · {stage}", deal.id, deal.title, yuan(deal.amount_fen)));
    }
    if !d.recent_activities.is_empty() {
        out.push(pick(lang, "最近跟进：".into(), "Recent activity:".into()));
        for a in &d.recent_activities {
            let kind = match lang {
                Lang::Zh => a.kind.zh().to_string(),
                Lang::En => a.kind.as_str().to_string(),
            };
            let content: String = a.content.chars().take(40).collect();
            out.push(format!("- {} {kind} {} {content}", local(a.occurred_at, tz), a.user_name));
        }
    }
    out.join("\n")
}

pub fn activity_logged(lang: Lang, l: &Logged, tz: Tz) -> String {
    let a = &l.activity;
    let mut s = pick(
        lang,
        format!("已记录{}：{}（#{}）\n{}", a.kind.zh(), a.customer_name, a.id, a.content),
        format!("Logged {} with {} (#{})\n{}", a.kind.as_str(), a.customer_name, a.id, a.content),
    );
    if let Some(place) = &a.location {
        s.push_str(&format!("\n📍 {place}"));
    }
    if let Some(t) = &l.follow_up {
        s.push('\n');
        let when = format_time(t.due_at, tz, lang);
        s.push_str(&pick(
            lang,
            format!("已设提醒：{when} {}（任务 #{}）", t.title, t.id),
            format!("Reminder set: {when} {} (task #{})", t.title, t.id),
        ));
    }
    s
}

pub fn which_one(lang: Lang, query: &str, list: &[Ranked]) -> String {
    let lines = list.iter().enumerate().map(|(i, r)| format!("{}) {}", i + 1, r.name)).collect::<Vec<_>>().join("\n");
    let n = list.len();
    let range = if n == 1 { "1".to_string() } else { format!("1-{n}") };
    if n == 1 {
        return pick(
            lang,
            format!("没有完全叫「{query}」的客户，是这个吗？\n{lines}\n回复 1 确认。"),
            format!("No customer is called `{query}` exactly. Did you mean:\n{lines}\nReply 1 to confirm."),
        );
    }
    pick(
        lang,
        format!("有 {n} 个客户匹配「{query}」：\n{lines}\n回复编号（{range}）选择。"),
        format!("{n} customers match `{query}`:\n{lines}\nReply with a number ({range})."),
    )
}

pub fn no_customer(lang: Lang, query: &str) -> String {
    pick(
        lang,
        format!("没找到客户「{query}」（只查你能看到的客户）。新建请发：新客户 {query}"),
        format!("No customer `{query}` among those you can see. To create it: new customer {query}"),
    )
}

pub fn nothing_to_select(lang: Lang) -> String {
    pick(
        lang,
        "现在没有需要你选择的问题。发送「帮助」看我能做什么。".into(),
        "There is no open question to answer with a number. Send \"help\" to see what I can do.".into(),
    )
}

pub fn question_expired(lang: Lang) -> String {
    pick(
        lang,
        format!("那个问题已经过期（{} 分钟内有效），请重新发送原来的消息。", super::PENDING_TTL_MINUTES),
        format!(
            "That question expired (answers are kept {} minutes); please send your message again.",
            super::PENDING_TTL_MINUTES
        ),
    )
}

pub fn bad_selection(lang: Lang, n: usize) -> String {
    pick(lang, format!("请回复 1 到 {n} 之间的编号。"), format!("Please reply with a number from 1 to {n}."))
}

/// An absolute time as a reply echoes it: 12月2日 周三 15:00 / Wed Dec 2 15:00.
pub fn format_time(at: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    use chrono::{Datelike, Timelike};
    let l = at.with_timezone(&tz);
    let zh_days = ["一", "二", "三", "四", "五", "六", "日"];
    let wd = l.weekday().num_days_from_monday() as usize;
    match lang {
        Lang::Zh => format!(
            "{}月{}日 周{} {:02}:{:02}",
            l.month(),
            l.day(),
            zh_days.get(wd).unwrap_or(&""),
            l.hour(),
            l.minute()
        ),
        Lang::En => l.format("%a %b %-d %H:%M").to_string(),
    }
}

pub(crate) fn stage_name(stages: &[Stage], key: &str, lang: Lang) -> String {
    stages.iter().find(|s| s.key == key).map_or(key.to_string(), |s| match lang {
        Lang::Zh => s.name_zh.clone(),
        Lang::En => s.name_en.clone(),
    })
}

pub fn reason_name(r: LostReason, lang: Lang) -> &'static str {
    match (lang, r) {
        (Lang::Zh, LostReason::Price) => "价格",
        (Lang::Zh, LostReason::Competitor) => "竞争对手",
        (Lang::Zh, LostReason::NoBudget) => "没预算",
        (Lang::Zh, LostReason::MissingFeatures) => "功能不足",
        (Lang::Zh, LostReason::Timing) => "时机",
        (Lang::Zh, LostReason::Unresponsive) => "失联",
        (Lang::Zh, LostReason::NoDecisionMaker) => "找不到决策人",
        (Lang::Zh, LostReason::PoorFit) => "不匹配",
        (Lang::Zh, LostReason::Other) => "其他",
        (Lang::En, r) => r.as_str(),
    }
}

pub fn customer_updated(lang: Lang, c: &Customer, tags: &[String]) -> String {
    let grade = c.grade.map_or("—".to_string(), |g| g.to_string());
    let owner = c.owner_name.clone().unwrap_or_else(|| "—".into());
    let tags = if tags.is_empty() { "—".to_string() } else { tags.join(" ") };
    pick(
        lang,
        format!("已更新客户 #{} {}：等级 {grade} · 负责人 {owner} · 标签 {tags}", c.id, c.name),
        format!("Updated customer #{} {}: grade {grade} · owner {owner} · tags {tags}", c.id, c.name),
    )
}

pub fn customer_list(lang: Lang, list: &[Customer], tz: Tz, now: DateTime<Utc>) -> String {
    if list.is_empty() {
        return pick(
            lang,
            "你还没有客户。新建：新客户 <名称>".into(),
            "You have no customers yet. Create one: new customer <name>".into(),
        );
    }
    let mut out =
        vec![pick(lang, format!("**你的客户**（{} 个）", list.len()), format!("**Your customers** ({})", list.len()))];
    for c in list.iter().take(20) {
        let grade = c.grade.map_or(String::new(), |g| format!(" [{g}]"));
        let last = match c.last_contacted_at {
            Some(t) => pick(
                lang,
                format!("{} 天前联系", (now - t).num_days()),
                format!("contacted {}d ago", (now - t).num_days()),
            ),
            None => pick(lang, "未联系".into(), "never contacted".into()),
        };
        out.push(format!("- #{} {}{grade} · {last}", c.id, c.name));
    }
    if list.len() > 20 {
        out.push(pick(lang, format!("……还有 {} 个", list.len() - 20), format!("…and {} more", list.len() - 20)));
    }
    let _ = tz;
    out.join("\n")
}

pub fn deal_saved(lang: Lang, d: &Deal, stages: &[Stage], created: bool) -> String {
    let stage = stage_name(stages, &d.stage, lang);
    let close = d.expected_close.map(|c| c.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "—".into());
    match (lang, created) {
        (Lang::Zh, true) => format!(
            "已建商机 #{} {}（{}）：{} · {stage} {}% · 预计成交 {close}",
            d.id,
            d.title,
            d.customer_name,
            yuan(d.amount_fen),
            d.probability
        ),
        (Lang::Zh, false) => format!(
            "已更新商机 #{} {}：{} · {stage} {}% · 预计成交 {close}",
            d.id,
            d.title,
            yuan(d.amount_fen),
            d.probability
        ),
        (Lang::En, true) => format!(
            "Created deal #{} {} ({}): {} · {stage} {}% · close {close}",
            d.id,
            d.title,
            d.customer_name,
            yuan(d.amount_fen),
            d.probability
        ),
        (Lang::En, false) => format!(
            "Updated deal #{} {}: {} · {stage} {}% · close {close}",
            d.id,
            d.title,
            yuan(d.amount_fen),
            d.probability
        ),
    }
}

pub fn ask_lost_reason(lang: Lang, d: &Deal, reasons: &[LostReason]) -> String {
    let list = reasons
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{}) {}", i + 1, reason_name(*r, lang)))
        .collect::<Vec<_>>()
        .join("\n");
    pick(
        lang,
        format!("商机 #{} {} 为什么输了？回复编号或原因：\n{list}", d.id, d.title),
        format!("Why was deal #{} {} lost? Reply with a number or a reason:\n{list}", d.id, d.title),
    )
}

pub fn deal_closed(lang: Lang, d: &Deal) -> String {
    match (d.status, lang) {
        (DealStatus::Won, Lang::Zh) => {
            format!("🎉 赢单！#{} {}（{}）{}", d.id, d.title, d.customer_name, yuan(d.amount_fen))
        }
        (DealStatus::Won, Lang::En) => {
            format!("🎉 Won! #{} {} ({}) {}", d.id, d.title, d.customer_name, yuan(d.amount_fen))
        }
        (_, lang) => {
            let reason = d.lost_reason.map_or("—", |r| reason_name(r, lang));
            pick(
                lang,
                format!("已记录输单 #{} {}，原因：{reason}", d.id, d.title),
                format!("Recorded deal #{} {} as lost, reason: {reason}", d.id, d.title),
            )
        }
    }
}

pub fn lead_created(lang: Lang, l: &Lead) -> String {
    pick(
        lang,
        format!("已登记线索 #{} {}，由你跟进。联系后可发「转化 #{}」转为客户。", l.id, l.company, l.id),
        format!("Lead #{} {} recorded and assigned to you. Once qualified: convert #{}", l.id, l.company, l.id),
    )
}

/// What a group sees when someone there talks to the bot. Replies can hold what the asker may see
/// and the group may not (a manager's team, a rep's customers), so the reply itself goes to the
/// asker privately (`private`), or, where the app cannot message users privately, stays unsent.
pub fn group_note(lang: Lang, private: bool) -> String {
    if private {
        pick(lang, "回复已私信发给你。".to_string(), "I've sent you the answer privately.".to_string())
    } else {
        pick(
            lang,
            "已收到。群里不显示回复内容（可能含客户信息），要查看请私聊我。".to_string(),
            "Got it. Answers are not shown in groups (they may hold customer data): message me directly to see them."
                .to_string(),
        )
    }
}

/// A lead a manager entered, routed by the rules: who got it and why.
pub fn lead_routed(lang: Lang, l: &Lead, why: &str) -> String {
    pick(
        lang,
        format!("已登记线索 #{} {}：{why}", l.id, l.company),
        format!("Lead #{} {} recorded: {why}", l.id, l.company),
    )
}

pub fn lead_assigned(lang: Lang, l: &Lead, to: &str) -> String {
    pick(
        lang,
        format!("线索 #{} {} 已分配给 {to}，已通知对方。", l.id, l.company),
        format!("Lead #{} {} assigned to {to}; they were notified.", l.id, l.company),
    )
}

pub fn lead_claimed(lang: Lang, l: &Lead) -> String {
    pick(
        lang,
        format!("已认领线索 #{} {}，记得尽快联系，联系后发「联系了 #{}」。", l.id, l.company, l.id),
        format!("You claimed lead #{} {}; contact them soon, then send \"contacted #{}\".", l.id, l.company, l.id),
    )
}

/// How long ago, short: 刚刚, 5 分钟前, 3 小时前, 2 天前.
fn age(lang: Lang, since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = now - since;
    let (m, h, days) = (d.num_minutes(), d.num_hours(), d.num_days());
    match lang {
        Lang::Zh if m < 1 => "刚刚".into(),
        Lang::Zh if h < 1 => format!("{m} 分钟前"),
        Lang::Zh if days < 1 => format!("{h} 小时前"),
        Lang::Zh => format!("{days} 天前"),
        Lang::En if m < 1 => "just now".into(),
        Lang::En if h < 1 => format!("{m}m ago"),
        Lang::En if days < 1 => format!("{h}h ago"),
        Lang::En => format!("{days}d ago"),
    }
}

/// Most pool leads one reply lists.
const POOL_SHOWN: usize = 20;

/// The public pool, newest first (the caller sorts).
pub fn pool(lang: Lang, leads: &[Lead], now: DateTime<Utc>) -> String {
    let Some(first) = leads.first() else {
        return pick(
            lang,
            "公海里现在没有可认领的线索。".into(),
            "The public pool is empty: no leads to claim right now.".into(),
        );
    };
    let n = leads.len();
    let mut out =
        vec![pick(lang, format!("**公海线索**（{n} 条，最新的在前）"), format!("**Lead pool** ({n}, newest first)"))];
    for l in leads.iter().take(POOL_SHOWN) {
        let mut parts = vec![format!("#{} {}", l.id, l.company)];
        parts.extend(
            [&l.region, &l.industry, &l.source].into_iter().flatten().filter(|v| !v.trim().is_empty()).cloned(),
        );
        parts.push(age(lang, l.created_at, now));
        out.push(format!("- {}", parts.join(" · ")));
    }
    if n > POOL_SHOWN {
        out.push(pick(lang, format!("……还有 {} 条更早的", n - POOL_SHOWN), format!("…and {} older", n - POOL_SHOWN)));
    }
    out.push(pick(lang, format!("认领请发「认领 #{}」", first.id), format!("To take one: claim #{}", first.id)));
    out.join("\n")
}

pub fn lead_status_set(lang: Lang, l: &Lead, reason: Option<&str>) -> String {
    let (id, company) = (l.id, &l.company);
    let why_zh = reason.map(|r| format!("（原因：{r}）")).unwrap_or_default();
    let why_en = reason.map(|r| format!(" (reason: {r})")).unwrap_or_default();
    match l.status {
        LeadStatus::Contacted => pick(
            lang,
            format!(
                "已记录联系，线索 #{id} {company} 的跟进时限已停止。确认有效发「确认 #{id}」，可以转客户时发「转化 #{id}」。"
            ),
            format!(
                "Contact recorded: the follow-up clock of lead #{id} {company} has stopped. Next: qualified #{id}, or convert #{id} to make it a customer."
            ),
        ),
        LeadStatus::Qualified => pick(
            lang,
            format!("线索 #{id} {company} 已确认有效。转为客户请发「转化 #{id}」。"),
            format!("Lead #{id} {company} is qualified. To make it a customer: convert #{id}"),
        ),
        LeadStatus::Discarded => pick(
            lang,
            format!("已放弃线索 #{id} {company}{why_zh}。"),
            format!("Discarded lead #{id} {company}{why_en}."),
        ),
        LeadStatus::Pool => pick(
            lang,
            format!("线索 #{id} {company} 已退回公海{why_zh}，其他人可以认领。"),
            format!("Lead #{id} {company} is back in the public pool{why_en}; anyone can claim it."),
        ),
        other => pick(
            lang,
            format!("线索 #{id} {company} 的状态现在是 {other}。"),
            format!("Lead #{id} {company} is now {other}."),
        ),
    }
}

/// What a rule looks at, in English (`describe` gives the Chinese).
fn describe_en(r: &Rule) -> String {
    let parts: Vec<String> =
        [("region", &r.region_prefix), ("industry", &r.industry), ("source", &r.source), ("tag", &r.tag)]
            .into_iter()
            .filter_map(|(label, v)| v.as_deref().filter(|v| !v.trim().is_empty()).map(|v| format!("{label} {v}")))
            .collect();
    if parts.is_empty() { "all leads".to_string() } else { parts.join(", ") }
}

/// "→ 李雷 · 上限 20" / "→ 团队 Team A（轮流）": who a rule gives leads to, and how.
fn rule_target(lang: Lang, r: &Rule, target: &str) -> String {
    let team = r.target_team_id.is_some() && r.target_user_id.is_none();
    let least = r.strategy == "least_loaded";
    let mut s = match (lang, team) {
        (Lang::Zh, true) => format!("→ 团队 {target}（{}）", if least { "最少负载" } else { "轮流" }),
        (Lang::En, true) => format!("→ team {target} ({})", if least { "least loaded" } else { "round robin" }),
        (_, false) => format!("→ {target}"),
    };
    if let Some(cap) = r.capacity {
        s.push_str(&pick(lang, format!(" · 每人上限 {cap}"), format!(" · cap {cap} each")));
    }
    s
}

fn rule_conditions(lang: Lang, r: &Rule) -> String {
    pick(lang, crate::crm::lead_rules::describe(r), describe_en(r))
}

/// The rules in order, each with the name its target goes by.
pub fn rules(lang: Lang, rules: &[(Rule, String)]) -> String {
    if rules.is_empty() {
        return pick(
            lang,
            "还没有分配规则，新线索都进公海。新建：新规则 青岛制造业 地区 青岛 行业 制造业 给 @李雷".into(),
            "No assignment rules yet: new leads go to the pool. Add one: new rule Qingdao region Qingdao to @lilei"
                .into(),
        );
    }
    let mut out = vec![pick(
        lang,
        format!("**分配规则**（{} 条，从上到下匹配，第一条满足的生效）", rules.len()),
        format!("**Assignment rules** ({}, checked top down; the first that matches takes the lead)", rules.len()),
    )];
    for (i, (r, target)) in rules.iter().enumerate() {
        let off =
            if r.active { String::new() } else { pick(lang, " · ⏸ 已停用".into(), " · ⏸ disabled".into()) };
        let (n, what, to) = (i + 1, rule_conditions(lang, r), rule_target(lang, r, target));
        out.push(pick(
            lang,
            format!("{n}. {}（#{}）：{what} {to}{off}", r.name, r.id),
            format!("{n}. {} (#{}): {what} {to}{off}", r.name, r.id),
        ));
    }
    out.push(pick(
        lang,
        "停用、启用或删除：停用规则 / 启用规则 / 删除规则 <名称或序号>".into(),
        "To change one: disable rule / enable rule / delete rule <name or number>".into(),
    ));
    out.join("\n")
}

pub fn rule_created(lang: Lang, r: &Rule, target: &str) -> String {
    pick(
        lang,
        format!(
            "已建规则 #{}「{}」（第 {} 条）：{} {}。符合条件的新线索会自动分配。",
            r.id,
            r.name,
            r.position,
            rule_conditions(lang, r),
            rule_target(lang, r, target)
        ),
        format!(
            "Created rule #{} `{}` (number {}): {} {}. Matching new leads are assigned automatically.",
            r.id,
            r.name,
            r.position,
            rule_conditions(lang, r),
            rule_target(lang, r, target)
        ),
    )
}

pub fn rule_deleted(lang: Lang, r: &Rule) -> String {
    pick(lang, format!("已删除规则 #{}「{}」。", r.id, r.name), format!("Deleted rule #{} `{}`.", r.id, r.name))
}

pub fn rule_toggled(lang: Lang, r: &Rule) -> String {
    match (lang, r.active) {
        (Lang::Zh, true) => format!("已启用规则 #{}「{}」，新线索会再按它分配。", r.id, r.name),
        (Lang::Zh, false) => {
            format!("已停用规则 #{}「{}」，新线索不再按它分配（发「启用规则 {}」恢复）。", r.id, r.name, r.name)
        }
        (Lang::En, true) => format!("Enabled rule #{} `{}`: new leads are routed by it again.", r.id, r.name),
        (Lang::En, false) => {
            format!(
                "Disabled rule #{} `{}`: new leads skip it (\"enable rule {}\" turns it back on).",
                r.id, r.name, r.name
            )
        }
    }
}

pub fn leave_set(lang: Lang, u: &User, on_leave: bool) -> String {
    match (lang, on_leave) {
        (Lang::Zh, true) => format!(
            "已设置 {} 休假：分配规则不再给 TA 分新线索，手上的线索不变。回来后发「销假 @{}」。",
            u.name, u.handle
        ),
        (Lang::Zh, false) => format!("{} 已销假，分配规则会重新给 TA 分线索。", u.name),
        (Lang::En, true) => format!(
            "{} is on leave: assignment rules give them no new leads (the leads they hold stay theirs). When they are back: back @{}",
            u.name, u.handle
        ),
        (Lang::En, false) => format!("{} is back: assignment rules give them leads again.", u.name),
    }
}

pub fn lead_converted(lang: Lang, c: &crate::crm::leads::Converted) -> String {
    let (l, cu, d) = (&c.lead, &c.customer, &c.deal);
    let (zh_how, en_how) = if c.linked {
        ("已关联到已有客户", "linked to existing customer")
    } else {
        ("已转为客户", "is now customer")
    };
    pick(
        lang,
        format!(
            "线索 #{} {zh_how} #{} {}，并建了商机 #{}（初步接触）。有金额后发「商机 #{} 金额 …」",
            l.id, cu.id, cu.name, d.id, d.id
        ),
        format!(
            "Lead #{} {en_how} #{} {}, with deal #{} (initial contact). Add the amount: deal #{} amount …",
            l.id, cu.id, cu.name, d.id, d.id
        ),
    )
}

pub fn time_in_past(lang: Lang, at: DateTime<Utc>, tz: Tz) -> String {
    let when = format_time(at, tz, lang);
    pick(
        lang,
        format!("{when} 已经过去了，提醒不能设在过去。请说一个将来的时间，例如「明天上午10点」。"),
        format!(
            "{when} has already passed; reminders cannot be in the past. Give a future time, e.g. \"tomorrow 10am\"."
        ),
    )
}

pub fn reminder_set(lang: Lang, t: &Task, tz: Tz) -> String {
    let when = format_time(t.due_at, tz, lang);
    pick(
        lang,
        format!("已设提醒：{when} {}（任务 #{}）", t.title, t.id),
        format!("Reminder set: {when} {} (task #{})", t.title, t.id),
    )
}

pub fn task_done(lang: Lang, t: &Task) -> String {
    pick(lang, format!("✅ 已完成任务 #{} {}", t.id, t.title), format!("✅ Done: task #{} {}", t.id, t.title))
}

pub fn task_snoozed(lang: Lang, t: &Task, tz: Tz) -> String {
    let when = format_time(t.due_at, tz, lang);
    pick(
        lang,
        format!("已推迟任务 #{} {} 到 {when}", t.id, t.title),
        format!("Snoozed task #{} {} until {when}", t.id, t.title),
    )
}

pub fn undone(lang: Lang, u: &Undone) -> String {
    let zh = |action: &str, entity: &str| {
        let a = match action {
            "create" => "新建的",
            "update" => "修改的",
            "won" => "赢单的",
            "lost" => "输单的",
            "assign" => "分配的",
            "claim" => "认领的",
            "convert" => "转化的",
            "complete" => "完成的",
            "snooze" => "推迟的",
            "set_status" => "改状态的",
            _ => "",
        };
        let e = match entity {
            "customer" => "客户",
            "contact" => "联系人",
            "activity" => "跟进记录",
            "deal" => "商机",
            "lead" => "线索",
            "task" => "任务",
            other => other,
        };
        format!("{a}{e}")
    };
    let what: Vec<String> = u
        .changes
        .iter()
        .map(|(action, entity, id)| match lang {
            Lang::Zh => format!("{} #{id}", zh(action, entity)),
            Lang::En => format!("{action} {entity} #{id}"),
        })
        .collect();
    pick(lang, format!("↩️ 已撤销：{}", what.join("，")), format!("↩️ Undone: {}", what.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_formats_thousands_and_cents() {
        assert_eq!(yuan(0), "¥0");
        assert_eq!(yuan(12_000_000), "¥120,000");
        assert_eq!(yuan(123_456_789), "¥1,234,567.89");
        assert_eq!(yuan(100), "¥1");
    }
}
