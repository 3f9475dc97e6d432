//! CSV import and export of customers (with contacts), deals and activities
//! (`chatcrm import customers|deals|activities`, `chatcrm export …`).
//!
//! Import streams the file: it is decoded (UTF-8 with or without BOM, or GBK/GB18030) chunk by
//! chunk and read record by record; only the per-row report is kept. Every row goes through the
//! CRM services (validation, permissions, audit rows) inside one transaction, each row in its own
//! savepoint. The transaction is committed only when it is not a dry run and either no row was
//! rejected or `skip_bad` is set: all or nothing otherwise.
//!
//! Dedupe: a customer whose normalised name exists (in the database, or made by an earlier row)
//! has its *empty* fields filled, new tags added and a new contact added ("updated"); existing
//! values are never overwritten. With nothing new the row is "deduplicated". Deals dedupe on
//! customer + title, activities on customer + time + content.
//!
//! Export pages through the table by id (no whole-table read) and writes UTF-8 with a BOM, so
//! Excel opens it correctly, with Chinese headers by default.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use crate::crm::activities::NewActivity;
use crate::crm::customers::{CustomerPatch, NewContact, NewCustomer};
use crate::crm::deals::{DealPatch, NewDeal};
use crate::crm::{
    self, ActivityKind, Actor, CrmError, Ctx, Customer, DealStatus, Grade, Lang, LostReason, Role, User, Via, matching,
};
use crate::store::{self, Db, Page, Savepoint, Tx};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Customers,
    Deals,
    Activities,
}

/// How the file's bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodingChoice {
    /// BOM → UTF-8; valid UTF-8 → UTF-8; else GB18030 (a superset of GBK).
    #[default]
    Auto,
    Utf8,
    Gbk,
}

impl std::str::FromStr for EncodingChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "gbk" | "gb18030" | "gb2312" => Ok(Self::Gbk),
            other => Err(format!("unknown encoding `{other}`: use utf-8 or gbk")),
        }
    }
}

/// A field a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Col {
    Name,
    Industry,
    Region,
    Source,
    Grade,
    Owner,
    Tags,
    Contact,
    Title,
    Phone,
    Wechat,
    Email,
    Customer,
    Amount,
    Stage,
    ExpectedClose,
    Status,
    LostReason,
    ActivityKind,
    OccurredAt,
    Content,
    User,
    NextStep,
}

impl Kind {
    /// The field a header names for this kind of file (Chinese or English, case and surrounding
    /// space ignored).
    pub fn column(self, header: &str) -> Option<Col> {
        let h = header.trim().to_lowercase().replace(['_', '-'], " ");
        let common = match h.as_str() {
            "负责人" | "owner" => Some(Col::Owner),
            _ => None,
        };
        let specific = match self {
            Kind::Customers => match h.as_str() {
                "客户名称" | "客户" | "公司" | "公司名称" | "名称" | "name" | "company" | "customer"
                | "company name" | "customer name" => Col::Name,
                "行业" | "industry" => Col::Industry,
                "地区" | "区域" | "region" => Col::Region,
                "来源" | "source" => Col::Source,
                "等级" | "客户等级" | "grade" => Col::Grade,
                "标签" | "tags" | "tag" => Col::Tags,
                "联系人" | "contact" | "contact name" => Col::Contact,
                "职位" | "职务" | "title" | "job title" => Col::Title,
                "电话" | "手机" | "phone" | "mobile" => Col::Phone,
                "微信" | "wechat" => Col::Wechat,
                "邮箱" | "email" | "e mail" => Col::Email,
                _ => return common,
            },
            Kind::Deals => match h.as_str() {
                "客户" | "客户名称" | "customer" | "company" => Col::Customer,
                "商机" | "商机名称" | "名称" | "title" | "deal" | "name" => Col::Title,
                "金额" | "amount" => Col::Amount,
                "阶段" | "stage" => Col::Stage,
                "预计成交" | "预计成交日期" | "expected close" | "close date" => Col::ExpectedClose,
                "状态" | "status" => Col::Status,
                "输单原因" | "lost reason" => Col::LostReason,
                _ => return common,
            },
            Kind::Activities => match h.as_str() {
                "客户" | "客户名称" | "customer" | "company" => Col::Customer,
                "类型" | "kind" | "type" => Col::ActivityKind,
                "时间" | "日期" | "occurred at" | "time" | "date" => Col::OccurredAt,
                "内容" | "content" => Col::Content,
                "记录人" | "user" | "by" => Col::User,
                "下一步" | "next step" => Col::NextStep,
                _ => return common,
            },
        };
        Some(specific)
    }

