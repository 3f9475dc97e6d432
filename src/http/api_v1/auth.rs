//! API tokens: made for one org by the CLI, shown once, kept as a SHA-256 hash; and the extractor
//! that turns `Authorization: Bearer <token>` into the calling org.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::V1Error;
use crate::crm::{self, Actor, Ctx, Via};
use crate::http::{ApiError, AppState};
use crate::store::tokens::{self, ApiTokenRow, NewTokenRow};
use crate::store::{Db, Tx};

/// Every token starts with this, so a leaked one is easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "ccrm_";
/// Random bytes in a token (hex-encoded after the prefix).
const TOKEN_BYTES: usize = 24;
/// Characters of the token kept in clear for listings: the prefix and 8 hex digits.
const SHOWN_CHARS: usize = TOKEN_PREFIX.len() + 8;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every endpoint.
    Full,
    /// `POST /api/v1/leads` only: for website forms and other systems that only send leads.
    Intake,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Intake => "intake",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Scope::Full),
            "intake" => Ok(Scope::Intake),
            other => Err(format!("`{other}` is not a token scope: use full or intake")),
        }
    }
}

/// Hex SHA-256 of a token: what is stored and looked up.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A new random token, e.g. `ccrm_3f9a…` (53 characters).
fn new_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

/// Makes a token for `org_id` and records it in the audit log. Returns the row and the token
/// itself, which is not stored and cannot be shown again.
pub async fn create_token(
    tx: &mut Tx,
    org_id: i64,
    name: &str,
    scope: Scope,
    via: Via,
    now: DateTime<Utc>,
) -> crm::Result<(ApiTokenRow, String)> {
    create_token_for(tx, org_id, None, name, scope, via, now).await
}

/// Like [`create_token`], for a token that acts as `user_id` (with that user's role) when given.
pub async fn create_token_for(
    tx: &mut Tx,
    org_id: i64,
    user_id: Option<i64>,
    name: &str,
    scope: Scope,
    via: Via,
    now: DateTime<Utc>,
) -> crm::Result<(ApiTokenRow, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(crm::CrmError::Invalid(crm::text(
            "令牌名称不能为空，最多 100 个字",
            "the token name must be 1 to 100 characters",
        )));
    }
    let token = new_token();
    let id = tokens::insert(
        tx,
        &NewTokenRow {
            org_id,
            name,
            prefix: &token[..SHOWN_CHARS],
            token_hash: &hash_token(&token),
            scope: scope.as_str(),
            user_id,
            now,
        },
    )
    .await?;
    let row = tokens::by_id(tx, id).await?.ok_or_else(|| crm::CrmError::Db(sqlx::Error::RowNotFound))?;
    let ctx = Ctx::new(Actor::system(org_id), via, now);
    crm::audit(tx, &ctx, "create", "api_token", id, None::<&()>, Some(&row)).await?;
    Ok((row, token))
}

/// Revokes a token: it stops working at once. `Ok(None)` when there is no live token with that id.
pub async fn revoke_token(tx: &mut Tx, id: i64, via: Via, now: DateTime<Utc>) -> crm::Result<Option<ApiTokenRow>> {
    let Some(before) = tokens::by_id(tx, id).await? else { return Ok(None) };
    if !tokens::revoke(tx, id, now).await? {
        return Ok(None);
    }
    let after = tokens::by_id(tx, id).await?;
    let ctx = Ctx::new(Actor::system(before.org_id), via, now);
    crm::audit(tx, &ctx, "revoke", "api_token", id, Some(&before), after.as_ref()).await?;
    Ok(after)
}

/// The org (and token) a request acts for.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub token_id: i64,
    pub token_name: String,
    pub org_id: i64,
    pub scope: Scope,
    /// Who the token acts as: the org (admin rights) or one user (their role's).
    pub actor: Actor,
}

impl ApiCaller {
    /// The context of a change made through the API: the org's system actor, or the token's user.
    pub fn ctx(&self, now: DateTime<Utc>) -> Ctx {
        Ctx::new(self.actor.clone(), Via::Api, now)
    }

    /// Refuses intake-only tokens (403).
    pub fn require_full(&self) -> Result<(), V1Error> {
        match self.scope {
            Scope::Full => Ok(()),
            Scope::Intake => Err(V1Error::Api(ApiError::Forbidden(format!(
                "token `{}` has scope `intake`: it may only submit leads (POST /api/v1/leads)",
                self.token_name
            )))),
        }
    }
}

/// The token in an `Authorization` header value, if it has the form `Bearer ccrm_<hex>`.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && token.len() == TOKEN_PREFIX.len() + 2 * TOKEN_BYTES
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some(token)
}

/// Looks a token up; `None` for an unknown or revoked one.
pub async fn authenticate(db: &Db, token: &str) -> sqlx::Result<Option<ApiCaller>> {
    let mut tx = db.begin_read().await?;
    let Some(r) = tokens::active_by_hash(&mut tx, &hash_token(token)).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    // A user token acts with the user's current role and team; a deactivated user's token is dead.
    let actor = match r.user_id {
        None => Some(Actor::system(r.org_id)),
        Some(id) => match crate::store::users::by_id(&mut tx, r.org_id, id).await? {
            Some(u) if u.active => Some(Actor::of(&u)),
            _ => None,
        },
    };
    tx.commit().await?;
    Ok(actor.map(|actor| ApiCaller {
        token_id: r.id,
        token_name: r.name,
        org_id: r.org_id,
        scope: r.scope.parse().unwrap_or(Scope::Intake),
        actor,
    }))
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = V1Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(V1Error::Unauthorized(
                "missing Authorization header: send `Authorization: Bearer <token>` (see `chatcrm tokens create`)"
                    .into(),
            ));
        };
        let Some(token) = value.to_str().ok().and_then(bearer_token) else {
            return Err(V1Error::Unauthorized(
                "malformed Authorization header: expected `Bearer ccrm_…` with a chatcrm API token".into(),
            ));
        };
        match authenticate(&state.db, token).await? {
            Some(caller) => Ok(caller),
            None => Err(V1Error::Unauthorized("unknown or revoked API token".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_expected_form() {
        let t = new_token();
        assert_eq!(t.len(), 53);
        assert_eq!(bearer_token(&format!("Bearer {t}")), Some(t.as_str()));
        assert_eq!(bearer_token(&format!("bearer  {t} ")), Some(t.as_str()));
        assert_eq!(bearer_token(&t), None);
        assert_eq!(bearer_token(&format!("Basic {t}")), None);
        assert_eq!(bearer_token("Bearer ccrm_nothex"), None);
        assert_eq!(bearer_token(&format!("Bearer {}", &t[..40])), None);
        assert_ne!(new_token(), t);
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
