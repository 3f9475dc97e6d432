//! Money amounts typed the way reps really type them, in Chinese and English → integer fen (分).
//!
//! Pure, hand-written scanning (no regex), never panics: every step is checked and saturates,
//! and anything that overflows ends as [`AmountError::TooLarge`].
//!
//! Judgment calls:
//! - More than two decimals of 元 are rounded half-up to the fen: `1.2345元` → 123, `1.235元` → 124.
//! - A single digit right after a unit fills the next lower place (`两万五` = 25 000, `一万二` = 12 000,
//!   `三千五` = 3 500, `3万5` = 35 000); after 零 it is literal (`一万零五` = 10 005). A multi-digit
//!   Arabic tail is literal and must fit below the unit (`3万5000` = 35 000).
//! - `k` = 10³, `m`/`mn`/`million` = 10⁶, `bn`/`billion` = 10⁹, only after a plain Arabic number.
//!   `m` and `bn` parse but are not money cues for [`find_amount`] (minutes, meters…).
//! - Vague amounts (`5万多`, `5万余`, `5w+`) are [`AmountError::Ambiguous`], like ranges.
//! - Zero is an amount. [`parse_amount`] ignores the hedges `约`/`大约`/`大概`/`~` and `左右`/`上下`.
//! - Foreign currencies (`$`, `美元`, `USD`…) are not amounts.
//! - [`find_amount`] returns None at the first money-cued range, vague or too-large amount instead of
//!   returning a later (probably secondary) one. Its range includes a currency prefix/suffix
//!   (`¥35,000`, `12万元`) but not the keyword.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Not recognisable as an amount.
    NotAnAmount,
    /// Above [`MAX_FEN`].
    TooLarge,
    /// A negative amount.
    Negative,
    /// A range ("5-6万") or a vague amount ("5万多").
    Ambiguous,
}

/// Max accepted: 1000 亿元.
pub const MAX_FEN: i64 = 10_000_000_000_000;

/// While parsing, values are fixed-point 元 × 10¹². That keeps half-up rounding to the fen exact for
/// coefficients of every unit up to 10⁹ (further decimal digits cannot change the rounding).
const SCALE: i128 = 1_000_000_000_000;
/// One fen in fixed point.
const FEN: i128 = SCALE / 100;
/// Saturation cap: operations clamp here; a value at the cap is certainly too large.
const CAP: i128 = 1_000_000_000_000_000_000_000_000_000_000;
const WAN: i128 = 10_000;
const YI: i128 = 100_000_000;

/// Normalised text: (byte offset in the original, normalised char).
type Chars = [(usize, char)];

const KEYWORDS_ZH: &str = "金额 报价 价格 价钱 总价 单价 售价 成交价 合同价 合同额 总额 预算 成交 费用 回款 付款 收款 首付 尾款 定金 订金 货款";
const KEYWORDS_EN: &str = "amount price priced budget for total cost costs quote quoted worth value";
const LINKS_ZH: &str = "为 是 约 大约 大概 共 总共 一共 达 高达 在";
const LINKS_EN: &str = "is of at about around approx approximately";
/// Counter / time chars after a number: 3个, 2台, 5天, 二期, 12月, 3点.
const COUNTERS: &str = "个台天期号月日年点分秒时次位人名家件套条张份箱辆斤吨米里周楼层岁倍折度间遍趟轮批单户瓶盒页届级栋亩克升寸尺季笔版码刀";
/// English words after a number that make it a count, a time or a foreign amount.
const EN_STOP: &str = "day days hour hours hr hrs h min mins minute minutes sec secs second seconds week weeks \
    wk wks month months mo year years yr yrs pc pcs piece pieces unit units user users seat seats people \
    person persons item items license licenses licence licences set sets times x am pm usd hkd eur gbp jpy \
    dollar dollars leads customers clients orders deals views visits downloads employees staff servers \
    accounts";

/// Parse a whole token/phrase that should be an amount; returns integer fen (分, 1 元 = 100 分).
pub fn parse_amount(text: &str) -> Result<i64, AmountError> {
    let all = normalize(text);
    let lo = all.iter().position(|p| !p.1.is_whitespace()).unwrap_or(all.len());
    let hi = all.iter().rposition(|p| !p.1.is_whitespace()).map_or(lo, |h| h + 1);
    let t = all.get(lo..hi).unwrap_or(&[]);

    let mut negative = false;
    let mut i = 0;
    if let Some((j, neg)) = sign_at(t, i) {
        negative = neg;
        i = j;
    }
    for hedge in ["大约", "大概", "约", "~"] {
        if let Some(e) = match_at(t, i, hedge) {
            i = skip_spaces(t, e);
            break;
        }
    }
    if let Some(e) = currency_prefix(t, i) {
        i = skip_spaces(t, e);
        if let Some((j, neg)) = sign_at(t, i) {
            negative |= neg;
            i = j;
        }
    }
    if !starts_number(ch(t, i)) {
        return Err(AmountError::NotAnAmount);
    }
    let a = scan_amount(t, i)?;
    let mut j = skip_spaces(t, a.end);
    for hedge in ["左右", "上下"] {
        if let Some(e) = match_at(t, j, hedge) {
            j = skip_spaces(t, e);
            break;
        }
    }
    if j < t.len() {
        return Err(leftover(t, a.end));
    }
    match to_fen(a.value) {
        Ok(fen) if negative && fen > 0 => Err(AmountError::Negative),
        Err(AmountError::TooLarge) if negative => Err(AmountError::Negative),
        r => r,
    }
}

/// Find the first amount inside a longer message; returns fen and the byte range matched.
/// Only counts as an amount when it has a money cue: a unit (万 w W 千 k K 百 亿 元 块 RMB rmb ¥ ￥ CNY yuan),
/// or is preceded by a money keyword (金额 / 报价 / 价格 / 合同额 / 预算 / amount / price / budget / for / 成交)
/// possibly followed by a separator (: ： space), or is a plain number ≥ 1000 with thousands separators like 35,000.
/// Phone numbers (11 digits starting with 1, or with +86), ids like #12, dates like 12月3号 / 12/3, times like 3点,
/// quantities like 3个 / 2台 / 5天 / 二期 must NOT be found.
pub fn find_amount(text: &str) -> Option<(i64, Range<usize>)> {
    let t = normalize(text);
    let byte = |i: usize| t.get(i).map_or(text.len(), |p| p.0);
    let mut i = 0;
    while i < t.len() {
        if starts_number(ch(&t, i)) && !continues_number(&t, i) {
            match judge(&t, i) {
                Verdict::Found(fen, s, e) => return Some((fen, byte(s)..byte(e))),
                Verdict::Stop => return None,
                Verdict::Skip(next) => {
                    i = next.max(i + 1);
                    continue;
                }
            }
        }
        i += 1;
    }
    None
}

