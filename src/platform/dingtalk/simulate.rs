//! Builds DingTalk callbacks the way DingTalk does: robot messages with the `timestamp` + `sign`
//! headers, and encrypted event callbacks. Also a local session-webhook receiver, where the
//! server's replies to simulated robot messages arrive. Used by `chatcrm dingtalk simulate` and
//! the tests.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::DingtalkApp;
use super::sign;
use crate::platform::wecom::crypto::{CryptoError, WecomCrypto};

/// How long DingTalk's session webhooks live in the doc sample (PLATFORMS.md 2.2).
pub const SESSION_LIFETIME_MS: i64 = 90 * 60 * 1000;

pub struct Simulator {
    app_secret: String,
    corp_id: String,
    events: Option<WecomCrypto>,
}

/// A signed robot callback: the two headers and the JSON body.
#[derive(Debug, Clone)]
pub struct RobotCallback {
    pub timestamp: String,
    pub sign: String,
    pub body: String,
}

/// An encrypted event callback: the query string and the `{"encrypt"}` body.
#[derive(Debug, Clone)]
pub struct EventCallback {
    pub query: String,
    pub body: String,
}

impl Simulator {
    pub fn new(app: &DingtalkApp) -> Result<Self, CryptoError> {
        let events = match (&app.event_token, &app.event_aes_key) {
            (Some(t), Some(k)) => Some(WecomCrypto::new(t.expose_secret(), k.expose_secret(), &app.app_key)?),
            _ => None,
        };
        Ok(Self { app_secret: app.app_secret.expose_secret().to_string(), corp_id: app.corp_id.clone(), events })
    }

    /// Signs any robot callback body.
    pub fn sign(&self, body: &Value, at_ms: i64) -> RobotCallback {
        let timestamp = at_ms.to_string();
        RobotCallback { sign: sign::sign(&timestamp, &self.app_secret), timestamp, body: body.to_string() }
    }

    /// The JSON of a text message from `staff_id`, 1:1 or (with `group`) an @-mention in a group.
    pub fn text_body(
        &self,
        staff_id: &str,
        text: &str,
        msg_id: &str,
        group: Option<&str>,
        at_ms: i64,
        session_webhook: Option<&str>,
    ) -> Value {
        let (conversation_type, conversation_id, content) = match group {
            // In groups the mention is removed and a space is left before the text.
            Some(g) => ("2", format!("cid-group-{g}"), format!(" {text}")),
            None => ("1", format!("cid-single-{staff_id}"), text.to_string()),
        };
        let mut body = json!({
            "msgtype": "text",
            "text": { "content": content },
            "msgId": msg_id,
            "createAt": at_ms,
            "conversationType": conversation_type,
            "conversationId": conversation_id,
            "senderId": format!("$:LWCP_v1:$sim-{staff_id}"),
            "senderStaffId": staff_id,
            "senderNick": staff_id,
            "senderCorpId": self.corp_id,
            "chatbotCorpId": self.corp_id,
            "chatbotUserId": "$:LWCP_v1:$sim-bot",
            "isAdmin": false,
            "isInAtList": group.is_some(),
        });
        if let Some(g) = group
            && let Some(o) = body.as_object_mut()
        {
            o.insert("conversationTitle".into(), json!(g));
        }
        if let Some(url) = session_webhook
            && let Some(o) = body.as_object_mut()
        {
            o.insert("sessionWebhook".into(), json!(url));
            o.insert("sessionWebhookExpiredTime".into(), json!(at_ms + SESSION_LIFETIME_MS));
        }
        body
    }

    pub fn text(
        &self,
        staff_id: &str,
        text: &str,
        msg_id: &str,
        group: Option<&str>,
        at_ms: i64,
        session_webhook: Option<&str>,
    ) -> RobotCallback {
        self.sign(&self.text_body(staff_id, text, msg_id, group, at_ms, session_webhook), at_ms)
    }

    /// An encrypted, signed event callback; `None` when the app has no event token/aes_key.
    pub fn event(&self, plaintext_json: &str, at_ms: i64, nonce: &str) -> Option<EventCallback> {
        let c = self.events.as_ref()?;
        let encrypt = c.encrypt(plaintext_json);
        let ts = at_ms.to_string();
        let signature = c.signature(&ts, nonce, &encrypt);
        Some(EventCallback {
            query: format!("signature={signature}&timestamp={ts}&nonce={}", sign::urlencode(nonce)),
            body: json!({ "encrypt": encrypt }).to_string(),
        })
    }

    /// Checks the signature of an event answer and decrypts it (`success`).
    pub fn open_event_response(&self, body: &str) -> Result<String, CryptoError> {
        let c = self.events.as_ref().ok_or(CryptoError::MalformedEnvelope)?;
        let v: Value = serde_json::from_str(body).map_err(|_| CryptoError::MalformedEnvelope)?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).ok_or(CryptoError::MalformedEnvelope);
        let (sig, ts, nonce, enc) = (field("msg_signature")?, field("timeStamp")?, field("nonce")?, field("encrypt")?);
        c.verify(sig, ts, nonce, enc)?;
        c.decrypt(enc)
    }
}

/// A local session webhook: every JSON body posted to `url` comes out of `bodies`.
pub struct SessionReceiver {
    pub url: String,
    pub bodies: mpsc::UnboundedReceiver<Value>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl SessionReceiver {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let (tx, bodies) = mpsc::unbounded_channel::<Value>();
        let app = Router::new()
            .route(
                "/robot/sendBySession",
                post(|State(tx): State<mpsc::UnboundedSender<Value>>, axum::Json(v): axum::Json<Value>| async move {
                    let _ = tx.send(v);
                    axum::Json(json!({ "errcode": 0, "errmsg": "ok" }))
                }),
            )
            .with_state(tx);
        let (stop, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            url: format!("http://{addr}/robot/sendBySession?session=sim-{}", rand::random::<u32>()),
            bodies,
            shutdown: Some(stop),
        })
    }
}

impl Drop for SessionReceiver {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}