    /// Columns a file must have (the first header name of each is shown when one is missing).
    fn required(self) -> &'static [(Col, &'static str)] {
        match self {
            Kind::Customers => &[(Col::Name, "客户名称/name")],
            Kind::Deals => &[(Col::Customer, "客户/customer"), (Col::Title, "商机/title")],
            Kind::Activities => &[
                (Col::Customer, "客户/customer"),
                (Col::OccurredAt, "时间/occurred_at"),
                (Col::Content, "内容/content"),
            ],
        }
    }

    /// Export headers, Chinese or English (each maps back through [`Kind::column`]).
    pub fn headers(self, en: bool) -> &'static [&'static str] {
        match (self, en) {
            (Kind::Customers, false) => &[
                "客户名称",
                "行业",
                "地区",
                "来源",
                "等级",
                "负责人",
                "标签",
                "联系人",
                "职位",
                "电话",
                "微信",
                "邮箱",
            ],
            (Kind::Customers, true) => &[
                "name", "industry", "region", "source", "grade", "owner", "tags", "contact", "title", "phone",
                "wechat", "email",
            ],
            (Kind::Deals, false) => &["客户", "商机", "金额", "阶段", "预计成交", "负责人", "状态", "输单原因"],
            (Kind::Deals, true) => {
                &["customer", "title", "amount", "stage", "expected_close", "owner", "status", "lost_reason"]
            }
            (Kind::Activities, false) => &["客户", "类型", "时间", "内容", "记录人", "下一步"],
            (Kind::Activities, true) => &["customer", "kind", "occurred_at", "content", "user", "next_step"],
        }
    }
}

/// Tags in one cell are separated by any of these.
const TAG_SEPARATORS: [char; 5] = [';', '；', '、', '|', '｜'];

/// A problem with the file as a whole, or the database: nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CsvIoError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is empty: it needs a header row naming the columns")]
    Empty,
    #[error("missing required column(s) {missing} (found: {found})")]
    MissingColumns { missing: String, found: String },
    #[error("the file is not valid CSV: {0}")]
    Csv(String),
    #[error("{0}")]
    Crm(#[from] CrmError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<csv::Error> for CsvIoError {
    fn from(e: csv::Error) -> Self {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => CsvIoError::Io(io),
            other => CsvIoError::Csv(format!("{other:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decides the encoding of a file by streaming through it once (nothing is kept).
pub fn detect_encoding(path: &Path) -> std::io::Result<&'static encoding_rs::Encoding> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    // Up to 3 bytes of a UTF-8 sequence cut by the chunk boundary.
    let mut carry: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(if carry.is_empty() { encoding_rs::UTF_8 } else { encoding_rs::GB18030 });
        }
        let mut chunk = std::mem::take(&mut carry);
        chunk.extend_from_slice(&buf[..n]);
        if first && chunk.starts_with(b"\xEF\xBB\xBF") {
            return Ok(encoding_rs::UTF_8);
        }
        first = false;
        match std::str::from_utf8(&chunk) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => carry = chunk[e.valid_up_to()..].to_vec(),
            Err(_) => return Ok(encoding_rs::GB18030),
        }
    }
}

/// A `Read` that decodes another into UTF-8 chunk by chunk (a UTF-8 BOM is dropped). Malformed
/// input is an `InvalidData` error naming the encoding.
pub struct DecodeReader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    name: &'static str,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> DecodeReader<R> {
    pub fn new(inner: R, encoding: &'static encoding_rs::Encoding) -> Self {
        Self {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            name: encoding.name(),
            inbuf: vec![0u8; 64 * 1024],
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.inbuf)?;
            let last = n == 0;
            self.done = last;
            let cap = self.decoder.max_utf8_buffer_length_without_replacement(n).unwrap_or(n * 4 + 16);
            self.out.clear();
            self.out.resize(cap, 0);
            self.pos = 0;
            let (result, _read, written) =
                self.decoder.decode_to_utf8_without_replacement(&self.inbuf[..n], &mut self.out, last);
            if let encoding_rs::DecoderResult::Malformed(..) = result {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the file is not valid {} text (use --encoding)", self.name),
                ));
            }
            self.out.truncate(written);
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Import

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub org_id: i64,
    pub dry_run: bool,
    /// Commit the good rows even when some are rejected.
    pub skip_bad: bool,
    pub encoding: EncodingChoice,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Deduplicated,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowReport {
    /// The line of the file the row starts on (the header is line 1).
    pub row: u64,
    /// The customer name, deal title or activity's customer.
    pub key: String,
    pub outcome: Outcome,
    /// The record created, updated or matched (`None` in a dry run for new records).
    pub id: Option<i64>,
    /// Why a row was rejected, or what an update changed.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub deduplicated: usize,
    pub rejected: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub kind: Kind,
    pub encoding: &'static str,
    pub dry_run: bool,
    pub committed: bool,
    pub columns: Columns,
    pub warnings: Vec<String>,
    pub rows: Vec<RowReport>,
    pub totals: Totals,
}

