//! WeCom (企业微信) decrypted-message codec: app callback XML → [`Inbound`], the passive text reply
//! plaintext, and group-robot callbacks (XML or JSON) → [`RobotMessage`].
//!
//! Decoding parses twice (STYLE.md "WeCom XML"): a small header struct gives the common fields,
//! `MsgType` and `Event`, then a per-type struct gives the rest. Every field is read as an optional
//! string so a missing one becomes [`XmlError::Missing`] with its name, not a serde message.

use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("missing field {0}")]
    Missing(&'static str),
}

/// A decrypted app callback (PLATFORMS.md 1.6). `to` is the CorpID, `from` the member's UserID.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Text {
        to: String,
        from: String,
        create_time: i64,
        msg_id: String,
        agent_id: Option<i64>,
        content: String,
    },
    Image {
        to: String,
        from: String,
        create_time: i64,
        msg_id: String,
        agent_id: Option<i64>,
        pic_url: Option<String>,
        media_id: String,
    },
    Voice {
        to: String,
        from: String,
        create_time: i64,
        msg_id: String,
        agent_id: Option<i64>,
        media_id: String,
        format: Option<String>,
        /// Not documented for WeCom (it is a WeChat MP field); kept if it ever shows up.
        recognition: Option<String>,
    },
    Location {
        to: String,
        from: String,
        create_time: i64,
        msg_id: String,
        agent_id: Option<i64>,
        latitude: f64,
        longitude: f64,
        scale: Option<i64>,
        label: Option<String>,
    },
    /// `MsgType=file` is not in the documented app table (90239); decoded defensively when it shows up.
    File {
        to: String,
        from: String,
        create_time: i64,
        msg_id: String,
        agent_id: Option<i64>,
        media_id: String,
        title: Option<String>,
    },
    /// `video`, `link` and any type we do not act on: enough to log, dedupe and answer politely.
    Other {
        to: String,
        from: String,
        create_time: i64,
        msg_id: Option<String>,
        agent_id: Option<i64>,
        msg_type: String,
    },
    /// `enter_agent`, `click`/`view` (`EventKey`), `LOCATION` (`location`), `subscribe`,
    /// `change_external_contact`/`change_external_chat` (`external_contact`) and the rest.
    Event {
        to: String,
        from: String,
        create_time: i64,
        agent_id: Option<i64>,
        event: String,
        event_key: Option<String>,
        location: Option<ReportedLocation>,
        external_contact: Option<ExternalContactChange>,
    },
}

/// `Event=LOCATION`: the position a member's client reports when entering the app.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedLocation {
    pub latitude: f64,
    pub longitude: f64,
    pub precision: Option<f64>,
}

/// Customer-contact callbacks (`change_external_contact`, `change_external_chat`): the CRM-relevant
/// events. Only `change_type` is always present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalContactChange {
    pub change_type: String,
    pub user_id: Option<String>,
    pub external_user_id: Option<String>,
    pub chat_id: Option<String>,
    pub state: Option<String>,
    pub welcome_code: Option<String>,
    pub fail_reason: Option<String>,
}

impl Inbound {
    /// The sender's UserID.
    pub fn from(&self) -> &str {
        match self {
            Inbound::Text { from, .. }
            | Inbound::Image { from, .. }
            | Inbound::Voice { from, .. }
            | Inbound::Location { from, .. }
            | Inbound::File { from, .. }
            | Inbound::Other { from, .. }
            | Inbound::Event { from, .. } => from,
        }
    }

    pub fn create_time(&self) -> i64 {
        match self {
            Inbound::Text { create_time, .. }
            | Inbound::Image { create_time, .. }
            | Inbound::Voice { create_time, .. }
            | Inbound::Location { create_time, .. }
            | Inbound::File { create_time, .. }
            | Inbound::Other { create_time, .. }
            | Inbound::Event { create_time, .. } => *create_time,
        }
    }

    /// Whether WeCom shows a passive reply to this callback (PLATFORMS.md 1.8): user messages and
    /// a few events; for any other event (a card button's `template_card_event`, contact changes)
    /// it drops the reply, so the answer must be pushed.
    pub fn takes_passive_reply(&self) -> bool {
        match self {
            Inbound::Event { event, .. } => matches!(
                event.as_str(),
                "subscribe"
                    | "enter_agent"
                    | "LOCATION"
                    | "click"
                    | "view"
                    | "view_miniprogram"
                    | "scancode_waitmsg"
                    | "template_card_menu_event"
            ),
            _ => true,
        }
    }

    /// Dedupe key for WeCom's re-deliveries (PLATFORMS.md 1.6, 6): `MsgId` for messages,
    /// `"{from}:{create_time}:{event}"` for events (and for the rare message without a MsgId).
    pub fn dedupe_key(&self) -> String {
        match self {
            Inbound::Text { msg_id, .. }
            | Inbound::Image { msg_id, .. }
            | Inbound::Voice { msg_id, .. }
            | Inbound::Location { msg_id, .. }
            | Inbound::File { msg_id, .. }
            | Inbound::Other { msg_id: Some(msg_id), .. } => msg_id.clone(),
            Inbound::Other { from, create_time, msg_type, msg_id: None, .. } => {
                format!("{from}:{create_time}:{msg_type}")
            }
            // Two buttons or menu items pressed in the same second are two events; a retry of
            // one carries the same key.
            Inbound::Event { from, create_time, event, event_key, .. } => {
                format!("{from}:{create_time}:{event}:{}", event_key.as_deref().unwrap_or_default())
            }
        }
    }
}

/// First pass: the fields every callback shares, plus the two that pick the concrete type.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ToUserName")]
    to: Option<String>,
    #[serde(rename = "FromUserName")]
    from: Option<String>,
    #[serde(rename = "CreateTime")]
    create_time: Option<String>,
    #[serde(rename = "MsgType")]
    msg_type: Option<String>,
    #[serde(rename = "MsgId")]
    msg_id: Option<String>,
    #[serde(rename = "AgentID")]
    agent_id: Option<String>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
struct TextBody {
    #[serde(rename = "Content")]
    content: Option<String>,
}

#[derive(Deserialize)]
struct MediaBody {
    #[serde(rename = "MediaId")]
    media_id: Option<String>,
    #[serde(rename = "PicUrl")]
    pic_url: Option<String>,
    #[serde(rename = "Format")]
    format: Option<String>,
    #[serde(rename = "Recognition")]
    recognition: Option<String>,
    #[serde(rename = "Title")]
    title: Option<String>,
}

