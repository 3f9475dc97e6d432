//! CSV lead import (`chatcrm import leads`): every row goes through the same intake as a lead
//! typed in chat ([`crm::leads::intake`]): dedupe against open leads (and earlier rows of the same
//! file), against customers, then the assignment rules.
//!
//! The whole file runs in one transaction. A dry run rolls it back at the end, so what it reports
//! is exactly what a real import would do (rules, round-robin turns, duplicates within the file).
//! A real import commits the rows that went in; rows with errors, duplicates and existing
//! customers are skipped and reported (intake itself records a duplicate on the existing lead).
//!
//! The file is checked as a whole first: UTF-8 (with or without a BOM), a header row, and a
//! company column. Failing any of these is an [`ImportError`] and nothing is written.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::crm::leads::{Intake, NewLead};
use crate::crm::{self, Actor, CrmError, Ctx, Lang, Via};
use crate::outbox::Routes;
use crate::store::{self, Db, Savepoint};

/// A lead field a CSV column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Company,
    Contact,
    Phone,
    Email,
    Source,
    Region,
    Industry,
    Tags,
}

impl Field {
    /// The field a header names (Chinese or English, case and surrounding space ignored).
    pub fn from_header(header: &str) -> Option<Field> {
        let h = header.trim().to_lowercase();
        Some(match h.as_str() {
            "公司" | "公司名称" | "company" | "company name" | "company_name" => Field::Company,
            "联系人" | "contact" | "contact name" | "contact_name" => Field::Contact,
            "电话" | "手机" | "phone" | "mobile" => Field::Phone,
            "邮箱" | "email" | "e-mail" => Field::Email,
            "来源" | "source" => Field::Source,
            "地区" | "region" => Field::Region,
            "行业" | "industry" => Field::Industry,
            "标签" | "tags" | "tag" => Field::Tags,
            _ => return None,
        })
    }
}

/// Tags in one cell are separated by any of these.
const TAG_SEPARATORS: [char; 5] = [';', '；', '、', '|', '｜'];

/// A problem with the file as a whole: nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not UTF-8 text (first bad byte on line {line}); save it as \"CSV UTF-8\"")]
    NotUtf8 { line: u64 },
    #[error("the file is empty: it needs a header row naming the columns")]
    Empty,
    #[error("no company column: the header row needs one of 公司, 公司名称 or company (found: {found})")]
    NoCompanyColumn { found: String },
    #[error("the file is not valid CSV: {0}")]
    Csv(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// One data row of the file, ready for intake.
#[derive(Debug, Clone)]
pub struct CsvRow {
    /// The line of the file the row starts on (the header is line 1).
    pub row: u64,
    pub lead: NewLead,
}

/// The file read and mapped onto lead fields, before anything touches the database.
#[derive(Debug, Clone, Default)]
pub struct ParsedCsv {
    /// Each header and the field it fills (`None`: ignored).
    pub columns: Vec<(String, Option<Field>)>,
    pub rows: Vec<CsvRow>,
    pub warnings: Vec<String>,
}

/// Reads a CSV file (UTF-8, optional BOM, header row). Blank rows are skipped; unknown columns
/// are ignored with a warning; a file without a company column is refused.
pub fn parse_csv(data: &[u8]) -> Result<ParsedCsv, ImportError> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let line = data[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        ImportError::NotUtf8 { line }
    })?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(ImportError::Empty);
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| ImportError::Csv(e.to_string()))?.clone();
    let mut warnings = Vec::new();
    let mut columns = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let field = Field::from_header(h);
        if field.is_none() {
            if h.trim().is_empty() {
                warnings.push(format!("column {} has no name: ignored", i + 1));
            } else {
                warnings.push(format!("column 「{}」 is not a lead field: ignored", h.trim()));
            }
        }
        columns.push((h.trim().to_string(), field));
    }
    if !columns.iter().any(|(_, f)| *f == Some(Field::Company)) {
        let found = columns.iter().map(|(h, _)| format!("「{h}」")).collect::<Vec<_>>().join(" ");
        return Err(ImportError::NoCompanyColumn { found: if found.is_empty() { "nothing".into() } else { found } });
    }
    for field in
        [Field::Contact, Field::Phone, Field::Email, Field::Source, Field::Region, Field::Industry, Field::Tags]
    {
        let named: Vec<&str> = columns.iter().filter(|(_, f)| *f == Some(field)).map(|(h, _)| h.as_str()).collect();
        if named.len() > 1 {
            warnings.push(format!("columns {} fill the same field: the first non-empty one is used", named.join(" ")));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ImportError::Csv(e.to_string()))?;
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let row = record.position().map_or(0, |p| p.line());
        // The first non-empty cell among the columns that fill `field`.
        let get = |field: Field| -> Option<String> {
            columns
                .iter()
                .enumerate()
                .filter(|(_, (_, f))| *f == Some(field))
                .filter_map(|(i, _)| record.get(i).map(str::trim))
                .find(|v| !v.is_empty())
                .map(str::to_string)
        };
        let tags = get(Field::Tags)
            .map(|t| t.split(TAG_SEPARATORS).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let lead = NewLead {
            company: get(Field::Company).unwrap_or_default(),
            contact_name: get(Field::Contact),
            phone: get(Field::Phone),
            email: get(Field::Email),
            source: get(Field::Source),
            region: get(Field::Region),
            industry: get(Field::Industry),
            to_pool: false,
            tags,
        };
        rows.push(CsvRow { row, lead });
    }
    Ok(ParsedCsv { columns, rows, warnings })
}

