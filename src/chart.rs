//! PNG charts for chat: the sales funnel and each rep's activities, with Chinese labels.
//!
//! Pure rendering (no database): the caller fills a [`ChartInput`], [`render_png`] returns the PNG
//! bytes. Shapes are drawn with tiny-skia, text with ab_glyph from a CJK font embedded in the binary
//! (assets/fonts/ChatCRMSansSC-Regular.otf, a GB2312 subset of Noto Sans CJK SC), so rendering needs
//! no system fonts, no fontconfig and no C library.
//!
//! The picture is [`WIDTH`] pixels wide and as tall as its rows need; with at most [`MAX_REP_ROWS`]
//! reps it stays far below WeCom's 2 MB image limit (typically 30–80 KB). Empty sections say so
//! (暂无商机, 暂无活动记录) rather than leaving a blank. Text that does not fit is cut at a
//! character boundary and ends in "…".

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use tiny_skia::{Color, FillRule, Paint, PathBuilder, Pixmap, PremultipliedColorU8, Rect, Transform};

/// The embedded font (SIL OFL 1.1; see assets/fonts/README.md).
pub static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/ChatCRMSansSC-Regular.otf");

/// Width of every chart, in pixels.
pub const WIDTH: u32 = 800;
/// Reps shown at most; the others are summarised in one line ("…另有 N 人").
pub const MAX_REP_ROWS: usize = 30;
/// Funnel steps shown at most; more would not be a funnel any more.
pub const MAX_FUNNEL_STEPS: usize = 12;

/// One stage of the funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelStep {
    pub label: String,
    pub deals: u64,
    pub amount_fen: i64,
    /// % of deals reaching the next step; `None` for the last.
    pub conversion_pct: Option<f64>,
}

/// One rep's activities in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepBar {
    pub name: String,
    pub visits: u64,
    pub calls: u64,
    pub other: u64,
}

/// Everything one chart shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartInput {
    pub title: String,
    pub subtitle: String,
    pub funnel: Vec<FunnelStep>,
    pub reps: Vec<RepBar>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The embedded font could not be read (a broken build, not bad input).
    #[error("the embedded chart font cannot be read: {0}")]
    Font(String),
    /// The canvas could not be allocated.
    #[error("cannot allocate a {width}x{height} canvas")]
    Canvas { width: u32, height: u32 },
    #[error("PNG encoding failed: {0}")]
    Encode(String),
}

// Layout, in pixels.
const MARGIN: f32 = 32.0;
const TITLE_SIZE: f32 = 28.0;
const SUBTITLE_SIZE: f32 = 16.0;
const HEADING_SIZE: f32 = 20.0;
const TEXT_SIZE: f32 = 17.0;
const SMALL_SIZE: f32 = 14.0;
const STEP_HEIGHT: f32 = 42.0;
/// Between two funnel bars, where the conversion rate goes.
const STEP_GAP: f32 = 26.0;
const REP_ROW: f32 = 30.0;
const REP_BAR_HEIGHT: f32 = 18.0;
const NAME_COLUMN: f32 = 120.0;
const PLACEHOLDER_HEIGHT: f32 = 64.0;

type Rgb = (u8, u8, u8);
const BACKGROUND: Rgb = (255, 255, 255);
const INK: Rgb = (34, 34, 34);
const MUTED: Rgb = (120, 120, 120);
const PANEL: Rgb = (244, 246, 249);
const WHITE: Rgb = (255, 255, 255);
/// Funnel bars, widest first: deep to light blue.
const FUNNEL_COLORS: [Rgb; 6] =
    [(22, 93, 255), (38, 110, 240), (64, 128, 232), (88, 146, 226), (110, 160, 220), (128, 170, 214)];
const VISIT_COLOR: Rgb = (47, 128, 237);
const CALL_COLOR: Rgb = (39, 174, 96);
const OTHER_COLOR: Rgb = (242, 153, 74);

