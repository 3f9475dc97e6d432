//! `[schedule]`: reminders, quiet hours, working days, cron jobs and the outbox dispatcher.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::calendar::{Calendar, CalendarConfig, CronSchedule, QuietHours};
use crate::outbox::DispatchConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    /// Run the scheduler and the outbox dispatcher in this `serve` instance.
    pub enabled: bool,
    /// How often the scheduler looks for due reminders and jobs, in milliseconds.
    pub tick_ms: u64,
    /// This instance's name in leases and job runs; empty = host name and process id.
    pub instance_id: String,
    /// No reminder is pushed in this local window unless the user chose that exact time; `off` for none.
    pub quiet_hours: String,
    /// A reminder that fires this much after its time (the server was down) says it is late.
    pub late_after_secs: u64,
    /// Days without contact after which an A/B/C customer gets a follow-up task.
    pub follow_up_days_a: u32,
    pub follow_up_days_b: u32,
    pub follow_up_days_c: u32,
    /// Days a deal may stay in a stage (by stage key) before its owner is nudged.
    pub stage_dwell_days: BTreeMap<String, u32>,
    /// The trailing window of the funnel in digests and `漏斗` / `pipeline`, in days.
    pub funnel_days: u32,
    /// Cron expressions in each org's time zone (5 fields: minute hour day month weekday), or `off`.
    /// The daily digest and the overdue summary skip non-working days. The defaults avoid :00 and
    /// :30, when every WeCom app in China sends at once.
    pub daily_digest: String,
    pub weekly_digest: String,
    pub follow_up: String,
    pub stuck_deals: String,
    pub overdue_tasks: String,
    /// The lead SLA clock (reminders, escalation, recycling); outside quiet hours only.
    pub lead_sla: String,
    /// Working hours a new lead's owner has to contact it; then the owner is reminded.
    pub lead_sla_hours: u32,
    /// Working hours after the SLA until the owner's manager is told.
    pub lead_sla_escalate_hours: u32,
    /// Working hours after the SLA until the lead goes back to the public pool; 0 = never.
    pub lead_sla_recycle_hours: u32,
    /// Outbox: messages claimed per batch, lease, attempts before dead-lettering, backoff, parallel sends.
    pub outbox_batch: i64,
    pub outbox_lease_secs: u64,
    pub outbox_max_attempts: i64,
    pub outbox_backoff_base_secs: u64,
    pub outbox_backoff_max_secs: u64,
    pub outbox_concurrency: usize,
    /// Sent and dropped messages are deleted after this many days (dead ones are kept).
    pub outbox_keep_days: u32,
    /// Per-org quiet hours and working-day calendars (holidays and make-up workdays, 调休).
    pub orgs: Vec<OrgSchedule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSchedule {
    /// The org's name.
    pub org: String,
    #[serde(default)]
    pub quiet_hours: Option<String>,
    /// Weekend days, e.g. ["Sat", "Sun"] (the default).
    #[serde(default)]
    pub weekend: Option<Vec<String>>,
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
    /// Weekend days that are worked (调休).
    #[serde(default)]
    pub workdays: Vec<NaiveDate>,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            tick_ms: 500,
            instance_id: String::new(),
            quiet_hours: "21:00-08:00".into(),
            late_after_secs: 120,
            follow_up_days_a: 3,
            follow_up_days_b: 7,
            follow_up_days_c: 14,
            stage_dwell_days: [
                ("initial_contact", 14),
                ("needs_analysis", 21),
                ("proposal", 14),
                ("negotiation", 21),
                ("contract", 14),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            funnel_days: 90,
            daily_digest: "3 9 * * *".into(),
            weekly_digest: "3 9 * * Mon".into(),
            follow_up: "17 * * * *".into(),
            stuck_deals: "37 9 * * *".into(),
            overdue_tasks: "55 8 * * *".into(),
            lead_sla: "4/10 * * * *".into(),
            lead_sla_hours: 48,
            lead_sla_escalate_hours: 24,
            lead_sla_recycle_hours: 0,
            outbox_batch: 256,
            outbox_lease_secs: 60,
            outbox_max_attempts: 8,
            outbox_backoff_base_secs: 5,
            outbox_backoff_max_secs: 3600,
            outbox_concurrency: 32,
            outbox_keep_days: 30,
            orgs: Vec::new(),
        }
    }
}

impl ScheduleSettings {
    /// Every cron job `off`: tests and benchmarks turn on only what they look at.
    pub fn without_jobs(mut self) -> Self {
        for job in [
            &mut self.daily_digest,
            &mut self.weekly_digest,
            &mut self.follow_up,
            &mut self.stuck_deals,
            &mut self.overdue_tasks,
            &mut self.lead_sla,
        ] {
            *job = "off".into();
        }
        self
    }
}

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    DailyDigest,
    WeeklyDigest,
    FollowUp,
    StuckDeals,
    OverdueTasks,
    LeadSla,
}

