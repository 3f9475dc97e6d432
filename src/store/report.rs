//! The report queries: aggregates for one org, one period and one scope, summed by the database.
//!
//! Every query binds `$1` = org, `$2` = team, `$3` = user and keeps the rows whose owner is in
//! scope: both NULL → the whole org; otherwise owners in team `$2` or the user `$3` itself (a
//! manager sees their team and their own records, a rep only their own). This is the rule of
//! `Actor::can_access`, applied in SQL so that no row outside the scope leaves the database.

use chrono::{DateTime, NaiveDate, Utc};

use super::Tx;
use crate::crm::DealStatus;
use crate::run;

/// The whole org: no owner filter (the binds stay referenced so both variants bind alike).
macro_rules! org_wide {
    ($owner:literal) => {
        "(CAST($2 AS BIGINT) IS NULL AND CAST($3 AS BIGINT) IS NULL)"
    };
}

/// `$owner` is one of the team's users or the user: an AND-ed `IN`, so the planner can walk the
/// owner indexes from the scope's few users instead of scanning the org.
macro_rules! in_team {
    ($owner:literal) => {
        concat!($owner, " IN (SELECT id FROM users WHERE org_id = $1 AND (team_id = $2 OR id = $3))")
    };
}

/// Who the rows are about: the whole org, or a team and/or one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeIds {
    pub team_id: Option<i64>,
    pub user_id: Option<i64>,
}

impl ScopeIds {
    pub fn is_org(&self) -> bool {
        self.team_id.is_none() && self.user_id.is_none()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityAgg {
    pub user_id: i64,
    pub visits: i64,
    pub calls: i64,
    pub other: i64,
    pub customers: i64,
}

/// Activities per user in `[from, to)`: visits (and meetings), calls, the rest, customers touched.
pub async fn activity_by_user(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<ActivityAgg>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT user_id,
                SUM(CASE WHEN kind IN ('visit', 'meeting') THEN 1 ELSE 0 END) AS visits,
                SUM(CASE WHEN kind = 'call' THEN 1 ELSE 0 END) AS calls,
                SUM(CASE WHEN kind IN ('visit', 'meeting', 'call') THEN 0 ELSE 1 END) AS other,
                COUNT(DISTINCT customer_id) AS customers
         FROM activities
         WHERE org_id = $1 AND occurred_at >= $4 AND occurred_at < $5 AND ",
                $scope!("user_id"),
                " GROUP BY user_id ORDER BY user_id"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await)
}

/// Distinct customers touched by anyone in scope (two reps on one customer count it once).
pub async fn customers_touched(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<i64> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT COUNT(DISTINCT customer_id) FROM activities
                 WHERE org_id = $1 AND occurred_at >= $4 AND occurred_at < $5 AND ",
                $scope!("user_id")
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_scalar(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .fetch_one(c)
        .await)
}

/// New customers per owner in `[from, to)`.
pub async fn new_customers_by_owner(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<(Option<i64>, i64)>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT owner_id, COUNT(*) FROM customers
         WHERE org_id = $1 AND created_at >= $4 AND created_at < $5 AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id ORDER BY owner_id"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await)
}

/// One lead count: `what` is new, assigned, contacted, contacted_in_sla or converted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeadAgg {
    pub what: String,
    pub owner_id: Option<i64>,
    pub source: String,
    pub n: i64,
}

/// Lead counts in `[from, to)` per owner (and per source for new and converted). "Contacted in
/// SLA" = contacted before the SLA clock reminded anyone (`sla_stage` still 0).
pub async fn leads(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<LeadAgg>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT 'new' AS what, owner_id, COALESCE(source, '') AS source, COUNT(*) AS n FROM leads
         WHERE org_id = $1 AND created_at >= $4 AND created_at < $5 AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id, COALESCE(source, '')
         UNION ALL
         SELECT 'assigned', owner_id, '', COUNT(*) FROM leads
         WHERE org_id = $1 AND assigned_at >= $4 AND assigned_at < $5 AND owner_id IS NOT NULL AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id
         UNION ALL
         SELECT 'contacted', owner_id, '', COUNT(*) FROM leads
         WHERE org_id = $1 AND contacted_at >= $4 AND contacted_at < $5 AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id
         UNION ALL
         SELECT 'contacted_in_sla', owner_id, '', COUNT(*) FROM leads
         WHERE org_id = $1 AND contacted_at >= $4 AND contacted_at < $5 AND sla_stage = 0 AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id
         UNION ALL
         SELECT 'converted', owner_id, COALESCE(source, ''), COUNT(*) FROM leads
         WHERE org_id = $1 AND converted_at >= $4 AND converted_at < $5 AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id, COALESCE(source, '')"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageAgg {
    pub stage: String,
    pub n: i64,
    pub amount_fen: i64,
    pub weighted_fen: i64,
}