/// What happened to one row (in a dry run: what would happen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A new lead, given to `owner` by `rule` or put in the pool; `reason` is the routing line.
    /// `lead_id` is `None` in a dry run.
    Created {
        lead_id: Option<i64>,
        owner_id: Option<i64>,
        owner_name: Option<String>,
        rule: Option<String>,
        reason: String,
        /// Whether the new owner's notice was queued.
        notice_queued: bool,
    },
    /// An open lead with the same phone or company exists (`same_file_row` when an earlier row of
    /// this file made it; its `lead_id` is then `None` in a dry run).
    Duplicate { lead_id: Option<i64>, owner_name: Option<String>, same_file_row: Option<u64> },
    /// The company is already a customer.
    Customer { customer_id: i64, customer_name: String },
    /// The row does not pass validation; `message` says why (in Chinese, as the bot would).
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowReport {
    /// The line of the file the row starts on (the header is line 1).
    pub row: u64,
    pub company: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub rows: usize,
    pub created: usize,
    /// Of `created`: given to a rep by a rule.
    pub assigned: usize,
    /// Of `created`: put in the public pool.
    pub pooled: usize,
    pub duplicates: usize,
    pub customers: usize,
    pub errors: usize,
}

impl Totals {
    pub fn skipped(&self) -> usize {
        self.duplicates + self.customers + self.errors
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Whether the transaction was committed (never in a dry run).
    pub committed: bool,
    pub columns: Vec<(String, Option<Field>)>,
    pub warnings: Vec<String>,
    pub rows: Vec<RowReport>,
    pub totals: Totals,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub org_id: i64,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
}

/// Parses `data` and imports its rows into the org, as the system actor via the CLI.
pub async fn import_leads(
    db: &Db,
    routes: &Routes,
    data: &[u8],
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let parsed = parse_csv(data)?;
    import_rows(db, routes, parsed, opts).await
}

/// Runs parsed rows through intake in one transaction: rolled back in a dry run, else committed.
/// A database failure aborts the whole import (nothing is committed).
pub async fn import_rows(
    db: &Db,
    routes: &Routes,
    parsed: ParsedCsv,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let ctx = Ctx::new(Actor::system(opts.org_id), Via::Cli, opts.now);
    let mut tx = db.begin().await?;
    let mut rows = Vec::with_capacity(parsed.rows.len());
    let mut totals = Totals { rows: parsed.rows.len(), ..Totals::default() };
    // Leads made by this file, by id → the row that made them.
    let mut made: Vec<(i64, u64)> = Vec::new();
    for CsvRow { row, lead } in parsed.rows {
        let mut company = lead.company.trim().to_string();
        // Each row in its own savepoint, so a row that fails part-way leaves nothing behind.
        store::savepoint(&mut tx, Savepoint::Begin).await?;
        let outcome = match crm::leads::intake(&mut tx, &ctx, lead).await {
            Ok(Intake::Created { lead, routed }) => {
                made.push((lead.id, row));
                company = lead.company.clone();
                let rule = routed.as_ref().and_then(|r| r.rule.clone());
                let mut notice_queued = false;
                if let Some(owner) = lead.owner_id {
                    let line = match &rule {
                        Some(rule) => format!("按规则『{rule}』分配给你"),
                        None => "系统导入分配给你".to_string(),
                    };
                    notice_queued =
                        crate::outbox::notify_lead_assigned(&mut tx, routes, &lead, owner, &line, opts.now).await?;
                    totals.assigned += 1;
                } else {
                    totals.pooled += 1;
                }
                totals.created += 1;
                let reason = routed
                    .as_ref()
                    .map(|r| r.reason.clone())
                    .or_else(|| lead.assign_reason.clone())
                    .unwrap_or_default();
                Outcome::Created {
                    lead_id: (!opts.dry_run).then_some(lead.id),
                    owner_id: lead.owner_id,
                    owner_name: routed.and_then(|r| r.user_name),
                    rule,
                    reason,
                    notice_queued,
                }
            }
            Ok(Intake::Duplicate { lead, owner_name }) => {
                totals.duplicates += 1;
                let same_file_row = made.iter().find(|(id, _)| *id == lead.id).map(|(_, r)| *r);
                let lead_id = if opts.dry_run && same_file_row.is_some() { None } else { Some(lead.id) };
                Outcome::Duplicate { lead_id, owner_name, same_file_row }
            }
            Ok(Intake::Customer { customer }) => {
                totals.customers += 1;
                Outcome::Customer { customer_id: customer.id, customer_name: customer.name }
            }
            Err(CrmError::Db(e)) => return Err(ImportError::Db(e)),
            Err(e) => {
                store::savepoint(&mut tx, Savepoint::Rollback).await?;
                totals.errors += 1;
                Outcome::Error { message: e.user_message(Lang::Zh) }
            }
        };
        store::savepoint(&mut tx, Savepoint::Release).await?;
        rows.push(RowReport { row, company, outcome });
    }
    let committed = if opts.dry_run {
        tx.rollback().await?;
        false
    } else {
        tx.commit().await?;
        true
    };
    Ok(ImportReport {
        dry_run: opts.dry_run,
        committed,
        columns: parsed.columns,
        warnings: parsed.warnings,
        rows,
        totals,
    })
}

impl ImportReport {
    /// 0 when every row went in (or would), 1 when some rows were (or would be) skipped.
    pub fn exit_code(&self) -> i32 {
        if self.totals.skipped() == 0 { 0 } else { 1 }
    }

