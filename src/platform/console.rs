//! The local console "platform": users are picked by handle, and pushes are kept in a table the
//! console page and `chatcrm chat` poll.

use chrono::{DateTime, Utc};

use crate::bot::IncomingMessage;
use crate::crm::{self, Actor, Ctx, Org, User, Via};
use crate::store::inbox::Push;
use crate::store::{self, Db};

pub const PLATFORM: &str = "console";

/// The console org and its users.
pub async fn users(db: &Db, org_name: &str) -> crm::Result<(Org, Vec<User>)> {
    let mut tx = db.begin_read().await?;
    let org = crm::orgs::org_by_name(&mut tx, org_name).await?;
    let users = crm::users::list_users(&mut tx, org.id).await?;
    tx.commit().await?;
    Ok((org, users))
}

/// Builds the message for `who` (handle or name), linking the user's console identity on first use.
pub async fn incoming(
    db: &Db,
    org_name: &str,
    who: &str,
    text: &str,
    message_id: &str,
    now: DateTime<Utc>,
) -> crm::Result<IncomingMessage> {
    // A read, and a write only the first time a user talks: every console message passes here,
    // and on SQLite a write transaction would queue behind the bot's writer.
    let mut tx = db.begin_read().await?;
    let org = crm::orgs::org_by_name(&mut tx, org_name).await?;
    let user = crm::users::find_user(&mut tx, org.id, who).await?;
    let corp = org.id.to_string();
    let linked = crm::users::resolve_identity(&mut tx, PLATFORM, &corp, &user.handle).await?.is_some();
    tx.commit().await?;
    if !linked {
        let mut tx = db.begin().await?;
        if crm::users::resolve_identity(&mut tx, PLATFORM, &corp, &user.handle).await?.is_none() {
            let ctx = Ctx::new(Actor::system(org.id), Via::System, now);
            crm::users::link_identity(&mut tx, &ctx, user.id, PLATFORM, &corp, &user.handle).await?;
        }
        tx.commit().await?;
    }
    Ok(IncomingMessage {
        platform: PLATFORM.into(),
        corp_id: corp,
        sender: user.handle,
        message_id: message_id.into(),
        text: text.into(),
        received_at: now,
    })
}

/// Queues a message for a console user (reminders and notices arrive this way).
pub async fn push(tx: &mut store::Tx, user: &User, text: &str, now: DateTime<Utc>) -> crm::Result<i64> {
    Ok(store::inbox::insert_push(tx, user.org_id, user.id, text, now).await?)
}

pub async fn pushes(db: &Db, org_name: &str, who: &str, after: i64) -> crm::Result<Vec<Push>> {
    let mut tx = db.begin_read().await?;
    let org = crm::orgs::org_by_name(&mut tx, org_name).await?;
    let user = crm::users::find_user(&mut tx, org.id, who).await?;
    let pushes = store::inbox::pushes_after(&mut tx, user.id, after, 100).await?;
    tx.commit().await?;
    Ok(pushes)
}