/// Open deals now, per stage: count, amount and amount × probability.
pub async fn open_by_stage(tx: &mut Tx, org_id: i64, s: ScopeIds) -> sqlx::Result<Vec<StageAgg>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT stage, COUNT(*) AS n, CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS amount_fen,
                CAST(COALESCE(SUM(amount_fen * probability / 100), 0) AS BIGINT) AS weighted_fen
         FROM deals WHERE org_id = $1 AND status = 'open' AND ",
                $scope!("owner_id"),
                " GROUP BY stage ORDER BY stage"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql).bind(org_id).bind(s.team_id).bind(s.user_id).fetch_all(c).await)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MoveRow {
    pub deal_id: i64,
    pub owner_id: i64,
    pub title: String,
    pub amount_fen: i64,
    pub from_stage: String,
    pub to_stage: String,
    pub moved_at: DateTime<Utc>,
}

/// Moves between open stages in `[from, to)` (creation and closing are reported apart), with the
/// number of such moves in all; at most `limit` rows, latest first.
pub async fn stage_moves(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<(Vec<MoveRow>, i64)> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT h.deal_id, d.owner_id, d.title, d.amount_fen, h.from_stage, h.to_stage, h.moved_at,
                COUNT(*) OVER () AS total
         FROM deal_stage_history h
         JOIN deals d ON d.id = h.deal_id
         JOIN stages st ON st.org_id = h.org_id AND st.key = h.to_stage
         JOIN stages sf ON sf.org_id = h.org_id AND sf.key = h.from_stage
         WHERE h.org_id = $1 AND h.moved_at >= $4 AND h.moved_at < $5
           AND st.outcome = 'open' AND sf.outcome = 'open' AND ",
                $scope!("d.owner_id"),
                " ORDER BY h.moved_at DESC, h.id DESC LIMIT $6"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    let rows: Vec<Counted<MoveRow>> = run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(c)
        .await)?;
    Ok(split_counted(rows))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClosedRow {
    pub id: i64,
    pub owner_id: i64,
    pub title: String,
    pub customer_name: String,
    pub amount_fen: i64,
    pub status: DealStatus,
    pub lost_reason: Option<String>,
    pub closed_at: DateTime<Utc>,
}

/// Deals won or lost in `[from, to)` (and still closed), largest first.
pub async fn closed(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<ClosedRow>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT d.id, d.owner_id, d.title, c.name AS customer_name, d.amount_fen, d.status,
                d.lost_reason, d.closed_at
         FROM deals d JOIN customers c ON c.id = d.customer_id
         WHERE d.org_id = $1 AND d.status IN ('won', 'lost') AND d.closed_at >= $4 AND d.closed_at < $5 AND ",
                $scope!("d.owner_id"),
                " ORDER BY d.amount_fen DESC, d.id"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await)
}

/// How far the deals with stage history in `[from, to)` got: (highest open-stage position
/// entered, or `WON_REACH` for a won deal, number of deals, their amount). A skipped stage counts as passed; a
/// stage entered twice counts once; a lost deal keeps the highest stage it had entered.
pub async fn funnel_reach(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<(i64, i64, i64)>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
        "WITH cohort AS (
             SELECT DISTINCT h.deal_id FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
             WHERE h.org_id = $1 AND h.moved_at >= $4 AND h.moved_at < $5 AND ",
        $scope!("d.owner_id"),
        "),
         reach AS (
             SELECT h.deal_id,
                    MAX(CASE WHEN st.outcome = 'won' THEN 1000000
                             WHEN st.outcome = 'open' THEN st.position ELSE -1 END) AS top
             FROM deal_stage_history h
             JOIN cohort ON cohort.deal_id = h.deal_id
             JOIN stages st ON st.org_id = h.org_id AND st.key = h.to_stage
             GROUP BY h.deal_id
         )
         SELECT reach.top, COUNT(*), CAST(SUM(d.amount_fen) AS BIGINT) FROM reach JOIN deals d ON d.id = reach.deal_id",
        " GROUP BY reach.top ORDER BY reach.top"
    )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await)
}

/// The reach [`funnel_reach`] gives a won deal: past every open stage.
pub const WON_REACH: i64 = 1_000_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DwellAgg {
    pub stage: String,
    pub deals: i64,
    pub avg_secs: f64,
    pub median_secs: f64,
}

