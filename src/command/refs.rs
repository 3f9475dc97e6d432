//! Small recognisers shared by the command grammars: record references (#12, 商机12, 线索#34),
//! @mentions, grades, stages, lost reasons, phone numbers. Pure and allocation-light.

use crate::crm::{Grade, LostReason};

/// Full-width ASCII and the ideographic space → half-width, char for char.
pub fn halfwidth(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// A record reference: `#12`, `＃12`, `12`, or a prefix word such as 商机12 / 线索#34 / deal 12.
/// Returns the number; `prefixes` are the words allowed before the number.
pub fn record_ref(token: &str, prefixes: &[&str]) -> Option<i64> {
    let t: String = token.chars().map(halfwidth).collect::<String>().to_lowercase();
    let mut rest = t.as_str();
    for p in prefixes {
        if let Some(r) = rest.strip_prefix(p) {
            rest = r;
            break;
        }
    }
    let rest = rest.strip_prefix('#').unwrap_or(rest);
    let rest = rest.strip_prefix("no.").unwrap_or(rest);
    if rest.is_empty() || rest.len() > 12 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok().filter(|n| *n > 0)
}

/// A reference glued to the words after it: `#34给@李雷`, `任务5了`. It needs `#` or a prefix word
/// (a bare `5万` is money, not record 5). Returns the number and the byte length of the reference.
pub fn record_ref_head(token: &str, prefixes: &[&str]) -> Option<(i64, usize)> {
    let chars: Vec<(usize, char)> = token.char_indices().map(|(i, c)| (i, halfwidth(c).to_ascii_lowercase())).collect();
    let mut i = 0;
    for p in prefixes {
        let p: Vec<char> = p.chars().collect();
        if chars.len() >= p.len() && chars[..p.len()].iter().map(|c| c.1).eq(p.iter().copied()) {
            i = p.len();
            break;
        }
    }
    let hash = chars.get(i).is_some_and(|c| c.1 == '#');
    if i == 0 && !hash {
        return None;
    }
    i += usize::from(hash);
    let digits = chars[i..].iter().take_while(|c| c.1.is_ascii_digit()).count();
    if digits == 0 || digits > 12 || chars.get(i + digits).is_some_and(|c| c.1.is_ascii_alphanumeric()) {
        return None;
    }
    let n: String = chars[i..i + digits].iter().map(|c| c.1).collect();
    let end = chars.get(i + digits).map_or(token.len(), |c| c.0);
    n.parse().ok().filter(|n| *n > 0).map(|n| (n, end))
}

/// `@lilei`, `@李雷` → the name without `@`.
pub fn mention(token: &str) -> Option<&str> {
    let t = token.strip_prefix('@').or_else(|| token.strip_prefix('＠'))?;
    (!t.is_empty()).then_some(t)
}

pub fn grade(token: &str) -> Option<Grade> {
    let t: String = token.chars().map(halfwidth).collect::<String>().to_uppercase();
    let t = t.trim_end_matches('级').trim_end_matches("类");
    let t = t.strip_suffix("GRADE").unwrap_or(t).trim();
    match t {
        "A" | "重要" => Some(Grade::A),
        "B" => Some(Grade::B),
        "C" => Some(Grade::C),
        _ => None,
    }
}

/// Stage words in both languages → stage key. Outcome stages are not here: won/lost are
/// `close_deal`.
pub fn stage(token: &str) -> Option<&'static str> {
    let t: String = token.chars().map(halfwidth).collect::<String>().to_lowercase();
    // 谈判阶段, "negotiation stage": the word "stage" adds nothing.
    let t = t.strip_suffix("阶段").or_else(|| t.strip_suffix(" stage")).unwrap_or(&t);
    Some(match t {
        "初步接触" | "接触" | "初次接触" | "initial_contact" | "initial" | "contact" | "lead_in" => {
            "initial_contact"
        }
        "需求分析" | "需求" | "需求确认" | "needs_analysis" | "needs" | "analysis" | "discovery" => {
            "needs_analysis"
        }
        "方案报价" | "报价" | "方案" | "出方案" | "proposal" | "quote" | "quotation" => "proposal",
        "商务谈判" | "谈判" | "议价" | "negotiation" | "negotiating" | "negotiate" => "negotiation",
        "合同签订" | "签合同" | "合同" | "签约" | "contract" | "signing" => "contract",
        _ => return None,
    })
}

const LOST_REASONS: &[(&[&str], LostReason)] = &[
    (&["价格", "太贵", "价格高", "嫌贵", "贵", "price", "too expensive", "expensive"], LostReason::Price),
    (&["竞争对手", "竞品", "对手", "被抢", "competitor", "competition"], LostReason::Competitor),
    (&["没预算", "预算", "无预算", "没钱", "no_budget", "no budget", "budget"], LostReason::NoBudget),
    (
        &["功能不足", "功能", "缺功能", "不满足需求", "missing_features", "missing features", "features"],
        LostReason::MissingFeatures,
    ),
    (&["时机", "时间不对", "推迟", "延期", "timing", "bad timing"], LostReason::Timing),
    (&["失联", "不回复", "联系不上", "unresponsive", "no response", "ghosted"], LostReason::Unresponsive),
    (
        &["找不到决策人", "没决策人", "决策人", "no_decision_maker", "no decision maker", "decision maker"],
        LostReason::NoDecisionMaker,
    ),
    (&["不匹配", "不合适", "poor_fit", "poor fit", "not a fit", "bad fit"], LostReason::PoorFit),
    (&["其他", "其它", "other"], LostReason::Other),
];

