//! Chat platform adapters. Each turns its callbacks into [`IncomingMessage`](crate::bot::IncomingMessage)s
//! and delivers pushes. The console is the built-in one for trying chatcrm locally.

pub mod console;
pub mod wecom;
