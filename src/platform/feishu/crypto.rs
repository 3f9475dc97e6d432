//! Feishu event crypto (PLATFORMS.md §3.1): AES-256-CBC with key = SHA-256(encrypt key), the IV
//! prefixed to the ciphertext, PKCS#7 with 16-byte blocks; the `X-Lark-Signature` request
//! signature; and the custom-bot webhook `sign`.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::{Array, BlockModeDecrypt as _, BlockModeEncrypt as _, InOutBuf, InnerIvInit as _, KeyInit as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::platform::hmac::hmac_sha256;

type Aes256CbcDec = cbc::Decryptor<Aes256>;
type Aes256CbcEnc = cbc::Encryptor<Aes256>;

const BLOCK: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("`encrypt` is not base64")]
    BadBase64,
    #[error("ciphertext length is not a whole number of blocks after the IV")]
    BadCiphertext,
    #[error("invalid padding (wrong encrypt key?)")]
    BadPadding,
    #[error("decrypted event is not UTF-8")]
    NotUtf8,
}

/// The cipher of one app's Encrypt Key.
#[derive(Clone)]
pub struct FeishuCipher {
    cipher: Aes256,
}

impl std::fmt::Debug for FeishuCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeishuCipher([redacted])")
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(data));
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FeishuCipher {
    pub fn new(encrypt_key: &str) -> Self {
        Self { cipher: Aes256::new(&Array::from(sha256(encrypt_key.as_bytes()))) }
    }

    /// Base64 `encrypt` → the event JSON. Checks every pad byte, as the official SDK does.
    pub fn decrypt(&self, encrypt_b64: &str) -> Result<String, CryptoError> {
        let raw = STANDARD.decode(encrypt_b64.trim().as_bytes()).map_err(|_| CryptoError::BadBase64)?;
        if raw.len() < 2 * BLOCK || !raw.len().is_multiple_of(BLOCK) {
            return Err(CryptoError::BadCiphertext);
        }
        let (iv, body) = raw.split_at(BLOCK);
        let mut iv_arr = [0u8; BLOCK];
        iv_arr.copy_from_slice(iv);
        let mut buf = body.to_vec();
        let mut dec = Aes256CbcDec::inner_iv_init(self.cipher.clone(), &Array::from(iv_arr));
        let (blocks, _tail) = InOutBuf::from(buf.as_mut_slice()).into_chunks();
        dec.decrypt_blocks_inout(blocks);
        let pad = usize::from(*buf.last().ok_or(CryptoError::BadPadding)?);
        if pad == 0 || pad > BLOCK || pad > buf.len() || buf[buf.len() - pad..].iter().any(|&b| usize::from(b) != pad) {
            return Err(CryptoError::BadPadding);
        }
        buf.truncate(buf.len() - pad);
        String::from_utf8(buf).map_err(|_| CryptoError::NotUtf8)
    }

    /// The other direction, with the given IV (the simulator and tests; Feishu picks a random one).
    pub fn encrypt_with_iv(&self, plaintext: &str, iv: [u8; BLOCK]) -> String {
        let mut buf = plaintext.as_bytes().to_vec();
        let pad = BLOCK - buf.len() % BLOCK;
        buf.extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(16), pad));
        let mut enc = Aes256CbcEnc::inner_iv_init(self.cipher.clone(), &Array::from(iv));
        let (blocks, _tail) = InOutBuf::from(buf.as_mut_slice()).into_chunks();
        enc.encrypt_blocks_inout(blocks);
        let mut out = iv.to_vec();
        out.extend_from_slice(&buf);
        STANDARD.encode(out)
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        self.encrypt_with_iv(plaintext, rand::random())
    }
}

/// `X-Lark-Signature` = hex(SHA-256(timestamp + nonce + encrypt_key + raw body bytes)).
pub fn signature(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(body);
    hex(&h.finalize())
}

/// Constant-time check of a received `X-Lark-Signature`.
pub fn verify_signature(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8], received: &str) -> bool {
    let expected = signature(timestamp, nonce, encrypt_key, body);
    bool::from(expected.as_bytes().ct_eq(received.trim().to_ascii_lowercase().as_bytes()))
}

/// Custom-bot webhook `sign` = base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = "")):
/// the string is the key and the message is empty (the reverse of DingTalk).
pub fn bot_sign(timestamp: i64, secret: &str) -> String {
    STANDARD.encode(hmac_sha256(format!("{timestamp}\n{secret}").as_bytes(), b""))
}

/// Constant-time string equality (verification tokens).
pub fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_f1_doc_example_decrypts() {
        let c = FeishuCipher::new("test key");
        assert_eq!(hex(&sha256(b"test key")), "fa2bdca424f01f01ffb48df93acc35d439c7fd331a1a7fba6ac2fd83aa9ab31a");
        let raw = STANDARD.decode("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").expect("b64");
        assert_eq!(hex(&raw[..16]), "3f7ef0f9564898d80f10ed5106127a46");
        assert_eq!(c.decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").as_deref(), Ok("hello world"));
    }

    const G11_PLAIN: &str = r#"{"challenge":"ajls384kdjx98XX","token":"xxxxxx","type":"url_verification"}"#;
    const G11_ENCRYPT: &str = "AAECAwQFBgcICQoLDA0ODw9mLTIAZS9jAmGTQ1wAhHpnBHVL2wRjH9rPunQdQC1vLjsckayA10kZ8cPwtb62F8rC7JprUPR/4S2aZihfR+p8npX7UzWPithZmfKIPZgE";

    #[test]
    fn v_g11_encrypted_url_verification_and_signature() {
        let c = FeishuCipher::new("test key");
        let iv: [u8; 16] = std::array::from_fn(|i| u8::try_from(i).unwrap_or(0));
        assert_eq!(c.encrypt_with_iv(G11_PLAIN, iv), G11_ENCRYPT);
        assert_eq!(c.decrypt(G11_ENCRYPT).as_deref(), Ok(G11_PLAIN));
        let body = format!(r#"{{"encrypt":"{G11_ENCRYPT}"}}"#);
        let sig = signature("1700000000", "abc123", "test key", body.as_bytes());
        assert_eq!(sig, "d0173e438bdf976bb4ccf8db9648923287ac94b7e9cc1e8d1f01b736edcfa14b");
        assert!(verify_signature("1700000000", "abc123", "test key", body.as_bytes(), &sig));
        assert!(!verify_signature("1700000001", "abc123", "test key", body.as_bytes(), &sig));
        // The raw bytes count: the same JSON re-serialised with a space does not verify.
        let spaced = body.replace(':', ": ");
        assert!(!verify_signature("1700000000", "abc123", "test key", spaced.as_bytes(), &sig));
    }

    #[test]
    fn v_g12_custom_bot_sign() {
        assert_eq!(bot_sign(1_700_000_000, "demo-secret"), "mYHw2R2SOm8Rw/sne3lQdmz4sOfntKR+1P/8RKKTwmA=");
    }

    #[test]
    fn broken_ciphertexts_are_errors() {
        let c = FeishuCipher::new("test key");
        assert_eq!(c.decrypt("not base64!"), Err(CryptoError::BadBase64));
        assert_eq!(c.decrypt(&STANDARD.encode([0u8; 20])), Err(CryptoError::BadCiphertext));
        assert!(FeishuCipher::new("other key").decrypt(G11_ENCRYPT).is_err());
        let round = c.encrypt("飞书 🚀");
        assert_eq!(c.decrypt(&round).as_deref(), Ok("飞书 🚀"));
    }
}
