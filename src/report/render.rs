//! Digests and pipeline views as chat markdown: headline numbers first, then per-rep lines, then
//! the lists with `#ids` a reader can act on. Each platform gets its own dialect and size limit;
//! a long digest is split between sections or lines, never inside a line.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Digest, DigestKind, Funnel, MonthForecast, Pipeline, PipelineView, RiskList, ScopeKind};
use crate::bot::render::{pick, reason_name, stage_name, yuan};
use crate::crm::Lang;
pub use crate::platform::markdown::Dialect;
use crate::platform::markdown::{Section, assemble};

fn day(t: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let l = t.with_timezone(&tz);
    match lang {
        Lang::Zh => l.format("%m-%d").to_string(),
        Lang::En => l.format("%b %-d").to_string(),
    }
}

fn pct(p: f64) -> String {
    format!("{p:.0}%")
}

fn days(d: f64) -> String {
    format!("{d:.1}")
}

/// Cuts a name to `max` characters (not bytes) so one long name cannot push a line over a limit.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn scope_word(scope: ScopeKind, lang: Lang) -> &'static str {
    match (scope, lang) {
        (ScopeKind::Org, Lang::Zh) => "全公司",
        (ScopeKind::Team, Lang::Zh) => "团队",
        (ScopeKind::Own, Lang::Zh) => "我的",
        (ScopeKind::Org, Lang::En) => "Company",
        (ScopeKind::Team, Lang::En) => "Team",
        (ScopeKind::Own, Lang::En) => "My",
    }
}