/// Renders the funnel and the activity chart into one PNG.
pub fn render_png(input: &ChartInput) -> Result<Vec<u8>, ChartError> {
    let font = FontRef::try_from_slice(FONT_BYTES).map_err(|e| ChartError::Font(e.to_string()))?;
    let layout = Layout::of(input);
    let height = layout.height.ceil() as u32;
    let mut canvas = Canvas::new(&font, WIDTH, height)?;
    draw(&mut canvas, input, &layout);
    canvas.pixmap.encode_png().map_err(|e| ChartError::Encode(e.to_string()))
}

/// Where each section starts; computed first so the canvas has its final height.
struct Layout {
    funnel_top: f32,
    reps_top: f32,
    height: f32,
    funnel_steps: usize,
    rep_rows: usize,
    hidden_reps: usize,
}

impl Layout {
    fn of(input: &ChartInput) -> Self {
        let mut y = MARGIN + TITLE_SIZE + 8.0;
        if !clean(&input.subtitle).trim().is_empty() {
            y += SUBTITLE_SIZE + 8.0;
        }
        y += 16.0;
        let funnel_top = y;
        let funnel_steps = if funnel_is_empty(&input.funnel) { 0 } else { input.funnel.len().min(MAX_FUNNEL_STEPS) };
        y += HEADING_SIZE + 16.0;
        y += if funnel_steps == 0 {
            PLACEHOLDER_HEIGHT
        } else {
            funnel_steps as f32 * STEP_HEIGHT + (funnel_steps - 1) as f32 * STEP_GAP
        };
        y += 32.0;
        let reps_top = y;
        let rep_rows = input.reps.len().min(MAX_REP_ROWS);
        let hidden_reps = input.reps.len() - rep_rows;
        // Heading and legend share a line.
        y += HEADING_SIZE + 16.0;
        y += if rep_rows == 0 { PLACEHOLDER_HEIGHT } else { rep_rows as f32 * REP_ROW };
        if hidden_reps > 0 {
            y += REP_ROW;
        }
        y += MARGIN;
        Layout { funnel_top, reps_top, height: y, funnel_steps, rep_rows, hidden_reps }
    }
}

/// No steps, or nothing in any of them.
fn funnel_is_empty(funnel: &[FunnelStep]) -> bool {
    funnel.iter().all(|s| s.deals == 0 && s.amount_fen == 0)
}

