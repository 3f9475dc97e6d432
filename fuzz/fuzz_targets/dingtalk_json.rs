//! DingTalk robot callbacks and encrypted event callbacks: any body is a message, an event or an
//! error, never a panic.
#![no_main]

use chatcrm::platform::dingtalk::{self, EventQuery, RobotMessage};
use chatcrm::platform::wecom::crypto::WecomCrypto;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = RobotMessage::parse(data)
        && let Some(t) = &m.text
    {
        let _ = dingtalk::clean_text(&t.content);
    }
    let Ok(crypto) = WecomCrypto::new("token", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "dingkey") else {
        return;
    };
    let q = EventQuery {
        signature: Some("5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0".into()),
        msg_signature: None,
        timestamp: Some("1445827045067".into()),
        time_stamp: None,
        nonce: Some("nEXhMP4r".into()),
    };
    let now = chrono::DateTime::from_timestamp(1_445_827_045, 0).unwrap_or_default();
    let _ = dingtalk::open_event(&crypto, &q, data, now, 3_600_000);
});