impl Job {
    pub const ALL: [Job; 6] =
        [Job::DailyDigest, Job::WeeklyDigest, Job::FollowUp, Job::StuckDeals, Job::OverdueTasks, Job::LeadSla];

    pub fn key(self) -> &'static str {
        match self {
            Job::DailyDigest => "daily_digest",
            Job::WeeklyDigest => "weekly_digest",
            Job::FollowUp => "follow_up",
            Job::StuckDeals => "stuck_deals",
            Job::OverdueTasks => "overdue_tasks",
            Job::LeadSla => "lead_sla",
        }
    }

    /// Jobs that do nothing on a non-working day.
    pub fn workdays_only(self) -> bool {
        matches!(self, Job::DailyDigest | Job::OverdueTasks)
    }
}

/// One org's quiet hours and calendar.
#[derive(Debug, Clone, Default)]
pub struct OrgPlan {
    pub quiet: Option<QuietHours>,
    pub calendar: Calendar,
}

/// The validated schedule.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tick: Duration,
    pub late_after: chrono::Duration,
    /// Follow-up limits in days for grades A, B, C.
    pub follow_up_days: [i64; 3],
    pub stage_dwell_days: BTreeMap<String, i64>,
    /// Lead SLA: contact within, escalate after, recycle after (0 = never), in working hours.
    pub lead_sla_hours: [i64; 3],
    pub jobs: Vec<(Job, CronSchedule)>,
    pub default_org: OrgPlan,
    /// By org name.
    pub orgs: HashMap<String, OrgPlan>,
    pub dispatch: DispatchConfig,
    pub outbox_keep: chrono::Duration,
    /// What digests and the pipeline view read (funnel window, risk limits).
    pub report: crate::report::ReportOptions,
}

impl Plan {
    pub fn org(&self, name: &str) -> &OrgPlan {
        self.orgs.get(name).unwrap_or(&self.default_org)
    }
}

/// What is wrong with a `[schedule]` key.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    pub key: &'static str,
    pub env: &'static str,
    pub message: String,
}

fn quiet(key: &'static str, env: &'static str, text: &str) -> Result<Option<QuietHours>, PlanError> {
    match text.trim() {
        "" | "off" | "none" => Ok(None),
        t => t.parse::<QuietHours>().map(Some).map_err(|e| PlanError { key, env, message: e.to_string() }),
    }
}

impl TryFrom<&ScheduleSettings> for Plan {
    type Error = PlanError;

