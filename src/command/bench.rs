//! `chatcrm bench parse`: parser throughput on one core over the bot-commands examples, and the
//! worst single-parse time over adversarial input up to the HTTP body limit.

use std::time::{Duration, Instant};

use chrono::TimeZone;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ParseBench {
    pub corpus_messages: usize,
    pub parsed: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub adversarial_inputs: usize,
    pub adversarial_max_bytes: usize,
    pub adversarial_max_ns: u64,
}

/// A deterministic generator so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Random text: CJK, ASCII, digits, full-width forms, separators, control characters, emoji,
/// and runs of command and time words, which are the parser's slow paths if any.
fn adversarial(rng: &mut Rng, len: usize) -> String {
    const PIECES: &[&str] = &[
        "拜访",
        "下周三",
        "下午3点",
        "12万",
        "#12",
        "@李雷",
        "，",
        "：",
        " ",
        "明天",
        "月底",
        "5w",
        "¥35,000",
        "再跟进",
        "提醒",
        "商机",
        "a",
        "9",
        "\u{0}",
        "\u{202e}",
        "🎉",
        "１２",
        "万",
        "点",
        "号",
        "周",
        "下下周",
        "第",
        "/",
    ];
    let mut s = String::with_capacity(len + 8);
    while s.len() < len {
        match rng.next() % 4 {
            0 => s.push_str(PIECES[(rng.next() % PIECES.len() as u64) as usize]),
            1 => s.push(char::from_u32(0x4E00 + (rng.next() % 0x5000) as u32).unwrap_or('中')),
            2 => s.push(char::from_u32((rng.next() % 0x3000) as u32).unwrap_or('x')),
            _ => s.push(char::from(b'0' + (rng.next() % 10) as u8)),
        }
    }
    s
}

pub fn run(duration: Duration, body_limit: usize) -> ParseBench {
    let now = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 24, 10, 0, 0)
        .single()
        .unwrap_or_else(|| chrono_tz::Asia::Shanghai.from_utc_datetime(&chrono::NaiveDateTime::default()));
    let corpus: Vec<&str> =
        super::spec::specs().iter().flat_map(|s| s.examples.iter().map(|e| e.text.as_str())).collect();
    // Warm the trigger table and caches.
    for m in &corpus {
        let _ = std::hint::black_box(super::parse(m, now));
    }
    let mut samples = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    let mut parsed = 0u64;
    while start.elapsed() < duration {
        for m in &corpus {
            let t = Instant::now();
            let _ = std::hint::black_box(super::parse(std::hint::black_box(m), now));
            let ns = t.elapsed().as_nanos() as u64;
            if samples.len() < (1 << 20) {
                samples.push(ns);
            }
            parsed += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    samples.sort_unstable();
    let pct = |p: f64| samples.get(((samples.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut adversarial_max_ns = 0;
    let sizes = [16, 256, 4096, 65_536, body_limit];
    let mut count = 0;
    for &size in &sizes {
        for _ in 0..40 {
            let input = adversarial(&mut rng, size);
            let t = Instant::now();
            let _ = std::hint::black_box(super::parse(&input, now));
            adversarial_max_ns = adversarial_max_ns.max(t.elapsed().as_nanos() as u64);
            count += 1;
        }
    }
    ParseBench {
        corpus_messages: corpus.len(),
        parsed,
        seconds,
        messages_per_second: parsed as f64 / seconds.max(1e-9),
        p50_ns: pct(0.5),
        p99_ns: pct(0.99),
        max_ns: samples.last().copied().unwrap_or(0),
        adversarial_inputs: count,
        adversarial_max_bytes: body_limit,
        adversarial_max_ns,
    }
}