/// Lost-reason words in both languages: the whole text is one of them.
pub fn lost_reason(text: &str) -> Option<LostReason> {
    let t: String = text.chars().map(halfwidth).collect::<String>().to_lowercase();
    let t = t.trim();
    LOST_REASONS.iter().find(|(words, _)| words.contains(&t)).map(|(_, r)| *r)
}

/// A lost reason said in a phrase: 被竞品抢了, 客户没预算, "they went with a competitor". The first
/// reason in table order whose word occurs in the text (Chinese words of two or more characters;
/// English words at word boundaries); "其他" is only taken on its own.
pub fn lost_reason_in(text: &str) -> Option<LostReason> {
    let t: String = text.chars().map(halfwidth).collect::<String>().to_lowercase();
    let found = |w: &str| {
        if w.is_ascii() {
            t.match_indices(w).any(|(i, _)| {
                let before = t[..i].chars().next_back();
                let after = t[i + w.len()..].chars().next();
                before.is_none_or(|c| !c.is_ascii_alphanumeric()) && after.is_none_or(|c| !c.is_ascii_alphanumeric())
            })
        } else {
            w.chars().count() >= 2 && t.contains(w)
        }
    };
    LOST_REASONS
        .iter()
        .filter(|(_, r)| *r != LostReason::Other)
        .find(|(words, _)| words.iter().any(|w| !w.contains('_') && found(w)))
        .map(|(_, r)| *r)
}

/// Phone numbers as people write them → digits without +86: `139-0000-1111`, `+86 138 0000 2222`.
pub fn phone(text: &str) -> Option<String> {
    crate::crm::leads::normalize_phone(text).filter(|p| p.len() >= 7)
}

/// Whether a token looks like a mobile number (so it is taken as a phone, not a name).
pub fn looks_like_phone(token: &str) -> bool {
    let digits = token.chars().map(halfwidth).filter(|c| c.is_ascii_digit()).count();
    let others = token.chars().map(halfwidth).filter(|c| !c.is_ascii_digit() && !matches!(c, '+' | '-' | ' ')).count();
    digits >= 7 && others == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for (t, want) in [
            ("#12", Some(12)),
            ("＃12", Some(12)),
            ("12", Some(12)),
            ("商机12", Some(12)),
            ("商机#12", Some(12)),
            ("线索#34", Some(34)),
            ("#0", None),
            ("#", None),
            ("#12a", None),
            ("99999999999999", None),
        ] {
            assert_eq!(record_ref(t, &["商机", "线索", "deal", "lead"]), want, "{t}");
        }
    }

    #[test]
    fn words() {
        assert_eq!(stage("报价"), Some("proposal"));
        assert_eq!(stage("签合同"), Some("contract"));
        assert_eq!(stage("Negotiation"), Some("negotiation"));
        assert_eq!(stage("赢单"), None);
        assert_eq!(lost_reason("价格"), Some(LostReason::Price));
        assert_eq!(lost_reason("Competitor"), Some(LostReason::Competitor));
        assert_eq!(lost_reason("天气"), None);
        assert_eq!(grade("A级"), Some(Grade::A));
        assert_eq!(grade("ｂ"), Some(Grade::B));
        assert_eq!(mention("@李雷"), Some("李雷"));
        assert_eq!(phone("+86 138 0000 2222").as_deref(), Some("13800002222"));
        assert_eq!(phone("139-0000-1111").as_deref(), Some("13900001111"));
        assert!(looks_like_phone("139-0000-1111") && !looks_like_phone("12万"));
        assert_eq!(stage("谈判阶段"), Some("negotiation"));
    }

    #[test]
    fn glued_references_and_reasons_in_phrases() {
        let p = &["商机", "线索", "任务"];
        assert_eq!(record_ref_head("#34给@李雷", p), Some((34, 3)));
        assert_eq!(record_ref_head("任务5了", p), Some((5, "任务5".len())));
        assert_eq!(record_ref_head("＃３４吧", p), Some((34, "＃３４".len())));
        assert_eq!(record_ref_head("5万", p), None);
        assert_eq!(record_ref_head("#12a", p), None);
        assert_eq!(lost_reason_in("被竞品抢了"), Some(LostReason::Competitor));
        assert_eq!(lost_reason_in("客户没预算"), Some(LostReason::NoBudget));
        assert_eq!(lost_reason_in("they went with a competitor"), Some(LostReason::Competitor));
        assert_eq!(lost_reason_in("pricey"), None);
        assert_eq!(lost_reason_in("贵公司"), None);
    }
}
