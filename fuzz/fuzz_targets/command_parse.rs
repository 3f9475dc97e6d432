//! The chat command parser on any text: a command or a usage error, never a panic.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(now) = chrono_tz::Asia::Shanghai.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).single() else { return };
    let _ = chatcrm::command::parse(text, now);
});