/// Time spent per stage by the deals that left it in `[from, to)`: each deal's stays in a stage
/// are summed (a reopened stage adds up), then averaged and the median taken over deals. A stage
/// a deal skipped adds nothing; a stay not yet ended is not counted.
pub async fn dwell(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<DwellAgg>> {
    // One query per dialect (the difference of two timestamps in seconds) and per scope shape.
    // The cohort is narrowed to the scope first, so a team's funnel reads only its deals' history.
    macro_rules! dwell_sql {
        ($secs:literal, $scope:ident) => {
            concat!(
                "WITH cohort AS (
                     SELECT DISTINCT h.deal_id FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
                     WHERE h.org_id = $1 AND h.moved_at >= $4 AND h.moved_at < $5 AND ",
                $scope!("d.owner_id"),
                "),
                 stays AS (
                     SELECT h.deal_id, h.to_stage AS stage, h.moved_at AS entered,
                            LEAD(h.moved_at) OVER (PARTITION BY h.deal_id ORDER BY h.moved_at, h.id) AS left_at
                     FROM deal_stage_history h JOIN cohort ON cohort.deal_id = h.deal_id
                 ),
                 per_deal AS (
                     SELECT deal_id, stage, SUM(",
                $secs,
                ") AS secs
                     FROM stays
                     WHERE left_at IS NOT NULL AND left_at >= $4 AND left_at < $5
                     GROUP BY deal_id, stage
                 ),
                 ranked AS (
                     SELECT stage, secs,
                            ROW_NUMBER() OVER (PARTITION BY stage ORDER BY secs) AS rn,
                            COUNT(*) OVER (PARTITION BY stage) AS n
                     FROM per_deal
                 )
                 SELECT stage, n AS deals, CAST(AVG(secs) AS DOUBLE PRECISION) AS avg_secs,
                        CAST(AVG(CASE WHEN rn = (n + 1) / 2 OR rn = (n + 2) / 2 THEN secs END) AS DOUBLE PRECISION)
                            AS median_secs
                 FROM ranked GROUP BY stage, n ORDER BY stage"
            )
        };
    }
    match tx {
        Tx::Sqlite(t) => {
            let sql: &'static str = if s.is_org() {
                dwell_sql!("(julianday(left_at) - julianday(entered)) * 86400.0", org_wide)
            } else {
                dwell_sql!("(julianday(left_at) - julianday(entered)) * 86400.0", in_team)
            };
            sqlx::query_as(sql)
                .bind(org_id)
                .bind(s.team_id)
                .bind(s.user_id)
                .bind(from)
                .bind(to)
                .fetch_all(&mut **t)
                .await
        }
        Tx::Postgres(t) => {
            let sql: &'static str = if s.is_org() {
                dwell_sql!("EXTRACT(EPOCH FROM (left_at - entered))", org_wide)
            } else {
                dwell_sql!("EXTRACT(EPOCH FROM (left_at - entered))", in_team)
            };
            sqlx::query_as(sql)
                .bind(org_id)
                .bind(s.team_id)
                .bind(s.user_id)
                .bind(from)
                .bind(to)
                .fetch_all(&mut **t)
                .await
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ForecastAgg {
    pub owner_id: i64,
    /// 0 = `[m0, m1)`, 1 = `[m1, m2)`.
    pub bucket: i64,
    pub open_fen: i64,
    pub weighted_fen: i64,
    pub deals: i64,
}

/// Open deals expected to close in this month (`[m0, m1)`) or the next (`[m1, m2)`), per owner:
/// amount and amount × probability.
pub async fn forecast_open(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    months: [NaiveDate; 3],
) -> sqlx::Result<Vec<ForecastAgg>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT owner_id, CAST(CASE WHEN expected_close < $5 THEN 0 ELSE 1 END AS BIGINT) AS bucket,
                CAST(SUM(amount_fen) AS BIGINT) AS open_fen,
                CAST(SUM(amount_fen * probability / 100) AS BIGINT) AS weighted_fen,
                COUNT(*) AS deals
         FROM deals
         WHERE org_id = $1 AND status = 'open' AND expected_close >= $4 AND expected_close < $6 AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id, 2 ORDER BY owner_id"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(months[0])
        .bind(months[1])
        .bind(months[2])
        .fetch_all(c)
        .await)
}

/// Won amounts per owner in `[from, to)`.
pub async fn won_by_owner(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<(i64, i64)>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT owner_id, CAST(SUM(amount_fen) AS BIGINT) FROM deals
         WHERE org_id = $1 AND status = 'won' AND closed_at >= $4 AND closed_at < $5 AND ",
                $scope!("owner_id"),
                " GROUP BY owner_id ORDER BY owner_id"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await)
}