/// Render fen for Chinese replies: ≥ 1万元 as "12万" / "12.5万" / "1.2亿" (at most 2 decimals, rounded
/// half-up, trailing zeros trimmed), below as "3,500元" / "35.50元".
pub fn format_zh(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = u128::from(fen.unsigned_abs());
    if a >= 1_000_000 {
        // Hundredths of 万 (100 元 each); switch to 亿 once that rounds to 10000万.
        let wan = (a + 5_000) / 10_000;
        if wan < 1_000_000 {
            return format!("{sign}{}万", two_places(wan));
        }
        let yi = (a + 50_000_000) / 100_000_000;
        return format!("{sign}{}亿", two_places(yi));
    }
    let (yuan, f) = (a / 100, a % 100);
    if f == 0 { format!("{sign}{}元", grouped(yuan)) } else { format!("{sign}{}.{f:02}元", grouped(yuan)) }
}

/// Render fen for English replies: "¥120,000" / "¥35.50" (exact).
pub fn format_en(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = u128::from(fen.unsigned_abs());
    let (yuan, f) = (a / 100, a % 100);
    if f == 0 { format!("{sign}¥{}", grouped(yuan)) } else { format!("{sign}¥{}.{f:02}", grouped(yuan)) }
}

fn two_places(h: u128) -> String {
    match (h / 100, h % 100) {
        (int, 0) => int.to_string(),
        (int, f) if f % 10 == 0 => format!("{int}.{}", f / 10),
        (int, f) => format!("{int}.{f:02}"),
    }
}