impl ImportReport {
    /// 0 when every row went in (or would), 1 when some were rejected.
    pub fn exit_code(&self) -> i32 {
        if self.totals.rejected == 0 { 0 } else { 1 }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            let what = match r.outcome {
                Outcome::Created => "created",
                Outcome::Updated => "updated",
                Outcome::Deduplicated => "duplicate, unchanged",
                Outcome::Rejected => "REJECTED",
            };
            let id = r.id.map(|i| format!(" #{i}")).unwrap_or_default();
            let msg = r.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            out.push_str(&format!("row {:<5} {}  {what}{id}{msg}\n", r.row, r.key));
        }
        let t = &self.totals;
        out.push_str(&format!(
            "{}{} rows ({}): {} created, {} updated, {} duplicates, {} rejected\n",
            if self.dry_run { "dry run, " } else { "" },
            t.rows,
            self.encoding,
            t.created,
            t.updated,
            t.deduplicated,
            t.rejected
        ));
        out.push_str(match (self.dry_run, self.committed, t.rejected) {
            (true, _, _) => "dry run: nothing was written\n",
            (false, true, 0) => "all rows imported\n",
            (false, true, _) => "imported; rejected rows were skipped (--skip-bad)\n",
            (false, false, _) => "nothing was written: fix the rejected rows, or use --skip-bad\n",
        });
        out
    }
}

/// Each header and the field it fills (`None`: ignored).
pub type Columns = Vec<(String, Option<Col>)>;

/// Header row → fields, refusing the file when a required column is missing.
fn map_headers(kind: Kind, headers: &csv::StringRecord) -> Result<(Columns, Vec<String>), CsvIoError> {
    let mut warnings = Vec::new();
    let columns: Vec<(String, Option<Col>)> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let col = kind.column(h);
            if col.is_none() {
                warnings.push(if h.trim().is_empty() {
                    format!("column {} has no name: ignored", i + 1)
                } else {
                    format!("unknown column 「{}」: ignored", h.trim())
                });
            }
            (h.trim().to_string(), col)
        })
        .collect();
    let missing: Vec<&str> =
        kind.required().iter().filter(|(c, _)| !columns.iter().any(|(_, f)| *f == Some(*c))).map(|(_, n)| *n).collect();
    if !missing.is_empty() {
        let found = columns.iter().map(|(h, _)| format!("「{h}」")).collect::<Vec<_>>().join(" ");
        return Err(CsvIoError::MissingColumns {
            missing: missing.join(", "),
            found: if found.is_empty() { "nothing".into() } else { found },
        });
    }
    Ok((columns, warnings))
}

/// One record's cells by field: the first non-empty cell among the columns that fill it.
struct Cells<'a> {
    index: &'a HashMap<Col, Vec<usize>>,
    record: &'a csv::StringRecord,
}

impl Cells<'_> {
    fn get(&self, col: Col) -> Option<&str> {
        self.index.get(&col)?.iter().filter_map(|i| self.record.get(*i)).map(str::trim).find(|v| !v.is_empty())
    }
    fn owned(&self, col: Col) -> Option<String> {
        self.get(col).map(str::to_string)
    }
}

/// Imports a CSV file of `kind` into the org (see the module docs).
pub async fn import_file(db: &Db, kind: Kind, path: &Path, opts: &ImportOptions) -> Result<ImportReport, CsvIoError> {
    let encoding = match opts.encoding {
        EncodingChoice::Auto => detect_encoding(path)?,
        EncodingChoice::Utf8 => encoding_rs::UTF_8,
        EncodingChoice::Gbk => encoding_rs::GB18030,
    };
    let file = std::fs::File::open(path)?;
    import_reader(db, kind, DecodeReader::new(std::io::BufReader::new(file), encoding), encoding.name(), opts).await
}