fn draw(c: &mut Canvas<'_>, input: &ChartInput, layout: &Layout) {
    let width = WIDTH as f32;
    let content = width - 2.0 * MARGIN;
    let title = fit(c.font, &input.title, TITLE_SIZE, content);
    let title = if title.is_empty() { "销售报表".to_owned() } else { title };
    c.text_bold(&title, MARGIN, MARGIN + TITLE_SIZE, TITLE_SIZE, INK);
    let subtitle = fit(c.font, &input.subtitle, SUBTITLE_SIZE, content);
    if !subtitle.trim().is_empty() {
        c.text(&subtitle, MARGIN, MARGIN + TITLE_SIZE + 8.0 + SUBTITLE_SIZE, SUBTITLE_SIZE, MUTED);
    }

    // The funnel.
    let mut y = layout.funnel_top;
    c.text_bold("销售漏斗", MARGIN, y + HEADING_SIZE, HEADING_SIZE, INK);
    y += HEADING_SIZE + 16.0;
    if layout.funnel_steps == 0 {
        c.placeholder("暂无商机", MARGIN, y, content);
    } else {
        let steps = &input.funnel[..layout.funnel_steps];
        let max_deals = steps.iter().map(|s| s.deals).max().unwrap_or(0).max(1) as f64;
        let min_width = content * 0.3;
        let center = width / 2.0;
        for (i, step) in steps.iter().enumerate() {
            let label = fit(c.font, &step.label, TEXT_SIZE, 160.0);
            let label = if label.trim().is_empty() { format!("阶段 {}", i + 1) } else { label };
            let text = format!("{label}  {} 单  {}", step.deals, format_amount(step.amount_fen));
            let text = fit(c.font, &text, TEXT_SIZE, content - 24.0);
            let text_width = c.measure(&text, TEXT_SIZE);
            let share = (step.deals as f64 / max_deals).clamp(0.0, 1.0) as f32;
            let bar = (min_width + (content - min_width) * share).max(text_width + 24.0).min(content);
            let color = FUNNEL_COLORS[i.min(FUNNEL_COLORS.len() - 1)];
            c.rounded_rect(center - bar / 2.0, y, bar, STEP_HEIGHT, 6.0, color);
            let baseline = y + STEP_HEIGHT / 2.0 + TEXT_SIZE * 0.36;
            c.text(&text, center - text_width / 2.0, baseline, TEXT_SIZE, WHITE);
            y += STEP_HEIGHT;
            if i + 1 < steps.len() {
                let rate = match step.conversion_pct {
                    Some(p) if p.is_finite() => format!("↓ 转化 {}", format_pct(p)),
                    _ => "↓".to_owned(),
                };
                let w = c.measure(&rate, SMALL_SIZE);
                c.text(&rate, center - w / 2.0, y + STEP_GAP / 2.0 + SMALL_SIZE * 0.36, SMALL_SIZE, MUTED);
                y += STEP_GAP;
            }
        }
    }

    // Activities per rep.
    let mut y = layout.reps_top;
    c.text_bold("销售活动", MARGIN, y + HEADING_SIZE, HEADING_SIZE, INK);
    let mut x = width - MARGIN;
    for (label, color) in [("其他", OTHER_COLOR), ("电话", CALL_COLOR), ("拜访", VISIT_COLOR)].iter().copied() {
        x -= c.measure(label, SMALL_SIZE);
        c.text(label, x, y + HEADING_SIZE, SMALL_SIZE, INK);
        x -= 18.0;
        c.rounded_rect(x, y + HEADING_SIZE - 12.0, 12.0, 12.0, 2.0, color);
        x -= 16.0;
    }
    y += HEADING_SIZE + 16.0;
    if layout.rep_rows == 0 {
        c.placeholder("暂无活动记录", MARGIN, y, content);
        return;
    }
    let reps = &input.reps[..layout.rep_rows];
    let totals: Vec<u128> =
        reps.iter().map(|r| u128::from(r.visits) + u128::from(r.calls) + u128::from(r.other)).collect();
    let max_total = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bar_left = MARGIN + NAME_COLUMN;
    // Room on the right for the longest total (20 digits at most).
    let total_width = totals.iter().map(|t| c.measure(&t.to_string(), SMALL_SIZE)).fold(0.0, f32::max);
    let bar_room = width - MARGIN - bar_left - total_width - 12.0;
    for (rep, total) in reps.iter().zip(&totals) {
        let name = fit(c.font, &rep.name, TEXT_SIZE, NAME_COLUMN - 12.0);
        let name = if name.trim().is_empty() { "（未命名）".to_owned() } else { name };
        let baseline = y + REP_ROW / 2.0 + TEXT_SIZE * 0.36;
        c.text(&name, MARGIN, baseline, TEXT_SIZE, INK);
        let bar_top = y + (REP_ROW - REP_BAR_HEIGHT) / 2.0;
        let mut x = bar_left;
        for (n, color) in [(rep.visits, VISIT_COLOR), (rep.calls, CALL_COLOR), (rep.other, OTHER_COLOR)] {
            let w = (n as f64 / max_total * f64::from(bar_room)) as f32;
            if w > 0.0 {
                // At least a sliver, so a single call still shows.
                let w = w.max(2.0);
                c.rect(x, bar_top, w, REP_BAR_HEIGHT, color);
                x += w;
            }
        }
        c.text(&total.to_string(), x + 8.0, baseline, SMALL_SIZE, MUTED);
        y += REP_ROW;
    }
    if layout.hidden_reps > 0 {
        let more = format!("…另有 {} 人", layout.hidden_reps);
        c.text(&more, MARGIN, y + REP_ROW / 2.0 + SMALL_SIZE * 0.36, SMALL_SIZE, MUTED);
    }
}

