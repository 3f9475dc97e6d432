//! Firing due task reminders.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Scheduler;
use super::calendar::defer_past_quiet;
use crate::bot::format_time;
use crate::command::detect_lang;
use crate::crm::{self, Lang};
use crate::outbox::{self, Card, Kind, OutMessage, Outgoing, Target};
use crate::store::schedule::DueReminder;
use crate::store::{self};

/// Fires up to `limit` due reminders in one transaction: each is queued in the outbox and marked
/// fired, or, when it falls in quiet hours, moved to the end of them. Returns (fired, deferred).
pub(super) async fn fire_batch(s: &Scheduler, now: DateTime<Utc>, limit: i64) -> crm::Result<(usize, usize)> {
    let mut tx = s.db.begin_claim().await?;
    let due = store::schedule::due_reminders(&mut tx, now, limit).await?;
    if due.is_empty() {
        tx.rollback().await?;
        return Ok((0, 0));
    }
    let mut deferred = 0;
    let mut firing: Vec<(&DueReminder, Tz, bool)> = Vec::with_capacity(due.len());
    for r in &due {
        let tz: Tz = r.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
        let late = now - r.remind_at > s.plan.late_after;
        // A time the user chose goes out even at night, but only at that time: a late one waits
        // for the morning like the rest.
        if !r.remind_exact || late {
            let release = defer_past_quiet(now, tz, s.plan.org(&r.org_name).quiet.as_ref());
            if release > now {
                store::schedule::defer_reminder(&mut tx, r.task_id, release).await?;
                deferred += 1;
                continue;
            }
        }
        firing.push((r, tz, late));
    }
    // One query for the targets, one insert for the messages, one update for the tasks.
    let owners: Vec<i64> = firing.iter().map(|(r, _, _)| r.owner_id).collect();
    let targets = s.routes.targets_for_users(&mut tx, &owners).await?;
    let console =
        Target { platform: crate::platform::console::PLATFORM.into(), app: String::new(), recipient: String::new() };
    let messages: Vec<(OutMessage, String)> = firing
        .iter()
        .map(|(r, tz, late)| {
            (render(r, *tz, *late), format!("reminder:{}:{}", r.task_id, r.remind_at.timestamp_millis()))
        })
        .collect();
    let outs: Vec<Outgoing<'_>> = firing
        .iter()
        .zip(&messages)
        .map(|((r, _, _), (message, key))| Outgoing {
            org_id: Some(r.org_id),
            user_id: Some(r.owner_id),
            kind: Kind::Reminder,
            target: targets.get(&r.owner_id).unwrap_or(&console),
            message,
            dedupe_key: key,
            not_before: now,
        })
        .collect();
    outbox::enqueue_many(&mut tx, &outs, now).await?;
    let ids: Vec<i64> = firing.iter().map(|(r, _, _)| r.task_id).collect();
    store::schedule::mark_reminded_many(&mut tx, &ids, now).await?;
    let fired = ids.len();
    tx.commit().await?;
    if fired > 0 {
        tracing::info!(fired, deferred, "reminders fired");
    }
    Ok((fired, deferred))
}

/// The reminder: what, for whom, when, what was said last, and how to act on it.
pub(crate) fn render(r: &DueReminder, tz: Tz, late: bool) -> OutMessage {
    let lang = detect_lang(&r.title);
    let zh = lang == Lang::Zh;
    let id = r.task_id;
    let when = format_time(r.due_at, tz, lang);
    let mut lines =
        vec![if zh { format!("⏰ 提醒 #{id}：{}", r.title) } else { format!("⏰ Reminder #{id}: {}", r.title) }];
    if let Some(name) = &r.customer_name {
        let last = match r.last_contacted_at {
            Some(at) if zh => format!(" · 上次联系 {}", format_time(at, tz, lang)),
            Some(at) => format!(" · last contact {}", format_time(at, tz, lang)),
            None if zh => " · 还没有联系记录".to_string(),
            None => " · never contacted".to_string(),
        };
        lines.push(if zh { format!("客户：{name}{last}") } else { format!("Customer: {name}{last}") });
    }
    if let Some(step) = r.next_step.as_deref().filter(|s| !s.trim().is_empty()) {
        lines.push(if zh { format!("下一步：{step}") } else { format!("Next step: {step}") });
    }
    lines.push(if zh { format!("时间：{when}") } else { format!("Due: {when}") });
    if late {
        lines.push(if zh {
            "（晚到的提醒：到期时系统不在线）".to_string()
        } else {
            "(late: the system was offline when this was due)".to_string()
        });
    }
    lines.push(if zh {
        format!("回复「完成 #{id}」或「推迟 #{id} 2天」")
    } else {
        format!("Reply \"done #{id}\" or \"snooze #{id} 2 days\"")
    });
    let text = lines.join("\n");
    let (done, snooze) = if zh { ("完成", "推迟1天") } else { ("Done", "+1 day") };
    let card = Card {
        title: truncate(&lines[0], 120),
        description: truncate(&lines[1..lines.len() - 1].join("\n"), 300),
        key: format!("remind-{id}-{}", r.remind_at.timestamp()),
        buttons: vec![(format!("done-{id}"), done.to_string()), (format!("snooze-{id}"), snooze.to_string())],
    };
    OutMessage { text, card: Some(card), markdown: false, image_png: None }
}

/// At most `max` bytes, cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
