//! Property tests: the parsers take any text without panicking, and their outputs keep their
//! invariants. (Speed is measured by `chatcrm bench parse`, not asserted here.)

use chatcrm::command::{Command, amount, parse, when};
use chrono::TimeZone;
use proptest::prelude::*;

fn now() -> chrono::DateTime<chrono_tz::Tz> {
    chrono_tz::Asia::Shanghai.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).single().expect("valid time")
}

/// Text that looks like chat: command words, numbers, units, separators, then anything.
fn chatty() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("拜访".to_string()),
        Just("商机".to_string()),
        Just("#".to_string()),
        Just("下周三".to_string()),
        Just("下午".to_string()),
        Just("点".to_string()),
        Just("万".to_string()),
        Just("，".to_string()),
        Just(" ".to_string()),
        Just("@".to_string()),
        Just("+86".to_string()),
        "[0-9]{1,12}",
        "[a-z]{1,8}",
        "\\PC{1,6}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_any_string(s in "\\PC*") {
        let _ = parse(&s, now());
    }

    #[test]
    fn parse_never_panics_on_chat_like_text(s in chatty()) {
        if let Ok(p) = parse(&s, now()) {
            // Whatever was parsed serialises to the JSON contract.
            let json = serde_json::to_value(&p.command).expect("serialise");
            prop_assert!(json.get("command").and_then(|c| c.as_str()).is_some());
            if let Command::CreateReminder { at, .. } = p.command {
                prop_assert!(at.timestamp() > 0);
            }
        }
    }

    #[test]
    fn found_times_and_amounts_are_valid_slices(s in chatty()) {
        if let Some((_, r)) = when::find_time(&s, now()) {
            prop_assert!(s.get(r).is_some());
        }
        if let Some((fen, r)) = amount::find_amount(&s) {
            prop_assert!(s.get(r).is_some());
            prop_assert!((0..=amount::MAX_FEN).contains(&fen));
        }
    }

    #[test]
    fn amounts_round_trip_through_their_english_form(fen in 0i64..=amount::MAX_FEN) {
        prop_assert_eq!(amount::parse_amount(&amount::format_en(fen)), Ok(fen));
    }
}

#[test]
fn inputs_up_to_the_body_limit_parse() {
    // 256 KiB of mixed text, and of a single repeated command word.
    let big = "拜访 海尔 下周三下午3点 12万 #12 ".repeat(8000);
    let _ = parse(&big[..big.floor_char_boundary(256 * 1024)], now());
    let words = "商机".repeat(40_000);
    let _ = parse(&words, now());
    let controls: String = (0u32..0x20).filter_map(char::from_u32).cycle().take(100_000).collect();
    let _ = parse(&controls, now());
}
