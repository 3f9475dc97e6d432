//! Feishu event bodies: decryption of any `encrypt` field, the message content's mentions and card
//! button values never panic.
#![no_main]

use chatcrm::platform::feishu::{self, crypto::FeishuCipher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let cipher = FeishuCipher::new("test key");
    let _ = cipher.decrypt(text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(e) = v.get("encrypt").and_then(|e| e.as_str())
    {
        let _ = cipher.decrypt(e);
    }
    let _ = feishu::strip_mentions(text);
    let _ = feishu::card_command(text);
    let _ = feishu::crypto::verify_signature("1", "2", "key", data, text);
});