#[derive(Deserialize)]
struct LocationBody {
    #[serde(rename = "Location_X")]
    x: Option<String>,
    #[serde(rename = "Location_Y")]
    y: Option<String>,
    #[serde(rename = "Scale")]
    scale: Option<String>,
    #[serde(rename = "Label")]
    label: Option<String>,
}

#[derive(Deserialize)]
struct EventBody {
    #[serde(rename = "EventKey")]
    event_key: Option<String>,
    #[serde(rename = "Latitude")]
    latitude: Option<String>,
    #[serde(rename = "Longitude")]
    longitude: Option<String>,
    #[serde(rename = "Precision")]
    precision: Option<String>,
    #[serde(rename = "ChangeType")]
    change_type: Option<String>,
    #[serde(rename = "UserID")]
    user_id: Option<String>,
    #[serde(rename = "ExternalUserID")]
    external_user_id: Option<String>,
    #[serde(rename = "ChatId")]
    chat_id: Option<String>,
    #[serde(rename = "State")]
    state: Option<String>,
    #[serde(rename = "WelcomeCode")]
    welcome_code: Option<String>,
    #[serde(rename = "FailReason")]
    fail_reason: Option<String>,
}

fn parse_xml<T: DeserializeOwned>(xml: &str) -> Result<T, XmlError> {
    quick_xml::de::from_str(xml).map_err(|e| XmlError::Malformed(e.to_string()))
}

/// Identifiers arrive pretty-printed or padded around CDATA (`<X> <![CDATA[..]]></X>`): trim them.
/// Free text (`Content`, `Label`) is kept as sent.
fn id(v: Option<String>) -> Option<String> {
    v.map(|s| {
        let t = s.trim();
        if t.len() == s.len() { s } else { t.to_owned() }
    })
}

fn required(v: Option<String>, name: &'static str) -> Result<String, XmlError> {
    id(v).filter(|s| !s.is_empty()).ok_or(XmlError::Missing(name))
}

/// An optional identifier; an empty element (`<EventKey><![CDATA[]]></EventKey>`) counts as absent.
fn optional(v: Option<String>) -> Option<String> {
    id(v).filter(|s| !s.is_empty())
}

fn parse_f64(v: Option<String>, name: &'static str) -> Result<f64, XmlError> {
    let s = required(v, name)?;
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| XmlError::Malformed(format!("{name} is not a number")))
}

fn lenient_i64(v: Option<String>) -> Option<i64> {
    optional(v).and_then(|s| s.parse().ok())
}

fn lenient_f64(v: Option<String>) -> Option<f64> {
    optional(v).and_then(|s| s.parse::<f64>().ok()).filter(|f| f.is_finite())
}

/// Decodes a decrypted app callback.
pub fn decode(xml: &str) -> Result<Inbound, XmlError> {
    let xml = xml.trim_start_matches('\u{feff}').trim();
    let head: Head = parse_xml(xml)?;
    let msg_type = required(head.msg_type, "MsgType")?;
    let from = required(head.from, "FromUserName")?;
    let create_time = required(head.create_time, "CreateTime")?
        .parse::<i64>()
        .map_err(|_| XmlError::Malformed("CreateTime is not an integer".into()))?;
    // ToUserName is our own CorpID and not needed to act on the message: tolerate its absence.
    let to = id(head.to).unwrap_or_default();
    // AgentID is informational (the route already says which app): never fail on it.
    let agent_id = lenient_i64(head.agent_id);
    let msg_id = head.msg_id;

    Ok(match msg_type.as_str() {
        "text" => {
            let body: TextBody = parse_xml(xml)?;
            Inbound::Text {
                to,
                from,
                create_time,
                msg_id: required(msg_id, "MsgId")?,
                agent_id,
                content: body.content.ok_or(XmlError::Missing("Content"))?,
            }
        }
        "image" => {
            let body: MediaBody = parse_xml(xml)?;
            Inbound::Image {
                to,
                from,
                create_time,
                msg_id: required(msg_id, "MsgId")?,
                agent_id,
                pic_url: optional(body.pic_url),
                media_id: required(body.media_id, "MediaId")?,
            }
        }
        "voice" => {
            let body: MediaBody = parse_xml(xml)?;
            Inbound::Voice {
                to,
                from,
                create_time,
                msg_id: required(msg_id, "MsgId")?,
                agent_id,
                media_id: required(body.media_id, "MediaId")?,
                format: optional(body.format),
                recognition: body.recognition.filter(|s| !s.trim().is_empty()),
            }
        }
        "file" => {
            let body: MediaBody = parse_xml(xml)?;
            Inbound::File {
                to,
                from,
                create_time,
                msg_id: required(msg_id, "MsgId")?,
                agent_id,
                media_id: required(body.media_id, "MediaId")?,
                title: body.title.filter(|s| !s.trim().is_empty()),
            }
        }
        "location" => {
            let body: LocationBody = parse_xml(xml)?;
            Inbound::Location {
                to,
                from,
                create_time,
                msg_id: required(msg_id, "MsgId")?,
                agent_id,
                latitude: parse_f64(body.x, "Location_X")?,
                longitude: parse_f64(body.y, "Location_Y")?,
                scale: lenient_i64(body.scale),
                label: body.label.filter(|s| !s.trim().is_empty()),
            }
        }
        "event" => {
            let event = required(head.event, "Event")?;
            let body: EventBody = parse_xml(xml)?;
            let location = match (lenient_f64(body.latitude), lenient_f64(body.longitude)) {
                (Some(latitude), Some(longitude)) => {
                    Some(ReportedLocation { latitude, longitude, precision: lenient_f64(body.precision) })
                }
                _ => None,
            };
            let external_contact = if event.starts_with("change_external_") {
                optional(body.change_type).map(|change_type| ExternalContactChange {
                    change_type,
                    user_id: optional(body.user_id),
                    external_user_id: optional(body.external_user_id),
                    chat_id: optional(body.chat_id),
                    state: optional(body.state),
                    welcome_code: optional(body.welcome_code),
                    fail_reason: optional(body.fail_reason),
                })
            } else {
                None
            };
            Inbound::Event {
                to,
                from,
                create_time,
                agent_id,
                event,
                event_key: optional(body.event_key),
                location,
                external_contact,
            }
        }
        _ => Inbound::Other { to, from, create_time, msg_id: optional(msg_id), agent_id, msg_type },
    })
}

