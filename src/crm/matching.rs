//! Customer-name matching for chat input: reps type names loosely (brand only, pinyin,
//! full-width, typos), so we canonicalize both sides and try ever looser tiers.

use std::sync::LazyLock;

use pinyin::ToPinyin;

// Space-separated word lists keep rustfmt from putting each entry on its own line.

/// Longest first where they overlap, so "股份有限公司" wins over "有限公司"/"公司".
const CN_SUFFIXES: &str = "\
    股份有限公司 有限责任公司 集团有限公司 有限公司 集团 股份 控股 \
    科技 公司 有限 实业";

/// Stripped only as whole trailing words, so "costco" keeps its "co".
const EN_SUFFIXES: &str = "\
    co ltd inc corp corporation group \
    limited company technology tech";

/// Administrative suffixes that may follow a region name; longest first.
const REGION_SUFFIXES: &str = "维吾尔自治区 壮族自治区 回族自治区 特别行政区 自治区 省 市";

/// Provinces, autonomous regions, municipalities, SARs and major cities (bare names).
const REGIONS: &str = "\
    北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 \
    福建 江西 山东 河南 湖北 湖南 广东 海南 四川 贵州 云南 陕西 \
    甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门 石家庄 \
    唐山 保定 廊坊 秦皇岛 太原 沈阳 大连 长春 哈尔滨 大庆 南京 \
    苏州 无锡 常州 南通 徐州 扬州 镇江 泰州 杭州 宁波 温州 绍兴 \
    嘉兴 金华 台州 合肥 芜湖 福州 厦门 泉州 南昌 济南 青岛 烟台 \
    潍坊 淄博 威海 临沂 郑州 洛阳 武汉 宜昌 襄阳 长沙 株洲 广州 \
    深圳 珠海 佛山 东莞 中山 惠州 汕头 南宁 柳州 桂林 海口 三亚 \
    成都 绵阳 贵阳 昆明 西安 兰州 西宁 银川 乌鲁木齐 拉萨 呼和浩特 \
    包头 鄂尔多斯";

/// The word lists above, split once: every customer lookup and every new name is normalised.
static CN_SUFFIX_LIST: LazyLock<Vec<&str>> = LazyLock::new(|| CN_SUFFIXES.split_whitespace().collect());
static EN_SUFFIX_LIST: LazyLock<Vec<&str>> = LazyLock::new(|| EN_SUFFIXES.split_whitespace().collect());
static REGION_SUFFIX_LIST: LazyLock<Vec<&str>> = LazyLock::new(|| REGION_SUFFIXES.split_whitespace().collect());
static REGION_LIST: LazyLock<Vec<&str>> = LazyLock::new(|| REGIONS.split_whitespace().collect());

/// One-char typo in a 4-char CJK name scores 0.83-0.85; two differing chars ~0.67.
const FUZZY_MIN: f64 = 0.80;
/// "haierzhija" vs "haiermoju" scores 0.85 on a shared prefix alone; real typos score > 0.9.
const FUZZY_MIN_ASCII: f64 = 0.90;
const FUZZY_MAX_CHARS: usize = 64;

/// Canonical form for matching and uniqueness: full-width -> half-width, lowercase, drop
/// whitespace/punctuation, then repeatedly strip legal-form suffixes (有限公司, Co., Ltd. ...) and
/// region prefixes (山东省, 青岛 ...), never down to an empty string.
/// E.g. "青岛海尔智家股份有限公司" -> "海尔智家", "Haier Group Co., Ltd." -> "haier".
pub fn normalize_name(name: &str) -> String {
    let lowered: String = name.chars().map(fold_width).flat_map(char::to_lowercase).collect();
    // A bracketed region after the brand ("海尔（中国）有限公司") is noise.
    let mut words: Vec<&str> = lowered
        .split(is_separator)
        .filter(|w| !w.is_empty())
        .enumerate()
        .filter(|(i, w)| *i == 0 || !is_region_word(w))
        .map(|(_, w)| w)
        .collect();
    let is_en_suffix = |w: &&str| EN_SUFFIX_LIST.contains(w);
    while words.len() > 1 && words.last().is_some_and(is_en_suffix) {
        words.pop();
    }
    let mut s = words.concat();
    // Each step strictly shortens `s`, so this terminates.
    while let Some(next) = strip_cn_suffix(&s).or_else(|| strip_region_prefix(&s)) {
        s = next;
    }
    s
}

