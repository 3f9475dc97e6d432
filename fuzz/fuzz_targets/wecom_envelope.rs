//! The WeCom POST envelope and its crypto: pulling `Encrypt` out of any body (XML or the group
//! robot's JSON), verifying a signature over it and decrypting it must never panic.
#![no_main]

use chatcrm::platform::wecom::crypto::{WecomCrypto, extract_encrypt, extract_encrypt_json, extract_envelope};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    let Ok(crypto) = WecomCrypto::new("QDG6eK", KEY, "wx5823bf96d3bd56c7") else { return };
    let _ = extract_envelope(body);
    let _ = extract_encrypt_json(body);
    if let Ok(encrypt) = extract_encrypt(body) {
        let _ = crypto.verify("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", encrypt);
        let _ = crypto.decrypt(encrypt);
    }
    // The raw input as ciphertext too: base64 of any length, padding or alphabet.
    let _ = crypto.decrypt(body);
});