/// Passive text reply plaintext (PLATFORMS.md 1.8), to be encrypted into the reply envelope.
/// `to_user` is the member's UserID, `from_corp` the CorpID (reversed from the inbound message).
/// WeCom truncates `content` past 2048 bytes: split longer text and push it with `message/send`.
pub fn text_reply(to_user: &str, from_corp: &str, create_time: i64, content: &str) -> String {
    let mut out = String::with_capacity(content.len() + to_user.len() + from_corp.len() + 192);
    out.push_str("<xml><ToUserName>");
    push_cdata(&mut out, to_user);
    out.push_str("</ToUserName><FromUserName>");
    push_cdata(&mut out, from_corp);
    out.push_str("</FromUserName><CreateTime>");
    out.push_str(&create_time.to_string());
    out.push_str("</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>");
    push_cdata(&mut out, content);
    out.push_str("</Content></xml>");
    out
}

/// Writes `s` as CDATA. `]]>` cannot appear inside one section, so it is split across two
/// (`]]` ends the first, `>` starts the next). Characters XML 1.0 forbids anywhere (C0 controls
/// other than tab/LF/CR, U+FFFE/U+FFFF) are dropped first, since WeCom's parser rejects them
/// (pitfall 5.10) and dropping them later could join a new `]]>`. Line ends become `\n`, which
/// is what WeCom clients expect.
/// Passive reply plaintext to a group-robot XML callback (PLATFORMS.md §1.7): a text message.
pub fn robot_text_reply(content: &str) -> String {
    let mut out = String::with_capacity(content.len() + 80);
    out.push_str("<xml><MsgType><![CDATA[text]]></MsgType><Text><Content>");
    push_cdata(&mut out, content);
    out.push_str("</Content></Text></xml>");
    out
}

fn push_cdata(out: &mut String, s: &str) {
    let clean: std::borrow::Cow<'_, str> = if s.chars().all(|c| c != '\r' && is_xml_char(c)) {
        s.into()
    } else {
        let legal: String = s.chars().filter(|&c| is_xml_char(c)).collect();
        legal.replace("\r\n", "\n").replace('\r', "\n").into()
    };
    out.push_str("<![CDATA[");
    for (i, piece) in clean.split("]]>").enumerate() {
        if i > 0 {
            out.push_str("]]]]><![CDATA[>");
        }
        out.push_str(piece);
    }
    out.push_str("]]>");
}

fn is_xml_char(c: char) -> bool {
    // XML 1.0 `Char`; surrogates cannot occur in a Rust `char`.
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{fffd}' | '\u{10000}'..)
}

/// A decrypted group-robot callback (PLATFORMS.md 1.7, receive id ""). XML uses CamelCase names,
/// JSON (`robot_callback_format=json`) snake_case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotMessage {
    /// A string, unlike app MsgIds; the dedupe key.
    pub msg_id: String,
    /// "" when absent.
    pub chat_id: String,
    /// `single`, `group`, `blackboard`, `blackboard_reply`; "" when absent.
    pub chat_type: String,
    pub from_user: String,
    pub from_name: Option<String>,
    /// Text with the leading @robot mention stripped; for `mixed`, the text parts joined by "\n";
    /// "" for other types.
    pub text: String,
    pub webhook_url: Option<String>,
    pub msg_type: String,
    /// `add_to_chat`, `delete_from_chat`, `enter_chat` when `msg_type` is `event`.
    pub event_type: Option<String>,
}

#[derive(Deserialize)]
struct RobotXml {
    #[serde(rename = "WebhookUrl")]
    webhook_url: Option<String>,
    #[serde(rename = "MsgId")]
    msg_id: Option<String>,
    #[serde(rename = "ChatId")]
    chat_id: Option<String>,
    #[serde(rename = "ChatType")]
    chat_type: Option<String>,
    #[serde(rename = "From")]
    from: Option<RobotFromXml>,
    #[serde(rename = "MsgType")]
    msg_type: Option<String>,
    #[serde(rename = "Text")]
    text: Option<RobotTextXml>,
    #[serde(rename = "Event")]
    event: Option<RobotEventXml>,
    #[serde(rename = "MixedMessage")]
    mixed: Option<RobotMixedXml>,
}