/// The digest as one or more messages in the dialect.
pub fn digest(d: &Digest, dialect: Dialect, lang: Lang) -> Vec<String> {
    let tz: Tz = d.tz.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let scope = scope_word(d.scope, lang);
    let when = match d.kind {
        DigestKind::Daily => day(d.from, tz, lang),
        // `to` is midnight after the last day, so the last day is the one before.
        DigestKind::Weekly => {
            format!("{} ~ {}", day(d.from, tz, lang), day(d.to - chrono::Duration::seconds(1), tz, lang))
        }
    };
    let header = match (d.kind, lang) {
        (DigestKind::Daily, Lang::Zh) => format!("{scope}日报 {when}"),
        (DigestKind::Weekly, Lang::Zh) => format!("{scope}周报 {when}"),
        (DigestKind::Daily, Lang::En) => format!("{scope} daily digest {when}"),
        (DigestKind::Weekly, Lang::En) => format!("{scope} weekly digest {when}"),
    };
    let a = &d.activity;
    let mut head = vec![dialect.title(&header)];
    head.push(dialect.bold(&pick(
        lang,
        format!(
            "拜访 {} · 电话 {} · 其他 {} · 客户 {} · 新客户 {}",
            a.visits, a.calls, a.other, a.customers_touched, a.new_customers
        ),
        format!(
            "Visits {} · calls {} · other {} · customers {} · new {}",
            a.visits, a.calls, a.other, a.customers_touched, a.new_customers
        ),
    )));
    let dl = &d.deals;
    head.push(pick(
        lang,
        format!(
            "赢单 {} 单 {} · 输单 {} 单 {} · 推进 {} 次",
            dl.won.len(),
            yuan(dl.won_fen),
            dl.lost.len(),
            yuan(dl.lost_fen),
            dl.moves_total
        ),
        format!(
            "Won {} ({}) · lost {} ({}) · moves {}",
            dl.won.len(),
            yuan(dl.won_fen),
            dl.lost.len(),
            yuan(dl.lost_fen),
            dl.moves_total
        ),
    ));
    let l = &d.leads;
    head.push(pick(
        lang,
        format!(
            "线索 新增 {} · 分配 {} · 联系 {}（SLA 内 {}）· 转化 {}",
            l.new, l.assigned, l.contacted, l.contacted_in_sla, l.converted
        ),
        format!(
            "Leads new {} · assigned {} · contacted {} ({} within SLA) · converted {}",
            l.new, l.assigned, l.contacted, l.contacted_in_sla, l.converted
        ),
    ));
    head.push(forecast_headline(&d.forecast[0], lang));
    let mut sections = vec![Section { lines: head }];

    if d.scope != ScopeKind::Own && !a.reps.is_empty() {
        let mut lines = vec![dialect.bold(&pick(lang, "成员".into(), "Team".into()))];
        for r in &a.reps {
            let name = short(&r.name, 12);
            lines.push(if r.visits + r.calls + r.other == 0 && r.new_customers == 0 {
                pick(lang, format!("- {name}：没有记录"), format!("- {name}: nothing logged"))
            } else {
                pick(
                    lang,
                    format!(
                        "- {name}：拜访 {} · 电话 {} · 其他 {} · 客户 {} · 新客户 {}",
                        r.visits, r.calls, r.other, r.customers_touched, r.new_customers
                    ),
                    format!(
                        "- {name}: visits {} · calls {} · other {} · customers {} · new {}",
                        r.visits, r.calls, r.other, r.customers_touched, r.new_customers
                    ),
                )
            });
        }
        sections.push(Section { lines });
    }

    if !l.sources.is_empty() {
        let parts: Vec<String> = l
            .sources
            .iter()
            .map(|s| {
                let name = if s.source.is_empty() {
                    pick(lang, "未注明".into(), "unknown".into())
                } else {
                    short(&s.source, 10)
                };
                pick(lang, format!("{name} {}/{}", s.new, s.converted), format!("{name} {}/{}", s.new, s.converted))
            })
            .collect();
        sections.push(Section {
            lines: vec![pick(
                lang,
                format!("线索来源（新增/转化）：{}", parts.join(" · ")),
                format!("Lead sources (new/converted): {}", parts.join(" · ")),
            )],
        });
    }

    let deal_lines = deal_events(d, dialect, lang);
    if !deal_lines.is_empty() {
        sections.push(Section { lines: deal_lines });
    }
    sections.push(Section { lines: pipeline_lines(&d.pipeline, dialect, lang) });
    sections.push(Section { lines: funnel_lines(&d.funnel, dialect, lang) });
    sections.push(Section { lines: forecast_lines(&d.forecast, d.scope, dialect, lang) });
    sections.push(Section { lines: risk_lines(d, tz, dialect, lang) });
    assemble(dialect, &header, sections)
}

fn forecast_headline(m: &MonthForecast, lang: Lang) -> String {
    match (m.target_fen, m.of_target_pct()) {
        (Some(t), Some(p)) => pick(
            lang,
            format!("本月预测 {} / 目标 {}（{}）", yuan(m.expected_fen()), yuan(t), pct(p)),
            format!("This month: forecast {} / target {} ({})", yuan(m.expected_fen()), yuan(t), pct(p)),
        ),
        _ => pick(
            lang,
            format!("本月预测 {}（已赢 {} + 加权 {}）", yuan(m.expected_fen()), yuan(m.won_fen), yuan(m.weighted_fen)),
            format!(
                "This month: forecast {} (won {} + weighted {})",
                yuan(m.expected_fen()),
                yuan(m.won_fen),
                yuan(m.weighted_fen)
            ),
        ),
    }
}

