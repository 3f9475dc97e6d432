//! Chat text → [`Command`]. Trigger words, help and examples come from `bot-commands/`; this module
//! holds the grammar of each command's arguments. Pure: no I/O.

pub mod spec;

use serde::Serialize;

use crate::crm::{ActivityKind, Lang};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    LogActivity {
        customer: String,
        kind: ActivityKind,
        content: String,
    },
    ShowCustomer {
        customer: String,
    },
    CreateCustomer {
        name: String,
    },
    Today,
    Help {
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    Select {
        index: usize,
    },
    Unknown {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        suggestion: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub command: Command,
    pub lang: Lang,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The command was recognised but its arguments are missing or malformed.
    #[error("usage of {command}")]
    Usage { command: &'static str, lang: Lang },
    #[error("empty message")]
    Empty,
}

/// Longest accepted message; chat platforms cap theirs well below this.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Full-width ASCII and the ideographic space → half-width, one char for one char, so positions in
/// the normalised text are positions in the original.
fn halfwidth(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

fn is_sep(c: char) -> bool {
    c.is_whitespace() || matches!(halfwidth(c), ':' | ',' | ';') || matches!(c, '、' | '，' | '：')
}

pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Chinese when the text has any Chinese character; English otherwise.
pub fn detect_lang(text: &str) -> Lang {
    if text.chars().any(is_cjk) { Lang::Zh } else { Lang::En }
}

struct TriggerRef {
    word: Vec<char>,
    spec: &'static spec::Spec,
    set: &'static std::collections::BTreeMap<String, String>,
}

fn triggers() -> &'static [TriggerRef] {
    static T: std::sync::OnceLock<Vec<TriggerRef>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut all: Vec<TriggerRef> = spec::specs()
            .iter()
            .flat_map(|s| {
                s.triggers.iter().flat_map(move |t| {
                    t.words.iter().map(move |w| TriggerRef {
                        word: w.chars().map(|c| halfwidth(c).to_ascii_lowercase()).collect(),
                        spec: s,
                        set: &t.set,
                    })
                })
            })
            .collect();
        // Longest first, so 新客户 wins over 客户 and "new customer" over "new".
        all.sort_by_key(|t| std::cmp::Reverse(t.word.len()));
        all
    })
}

/// Splits off the first argument token; the rest keeps its original characters.
fn first_token(chars: &[char]) -> (String, String) {
    let start = chars.iter().position(|c| !is_sep(*c)).unwrap_or(chars.len());
    let end = chars[start..].iter().position(|c| is_sep(*c)).map_or(chars.len(), |p| start + p);
    let token: String = chars[start..end].iter().collect();
    let rest: String = chars[end..].iter().collect();
    (token, rest.trim_matches(is_sep).to_string())
}

pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    let original: Vec<char> = trimmed.chars().take(MAX_TEXT_CHARS).collect();
    // Some people type "/help" out of habit from other bots.
    let original: &[char] = match original.first().map(|c| halfwidth(*c)) {
        Some('/') => &original[1..],
        _ => &original,
    };
    let norm: Vec<char> = original.iter().map(|c| halfwidth(*c).to_ascii_lowercase()).collect();
    let lang = detect_lang(trimmed);

    let digits: String = norm.iter().filter(|c| !c.is_whitespace()).collect();
    if !digits.is_empty() && digits.len() <= 2 && digits.chars().all(|c| c.is_ascii_digit()) {
        let index = digits.parse().unwrap_or(0);
        return Ok(Parsed { command: Command::Select { index }, lang });
    }

    for t in triggers() {
        let n = t.word.len();
        if norm.len() < n || norm[..n] != t.word[..] {
            continue;
        }
        // An English word must end at a boundary ("callback" is not "call"); Chinese needs none.
        let boundary = norm.get(n).is_none_or(|c| is_sep(*c) || is_cjk(*c) || !t.word[n - 1].is_ascii_alphanumeric());
        if !boundary {
            continue;
        }
        // The command word sets the language: "visit 海尔 ..." is an English speaker.
        let lang = if t.word.iter().any(|c| is_cjk(*c)) {
            Lang::Zh
        } else if t.word.iter().any(char::is_ascii_alphabetic) {
            Lang::En
        } else {
            lang
        };
        let rest = &original[n..];
        return build(t, rest, lang).map(|command| Parsed { command, lang });
    }
    Ok(Parsed { command: unknown(trimmed, &norm), lang })
}

fn build(t: &TriggerRef, rest: &[char], lang: Lang) -> Result<Command, ParseError> {
    let name = t.spec.name.as_str();
    let usage = |name: &str| ParseError::Usage { command: spec_name(name), lang };
    let rest_str: String = rest.iter().collect::<String>().trim_matches(is_sep).to_string();
    Ok(match name {
        "log_activity" => {
            let (customer, content) = first_token(rest);
            let kind = t.set.get("kind").and_then(|k| k.parse().ok()).unwrap_or(ActivityKind::Note);
            if customer.is_empty() || content.is_empty() {
                return Err(usage(name));
            }
            Command::LogActivity { customer, kind, content }
        }
        "show_customer" => {
            if rest_str.is_empty() {
                return Err(usage(name));
            }
            Command::ShowCustomer { customer: rest_str }
        }
        "create_customer" => {
            if rest_str.is_empty() {
                return Err(usage(name));
            }
            Command::CreateCustomer { name: rest_str }
        }
        "today" => {
            if !rest_str.is_empty() {
                return Err(usage(name));
            }
            Command::Today
        }
        "help" => Command::Help { topic: Some(rest_str).filter(|s| !s.is_empty()) },
        _ => return Err(usage("help")),
    })
}

