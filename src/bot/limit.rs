//! Per-sender message rate limit: one token bucket per (platform, tenant, sender).
//!
//! A person types a few messages a minute; a script looping on a signed account, or a chat
//! integration gone wrong, sends hundreds. Past the limit, the first message is answered with a
//! notice (recorded like any reply, so a redelivery gets the same answer) and the rest are
//! acknowledged without being acted on, so the platform does not retry them and nothing is
//! written for them. The bucket refills at the configured rate; a sender back under the limit is
//! served as before.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::crm::Lang;

/// `sender_rate_per_minute` and `sender_rate_burst` from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderLimit {
    /// Messages a sender may send per minute, sustained.
    pub per_minute: u32,
    /// Messages a sender may send at once after being quiet.
    pub burst: u32,
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the limit for the first time since the sender was last allowed: tell them.
    Warn,
    /// Over the limit and already told: acknowledge, do nothing.
    Drop,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
    warned: bool,
}

/// Buckets kept before idle ones (full again, so equal to a new one) are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
pub struct Limiter {
    limit: SenderLimit,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<String, Bucket>,
    prune_at: usize,
}

impl Limiter {
    /// `None` when the limit is off (`per_minute` or `burst` 0).
    pub fn new(limit: SenderLimit) -> Option<Self> {
        (limit.per_minute > 0 && limit.burst > 0)
            .then(|| Self { limit, state: Mutex::new(State { buckets: HashMap::new(), prune_at: PRUNE_AT }) })
    }

    /// Takes one message of `sender` at `now`.
    pub fn check(&self, platform: &str, tenant: &str, sender: &str, now: DateTime<Utc>) -> Verdict {
        let burst = f64::from(self.limit.burst);
        let per_ms = f64::from(self.limit.per_minute) / 60_000.0;
        let refill = |b: &Bucket| {
            // A clock set back refills nothing rather than draining the bucket.
            let elapsed = (now - b.at).num_milliseconds().max(0) as f64;
            (b.tokens + elapsed * per_ms).min(burst)
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key(platform, tenant, sender);
        if !state.buckets.contains_key(&key) && state.buckets.len() >= state.prune_at {
            state.buckets.retain(|_, b| refill(b) < burst);
            // Amortised: if most senders are still limited, wait for the map to double.
            state.prune_at = (state.buckets.len() * 2).max(PRUNE_AT);
        }
        let b = state.buckets.entry(key).or_insert(Bucket { tokens: burst, at: now, warned: false });
        b.tokens = refill(b);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.warned = false;
            Verdict::Allow
        } else if b.warned {
            Verdict::Drop
        } else {
            b.warned = true;
            Verdict::Warn
        }
    }

    /// Gives back the token a message took when it was not stored after all (storage failed,
    /// or the caller asked the platform to retry): the redelivery is charged instead. A notice
    /// that was not recorded is owed again.
    pub fn refund(&self, platform: &str, tenant: &str, sender: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = state.buckets.get_mut(&key(platform, tenant, sender)) {
            if b.warned {
                b.warned = false;
            } else {
                b.tokens = (b.tokens + 1.0).min(f64::from(self.limit.burst));
            }
        }
    }

    /// The answer to the first message over the limit.
    pub fn notice(&self, lang: Lang) -> String {
        let seconds = (60 / self.limit.per_minute.max(1)).max(1);
        match lang {
            Lang::Zh => format!(
                "⏳ 消息发得太快了：每人每分钟最多 {} 条。这条和接下来约 {seconds} 秒内的消息不会处理，请稍后再发。",
                self.limit.per_minute
            ),
            Lang::En => format!(
                "⏳ Too many messages: at most {} a minute each. This one and those in the next ~{seconds} s are not handled; please send them again in a moment.",
                self.limit.per_minute
            ),
        }
    }

    /// Senders tracked now (for tests of the pruning).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).buckets.len()
    }
}