fn deal_events(d: &Digest, dialect: Dialect, lang: Lang) -> Vec<String> {
    let dl = &d.deals;
    let mut lines = Vec::new();
    if dl.won.is_empty() && dl.lost.is_empty() && dl.moves.is_empty() {
        return lines;
    }
    lines.push(dialect.bold(&pick(lang, "商机".into(), "Deals".into())));
    let limit = 10;
    for w in dl.won.iter().take(limit) {
        lines.push(dialect.good(&pick(
            lang,
            format!("🎉 赢单 #{} {} {}（{}）", w.deal_id, short(&w.title, 20), yuan(w.amount_fen), short(&w.owner, 12)),
            format!("🎉 Won #{} {} {} ({})", w.deal_id, short(&w.title, 20), yuan(w.amount_fen), short(&w.owner, 12)),
        )));
    }
    if dl.won.len() > limit {
        lines.push(pick(
            lang,
            format!("…另有 {} 单赢单", dl.won.len() - limit),
            format!("…{} more won", dl.won.len() - limit),
        ));
    }
    for x in dl.lost.iter().take(limit) {
        let reason = x.lost_reason.map(|r| format!(" · {}", reason_name(r, lang))).unwrap_or_default();
        lines.push(pick(
            lang,
            format!(
                "✗ 输单 #{} {} {}（{}）{reason}",
                x.deal_id,
                short(&x.title, 20),
                yuan(x.amount_fen),
                short(&x.owner, 12)
            ),
            format!(
                "✗ Lost #{} {} {} ({}){reason}",
                x.deal_id,
                short(&x.title, 20),
                yuan(x.amount_fen),
                short(&x.owner, 12)
            ),
        ));
    }
    if dl.lost.len() > limit {
        lines.push(pick(
            lang,
            format!("…另有 {} 单输单", dl.lost.len() - limit),
            format!("…{} more lost", dl.lost.len() - limit),
        ));
    }
    if !dl.lost_reasons.is_empty() {
        let parts: Vec<String> = dl
            .lost_reasons
            .iter()
            .map(|r| {
                let name = r.reason.map_or_else(
                    || pick(lang, "未注明".into(), "no reason".into()),
                    |r| reason_name(r, lang).to_string(),
                );
                format!("{name} {}", r.deals)
            })
            .collect();
        lines.push(pick(
            lang,
            format!("输单原因：{}", parts.join(" · ")),
            format!("Lost reasons: {}", parts.join(" · ")),
        ));
    }
    for m in &dl.moves {
        lines.push(pick(
            lang,
            format!(
                "↗ #{} {} {} → {}（{}）",
                m.deal_id,
                short(&m.title, 20),
                stage_name(&d.stages, &m.from_stage, lang),
                stage_name(&d.stages, &m.to_stage, lang),
                short(&m.owner, 12)
            ),
            format!(
                "↗ #{} {} {} → {} ({})",
                m.deal_id,
                short(&m.title, 20),
                stage_name(&d.stages, &m.from_stage, lang),
                stage_name(&d.stages, &m.to_stage, lang),
                short(&m.owner, 12)
            ),
        ));
    }
    let more = dl.moves_total - dl.moves.len() as i64;
    if more > 0 {
        lines.push(pick(lang, format!("…另有 {more} 次推进"), format!("…{more} more moves")));
    }
    lines
}

fn pipeline_lines(p: &Pipeline, dialect: Dialect, lang: Lang) -> Vec<String> {
    let mut lines = vec![dialect.bold(&pick(
        lang,
        format!("进行中 {} 单 {} · 加权 {}", p.total_count, yuan(p.total_fen), yuan(p.weighted_fen)),
        format!("Open {} deals {} · weighted {}", p.total_count, yuan(p.total_fen), yuan(p.weighted_fen)),
    ))];
    for s in &p.stages {
        let name = if lang == Lang::Zh { &s.name_zh } else { &s.name_en };
        lines.push(pick(
            lang,
            format!("- {name} {}%：{} 单 · {}", s.probability, s.count, yuan(s.amount_fen)),
            format!("- {name} {}%: {} · {}", s.probability, s.count, yuan(s.amount_fen)),
        ));
    }
    lines
}