/// ¥ in 元 below 1万, in 万 below 1亿, else in 亿; one decimal, none when it is .0.
pub fn format_amount(fen: i64) -> String {
    let yuan = fen as f64 / 100.0;
    let sign = if yuan <= -0.5 { "-" } else { "" };
    let yuan = yuan.abs();
    let (value, unit) = if yuan >= 1e8 {
        (yuan / 1e8, "亿")
    } else if yuan >= 1e4 {
        (yuan / 1e4, "万")
    } else {
        return format!("{sign}¥{}", yuan.round() as u64);
    };
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{sign}¥{text}{unit}")
}

fn format_pct(p: f64) -> String {
    let text = format!("{p:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}%")
}

/// Control characters (newlines, tabs) become spaces and the ends are trimmed: a label is one line.
fn clean(text: &str) -> String {
    let one_line: String = text.chars().map(|ch| if ch.is_control() { ' ' } else { ch }).collect();
    one_line.trim().to_owned()
}

/// Width of `text` at `size` px, from the glyphs' advances.
fn measure(font: &FontRef<'_>, text: &str, size: f32) -> f32 {
    let scaled = font.as_scaled(PxScale::from(size));
    text.chars().map(|ch| scaled.h_advance(font.glyph_id(ch))).sum()
}

/// `text` on one line, cut at a character boundary with "…" so that it fits `max_width`.
fn fit(font: &FontRef<'_>, text: &str, size: f32, max_width: f32) -> String {
    let text = clean(text);
    if measure(font, &text, size) <= max_width {
        return text;
    }
    let ellipsis = measure(font, "…", size);
    let scaled = font.as_scaled(PxScale::from(size));
    let mut out = String::new();
    let mut width = 0.0;
    for ch in text.chars() {
        let advance = scaled.h_advance(font.glyph_id(ch));
        if width + advance + ellipsis > max_width {
            break;
        }
        width += advance;
        out.push(ch);
    }
    out.push('…');
    out
}

struct Canvas<'f> {
    font: &'f FontRef<'f>,
    pixmap: Pixmap,
}

impl<'f> Canvas<'f> {
    fn new(font: &'f FontRef<'f>, width: u32, height: u32) -> Result<Self, ChartError> {
        let mut pixmap = Pixmap::new(width, height).ok_or(ChartError::Canvas { width, height })?;
        let (r, g, b) = BACKGROUND;
        pixmap.fill(Color::from_rgba8(r, g, b, 255));
        Ok(Canvas { font, pixmap })
    }

    fn measure(&self, text: &str, size: f32) -> f32 {
        measure(self.font, text, size)
    }