/// Full-width -> half-width, trim, collapse whitespace runs. For display/storage.
pub fn clean_display_name(name: &str) -> String {
    let folded: String = name.chars().map(fold_width).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Toneless pinyin ("haierzhijia") and initials ("hezj"); non-Han chars kept, lowercased.
pub fn pinyin_keys(normalized: &str) -> (String, String) {
    let mut full = String::new();
    let mut initials = String::new();
    for c in normalized.chars() {
        match c.to_pinyin() {
            Some(p) => {
                full.push_str(p.plain());
                initials.extend(p.plain().chars().next());
            }
            None => {
                for l in c.to_lowercase() {
                    full.push(l);
                    initials.push(l);
                }
            }
        }
    }
    (full, initials)
}

/// A customer visible to the rep, with keys precomputed (and typically stored) at write time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidate {
    pub id: i64,
    pub name: String,
    pub name_norm: String,
    pub name_pinyin: String,
    pub name_initials: String,
}

impl Candidate {
    /// Builds a candidate with all derived keys computed from `name`.
    pub fn new(id: i64, name: &str) -> Self {
        let name_norm = normalize_name(name);
        let (name_pinyin, name_initials) = pinyin_keys(&name_norm);
        Candidate { id, name: name.to_string(), name_norm, name_pinyin, name_initials }
    }
}

/// Which tier produced the hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Exact,
    Normalized,
    Contains,
    Pinyin,
    Fuzzy,
}

/// One hit; `score` is in 0..=1 and only comparable within a tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub id: i64,
    pub name: String,
    pub kind: MatchKind,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MatchOutcome {
    /// Exactly one confident match.
    One(Ranked),
    /// Several plausible matches, best first, at most `limit`; the bot asks "which one?".
    /// Also used for a single *fuzzy* match, so the user confirms a guess rather than us acting on it.
    Many(Vec<Ranked>),
    None,
}

/// Scores one candidate within a tier; `None` = not a hit.
type Scorer<'a> = &'a dyn Fn(&Candidate) -> Option<f64>;

/// Finds `query` among `candidates` using tiers (exact, normalized, contains, pinyin, fuzzy);
/// the first tier with any hit decides.
pub fn match_customer(query: &str, candidates: &[Candidate], limit: usize) -> MatchOutcome {
    // limit 0 would yield an empty "which one?" list; treat it as 1.
    let limit = limit.max(1);
    let q_clean = clean_display_name(query).to_lowercase();
    if q_clean.is_empty() {
        return MatchOutcome::None;
    }
    let q = normalize_name(query);
    let q_len = q.chars().count();
    // Empty q (punctuation-only query) must not match empty keys in the later tiers.
    let ascii = !q.is_empty() && q.chars().all(|c| c.is_ascii_alphabetic());
    let tiers: [(MatchKind, Scorer); 4] = [
        (MatchKind::Exact, &|c| (clean_display_name(&c.name).to_lowercase() == q_clean).then_some(1.0)),
        (MatchKind::Normalized, &|c| (!q.is_empty() && c.name_norm == q).then_some(1.0)),
        (MatchKind::Contains, &|c| contains_score(&q, q_len, &c.name_norm)),
        (MatchKind::Pinyin, &|c| {
            if ascii { pinyin_score(&q, c) } else { None }
        }),
    ];
    for (kind, score) in tiers {
        if let Some(out) = decide(collect(candidates, kind, score), limit) {
            return out;
        }
    }
    // Shared pinyin prefixes inflate Jaro-Winkler on Latin text, so be stricter there.
    let min = if ascii { FUZZY_MIN_ASCII } else { FUZZY_MIN };
    let mut fuzzy = collect(candidates, MatchKind::Fuzzy, |c| {
        if q.is_empty() {
            return None; // jaro_winkler("", "") is 1.0
        }
        let qh = head(&q);
        let mut s = strsim::jaro_winkler(qh, head(&c.name_norm));
        if ascii && !c.name_pinyin.is_empty() {
            s = s.max(strsim::jaro_winkler(qh, head(&c.name_pinyin)));
        }
        (s >= min).then_some(s)
    });
    fuzzy.truncate(limit);
    if fuzzy.is_empty() {
        MatchOutcome::None
    } else {
        // Even a single fuzzy hit is only a guess: let the user confirm it.
        MatchOutcome::Many(fuzzy)
    }
}

/// First `FUZZY_MAX_CHARS` chars: Jaro is O(n*m), and real names are far shorter.
fn head(s: &str) -> &str {
    s.char_indices().nth(FUZZY_MAX_CHARS).map_or(s, |(i, _)| &s[..i])
}

fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Whitespace plus ASCII, general and CJK punctuation; std has no Unicode category API.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(c as u32,
            0x2010..=0x2027 | 0x2030..=0x205E | 0x3001..=0x3003 | 0x3008..=0x3011
            | 0x3014..=0x301F | 0x3030 | 0x303D | 0x30FB | 0xFE10..=0xFE19
            | 0xFE30..=0xFE6B | 0xFF5F..=0xFF65)
        || "·«»¡¿§¶©®™".contains(c)
}

/// Longest region at the start of `s`: (end of bare name, end including admin suffix).
fn region_prefix(s: &str) -> Option<(usize, usize)> {
    let base = REGION_LIST.iter().filter(|r| s.starts_with(*r)).max_by_key(|r| r.len())?;
    let rest = &s[base.len()..];
    let suffix = REGION_SUFFIX_LIST.iter().find(|x| rest.starts_with(*x)).map_or(0, |x| x.len());
    Some((base.len(), base.len() + suffix))
}

fn is_region_word(w: &str) -> bool {
    w == "中国" || region_prefix(w).is_some_and(|(_, full)| full == w.len())
}

fn strip_region_prefix(s: &str) -> Option<String> {
    let (base, full) = region_prefix(s)?;
    if full < s.len() {
        Some(s[full..].to_string())
    } else if base < full {
        // A bare region keeps its name but loses the admin suffix: "北京市" -> "北京".
        Some(s[..base].to_string())
    } else {
        None
    }
}

fn strip_cn_suffix(s: &str) -> Option<String> {
    CN_SUFFIX_LIST.iter().find_map(|x| s.strip_suffix(*x)).filter(|rest| !rest.is_empty()).map(str::to_string)
}

/// Full pinyin, then initials, then pinyin prefix (>= 4 letters, shorter names first).
fn pinyin_score(q: &str, c: &Candidate) -> Option<f64> {
    if c.name_pinyin == q {
        Some(1.0)
    } else if c.name_initials == q {
        Some(0.9)
    } else if q.len() >= 4 && c.name_pinyin.starts_with(q) {
        Some(0.5 + 0.4 * q.len() as f64 / c.name_pinyin.len().max(1) as f64)
    } else {
        None
    }
}

/// Prefix matches first (0.5 bonus), then higher coverage, i.e. shorter names.
fn contains_score(q: &str, q_len: usize, name: &str) -> Option<f64> {
    if q_len < 2 {
        return None;
    }
    let n_len = name.chars().count();
    let (short, long, s_len, l_len) = if name.contains(q) {
        (q, name, q_len, n_len)
    } else if n_len >= 2 && q.contains(name) {
        (name, q, n_len, q_len)
    } else {
        return None;
    };
    let prefix = if long.starts_with(short) { 0.5 } else { 0.0 };
    Some(prefix + 0.5 * s_len as f64 / l_len.max(1) as f64)
}

/// Hits sorted best first; ties by name then id so output is deterministic.
fn collect(candidates: &[Candidate], kind: MatchKind, score: impl Fn(&Candidate) -> Option<f64>) -> Vec<Ranked> {
    let mut hits: Vec<Ranked> = candidates
        .iter()
        .filter_map(|c| score(c).map(|score| Ranked { id: c.id, name: c.name.clone(), kind, score }))
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.name.cmp(&b.name)).then_with(|| a.id.cmp(&b.id)));
    hits
}

