//! Decrypted WeCom messages and events, and group-robot callbacks: any text decodes to a message
//! or an error, never a panic.
#![no_main]

use chatcrm::platform::wecom::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = xml::decode(text) {
        let _ = m.dedupe_key();
    }
    let _ = xml::decode_robot(text, Some("chatcrm"));
    let _ = xml::strip_leading_mention(text, Some("chatcrm"));
});