    fn paint(color: Rgb) -> Paint<'static> {
        let mut paint = Paint::default();
        paint.set_color_rgba8(color.0, color.1, color.2, 255);
        paint.anti_alias = true;
        paint
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        if let Some(rect) = Rect::from_xywh(x, y, w, h) {
            self.pixmap.fill_rect(rect, &Self::paint(color), Transform::identity(), None);
        }
    }

    fn rounded_rect(&mut self, x: f32, y: f32, w: f32, h: f32, radius: f32, color: Rgb) {
        let r = radius.min(w / 2.0).min(h / 2.0).max(0.0);
        let mut pb = PathBuilder::new();
        pb.move_to(x + r, y);
        pb.line_to(x + w - r, y);
        pb.quad_to(x + w, y, x + w, y + r);
        pb.line_to(x + w, y + h - r);
        pb.quad_to(x + w, y + h, x + w - r, y + h);
        pb.line_to(x + r, y + h);
        pb.quad_to(x, y + h, x, y + h - r);
        pb.line_to(x, y + r);
        pb.quad_to(x, y, x + r, y);
        pb.close();
        if let Some(path) = pb.finish() {
            self.pixmap.fill_path(&path, &Self::paint(color), FillRule::Winding, Transform::identity(), None);
        }
    }

    /// A grey panel with a centred note, for a section with nothing to show.
    fn placeholder(&mut self, note: &str, x: f32, y: f32, w: f32) {
        self.rounded_rect(x, y, w, PLACEHOLDER_HEIGHT, 8.0, PANEL);
        let tw = self.measure(note, TEXT_SIZE);
        self.text(note, x + (w - tw) / 2.0, y + PLACEHOLDER_HEIGHT / 2.0 + TEXT_SIZE * 0.36, TEXT_SIZE, MUTED);
    }

    /// Draws `text` with its baseline at `baseline`, starting at `x`; returns the advance.
    fn text(&mut self, text: &str, x: f32, baseline: f32, size: f32, color: Rgb) -> f32 {
        let font = self.font;
        let scaled = font.as_scaled(PxScale::from(size));
        let (width, height) = (self.pixmap.width() as i32, self.pixmap.height() as i32);
        let pixels = self.pixmap.pixels_mut();
        let mut caret = x;
        for ch in text.chars() {
            let id = font.glyph_id(ch);
            let glyph = id.with_scale_and_position(PxScale::from(size), point(caret, baseline));
            caret += scaled.h_advance(id);
            let Some(outlined) = font.outline_glyph(glyph) else { continue };
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i32 + gx as i32;
                let py = bounds.min.y as i32 + gy as i32;
                if px < 0 || py < 0 || px >= width || py >= height {
                    return;
                }
                let index = (py * width + px) as usize;
                if let Some(pixel) = pixels.get_mut(index) {
                    *pixel = blend(*pixel, color, coverage.clamp(0.0, 1.0));
                }
            });
        }
        caret - x
    }

    /// Heavier text without a bold font: the same run twice, half a pixel apart.
    fn text_bold(&mut self, text: &str, x: f32, baseline: f32, size: f32, color: Rgb) {
        self.text(text, x, baseline, size, color);
        self.text(text, x + 0.6, baseline, size, color);
    }
}