/// Imports already-decoded UTF-8 CSV from `src` (read record by record).
pub async fn import_reader<R: Read>(
    db: &Db,
    kind: Kind,
    src: R,
    encoding: &'static str,
    opts: &ImportOptions,
) -> Result<ImportReport, CsvIoError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(src);
    let headers = reader.headers()?.clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(CsvIoError::Empty);
    }
    let (columns, warnings) = map_headers(kind, &headers)?;
    let mut index: HashMap<Col, Vec<usize>> = HashMap::new();
    for (i, (_, c)) in columns.iter().enumerate() {
        if let Some(c) = c {
            index.entry(*c).or_default().push(i);
        }
    }

    let mut tx = db.begin().await?;
    if let Tx::Postgres(t) = &mut tx {
        // The tables grow inside this one transaction, which statistics never see: a cached
        // generic plan made while they were small (sequential scans) would make the import
        // quadratic. Plan each statement for the table as it is now.
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan").execute(&mut **t).await?;
    }
    let org = crm::orgs::org_by_id(&mut tx, opts.org_id).await?;
    let mut state = State {
        ctx: Ctx::new(Actor::system(org.id), Via::Cli, opts.now),
        tz: org.tz(),
        users: crm::users::list_users(&mut tx, org.id).await?,
    };
    let mut rows = Vec::new();
    let mut totals = Totals::default();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let row = record.position().map_or(0, |p| p.line());
        let cells = Cells { index: &index, record: &record };
        let key = match kind {
            Kind::Customers => cells.get(Col::Name),
            Kind::Deals => cells.get(Col::Title),
            Kind::Activities => cells.get(Col::Customer),
        }
        .unwrap_or_default()
        .to_string();
        store::savepoint(&mut tx, Savepoint::Begin).await?;
        let result = match kind {
            Kind::Customers => customer_row(&mut tx, &state, &cells).await,
            Kind::Deals => deal_row(&mut tx, &state, &cells).await,
            Kind::Activities => activity_row(&mut tx, &mut state, &cells).await,
        };
        totals.rows += 1;
        let (outcome, id, message) = match result {
            Ok((o, id, msg)) => (o, id, msg),
            Err(CrmError::Db(e)) => return Err(CsvIoError::Db(e)),
            Err(e) => {
                store::savepoint(&mut tx, Savepoint::Rollback).await?;
                (Outcome::Rejected, None, Some(e.user_message(Lang::Zh)))
            }
        };
        store::savepoint(&mut tx, Savepoint::Release).await?;
        match outcome {
            Outcome::Created => totals.created += 1,
            Outcome::Updated => totals.updated += 1,
            Outcome::Deduplicated => totals.deduplicated += 1,
            Outcome::Rejected => totals.rejected += 1,
        }
        // Ids of new records are meaningless after a rollback.
        let id = if opts.dry_run && outcome == Outcome::Created { None } else { id };
        rows.push(RowReport { row, key, outcome, id, message });
    }
    let committed = !opts.dry_run && (totals.rejected == 0 || opts.skip_bad);
    if committed {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(ImportReport { kind, encoding, dry_run: opts.dry_run, committed, columns, warnings, rows, totals })
}

struct State {
    ctx: Ctx,
    tz: chrono_tz::Tz,
    users: Vec<User>,
}

type RowResult = crm::Result<(Outcome, Option<i64>, Option<String>)>;

fn bad(zh: impl Into<String>, en: impl Into<String>) -> CrmError {
    CrmError::Invalid(crm::text(zh, en))
}

impl State {
    /// A user by handle (with or without `@`, any case) or display name.
    fn user(&self, who: &str) -> crm::Result<&User> {
        let key = who.trim().trim_start_matches('@');
        let by_handle = self.users.iter().find(|u| u.handle.eq_ignore_ascii_case(key));
        if let Some(u) = by_handle {
            return Ok(u);
        }
        let named: Vec<&User> = self.users.iter().filter(|u| u.name == key).collect();
        match named.as_slice() {
            [one] => Ok(one),
            [] => Err(bad(format!("没有用户「{key}」"), format!("no user `{key}`"))),
            _ => Err(bad(format!("有多个用户叫「{key}」，请用用户名"), format!("several users are called `{key}`"))),
        }
    }
}

async fn customer_by_name(tx: &mut Tx, org_id: i64, name: &str) -> crm::Result<Option<Customer>> {
    let norm = matching::normalize_name(&matching::clean_display_name(name));
    if norm.is_empty() {
        return Ok(None);
    }
    Ok(store::customers::by_norm(tx, org_id, &norm).await?)
}

async fn existing_customer(tx: &mut Tx, org_id: i64, name: &str) -> crm::Result<Customer> {
    customer_by_name(tx, org_id, name).await?.ok_or_else(|| {
        bad(format!("客户「{name}」不存在（请先导入客户）"), format!("no customer `{name}` (import customers first)"))
    })
}

fn parse_grade(s: &str) -> crm::Result<Grade> {
    let first = s.trim().chars().next().map(|c| c.to_ascii_uppercase());
    match first {
        Some('A') => Ok(Grade::A),
        Some('B') => Ok(Grade::B),
        Some('C') => Ok(Grade::C),
        _ => Err(bad(format!("等级「{s}」应为 A、B 或 C"), format!("grade `{s}` must be A, B or C"))),
    }
}