/// Monthly targets (`YYYY-MM`) of the users in scope: (user, month, amount).
pub async fn targets(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    months: &[String; 2],
) -> sqlx::Result<Vec<(i64, String, i64)>> {
    macro_rules! sql {
        ($scope:ident) => {
            concat!(
                "SELECT user_id, month, amount_fen FROM sales_targets
         WHERE org_id = $1 AND month IN ($4, $5) AND ",
                $scope!("user_id"),
                " ORDER BY user_id, month"
            )
        };
    }
    let sql: &'static str = if s.is_org() { sql!(org_wide) } else { sql!(in_team) };
    run!(tx, |c| sqlx::query_as(sql)
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(&months[0])
        .bind(&months[1])
        .fetch_all(c)
        .await)
}

/// Sets (or with `None` clears) a user's target for a month.
pub async fn set_target(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    month: &str,
    amount_fen: Option<i64>,
    by: Option<i64>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    match amount_fen {
        Some(amount) => run!(tx, |c| sqlx::query(
            "INSERT INTO sales_targets (org_id, user_id, month, amount_fen, set_by, set_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (org_id, user_id, month) DO UPDATE
             SET amount_fen = excluded.amount_fen, set_by = excluded.set_by, set_at = excluded.set_at"
        )
        .bind(org_id)
        .bind(user_id)
        .bind(month)
        .bind(amount)
        .bind(by)
        .bind(now)
        .execute(c)
        .await
        .map(|_| ())),
        None => {
            run!(tx, |c| sqlx::query("DELETE FROM sales_targets WHERE org_id = $1 AND user_id = $2 AND month = $3")
                .bind(org_id)
                .bind(user_id)
                .bind(month)
                .execute(c)
                .await
                .map(|_| ()))
        }
    }
}

/// A row and the number of rows the query matched before its LIMIT (`COUNT(*) OVER ()`).
#[derive(Debug, sqlx::FromRow)]
struct Counted<T> {
    #[sqlx(flatten)]
    row: T,
    total: i64,
}

