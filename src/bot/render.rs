//! Reply texts, in the user's language. Short, phone-friendly, each with the one next step.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::IncomingMessage;
use crate::command::spec;
use crate::crm::activities::Logged;
use crate::crm::customers::CustomerDetail;
use crate::crm::matching::Ranked;
use crate::crm::tasks::Today;
use crate::crm::{Customer, Lang};

fn pick(lang: Lang, zh: String, en: String) -> String {
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

pub fn usage(lang: Lang, command: &str) -> String {
    match spec::spec(command) {
        Some(s) => pick(
            lang,
            format!("格式：{}\n例如：{}", s.usage.zh, s.examples.first().map_or("", |e| e.text.as_str())),
            format!("Usage: {}\ne.g. {}", s.usage.en, first_english_example(s)),
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

pub fn activity_logged(lang: Lang, l: &Logged) -> String {
    let a = &l.activity;
    let mut s = pick(
        lang,
        format!("已记录{}：{}（#{}）\n{}", a.kind.zh(), a.customer_name, a.id, a.content),
        format!("Logged {} with {} (#{})\n{}", a.kind.as_str(), a.customer_name, a.id, a.content),
    );
    if let Some(t) = &l.follow_up {
        s.push('\n');
        s.push_str(&pick(lang, format!("已建跟进任务 #{}", t.id), format!("Follow-up task #{} created", t.id)));
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

pub fn bad_selection(lang: Lang, n: usize) -> String {
    pick(lang, format!("请回复 1 到 {n} 之间的编号。"), format!("Please reply with a number from 1 to {n}."))
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
