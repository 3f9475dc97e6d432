//! Configuration: built-in defaults, then `chatcrm.toml`, then `CHATCRM_*` environment variables.
//! Validated once at start-up; errors name the key, where its value came from, and what was wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The commented example, printed by `chatcrm print-config` and shipped as `chatcrm.example.toml`.
pub const EXAMPLE: &str = include_str!("../chatcrm.example.toml");

/// Default config file, read when present; `--config` or `CHATCRM_CONFIG` name another.
pub const DEFAULT_PATH: &str = "chatcrm.toml";

/// Environment variables with the `CHATCRM_` prefix that are not config keys.
const ENV_NOT_KEYS: &[&str] = &["config", "test_pg", "log"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("{0}")]
    Parse(String),
    #[error("config key `{key}` (env {env}): {message}")]
    Invalid { key: &'static str, env: &'static str, message: String },
}

/// Raw settings as written; [`Settings::load`] returns them only after validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds.
    pub listen: String,
    /// `sqlite://path.db` (default) or `postgres://user@host/db`.
    #[serde(serialize_with = "ser_secret")]
    pub database_url: SecretString,
    pub database_max_connections: u32,
    /// SQLite `synchronous` pragma: `full` (default) or `extra`. Weaker modes are refused.
    pub sqlite_synchronous: String,
    pub sqlite_busy_timeout_ms: u64,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Chat messages one sender may send per minute, sustained; 0 turns the limit off.
    pub sender_rate_per_minute: u32,
    /// Chat messages one sender may send at once after a quiet spell.
    pub sender_rate_burst: u32,
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Time zone for new orgs (IANA name).
    pub default_timezone: String,
    /// Serve the local console chat at /console.
    pub console_enabled: bool,
    /// The console lets anyone who reaches it act as any user, so it is only served when
    /// `listen` is a loopback address, unless this is set.
    pub console_allow_remote: bool,
    /// Name of the org the console uses when a request names none.
    pub console_org: String,
    /// Seed the demo org when `serve` starts on an empty database with no chat platform app.
    pub seed_demo_if_empty: bool,
    /// How far back `撤销`/`undo` reaches, in minutes.
    pub undo_window_minutes: u32,
    /// `pretty` or `json`.
    pub log_format: String,
    /// tracing filter, e.g. `info` or `chatcrm=debug,tower_http=info`.
    pub log_level: String,
    /// WeCom (企业微信) apps and callback settings.
    pub wecom: WecomSettings,
    /// DingTalk (钉钉) apps: robot and event callbacks, work notifications, group robots.
    pub dingtalk: crate::platform::dingtalk::DingtalkSettings,
    /// Feishu / Lark (飞书) apps: event callbacks, messages, custom bots.
    pub feishu: crate::platform::feishu::FeishuSettings,
    /// Reminders, quiet hours, working days, cron jobs and the outbox.
    pub schedule: crate::schedule::ScheduleSettings,
}

/// `[wecom]`: callback and push settings, and one `[[wecom.apps]]` per self-built app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WecomSettings {
    /// Base URL of the WeCom API (tests point it at a mock).
    pub api_base: String,
    /// Callbacks whose timestamp is further than this from now are rejected (replays).
    pub timestamp_window_secs: u64,
    /// Answer passively when the bot is done within this; otherwise acknowledge and push.
    pub reply_deadline_ms: u64,
    /// Let an unknown WeCom user become a rep on their first message.
    pub self_register: bool,
    /// A location message attaches to the sender's visit logged within this many minutes.
    pub location_window_minutes: u32,
    pub apps: Vec<WecomApp>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomApp {
    /// The `{app}` in the callback URL `/callback/wecom/{app}`.
    pub name: String,
    /// The chatcrm org this app's users belong to.
    pub org: String,
    pub corp_id: String,
    pub agent_id: i64,
    #[serde(serialize_with = "ser_secret")]
    pub secret: SecretString,
    #[serde(serialize_with = "ser_secret")]
    pub token: SecretString,
    #[serde(serialize_with = "ser_secret")]
    pub encoding_aes_key: SecretString,
    /// The group robot's name, stripped from "@name …" in group-robot callbacks.
    #[serde(default)]
    pub robot_name: Option<String>,
    /// The group robot's own callback Token and EncodingAESKey, when its callback settings differ
    /// from the app's (each robot has its own); unset, the app's are used.
    #[serde(default, serialize_with = "ser_opt_secret")]
    pub robot_token: Option<SecretString>,
    #[serde(default, serialize_with = "ser_opt_secret")]
    pub robot_encoding_aes_key: Option<SecretString>,
    /// Menu button keys → the chat text they send, e.g. { today = "今天" }.
    #[serde(default)]
    pub menu: std::collections::BTreeMap<String, String>,
}

