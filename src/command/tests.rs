//! Parser tests: every example in bot-commands/ (the table), plus the edges.

use super::*;
use chrono::TimeZone;

/// The fixed "now" of every example: Tuesday 2026-11-24 10:00 in Shanghai.
pub(crate) fn now() -> DateTime<Tz> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 24, 10, 0, 0)
        .single()
        .unwrap_or_else(|| chrono_tz::Asia::Shanghai.from_utc_datetime(&chrono::NaiveDateTime::default()))
}

fn p(text: &str) -> Command {
    match parse(text, now()) {
        Ok(p) => p.command,
        Err(e) => panic!("`{text}` failed: {e:?}"),
    }
}

#[test]
fn every_spec_example_parses_as_documented() {
    let mut n = 0;
    let mut failures = Vec::new();
    for s in spec::specs() {
        for ex in &s.examples {
            let want = serde_json::to_value(&ex.expect).unwrap_or_default();
            let got = match parse(&ex.text, now()) {
                Ok(p) => serde_json::to_value(&p.command).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": format!("{e:?}") }),
            };
            if got != want {
                failures.push(format!("{}: `{}`\n   want {want}\n   got  {got}", s.name, ex.text));
            }
            n += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {n} examples failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_spec_file_loads_and_every_command_has_one() {
    assert_eq!(spec::validate().ok(), Some(spec::specs().len()));
    for s in spec::specs() {
        assert!(!s.examples.is_empty(), "{} has no examples", s.name);
        for e in &s.examples {
            assert_eq!(e.expect.get("command").and_then(|c| c.as_str()), Some(s.name.as_str()), "{}", e.text);
        }
    }
    // Every variant of Command has a spec file.
    let samples = [
        Command::Today,
        Command::Undo,
        Command::Help { topic: None },
        Command::Select { choice: 1 },
        Command::Unknown { text: String::new(), suggestion: None },
        Command::MyCustomers { grade: None },
        Command::Pipeline { scope: None },
        Command::Digest { period: Period::Day },
        Command::ClaimLead { lead: 1 },
        Command::ConvertLead { lead: 1 },
        Command::CompleteTask { task: 1 },
        Command::AssignLead { lead: 1, to: String::new() },
        Command::ShowCustomer { customer: String::new() },
        Command::Pool,
        Command::LeadStatus { lead: 1, status: crate::crm::LeadStatus::Contacted, reason: None },
        Command::Rules { action: RuleAction::List },
        Command::Leave { user: String::new(), on_leave: true },
    ];
    for c in samples {
        assert!(spec::spec(c.name()).is_some(), "no bot-commands/{}.toml", c.name());
    }
}

#[test]
fn missing_arguments_ask_for_usage_in_the_users_language() {
    let usage = |t: &str| match parse(t, now()) {
        Err(ParseError::Usage { command, lang, .. }) => Some((command, lang)),
        _ => None,
    };
    assert_eq!(usage("拜访 海尔"), Some(("log_activity", Lang::Zh)));
    assert_eq!(usage("visit"), Some(("log_activity", Lang::En)));
    assert_eq!(usage("customer"), Some(("show_customer", Lang::En)));
    assert_eq!(usage("提醒 给海尔打电话"), Some(("create_reminder", Lang::Zh)));
    assert_eq!(usage("商机 #12"), Some(("update_deal", Lang::Zh)));
    assert_eq!(parse("   ", now()), Err(ParseError::Empty));
}

#[test]
fn voice_style_and_fullwidth_text() {
    assert_eq!(
        p("嗯，那个，我刚拜访了海尔，聊了报价，对方嫌贵"),
        Command::LogActivity {
            kind: ActivityKind::Visit,
            customer: "海尔".into(),
            content: "聊了报价，对方嫌贵".into(),
            occurred_at: None,
            follow_up: None
        }
    );
    assert_eq!(p("／ｈｅｌｐ"), Command::Help { topic: None });
}

#[test]
fn follow_up_and_occurred_at_are_taken_from_the_content() {
    let c = p("拜访 海尔 聊了报价，对方嫌贵，下周三下午3点再跟进");
    let json = serde_json::to_value(&c).unwrap_or_default();
    assert_eq!(json["content"], "聊了报价，对方嫌贵");
    assert_eq!(json["follow_up"]["at"], "2026-12-02T15:00:00+08:00");
    assert_eq!(json["follow_up"]["title"], "再跟进");
    let c = p("昨天拜访了海尔，聊了二期");
    let json = serde_json::to_value(&c).unwrap_or_default();
    assert_eq!(json["customer"], "海尔");
    assert_eq!(json["content"], "聊了二期");
    assert!(json["occurred_at"].as_str().is_some_and(|s| s.starts_with("2026-11-23")), "{json}");
}

#[test]
fn english_words_need_a_boundary() {
    assert!(matches!(p("callback tomorrow"), Command::Unknown { .. }));
}

#[test]
fn unknown_suggests_the_closest_command() {
    assert_eq!(p("hepl"), Command::Unknown { text: "hepl".into(), suggestion: Some("help".into()) });
    assert!(matches!(p("今填"), Command::Unknown { suggestion: Some(_), .. }));
    assert!(matches!(p("随便说点什么"), Command::Unknown { suggestion: None, .. }));
}

#[test]
fn help_topics_resolve_by_name_or_trigger() {
    assert_eq!(find_spec("拜访").map(|s| s.name.as_str()), Some("log_activity"));
    assert_eq!(find_spec("TODAY").map(|s| s.name.as_str()), Some("today"));
    assert!(find_spec("nothing").is_none());
}

#[test]
fn never_panics_on_odd_input() {
    let long = "拜访 ".repeat(5000);
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
        &long,
        "\u{FF5E}\u{3000}",
        "商机 #",
        "#",
        "@",
    ] {
        let _ = parse(s, now());
    }
}

#[test]
fn glued_values_keep_their_characters() {
    // Lower-casing İ and half-widening Ａ change byte lengths; values are cut by characters.
    let json = |t: &str| serde_json::to_value(p(t)).unwrap_or_default();
    assert_eq!(json("新客户 海尔 行业İİİİİİİİ")["industry"], "İİİİİİİİ");
    let v = json("新客户 海尔 等级Ａ 行业ＩＴ");
    assert_eq!(
        (v["name"].as_str(), v["grade"].as_str(), v["industry"].as_str()),
        (Some("海尔"), Some("A"), Some("ＩＴ"))
    );
}

#[test]
fn lead_desk_commands_explain_what_is_missing() {
    let usage = |t: &str| match parse(t, now()) {
        Err(ParseError::Usage { command, lang, detail }) => Some((command, lang, detail.is_some())),
        other => panic!("`{t}` should be a usage error, got {other:?}"),
    };
    for (text, command, lang) in [
        ("新规则 青岛", "rules", Lang::Zh),
        ("新规则 给 @李雷", "rules", Lang::Zh),
        ("新规则 青岛 地区 给 @李雷", "rules", Lang::Zh),
        ("新规则 华东 给 团队", "rules", Lang::Zh),
        ("新规则 华东 给 @李雷 上限 0", "rules", Lang::Zh),
        ("新规则 华东 给 @李雷 给 @王芳", "rules", Lang::Zh),
        ("新规则 华东 地区 上海 地区 杭州 给 @李雷", "rules", Lang::Zh),
        ("new rule East to team", "rules", Lang::En),
        ("new rule East region Shanghai to @a cap lots", "rules", Lang::En),
        ("规则 青岛", "rules", Lang::Zh),
        ("删除规则", "rules", Lang::Zh),
        ("disable rule", "rules", Lang::En),
        ("联系了", "lead_status", Lang::Zh),
        ("联系了海尔，聊了报价", "lead_status", Lang::Zh),
        ("contacted #34 they want a demo", "lead_status", Lang::En),
        ("release", "lead_status", Lang::En),
        ("公海 海尔", "pool", Lang::Zh),
        ("休假", "leave", Lang::Zh),
        ("休假 @李雷 @王芳", "leave", Lang::Zh),
        ("back", "leave", Lang::En),
        ("leave a note", "leave", Lang::En),
    ] {
        assert_eq!(usage(text), Some((command, lang, true)), "{text}");
    }
}

#[test]
fn lead_desk_grammar_takes_odd_input() {
    for s in [
        "新规则 「",
        "新规则 「」 给 @a",
        "新规则 \"",
        "新规则 X 上限",
        "新规则 X 给",
        "新规则 X 给团队",
        "新规则 X 给＠",
        "新规则 X 第",
        "新规则 X 第九十九位 给 @a",
        "新规则 X 上限 九十九 给 @a",
        "新规则 X 上限 十 给 @a",
        "删除规则 #",
        "删除规则 ＃",
        "删除规则 第",
        "@",
        "@@",
        "＠ 休假",
        "@休假",
        &format!("@{} 休假", "李".repeat(100)),
        &format!("@{}", "休".repeat(5000)),
        "round robin",
        "new rule round robin least loaded",
        "放弃 #1 原因",
        "退回公海 #99999999999999",
    ] {
        let _ = parse(s, now());
    }
    // A long name before the verb is not read as a mention.
    assert!(matches!(p(&format!("@{} 休假", "李".repeat(100))), Command::Unknown { .. }));
    assert_eq!(p("@休假"), Command::Unknown { text: "@休假".into(), suggestion: None });
}