fn split_tags(s: Option<&str>) -> Vec<String> {
    s.map(|t| t.split(TAG_SEPARATORS).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

async fn customer_row(tx: &mut Tx, st: &State, c: &Cells<'_>) -> RowResult {
    let ctx = &st.ctx;
    let name = c.get(Col::Name).ok_or_else(|| bad("客户名称不能为空", "the customer name is empty"))?;
    let grade = c.get(Col::Grade).map(parse_grade).transpose()?;
    let owner_id = c.get(Col::Owner).map(|o| st.user(o).map(|u| u.id)).transpose()?;
    let tags = split_tags(c.get(Col::Tags));
    let (customer, mut outcome, mut changed) = match customer_by_name(tx, ctx.org_id(), name).await? {
        None => {
            let new = NewCustomer {
                name: name.to_string(),
                industry: c.owned(Col::Industry),
                region: c.owned(Col::Region),
                source: c.owned(Col::Source),
                grade,
                owner_id,
                tags,
            };
            (crm::customers::create_customer(tx, ctx, new).await?, Outcome::Created, Vec::new())
        }
        Some(existing) => {
            // Fill what is empty; never overwrite.
            let mut changed = Vec::new();
            let mut fill = |have: &Option<String>, col: Col, label: &'static str| {
                let v = c.owned(col).filter(|_| have.is_none());
                if v.is_some() {
                    changed.push(label);
                }
                v
            };
            let patch = CustomerPatch {
                industry: fill(&existing.industry, Col::Industry, "industry"),
                region: fill(&existing.region, Col::Region, "region"),
                source: fill(&existing.source, Col::Source, "source"),
                grade: grade.filter(|_| existing.grade.is_none()),
                owner_id: owner_id.filter(|_| existing.owner_id.is_none()),
                add_tags: Vec::new(),
                remove_tags: Vec::new(),
            };
            if patch.grade.is_some() {
                changed.push("grade");
            }
            if patch.owner_id.is_some() {
                changed.push("owner");
            }
            let have_tags = store::customers::tags(tx, existing.id).await?;
            let add_tags: Vec<String> = tags.into_iter().filter(|t| !have_tags.contains(t)).collect();
            if !add_tags.is_empty() {
                changed.push("tags");
            }
            let customer = if changed.is_empty() {
                existing
            } else {
                crm::customers::update_customer(tx, ctx, existing.id, CustomerPatch { add_tags, ..patch }).await?
            };
            let outcome = if changed.is_empty() { Outcome::Deduplicated } else { Outcome::Updated };
            (customer, outcome, changed)
        }
    };
    if let Some(contact) = c.get(Col::Contact) {
        let phone = c.get(Col::Phone);
        let known = outcome != Outcome::Created
            && store::customers::contacts(tx, customer.id)
                .await?
                .iter()
                .any(|k| k.name == contact && (phone.is_none() || k.phone.as_deref() == phone));
        if !known {
            crm::customers::add_contact(
                tx,
                ctx,
                customer.id,
                NewContact {
                    name: contact,
                    title: c.get(Col::Title),
                    phone,
                    wechat: c.get(Col::Wechat),
                    email: c.get(Col::Email),
                },
            )
            .await?;
            if outcome == Outcome::Deduplicated {
                outcome = Outcome::Updated;
            }
            changed.push("contact");
        }
    }
    let message = match outcome {
        Outcome::Updated => Some(format!("filled: {}", changed.join(", "))),
        Outcome::Deduplicated => Some(format!("already exists as 「{}」", customer.name)),
        _ => None,
    };
    Ok((outcome, Some(customer.id), message))
}

fn parse_status(s: &str) -> Option<DealStatus> {
    match s.trim().to_lowercase().as_str() {
        "open" | "进行中" | "跟进中" | "开放" => Some(DealStatus::Open),
        "won" | "赢单" | "成交" | "已成交" => Some(DealStatus::Won),
        "lost" | "输单" | "丢单" => Some(DealStatus::Lost),
        _ => None,
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"].iter().find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

/// A date or date-time in the org's zone (a date alone is midnight); RFC 3339 keeps its offset.
fn parse_time(s: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| parse_date(s).and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc))
}

async fn deal_row(tx: &mut Tx, st: &State, c: &Cells<'_>) -> RowResult {
    let ctx = &st.ctx;
    let cust_name = c.get(Col::Customer).ok_or_else(|| bad("客户不能为空", "the customer is empty"))?;
    let title = c.get(Col::Title).ok_or_else(|| bad("商机名称不能为空", "the deal title is empty"))?;
    let customer = existing_customer(tx, ctx.org_id(), cust_name).await?;
    let amount_fen = match c.get(Col::Amount) {
        None => 0,
        Some(a) => crate::command::amount::parse_amount(a)
            .map_err(|_| bad(format!("金额「{a}」看不懂"), format!("cannot read the amount `{a}`")))?,
    };
    let expected_close = match c.get(Col::ExpectedClose) {
        None => None,
        Some(d) => Some(parse_date(d).ok_or_else(|| {
            bad(
                format!("预计成交日期「{d}」应为 2026-12-31 这样的日期"),
                format!("`{d}` is not a date like 2026-12-31"),
            )
        })?),
    };
    let mut status = match c.get(Col::Status) {
        None => DealStatus::Open,
        Some(s) => parse_status(s).ok_or_else(|| {
            bad(format!("状态「{s}」应为 进行中/赢单/输单"), format!("status `{s}` must be open, won or lost"))
        })?,
    };
    // A won/lost stage sets the status; an open one is where the deal starts.
    let mut stage = None;
    if let Some(s) = c.get(Col::Stage) {
        let found = crm::orgs::find_stage(tx, ctx.org_id(), s).await?;
        if found.outcome == DealStatus::Open {
            stage = Some(found.key);
        } else {
            status = found.outcome;
        }
    }
    let lost_reason = match c.get(Col::LostReason) {
        None => LostReason::Other,
        Some(r) => r.parse::<LostReason>().unwrap_or(LostReason::Other),
    };
    let owner_id = c.get(Col::Owner).map(|o| st.user(o).map(|u| u.id)).transpose()?;
    let want = title.trim().to_lowercase();
    let same =
        store::deals::for_customer(tx, customer.id).await?.into_iter().find(|d| d.title.trim().to_lowercase() == want);
    if let Some(deal) = same {
        if deal.expected_close.is_none() && expected_close.is_some() && deal.status == DealStatus::Open {
            let patch = DealPatch { expected_close, ..DealPatch::default() };
            crm::deals::update_deal(tx, ctx, deal.id, patch).await?;
            return Ok((Outcome::Updated, Some(deal.id), Some("filled: expected_close".into())));
        }
        return Ok((Outcome::Deduplicated, Some(deal.id), Some(format!("already exists as deal #{}", deal.id))));
    }
    let new =
        NewDeal { customer_id: customer.id, title: title.to_string(), amount_fen, stage, expected_close, owner_id };
    let deal = crm::deals::create_deal(tx, ctx, new).await?;
    match status {
        DealStatus::Open => {}
        DealStatus::Won => {
            crm::deals::close_deal(tx, ctx, deal.id, true, None, None).await?;
        }
        DealStatus::Lost => {
            crm::deals::close_deal(tx, ctx, deal.id, false, None, Some(lost_reason)).await?;
        }
    }
    Ok((Outcome::Created, Some(deal.id), None))
}

fn parse_kind(s: &str) -> Option<ActivityKind> {
    let k = s.trim().to_lowercase();
    if let Ok(kind) = k.parse::<ActivityKind>() {
        return Some(kind);
    }
    Some(match k.as_str() {
        "拜访" | "上门" | "走访" => ActivityKind::Visit,
        "电话" | "通话" | "phone" => ActivityKind::Call,
        "微信" => ActivityKind::Wechat,
        "邮件" | "邮箱" | "e-mail" => ActivityKind::Email,
        "会议" | "开会" | "meet" => ActivityKind::Meeting,
        "备注" | "笔记" | "其他" | "other" => ActivityKind::Note,
        _ => return None,
    })
}

async fn activity_row(tx: &mut Tx, st: &mut State, c: &Cells<'_>) -> RowResult {
    let org_id = st.ctx.org_id();
    let cust_name = c.get(Col::Customer).ok_or_else(|| bad("客户不能为空", "the customer is empty"))?;
    let content = c.get(Col::Content).ok_or_else(|| bad("内容不能为空", "the content is empty"))?;
    let when = c.get(Col::OccurredAt).ok_or_else(|| bad("时间不能为空", "the time is empty"))?;
    let occurred_at = parse_time(when, st.tz).ok_or_else(|| {
        bad(
            format!("时间「{when}」应为 2026-11-24 14:30 这样的格式"),
            format!("`{when}` is not a time like 2026-11-24 14:30"),
        )
    })?;
    let kind = match c.get(Col::ActivityKind) {
        None => ActivityKind::Note,
        Some(k) => parse_kind(k).ok_or_else(|| {
            bad(
                format!("类型「{k}」应为 拜访/电话/微信/邮件/会议/备注"),
                format!("kind `{k}` must be visit, call, wechat, email, meeting or note"),
            )
        })?,
    };
    let customer = existing_customer(tx, org_id, cust_name).await?;
    let user = match c.get(Col::User) {
        Some(u) => st.user(u)?.clone(),
        None => match customer.owner_id {
            Some(o) => crm::users::user_by_id(tx, org_id, o).await?,
            None => {
                return Err(bad("需要记录人（客户没有负责人）", "the row needs a user (the customer has no owner)"));
            }
        },
    };
    let dup: Option<i64> = crate::run!(tx, |conn| {
        sqlx::query_scalar(
        "SELECT id FROM activities WHERE org_id = $1 AND customer_id = $2 AND occurred_at = $3 AND content = $4 LIMIT 1"
    )
    .bind(org_id)
    .bind(customer.id)
    .bind(occurred_at)
    .bind(content)
    .fetch_optional(conn)
    .await
    })?;
    if let Some(id) = dup {
        return Ok((Outcome::Deduplicated, Some(id), Some(format!("already logged as activity #{id}"))));
    }
    // The activity is the named user's, written by the import with admin rights (like the CLI).
    let ctx = Ctx::new(
        Actor { org_id, user_id: Some(user.id), role: Role::Admin, team_id: user.team_id },
        Via::Cli,
        st.ctx.now,
    );
    let new = NewActivity {
        customer_id: customer.id,
        kind,
        content: content.to_string(),
        occurred_at: Some(occurred_at),
        next_step: c.owned(Col::NextStep),
        location: None,
        follow_up: None,
    };
    let logged = crm::activities::log_activity(tx, &ctx, new).await?;
    Ok((Outcome::Created, Some(logged.activity.id), None))
}

// ---------------------------------------------------------------------------------------------
// Export

const EXPORT_PAGE: i64 = 500;

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let f = fen.unsigned_abs();
    format!("{sign}{}.{:02}", f / 100, f % 100)
}

