//! Chat platform adapters. Each turns its callbacks into [`IncomingMessage`](crate::bot::IncomingMessage)s
//! and delivers pushes. The console is the built-in one for trying chatcrm locally.

pub mod console;
pub mod dingtalk;
pub mod feishu;
pub mod hmac;
pub mod markdown;
#[cfg(test)]
mod render_tests;
pub mod wecom;

/// Why a push did not go through, as the outbox needs it: try again (not before `after` when
/// given), or give up on this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushFailure {
    Retry { error: String, after: Option<std::time::Duration> },
    Fatal(String),
}

impl std::fmt::Display for PushFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushFailure::Retry { error, .. } => write!(f, "{error} (will retry)"),
            PushFailure::Fatal(e) => f.write_str(e),
        }
    }
}