fn grouped(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Scanning helpers

fn normalize(text: &str) -> Vec<(usize, char)> {
    text.char_indices().map(|(i, c)| (i, norm_char(c))).collect()
}

/// Full-width ASCII → ASCII, space variants → ' ', dashes → '-', wave dashes → '~'.
fn norm_char(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\t' | '\u{A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{3000}' => ' ',
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' => '-',
        '\u{301C}' | '\u{223C}' => '~',
        _ => c,
    }
}

/// Char at `i`, or '\0' past the end.
fn ch(t: &Chars, i: usize) -> char {
    t.get(i).map_or('\0', |p| p.1)
}

/// Char before `i`, or '\0' at the start.
fn before(t: &Chars, i: usize) -> char {
    i.checked_sub(1).map_or('\0', |j| ch(t, j))
}

fn mul(a: i128, b: i128) -> i128 {
    a.checked_mul(b).map_or(CAP, |v| v.min(CAP))
}

fn add(a: i128, b: i128) -> i128 {
    a.checked_add(b).map_or(CAP, |v| v.min(CAP))
}

fn digit(c: char) -> Option<i128> {
    c.to_digit(10).map(i128::from)
}

fn cn_digit(c: char) -> Option<i128> {
    Some(match c {
        '零' | '〇' => 0,
        '一' | '壹' => 1,
        '二' | '贰' | '貳' | '两' | '兩' => 2,
        '三' | '叁' | '參' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' | '陸' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        _ => return None,
    })
}

fn small_unit(c: char) -> Option<i128> {
    match c {
        '十' | '拾' => Some(10),
        '百' | '佰' => Some(100),
        '千' | '仟' => Some(1000),
        _ => None,
    }
}

fn big_unit(c: char) -> Option<i128> {
    match c {
        '万' | '萬' => Some(WAN),
        '亿' | '億' => Some(YI),
        _ => None,
    }
}

fn starts_number(c: char) -> bool {
    c.is_ascii_digit() || cn_digit(c).is_some() || matches!(c, '十' | '拾')
}

fn numeric(c: char) -> bool {
    starts_number(c) || small_unit(c).is_some() || big_unit(c).is_some()
}

/// Latin `w`/`W` (万) right after a number, not part of a word.
fn is_w(t: &Chars, i: usize) -> bool {
    matches!(ch(t, i), 'w' | 'W') && !ch(t, i + 1).is_ascii_alphabetic()
}

fn skip_spaces(t: &Chars, mut i: usize) -> usize {
    while ch(t, i) == ' ' {
        i += 1;
    }
    i
}

fn skip_spaces_back(t: &Chars, mut i: usize) -> usize {
    while before(t, i) == ' ' {
        i -= 1;
    }
    i
}

fn ascii_word_end(t: &Chars, mut i: usize) -> usize {
    while ch(t, i).is_ascii_alphabetic() {
        i += 1;
    }
    i
}

/// If `pat` (ASCII case-insensitive) occurs at `i`, the index after it.
fn match_at(t: &Chars, i: usize, pat: &str) -> Option<usize> {
    let mut j = i;
    for p in pat.chars() {
        if !ch(t, j).eq_ignore_ascii_case(&p) {
            return None;
        }
        j += 1;
    }
    Some(j)
}

/// If `pat` (ASCII case-insensitive) ends right before `i`, its start.
fn match_before(t: &Chars, i: usize, pat: &str) -> Option<usize> {
    let mut j = i;
    for p in pat.chars().rev() {
        if j == 0 || !before(t, j).eq_ignore_ascii_case(&p) {
            return None;
        }
        j -= 1;
    }
    Some(j)
}

/// Whether the ASCII word `t[i..e]` is `pat` (case-insensitive).
fn word_is(t: &Chars, i: usize, e: usize, pat: &str) -> bool {
    e.checked_sub(i) == Some(pat.len()) && match_at(t, i, pat) == Some(e)
}

fn sign_at(t: &Chars, i: usize) -> Option<(usize, bool)> {
    match ch(t, i) {
        '-' | '负' => Some((skip_spaces(t, i + 1), true)),
        '+' => Some((skip_spaces(t, i + 1), false)),
        _ => None,
    }
}

fn to_fen(v: i128) -> Result<i64, AmountError> {
    if v >= CAP {
        return Err(AmountError::TooLarge);
    }
    let fen = add(v, FEN / 2) / FEN;
    if fen > i128::from(MAX_FEN) {
        return Err(AmountError::TooLarge);
    }
    i64::try_from(fen).map_err(|_| AmountError::TooLarge)
}

// ---------------------------------------------------------------------------------------------------------------
// Number grammar

/// A scanned amount (without context).
struct Amount {
    /// Fixed-point 元 (× SCALE), possibly saturated at CAP.
    value: i128,
    /// Index after the last consumed char.
    end: usize,
    /// Has a unit that cues money: 百 千 万 亿 w k, or a currency suffix.
    unit_cue: bool,
    /// Exactly one Arabic number and no Chinese numerals/units.
    plain: bool,
    /// The Arabic number used thousands separators.
    grouped: bool,
    decimal: bool,
    /// Integer digits of the last Arabic number.
    digits: usize,
    /// Arabic number with a leading zero ("0532").
    lead_zero: bool,
    /// "一块" without 钱: usually "together", not 1 元.
    together: bool,
}

impl Amount {
    /// Money cue from the number itself: a unit, or ≥ 1000 with thousands separators.
    fn cue(&self) -> bool {
        self.unit_cue || (self.plain && self.grouped && self.value >= 1000 * SCALE)
    }
}

struct Arabic {
    val: i128,
    end: usize,
    digits: usize,
    grouped: bool,
    decimal: bool,
    lead_zero: bool,
}

/// Arabic number at `i` (which is an ASCII digit): digits, optional thousands groups, optional decimals.
fn scan_arabic(t: &Chars, i: usize) -> Arabic {
    let mut v: i128 = 0;
    let mut j = i;
    while let Some(d) = digit(ch(t, j)) {
        v = add(mul(v, 10), d);
        j += 1;
    }
    let mut digits = j - i;
    let lead_zero = digits > 1 && ch(t, i) == '0';
    let mut grouped = false;
    if digits <= 3 {
        // ",ddd" groups: exactly three digits each.
        while ch(t, j) == ',' && (1..=3).all(|k| ch(t, j + k).is_ascii_digit()) && !ch(t, j + 4).is_ascii_digit() {
            for k in 1..=3 {
                v = add(mul(v, 10), digit(ch(t, j + k)).unwrap_or(0));
            }
            j += 4;
            digits += 3;
            grouped = true;
        }
    }
    let mut val = mul(v, SCALE);
    let mut decimal = false;
    if ch(t, j) == '.' && ch(t, j + 1).is_ascii_digit() {
        decimal = true;
        j += 1;
        let mut place = SCALE;
        while let Some(d) = digit(ch(t, j)) {
            place /= 10; // Reaches 0 after 12 digits: the rest cannot change the rounding.
            val = add(val, d * place);
            j += 1;
        }
    }
    Arabic { val, end: j, digits, grouped, decimal, lead_zero }
}

/// Decimals after 点 ("三点五万"): digits followed by a unit. Returns the fraction and the end.
fn cn_fraction(t: &Chars, mut j: usize) -> Option<(i128, usize)> {
    let from = j;
    let mut place = SCALE;
    let mut frac = 0;
    while let Some(d) = cn_digit(ch(t, j)).or_else(|| digit(ch(t, j))) {
        place /= 10;
        frac = add(frac, d * place);
        j += 1;
    }
    let k = skip_spaces(t, j);
    let u = ch(t, k);
    let unit = small_unit(u).is_some() || big_unit(u).is_some() || is_w(t, k) || matches!(u, '元' | '块' | '塊' | '圆');
    (j > from && unit).then_some((frac, j))
}

/// If spaces at `i` are followed by a unit, skip them.
fn space_before_unit(t: &Chars, i: usize) -> usize {
    let j = skip_spaces(t, i);
    let c = ch(t, j);
    if j > i && (small_unit(c).is_some() || big_unit(c).is_some() || is_w(t, j)) { j } else { i }
}

#[derive(Clone, Copy)]
struct Pending {
    val: i128,
    /// A single integer digit.
    single: bool,
    decimal: bool,
    /// Came right after a unit with no 零 in between (colloquial tail candidate).
    after_unit: bool,
}

/// Positional state of a Chinese-style number.
#[derive(Default)]
struct Places {
    /// Completed "… 亿" part.
    yi: i128,
    /// Completed "… 万" part below 亿.
    wan: i128,
    /// Current section below 万.
    sec: i128,
    /// Last small unit in the section (0 = none).
    sec_unit: i128,
    has_wan: bool,
    has_yi: bool,
    /// Last unit applied (0 = none).
    last_unit: i128,
    /// The previous token was a unit.
    just_unit: bool,
    /// 零 seen since the last unit.
    zero: bool,
    pending: Option<Pending>,
}

impl Places {
    /// Section value including the pending number, which is consumed.
    fn section(&mut self) -> Result<i128, AmountError> {
        let Some(p) = self.pending.take() else {
            return if self.zero { Err(AmountError::NotAnAmount) } else { Ok(self.sec) };
        };
        if p.single && p.after_unit && self.last_unit >= 10 {
            // Colloquial tail: 两万五 = 2万 + 5千.
            return Ok(add(self.sec, mul(p.val, self.last_unit / 10)));
        }
        let limit = if self.sec_unit != 0 { self.sec_unit } else { self.last_unit };
        if limit != 0 && (p.decimal || p.val >= mul(limit, SCALE)) {
            return Err(AmountError::NotAnAmount);
        }
        Ok(add(self.sec, p.val))
    }

    fn unit_done(&mut self, unit: i128) {
        self.last_unit = unit;
        self.just_unit = true;
        self.zero = false;
    }
}

/// The numeric core at `start`: Arabic and Chinese numerals with 十百千万亿 / w, decimals (. or 点).
/// Errors are structural (NotAnAmount); overflow saturates and is reported by `to_fen`.
fn scan_core(t: &Chars, start: usize) -> Result<Amount, AmountError> {
    use AmountError::NotAnAmount;
    let mut pl = Places::default();
    let mut out = Amount {
        value: 0,
        end: start,
        unit_cue: false,
        plain: false,
        grouped: false,
        decimal: false,
        digits: 0,
        lead_zero: false,
        together: false,
    };
    let mut arabic = 0u32;
    let mut chinese = false;
    let mut i = start;
    loop {
        let c = ch(t, i);
        if c.is_ascii_digit() {
            if pl.pending.is_some() || out.decimal {
                return Err(NotAnAmount);
            }
            let a = scan_arabic(t, i);
            if a.decimal && (pl.last_unit != 0 || pl.sec_unit != 0) {
                return Err(NotAnAmount); // Decimals only lead: "1万0.5" is nonsense.
            }
            pl.pending = Some(Pending {
                val: a.val,
                single: a.digits == 1 && !a.decimal,
                decimal: a.decimal,
                after_unit: pl.just_unit && !pl.zero,
            });
            pl.just_unit = false;
            arabic += 1;
            out.grouped |= a.grouped;
            out.decimal |= a.decimal;
            out.digits = a.digits;
            out.lead_zero = a.lead_zero;
            i = space_before_unit(t, a.end);
        } else if let Some(d) = cn_digit(c) {
            chinese = true;
            if out.decimal || pl.pending.is_some() {
                return Err(NotAnAmount);
            }
            if d == 0 && i != start {
                pl.zero = true; // Placeholder: 一千零五.
                pl.just_unit = false;
                i += 1;
                continue;
            }
            pl.pending =
                Some(Pending { val: d * SCALE, single: true, decimal: false, after_unit: pl.just_unit && !pl.zero });
            pl.just_unit = false;
            i = space_before_unit(t, i + 1);
        } else if let Some(u) = small_unit(c) {
            chinese = true;
            let coef = match pl.pending.take() {
                Some(p) if pl.sec_unit == 0 => p.val,
                Some(p) if !p.decimal && p.val < 10 * SCALE => p.val,
                None if u == 10 && pl.sec_unit == 0 && !pl.zero => SCALE, // 十 = 一十
                _ => return Err(NotAnAmount),
            };
            if pl.sec_unit != 0 && u >= pl.sec_unit {
                return Err(NotAnAmount);
            }
            pl.sec = add(pl.sec, mul(coef, u));
            pl.sec_unit = u;
            pl.unit_done(u);
            out.unit_cue |= u >= 100;
            i += 1;
        } else if let Some(b) = big_unit(c).or_else(|| (pl.pending.is_some() && is_w(t, i)).then_some(WAN)) {
            chinese = true;
            if pl.pending.is_none() && pl.sec_unit == 0 && !(b == YI && pl.has_wan) {
                return Err(NotAnAmount); // Nothing to multiply: "万", "5万万" (but 万亿 is a unit).
            }
            let s = pl.section()?;
            if b == WAN {
                if pl.has_wan || (pl.has_yi && s >= WAN * SCALE) {
                    return Err(NotAnAmount);
                }
                pl.wan = mul(s, WAN);
                pl.has_wan = true;
            } else {
                if pl.has_yi {
                    return Err(NotAnAmount);
                }
                pl.yi = mul(add(pl.wan, s), YI);
                pl.wan = 0;
                pl.has_wan = false;
                pl.has_yi = true;
            }
            pl.sec = 0;
            pl.sec_unit = 0;
            pl.unit_done(b);
            out.unit_cue = true;
            i += 1;
        } else if c == '点'
            && !out.decimal
            && !pl.has_wan
            && !pl.has_yi
            && (pl.pending.is_some() || pl.sec_unit != 0)
            && let Some((frac, j)) = cn_fraction(t, i + 1)
        {
            let base = pl.section()?;
            pl.pending = Some(Pending { val: add(base, frac), single: false, decimal: true, after_unit: false });
            pl.sec = 0;
            pl.sec_unit = 0;
            pl.last_unit = 0;
            pl.just_unit = false;
            out.decimal = true;
            chinese = true;
            i = space_before_unit(t, j);
        } else {
            break;
        }
    }
    if i == start {
        return Err(NotAnAmount);
    }
    let s = pl.section()?;
    if (pl.has_wan && s >= WAN * SCALE) || (pl.has_yi && add(pl.wan, s) >= YI * SCALE) {
        return Err(NotAnAmount);
    }
    out.value = add(add(pl.yi, pl.wan), s);
    out.end = i;
    out.plain = arabic == 1 && !chinese;
    Ok(out)
}

/// English multiplier word after a plain number: (factor, end, is a money cue).
fn multiplier(t: &Chars, i: usize) -> Option<(i128, usize, bool)> {
    let j = skip_spaces(t, i);
    let e = ascii_word_end(t, j);
    if e == j || ch(t, e).is_ascii_digit() {
        return None;
    }
    let is = |w: &str| word_is(t, j, e, w);
    if is("k") {
        Some((1_000, e, true))
    } else if is("thousand") {
        Some((1_000, e, false))
    } else if is("m") || is("mn") || is("mio") || is("million") {
        Some((1_000_000, e, false))
    } else if is("bn") || is("billion") {
        Some((1_000_000_000, e, false))
    } else {
        None
    }
}

/// Currency prefix at `i` (¥ ￥ RMB CNY 人民币): index after it.
fn currency_prefix(t: &Chars, i: usize) -> Option<usize> {
    if matches!(ch(t, i), '¥' | '￥') {
        return Some(i + 1);
    }
    if let Some(e) = match_at(t, i, "人民币") {
        return Some(e);
    }
    ["rmb", "cny"].iter().find_map(|p| match_at(t, i, p).filter(|&e| !ch(t, e).is_ascii_alphabetic()))
}

/// Currency prefix ending (spaces allowed) right before `s`: its start.
fn prefix_before(t: &Chars, s: usize) -> Option<usize> {
    let j = skip_spaces_back(t, s);
    if matches!(before(t, j), '¥' | '￥') {
        return j.checked_sub(1);
    }
    if let Some(k) = match_before(t, j, "人民币") {
        return Some(k);
    }
    ["rmb", "cny"].iter().find_map(|p| match_before(t, j, p).filter(|&k| !before(t, k).is_ascii_alphabetic()))
}

/// Currency suffix (spaces allowed) at `i`: (end, was a bare 块).
fn currency_suffix(t: &Chars, i: usize) -> Option<(usize, bool)> {
    let j = skip_spaces(t, i);
    let c = ch(t, j);
    let (mut e, kuai) = if matches!(c, '元' | '圆') {
        (match_at(t, j + 1, "人民币").unwrap_or(j + 1), false) // 叁万元人民币
    } else if matches!(c, '块' | '塊') {
        if ch(t, j + 1) == '钱' { (j + 2, false) } else { (j + 1, true) }
    } else if let Some(e) = match_at(t, j, "人民币") {
        (e, false)
    } else {
        let e = ascii_word_end(t, j);
        if !ch(t, e).is_ascii_digit() && ["rmb", "cny", "yuan"].iter().any(|w| word_is(t, j, e, w)) {
            (e, false)
        } else {
            return None;
        }
    };
    if ch(t, e) == '整' {
        e += 1;
    }
    Some((e, kuai))
}

/// Core number, then an English multiplier (plain numbers only), then a currency suffix.
fn scan_amount(t: &Chars, start: usize) -> Result<Amount, AmountError> {
    let mut a = scan_core(t, start)?;
    let core_end = a.end;
    if a.plain
        && let Some((m, e, cue)) = multiplier(t, a.end)
    {
        a.value = mul(a.value, m);
        a.end = e;
        a.unit_cue |= cue;
    }
    if let Some((e, kuai)) = currency_suffix(t, a.end) {
        a.together = kuai && core_end == start + 1 && ch(t, start) == '一';
        a.end = e;
        a.unit_cue = true;
    }
    Ok(a)
}

/// Why text after a parsed amount makes the whole phrase invalid.
fn leftover(t: &Chars, end: usize) -> AmountError {
    if range_after(t, end).is_some() || matches!(ch(t, skip_spaces(t, end)), '多' | '余' | '几' | '+') {
        AmountError::Ambiguous
    } else {
        AmountError::NotAnAmount
    }
}

/// A range connector after `e` followed by another number: the start of that number.
fn range_after(t: &Chars, e: usize) -> Option<usize> {
    let j = skip_spaces(t, e);
    let k = match ch(t, j) {
        '-' | '~' | '到' | '至' | '或' | '、' => j + 1,
        _ => {
            let w = ascii_word_end(t, j);
            if word_is(t, j, w, "to") { w } else { return None }
        }
    };
    let k = skip_spaces(t, k);
    (starts_number(ch(t, k)) || currency_prefix(t, k).is_some()).then_some(k)
}

/// A number, then a range connector, right before `s`.
fn range_before(t: &Chars, s: usize) -> bool {
    let j = skip_spaces_back(t, s);
    let k = if matches!(before(t, j), '-' | '~' | '到' | '至' | '或' | '、') {
        j.saturating_sub(1)
    } else {
        match match_before(t, j, "to") {
            Some(k) if !before(t, k).is_ascii_alphabetic() => k,
            _ => return false,
        }
    };
    let k = skip_spaces_back(t, k);
    let p = before(t, k);
    numeric(p)
        || matches!(p, '元' | '块' | '圆')
        || (matches!(p, 'k' | 'K' | 'w' | 'W' | 'm' | 'M') && before(t, k.saturating_sub(1)).is_ascii_digit())
}

/// Whether `i` continues a number that starts earlier (so it is not a candidate start).
fn continues_number(t: &Chars, i: usize) -> bool {
    let p = before(t, i);
    let pp = before(t, i.saturating_sub(1));
    numeric(p) || (matches!(p, ',' | '.') && pp.is_ascii_digit()) || (p == '点' && numeric(pp))
}

/// Skip a numeric run that failed to parse.
fn skip_run(t: &Chars, s: usize) -> usize {
    let mut j = s;
    while numeric(ch(t, j)) || (matches!(ch(t, j), ',' | '.') && ch(t, j + 1).is_ascii_digit()) {
        j += 1;
    }
    j.max(s + 1)
}

/// Money keyword (optionally + a linking word) before `s`, separated by spaces / ':' / '='.
fn keyword_before(t: &Chars, s: usize) -> bool {
    let seps_back = |mut j: usize| {
        while matches!(before(t, j), ' ' | ':' | '=') {
            j -= 1;
        }
        j
    };
    let keyword =
        |j: usize| words_before(t, j, KEYWORDS_ZH).next().is_some() || words_before(t, j, KEYWORDS_EN).next().is_some();
    let j = seps_back(s);
    keyword(j) || words_before(t, j, LINKS_ZH).chain(words_before(t, j, LINKS_EN)).any(|k| keyword(seps_back(k)))
}

/// Starts of the words of `list` (space-separated, lowercase) that end right before `j`; ASCII words must
/// not be glued to a preceding letter. Cheap when the char before `j` ends no word.
fn words_before<'a>(t: &'a Chars, j: usize, list: &'a str) -> impl Iterator<Item = usize> + 'a {
    let last = before(t, j).to_ascii_lowercase();
    let hopeless = last == '\0' || last == ' ' || !list.contains(last);
    list.split(' ')
        .take(if hopeless { 0 } else { usize::MAX })
        .filter_map(move |w| match_before(t, j, w).filter(|&b| !w.is_ascii() || !before(t, b).is_ascii_alphabetic()))
}

/// A counter, a time/date word or a foreign currency at `k`: the number is not a CNY amount.
fn quantity_after(t: &Chars, k: usize) -> bool {
    let (c, d) = (ch(t, k), ch(t, k + 1));
    let counter = COUNTERS.contains(c);
    // Words that start with a counter char but follow amounts: 5万年费, 3万分期, 12万单子, 5万月底.
    let not_counter = matches!(
        (c, d),
        ('年', '费' | '薪' | '框' | '度')
            | ('月', '底' | '初' | '中' | '内' | '费')
            | ('分', '期' | '成')
            | ('单', '子' | '价')
            | ('套', '餐')
            | ('条', '件')
    );
    let word = matches!(
        (c, d),
        ('小', '时')
            | ('公', '斤' | '里' | '顷')
            | ('平', '米' | '方')
            | ('毫' | '厘', '米')
            | ('美', '元' | '金')
            | ('港', '币' | '元')
            | ('欧' | '日', '元')
            | ('英', '镑')
    );
    let e = ascii_word_end(t, k);
    (counter && !not_counter) || word || (e > k && EN_STOP.split(' ').any(|w| word_is(t, k, e, w)))
}

enum Verdict {
    /// Amount in fen, start and end indices.
    Found(i64, usize, usize),
    /// Not an amount; resume scanning at this index.
    Skip(usize),
    /// A money-cued but unusable amount (range, vague, too large): give up.
    Stop,
}

/// Judge the candidate number starting at `s` in its context.
fn judge(t: &Chars, s: usize) -> Verdict {
    let Ok(a) = scan_amount(t, s) else {
        return Verdict::Skip(skip_run(t, s));
    };
    let e = a.end;
    let prefix = prefix_before(t, s);
    // The keyword look-behind is the costliest check: only run it when needed.
    let money = || a.cue() || prefix.is_some() || keyword_before(t, s);

    // Before: ids, versions, times, dates, ordinals, foreign currencies, negatives.
    if prefix.is_none() {
        let p = before(t, s);
        let pp = before(t, s.saturating_sub(1));
        if p.is_ascii_alphabetic()
            || matches!(p, '#' | '+' | '@' | '_' | '$' | '€' | '£' | '&' | '/' | '\\' | '第')
            || (p == '.' && pp.is_ascii_alphanumeric())
            || (p == ':' && pp.is_ascii_digit())
        {
            return Verdict::Skip(e);
        }
    }
    if range_before(t, s) {
        return if money() { Verdict::Stop } else { Verdict::Skip(e) };
    }
    if prefix.is_none() && before(t, s) == '-' {
        return Verdict::Skip(e); // Negative.
    }

    // After: glued letters/digits, dates, times, versions, percentages, ranges, vague tails, counters.
    let (n, nn) = (ch(t, e), ch(t, e + 1));
    // Separator + digit after a bare number: 12/3, 15:30, 1.2.3, 1,0000 (not "3万，5台").
    let bare_end = before(t, e).is_ascii_digit();
    if n.is_ascii_alphanumeric()
        || matches!(n, '%' | '‰' | '°' | '℃')
        || (bare_end && matches!(n, '/' | ':' | '.' | ',') && nn.is_ascii_digit())
    {
        return Verdict::Skip(e);
    }
    if matches!(n, '多' | '余' | '几' | '+') {
        return if money() { Verdict::Stop } else { Verdict::Skip(e) };
    }
    if let Some(k) = range_after(t, e) {
        let right = currency_prefix(t, k).is_some() || scan_amount(t, k).is_ok_and(|r| r.cue());
        return if right || money() { Verdict::Stop } else { Verdict::Skip(e) };
    }
    let k = skip_spaces(t, e);
    if quantity_after(t, k) || a.together {
        return Verdict::Skip(e);
    }

    // Phone numbers, long ids, zero-led numbers ("0532") unless explicitly money.
    let explicit = a.unit_cue || prefix.is_some();
    if !explicit && a.plain && !a.decimal && !a.grouped {
        let phone = a.digits == 11 && ch(t, s) == '1';
        if phone || a.digits >= 12 || a.lead_zero {
            return Verdict::Skip(e);
        }
    }
    if !money() {
        return Verdict::Skip(e);
    }
    // Keyword-only cue followed by an English word: "for 2 more", "price 5 each".
    if !explicit && !a.cue() && ch(t, k).is_ascii_alphabetic() {
        return Verdict::Skip(e);
    }
    match to_fen(a.value) {
        Ok(fen) => Verdict::Found(fen, prefix.unwrap_or(s), e),
        Err(_) => Verdict::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::AmountError::{Ambiguous, Negative, NotAnAmount, TooLarge};
    use super::*;

    const Y: i64 = 100; // fen per 元

    /// (input, expected fen). Inputs containing CJK characters count as Chinese forms.
    const PARSE_OK: &[(&str, i64)] = &[
        // Chinese units and numerals
        ("5万", 50_000 * Y),
        ("12.5万", 125_000 * Y),
        ("1.2万元", 12_000 * Y),
        ("0.5万", 5_000 * Y),
        ("5万元", 50_000 * Y),
        ("5万块", 50_000 * Y),
        ("5万块钱", 50_000 * Y),
        ("5万元整", 50_000 * Y),
        ("三千", 3_000 * Y),
        ("三千元", 3_000 * Y),
        ("3千", 3_000 * Y),
        ("两万", 20_000 * Y),
        ("两万五", 25_000 * Y),
        ("一万二", 12_000 * Y),
        ("三百万", 3_000_000 * Y),
        ("1.5亿", 150_000_000 * Y),
        ("三万五千", 35_000 * Y),
        ("十万", 100_000 * Y),
        ("十二万", 120_000 * Y),
        ("二十五万", 250_000 * Y),
        ("一百二十万", 1_200_000 * Y),
        ("两百五十万", 2_500_000 * Y),
        ("两百五", 250 * Y),
        ("三千五", 3_500 * Y),
        ("一亿五", 150_000_000 * Y),
        ("一亿二千万", 120_000_000 * Y),
        ("1亿5000万", 150_000_000 * Y),
        ("一千零五十万", 10_500_000 * Y),
        ("一千零五", 1_005 * Y),
        ("一万零五", 10_005 * Y),
        ("5千万", 50_000_000 * Y),
        ("1.5千万", 15_000_000 * Y),
        ("3万5", 35_000 * Y),
        ("3万5000", 35_000 * Y),
        ("10万5", 105_000 * Y),
        ("1万2千5", 12_500 * Y),
        ("5万5千元", 55_000 * Y),
        ("三千五百万", 35_000_000 * Y),
        ("三点五万", 35_000 * Y),
        ("3点5万", 35_000 * Y),
        ("十点五万", 105_000 * Y),
        ("一百二十点五万", 1_205_000 * Y),
        ("35.5元", 3_550),
        ("１２万", 120_000 * Y),
        ("１．５万", 15_000 * Y),
        ("３５，０００元", 35_000 * Y),
        ("肆佰叁拾万", 4_300_000 * Y),
        ("壹拾万元整", 100_000 * Y),
        ("贰万伍仟", 25_000 * Y),
        ("伍仟元", 5_000 * Y),
        ("兩萬", 20_000 * Y),
        ("一百块", 100 * Y),
        ("十", 10 * Y),
        ("二十", 20 * Y),
        ("零", 0),
        ("一千亿", MAX_FEN),
        ("1000亿", MAX_FEN),
        ("人民币5万元", 50_000 * Y),
        ("约5万", 50_000 * Y),
        ("5万左右", 50_000 * Y),
        ("5 万", 50_000 * Y),
        ("5万 元", 50_000 * Y),
        ("50k元", 50_000 * Y),
        // Arabic / English
        ("5w", 50_000 * Y),
        ("5W", 50_000 * Y),
        ("3.5w", 35_000 * Y),
        ("3w5", 35_000 * Y),
        ("50k", 50_000 * Y),
        ("50K", 50_000 * Y),
        ("50 k", 50_000 * Y),
        ("1.2m", 1_200_000 * Y),
        ("2M", 2_000_000 * Y),
        ("1.5 million", 1_500_000 * Y),
        ("2bn", 2_000_000_000 * Y),
        ("120K RMB", 120_000 * Y),
        ("¥35,000", 35_000 * Y),
        ("￥35,000", 35_000 * Y),
        ("¥ 1,234.56", 123_456),
        ("35,000", 35_000 * Y),
        ("35,000.50", 3_500_050),
        ("1,000,000", 1_000_000 * Y),
        ("RMB 35000", 35_000 * Y),
        ("rmb35000", 35_000 * Y),
        ("35000 rmb", 35_000 * Y),
        ("CNY 35000", 35_000 * Y),
        ("35000 yuan", 35_000 * Y),
        ("35000", 35_000 * Y),
        ("  35000\n", 35_000 * Y),
        ("0.5", 50),
        ("0", 0),
        ("007", 7 * Y),
        ("+5000", 5_000 * Y),
        ("1.2345", 123),
        ("1.235", 124),
        ("0.005", 1),
        ("0.004", 0),
        ("0.1234567890123456789", 12),
        ("100000000000", MAX_FEN),
    ];

    const PARSE_ERR: &[(&str, AmountError)] = &[
        ("八到九百亿", Ambiguous),
        ("5-6万", Ambiguous),
        ("5万到6万", Ambiguous),
        ("5万-6万", Ambiguous),
        ("5~6万", Ambiguous),
        ("5至6万", Ambiguous),
        ("50k to 60k", Ambiguous),
        ("5万多", Ambiguous),
        ("5万余元", Ambiguous),
        ("5w+", Ambiguous),
        ("-5万", Negative),
        ("－5万", Negative),
        ("负5万", Negative),
        ("-¥35,000", Negative),
        ("¥-35,000", Negative),
        ("-9999亿", Negative),
        ("1001亿", TooLarge),
        ("1000.01亿", TooLarge),
        ("100000000001", TooLarge),
        ("一万亿", TooLarge),
        ("5万亿", TooLarge),
        ("99999999999999999999999999999999999999999999", TooLarge),
        ("", NotAnAmount),
        ("   ", NotAnAmount),
        ("abc", NotAnAmount),
        ("-abc", NotAnAmount),
        ("5万万", NotAnAmount),
        ("万万万", NotAnAmount),
        ("万", NotAnAmount),
        ("千万", NotAnAmount),
        (".", NotAnAmount),
        (".5", NotAnAmount),
        ("5.", NotAnAmount),
        ("$500", NotAnAmount),
        ("5万美元", NotAnAmount),
        ("1,2", NotAnAmount),
        ("35,00", NotAnAmount),
        ("1,0000", NotAnAmount),
        ("一二三", NotAnAmount),
        ("三百五百", NotAnAmount),
        ("一千零", NotAnAmount),
        ("3万12千", NotAnAmount),
        ("1万0.5", NotAnAmount),
        ("1.5万3", NotAnAmount),
        ("1亿50000万", NotAnAmount),
        ("5ww", NotAnAmount),
        ("5kg", NotAnAmount),
        ("3点", NotAnAmount),
        ("12/3", NotAnAmount),
        ("#12", NotAnAmount),
        ("1.2.3", NotAnAmount),
        ("5 000", NotAnAmount),
    ];

    fn is_cjk(s: &str) -> bool {
        s.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))
    }

    #[test]
    fn parse_table() {
        let chinese = PARSE_OK.iter().filter(|(s, _)| is_cjk(s)).count();
        assert!(PARSE_OK.len() + PARSE_ERR.len() >= 80, "{} cases", PARSE_OK.len() + PARSE_ERR.len());
        assert!(chinese >= 45, "{chinese} Chinese forms");
        let mut bad = Vec::new();
        for &(input, fen) in PARSE_OK {
            if parse_amount(input) != Ok(fen) {
                bad.push(format!("{input:?}: got {:?}, want Ok({fen})", parse_amount(input)));
            }
        }
        for &(input, err) in PARSE_ERR {
            if parse_amount(input) != Err(err) {
                bad.push(format!("{input:?}: got {:?}, want Err({err:?})", parse_amount(input)));
            }
        }
        assert!(bad.is_empty(), "{} failures:\n{}", bad.len(), bad.join("\n"));
    }

    /// (message, expected (fen, matched text)).
    const FIND: &[(&str, Option<(i64, &str)>)] = &[
        ("商机 #12 报价 金额 12万", Some((120_000 * Y, "12万"))),
        ("deal #12 stage proposal amount 120k", Some((120_000 * Y, "120k"))),
        ("线索 青岛某某机械 王经理 13800000000 来源 展会", None),
        ("赢单 #12 最终 35,000", Some((35_000 * Y, "35,000"))),
        ("下周三下午3点 再跟进", None),
        ("二期需求", None),
        ("买了3台", None),
        ("12月3号 拜访客户", None),
        ("约了12/3 见面", None),
        ("有3个客户在谈", None),
        ("5天后回复", None),
        ("联系 +86 138 0000 0000", None),
        ("电话+8613800000000", None),
        ("座机 0532-88888888", None),
        ("客户说35000可以", None),
        ("客户预算大概5万左右", Some((50_000 * Y, "5万"))),
        ("报价：¥35,000，含税", Some((35_000 * Y, "¥35,000"))),
        ("签了1.2亿的大单", Some((120_000_000 * Y, "1.2亿"))),
        ("成交 35000", Some((35_000 * Y, "35000"))),
        ("price: 3500", Some((3_500 * Y, "3500"))),
        ("budget is 50k", Some((50_000 * Y, "50k"))),
        ("wants it for 5000", Some((5_000 * Y, "5000"))),
        ("合同额：肆佰叁拾万元", Some((4_300_000 * Y, "肆佰叁拾万元"))),
        ("两万五搞定了", Some((25_000 * Y, "两万五"))),
        ("RMB 35000 已付", Some((35_000 * Y, "RMB 35000"))),
        ("第3期 回款 3万", Some((30_000 * Y, "3万"))),
        ("V2版本 报价 2.5万", Some((25_000 * Y, "2.5万"))),
        ("５万的单子", Some((50_000 * Y, "５万"))),
        ("3w5 成交", Some((35_000 * Y, "3w5"))),
        ("2024-12-03 报价5万", Some((50_000 * Y, "5万"))),
        ("15:30 开会 金额 3000", Some((3_000 * Y, "3000"))),
        ("订单号20240101，金额8千", Some((8_000 * Y, "8千"))),
        ("ID 1234567 price 12,000", Some((12_000 * Y, "12,000"))),
        ("年费12万，分期3次", Some((120_000 * Y, "12万"))),
        ("5万元/台，共3台", Some((50_000 * Y, "5万元"))),
        ("amount 1.2m", Some((1_200_000 * Y, "1.2m"))),
        ("报价3万，5台", Some((30_000 * Y, "3万"))),
        ("叁万伍仟元人民币整", Some((35_000 * Y, "叁万伍仟元人民币整"))),
        ("5、6万都行", None),
        ("报价为 30000，下周签", Some((30_000 * Y, "30000"))),
        ("报价5-6万", None),
        ("预算5万到6万，定金1万", None),
        ("八到九百亿", None),
        ("50k to 60k", None),
        ("5万多的单子，定金1万", None),
        ("报价 2000亿", None),
        ("打8折", None),
        ("增长20%", None),
        ("一百个客户", None),
        ("下单5万台", None),
        ("for 20 users", None),
        ("looking for 2 more leads", None),
        ("我们一块去吃饭", None),
        ("千万别忘了", None),
        ("万一不行再说", None),
        ("十一月再说", None),
        ("下午3点5分到", None),
        ("price $5k", None),
        ("5万美元", None),
        ("跑了5km", None),
        ("v1.2.3 发布", None),
        ("", None),
    ];

    #[test]
    fn find_table() {
        assert!(FIND.len() >= 25);
        let mut bad = Vec::new();
        for &(msg, want) in FIND {
            let got = find_amount(msg);
            let got_view = got.clone().map(|(fen, r)| (fen, msg.get(r).unwrap_or("<bad range>")));
            if got_view != want {
                bad.push(format!("{msg:?}: got {got_view:?}, want {want:?}"));
            }
        }
        assert!(bad.is_empty(), "{} failures:\n{}", bad.len(), bad.join("\n"));
    }

    #[test]
    fn format_cases() {
        let zh = [
            (0, "0元"),
            (5, "0.05元"),
            (3_550, "35.50元"),
            (350_000, "3,500元"),
            (999_999, "9,999.99元"),
            (1_000_000, "1万"),
            (3_500_000, "3.5万"),
            (12_000_000, "12万"),
            (12_500_000, "12.5万"),
            (12_345_000, "12.35万"),
            (12_050_000, "12.05万"),
            (120_000_000, "120万"),
            (9_999_990_000, "9999.99万"),
            (9_999_995_000, "1亿"),
            (12_000_000_000, "1.2亿"),
            (12_345_678_900, "1.23亿"),
            (MAX_FEN, "1000亿"),
            (-3_500_000, "-3.5万"),
            (-3_550, "-35.50元"),
        ];
        for (fen, want) in zh {
            assert_eq!(format_zh(fen), want, "format_zh({fen})");
        }
        let en = [
            (0, "¥0"),
            (3_550, "¥35.50"),
            (12_000_000, "¥120,000"),
            (3_500_000, "¥35,000"),
            (123_456_789, "¥1,234,567.89"),
            (MAX_FEN, "¥100,000,000,000"),
            (-3_550, "-¥35.50"),
        ];
        for (fen, want) in en {
            assert_eq!(format_en(fen), want, "format_en({fen})");
        }
        // Extremes must not panic.
        assert!(format_zh(i64::MIN).starts_with('-'));
        assert!(format_en(i64::MAX).starts_with('¥'));
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// What format_zh displays, rounded half-up to its precision (fen < 1万元 are exact).
    fn displayed(v: i64) -> (i64, i64) {
        if v < 1_000_000 {
            return (v, 1);
        }
        let w = (v + 5_000) / 10_000;
        if w < 1_000_000 { (w * 10_000, 10_000) } else { ((v + 50_000_000) / 100_000_000 * 100_000_000, 100_000_000) }
    }

    /// parse_amount(format_zh(v)) == v rounded to the displayed precision (100 元 below 1亿, 100万元 above),
    /// so it is exactly v whenever v is a multiple of that step; format_en round-trips exactly.
    #[test]
    fn round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut exact = 0;
        for n in 0..100_000u64 {
            let digits = rng.next() % 14; // log-uniform-ish magnitudes up to MAX_FEN
            let mut v = i64::try_from(rng.next() % 10u64.pow(u32::try_from(digits).unwrap_or(0))).unwrap_or(0);
            if n % 3 == 0 {
                v -= v % 10_000; // a third are whole hundreds of 元
            }
            let v = v.min(MAX_FEN);
            let zh = format_zh(v);
            let (want, step) = displayed(v);
            assert_eq!(parse_amount(&zh), Ok(want), "v={v} zh={zh}");
            assert!((want - v).abs() * 2 <= step, "v={v} zh={zh}");
            if v % step == 0 {
                assert_eq!(want, v);
                exact += 1;
            }
            let en = format_en(v);
            assert_eq!(parse_amount(&en), Ok(v), "v={v} en={en}");
            assert_eq!(find_amount(&format!("成交 {en} 了")).map(|x| x.0), Some(v), "en={en}");
        }
        assert!(exact > 30_000, "{exact} exact round trips");
    }

    fn check_invariants(s: &str) {
        if let Ok(v) = parse_amount(s) {
            assert!((0..=MAX_FEN).contains(&v), "{s:?} → {v}");
        }
        if let Some((v, r)) = find_amount(s) {
            assert!((0..=MAX_FEN).contains(&v), "{s:?} → {v}");
            let sub = s.get(r.clone()).unwrap_or_else(|| panic!("{s:?}: bad range {r:?}"));
            assert!(!sub.is_empty(), "{s:?}: empty range");
            assert_eq!(parse_amount(sub), Ok(v), "{s:?}: found {sub:?}");
        }
    }

    #[test]
    fn no_panic_on_weird_input() {
        let nines = format!("{}万", "9".repeat(10_000));
        let ones = "1".repeat(10_000);
        let yis = "一".repeat(10_000);
        let commas = "5,".repeat(5_000);
        let spaces = format!("5{}万", " ".repeat(10_000));
        let mixed = "5万-".repeat(3_000);
        let weird = [
            "",
            ".",
            "．",
            "万万万",
            "点",
            "¥",
            "RMB",
            "-",
            "+",
            "负",
            "5万-",
            "到",
            "😀5万😀",
            "5😀万",
            "\u{0}5万\u{0}",
            "\u{7}\u{1b}[31m5万",
            "\r\n\t",
            "e\u{301}5万",
            "\u{FEFF}5万",
            "１２３４５６７８９０万",
            "٣٤٥万",
            "零零零",
            "十十十",
            "一亿亿",
            "5e10",
            "0x10",
            "NaN",
            "∞万",
            "9223372036854775807",
            "-9223372036854775808",
            "0.00000000000000000000000000000000000000000001万",
            nines.as_str(),
            ones.as_str(),
            yis.as_str(),
            commas.as_str(),
            spaces.as_str(),
            mixed.as_str(),
        ];
        for s in weird {
            check_invariants(s);
        }
        assert_eq!(parse_amount(&nines), Err(TooLarge));
        assert_eq!(find_amount(&nines), None);

        // Random strings over an alphabet of every char the scanner cares about.
        let alphabet: Vec<char> = "0159一二两三十百千万亿零〇点.,，．元块钱kKwWmM bn-~到至+#/:%多余个台月号期¥￥RMBrmbyuan报价金额预算for \n😀\u{0}１万"
            .chars()
            .collect();
        let mut rng = Rng(42);
        for _ in 0..30_000 {
            let len = rng.next() % 16;
            let s: String = (0..len)
                .map(|_| alphabet.get(usize::try_from(rng.next() % alphabet.len() as u64).unwrap_or(0)).copied())
                .map(|c| c.unwrap_or('?'))
                .collect();
            check_invariants(&s);
        }
    }

    #[test]
    #[ignore = "timing: cargo test --release -- --ignored --nocapture"]
    fn timing_find_amount() {
        use std::hint::black_box;
        use std::time::Instant;
        let msgs = [
            "商机 #12 报价 金额 12万，下周三下午3点 再跟进",
            "deal #12 stage proposal amount 120k",
            "线索 青岛某某机械 王经理 13800000000 来源 展会",
        ];
        for m in msgs {
            let start = Instant::now();
            for _ in 0..1_000_000 {
                black_box(find_amount(black_box(m)));
            }
            let el = start.elapsed();
            println!("1,000,000 × find_amount({m:?}): {el:?} ({:.0} ns/call)", el.as_nanos() as f64 / 1e6);
        }
        let start = Instant::now();
        for _ in 0..1_000_000 {
            let _ = black_box(parse_amount(black_box("一百二十万")));
        }
        println!("1,000,000 × parse_amount(\"一百二十万\"): {:?}", start.elapsed());
    }
}