    fn try_from(s: &ScheduleSettings) -> Result<Self, PlanError> {
        let bad = |key, env, message: String| PlanError { key, env, message };
        if s.tick_ms < 10 || s.tick_ms > 60_000 {
            return Err(bad("schedule.tick_ms", "CHATCRM_SCHEDULE__TICK_MS", "must be between 10 and 60000".into()));
        }
        for (key, env, days) in [
            ("schedule.follow_up_days_a", "CHATCRM_SCHEDULE__FOLLOW_UP_DAYS_A", s.follow_up_days_a),
            ("schedule.follow_up_days_b", "CHATCRM_SCHEDULE__FOLLOW_UP_DAYS_B", s.follow_up_days_b),
            ("schedule.follow_up_days_c", "CHATCRM_SCHEDULE__FOLLOW_UP_DAYS_C", s.follow_up_days_c),
        ] {
            if !(1..=365).contains(&days) {
                return Err(bad(key, env, "must be between 1 and 365 days".into()));
            }
        }
        if let Some((stage, _)) = s.stage_dwell_days.iter().find(|(_, d)| !(1..=3650).contains(*d)) {
            return Err(bad(
                "schedule.stage_dwell_days",
                "CHATCRM_SCHEDULE__STAGE_DWELL_DAYS",
                format!("`{stage}`: must be between 1 and 3650 days"),
            ));
        }
        if !(1..=3650).contains(&s.funnel_days) {
            return Err(bad(
                "schedule.funnel_days",
                "CHATCRM_SCHEDULE__FUNNEL_DAYS",
                "must be between 1 and 3650".into(),
            ));
        }
        let mut jobs = Vec::new();
        for (job, text, key, env) in [
            (Job::DailyDigest, &s.daily_digest, "schedule.daily_digest", "CHATCRM_SCHEDULE__DAILY_DIGEST"),
            (Job::WeeklyDigest, &s.weekly_digest, "schedule.weekly_digest", "CHATCRM_SCHEDULE__WEEKLY_DIGEST"),
            (Job::FollowUp, &s.follow_up, "schedule.follow_up", "CHATCRM_SCHEDULE__FOLLOW_UP"),
            (Job::StuckDeals, &s.stuck_deals, "schedule.stuck_deals", "CHATCRM_SCHEDULE__STUCK_DEALS"),
            (Job::OverdueTasks, &s.overdue_tasks, "schedule.overdue_tasks", "CHATCRM_SCHEDULE__OVERDUE_TASKS"),
            (Job::LeadSla, &s.lead_sla, "schedule.lead_sla", "CHATCRM_SCHEDULE__LEAD_SLA"),
        ] {
            if matches!(text.trim(), "off" | "") {
                continue;
            }
            let cron = text.parse::<CronSchedule>().map_err(|e| bad(key, env, e.to_string()))?;
            jobs.push((job, cron));
        }
        if s.lead_sla_hours == 0 || s.lead_sla_hours > 24 * 30 {
            return Err(bad(
                "schedule.lead_sla_hours",
                "CHATCRM_SCHEDULE__LEAD_SLA_HOURS",
                "must be between 1 and 720".into(),
            ));
        }
        if s.outbox_batch < 1 || s.outbox_batch > 10_000 {
            return Err(bad(
                "schedule.outbox_batch",
                "CHATCRM_SCHEDULE__OUTBOX_BATCH",
                "must be between 1 and 10000".into(),
            ));
        }
        if s.outbox_max_attempts < 1 {
            return Err(bad(
                "schedule.outbox_max_attempts",
                "CHATCRM_SCHEDULE__OUTBOX_MAX_ATTEMPTS",
                "must be at least 1".into(),
            ));
        }
        if s.outbox_lease_secs < 5 {
            return Err(bad(
                "schedule.outbox_lease_secs",
                "CHATCRM_SCHEDULE__OUTBOX_LEASE_SECS",
                "must be at least 5 (longer than a send may take)".into(),
            ));
        }
        if s.outbox_backoff_base_secs == 0 || s.outbox_backoff_max_secs < s.outbox_backoff_base_secs {
            return Err(bad(
                "schedule.outbox_backoff_base_secs",
                "CHATCRM_SCHEDULE__OUTBOX_BACKOFF_BASE_SECS",
                "must be at least 1 and at most outbox_backoff_max_secs".into(),
            ));
        }
        let default_quiet = quiet("schedule.quiet_hours", "CHATCRM_SCHEDULE__QUIET_HOURS", &s.quiet_hours)?;
        let mut orgs = HashMap::new();
        for o in &s.orgs {
            let q = match &o.quiet_hours {
                Some(t) => quiet("schedule.orgs", "CHATCRM_SCHEDULE__ORGS", t)?,
                None => default_quiet,
            };
            let cfg = CalendarConfig {
                weekend: o.weekend.clone(),
                holidays: o.holidays.clone(),
                workdays: o.workdays.clone(),
            };
            let calendar = Calendar::try_from(cfg)
                .map_err(|e| bad("schedule.orgs", "CHATCRM_SCHEDULE__ORGS", format!("org `{}`: {e}", o.org)))?;
            if orgs.insert(o.org.clone(), OrgPlan { quiet: q, calendar }).is_some() {
                return Err(bad("schedule.orgs", "CHATCRM_SCHEDULE__ORGS", format!("org `{}` is listed twice", o.org)));
            }
        }
        Ok(Plan {
            tick: Duration::from_millis(s.tick_ms),
            late_after: chrono::Duration::seconds(i64::try_from(s.late_after_secs).unwrap_or(120)),
            follow_up_days: [s.follow_up_days_a, s.follow_up_days_b, s.follow_up_days_c].map(i64::from),
            stage_dwell_days: s.stage_dwell_days.iter().map(|(k, v)| (k.clone(), i64::from(*v))).collect(),
            lead_sla_hours: [s.lead_sla_hours, s.lead_sla_escalate_hours, s.lead_sla_recycle_hours].map(i64::from),
            jobs,
            default_org: OrgPlan { quiet: default_quiet, calendar: Calendar::default() },
            orgs,
            dispatch: DispatchConfig {
                batch: s.outbox_batch,
                lease: Duration::from_secs(s.outbox_lease_secs),
                max_attempts: s.outbox_max_attempts,
                backoff_base: Duration::from_secs(s.outbox_backoff_base_secs),
                backoff_max: Duration::from_secs(s.outbox_backoff_max_secs),
                concurrency: s.outbox_concurrency.max(1),
                poll: Duration::from_millis(s.tick_ms),
            },
            outbox_keep: chrono::Duration::days(i64::from(s.outbox_keep_days.max(1))),
            report: crate::report::ReportOptions::from(s),
        })
    }
}
