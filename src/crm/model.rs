//! Domain types: the closed sets of values (roles, kinds, statuses) and the records the services
//! return. Enums are stored as their snake_case text on both databases.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// A closed set of values stored as text; `parse` accepts the stored form only.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $s)] #[schema(rename = $s)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(format!(
                        "`{other}` is not one of: {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name where String: sqlx::Type<DB> {
            fn type_info() -> DB::TypeInfo { <String as sqlx::Type<DB>>::type_info() }
            fn compatible(ty: &DB::TypeInfo) -> bool { <String as sqlx::Type<DB>>::compatible(ty) }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name where String: sqlx::Encode<'q, DB> {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                self.as_str().to_string().encode_by_ref(buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name where String: sqlx::Decode<'r, DB> {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(s.parse::<$name>()?)
            }
        }
    };
}

text_enum!(Role { Rep => "rep", Manager => "manager", Admin => "admin" });
text_enum!(Grade { A => "A", B => "B", C => "C" });
text_enum!(ActivityKind {
    Visit => "visit", Call => "call", Wechat => "wechat", Email => "email", Meeting => "meeting", Note => "note"
});
text_enum!(DealStatus { Open => "open", Won => "won", Lost => "lost" });
text_enum!(LeadStatus {
    New => "new", Assigned => "assigned", Contacted => "contacted", Qualified => "qualified",
    Converted => "converted", Discarded => "discarded", Pool => "pool"
});
text_enum!(TaskStatus { Open => "open", Done => "done", Cancelled => "cancelled" });
text_enum!(TaskOrigin { Manual => "manual", Activity => "activity", Rule => "rule", Lead => "lead" });
text_enum!(
    /// How a change reached us; recorded in the audit log.
    Via { Chat => "chat", Api => "api", Cli => "cli", System => "system" }
);
text_enum!(LostReason {
    Price => "price", Competitor => "competitor", NoBudget => "no_budget",
    MissingFeatures => "missing_features", Timing => "timing", Unresponsive => "unresponsive",
    NoDecisionMaker => "no_decision_maker", PoorFit => "poor_fit", Other => "other"
});

impl Grade {
    /// Days without contact after which a customer of this grade counts as quiet.
    pub fn contact_limit_days(self) -> i64 {
        match self {
            Grade::A => 3,
            Grade::B => 7,
            Grade::C => 14,
        }
    }
}

impl ActivityKind {
    pub fn zh(self) -> &'static str {
        match self {
            ActivityKind::Visit => "拜访",
            ActivityKind::Call => "电话",
            ActivityKind::Wechat => "微信",
            ActivityKind::Email => "邮件",
            ActivityKind::Meeting => "会议",
            ActivityKind::Note => "备注",
        }
    }
}

impl Role {
    pub fn zh(self) -> &'static str {
        match self {
            Role::Rep => "销售",
            Role::Manager => "经理",
            Role::Admin => "管理员",
        }
    }
}

/// Who is acting. `user_id` is `None` for the system and CLI operators, which act as org admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub org_id: i64,
    pub user_id: Option<i64>,
    pub role: Role,
    pub team_id: Option<i64>,
}

impl Actor {
    pub fn system(org_id: i64) -> Self {
        Self { org_id, user_id: None, role: Role::Admin, team_id: None }
    }

    pub fn of(user: &User) -> Self {
        Self { org_id: user.org_id, user_id: Some(user.id), role: user.role, team_id: user.team_id }
    }

    /// Whether this actor may read and change a record owned by `owner_id` (of team `owner_team`):
    /// reps their own, managers their team's (and unowned ones), admins everything in the org.
    pub fn can_access(&self, owner_id: Option<i64>, owner_team: Option<i64>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => {
                owner_id.is_none() || owner_id == self.user_id || (owner_team.is_some() && owner_team == self.team_id)
            }
            Role::Rep => owner_id.is_some() && owner_id == self.user_id,
        }
    }
}

/// The context of one change: who, through which channel, caused by which inbound message, when.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub via: Via,
    pub source_message_id: Option<i64>,
    pub now: DateTime<Utc>,
}

impl Ctx {
    pub fn new(actor: Actor, via: Via, now: DateTime<Utc>) -> Self {
        Self { actor, via, source_message_id: None, now }
    }

    pub fn org_id(&self) -> i64 {
        self.actor.org_id
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct Org {
    pub id: i64,
    pub name: String,
    pub timezone: String,
    pub created_at: DateTime<Utc>,
}

impl Org {
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Team {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub org_id: i64,
    pub handle: String,
    pub name: String,
    pub role: Role,
    pub team_id: Option<i64>,
    pub team_name: Option<String>,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct Stage {
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    pub probability: i64,
    pub position: i64,
    pub outcome: DealStatus,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Customer {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub name_norm: String,
    pub name_pinyin: String,
    pub name_initials: String,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub source: Option<String>,
    pub grade: Option<Grade>,
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
    pub owner_team_id: Option<i64>,
    pub last_contacted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Contact {
    pub id: i64,
    pub customer_id: i64,
    pub name: String,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub wechat: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Activity {
    pub id: i64,
    pub org_id: i64,
    pub customer_id: i64,
    pub customer_name: String,
    pub user_id: i64,
    pub user_name: String,
    pub kind: ActivityKind,
    pub occurred_at: DateTime<Utc>,
    pub content: String,
    pub next_step: Option<String>,
    pub location: Option<String>,
    pub source_message_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Deal {
    pub id: i64,
    pub org_id: i64,
    pub customer_id: i64,
    pub customer_name: String,
    pub owner_id: i64,
    pub owner_team_id: Option<i64>,
    pub title: String,
    pub amount_fen: i64,
    pub currency: String,
    pub stage: String,
    pub probability: i64,
    pub expected_close: Option<NaiveDate>,
    pub status: DealStatus,
    pub lost_reason: Option<LostReason>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StageMove {
    pub id: i64,
    pub deal_id: i64,
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub moved_at: DateTime<Utc>,
    pub moved_by: Option<i64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct Lead {
    pub id: i64,
    pub org_id: i64,
    pub company: String,
    pub company_norm: String,
    pub contact_name: Option<String>,
    pub phone: Option<String>,
    pub phone_norm: Option<String>,
    pub email: Option<String>,
    pub source: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub status: LeadStatus,
    pub owner_id: Option<i64>,
    pub owner_team_id: Option<i64>,
    pub dedupe_key: String,
    pub customer_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Comma-separated. (`default`: audit rows written before these fields existed still load.)
    #[serde(default)]
    pub tags: String,
    /// Why it has its owner: the rule that matched, manual, claimed, recycled.
    #[serde(default)]
    pub assign_reason: Option<String>,
    #[serde(default)]
    pub assigned_at: Option<DateTime<Utc>>,
    /// SLA clock: 0 running, 1 owner reminded, 2 manager told, 3 back in the pool.
    #[serde(default)]
    pub sla_stage: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: i64,
    pub org_id: i64,
    pub owner_id: i64,
    pub owner_team_id: Option<i64>,
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub customer_id: Option<i64>,
    pub customer_name: Option<String>,
    pub deal_id: Option<i64>,
    pub origin: TaskOrigin,
    pub status: TaskStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub org_id: i64,
    pub actor_id: Option<i64>,
    pub action: String,
    pub entity: String,
    pub entity_id: i64,
    pub before: Option<sqlx::types::Json<serde_json::Value>>,
    pub after: Option<sqlx::types::Json<serde_json::Value>>,
    pub via: Via,
    pub source_message_id: Option<i64>,
    pub at: DateTime<Utc>,
}