#[derive(Deserialize)]
struct RobotFromXml {
    #[serde(rename = "UserId")]
    user_id: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RobotTextXml {
    #[serde(rename = "Content")]
    content: Option<String>,
}

#[derive(Deserialize)]
struct RobotEventXml {
    #[serde(rename = "EventType")]
    event_type: Option<String>,
}

#[derive(Deserialize)]
struct RobotMixedXml {
    #[serde(rename = "MsgItem", default)]
    items: Vec<RobotMixedItemXml>,
}

#[derive(Deserialize)]
struct RobotMixedItemXml {
    #[serde(rename = "MsgType")]
    msg_type: Option<String>,
    #[serde(rename = "Text")]
    text: Option<RobotTextXml>,
}

#[derive(Deserialize)]
struct RobotJson {
    webhook_url: Option<String>,
    msgid: Option<String>,
    chatid: Option<String>,
    chattype: Option<String>,
    from: Option<RobotFromJson>,
    msgtype: Option<String>,
    text: Option<RobotTextJson>,
    event: Option<RobotEventJson>,
    // Only the XML form of mixed messages is documented; this snake_case spelling is our guess.
    #[serde(alias = "mixed")]
    mixed_message: Option<RobotMixedJson>,
}

#[derive(Deserialize)]
struct RobotFromJson {
    userid: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RobotTextJson {
    content: Option<String>,
}

#[derive(Deserialize)]
struct RobotEventJson {
    event_type: Option<String>,
}

#[derive(Deserialize)]
struct RobotMixedJson {
    #[serde(default)]
    msg_item: Vec<RobotMixedItemJson>,
}

#[derive(Deserialize)]
struct RobotMixedItemJson {
    msgtype: Option<String>,
    text: Option<RobotTextJson>,
}

/// Fields common to both robot formats, before validation.
struct RobotRaw {
    msg_id: Option<String>,
    chat_id: Option<String>,
    chat_type: Option<String>,
    from_user: Option<String>,
    from_name: Option<String>,
    msg_type: Option<String>,
    text: String,
    webhook_url: Option<String>,
    event_type: Option<String>,
}

/// Decodes a group-robot callback plaintext, JSON or XML (told apart by the first character).
/// `robot_name` is the robot's display name, used to strip the leading `@name` mention.
pub fn decode_robot(plaintext: &str, robot_name: Option<&str>) -> Result<RobotMessage, XmlError> {
    let body = plaintext.trim_start_matches('\u{feff}').trim();
    let raw = match body.as_bytes().first() {
        Some(b'{') => robot_from_json(body)?,
        Some(b'<') => robot_from_xml(body)?,
        _ => return Err(XmlError::Malformed("robot callback is neither JSON nor XML".into())),
    };
    Ok(RobotMessage {
        msg_id: required(raw.msg_id, "MsgId")?,
        chat_id: id(raw.chat_id).unwrap_or_default(),
        chat_type: id(raw.chat_type).unwrap_or_default(),
        from_user: required(raw.from_user, "From.UserId")?,
        from_name: optional(raw.from_name),
        text: strip_leading_mention(&raw.text, robot_name).to_owned(),
        webhook_url: optional(raw.webhook_url),
        msg_type: required(raw.msg_type, "MsgType")?,
        event_type: optional(raw.event_type),
    })
}

fn join_texts<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join("\n")
}

fn robot_from_xml(body: &str) -> Result<RobotRaw, XmlError> {
    let m: RobotXml = parse_xml(body)?;
    let text = match (m.text.and_then(|t| t.content), m.mixed) {
        (Some(content), _) => content,
        (None, Some(mixed)) => join_texts(
            mixed
                .items
                .iter()
                .filter(|i| i.msg_type.as_deref().map(str::trim) == Some("text"))
                .filter_map(|i| i.text.as_ref().and_then(|t| t.content.as_deref())),
        ),
        (None, None) => String::new(),
    };
    let (from_user, from_name) = m.from.map(|f| (f.user_id, f.name)).unwrap_or_default();
    Ok(RobotRaw {
        msg_id: m.msg_id,
        chat_id: m.chat_id,
        chat_type: m.chat_type,
        from_user,
        from_name,
        msg_type: m.msg_type,
        text,
        webhook_url: m.webhook_url,
        event_type: m.event.and_then(|e| e.event_type),
    })
}

fn robot_from_json(body: &str) -> Result<RobotRaw, XmlError> {
    let m: RobotJson = serde_json::from_str(body).map_err(|e| XmlError::Malformed(e.to_string()))?;
    let text = match (m.text.and_then(|t| t.content), m.mixed_message) {
        (Some(content), _) => content,
        (None, Some(mixed)) => join_texts(
            mixed
                .msg_item
                .iter()
                .filter(|i| i.msgtype.as_deref() == Some("text"))
                .filter_map(|i| i.text.as_ref().and_then(|t| t.content.as_deref())),
        ),
        (None, None) => String::new(),
    };
    let (from_user, from_name) = m.from.map(|f| (f.userid, f.name)).unwrap_or_default();
    Ok(RobotRaw {
        msg_id: m.msgid,
        chat_id: m.chatid,
        chat_type: m.chattype,
        from_user,
        from_name,
        msg_type: m.msgtype,
        text,
        webhook_url: m.webhook_url,
        event_type: m.event.and_then(|e| e.event_type),
    })
}

/// Strips a leading `@name`/`＠name` mention and the whitespace after it, then trims.
///
/// With `robot_name`, only that name is stripped (ASCII case-insensitively), with or without a
/// space after it. Without one, the first `@word` is stripped only when whitespace ends it, since the
/// name's end cannot be known otherwise. WeChat clients put U+2005 after mentions; any Unicode
/// whitespace counts.
pub fn strip_leading_mention<'a>(text: &'a str, robot_name: Option<&str>) -> &'a str {
    let trimmed = text.trim();
    let Some(after_at) = trimmed.strip_prefix('@').or_else(|| trimmed.strip_prefix('＠')) else {
        return trimmed;
    };
    let name = robot_name.map(|n| n.trim().trim_start_matches(['@', '＠'])).filter(|n| !n.is_empty());
    match name {
        Some(name) => match after_at.get(..name.len()) {
            Some(head) if head.eq_ignore_ascii_case(name) => after_at.get(name.len()..).unwrap_or_default().trim(),
            _ => trimmed,
        },
        None => match after_at.find(char::is_whitespace) {
            Some(end) if end > 0 => after_at.get(end..).unwrap_or_default().trim(),
            _ => trimmed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Decrypted plaintexts of the PLATFORMS.md section 9 vectors (the crypto tests check that they
    // decrypt to exactly these).
    const V_W2_MSG: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";
    const V_W4_MSG: &str = "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>";
    const V_W5_MSG: &str = "{ \"ToUserName\": \"wx5823bf96d3bd56c7\", \"FromUserName\": :mycreate\", \"CreateTime\": 1409659813, \"MsgType\": \"text\", \"Content\": \"hello\", \"MsgId\": 4561255354251345929, \"AgentID\": 218}";
    const V_W7_MSG: &str = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<FromUserName><![CDATA[messense]]></FromUserName>\n<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<MsgId>4363689963896700987</MsgId>\n<AgentID>1</AgentID>\n</xml>";
    /// V-W8 is a passive reply plaintext (no MsgId), not an inbound message.
    const V_W8_MSG: &str = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
    const V_W10_MSG: &str = "<xml><ToUserName><![CDATA[ww6a112864f8022910]]></ToUserName><FromUserName><![CDATA[foobar]]></FromUserName><CreateTime>1583995625</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[x123]]></Content><MsgId>2018405441</MsgId><AgentID>1000002</AgentID></xml>";
    const V_G1_MSG: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好，请帮我查一下客户张三的订单😀]]></Content><MsgId>7300000000000000001</MsgId><AgentID>1000002</AgentID></xml>";
    const V_G2_MSG: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000100</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州市天河区天河路385号]]></Label><MsgId>7300000000000000002</MsgId><AgentID>1000002</AgentID><AppType><![CDATA[wxwork]]></AppType></xml>";
    const V_G3_MSG: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000200</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey><AgentID>1000002</AgentID></xml>";
    const V_G4_MSG: &str = "<xml><ToUserName><![CDATA[zhangsan]]></ToUserName><FromUserName><![CDATA[wx5823bf96d3bd56c7]]></FromUserName><CreateTime>1700000001</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[已为您查询到 3 条订单]]></Content></xml>";
    const V_G6_MSG: &str = "{\"webhook_url\":\"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=WEBHOOK\",\"msgid\":\"CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=\",\"chatid\":\"wrkSFfCgAALFgnrSsWU38puiv4yvExuw\",\"chattype\":\"group\",\"from\":{\"userid\":\"zhangsan\",\"name\":\"张三\",\"alias\":\"jackzhang\"},\"msgtype\":\"text\",\"text\":{\"content\":\"@CRM助手 查询客户 ACME 的跟进记录\"}}";

    /// Robot XML as in the group-robot doc's examples (pretty-printed, a space before CDATA).
    const ROBOT_XML_TEXT: &str = "<xml>\n\t<WebhookUrl> <![CDATA[https://qyapi.weixin.qq.com/xxxxxxx]]></WebhookUrl>\n\t<ChatId><![CDATA[wrkSFfCgAALFgnrSsWU38puiv4yvExuw]]></ChatId>\n\t<PostId><![CDATA[bpkSFfCgAAWeiHos2p6lJbG3_F2xxxxx]]></PostId>\n\t<ChatType>single</ChatType>\n\t<GetChatInfoUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/get_chat_info?code=m49c]]></GetChatInfoUrl>\n\t<From>\n\t\t<UserId>zhangsan</UserId>\n\t\t<Name><![CDATA[张三]]></Name>\n\t\t<Alias><![CDATA[jackzhang]]></Alias>\n\t</From>\n\t<MsgType>text</MsgType>\n\t<Text>\n\t\t<Content><![CDATA[@RobotA hello robot]]></Content>\n\t</Text>\n\t<MsgId>abcdabcdabcd</MsgId>\n</xml>";
    const ROBOT_XML_EVENT: &str = "<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/xxxxxxx]]></WebhookUrl><ChatId><![CDATA[wrkSFfCgAALFgnrSsWU38puiv4yvExuw]]></ChatId><ChatType>group</ChatType><From><UserId>zhangsan</UserId><Name><![CDATA[张三]]></Name></From><MsgType>event</MsgType><Event><EventType><![CDATA[add_to_chat]]></EventType></Event><AppVersion><![CDATA[2.8.12.1551]]></AppVersion><MsgId>abcdabcdabce</MsgId></xml>";
    const ROBOT_XML_MIXED: &str = "<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/xxxxxxxx]]></WebhookUrl><ChatId><![CDATA[wrkSFfCgAAskBzQgm]]></ChatId><MsgId><![CDATA[CAEQi5HR8wUY/NGagIOAgAMgXQ==]]></MsgId><ChatType><![CDATA[group]]></ChatType><From><UserId><![CDATA[T434200000]]></UserId><Name><![CDATA[张三]]></Name></From><MsgType><![CDATA[mixed]]></MsgType><MixedMessage><MsgItem><MsgType><![CDATA[text]]></MsgType><Text><Content><![CDATA[@机器人 这是今日的测试情况]]></Content></Text></MsgItem><MsgItem><MsgType><![CDATA[image]]></MsgType><Image><ImageUrl><![CDATA[http://p.qpic.cn/pic_wework/1/0]]></ImageUrl></Image></MsgItem></MixedMessage></xml>";

    fn msg(body: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[lisi]]></FromUserName><CreateTime>1700000500</CreateTime>{body}<AgentID>1000002</AgentID></xml>"
        )
    }

    fn decoded(xml: &str) -> Inbound {
        match decode(xml) {
            Ok(m) => m,
            Err(e) => panic!("{e}: {xml}"),
        }
    }

    #[test]
    fn vector_text_messages() {
        assert_eq!(
            decoded(V_W2_MSG),
            Inbound::Text {
                to: "wx5823bf96d3bd56c7".into(),
                from: "mycreate".into(),
                create_time: 1409659813,
                msg_id: "4561255354251345929".into(),
                agent_id: Some(218),
                content: "hello".into(),
            }
        );
        // No CDATA, Chinese content (V-W4).
        let m = decoded(V_W4_MSG);
        assert!(matches!(&m, Inbound::Text { content, agent_id: Some(1000002), .. } if content == "你好"));
        assert_eq!((m.from(), m.create_time(), m.dedupe_key()), ("ChenJiaShun", 1476422779, "1456453720".into()));
        assert!(
            matches!(decoded(V_W7_MSG), Inbound::Text { content, from, .. } if content == "test" && from == "messense")
        );
        assert!(
            matches!(decoded(V_W10_MSG), Inbound::Text { content, msg_id, .. } if content == "x123" && msg_id == "2018405441")
        );
        // Chinese + 4-byte emoji (V-G1).
        let m = decoded(V_G1_MSG);
        assert!(matches!(&m, Inbound::Text { content, .. } if content == "你好，请帮我查一下客户张三的订单😀"));
        assert_eq!(m.dedupe_key(), "7300000000000000001");
    }

    #[test]
    fn vector_location() {
        assert_eq!(
            decoded(V_G2_MSG),
            Inbound::Location {
                to: "wx5823bf96d3bd56c7".into(),
                from: "zhangsan".into(),
                create_time: 1700000100,
                msg_id: "7300000000000000002".into(),
                agent_id: Some(1000002),
                latitude: 23.134521,
                longitude: 113.358803,
                scale: Some(20),
                label: Some("广州市天河区天河路385号".into()),
            }
        );
    }

    #[test]
    fn vector_enter_agent_event() {
        let m = decoded(V_G3_MSG);
        assert_eq!(
            m,
            Inbound::Event {
                to: "wx5823bf96d3bd56c7".into(),
                from: "zhangsan".into(),
                create_time: 1700000200,
                agent_id: Some(1000002),
                event: "enter_agent".into(),
                event_key: None,
                location: None,
                external_contact: None,
            }
        );
        assert_eq!(m.dedupe_key(), "zhangsan:1700000200:enter_agent:");
    }

    #[test]
    fn vector_reply_plaintexts_are_not_inbound_messages() {
        // V-W8 and V-G4 are replies: no MsgId.
        assert_eq!(decode(V_W8_MSG), Err(XmlError::Missing("MsgId")));
        assert_eq!(decode(V_G4_MSG), Err(XmlError::Missing("MsgId")));
        // V-W5's official JSON sample is deliberately broken.
        assert!(matches!(decode(V_W5_MSG), Err(XmlError::Malformed(_))));
        assert!(matches!(decode_robot(V_W5_MSG, None), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn text_reply_matches_v_g4_plaintext() {
        assert_eq!(text_reply("zhangsan", "wx5823bf96d3bd56c7", 1700000001, "已为您查询到 3 条订单"), V_G4_MSG);
    }

    #[test]
    fn click_view_and_location_events() {
        let click = decoded(&msg(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event><EventKey><![CDATA[#sendmsg#_0_0#7599827683208451]]></EventKey>",
        ));
        assert!(
            matches!(&click, Inbound::Event { event, event_key: Some(k), .. } if event == "click" && k == "#sendmsg#_0_0#7599827683208451")
        );
        assert_eq!(click.dedupe_key(), "lisi:1700000500:click:#sendmsg#_0_0#7599827683208451");

        let view = decoded(&msg(
            "<MsgType>event</MsgType><Event>view</Event><EventKey><![CDATA[https://example.com/a?b=1&c=2]]></EventKey>",
        ));
        assert!(matches!(view, Inbound::Event { event_key: Some(k), .. } if k == "https://example.com/a?b=1&c=2"));

        let loc = decoded(&msg(
            "<MsgType>event</MsgType><Event>LOCATION</Event><Latitude>23.104105</Latitude><Longitude>113.320107</Longitude><Precision>65.000000</Precision>",
        ));
        assert!(matches!(
            loc,
            Inbound::Event { event, location: Some(ReportedLocation { latitude, longitude, precision: Some(p) }), .. }
                if event == "LOCATION" && latitude == 23.104105 && longitude == 113.320107 && p == 65.0
        ));
    }

    #[test]
    fn external_contact_event() {
        let m = decoded(&msg(
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA]]></ExternalUserID><State><![CDATA[expo2024]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>",
        ));
        let Inbound::Event { external_contact: Some(c), .. } = m else { panic!("{m:?}") };
        assert_eq!(c.change_type, "add_external_contact");
        assert_eq!(c.external_user_id.as_deref(), Some("woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"));
        assert_eq!(c.state.as_deref(), Some("expo2024"));
        assert_eq!(c.welcome_code.as_deref(), Some("WELCOMECODE"));
        assert_eq!(c.chat_id, None);
    }

    #[test]
    fn voice_with_and_without_recognition() {
        let with = decoded(&msg(
            "<MsgType>voice</MsgType><MediaId><![CDATA[media_v1]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[明天下午三点拜访客户]]></Recognition><MsgId>111</MsgId>",
        ));
        assert_eq!(
            with,
            Inbound::Voice {
                to: "ww1".into(),
                from: "lisi".into(),
                create_time: 1700000500,
                msg_id: "111".into(),
                agent_id: Some(1000002),
                media_id: "media_v1".into(),
                format: Some("amr".into()),
                recognition: Some("明天下午三点拜访客户".into()),
            }
        );
        let without = decoded(&msg(
            "<MsgType>voice</MsgType><MediaId>media_v2</MediaId><Format>speex</Format><MsgId>112</MsgId>",
        ));
        assert!(matches!(without, Inbound::Voice { recognition: None, format: Some(f), .. } if f == "speex"));
        let empty = decoded(&msg(
            "<MsgType>voice</MsgType><MediaId>m</MediaId><Recognition><![CDATA[]]></Recognition><MsgId>113</MsgId>",
        ));
        assert!(matches!(empty, Inbound::Voice { recognition: None, format: None, .. }));
        assert_eq!(decode(&msg("<MsgType>voice</MsgType><MsgId>114</MsgId>")), Err(XmlError::Missing("MediaId")));
    }

    #[test]
    fn image_and_file() {
        let img = decoded(&msg(
            "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[https://p.qpic.cn/x/0]]></PicUrl><MediaId><![CDATA[media_i]]></MediaId><MsgId>1234567890123456</MsgId>",
        ));
        assert_eq!(
            img,
            Inbound::Image {
                to: "ww1".into(),
                from: "lisi".into(),
                create_time: 1700000500,
                msg_id: "1234567890123456".into(),
                agent_id: Some(1000002),
                pic_url: Some("https://p.qpic.cn/x/0".into()),
                media_id: "media_i".into(),
            }
        );
        let file = decoded(&msg(
            "<MsgType>file</MsgType><MediaId>media_f</MediaId><Title><![CDATA[报价单.xlsx]]></Title><MsgId>5</MsgId>",
        ));
        assert!(
            matches!(file, Inbound::File { media_id, title: Some(t), .. } if media_id == "media_f" && t == "报价单.xlsx")
        );
    }

    #[test]
    fn unknown_types_become_other() {
        let video = decoded(&msg(
            "<MsgType>video</MsgType><MediaId>m</MediaId><ThumbMediaId>t</ThumbMediaId><MsgId>77</MsgId>",
        ));
        assert_eq!(
            video,
            Inbound::Other {
                to: "ww1".into(),
                from: "lisi".into(),
                create_time: 1700000500,
                msg_id: Some("77".into()),
                agent_id: Some(1000002),
                msg_type: "video".into(),
            }
        );
        assert_eq!(video.dedupe_key(), "77");
        let link = decoded(&msg("<MsgType>link</MsgType><Title>t</Title><Url>https://a</Url><MsgId>78</MsgId>"));
        assert!(matches!(link, Inbound::Other { msg_type, .. } if msg_type == "link"));
        let odd = decoded(&msg("<MsgType>hologram</MsgType>"));
        assert_eq!(odd.dedupe_key(), "lisi:1700000500:hologram");
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(decode(&msg("<Content>hi</Content><MsgId>1</MsgId>")), Err(XmlError::Missing("MsgType")));
        assert_eq!(decode(&msg("<MsgType><![CDATA[]]></MsgType>")), Err(XmlError::Missing("MsgType")));
        assert_eq!(decode(&msg("<MsgType>text</MsgType><MsgId>1</MsgId>")), Err(XmlError::Missing("Content")));
        assert_eq!(decode(&msg("<MsgType>text</MsgType><Content>x</Content>")), Err(XmlError::Missing("MsgId")));
        assert_eq!(decode(&msg("<MsgType>event</MsgType>")), Err(XmlError::Missing("Event")));
        assert_eq!(decode(&msg("<MsgType>location</MsgType><MsgId>1</MsgId>")), Err(XmlError::Missing("Location_X")));
        assert_eq!(
            decode("<xml><MsgType>text</MsgType><CreateTime>1</CreateTime><Content>x</Content><MsgId>1</MsgId></xml>"),
            Err(XmlError::Missing("FromUserName"))
        );
        assert_eq!(
            decode("<xml><MsgType>text</MsgType><FromUserName>a</FromUserName></xml>"),
            Err(XmlError::Missing("CreateTime"))
        );
        // Empty content is a valid (if odd) text message.
        assert!(
            matches!(decode(&msg("<MsgType>text</MsgType><Content></Content><MsgId>1</MsgId>")), Ok(Inbound::Text { content, .. }) if content.is_empty())
        );

        for bad in [
            "",
            "   ",
            "not xml",
            "<xml><MsgType>text</MsgType>",
            "<xml><MsgType>text</MsgType></wrong>",
            "<xml><MsgType>text</MsgType><MsgType>image</MsgType></xml>",
            "{\"MsgType\":\"text\"}",
        ] {
            assert!(matches!(decode(bad), Err(XmlError::Malformed(_))), "{bad:?} -> {:?}", decode(bad));
        }
        // Errors inside the per-type fields surface in the second pass.
        for body in
            ["<Content>&nbsp;</Content>", "<Content><b>x</b></Content>", "<Content>a</Content><Content>b</Content>"]
        {
            let bad = msg(&format!("<MsgType>text</MsgType>{body}<MsgId>1</MsgId>"));
            assert!(matches!(decode(&bad), Err(XmlError::Malformed(_))), "{bad:?} -> {:?}", decode(&bad));
        }
        let bad_time = msg("<MsgType>text</MsgType>").replace("1700000500", "yesterday");
        assert!(matches!(decode(&bad_time), Err(XmlError::Malformed(_))));
        let bad_lat =
            msg("<MsgType>location</MsgType><Location_X>north</Location_X><Location_Y>1</Location_Y><MsgId>1</MsgId>");
        assert!(matches!(decode(&bad_lat), Err(XmlError::Malformed(_))));
        let nan_lat =
            msg("<MsgType>location</MsgType><Location_X>NaN</Location_X><Location_Y>1</Location_Y><MsgId>1</MsgId>");
        assert!(matches!(decode(&nan_lat), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn tolerant_bits() {
        // BOM, whitespace, XML declaration, entity escapes, odd AgentID, control character in content.
        let xml = format!(
            "\u{feff}  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
            msg("<MsgType> text </MsgType><Content>a &amp; b &lt;c&gt;\u{1d}</Content><MsgId> 9 </MsgId>")
                .replace("<AgentID>1000002</AgentID>", "<AgentID><![CDATA[abc]]></AgentID>")
        );
        let m = decoded(&xml);
        assert_eq!(
            m,
            Inbound::Text {
                to: "ww1".into(),
                from: "lisi".into(),
                create_time: 1700000500,
                msg_id: "9".into(),
                agent_id: None,
                content: "a & b <c>\u{1d}".into(),
            }
        );
        // Deep nesting inside an ignored element neither overflows nor fails.
        let deep = msg(&format!(
            "<MsgType>text</MsgType><Junk>{}{}</Junk><Content>x</Content><MsgId>1</MsgId>",
            "<a>".repeat(50_000),
            "</a>".repeat(50_000)
        ));
        assert!(matches!(decode(&deep), Ok(Inbound::Text { .. })));
    }

    /// What a WeCom client would see of our reply: parsed back with the same machinery.
    #[derive(Deserialize)]
    struct ReplyBack {
        #[serde(rename = "ToUserName")]
        to: String,
        #[serde(rename = "FromUserName")]
        from: String,
        #[serde(rename = "CreateTime")]
        create_time: i64,
        #[serde(rename = "MsgType")]
        msg_type: String,
        #[serde(rename = "Content")]
        content: String,
    }

    fn reply_back(xml: &str) -> ReplyBack {
        match quick_xml::de::from_str(xml) {
            Ok(r) => r,
            Err(e) => panic!("{e}: {xml}"),
        }
    }

    #[test]
    fn text_reply_escapes_cdata_terminator() {
        let content = "a]]>b ]]]]> <tag> & ]]";
        let xml = text_reply("zhangsan", "ww1", 1700000001, content);
        assert_eq!(xml.matches("<![CDATA[").count(), 3 + 2 + 1);
        let back = reply_back(&xml);
        assert_eq!(
            (back.to.as_str(), back.from.as_str(), back.create_time, back.msg_type.as_str(), back.content.as_str()),
            ("zhangsan", "ww1", 1700000001, "text", content)
        );
        // Control characters are dropped, newlines kept.
        assert_eq!(reply_back(&text_reply("u", "c", 1, "a\u{0}b\u{1d}c\nd\u{fffe}")).content, "abc\nd");
        assert_eq!(reply_back(&text_reply("u", "c", 1, "]]>")).content, "]]>");
        // CR LF and lone CR go out as LF.
        assert_eq!(text_reply("u", "c", 1, "a\r\nb\rc"), text_reply("u", "c", 1, "a\nb\nc"));
        // Dropping a control character must not create a terminator.
        assert_eq!(reply_back(&text_reply("u", "c", 1, "]]\u{0}>")).content, "]]>");
    }

    #[test]
    fn robot_json_vector_g6() {
        let m = decode_robot(V_G6_MSG, Some("CRM助手")).expect("V-G6");
        assert_eq!(
            m,
            RobotMessage {
                msg_id: "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=".into(),
                chat_id: "wrkSFfCgAALFgnrSsWU38puiv4yvExuw".into(),
                chat_type: "group".into(),
                from_user: "zhangsan".into(),
                from_name: Some("张三".into()),
                text: "查询客户 ACME 的跟进记录".into(),
                webhook_url: Some("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=WEBHOOK".into()),
                msg_type: "text".into(),
                event_type: None,
            }
        );
        // Without the name, the first @word ending in a space goes.
        assert_eq!(decode_robot(V_G6_MSG, None).expect("V-G6").text, "查询客户 ACME 的跟进记录");
    }

    #[test]
    fn robot_xml_forms() {
        let m = decode_robot(ROBOT_XML_TEXT, Some("RobotA")).expect("text");
        assert_eq!(m.text, "hello robot");
        assert_eq!(m.webhook_url.as_deref(), Some("https://qyapi.weixin.qq.com/xxxxxxx"));
        assert_eq!(
            (m.chat_type.as_str(), m.from_user.as_str(), m.msg_id.as_str()),
            ("single", "zhangsan", "abcdabcdabcd")
        );

        let e = decode_robot(ROBOT_XML_EVENT, Some("RobotA")).expect("event");
        assert_eq!((e.msg_type.as_str(), e.event_type.as_deref(), e.text.as_str()), ("event", Some("add_to_chat"), ""));

        let mixed = decode_robot(ROBOT_XML_MIXED, Some("机器人")).expect("mixed");
        assert_eq!((mixed.msg_type.as_str(), mixed.text.as_str()), ("mixed", "这是今日的测试情况"));
        assert_eq!(mixed.msg_id, "CAEQi5HR8wUY/NGagIOAgAMgXQ==");

        let json_event = "{\"msgid\":\"m1\",\"chatid\":\"c1\",\"from\":{\"userid\":\"u1\"},\"msgtype\":\"event\",\"event\":{\"event_type\":\"enter_chat\"}}";
        let je = decode_robot(json_event, None).expect("json event");
        assert_eq!((je.event_type.as_deref(), je.webhook_url, je.chat_type.as_str()), (Some("enter_chat"), None, ""));
    }

    #[test]
    fn robot_missing_and_malformed() {
        assert_eq!(
            decode_robot("{\"chatid\":\"c\",\"from\":{\"userid\":\"u\"},\"msgtype\":\"text\"}", None),
            Err(XmlError::Missing("MsgId"))
        );
        assert_eq!(decode_robot("{\"msgid\":\"m\",\"msgtype\":\"text\"}", None), Err(XmlError::Missing("From.UserId")));
        assert_eq!(
            decode_robot("<xml><MsgId>m</MsgId><From><UserId>u</UserId></From></xml>", None),
            Err(XmlError::Missing("MsgType"))
        );
        for bad in ["", "hello", "{", "{\"msgid\":1}", "<xml>", "[]"] {
            assert!(matches!(decode_robot(bad, None), Err(XmlError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn mention_stripping() {
        let name = Some("CRM助手");
        assert_eq!(strip_leading_mention("@CRM助手 查询客户", name), "查询客户");
        assert_eq!(strip_leading_mention("@CRM助手查询客户", name), "查询客户");
        assert_eq!(strip_leading_mention("＠CRM助手 查询客户", name), "查询客户");
        assert_eq!(strip_leading_mention("＠CRM助手查询客户", name), "查询客户");
        assert_eq!(strip_leading_mention("@CRM助手\u{2005}查询客户", name), "查询客户");
        assert_eq!(strip_leading_mention("@CRM助手\u{3000}查询客户", name), "查询客户");
        assert_eq!(strip_leading_mention("  @crm助手  help ", name), "help");
        assert_eq!(strip_leading_mention("@CRM助手", name), "");
        assert_eq!(strip_leading_mention("@CRM助手 ", Some("@CRM助手")), "");
        // Someone else's mention, or no mention, stays.
        assert_eq!(strip_leading_mention("@李四 你看下", name), "@李四 你看下");
        assert_eq!(strip_leading_mention("查询 @CRM助手", name), "查询 @CRM助手");
        assert_eq!(strip_leading_mention("@CR", name), "@CR");
        // Name unknown: strip only a whitespace-terminated first word.
        assert_eq!(strip_leading_mention("@RobotA hello", None), "hello");
        assert_eq!(strip_leading_mention("＠RobotA\u{2005}hello", None), "hello");
        assert_eq!(strip_leading_mention("@RobotAhello", None), "@RobotAhello");
        assert_eq!(strip_leading_mention("@ hello", None), "@ hello");
        assert_eq!(strip_leading_mention("@", None), "@");
        assert_eq!(strip_leading_mention("", Some("")), "");
        // A name whose byte length lands inside a multi-byte char must not panic.
        assert_eq!(strip_leading_mention("@你好", Some("ab")), "@你好");
    }

    /// Reply text that is heavy on the awkward parts: CDATA terminators, controls, CR, non-BMP.
    fn reply_content() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("]]>".to_owned()),
                Just("]]".to_owned()),
                Just(">".to_owned()),
                Just("\u{0}".to_owned()),
                Just("\r".to_owned()),
                Just("\n".to_owned()),
                ".{0,4}",
                "\\PC{0,8}"
            ],
            0..16,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn prop_decode_never_panics(s in ".*") {
            let _ = decode(&s);
            let _ = decode_robot(&s, None);
            let _ = decode_robot(&s, Some(&s));
        }

        #[test]
        fn prop_decode_never_panics_on_xmlish(parts in proptest::collection::vec(
            prop_oneof![
                Just("<xml>".to_owned()), Just("</xml>".to_owned()), Just("<MsgType>".to_owned()), Just("</MsgType>".to_owned()),
                Just("text".to_owned()), Just("event".to_owned()), Just("location".to_owned()), Just("<![CDATA[".to_owned()),
                Just("]]>".to_owned()), Just("<Content>".to_owned()), Just("</Content>".to_owned()), Just("<FromUserName>a</FromUserName>".to_owned()),
                Just("<CreateTime>1</CreateTime>".to_owned()), Just("<MsgId>1</MsgId>".to_owned()), Just("<Event>click</Event>".to_owned()),
                Just("<Location_X>1e400</Location_X>".to_owned()), Just("&amp;".to_owned()), Just("&#0;".to_owned()), Just("&".to_owned()),
                Just("<From><UserId>u</UserId></From>".to_owned()), Just("<Text><Content>@x y</Content></Text>".to_owned()),
                ".{0,8}",
            ],
            0..24,
        )) {
            let s = parts.concat();
            let _ = decode(&s);
            let _ = decode_robot(&s, Some("x"));
        }

        #[test]
        fn prop_strip_mention_never_panics(text in ".*", name in proptest::option::of(".*")) {
            let out = strip_leading_mention(&text, name.as_deref());
            prop_assert!(text.contains(out));
        }

        #[test]
        fn prop_text_reply_round_trips(to in "[A-Za-z0-9_@.-]{1,32}", from in "ww[a-f0-9]{16}", t in any::<i64>(), content in reply_content()) {
            let back = reply_back(&text_reply(&to, &from, t, &content));
            prop_assert_eq!(back.to, to);
            prop_assert_eq!(back.from, from);
            prop_assert_eq!(back.create_time, t);
            prop_assert_eq!(back.msg_type, "text");
            let expected: String = content.chars().filter(|&c| is_xml_char(c)).collect();
            // CR LF and lone CR become LF.
            prop_assert_eq!(back.content, expected.replace("\r\n", "\n").replace('\r', "\n"));
        }

        #[test]
        fn prop_text_reply_decodes_as_text(content in reply_content()) {
            // Add a MsgId and the reply is a valid inbound text message whose content survives.
            let xml = text_reply("u", "c", 1, &content).replace("</xml>", "<MsgId>1</MsgId></xml>");
            let m = decode(&xml);
            let expected: String = content.chars().filter(|&c| is_xml_char(c)).collect();
            prop_assert!(matches!(&m, Ok(Inbound::Text { content: c, .. }) if *c == expected.replace("\r\n", "\n").replace('\r', "\n")), "{:?}", m);
        }
    }
}