    /// The per-row report and the totals, one line per row, for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let shown = |r: &RowReport| if r.company.is_empty() { "(no company)".to_string() } else { r.company.clone() };
        let width = self.rows.iter().map(|r| display_width(&shown(r))).max().unwrap_or(0).min(40);
        for r in &self.rows {
            let company = shown(r);
            let pad = width.saturating_sub(display_width(&company));
            let what = match &r.outcome {
                Outcome::Created { lead_id, owner_name, reason, .. } => {
                    let made = match lead_id {
                        Some(id) => format!("created lead #{id}"),
                        None => "would create".to_string(),
                    };
                    let to = owner_name.as_deref().unwrap_or("pool");
                    format!("{made} → {to} ({reason})")
                }
                Outcome::Duplicate { lead_id, owner_name, same_file_row } => {
                    let owner = owner_name.as_deref().unwrap_or("pool");
                    match (lead_id, same_file_row) {
                        (Some(id), Some(row)) => format!("duplicate of row {row} (lead #{id}, {owner})"),
                        (None, Some(row)) => format!("duplicate of row {row} ({owner})"),
                        (Some(id), None) => format!("duplicate of lead #{id} ({owner})"),
                        (None, None) => format!("duplicate ({owner})"),
                    }
                }
                Outcome::Customer { customer_id, customer_name } => {
                    format!("already a customer #{customer_id} {customer_name}")
                }
                Outcome::Error { message } => format!("error: {message}"),
            };
            out.push_str(&format!("row {:<4} {company}{}  {what}\n", r.row, " ".repeat(pad)));
        }
        let t = &self.totals;
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let created = if self.dry_run { "would be created" } else { "created" };
        out.push_str(&format!(
            "{}{}: {} {created} ({} assigned, {} to the pool), {}, {}, {}\n",
            if self.dry_run { "dry run, " } else { "" },
            plural(t.rows, "row", "rows"),
            t.created,
            t.assigned,
            t.pooled,
            plural(t.duplicates, "duplicate", "duplicates"),
            plural(t.customers, "already a customer", "already customers"),
            plural(t.errors, "error", "errors"),
        ));
        let skipped = t.skipped();
        match (self.dry_run, skipped) {
            (true, 0) => out.push_str("dry run: nothing was written\n"),
            (true, n) => {
                out.push_str(&format!("dry run: nothing was written; {} would be skipped\n", plural(n, "row", "rows")))
            }
            (false, 0) => out.push_str(&format!("imported all {}\n", plural(t.rows, "row", "rows"))),
            (false, n) => out.push_str(&format!(
                "imported {} of {}; skipped {} (see above; duplicates are recorded on the existing leads)\n",
                t.created,
                plural(t.rows, "row", "rows"),
                plural(n, "row", "rows")
            )),
        }
        out
    }
}