/// `color` at `alpha` over an opaque pixel (the canvas is opaque throughout).
fn blend(dst: PremultipliedColorU8, color: Rgb, alpha: f32) -> PremultipliedColorU8 {
    let mix = |d: u8, s: u8| (f32::from(s) * alpha + f32::from(d) * (1.0 - alpha)).round().clamp(0.0, 255.0) as u8;
    PremultipliedColorU8::from_rgba(mix(dst.red(), color.0), mix(dst.green(), color.1), mix(dst.blue(), color.2), 255)
        .unwrap_or(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: &str = "初步接触需求分析方案报价商务谈判合同签订赢单输单拜访电话王李张陈";

    fn fixture() -> ChartInput {
        let step = |label: &str, deals, amount_fen, conversion_pct| FunnelStep {
            label: label.to_owned(),
            deals,
            amount_fen,
            conversion_pct,
        };
        let rep = |name: &str, visits, calls, other| RepBar { name: name.to_owned(), visits, calls, other };
        ChartInput {
            title: "华东销售一部 · 11月销售漏斗".to_owned(),
            subtitle: "2026-11-01 至 2026-11-24 · 数据截至今日 10:00".to_owned(),
            funnel: vec![
                step("初步接触", 40, 320_000_000, Some(75.0)),
                step("需求分析", 30, 210_000_000, Some(66.7)),
                step("方案报价", 12, 36_500_000, Some(50.0)),
                step("商务谈判", 6, 18_000_000, Some(50.0)),
                step("合同签订", 3, 9_000_000, None),
            ],
            reps: vec![rep("王小明", 12, 20, 3), rep("李雷", 8, 5, 1), rep("张伟", 0, 14, 0), rep("陈静", 3, 0, 0)],
        }
    }

    struct Decoded {
        width: u32,
        height: u32,
        rgba: Vec<u8>,
    }

    impl Decoded {
        /// Pixels that differ from the white background within the rows `top..bottom`.
        fn ink(&self, top: u32, bottom: u32) -> usize {
            let row = self.width as usize * 4;
            let (top, bottom) = (top.min(self.height) as usize, bottom.min(self.height) as usize);
            self.rgba[top * row..bottom * row]
                .chunks_exact(4)
                .filter(|p| p[0] < 250 || p[1] < 250 || p[2] < 250)
                .count()
        }
    }

    fn decode(png_bytes: &[u8]) -> Decoded {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buf).expect("PNG frame");
        assert_eq!(info.color_type, png::ColorType::Rgba, "tiny-skia writes RGBA");
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        Decoded { width: info.width, height: info.height, rgba: buf }
    }

    /// With `CHATCRM_CHART_DIR` set, writes the picture there to look at while working on the layout.
    fn save(name: &str, png_bytes: &[u8]) {
        if let Ok(dir) = std::env::var("CHATCRM_CHART_DIR") {
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png_bytes).expect("write the PNG");
        }
    }

    fn font() -> FontRef<'static> {
        FontRef::try_from_slice(FONT_BYTES).expect("embedded font")
    }

    #[test]
    fn the_font_has_a_real_glyph_for_every_label_character() {
        let font = font();
        for ch in LABELS.chars().chain("¥万…↓%，。·（）0123456789abcXYZ另有人暂无商机活动记录".chars())
        {
            assert_ne!(font.glyph_id(ch).0, 0, "no glyph for {ch:?}");
            assert!(font.outline(font.glyph_id(ch)).is_some(), "no outline for {ch:?}");
        }
        // Outside the GB2312 subset: the notdef glyph, which draws a box instead of panicking.
        assert_eq!(font.glyph_id('𠀀').0, 0);
    }

    #[test]
    fn cjk_text_puts_ink_on_the_canvas_and_blank_text_does_not() {
        let font = font();
        let ink = |text: &str| {
            let mut canvas = Canvas::new(&font, 400, 40).expect("canvas");
            canvas.text(text, 4.0, 28.0, 20.0, INK);
            canvas.pixmap.pixels().iter().filter(|p| p.red() < 250).count()
        };
        assert_eq!(ink(""), 0);
        assert_eq!(ink("    "), 0);
        let cjk = ink("方案报价");
        assert!(cjk > 200, "only {cjk} inked pixels for 方案报价");
        // Different characters give different pictures: the glyphs are real, not all one box.
        let pictures: Vec<Vec<u8>> = ["拜", "访"]
            .iter()
            .map(|t| {
                let mut canvas = Canvas::new(&font, 40, 40).expect("canvas");
                canvas.text(t, 4.0, 30.0, 24.0, INK);
                canvas.pixmap.data().to_vec()
            })
            .collect();
        assert_ne!(pictures[0], pictures[1]);
    }

    #[test]
    fn renders_the_fixture_as_a_png_with_ink_in_every_section() {
        let input = fixture();
        let png_bytes = render_png(&input).expect("render");
        save("fixture", &png_bytes);
        assert!(png_bytes.len() < 200 * 1024, "{} bytes", png_bytes.len());
        let image = decode(&png_bytes);
        let layout = Layout::of(&input);
        assert_eq!(image.width, WIDTH);
        assert_eq!(image.height, layout.height.ceil() as u32);
        assert!((500..1200).contains(&image.height), "height {}", image.height);
        let total = image.ink(0, image.height);
        assert!(total > 20_000, "only {total} non-background pixels");
        assert!(image.ink(0, layout.funnel_top as u32) > 1_000, "no title");
        assert!(image.ink(layout.funnel_top as u32, layout.reps_top as u32) > 10_000, "no funnel");
        assert!(image.ink(layout.reps_top as u32, image.height) > 3_000, "no activity bars");
    }

    #[test]
    fn empty_input_renders_a_picture_that_says_so() {
        let input = ChartInput::default();
        let png_bytes = render_png(&input).expect("render");
        save("empty", &png_bytes);
        let image = decode(&png_bytes);
        let layout = Layout::of(&input);
        assert_eq!(image.width, WIDTH);
        assert!(image.height > 200 && image.height < 500, "height {}", image.height);
        // Each section has its panel and note.
        let funnel = image.ink(layout.funnel_top as u32, layout.reps_top as u32);
        let reps = image.ink(layout.reps_top as u32, image.height);
        assert!(funnel > 20_000 && reps > 20_000, "funnel {funnel}, reps {reps}");
        // Steps with nothing in them count as no deals.
        let zeros = ChartInput {
            funnel: vec![FunnelStep { label: "初步接触".into(), deals: 0, amount_fen: 0, conversion_pct: None }],
            ..ChartInput::default()
        };
        assert_eq!(Layout::of(&zeros).funnel_steps, 0);
    }

    #[test]
    fn weird_input_renders_without_panicking() {
        let long = "很长的名字".repeat(200);
        let input = ChartInput {
            title: "\n\t".repeat(10) + &long,
            subtitle: "𠀀🙂\u{0}".to_owned(),
            funnel: vec![
                FunnelStep {
                    label: String::new(),
                    deals: u64::MAX,
                    amount_fen: i64::MAX,
                    conversion_pct: Some(f64::NAN),
                },
                FunnelStep { label: long.clone(), deals: 0, amount_fen: i64::MIN, conversion_pct: Some(f64::INFINITY) },
                FunnelStep { label: "输单".into(), deals: 1, amount_fen: -5, conversion_pct: Some(-3.0) },
            ],
            reps: (0..200)
                .map(|i| RepBar {
                    name: if i == 0 { String::new() } else { format!("{long}{i}") },
                    visits: if i == 1 { u64::MAX } else { i },
                    calls: u64::MAX,
                    other: u64::MAX,
                })
                .collect(),
        };
        let png_bytes = render_png(&input).expect("render");
        save("weird", &png_bytes);
        let image = decode(&png_bytes);
        let layout = Layout::of(&input);
        assert_eq!(layout.rep_rows, MAX_REP_ROWS);
        assert_eq!(layout.hidden_reps, 170);
        assert_eq!(image.height, layout.height.ceil() as u32);
        assert!(image.height < 2000, "height {}", image.height);
        assert!(png_bytes.len() < 2 * 1024 * 1024);
        let too_many_steps = ChartInput {
            funnel: (0..50)
                .map(|i| FunnelStep { label: format!("{i}"), deals: 1, amount_fen: 1, conversion_pct: Some(100.0) })
                .collect(),
            ..ChartInput::default()
        };
        assert_eq!(Layout::of(&too_many_steps).funnel_steps, MAX_FUNNEL_STEPS);
        render_png(&too_many_steps).expect("render");
    }

    #[test]
    fn text_is_cut_by_characters_not_bytes() {
        let font = font();
        let cut = fit(&font, "中华人民共和国国务院办公厅", 20.0, 100.0);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(measure(&font, &cut, 20.0) <= 100.0);
        assert_eq!(fit(&font, "王小明", 20.0, 100.0), "王小明");
        assert_eq!(fit(&font, "a\nb", 20.0, 100.0), "a b");
        assert_eq!(fit(&font, "\n\t王小明 ", 20.0, 100.0), "王小明");
        // Every cut lands between characters, whatever the width.
        for max in 0..60 {
            let cut = fit(&font, "王a小😀明", 20.0, max as f32);
            assert!(cut.ends_with('…') || cut == "王a小😀明", "{cut}");
        }
    }

    #[test]
    fn amounts_read_in_wan_and_yi() {
        assert_eq!(format_amount(36_500_000), "¥36.5万");
        assert_eq!(format_amount(12_000_000), "¥12万");
        assert_eq!(format_amount(350_000), "¥3500");
        assert_eq!(format_amount(0), "¥0");
        assert_eq!(format_amount(-5), "¥0");
        assert_eq!(format_amount(-1_000_000), "-¥1万");
        assert_eq!(format_amount(25_000_000_000), "¥2.5亿");
        assert!(format_amount(i64::MIN).starts_with("-¥"));
        assert_eq!(format_pct(66.66), "66.7%");
        assert_eq!(format_pct(50.0), "50%");
    }
}