impl WecomApp {
    /// The group robot's callback Token and EncodingAESKey: its own, or else the app's.
    pub fn robot_credentials(&self) -> (&str, &str) {
        (
            self.robot_token.as_ref().unwrap_or(&self.token).expose_secret(),
            self.robot_encoding_aes_key.as_ref().unwrap_or(&self.encoding_aes_key).expose_secret(),
        )
    }
}

impl std::fmt::Debug for WecomApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WecomApp")
            .field("name", &self.name)
            .field("org", &self.org)
            .field("corp_id", &self.corp_id)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

impl Default for WecomSettings {
    fn default() -> Self {
        Self {
            api_base: "https://qyapi.weixin.qq.com".into(),
            timestamp_window_secs: 300,
            reply_deadline_ms: 4000,
            self_register: false,
            location_window_minutes: 120,
            apps: Vec::new(),
        }
    }
}

/// Serialises a secret as its value (`chatcrm config` prints the effective settings for the
/// operator who holds them).
pub(crate) fn ser_secret<S: serde::Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose_secret())
}

pub(crate) fn ser_opt_secret<S: serde::Serializer>(s: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose_secret()),
        None => ser.serialize_none(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: SecretString::from("sqlite://chatcrm.db"),
            database_max_connections: 8,
            sqlite_synchronous: "full".into(),
            sqlite_busy_timeout_ms: 5000,
            body_limit_bytes: 256 * 1024,
            sender_rate_per_minute: 30,
            sender_rate_burst: 20,
            request_timeout_secs: 10,
            shutdown_timeout_secs: 30,
            default_timezone: "Asia/Shanghai".into(),
            console_enabled: true,
            console_allow_remote: false,
            console_org: "演示公司".into(),
            seed_demo_if_empty: true,
            undo_window_minutes: 10,
            log_format: "pretty".into(),
            log_level: "info".into(),
            dingtalk: Default::default(),
            feishu: Default::default(),
            wecom: WecomSettings::default(),
            schedule: crate::schedule::ScheduleSettings::default(),
        }
    }
}

impl Settings {
    /// Loads `path` (must exist when given explicitly) or `./chatcrm.toml` when present, then env.
    pub fn load(explicit_path: Option<&Path>) -> Result<Self, ConfigError> {
        let file = match explicit_path {
            Some(p) if !p.exists() => return Err(ConfigError::MissingFile(p.to_path_buf())),
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
        };
        Self::from_figment(Self::figment(file.as_deref()))
    }