/// `None` means "tier found nothing, try the next one".
fn decide(mut hits: Vec<Ranked>, limit: usize) -> Option<MatchOutcome> {
    match hits.len() {
        0 => None,
        1 => hits.pop().map(MatchOutcome::One),
        _ => {
            hits.truncate(limit);
            Some(MatchOutcome::Many(hits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(names: &[&str]) -> Vec<Candidate> {
        names.iter().zip(1..).map(|(n, id)| Candidate::new(id, n)).collect()
    }

    /// Outcome as "one Kind:name" / "many Kind:name Kind:name" / "none", for one-line table rows.
    fn render(out: &MatchOutcome) -> String {
        let (tag, list) = match out {
            MatchOutcome::One(r) => ("one", std::slice::from_ref(r)),
            MatchOutcome::Many(v) => ("many", v.as_slice()),
            MatchOutcome::None => ("none", &[][..]),
        };
        let items = list.iter().map(|r| format!(" {:?}:{}", r.kind, r.name));
        items.fold(tag.to_string(), |acc, item| acc + &item)
    }

    #[test]
    fn normalize_table() {
        let cases = [
            ("青岛海尔智家股份有限公司", "海尔智家"),
            ("海尔集团", "海尔"),
            ("北京", "北京"),
            ("北京市", "北京"),
            ("Haier Group Co., Ltd.", "haier"),
            ("ＡＢＣ科技", "abc"),
            ("山东省青岛市海尔控股集团有限公司", "海尔"),
            ("海尔（中国）有限公司", "海尔"),
            ("新疆维吾尔自治区天山实业", "天山"),
            ("有限公司", "有限公司"),
            ("Costco", "costco"),
            ("Group Ltd", "group"),
            ("  海尔·智家\u{3000}", "海尔智家"),
            ("", ""),
            ("，。、！？", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_name(input), want, "input {input:?}");
        }
    }

    #[test]
    fn clean_and_pinyin() {
        let cleaned = clean_display_name("  海尔\u{3000}\u{3000}智家 ＣＯ ");
        assert_eq!(cleaned, "海尔 智家 CO");
        assert_eq!(pinyin_keys("海尔智家"), ("haierzhijia".into(), "hezj".into()));
        assert_eq!(pinyin_keys("tcl电子"), ("tcldianzi".into(), "tcldz".into()));
    }

    #[test]
    fn match_table() {
        // 海信电器 is a near-miss distractor for the fuzzy rows.
        let set: &[&str] = &["海尔智家", "青岛海尔模具", "美的集团", "海信电器"];
        let two: &[&str] = &["海尔智家", "美的集团"];
        let cases = [
            ("海尔智家", set, "one Exact:海尔智家"),
            (" haier  GROUP ", &["Haier Group"], "one Exact:Haier Group"),
            ("青岛海尔智家股份有限公司", set, "one Normalized:海尔智家"),
            ("ＨＡＩＥＲ", &["Haier Group Co., Ltd."], "one Normalized:Haier Group Co., Ltd."),
            ("美的", set, "one Normalized:美的集团"),
            ("海尔智", set, "one Contains:海尔智家"),
            ("海尔智家电器", set, "one Contains:海尔智家"),
            ("海尔", set, "many Contains:海尔智家 Contains:青岛海尔模具"),
            ("haier", two, "one Pinyin:海尔智家"),
            ("HaierZhijia", set, "one Pinyin:海尔智家"),
            ("hezj", set, "one Pinyin:海尔智家"),
            ("haier", set, "many Pinyin:青岛海尔模具 Pinyin:海尔智家"),
            ("海而智家", set, "many Fuzzy:海尔智家"),
            ("haierzhija", set, "many Fuzzy:海尔智家"),
            ("每尔智家", set, "many Fuzzy:海尔智家"),
            ("格力电器", set, "none"),
            ("！！！", set, "none"),
            ("apple", set, "none"),
            ("   ", set, "none"),
        ];
        for (query, names, want) in cases {
            let got = render(&match_customer(query, &cands(names), 5));
            assert_eq!(got, want, "query {query:?}");
        }
    }

    #[test]
    fn deterministic_and_limited() {
        let mut set = cands(&["海尔B", "海尔A", "海尔C", "海尔A"]);
        let first = match_customer("海尔", &set, 3);
        set.reverse();
        assert_eq!(match_customer("海尔", &set, 3), first);
        let MatchOutcome::Many(v) = first else {
            panic!("expected Many");
        };
        let got: Vec<_> = v.iter().map(|r| (r.name.as_str(), r.id)).collect();
        assert_eq!(got, [("海尔A", 2), ("海尔A", 4), ("海尔B", 1)]);
        assert!(v.iter().all(|r| (0.0..=1.0).contains(&r.score)));
    }

    #[test]
    fn weird_inputs_do_not_panic() {
        let long = "海尔".repeat(50_000) + &"x".repeat(50_000);
        let mut weird: Vec<&str> = "| |\u{3000}|！！！|...|()（）|😀|😀海尔🚀|İstanbul|ß|e\u{301}|有限公司|市\
            |北京市|海尔 Haier ハイアール 하이얼|\u{0}\u{FFFF}\u{10FFFF}|\u{200B}\u{FEFF}"
            .split('|')
            .collect();
        weird.push(&long);
        let mut set = cands(&weird);
        set.extend(cands(&["海尔智家", "美的集团"]));
        set.push(Candidate::default()); // all-empty keys
        // Long, different strings reach the fuzzy tier; must stay fast.
        let other = "美".repeat(100_000);
        assert_eq!(match_customer(&other, &cands(&[&long]), 5), MatchOutcome::None);
        for q in weird {
            let _ = pinyin_keys(&normalize_name(q));
            for limit in [0, 1, 10] {
                if let MatchOutcome::Many(v) = match_customer(q, &set, limit) {
                    assert!(!v.is_empty() && v.len() <= limit.max(1));
                }
            }
        }
    }
}