/// Terminal columns: CJK and other wide characters take two.
fn display_width(s: &str) -> usize {
    s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_map_in_both_languages() {
        assert_eq!(Field::from_header(" 公司名称 "), Some(Field::Company));
        assert_eq!(Field::from_header("Company"), Some(Field::Company));
        assert_eq!(Field::from_header("手机"), Some(Field::Phone));
        assert_eq!(Field::from_header("TAGS"), Some(Field::Tags));
        assert_eq!(Field::from_header("备注"), None);
    }

    #[test]
    fn parses_bom_tags_and_blank_rows() {
        let csv =
            "\u{FEFF}公司,电话,手机,标签,备注\n海尔,,138 0000 0000,展会;重点、华东|老客户,x\n,,,,\n\"A, Inc\",1,,,\n";
        let p = parse_csv(csv.as_bytes()).expect("parse");
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].row, 2);
        assert_eq!(p.rows[0].lead.company, "海尔");
        assert_eq!(p.rows[0].lead.phone.as_deref(), Some("138 0000 0000"));
        assert_eq!(p.rows[0].lead.tags, vec!["展会", "重点", "华东", "老客户"]);
        assert_eq!(p.rows[1].row, 4);
        assert_eq!(p.rows[1].lead.company, "A, Inc");
        assert!(p.warnings.iter().any(|w| w.contains("备注")), "{:?}", p.warnings);
        assert!(p.warnings.iter().any(|w| w.contains("电话")), "{:?}", p.warnings);
    }

    #[test]
    fn refuses_files_without_company_or_not_utf8() {
        assert!(matches!(parse_csv("name,phone\nx,1\n".as_bytes()), Err(ImportError::NoCompanyColumn { .. })));
        assert!(matches!(parse_csv(b""), Err(ImportError::Empty)));
        assert!(matches!(parse_csv(b"company\n\xb9\xab\xcb\xbe\n"), Err(ImportError::NotUtf8 { line: 2 })));
    }
}
