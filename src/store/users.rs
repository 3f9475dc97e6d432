//! Users, teams and chat identities.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::crm::model::{Role, Team, User};
use crate::run;

macro_rules! user_select {
    () => {
        "SELECT u.id, u.org_id, u.handle, u.name, u.role, u.team_id, t.name AS team_name, u.active
         FROM users u LEFT JOIN teams t ON t.id = u.team_id "
    };
}

pub async fn insert_team(tx: &mut Tx, org_id: i64, name: &str, now: DateTime<Utc>) -> sqlx::Result<Team> {
    run!(tx, |c| sqlx::query_as(
        "INSERT INTO teams (org_id, name, created_at) VALUES ($1, $2, $3) RETURNING id, org_id, name"
    )
    .bind(org_id)
    .bind(name)
    .bind(now)
    .fetch_one(c)
    .await)
}

pub async fn team_by_name(tx: &mut Tx, org_id: i64, name: &str) -> sqlx::Result<Option<Team>> {
    run!(tx, |c| sqlx::query_as("SELECT id, org_id, name FROM teams WHERE org_id = $1 AND name = $2")
        .bind(org_id)
        .bind(name)
        .fetch_optional(c)
        .await)
}

pub async fn insert(
    tx: &mut Tx,
    org_id: i64,
    handle: &str,
    name: &str,
    role: Role,
    team_id: Option<i64>,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    run!(tx, |c| sqlx::query_scalar(
        "INSERT INTO users (org_id, handle, name, role, team_id, active, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
    )
    .bind(org_id)
    .bind(handle)
    .bind(name)
    .bind(role)
    .bind(team_id)
    .bind(true)
    .bind(now)
    .fetch_one(c)
    .await)
}

pub async fn by_id(tx: &mut Tx, org_id: i64, id: i64) -> sqlx::Result<Option<User>> {
    run!(tx, |c| sqlx::query_as(concat!(user_select!(), "WHERE u.org_id = $1 AND u.id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

/// Looks a user up by handle or by display name (handles are unique; names may not be).
pub async fn by_handle_or_name(tx: &mut Tx, org_id: i64, who: &str) -> sqlx::Result<Vec<User>> {
    run!(tx, |c| sqlx::query_as(concat!(
        user_select!(),
        "WHERE u.org_id = $1 AND (LOWER(u.handle) = LOWER($2) OR u.name = $2) ORDER BY u.id"
    ))
    .bind(org_id)
    .bind(who)
    .fetch_all(c)
    .await)
}

pub async fn list(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<User>> {
    run!(tx, |c| sqlx::query_as(concat!(user_select!(), "WHERE u.org_id = $1 ORDER BY u.id"))
        .bind(org_id)
        .fetch_all(c)
        .await)
}

pub async fn insert_identity(
    tx: &mut Tx,
    org_id: i64,
    platform: &str,
    corp_id: &str,
    platform_user_id: &str,
    user_id: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    run!(tx, |c| sqlx::query(
        "INSERT INTO chat_identities (org_id, platform, corp_id, platform_user_id, user_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(org_id)
    .bind(platform)
    .bind(corp_id)
    .bind(platform_user_id)
    .bind(user_id)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))
}

pub async fn by_identity(
    tx: &mut Tx,
    platform: &str,
    corp_id: &str,
    platform_user_id: &str,
) -> sqlx::Result<Option<User>> {
    run!(tx, |c| sqlx::query_as(concat!(
        user_select!(),
        "JOIN chat_identities ci ON ci.user_id = u.id
         WHERE ci.platform = $1 AND ci.corp_id = $2 AND ci.platform_user_id = $3"
    ))
    .bind(platform)
    .bind(corp_id)
    .bind(platform_user_id)
    .fetch_optional(c)
    .await)
}

/// A user's chat identities as (platform, corp id, platform user id), oldest first.
pub async fn identities_of(tx: &mut Tx, user_id: i64) -> sqlx::Result<Vec<(String, String, String)>> {
    run!(tx, |c| sqlx::query_as(
        "SELECT platform, corp_id, platform_user_id FROM chat_identities WHERE user_id = $1 ORDER BY id"
    )
    .bind(user_id)
    .fetch_all(c)
    .await)
}

pub async fn teams(tx: &mut Tx, org_id: i64) -> sqlx::Result<Vec<Team>> {
    run!(tx, |c| sqlx::query_as("SELECT id, org_id, name FROM teams WHERE org_id = $1 ORDER BY id")
        .bind(org_id)
        .fetch_all(c)
        .await)
}

/// Marks a user on leave (no new leads by rule) or back.
pub async fn set_on_leave(tx: &mut Tx, org_id: i64, id: i64, on_leave: bool) -> sqlx::Result<bool> {
    run!(tx, |c| sqlx::query("UPDATE users SET on_leave = $3 WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .bind(on_leave)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// The chat identities of several users as (user id, platform, corp id, platform user id), oldest first.
pub async fn identities_of_many(tx: &mut Tx, user_ids: &[i64]) -> sqlx::Result<Vec<(i64, String, String, String)>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    match tx {
        Tx::Sqlite(t) => {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT user_id, platform, corp_id, platform_user_id FROM chat_identities WHERE user_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in user_ids {
                list.push_bind(*id);
            }
            list.push_unseparated(") ORDER BY id");
            qb.build_query_as().fetch_all(&mut **t).await
        }
        Tx::Postgres(t) => {
            sqlx::query_as(
                "SELECT user_id, platform, corp_id, platform_user_id FROM chat_identities WHERE user_id = ANY($1)
                 ORDER BY id",
            )
            .bind(user_ids)
            .fetch_all(&mut **t)
            .await
        }
    }
}
