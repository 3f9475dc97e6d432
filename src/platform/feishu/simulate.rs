//! Builds Feishu event callbacks the way Feishu does: v2 schema, encrypted with the app's
//! encrypt key and signed with `X-Lark-*` headers (plain JSON when the app has no key). Used by
//! `chatcrm feishu simulate` and the tests.

use serde_json::{Value, json};

use super::crypto::{self, FeishuCipher};

pub struct Simulator {
    verification_token: String,
    encrypt_key: Option<String>,
    app_id: String,
    tenant_key: String,
}

/// A ready-to-send callback: headers and the raw body.
#[derive(Debug, Clone)]
pub struct Callback {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Simulator {
    pub fn new(verification_token: &str, encrypt_key: Option<&str>, app_id: &str, tenant_key: &str) -> Self {
        Self {
            verification_token: verification_token.into(),
            encrypt_key: encrypt_key.filter(|k| !k.is_empty()).map(str::to_string),
            app_id: app_id.into(),
            tenant_key: tenant_key.into(),
        }
    }

    /// Wraps a plaintext callback: encrypted and signed at `timestamp` (seconds) when there is a key.
    pub fn envelope(&self, plain: &Value, timestamp: i64, nonce: &str) -> Callback {
        let Some(key) = &self.encrypt_key else {
            return Callback { headers: Vec::new(), body: plain.to_string() };
        };
        let encrypt = FeishuCipher::new(key).encrypt(&plain.to_string());
        let body = json!({ "encrypt": encrypt }).to_string();
        let ts = timestamp.to_string();
        let signature = crypto::signature(&ts, nonce, key, body.as_bytes());
        Callback {
            headers: vec![
                ("X-Lark-Request-Timestamp".into(), ts),
                ("X-Lark-Request-Nonce".into(), nonce.into()),
                ("X-Lark-Signature".into(), signature),
            ],
            body,
        }
    }

    /// A v2 event with this type and body.
    pub fn event(&self, event_id: &str, event_type: &str, event: Value, timestamp: i64) -> Callback {
        let plain = json!({
            "schema": "2.0",
            "header": {
                "event_id": event_id,
                "event_type": event_type,
                "create_time": (timestamp * 1000).to_string(),
                "token": self.verification_token,
                "app_id": self.app_id,
                "tenant_key": self.tenant_key,
            },
            "event": event,
        });
        self.envelope(&plain, timestamp, &format!("n{event_id}"))
    }

    /// `im.message.receive_v1` in a p2p chat; `content` is the content object.
    pub fn message(
        &self,
        open_id: &str,
        message_type: &str,
        content: Value,
        message_id: &str,
        timestamp: i64,
    ) -> Callback {
        let event = json!({
            "sender": { "sender_id": { "open_id": open_id, "union_id": format!("on_{open_id}"), "user_id": open_id }, "sender_type": "user", "tenant_key": self.tenant_key },
            "message": {
                "message_id": message_id,
                "create_time": (timestamp * 1000).to_string(),
                "chat_id": format!("oc_p2p_{open_id}"),
                "chat_type": "p2p",
                "message_type": message_type,
                "content": content.to_string(),
            },
        });
        self.event(&format!("ev_{message_id}"), "im.message.receive_v1", event, timestamp)
    }

    pub fn text(&self, open_id: &str, text: &str, message_id: &str, timestamp: i64) -> Callback {
        self.message(open_id, "text", json!({ "text": text }), message_id, timestamp)
    }

    /// A group message that @-mentions the bot (`@_user_1` placeholder first).
    pub fn group_text(&self, open_id: &str, text: &str, message_id: &str, timestamp: i64) -> Callback {
        let mut cb_event = json!({
            "sender": { "sender_id": { "open_id": open_id }, "sender_type": "user", "tenant_key": self.tenant_key },
            "message": {
                "message_id": message_id,
                "chat_id": "oc_group_1",
                "chat_type": "group",
                "message_type": "text",
                "content": json!({ "text": format!("@_user_1 {text}") }).to_string(),
                "mentions": [ { "key": "@_user_1", "id": { "open_id": "ou_bot" }, "name": "chatcrm", "tenant_key": self.tenant_key } ],
            },
        });
        if let Some(m) = cb_event.pointer_mut("/message/create_time") {
            *m = json!((timestamp * 1000).to_string());
        }
        self.event(&format!("ev_{message_id}"), "im.message.receive_v1", cb_event, timestamp)
    }

    /// A reminder card's button press (`card.action.trigger`).
    pub fn card_action(
        &self,
        open_id: &str,
        key: &str,
        card_message_id: &str,
        event_id: &str,
        timestamp: i64,
    ) -> Callback {
        let event = json!({
            "operator": { "open_id": open_id, "tenant_key": self.tenant_key },
            "token": "c-token",
            "action": { "tag": "button", "value": { "key": key } },
            "context": { "open_message_id": card_message_id, "open_chat_id": format!("oc_p2p_{open_id}") },
        });
        self.event(event_id, "card.action.trigger", event, timestamp)
    }

    /// The URL handshake.
    pub fn url_verification(&self, challenge: &str, timestamp: i64) -> Callback {
        let plain = json!({ "challenge": challenge, "token": self.verification_token, "type": "url_verification" });
        let mut cb = self.envelope(&plain, timestamp, "handshake");
        // Feishu's SDK does not rely on the signature here; send the handshake unsigned.
        cb.headers.clear();
        cb
    }
}
