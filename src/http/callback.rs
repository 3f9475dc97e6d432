//! What every chat platform's callback handler shares: self-registration of unknown senders and
//! running the bot within the platform's reply deadline.

use std::sync::Arc;
use std::time::Duration;

use super::{ApiError, AppState};
use crate::bot::{Bot, Delivery, IncomingMessage, Late, Reply, Special};
use crate::crm::{self, Actor, Ctx, Role, Via};

/// Makes an unknown sender of `platform` (under `corp_id`) a rep of `org` when the config allows
/// it; otherwise the bot tells them how an admin links them.
pub(super) async fn self_register(
    state: &AppState,
    platform: &str,
    org: &str,
    corp_id: &str,
    sender: &str,
) -> Result<(), crm::CrmError> {
    // Almost every sender is known: check with a read before taking the write lock.
    let mut tx = state.db.begin_read().await?;
    let known = crm::users::resolve_identity(&mut tx, platform, corp_id, sender).await?.is_some();
    tx.commit().await?;
    if known {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    if crm::users::resolve_identity(&mut tx, platform, corp_id, sender).await?.is_some() {
        return Ok(());
    }
    let org = crm::orgs::org_by_name(&mut tx, org).await?;
    let ctx = Ctx::new(Actor::system(org.id), Via::System, state.clock.now());
    let handle: String = sender
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(28)
        .collect::<String>()
        .to_lowercase();
    let base = if handle.is_empty() { platform.to_string() } else { handle };
    // Another user may have that handle already (LiLei vs lilei): add a suffix until it is free.
    let mut handle = base.clone();
    for n in 2..100 {
        if matches!(crm::users::find_user(&mut tx, org.id, &handle).await, Err(crm::CrmError::NotFound(_))) {
            break;
        }
        handle = format!("{base}-{n}");
    }
    let name: String = sender.chars().take(50).collect();
    let new = crm::users::NewUser { handle: &handle, name: &name, role: Role::Rep, team_id: None };
    let user = crm::users::create_user(&mut tx, &ctx, new).await?;
    crm::users::link_identity(&mut tx, &ctx, user.id, platform, corp_id, sender).await?;
    tx.commit().await?;
    tracing::info!(user = user.id, platform, "self-registered a chat user as a rep");
    Ok(())
}

/// Whether a platform delivers a message again when it is not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Redelivery {
    /// WeCom apps, Feishu: a message storage has not taken by the deadline is refused (503).
    Retried,
    /// Not documented (DingTalk robots, WeCom group robots): refusing would lose it for sure, so
    /// a late message is acknowledged and stays queued.
    Unknown,
}

/// Runs the bot on `msg`, but answers within `deadline`: when the bot is slower, the platform gets
/// its acknowledgement now and the reply goes out through the outbox, queued in the message's own
/// transaction (see [`Delivery`]). Where the platform is not known to send a message again
/// ([`Redelivery::Unknown`]), a storage failure does not end the message: it runs again
/// ([`Delivery::keep`]), and is acknowledged at the deadline if it has not succeeded by then.
pub(super) async fn reply_in_time(
    bot: &Bot,
    msg: IncomingMessage,
    special: Option<Special>,
    deadline: Duration,
    redelivery: Redelivery,
    delivery: Arc<Delivery>,
) -> Result<Option<Reply>, ApiError> {
    if redelivery == Redelivery::Unknown {
        delivery.keep();
    }
    let work = {
        let (bot, delivery) = (bot.clone(), delivery.clone());
        // Counted until the bot's outcome: the platform may be told the message was received
        // before that (even before the task has queued it), and shutdown must wait for it.
        let unfinished = bot.unfinished();
        async move {
            let reply = bot.handle_with_delivery(&msg, special, delivery).await;
            drop(unfinished);
            reply
        }
    };
    let mut handle = tokio::spawn(work);
    let finished = match tokio::time::timeout(deadline, &mut handle).await {
        Ok(finished) => finished,
        Err(_) => match delivery.deadline_passed(redelivery == Redelivery::Retried) {
            Late::Acknowledge => {
                tracing::warn!(
                    ?deadline,
                    "bot slower than the reply deadline; acknowledging, the reply will be pushed"
                );
                return Ok(None);
            }
            // The writer already chose a direct reply and is committing it.
            Late::Wait => handle.await,
            Late::Retry => {
                // Acknowledging now could lose the message if storage never answers: the
                // platform retries it instead, and nothing of this delivery is stored.
                tracing::warn!(?deadline, "no writer took the message before the reply deadline; asking for a retry");
                return Err(ApiError::Unavailable("storage is busy or unreachable, retry".into()));
            }
        },
    };
    match finished {
        Ok(Ok(reply)) => Ok(Some(reply)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "message not handled");
            // Not stored: the platform retries on a non-200, which is what we want.
            Err(ApiError::Unavailable("storage unavailable, retry".into()))
        }
        Err(join) => {
            tracing::error!(error = %join, "bot task failed");
            Err(ApiError::Unavailable("internal error, retry".into()))
        }
    }
}
