//! Users, teams and chat identities.

use serde::Serialize;

use super::{CrmError, Ctx, Result, Role, Team, User, audit, not_found, require_admin, text};
use crate::store::{self, Tx};

pub struct NewUser<'a> {
    pub handle: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub team_id: Option<i64>,
}

fn check_handle(handle: &str) -> Result<String> {
    let h = handle.trim().trim_start_matches('@').to_lowercase();
    let ok =
        !h.is_empty() && h.len() <= 32 && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(super::invalid(
            format!("用户名「{handle}」无效：只能用字母、数字和 . _ -，最多 32 个字符"),
            format!("handle `{handle}` is invalid: use letters, digits and . _ - (at most 32)"),
        ));
    }
    Ok(h)
}

pub async fn create_team(tx: &mut Tx, ctx: &Ctx, name: &str) -> Result<Team> {
    require_admin(ctx, "只有管理员可以创建团队", "only admins can create teams")?;
    let name = super::clean_text("团队名称", "team name", name, 50)?;
    if store::users::team_by_name(tx, ctx.org_id(), &name).await?.is_some() {
        return Err(CrmError::Conflict(text(format!("团队「{name}」已存在"), format!("team `{name}` already exists"))));
    }
    let team = store::users::insert_team(tx, ctx.org_id(), &name, ctx.now).await?;
    audit(tx, ctx, "create", "team", team.id, None::<&()>, Some(&team)).await?;
    Ok(team)
}

pub async fn team_by_name(tx: &mut Tx, ctx: &Ctx, name: &str) -> Result<Team> {
    store::users::team_by_name(tx, ctx.org_id(), name)
        .await?
        .ok_or_else(|| not_found(format!("没有名为「{name}」的团队"), format!("no team named `{name}`")))
}

pub async fn create_user(tx: &mut Tx, ctx: &Ctx, new: NewUser<'_>) -> Result<User> {
    require_admin(ctx, "只有管理员可以添加用户", "only admins can add users")?;
    let handle = check_handle(new.handle)?;
    let name = super::clean_text("姓名", "name", new.name, 50)?;
    if !store::users::by_handle_or_name(tx, ctx.org_id(), &handle).await?.iter().all(|u| u.handle != handle) {
        return Err(CrmError::Conflict(text(
            format!("用户名「{handle}」已被使用"),
            format!("handle `{handle}` is taken"),
        )));
    }
    let id = store::users::insert(tx, ctx.org_id(), &handle, &name, new.role, new.team_id, ctx.now).await?;
    let user = user_by_id(tx, ctx.org_id(), id).await?;
    audit(tx, ctx, "create", "user", id, None::<&()>, Some(&user)).await?;
    Ok(user)
}

pub async fn user_by_id(tx: &mut Tx, org_id: i64, id: i64) -> Result<User> {
    store::users::by_id(tx, org_id, id)
        .await?
        .ok_or_else(|| not_found(format!("用户 {id} 不存在"), format!("user {id} does not exist")))
}

/// Finds one user by handle (with or without `@`) or display name.
pub async fn find_user(tx: &mut Tx, org_id: i64, who: &str) -> Result<User> {
    let key = who.trim().trim_start_matches('@');
    let found = store::users::by_handle_or_name(tx, org_id, key).await?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(not_found(format!("没有找到用户「{key}」"), format!("no user `{key}`"))),
        many => {
            let list = many.iter().map(|u| format!("@{}", u.handle)).collect::<Vec<_>>().join(" ");
            Err(super::invalid(
                format!("有多个用户叫「{key}」，请用用户名：{list}"),
                format!("several users are called `{key}`; use a handle: {list}"),
            ))
        }
    }
}

pub async fn list_users(tx: &mut Tx, org_id: i64) -> Result<Vec<User>> {
    Ok(store::users::list(tx, org_id).await?)
}

#[derive(Serialize)]
struct IdentityAudit<'a> {
    platform: &'a str,
    corp_id: &'a str,
    platform_user_id: &'a str,
    user_id: i64,
}

/// Binds a chat identity (platform, corp id, platform user id) to a user.
pub async fn link_identity(
    tx: &mut Tx,
    ctx: &Ctx,
    user_id: i64,
    platform: &str,
    corp_id: &str,
    platform_user_id: &str,
) -> Result<()> {
    require_admin(ctx, "只有管理员可以绑定聊天账号", "only admins can link chat identities")?;
    let user = user_by_id(tx, ctx.org_id(), user_id).await?;
    let platform = super::clean_text("平台", "platform", platform, 20)?.to_lowercase();
    let corp_id = super::clean_text("企业 ID", "corp id", corp_id, 100)?;
    let puid = super::clean_text("平台用户 ID", "platform user id", platform_user_id, 100)?;
    if let Some(existing) = store::users::by_identity(tx, &platform, &corp_id, &puid).await? {
        return Err(CrmError::Conflict(text(
            format!("该账号已绑定到 {}（@{}）", existing.name, existing.handle),
            format!("that identity is already linked to {} (@{})", existing.name, existing.handle),
        )));
    }
    store::users::insert_identity(tx, ctx.org_id(), &platform, &corp_id, &puid, user.id, ctx.now).await?;
    let row = IdentityAudit { platform: &platform, corp_id: &corp_id, platform_user_id: &puid, user_id: user.id };
    audit(tx, ctx, "link_identity", "user", user.id, None::<&()>, Some(&row)).await?;
    Ok(())
}

/// The user behind a chat identity, if linked.
pub async fn resolve_identity(
    tx: &mut Tx,
    platform: &str,
    corp_id: &str,
    platform_user_id: &str,
) -> Result<Option<User>> {
    Ok(store::users::by_identity(tx, platform, corp_id, platform_user_id).await?)
}

/// Puts a user on leave (assignment rules skip them) or back. Managers for their team, admins for all.
pub async fn set_on_leave(tx: &mut Tx, ctx: &Ctx, user_id: i64, on_leave: bool) -> Result<User> {
    super::require_manager(ctx, "只有经理或管理员可以设置休假", "only managers and admins can set leave")?;
    let user = user_by_id(tx, ctx.org_id(), user_id).await?;
    if !ctx.actor.can_access(Some(user.id), user.team_id) {
        return Err(super::forbidden("只能设置你团队里的人", "you can only set this for people in your team"));
    }
    store::users::set_on_leave(tx, ctx.org_id(), user_id, on_leave).await?;
    super::audit(tx, ctx, if on_leave { "leave" } else { "back" }, "user", user_id, None::<&()>, Some(&user)).await?;
    user_by_id(tx, ctx.org_id(), user_id).await
}