fn split_counted<T>(rows: Vec<Counted<T>>) -> (Vec<T>, i64) {
    let total = rows.first().map_or(0, |r| r.total);
    (rows.into_iter().map(|r| r.row).collect(), total)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RiskRow {
    pub id: i64,
    pub owner_id: Option<i64>,
    pub title: String,
    /// The customer (tasks, deals); None for customers themselves.
    pub customer_name: Option<String>,
    /// Due (tasks), last contact (customers), entered the stage (deals).
    pub at: DateTime<Utc>,
    /// The stage key (deals).
    pub stage: Option<String>,
}

/// Risk lists come as a total and the first `limit` rows, each from its own query: the count
/// reads only an index, and the list stops after `limit` rows in index order (a window count
/// would fetch every matching row first).
macro_rules! total_and_rows {
    ($tx:expr, $s:expr, $count:ident, $list:ident, |$q:ident| $bind:expr) => {{
        let (count, list): (&'static str, &'static str) =
            if $s.is_org() { ($count!(org_wide), $list!(org_wide)) } else { ($count!(in_team), $list!(in_team)) };
        let total: i64 = run!(&mut *$tx, |c| {
            let $q = sqlx::query_scalar(count);
            $bind.fetch_one(c).await
        })?;
        let rows: Vec<RiskRow> = if total == 0 {
            Vec::new()
        } else {
            run!(&mut *$tx, |c| {
                let $q = sqlx::query_as(list);
                $bind.fetch_all(c).await
            })?
        };
        Ok((rows, total))
    }};
}

/// Open tasks past due: the oldest `limit`, and how many in all.
pub async fn overdue_tasks(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<(Vec<RiskRow>, i64)> {
    macro_rules! count {
        ($scope:ident) => {
            concat!(
                "SELECT COUNT(*) FROM tasks t WHERE t.org_id = $1 AND t.status = 'open' AND t.due_at < $4 AND ",
                $scope!("t.owner_id"),
                " AND $5 > 0"
            )
        };
    }
    macro_rules! list {
        ($scope:ident) => {
            concat!(
                "SELECT t.id, t.owner_id, t.title, c.name AS customer_name, t.due_at AS at,
                        CAST(NULL AS TEXT) AS stage
                 FROM tasks t LEFT JOIN customers c ON c.id = t.customer_id
                 WHERE t.org_id = $1 AND t.status = 'open' AND t.due_at < $4 AND ",
                $scope!("t.owner_id"),
                " ORDER BY t.due_at, t.id LIMIT $5"
            )
        };
    }
    total_and_rows!(tx, s, count, list, |q| q.bind(org_id).bind(s.team_id).bind(s.user_id).bind(now).bind(limit))
}

/// Customers of `grade` not contacted since `before` (never contacted: since created), the
/// quietest `limit` first, and how many in all.
pub async fn quiet_customers(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    grade: &str,
    before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<(Vec<RiskRow>, i64)> {
    macro_rules! count {
        ($scope:ident) => {
            concat!(
                "SELECT COUNT(*) FROM customers
                 WHERE org_id = $1 AND grade = $4 AND COALESCE(last_contacted_at, created_at) < $5 AND ",
                $scope!("owner_id"),
                " AND $6 > 0"
            )
        };
    }
    macro_rules! list {
        ($scope:ident) => {
            concat!(
                "SELECT id, owner_id, name AS title, CAST(NULL AS TEXT) AS customer_name,
                        COALESCE(last_contacted_at, created_at) AS at, CAST(NULL AS TEXT) AS stage
                 FROM customers
                 WHERE org_id = $1 AND grade = $4 AND COALESCE(last_contacted_at, created_at) < $5 AND ",
                $scope!("owner_id"),
                " ORDER BY COALESCE(last_contacted_at, created_at), id LIMIT $6"
            )
        };
    }
    total_and_rows!(tx, s, count, list, |q| q
        .bind(org_id)
        .bind(s.team_id)
        .bind(s.user_id)
        .bind(grade)
        .bind(before)
        .bind(limit))
}

/// Open deals in a stage since before that stage's limit (`budgets`: stage key → entered before
/// this instant is stuck): the longest-stuck `limit`, and how many in all.
pub async fn stuck_deals(
    tx: &mut Tx,
    org_id: i64,
    s: ScopeIds,
    budgets: &[(String, DateTime<Utc>)],
    limit: i64,
) -> sqlx::Result<(Vec<RiskRow>, i64)> {
    if budgets.is_empty() {
        return Ok((Vec::new(), 0));
    }
    // One bound (stage, instant) pair per stage with a limit.
    macro_rules! build {
        ($db:ty, $select:literal, $tail:expr) => {{
            let mut qb = sqlx::QueryBuilder::<$db>::new("WITH budget (stage, before) AS (VALUES ");
            let mut first = true;
            for (stage, before) in budgets {
                if !first {
                    qb.push(", ");
                }
                first = false;
                qb.push("(").push_bind(stage.clone()).push(", ").push_bind(*before).push(")");
            }
            qb.push(") ").push($select).push(" FROM deals d JOIN budget b ON b.stage = d.stage ");
            if $select != "SELECT COUNT(*)" {
                qb.push("JOIN customers c ON c.id = d.customer_id ");
            }
            qb.push("WHERE d.org_id = ");
            qb.push_bind(org_id).push(" AND d.status = 'open' AND d.stage_entered_at < b.before");
            if !s.is_org() {
                qb.push(" AND d.owner_id IN (SELECT id FROM users WHERE team_id = ")
                    .push_bind(s.team_id)
                    .push(" OR id = ")
                    .push_bind(s.user_id)
                    .push(")");
            }
            $tail(&mut qb);
            qb
        }};
    }
    // The count, then the longest-stuck rows, on whichever backend is live.
    macro_rules! run_both {
        ($db:ty, $t:expr) => {{
            let total: i64 = build!($db, "SELECT COUNT(*)", |_: &mut sqlx::QueryBuilder<$db>| {})
                .build_query_scalar()
                .fetch_one(&mut **$t)
                .await?;
            let rows = build!(
                $db,
                "SELECT d.id, d.owner_id, d.title, c.name AS customer_name, d.stage_entered_at AS at, d.stage",
                |qb: &mut sqlx::QueryBuilder<$db>| {
                    qb.push(" ORDER BY d.stage_entered_at, d.id LIMIT ").push_bind(limit);
                }
            )
            .build_query_as()
            .fetch_all(&mut **$t)
            .await?;
            Ok((rows, total))
        }};
    }
    match tx {
        Tx::Sqlite(t) => run_both!(sqlx::Sqlite, t),
        Tx::Postgres(t) => run_both!(sqlx::Postgres, t),
    }
}