/// Writes every customer (one row per contact), deal or activity of the org as CSV: UTF-8 with a
/// BOM, Chinese headers unless `en`. Returns the number of data rows.
pub async fn export<W: Write>(db: &Db, kind: Kind, org_id: i64, en: bool, out: W) -> Result<u64, CsvIoError> {
    let mut out = out;
    out.write_all(b"\xEF\xBB\xBF")?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(kind.headers(en))?;
    let (org, users, stages) = {
        let mut tx = db.begin_read().await?;
        let org = crm::orgs::org_by_id(&mut tx, org_id).await?;
        let users: HashMap<i64, String> =
            crm::users::list_users(&mut tx, org_id).await?.into_iter().map(|u| (u.id, u.handle)).collect();
        let stages = crm::orgs::stages(&mut tx, org_id).await?;
        tx.commit().await?;
        (org, users, stages)
    };
    let tz = org.tz();
    let handle = |id: Option<i64>| id.and_then(|i| users.get(&i).cloned()).unwrap_or_default();
    let mut after = None;
    let mut written = 0u64;
    loop {
        let page = Page { actor: Actor::system(org_id), after, limit: EXPORT_PAGE, oldest_first: true };
        // One short read transaction per page: a long export never holds the database.
        let mut tx = db.begin_read().await?;
        let n = match kind {
            Kind::Customers => {
                let rows = store::customers::page(&mut tx, &page, &Default::default()).await?;
                for c in &rows {
                    let tags = store::customers::tags(&mut tx, c.id).await?.join(";");
                    let contacts = store::customers::contacts(&mut tx, c.id).await?;
                    let base = [
                        c.name.clone(),
                        c.industry.clone().unwrap_or_default(),
                        c.region.clone().unwrap_or_default(),
                        c.source.clone().unwrap_or_default(),
                        c.grade.map(|g| g.as_str().to_string()).unwrap_or_default(),
                        handle(c.owner_id),
                        tags,
                    ];
                    if contacts.is_empty() {
                        w.write_record(base.iter().map(String::as_str).chain(["", "", "", "", ""]))?;
                        written += 1;
                    }
                    for k in &contacts {
                        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                        let more = [k.name.clone(), opt(&k.title), opt(&k.phone), opt(&k.wechat), opt(&k.email)];
                        w.write_record(base.iter().chain(more.iter()))?;
                        written += 1;
                    }
                }
                after = rows.last().map(|c| c.id);
                rows.len()
            }
            Kind::Deals => {
                let rows = store::deals::page(&mut tx, &page, &Default::default()).await?;
                for d in &rows {
                    let stage = stages.iter().find(|s| s.key == d.stage);
                    let stage = match (stage, en) {
                        (Some(s), false) => s.name_zh.clone(),
                        _ => d.stage.clone(),
                    };
                    let status = match (d.status, en) {
                        (DealStatus::Open, false) => "进行中",
                        (DealStatus::Won, false) => "赢单",
                        (DealStatus::Lost, false) => "输单",
                        (s, true) => s.as_str(),
                    };
                    w.write_record([
                        d.customer_name.as_str(),
                        &d.title,
                        &yuan(d.amount_fen),
                        &stage,
                        &d.expected_close.map(|x| x.to_string()).unwrap_or_default(),
                        &handle(Some(d.owner_id)),
                        status,
                        d.lost_reason.map(|r| r.as_str()).unwrap_or_default(),
                    ])?;
                    written += 1;
                }
                after = rows.last().map(|d| d.id);
                rows.len()
            }
            Kind::Activities => {
                let rows = store::activities::page(&mut tx, &page, &Default::default()).await?;
                for a in &rows {
                    let kind = if en { a.kind.as_str() } else { a.kind.zh() };
                    let at = a.occurred_at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string();
                    w.write_record([
                        a.customer_name.as_str(),
                        kind,
                        &at,
                        &a.content,
                        &handle(Some(a.user_id)),
                        a.next_step.as_deref().unwrap_or_default(),
                    ])?;
                    written += 1;
                }
                after = rows.last().map(|a| a.id);
                rows.len()
            }
        };
        tx.commit().await?;
        if (n as i64) < EXPORT_PAGE {
            break;
        }
    }
    w.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_map_per_kind() {
        assert_eq!(Kind::Customers.column(" 公司 "), Some(Col::Name));
        assert_eq!(Kind::Customers.column("Company"), Some(Col::Name));
        assert_eq!(Kind::Customers.column("负责人"), Some(Col::Owner));
        assert_eq!(Kind::Deals.column("客户"), Some(Col::Customer));
        assert_eq!(Kind::Deals.column("expected_close"), Some(Col::ExpectedClose));
        assert_eq!(Kind::Activities.column("Occurred_At"), Some(Col::OccurredAt));
        assert_eq!(Kind::Customers.column("备注"), None);
        for kind in [Kind::Customers, Kind::Deals, Kind::Activities] {
            for en in [false, true] {
                for h in kind.headers(en) {
                    assert!(kind.column(h).is_some(), "{kind:?} {h}");
                }
            }
        }
    }

    #[test]
    fn detects_and_decodes_gbk_and_bom() {
        let dir = tempfile::tempdir().expect("dir");
        let (gbk, _, _) = encoding_rs::GBK.encode("客户名称,行业\n海尔,制造\n");
        let p = dir.path().join("gbk.csv");
        std::fs::write(&p, &gbk).expect("write");
        assert_eq!(detect_encoding(&p).expect("detect"), encoding_rs::GB18030);
        let mut s = String::new();
        DecodeReader::new(std::fs::File::open(&p).expect("open"), encoding_rs::GB18030)
            .read_to_string(&mut s)
            .expect("decode");
        assert_eq!(s, "客户名称,行业\n海尔,制造\n");
        let p = dir.path().join("bom.csv");
        std::fs::write(&p, "\u{FEFF}客户名称\n海尔\n").expect("write");
        assert_eq!(detect_encoding(&p).expect("detect"), encoding_rs::UTF_8);
        let mut s = String::new();
        DecodeReader::new(std::fs::File::open(&p).expect("open"), encoding_rs::UTF_8)
            .read_to_string(&mut s)
            .expect("decode");
        assert_eq!(s, "客户名称\n海尔\n");
        // Forced UTF-8 on GBK bytes is an error, not mojibake.
        let mut s = String::new();
        assert!(DecodeReader::new(&gbk[..], encoding_rs::UTF_8).read_to_string(&mut s).is_err());
    }

    #[test]
    fn parses_times_dates_and_kinds() {
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(
            parse_time("2026-11-24 14:30", tz).map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-24T06:30:00+00:00")
        );
        assert_eq!(parse_time("2026/11/24", tz).map(|t| t.to_rfc3339()).as_deref(), Some("2026-11-23T16:00:00+00:00"));
        assert!(parse_time("昨天", tz).is_none());
        assert_eq!(parse_date("2026年12月31日"), NaiveDate::from_ymd_opt(2026, 12, 31));
        assert_eq!(parse_kind("拜访"), Some(ActivityKind::Visit));
        assert_eq!(parse_kind("Call"), Some(ActivityKind::Call));
        assert_eq!(yuan(5_000_012), "50000.12");
        assert_eq!(crate::command::amount::parse_amount("50000.12").ok(), Some(5_000_012));
    }
}
