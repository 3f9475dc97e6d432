//! DingTalk's HMAC-SHA256 signatures (PLATFORMS.md 2.2 and 2.4): the `sign` header of robot
//! callbacks and the `sign` query of custom group-robot webhooks are the same value,
//! `base64(HMAC-SHA256(key = secret, data = timestamp_ms + "\n" + secret))`.
//!
//! HMAC is written out here (RFC 2104, ~15 lines over `sha2`) rather than adding a dependency;
//! the RFC 4231 vectors below pin it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(k.iter()) {
        *i ^= k;
        *o ^= k;
    }
    let inner = Sha256::new().chain_update(ipad).chain_update(data).finalize();
    Sha256::new().chain_update(opad).chain_update(inner).finalize().into()
}

/// `base64(HMAC-SHA256(secret, timestamp + "\n" + secret))`, not URL-encoded.
pub fn sign(timestamp: &str, secret: &str) -> String {
    let data = format!("{timestamp}\n{secret}");
    STANDARD.encode(hmac_sha256(secret.as_bytes(), data.as_bytes()))
}

/// Constant-time check of a robot callback's `sign` header.
pub fn verify(timestamp: &str, secret: &str, given: &str) -> bool {
    bool::from(sign(timestamp, secret).as_bytes().ct_eq(given.trim().as_bytes()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so `+`, `/`, `=` are
/// encoded, exactly once; pitfall 12).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A custom group robot's signed webhook URL: `{base}/robot/send?access_token=…&timestamp=…&sign=…`.
pub fn webhook_url(base: &str, access_token: &str, secret: &str, timestamp_ms: i64) -> String {
    let ts = timestamp_ms.to_string();
    format!(
        "{}/robot/send?access_token={}&timestamp={ts}&sign={}",
        base.trim_end_matches('/'),
        urlencode(access_token),
        urlencode(&sign(&ts, secret))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc4231_vectors() {
        // Test case 1 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// V-G7: the robot callback's header sign.
    #[test]
    fn v_g7_robot_callback_sign() {
        assert_eq!(sign("1577262236757", "this is secret"), "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM=");
        assert!(verify("1577262236757", "this is secret", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="));
        assert!(!verify("1577262236758", "this is secret", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="));
        assert!(!verify("1577262236757", "this is secret", ""));
    }

    /// V-G8: the custom robot webhook URL, its sign URL-encoded once.
    #[test]
    fn v_g8_webhook_sign() {
        assert_eq!(
            urlencode(&sign("1577262236757", "this is secret")),
            "hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
        );
        assert_eq!(
            webhook_url("https://oapi.dingtalk.com/", "ACCESS_TOKEN", "this is secret", 1577262236757),
            "https://oapi.dingtalk.com/robot/send?access_token=ACCESS_TOKEN&timestamp=1577262236757&sign=hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
        );
    }
}
