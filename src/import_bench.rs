//! `chatcrm bench import`: generates a customer CSV (with contacts and tags) in a temporary file
//! and imports it through [`crate::csv_io`], on a temporary SQLite file or a PostgreSQL URL.
//! Reports rows/s and the process's peak RSS (VmHWM), then exports the table back out.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::DatabaseKind;
use crate::crm::{self, Via};
use crate::csv_io::{self, EncodingChoice, ImportOptions, Kind};
use crate::store::{Db, DbOptions};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub database: &'static str,
    pub rows: u64,
    pub file_bytes: u64,
    pub generate_seconds: f64,
    pub import_seconds: f64,
    pub rows_per_second: f64,
    pub export_seconds: f64,
    pub export_rows_per_second: f64,
    /// Peak resident set size of the process, KiB (VmHWM; `None` off Linux).
    pub peak_rss_kib: Option<u64>,
    pub created: usize,
    pub rejected: usize,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "import {} customers on {}: {:.1}s, {:.0} rows/s; export {:.1}s, {:.0} rows/s; peak RSS {} (file {:.1} MB)\n",
            self.rows,
            self.database,
            self.import_seconds,
            self.rows_per_second,
            self.export_seconds,
            self.export_rows_per_second,
            self.peak_rss_kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            self.file_bytes as f64 / 1e6,
        )
    }
}

/// VmHWM from /proc/self/status, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Deletes a file when dropped.
struct TempPath(Option<std::path::PathBuf>);

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
            // SQLite's WAL side files.
            for ext in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
            }
        }
    }
}

const REGIONS: [&str; 6] = ["青岛", "上海", "北京", "深圳", "杭州", "成都"];
const INDUSTRIES: [&str; 5] = ["制造业", "零售", "互联网", "物流", "教育"];

/// Writes `rows` distinct customers (Chinese headers, a contact each, tags) to `path`.
fn generate(path: &std::path::Path, rows: u64) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::new(file);
    w.write_all("\u{FEFF}客户名称,行业,地区,来源,等级,标签,联系人,职位,电话,邮箱\n".as_bytes())?;
    for i in 0..rows {
        // Digits survive name normalisation, so every row is a distinct customer.
        writeln!(
            w,
            "{region}{i}号商贸有限公司,{ind},{region},展会,{grade},重点;{region},联系人{i},采购经理,1{:010},c{i}@example.com",
            13_000_000_000u64 + i,
            region = REGIONS[(i % 6) as usize],
            ind = INDUSTRIES[(i % 5) as usize],
            grade = ["A", "B", "C"][(i % 3) as usize],
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

pub async fn run(rows: u64, database_url: Option<String>) -> anyhow::Result<Report> {
    ensure!((1..=10_000_000).contains(&rows), "--rows must be between 1 and 10000000");
    let (url, _db_file) = match database_url {
        Some(u) => (u, TempPath(None)),
        None => {
            let p = std::env::temp_dir().join(format!("chatcrm-bench-import-{}.db", uuid::Uuid::new_v4().simple()));
            (format!("sqlite://{}", p.display()), TempPath(Some(p)))
        }
    };
    let kind = DatabaseKind::of(&url).map_err(anyhow::Error::msg)?;
    if kind == DatabaseKind::Postgres {
        crate::bench::ensure_pg_database(&url, true).await?;
    }
    let db = Db::connect(&DbOptions::new(url)).await.context("cannot open the database")?;
    db.migrate().await?;
    let now = Clock::system().now();
    let mut tx = db.begin().await?;
    let org = crm::orgs::create_org(&mut tx, "bench import", "Asia/Shanghai", Via::Cli, now).await?;
    tx.commit().await?;

    let csv_path = std::env::temp_dir().join(format!("chatcrm-bench-import-{}.csv", uuid::Uuid::new_v4().simple()));
    let _csv_file = TempPath(Some(csv_path.clone()));
    let started = Instant::now();
    let file_bytes = generate(&csv_path, rows)?;
    let generate_seconds = started.elapsed().as_secs_f64();

    let opts = ImportOptions { org_id: org.id, dry_run: false, skip_bad: false, encoding: EncodingChoice::Auto, now };
    let started = Instant::now();
    let report = csv_io::import_file(&db, Kind::Customers, &csv_path, &opts).await?;
    let import_seconds = started.elapsed().as_secs_f64();
    ensure!(report.committed, "the import was not committed: {} rows rejected", report.totals.rejected);

    let started = Instant::now();
    let exported = csv_io::export(&db, Kind::Customers, org.id, false, std::io::sink()).await?;
    let export_seconds = started.elapsed().as_secs_f64();
    db.close().await;
    Ok(Report {
        database: match kind {
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "PostgreSQL",
        },
        rows,
        file_bytes,
        generate_seconds,
        import_seconds,
        rows_per_second: rows as f64 / import_seconds.max(1e-9),
        export_seconds,
        export_rows_per_second: exported as f64 / export_seconds.max(1e-9),
        peak_rss_kib: peak_rss_kib(),
        created: report.totals.created,
        rejected: report.totals.rejected,
    })
}
