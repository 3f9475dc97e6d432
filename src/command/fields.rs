//! A message's argument text, taken apart field by field. Each `take_*` removes what it
//! recognised, so what is left at the end is free text (a title, a name, content).

use std::ops::Range;

use chrono::DateTime;
use chrono_tz::Tz;

use super::refs::halfwidth;
use super::when::{self, When};
use super::{amount, is_sep};

/// How far after a key word (预计, close by) its time expression may reach.
const TIME_WINDOW_CHARS: usize = 40;

pub struct Fields {
    text: String,
}

impl Fields {
    pub fn new(text: &str) -> Self {
        Self { text: text.to_string() }
    }

    pub fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }

    /// What is left, separators trimmed.
    pub fn rest(&self) -> &str {
        self.text.trim_matches(is_sep)
    }

    fn cut(&mut self, range: Range<usize>) -> String {
        let taken = self.text.get(range.clone()).unwrap_or_default().to_string();
        if self.text.is_char_boundary(range.start) && self.text.is_char_boundary(range.end) {
            self.text.replace_range(range, " ");
        }
        taken
    }

    /// Removes and returns the first token for which `f` gives a value.
    pub fn take_token<T>(&mut self, f: impl Fn(&str) -> Option<T>) -> Option<T> {
        let (range, value) = self.spans().into_iter().find_map(|(r, tok)| f(tok).map(|v| (r, v)))?;
        self.cut(range);
        Some(value)
    }

    /// A record reference at the start of a token that goes on (`#34给@李雷`): removes only the
    /// reference and returns its number.
    pub fn take_ref_head(&mut self, prefixes: &[&str]) -> Option<i64> {
        let (start, id, len) = self
            .spans()
            .into_iter()
            .find_map(|(r, tok)| super::refs::record_ref_head(tok, prefixes).map(|(id, len)| (r.start, id, len)))?;
        self.cut(start..start + len);
        Some(id)
    }

    /// Removes and returns the first token, whatever it is.
    pub fn take_first(&mut self) -> Option<String> {
        let (range, _) = self.spans().into_iter().next()?;
        Some(self.cut(range).trim().to_string())
    }

    /// Byte spans of the tokens.
    fn spans(&self) -> Vec<(Range<usize>, &str)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in self.text.char_indices() {
            if is_sep(c) {
                if let Some(s) = start.take() {
                    out.push((s..i, &self.text[s..i]));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            out.push((s..self.text.len(), &self.text[s..]));
        }
        out
    }

    /// `key value` (or `key:value`, `key=value`, `keyvalue` for Chinese keys): removes both and
    /// returns the value token, when `accept` takes it.
    pub fn take_keyed<T>(&mut self, keys: &[&str], accept: impl Fn(&str) -> Option<T>) -> Option<T> {
        let spans: Vec<(Range<usize>, String)> = self.spans().into_iter().map(|(r, t)| (r, t.to_string())).collect();
        for (i, (range, tok)) in spans.iter().enumerate() {
            let norm: String = tok.chars().map(halfwidth).collect::<String>().to_lowercase();
            for key in keys {
                if norm == *key {
                    if let Some((next_range, next)) = spans.get(i + 1)
                        && let Some(v) = accept(next)
                    {
                        let whole = range.start..next_range.end;
                        self.cut(whole);
                        return Some(v);
                    }
                } else if key.chars().any(super::is_cjk) && norm.starts_with(key) {
                    // Chinese keys glue to their value: 来源展会, 等级A. Cut the original token by
                    // characters: normalising (full-width, lower case) changes byte lengths.
                    let value: String = tok
                        .chars()
                        .skip(key.chars().count())
                        .skip_while(|c| matches!(halfwidth(*c), '=' | ':'))
                        .collect();
                    if !value.is_empty()
                        && let Some(v) = accept(&value)
                    {
                        self.cut(range.clone());
                        return Some(v);
                    }
                }
            }
        }
        None
    }

    /// Removes a keyword standing alone (e.g. 团队, team); true when it was there.
    pub fn take_word(&mut self, words: &[&str]) -> bool {
        self.take_token(|t| {
            let n: String = t.chars().map(halfwidth).collect::<String>().to_lowercase();
            words.contains(&n.as_str()).then_some(())
        })
        .is_some()
    }

    /// Finds a time expression anywhere, removes it.
    pub fn take_time(&mut self, now: DateTime<Tz>) -> Option<When> {
        let (w, range) = when::find_time(&self.text, now)?;
        self.cut(range);
        Some(w)
    }

    /// The time expression's position without removing it (to split content around it).
    pub fn find_time(&self, now: DateTime<Tz>) -> Option<(When, Range<usize>)> {
        when::find_time(&self.text, now)
    }

    /// Finds a money amount anywhere, removes it (with a preceding 金额/amount keyword).
    pub fn take_amount(&mut self) -> Option<i64> {
        let (fen, range) = amount::find_amount(&self.text)?;
        self.cut(range);
        self.take_word(&["金额", "报价金额", "合同额", "amount", "价格", "price", "最终", "final", "金额为"]);
        Some(fen)
    }

    /// The text char by char with byte offsets, half-width and lowercased (for matching words).
    fn chars(&self) -> Vec<(usize, char)> {
        self.text.char_indices().map(|(i, c)| (i, halfwidth(c).to_ascii_lowercase())).collect()
    }

    fn byte_at(&self, chars: &[(usize, char)], i: usize) -> usize {
        chars.get(i).map_or(self.text.len(), |p| p.0)
    }

    /// Finds a phone number as people write it (`13800000000`, `139-0000-1111`,
    /// `+86 138 0000 2222`, `(0532) 8888-6666`, full-width digits), possibly spread over several
    /// space-separated groups, with an optional key word before it (电话, 手机, phone); removes
    /// both and returns the digits without the country code.
    pub fn take_phone(&mut self, keys: &[&str]) -> Option<String> {
        let cs = self.chars();
        let is_run = |c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')');
        let mut i = 0;
        while i < cs.len() {
            let c = cs[i].1;
            let prev = i.checked_sub(1).map(|j| cs[j].1);
            if !(c.is_ascii_digit() || c == '+' || c == '(') || prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < cs.len() && is_run(cs[j].1) {
                j += 1;
            }
            // Trailing spaces and dashes belong to what follows.
            while j > i && matches!(cs[j - 1].1, ' ' | '-') {
                j -= 1;
            }
            let run: String = cs[i..j].iter().map(|p| p.1).collect();
            let digits = run.chars().filter(char::is_ascii_digit).count();
            // 1200000元 is money, 2026-12-03 a date.
            let next = cs.get(j).map(|p| p.1);
            let glued_unit =
                next.is_some_and(|n| (n.is_alphanumeric() && !super::is_cjk(n)) || "万千百亿元块".contains(n));
            let date = run.split('-').count() == 3 && run.split('-').next().is_some_and(|y| y.len() == 4);
            if (7..=16).contains(&digits)
                && !glued_unit
                && !date
                && let Some(phone) = super::refs::phone(&run)
            {
                let mut k = i;
                while k > 0 && super::is_sep(cs[k - 1].1) {
                    k -= 1;
                }
                let key = keys
                    .iter()
                    .map(|key| key.chars().count())
                    .filter(|n| *n <= k && keys.iter().any(|key| key.chars().eq(cs[k - n..k].iter().map(|p| p.1))))
                    .max();
                let from = key.map_or(i, |n| k - n);
                let range = self.byte_at(&cs, from)..self.byte_at(&cs, j);
                self.cut(range);
                return Some(phone);
            }
            i = j.max(i + 1);
        }
        None
    }

    /// `key <time>`: a key word (预计, close by, expected) standing alone or glued to a time
    /// expression that follows it, possibly of several words (`close by Dec 31`); removes both.
    pub fn take_time_after(&mut self, keys: &[&str], now: DateTime<Tz>) -> Option<When> {
        let cs = self.chars();
        for key in keys {
            let key: Vec<char> = key.chars().collect();
            if key.is_empty() {
                continue;
            }
            let ascii = key.iter().all(char::is_ascii);
            for at in 0..cs.len().saturating_sub(key.len() - 1) {
                let end = at + key.len();
                if !key.iter().copied().eq(cs[at..end].iter().map(|p| p.1)) {
                    continue;
                }
                let before_ok = at == 0 || super::is_sep(cs[at - 1].1);
                let after_ok = !ascii || cs.get(end).is_none_or(|p| super::is_sep(p.1));
                if !before_ok || !after_ok {
                    continue;
                }
                let from = self.byte_at(&cs, end);
                let rest = &self.text[from..];
                let skip = rest.len() - rest.trim_start_matches(super::is_sep).len();
                // A time expression is short: looking at a window keeps this linear in the text.
                let window = &rest[skip..];
                let window = window.char_indices().nth(TIME_WINDOW_CHARS).map_or(window, |(i, _)| &window[..i]);
                if let Some((w, range)) = when::find_time(window, now)
                    && range.start == 0
                {
                    self.cut(self.byte_at(&cs, at)..from + skip + range.end);
                    return Some(w);
                }
            }
        }
        None
    }

    pub fn raw(&self) -> &str {
        &self.text
    }
}