fn funnel_lines(f: &Funnel, dialect: Dialect, lang: Lang) -> Vec<String> {
    let mut lines = vec![dialect.bold(&pick(
        lang,
        format!("漏斗（近 {} 天，{} 单）", f.days, f.deals),
        format!("Funnel (last {} days, {} deals)", f.days, f.deals),
    ))];
    if f.deals == 0 {
        lines.push(pick(lang, "这段时间没有商机变动。".into(), "No deal moved in this window.".into()));
        return lines;
    }
    for s in &f.steps {
        let name = if lang == Lang::Zh { &s.name_zh } else { &s.name_en };
        let conv = s
            .to_next_pct
            .map(|p| pick(lang, format!(" → 下一步 {}", pct(p)), format!(" → next {}", pct(p))))
            .unwrap_or_default();
        let dwell = s
            .dwell
            .map(|d| {
                pick(
                    lang,
                    format!(" · 停留中位 {} 天（平均 {}）", days(d.median_days), days(d.avg_days)),
                    format!(" · median {} d (avg {})", days(d.median_days), days(d.avg_days)),
                )
            })
            .unwrap_or_default();
        lines.push(pick(
            lang,
            format!("- {name} {}{conv}{dwell}", s.reached),
            format!("- {name} {}{conv}{dwell}", s.reached),
        ));
    }
    lines
}

fn forecast_lines(f: &[MonthForecast; 2], scope: ScopeKind, dialect: Dialect, lang: Lang) -> Vec<String> {
    let mut lines = vec![dialect.bold(&pick(lang, "预测".into(), "Forecast".into()))];
    for m in f {
        let target = match (m.target_fen, m.of_target_pct()) {
            (Some(t), Some(p)) => {
                pick(lang, format!(" / 目标 {}（{}）", yuan(t), pct(p)), format!(" / target {} ({})", yuan(t), pct(p)))
            }
            _ => String::new(),
        };
        lines.push(pick(
            lang,
            format!(
                "- {}：{}（已赢 {} + 加权 {}，{} 单待签）{target}",
                m.month,
                yuan(m.expected_fen()),
                yuan(m.won_fen),
                yuan(m.weighted_fen),
                m.open_deals
            ),
            format!(
                "- {}: {} (won {} + weighted {}, {} open){target}",
                m.month,
                yuan(m.expected_fen()),
                yuan(m.won_fen),
                yuan(m.weighted_fen),
                m.open_deals
            ),
        ));
    }
    if scope != ScopeKind::Own {
        for r in f[0].reps.iter().filter(|r| r.target_fen.is_some()).take(20) {
            let expected = r.won_fen.saturating_add(r.weighted_fen);
            let t = r.target_fen.unwrap_or(0);
            let p = if t > 0 { pct(expected as f64 * 100.0 / t as f64) } else { "-".into() };
            lines.push(pick(
                lang,
                format!("  {}：{} / 目标 {}（{p}）", short(&r.name, 12), yuan(expected), yuan(t)),
                format!("  {}: {} / target {} ({p})", short(&r.name, 12), yuan(expected), yuan(t)),
            ));
        }
    }
    lines
}

