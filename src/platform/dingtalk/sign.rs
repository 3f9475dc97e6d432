//! DingTalk's HMAC-SHA256 signatures (PLATFORMS.md 2.2 and 2.4): the `sign` header of robot
//! callbacks and the `sign` query of custom group-robot webhooks are the same value,
//! `base64(HMAC-SHA256(key = secret, data = timestamp_ms + "\n" + secret))`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq as _;

use crate::platform::hmac::hmac_sha256;

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
