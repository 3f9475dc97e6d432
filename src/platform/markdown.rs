//! Chat markdown: each platform's dialect and size limit, and splitting long text into messages
//! between sections or lines, never inside a line.

/// A chat platform's markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// WeCom app messages: `markdown.content` ≤ 2,048 bytes; `#` headings, `**bold**`,
    /// `<font color="info|comment|warning">`.
    WeCom,
    /// WeCom group robots: as the app but ≤ 4,096 bytes.
    WeComRobot,
    /// DingTalk `markdown {title, text}`: a blank line between lines (a single `\n` is folded
    /// into the paragraph). The documented size limit is not stated; 5,000 bytes stays well
    /// inside what robots accept.
    DingTalk,
    /// Feishu card `lark_md`: no headings (bold instead), `<font color='red'>`; a card may be
    /// 30 KB of JSON, so 20,000 bytes of text leaves room for the envelope.
    Feishu,
    /// The console and plain text: no markup, no limit.
    Plain,
}

impl Dialect {
    pub fn limit_bytes(self) -> usize {
        match self {
            Dialect::WeCom => 2048,
            Dialect::WeComRobot => 4096,
            Dialect::DingTalk => 5000,
            Dialect::Feishu => 20_000,
            Dialect::Plain => usize::MAX,
        }
    }

    /// The dialect of an outbox target's platform.
    pub fn for_platform(platform: &str) -> Self {
        match platform {
            crate::platform::wecom::PLATFORM => Dialect::WeCom,
            crate::outbox::dispatch::WECOM_ROBOT => Dialect::WeComRobot,
            crate::platform::dingtalk::PLATFORM => Dialect::DingTalk,
            crate::platform::feishu::PLATFORM => Dialect::Feishu,
            _ => Dialect::Plain,
        }
    }

    pub fn title(self, s: &str) -> String {
        match self {
            Dialect::WeCom | Dialect::WeComRobot | Dialect::DingTalk => format!("### {s}"),
            Dialect::Feishu => format!("**{s}**"),
            Dialect::Plain => format!("【{s}】"),
        }
    }

    pub fn bold(self, s: &str) -> String {
        match self {
            Dialect::Plain => s.to_string(),
            _ => format!("**{s}**"),
        }
    }

    /// Something that needs action.
    pub fn warn(self, s: &str) -> String {
        match self {
            Dialect::WeCom | Dialect::WeComRobot => format!("<font color=\"warning\">{s}</font>"),
            Dialect::Feishu => format!("<font color='red'>{s}</font>"),
            Dialect::DingTalk => format!("**{s}**"),
            Dialect::Plain => s.to_string(),
        }
    }

    /// Something good.
    pub fn good(self, s: &str) -> String {
        match self {
            Dialect::WeCom | Dialect::WeComRobot => format!("<font color=\"info\">{s}</font>"),
            Dialect::Feishu => format!("<font color='green'>{s}</font>"),
            Dialect::DingTalk | Dialect::Plain => s.to_string(),
        }
    }

    pub fn line_sep(self) -> &'static str {
        match self {
            Dialect::DingTalk => "\n\n",
            _ => "\n",
        }
    }

    pub fn section_sep(self) -> &'static str {
        "\n\n"
    }
}

/// A titled block of lines; blocks are kept together in one message when they fit.
pub struct Section {
    pub lines: Vec<String>,
}

/// Joins sections into messages of at most the dialect's limit. When a digest needs several
/// messages, each after the first starts with `header (k/n)`.
pub fn assemble(d: Dialect, header: &str, sections: Vec<Section>) -> Vec<String> {
    let limit = d.limit_bytes();
    // Room for the continuation header, so adding it never breaks the limit.
    let reserve = if limit == usize::MAX { 0 } else { header.len() + 32 };
    let budget = limit.saturating_sub(reserve).max(64);
    let mut chunks: Vec<String> = Vec::new();
    let mut cur = String::new();
    let push_line = |cur: &mut String, chunks: &mut Vec<String>, line: &str, sep: &str| {
        let line = fit_line(line, budget);
        if !cur.is_empty() && cur.len() + sep.len() + line.len() > budget {
            chunks.push(std::mem::take(cur));
        }
        if !cur.is_empty() {
            cur.push_str(sep);
        }
        cur.push_str(&line);
    };
    for s in sections.into_iter().filter(|s| !s.lines.is_empty()) {
        let text = s.lines.join(d.line_sep());
        if !cur.is_empty() && cur.len() + d.section_sep().len() + text.len() > budget && text.len() <= budget {
            // The section fits a message of its own: start one rather than split it.
            chunks.push(std::mem::take(&mut cur));
        }
        let mut first = true;
        for line in &s.lines {
            let sep = if first { d.section_sep() } else { d.line_sep() };
            first = false;
            push_line(&mut cur, &mut chunks, line, sep);
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    let n = chunks.len();
    if n > 1 {
        for (i, c) in chunks.iter_mut().enumerate().skip(1) {
            *c = format!("{}{}{c}", d.bold(format!("{header} ({}/{n})", i + 1).trim()), d.section_sep());
        }
    }
    chunks
}

/// A line longer than a whole message (only a pathological one) is cut at a character boundary.
fn fit_line(line: &str, budget: usize) -> String {
    if line.len() <= budget {
        return line.to_string();
    }
    let mut end = budget.saturating_sub(3);
    while end > 0 && !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// A bot reply as a plain text message: the `**` of its bold would show as asterisks.
pub fn plain_text(text: &str) -> String {
    text.replace("**", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, width: usize) -> Section {
        Section { lines: (0..n).map(|i| format!("- {i:04} {}", "客".repeat(width))).collect() }
    }

    #[test]
    fn assemble_keeps_every_line_whole_and_within_the_limit() {
        for d in [Dialect::WeCom, Dialect::WeComRobot, Dialect::DingTalk, Dialect::Feishu] {
            let sections = vec![lines(3, 10), lines(600, 30), lines(5, 5)];
            let want: Vec<String> = sections.iter().flat_map(|s| s.lines.clone()).collect();
            let chunks = assemble(d, "团队日报 11-23", sections);
            assert!(chunks.len() > 1, "{d:?} needs several messages");
            for c in &chunks {
                assert!(c.len() <= d.limit_bytes(), "{d:?}: {} > {}", c.len(), d.limit_bytes());
            }
            // Every line arrives, whole and in order.
            let got: Vec<&str> = chunks.iter().flat_map(|c| c.split('\n')).filter(|l| l.starts_with("- ")).collect();
            assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>(), "{d:?}");
            assert!(chunks[1].contains(&format!("(2/{})", chunks.len())), "{}", chunks[1]);
        }
    }

    #[test]
    fn a_section_that_fits_a_message_of_its_own_is_not_split() {
        let b = Section { lines: (0..10).map(|i| format!("+ {i} 第二节")).collect() };
        let chunks = assemble(Dialect::WeCom, "日报", vec![lines(45, 12), b]);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert_eq!(chunks[1].matches("第二节").count(), 10, "the second section moved whole: {}", chunks[1]);
        assert!(!chunks[0].contains("第二节"));
    }

    #[test]
    fn an_overlong_line_is_cut_at_a_character_boundary() {
        let line = "海".repeat(1000);
        let out = fit_line(&line, 100);
        assert!(out.len() <= 100 && out.ends_with('…'));
    }
}
