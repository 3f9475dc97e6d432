//! Builds WeCom callbacks the way WeCom does (signed, encrypted), and opens the passive replies:
//! used by `chatcrm wecom simulate`, the load generator and the tests.

use super::crypto::{CryptoError, WecomCrypto, extract_encrypt};

pub struct Simulator {
    crypto: WecomCrypto,
    corp_id: String,
    agent_id: i64,
}

/// A ready-to-send callback: the query string and the XML body.
pub struct Callback {
    pub query: String,
    pub body: String,
}

fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

impl Simulator {
    pub fn new(token: &str, encoding_aes_key: &str, corp_id: &str, agent_id: i64) -> Result<Self, CryptoError> {
        Ok(Self { crypto: WecomCrypto::new(token, encoding_aes_key, corp_id)?, corp_id: corp_id.into(), agent_id })
    }

    /// Wraps a plaintext message XML into a signed, encrypted POST.
    pub fn envelope(&self, plaintext: &str, timestamp: i64, nonce: &str) -> Callback {
        let encrypt = self.crypto.encrypt(plaintext);
        let ts = timestamp.to_string();
        let signature = self.crypto.signature(&ts, nonce, &encrypt);
        let body = format!(
            "<xml><ToUserName>{}</ToUserName><AgentID>{}</AgentID><Encrypt>{}</Encrypt></xml>",
            cdata(&self.corp_id),
            cdata(&self.agent_id.to_string()),
            cdata(&encrypt)
        );
        Callback { query: format!("msg_signature={signature}&timestamp={ts}&nonce={nonce}"), body }
    }

    /// The query of the GET handshake that checks the callback URL: `echo` encrypted as
    /// `echostr`, signed. Pairs, to be URL-encoded by the caller.
    pub fn url_check(&self, echo: &str, timestamp: i64, nonce: &str) -> Vec<(&'static str, String)> {
        let echostr = self.crypto.encrypt(echo);
        let ts = timestamp.to_string();
        let signature = self.crypto.signature(&ts, nonce, &echostr);
        vec![("msg_signature", signature), ("timestamp", ts), ("nonce", nonce.to_string()), ("echostr", echostr)]
    }

    pub fn text(&self, from_user: &str, content: &str, msg_id: &str, timestamp: i64) -> Callback {
        let plain = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{}</Content><MsgId>{msg_id}</MsgId><AgentID>{}</AgentID></xml>",
            cdata(&self.corp_id),
            cdata(from_user),
            cdata(content),
            self.agent_id
        );
        self.envelope(&plain, timestamp, &format!("n{msg_id}"))
    }

    pub fn event(&self, from_user: &str, event: &str, key: Option<&str>, timestamp: i64) -> Callback {
        let key = key.map(|k| format!("<EventKey>{}</EventKey>", cdata(k))).unwrap_or_default();
        let plain = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event>{}</Event>{key}<AgentID>{}</AgentID></xml>",
            cdata(&self.corp_id),
            cdata(from_user),
            cdata(event),
            self.agent_id
        );
        self.envelope(&plain, timestamp, &format!("e{timestamp}"))
    }

    pub fn location(&self, from_user: &str, lat: f64, lng: f64, label: &str, msg_id: &str, timestamp: i64) -> Callback {
        let plain = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>{lat}</Location_X><Location_Y>{lng}</Location_Y><Scale>15</Scale><Label>{}</Label><MsgId>{msg_id}</MsgId><AgentID>{}</AgentID></xml>",
            cdata(&self.corp_id),
            cdata(from_user),
            cdata(label),
            self.agent_id
        );
        self.envelope(&plain, timestamp, &format!("l{msg_id}"))
    }

    /// The passive reply's text content, after checking its signature.
    pub fn open_reply(&self, body: &str) -> Result<String, CryptoError> {
        let encrypt = extract_encrypt(body)?;
        let field = |name: &str| -> Option<String> {
            let start = body.find(&format!("<{name}>"))? + name.len() + 2;
            let end = body[start..].find(&format!("</{name}>"))? + start;
            let v = &body[start..end];
            Some(v.trim_start_matches("<![CDATA[").trim_end_matches("]]>").to_string())
        };
        let (sig, ts, nonce) = (field("MsgSignature"), field("TimeStamp"), field("Nonce"));
        let (Some(sig), Some(ts), Some(nonce)) = (sig, ts, nonce) else {
            return Err(CryptoError::MalformedEnvelope);
        };
        self.crypto.verify(&sig, &ts, &nonce, encrypt)?;
        let plain = self.crypto.decrypt(encrypt)?;
        let start = plain.find("<Content>").map(|i| i + "<Content>".len()).ok_or(CryptoError::MalformedEnvelope)?;
        let end = plain.rfind("</Content>").ok_or(CryptoError::MalformedEnvelope)?;
        let content = plain.get(start..end).ok_or(CryptoError::MalformedEnvelope)?;
        Ok(content
            .replace("]]]]><![CDATA[>", "]]>")
            .trim_start_matches("<![CDATA[")
            .trim_end_matches("]]>")
            .to_string())
    }
}
