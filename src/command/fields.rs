//! A message's argument text, taken apart field by field. Each `take_*` removes what it
//! recognised, so what is left at the end is free text (a title, a name, content).

use std::ops::Range;

use chrono::DateTime;
use chrono_tz::Tz;

use super::refs::halfwidth;
use super::when::{self, When};
use super::{amount, is_sep};

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
                } else if let Some(value) = norm.strip_prefix(key) {
                    // Chinese keys glue to their value: 来源展会, 等级A.
                    let value = value.trim_start_matches(['=', ':']);
                    if !value.is_empty() && key.chars().any(super::is_cjk) {
                        let start = tok.len() - value.len();
                        if let Some(v) = accept(tok.get(start..).unwrap_or_default()) {
                            self.cut(range.clone());
                            return Some(v);
                        }
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

    pub fn raw(&self) -> &str {
        &self.text
    }
}