/// The spec's name with a `'static` lifetime (names are compiled in).
fn spec_name(name: &str) -> &'static str {
    spec::spec(name).map_or("help", |s| s.name.as_str())
}

/// Finds the command a help topic names: a canonical name or any trigger word.
pub fn find_spec(topic: &str) -> Option<&'static spec::Spec> {
    let want: Vec<char> = topic.trim().chars().map(|c| halfwidth(c).to_ascii_lowercase()).collect();
    let as_str: String = want.iter().collect();
    spec::spec(&as_str).or_else(|| triggers().iter().find(|t| t.word == want).map(|t| t.spec))
}

/// An unrecognised message, with the closest trigger word when one is close enough.
fn unknown(text: &str, norm: &[char]) -> Command {
    let end = norm.iter().position(|c| is_sep(*c)).unwrap_or(norm.len());
    let head: String = norm[..end].iter().collect();
    let mut best: Option<(f64, &TriggerRef)> = None;
    for t in triggers() {
        let word: String = t.word.iter().collect();
        let score = if t.word.iter().any(|c| is_cjk(*c)) {
            // Chinese has no space after the command, so compare the text's prefix of the word's
            // length; one wrong character in a two-character word is still a likely typo.
            let prefix: String = norm.iter().take(t.word.len()).collect();
            let s = strsim::normalized_levenshtein(&prefix, &word);
            if s >= 0.5 { s } else { 0.0 }
        } else {
            let s = strsim::jaro_winkler(&head, &word);
            if s >= 0.8 { s } else { 0.0 }
        };
        if score > 0.0 && best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, t));
        }
    }
    Command::Unknown { text: text.chars().take(200).collect(), suggestion: best.map(|(_, t)| t.word.iter().collect()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_to_json(t: &toml::Table) -> serde_json::Value {
        serde_json::to_value(t).unwrap_or_default()
    }

    #[test]
    fn every_spec_example_parses_as_documented() {
        let mut n = 0;
        for s in spec::specs() {
            for ex in &s.examples {
                let parsed = parse(&ex.text).unwrap_or_else(|e| panic!("{}: `{}` failed: {e:?}", s.name, ex.text));
                let got = serde_json::to_value(&parsed.command).unwrap_or_default();
                assert_eq!(got, toml_to_json(&ex.expect), "{}: `{}`", s.name, ex.text);
                n += 1;
            }
        }
        assert!(n >= 10, "only {n} examples");
    }

    #[test]
    fn every_spec_file_loads_and_names_a_command() {
        assert_eq!(spec::validate().ok(), Some(spec::specs().len()));
        for s in spec::specs() {
            assert!(!s.examples.is_empty(), "{} has no examples", s.name);
            assert!(s.examples.iter().all(|e| e.expect.get("command").and_then(|c| c.as_str()) == Some(&s.name)));
        }
    }

    #[test]
    fn missing_arguments_ask_for_usage_in_the_users_language() {
        assert_eq!(parse("拜访 海尔"), Err(ParseError::Usage { command: "log_activity", lang: Lang::Zh }));
        assert_eq!(parse("visit"), Err(ParseError::Usage { command: "log_activity", lang: Lang::En }));
        assert_eq!(parse("customer"), Err(ParseError::Usage { command: "show_customer", lang: Lang::En }));
        assert_eq!(parse("   "), Err(ParseError::Empty));
    }

    #[test]
    fn chinese_trigger_without_space_and_fullwidth_punctuation() {
        let p = parse("拜访海尔　聊了报价，对方嫌贵").map(|p| p.command);
        assert_eq!(
            p,
            Ok(Command::LogActivity {
                customer: "海尔".into(),
                kind: ActivityKind::Visit,
                content: "聊了报价，对方嫌贵".into()
            })
        );
        assert_eq!(parse("／ｈｅｌｐ").map(|p| p.command), Ok(Command::Help { topic: None }));
    }

    #[test]
    fn english_words_need_a_boundary() {
        let p = parse("callback tomorrow").map(|p| p.command);
        assert!(matches!(p, Ok(Command::Unknown { .. })), "{p:?}");
    }

    #[test]
    fn unknown_suggests_the_closest_command() {
        let p = parse("hepl").map(|p| p.command);
        assert_eq!(p, Ok(Command::Unknown { text: "hepl".into(), suggestion: Some("help".into()) }));
        let p = parse("今填").map(|p| p.command);
        assert!(matches!(p, Ok(Command::Unknown { suggestion: Some(_), .. })), "{p:?}");
        let p = parse("随便说点什么").map(|p| p.command);
        assert!(matches!(p, Ok(Command::Unknown { suggestion: None, .. })), "{p:?}");
    }

    #[test]
    fn help_topics_resolve_by_name_or_trigger() {
        assert_eq!(find_spec("拜访").map(|s| s.name.as_str()), Some("log_activity"));
        assert_eq!(find_spec("TODAY").map(|s| s.name.as_str()), Some("today"));
        assert!(find_spec("nothing").is_none());
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "\u{0}",
            "拜",
            "/",
            "／",
            "1",
            "999",
            "🎉🎉",
            "客户 ",
            "visit a",
            &"拜访 ".repeat(5000),
            "\u{FF5E}\u{3000}",
        ] {
            let _ = parse(s);
        }
    }
}
