//! Command specs from `bot-commands/*.toml`, embedded at build time. They hold the trigger words,
//! help texts and examples; the examples double as parser tests.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::crm::Lang;

/// Every spec file, by canonical command name. A new command adds a line here and a file.
const SOURCES: &[(&str, &str)] = &[
    ("log_activity", include_str!("../../bot-commands/log_activity.toml")),
    ("create_customer", include_str!("../../bot-commands/create_customer.toml")),
    ("show_customer", include_str!("../../bot-commands/show_customer.toml")),
    ("update_customer", include_str!("../../bot-commands/update_customer.toml")),
    ("my_customers", include_str!("../../bot-commands/my_customers.toml")),
    ("create_deal", include_str!("../../bot-commands/create_deal.toml")),
    ("update_deal", include_str!("../../bot-commands/update_deal.toml")),
    ("close_deal", include_str!("../../bot-commands/close_deal.toml")),
    ("create_lead", include_str!("../../bot-commands/create_lead.toml")),
    ("assign_lead", include_str!("../../bot-commands/assign_lead.toml")),
    ("claim_lead", include_str!("../../bot-commands/claim_lead.toml")),
    ("convert_lead", include_str!("../../bot-commands/convert_lead.toml")),
    ("pool", include_str!("../../bot-commands/pool.toml")),
    ("lead_status", include_str!("../../bot-commands/lead_status.toml")),
    ("rules", include_str!("../../bot-commands/rules.toml")),
    ("leave", include_str!("../../bot-commands/leave.toml")),
    ("create_reminder", include_str!("../../bot-commands/create_reminder.toml")),
    ("today", include_str!("../../bot-commands/today.toml")),
    ("complete_task", include_str!("../../bot-commands/complete_task.toml")),
    ("snooze_task", include_str!("../../bot-commands/snooze_task.toml")),
    ("pipeline", include_str!("../../bot-commands/pipeline.toml")),
    ("digest", include_str!("../../bot-commands/digest.toml")),
    ("set_target", include_str!("../../bot-commands/set_target.toml")),
    ("undo", include_str!("../../bot-commands/undo.toml")),
    ("help", include_str!("../../bot-commands/help.toml")),
    ("select", include_str!("../../bot-commands/select.toml")),
    ("unknown", include_str!("../../bot-commands/unknown.toml")),
];

#[derive(Debug, Clone, Deserialize)]
pub struct Bilingual {
    pub zh: String,
    pub en: String,
}

impl Bilingual {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => self.zh.trim(),
            Lang::En => self.en.trim(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub words: Vec<String>,
    /// Field values implied by the word (e.g. 电话 → kind = call).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub text: String,
    pub expect: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub summary: Bilingual,
    pub usage: Bilingual,
    pub help: Bilingual,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub examples: Vec<Example>,
}

#[derive(Debug, thiserror::Error)]
#[error("bot-commands/{file}.toml: {message}")]
pub struct SpecError {
    pub file: &'static str,
    pub message: String,
}

fn load() -> Result<Vec<Spec>, SpecError> {
    SOURCES
        .iter()
        .map(|(file, src)| {
            let spec: Spec = toml::from_str(src).map_err(|e| SpecError { file, message: e.to_string() })?;
            if spec.name != *file {
                return Err(SpecError { file, message: format!("name `{}` differs from the file name", spec.name) });
            }
            Ok(spec)
        })
        .collect()
}

/// The specs, parsed once. They are compiled in and checked by tests, so a parse failure here is
/// a build defect; it is reported once and the bot runs with the specs that did parse.
pub fn specs() -> &'static [Spec] {
    static SPECS: OnceLock<Vec<Spec>> = OnceLock::new();
    SPECS.get_or_init(|| match load() {
        Ok(specs) => specs,
        Err(e) => {
            tracing::error!(error = %e, "invalid command spec");
            SOURCES.iter().filter_map(|(_, src)| toml::from_str::<Spec>(src).ok()).collect()
        }
    })
}

pub fn spec(name: &str) -> Option<&'static Spec> {
    specs().iter().find(|s| s.name == name)
}

/// Checks the embedded specs; used by tests and `chatcrm check-config`.
pub fn validate() -> Result<usize, SpecError> {
    load().map(|s| s.len())
}

/// The command reference in Markdown, as it appears in the README (kept in step by a test);
/// three examples per command (the files hold many more, all of them tests).
pub fn reference_markdown() -> String {
    let mut out = String::from("| 命令 command | 用法 usage | 例子 examples |\n| --- | --- | --- |\n");
    for s in specs() {
        let words: Vec<&str> = s.triggers.iter().flat_map(|t| t.words.iter().map(String::as_str)).collect();
        let words = if words.is_empty() { "(a bare number)".to_string() } else { words.join(" · ") };
        let examples: Vec<String> = s.examples.iter().take(3).map(|e| format!("`{}`", e.text)).collect();
        out.push_str(&format!(
            "| **{}** {} / {}<br>{} | `{}`<br>`{}` | {} |\n",
            s.name,
            s.summary.zh,
            s.summary.en,
            words,
            s.usage.zh,
            s.usage.en,
            examples.join("<br>")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    /// The README's command reference is generated from bot-commands/; regenerate it with
    /// `cargo run -- commands` when a spec changes.
    #[test]
    fn readme_command_reference_is_current() {
        let readme = include_str!("../../README.md");
        let start = "<!-- commands:start -->\n";
        let end = "<!-- commands:end -->";
        let section = readme
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(section, _)| section)
            .unwrap_or_default();
        assert_eq!(
            section,
            super::reference_markdown(),
            "README.md command reference is stale: run `cargo run -- commands`"
        );
    }
}
