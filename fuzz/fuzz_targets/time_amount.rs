//! The time and amount parsers: any text parses or is refused, and what is found is a slice of
//! the input on character boundaries.
#![no_main]

use chatcrm::command::{amount, when};
use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(now) = chrono_tz::Asia::Shanghai.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).single() else { return };
    let _ = when::parse_when(text, now);
    if let Some((_, range)) = when::find_time(text, now) {
        assert!(text.get(range).is_some(), "find_time range off a char boundary");
    }
    let _ = amount::parse_amount(text);
    if let Some((fen, range)) = amount::find_amount(text) {
        assert!(text.get(range).is_some(), "find_amount range off a char boundary");
        assert!(fen >= 0, "negative amount");
    }
});