    pub fn figment(file: Option<&Path>) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        // `__` reaches into sections: CHATCRM_WECOM__SELF_REGISTER=true.
        fig.merge(Env::prefixed("CHATCRM_").ignore(ENV_NOT_KEYS).split("__"))
    }

    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let s: Settings = fig.extract().map_err(|e| {
            // One line per problem, each naming the key and the file or env var it came from.
            ConfigError::Parse(e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
        })?;
        s.validate()?;
        Ok(s)
    }

    /// The checks [`Settings::load`] makes, for settings built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, env: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid { key, env, message: message.into() }
        }
        if SocketAddr::from_str(&self.listen).is_err() {
            return Err(bad(
                "listen",
                "CHATCRM_LISTEN",
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            ));
        }
        DatabaseKind::of(self.database_url.expose_secret())
            .map_err(|m| bad("database_url", "CHATCRM_DATABASE_URL", m))?;
        if self.database_max_connections == 0 {
            return Err(bad("database_max_connections", "CHATCRM_DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        if !matches!(self.sqlite_synchronous.as_str(), "full" | "extra") {
            return Err(bad(
                "sqlite_synchronous",
                "CHATCRM_SQLITE_SYNCHRONOUS",
                format!(
                    "`{}` is not allowed: use `full` or `extra` (weaker modes can lose acknowledged messages on power loss)",
                    self.sqlite_synchronous
                ),
            ));
        }
        if self.body_limit_bytes < 1024 || self.body_limit_bytes > 64 * 1024 * 1024 {
            return Err(bad("body_limit_bytes", "CHATCRM_BODY_LIMIT_BYTES", "must be between 1024 and 67108864"));
        }
        if self.sender_rate_per_minute > 0 && !(1..=10_000).contains(&self.sender_rate_burst) {
            return Err(bad(
                "sender_rate_burst",
                "CHATCRM_SENDER_RATE_BURST",
                "must be between 1 and 10000 while sender_rate_per_minute is on",
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(bad("request_timeout_secs", "CHATCRM_REQUEST_TIMEOUT_SECS", "must be at least 1"));
        }
        if self.default_timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(bad(
                "default_timezone",
                "CHATCRM_DEFAULT_TIMEZONE",
                format!("`{}` is not an IANA time zone such as Asia/Shanghai", self.default_timezone),
            ));
        }
        if self.console_org.trim().is_empty() {
            return Err(bad("console_org", "CHATCRM_CONSOLE_ORG", "must not be empty"));
        }
        if !(1..=24 * 60).contains(&self.undo_window_minutes) {
            return Err(bad("undo_window_minutes", "CHATCRM_UNDO_WINDOW_MINUTES", "must be between 1 and 1440"));
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err(bad(
                "log_format",
                "CHATCRM_LOG_FORMAT",
                format!("`{}` is not `pretty` or `json`", self.log_format),
            ));
        }
        self.validate_wecom()?;
        self.schedule_plan()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(bad(
                "log_level",
                "CHATCRM_LOG_LEVEL",
                format!("`{}` is not a tracing filter such as `info`", self.log_level),
            ));
        }
        Ok(())
    }

    fn validate_wecom(&self) -> Result<(), ConfigError> {
        let w = &self.wecom;
        let bad = |key: &'static str, env: &'static str, m: String| ConfigError::Invalid { key, env, message: m };
        if w.timestamp_window_secs == 0 {
            return Err(bad(
                "wecom.timestamp_window_secs",
                "CHATCRM_WECOM__TIMESTAMP_WINDOW_SECS",
                "must be at least 1".into(),
            ));
        }
        if !(100..=4500).contains(&w.reply_deadline_ms) {
            return Err(bad(
                "wecom.reply_deadline_ms",
                "CHATCRM_WECOM__REPLY_DEADLINE_MS",
                "must be between 100 and 4500 (WeCom waits 5 seconds)".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for app in &w.apps {
            let key = "wecom.apps";
            let env = "CHATCRM_WECOM__APPS";
            let ok_name =
                !app.name.is_empty() && app.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok_name {
                return Err(bad(key, env, format!("app name `{}` must be letters, digits, - or _", app.name)));
            }
            if !names.insert(app.name.clone()) {
                return Err(bad(key, env, format!("app name `{}` is used twice", app.name)));
            }
            if app.corp_id.trim().is_empty() {
                return Err(bad(key, env, format!("app `{}`: corp_id is empty", app.name)));
            }
            if let Err(e) = crate::platform::wecom::crypto::WecomCrypto::new(
                app.token.expose_secret(),
                app.encoding_aes_key.expose_secret(),
                &app.corp_id,
            ) {
                return Err(bad(
                    key,
                    env,
                    format!(
                        "app `{}`: token and the 43-character encoding_aes_key from the WeCom console are needed ({e})",
                        app.name
                    ),
                ));
            }
            let (robot_token, robot_key) = app.robot_credentials();
            if let Err(e) = crate::platform::wecom::crypto::WecomCrypto::new(robot_token, robot_key, "") {
                return Err(bad(
                    key,
                    env,
                    format!(
                        "app `{}`: robot_token and the 43-character robot_encoding_aes_key of the group robot's callback are needed ({e})",
                        app.name
                    ),
                ));
            }
            if app.token.expose_secret().is_empty() || app.secret.expose_secret().is_empty() {
                return Err(bad(key, env, format!("app `{}`: token and secret must be set", app.name)));
            }
        }
        Ok(())
    }

    /// The validated `[schedule]` section.
    pub fn schedule_plan(&self) -> Result<crate::schedule::Plan, ConfigError> {
        crate::schedule::Plan::try_from(&self.schedule).map_err(|e| ConfigError::Invalid {
            key: e.key,
            env: e.env,
            message: e.message,
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // validate() has checked it; fall back to the default rather than panic.
        SocketAddr::from_str(&self.listen).unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// Whether `/console` is served: enabled, and on loopback or explicitly allowed elsewhere.
    pub fn console_served(&self) -> bool {
        self.console_enabled && (self.console_allow_remote || self.listen_addr().ip().is_loopback())
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        self.default_timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn sender_limit(&self) -> crate::bot::limit::SenderLimit {
        crate::bot::limit::SenderLimit { per_minute: self.sender_rate_per_minute, burst: self.sender_rate_burst }
    }

    pub fn undo_window(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.undo_window_minutes))
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// The database URL with any password replaced, for logs.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose_secret())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    pub fn of(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(format!("`{}` is neither sqlite://FILE nor postgres://USER@HOST/DB", redact_url(url)))
        }
    }
}

/// Hides the password of `scheme://user:password@host/...`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
// figment's Jail returns its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn example_file_is_valid_and_matches_defaults() {
        let fig = Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(EXAMPLE));
        let s = Settings::from_figment(fig).expect("example config must load");
        let d = Settings::default();
        assert_eq!(s.listen, d.listen);
        assert_eq!(s.database_url.expose_secret(), d.database_url.expose_secret());
        assert_eq!(s.sqlite_synchronous, "full");
    }

    #[test]
    fn every_key_is_documented_in_the_example() {
        let value = serde_json::to_value(Settings::default()).expect("serialize");
        let keys = value.as_object().expect("object").keys().cloned().collect::<Vec<_>>();
        let obj = value.as_object().cloned().unwrap_or_default();
        for key in keys {
            if let Some(section) = obj.get(&key).and_then(|v| v.as_object()) {
                assert!(EXAMPLE.contains(&format!("[{key}]")), "chatcrm.example.toml lacks section [{key}]");
                for sub in section.keys() {
                    assert!(EXAMPLE.contains(&format!("{sub} =")), "chatcrm.example.toml lacks `{key}.{sub}`");
                    let env = format!("CHATCRM_{}__{}", key.to_uppercase(), sub.to_uppercase());
                    assert!(EXAMPLE.contains(&env), "chatcrm.example.toml lacks env name {env}");
                }
                continue;
            }
            assert!(EXAMPLE.contains(&format!("{key} =")), "chatcrm.example.toml lacks `{key}`");
            let env = format!("CHATCRM_{}", key.to_uppercase());
            assert!(EXAMPLE.contains(&env), "chatcrm.example.toml lacks env name {env}");
        }
    }

    #[test]
    fn env_overrides_file_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("chatcrm.toml", "listen = \"0.0.0.0:9000\"\nsqlite_synchronous = \"full\"")?;
            jail.set_env("CHATCRM_DATABASE_URL", "postgres://u:secret@db/x");
            let s = Settings::load(Some(Path::new("chatcrm.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.listen, "0.0.0.0:9000");
            assert_eq!(s.database_url_redacted(), "postgres://u:***@db/x");

            jail.set_env("CHATCRM_LISTEN", "nowhere");
            let err = Settings::load(Some(Path::new("chatcrm.toml"))).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains("`listen`") && err.contains("CHATCRM_LISTEN"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_and_mistyped_keys_are_rejected_with_their_source() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("chatcrm.toml", "lisen = \"0.0.0.0:9000\"")?;
            let err = Settings::load(Some(Path::new("chatcrm.toml"))).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains("lisen") && err.contains("chatcrm.toml"), "{err}");

            jail.create_file("chatcrm.toml", "request_timeout_secs = \"soon\"")?;
            let err = Settings::load(Some(Path::new("chatcrm.toml"))).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains("request_timeout_secs"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn weak_sqlite_sync_and_bad_timezone_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHATCRM_SQLITE_SYNCHRONOUS", "off");
            let err = Settings::load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("sqlite_synchronous"), "{err}");
            jail.set_env("CHATCRM_SQLITE_SYNCHRONOUS", "full");
            jail.set_env("CHATCRM_DEFAULT_TIMEZONE", "Mars/Olympus");
            let err = Settings::load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("default_timezone"), "{err}");
            jail.set_env("CHATCRM_DEFAULT_TIMEZONE", "Asia/Shanghai");
            jail.set_env("CHATCRM_DATABASE_URL", "mysql://x");
            let err = Settings::load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("database_url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn wecom_apps_are_validated_at_start_up() {
        let app = |key: &str| {
            format!(
                "[[wecom.apps]]\nname = \"sales\"\norg = \"o\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\ntoken = \"t\"\nencoding_aes_key = \"{key}\"\n"
            )
        };
        figment::Jail::expect_with(|jail| {
            jail.create_file("chatcrm.toml", &app("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"))?;
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.wecom.apps.len(), 1);
            jail.create_file("chatcrm.toml", &app("too-short"))?;
            let err = Settings::load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("wecom.apps") && err.contains("encoding_aes_key") && err.contains("sales"), "{err}");
            jail.create_file(
                "chatcrm.toml",
                &format!(
                    "{}{}",
                    app("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"),
                    app("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
                ),
            )?;
            let err = Settings::load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("used twice"), "{err}");
            jail.set_env("CHATCRM_WECOM__REPLY_DEADLINE_MS", "9000");
            jail.create_file("chatcrm.toml", "")?;
            let err = Settings::load(None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains("wecom.reply_deadline_ms") && err.contains("CHATCRM_WECOM__REPLY_DEADLINE_MS"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Settings::load(Some(Path::new("/nonexistent/chatcrm.toml"))).err();
        assert!(matches!(err, Some(ConfigError::MissingFile(_))));
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("sqlite://chatcrm.db"), "sqlite://chatcrm.db");
        assert_eq!(redact_url("postgres://postgres@127.0.0.1:5432/test"), "postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(redact_url("postgres://a:b@h"), "postgres://a:***@h");
    }
}