/// A bucket's key: NUL never occurs in platform ids, so two ids cannot join into another's key.
fn key(platform: &str, tenant: &str, sender: &str) -> String {
    format!("{platform}\u{0}{tenant}\u{0}{sender}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + ms).single().expect("valid instant")
    }

    fn limiter(per_minute: u32, burst: u32) -> Limiter {
        Limiter::new(SenderLimit { per_minute, burst }).expect("limit on")
    }

    #[test]
    fn zero_turns_the_limit_off() {
        assert!(Limiter::new(SenderLimit { per_minute: 0, burst: 5 }).is_none());
        assert!(Limiter::new(SenderLimit { per_minute: 5, burst: 0 }).is_none());
    }

    #[test]
    fn a_burst_then_one_notice_then_silence() {
        let l = limiter(60, 3);
        let v: Vec<Verdict> = (0..6).map(|_| l.check("wecom", "c", "u", t(0))).collect();
        use Verdict::*;
        assert_eq!(v, [Allow, Allow, Allow, Warn, Drop, Drop]);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_a_new_excess_is_told_again() {
        let l = limiter(60, 2);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Allow);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Allow);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Warn);
        // 60 a minute = one per second: 999 ms is not enough, 1 s is.
        assert_eq!(l.check("p", "c", "u", t(999)), Verdict::Drop);
        assert_eq!(l.check("p", "c", "u", t(1_000)), Verdict::Allow);
        assert_eq!(l.check("p", "c", "u", t(1_000)), Verdict::Warn);
        // Never more than the burst, however long the pause.
        let later = t(0) + Duration::hours(1);
        let v: Vec<Verdict> = (0..3).map(|_| l.check("p", "c", "u", later)).collect();
        assert_eq!(v, [Verdict::Allow, Verdict::Allow, Verdict::Warn]);
    }

    #[test]
    fn senders_tenants_and_platforms_have_their_own_buckets() {
        let l = limiter(60, 1);
        assert_eq!(l.check("wecom", "c1", "u", t(0)), Verdict::Allow);
        assert_eq!(l.check("wecom", "c1", "u", t(0)), Verdict::Warn);
        assert_eq!(l.check("wecom", "c1", "v", t(0)), Verdict::Allow);
        assert_eq!(l.check("wecom", "c2", "u", t(0)), Verdict::Allow);
        assert_eq!(l.check("feishu", "c1", "u", t(0)), Verdict::Allow);
        // No separator trick joins two ids into another sender's key.
        assert_eq!(l.check("wecom", "c1u", "", t(0)), Verdict::Allow);
    }

    #[test]
    fn a_message_not_stored_is_not_charged() {
        let l = limiter(60, 2);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Allow);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Allow);
        // The second was refused by storage (503): the platform's redelivery is served.
        l.refund("p", "c", "u");
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Allow);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Warn);
        // The notice was not recorded: the next message over the limit gets it again.
        l.refund("p", "c", "u");
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Warn);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Drop);
        // Never above the burst, and unknown senders are ignored.
        l.refund("p", "c", "nobody");
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn a_clock_set_back_does_not_drain_or_panic() {
        let l = limiter(60, 1);
        assert_eq!(l.check("p", "c", "u", t(10_000)), Verdict::Allow);
        assert_eq!(l.check("p", "c", "u", t(0)), Verdict::Warn);
        assert_eq!(l.check("p", "c", "u", t(1_000)), Verdict::Allow);
    }

    #[test]
    fn idle_senders_are_forgotten_so_memory_stays_bounded() {
        let l = limiter(60, 1);
        for i in 0..PRUNE_AT {
            l.check("p", "c", &format!("u{i}"), t(0));
        }
        assert_eq!(l.tracked(), PRUNE_AT);
        // A second later every bucket is full again: the next new sender prunes them all.
        l.check("p", "c", "new", t(1_000));
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn busy_senders_are_kept_when_pruning() {
        let l = limiter(1, 1);
        for i in 0..PRUNE_AT {
            l.check("p", "c", &format!("u{i}"), t(0));
        }
        l.check("p", "c", "new", t(1_000));
        assert_eq!(l.tracked(), PRUNE_AT + 1, "still-limited senders must not get a fresh bucket");
        assert_eq!(l.check("p", "c", "u0", t(1_000)), Verdict::Warn);
    }

    #[test]
    fn the_notice_says_the_limit_in_the_senders_language() {
        let l = limiter(30, 10);
        assert!(l.notice(Lang::Zh).contains("每分钟最多 30 条"), "{}", l.notice(Lang::Zh));
        assert!(l.notice(Lang::En).contains("at most 30 a minute"), "{}", l.notice(Lang::En));
    }
}