fn risk_lines(d: &Digest, tz: Tz, dialect: Dialect, lang: Lang) -> Vec<String> {
    let r = &d.risks;
    if r.overdue_tasks.total == 0 && r.quiet_a.total == 0 && r.stuck_deals.total == 0 {
        return vec![dialect.good(&pick(
            lang,
            "✅ 没有逾期跟进、沉默的 A 级客户或停滞商机。".into(),
            "✅ Nothing overdue, quiet or stuck.".into(),
        ))];
    }
    let mut lines = vec![dialect.warn(&pick(lang, "⚠️ 需要处理".into(), "⚠️ Needs attention".into()))];
    let more = |lines: &mut Vec<String>, l: &RiskList| {
        let more = l.total - l.items.len() as i64;
        if more > 0 {
            lines.push(pick(lang, format!("  …另有 {more} 个"), format!("  …{more} more")));
        }
    };
    let own = d.scope == ScopeKind::Own;
    let owner = |o: &str| if own { String::new() } else { format!(" · {}", short(o, 12)) };
    if r.overdue_tasks.total > 0 {
        lines.push(pick(
            lang,
            format!("逾期跟进 {}：", r.overdue_tasks.total),
            format!("Overdue follow-ups {}:", r.overdue_tasks.total),
        ));
        for t in &r.overdue_tasks.items {
            lines.push(pick(
                lang,
                format!("- #{} {}{} · {} 到期", t.id, short(&t.title, 24), owner(&t.owner), day(t.since, tz, lang)),
                format!("- #{} {}{} · due {}", t.id, short(&t.title, 24), owner(&t.owner), day(t.since, tz, lang)),
            ));
        }
        more(&mut lines, &r.overdue_tasks);
    }
    if r.quiet_a.total > 0 {
        lines.push(pick(
            lang,
            format!("A 级客户超过 {} 天未联系 {}：", r.quiet_a_days, r.quiet_a.total),
            format!("A customers quiet over {} days {}:", r.quiet_a_days, r.quiet_a.total),
        ));
        for c in &r.quiet_a.items {
            let quiet = (d.now - c.since).num_days();
            lines.push(pick(
                lang,
                format!("- #{} {}{} · {quiet} 天", c.id, short(&c.title, 20), owner(&c.owner)),
                format!("- #{} {}{} · {quiet} days", c.id, short(&c.title, 20), owner(&c.owner)),
            ));
        }
        more(&mut lines, &r.quiet_a);
    }
    if r.stuck_deals.total > 0 {
        lines.push(pick(
            lang,
            format!("停滞商机 {}：", r.stuck_deals.total),
            format!("Stuck deals {}:", r.stuck_deals.total),
        ));
        for s in &r.stuck_deals.items {
            let stage = s.stage.as_deref().map(|k| stage_name(&d.stages, k, lang)).unwrap_or_default();
            let stuck = (d.now - s.since).num_days();
            lines.push(pick(
                lang,
                format!("- #{} {} · {stage} {stuck} 天{}", s.id, short(&s.title, 20), owner(&s.owner)),
                format!("- #{} {} · {stage} {stuck} days{}", s.id, short(&s.title, 20), owner(&s.owner)),
            ));
        }
        more(&mut lines, &r.stuck_deals);
    }
    lines.push(pick(
        lang,
        "回复「完成 #编号」「推迟 #编号 明天」或「商机 #编号 阶段 …」处理。".into(),
        "Reply `done #id`, `snooze #id tomorrow` or `deal #id stage …`.".into(),
    ));
    lines
}

/// `漏斗` / `pipeline`: open deals per stage, the funnel and the forecast.
pub fn pipeline_view(v: &PipelineView, dialect: Dialect, lang: Lang) -> Vec<String> {
    let header = match (v.scope, lang) {
        (ScopeKind::Own, Lang::Zh) => "我的漏斗".to_string(),
        (ScopeKind::Team, Lang::Zh) => "团队漏斗".to_string(),
        (ScopeKind::Org, Lang::Zh) => "全公司漏斗".to_string(),
        (ScopeKind::Own, Lang::En) => "My pipeline".to_string(),
        (ScopeKind::Team, Lang::En) => "Team pipeline".to_string(),
        (ScopeKind::Org, Lang::En) => "Company pipeline".to_string(),
    };
    let sections = vec![
        Section { lines: vec![dialect.title(&header)] },
        Section { lines: pipeline_lines(&v.pipeline, dialect, lang) },
        Section { lines: funnel_lines(&v.funnel, dialect, lang) },
        Section { lines: forecast_lines(&v.forecast, v.scope, dialect, lang) },
    ];
    assemble(dialect, &header, sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_counts_characters() {
        assert_eq!(short("青岛海尔模具有限公司", 4), "青岛海…");
        assert_eq!(short("abc", 4), "abc");
    }
}
