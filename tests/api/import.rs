//! CSV lead import (`chatcrm::import`) on both backends, and on SQLite the `chatcrm import leads`,
//! `chatcrm rules …` and `chatcrm users leave|back` commands. Every outcome is checked against
//! the database afterwards.

use super::helpers::*;
use crate::both_backends;

use std::process::Command;

use chatcrm::crm::lead_rules::{self, NewRule, Strategy, Target};
use chatcrm::crm::leads::{Intake, NewLead};
use chatcrm::crm::{self, Actor, Ctx, Lead, LeadStatus, User, Via};
use chatcrm::import::{self, ImportError, ImportOptions, ImportReport, Outcome};
use chatcrm::outbox::Routes;
use chatcrm::store::{Db, DbOptions};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chatcrm");

/// Chinese headers and a BOM; an unknown column (备注). Lines:
/// 2 a good row matching the 青岛 rule; 3 the existing open lead's phone written differently;
/// 4 a name variant of the customer 海尔; 5 a repeat of line 2 (phone written differently);
/// 6 a bad phone; 7 an empty company; 8 a good row no rule matches (→ pool).
const MIXED_CSV: &str = "\u{FEFF}公司名称,联系人,手机,地区,行业,标签,备注\n\
    青岛啤酒股份有限公司,张三,13900000001,青岛市,制造业,展会;重点,老板很忙\n\
    新名字商贸,李四,+86 138-0000-0000,上海,,,\n\
    青岛海尔集团有限公司,王五,13900000003,青岛,,,\n\
    青岛啤酒股份有限公司,张三,139-0000-0001,青岛,,,\n\
    坏电话公司,赵六,12,北京,,,\n\
    ,孙七,13900000006,深圳,,,\n\
    杭州云帆网络,周八,13900000008,杭州,互联网,,\n";

const EXISTING_PHONE: &str = "13800000000";

/// The world, an open lead of r2's with [`EXISTING_PHONE`], the customer 海尔 (r3's) and the
/// rule 「青岛」 (region 青岛 → r1).
struct Fixture {
    w: World,
    existing: Lead,
    customer: crm::Customer,
    rule: lead_rules::Rule,
}

async fn fixture(db: Db) -> Fixture {
    let w = World::new(db).await;
    let customer = w.customer(&w.r3, "海尔").await;
    let mut tx = w.tx().await;
    let existing = match crm::leads::intake(
        &mut tx,
        &w.ctx(&w.r2),
        NewLead { company: "老客户物流".into(), phone: Some(EXISTING_PHONE.into()), ..Default::default() },
    )
    .await
    .expect("existing lead")
    {
        Intake::Created { lead, .. } => lead,
        other => panic!("existing lead not created: {other:?}"),
    };
    let rule = lead_rules::create_rule(
        &mut tx,
        &system(&w),
        NewRule {
            name: "青岛".into(),
            position: None,
            region_prefix: Some("青岛".into()),
            industry: None,
            source: None,
            tag: None,
            target: Target::User(w.r1.id),
            strategy: Strategy::RoundRobin,
            capacity: None,
        },
    )
    .await
    .expect("rule");
    tx.commit().await.expect("commit fixture");
    assert_eq!(existing.owner_id, Some(w.r2.id));
    Fixture { w, existing, customer, rule }
}

fn system(w: &World) -> Ctx {
    Ctx::new(Actor::system(w.org.id), Via::Cli, t0())
}

async fn run_import(w: &World, csv: &str, dry_run: bool) -> Result<ImportReport, ImportError> {
    let opts = ImportOptions { org_id: w.org.id, dry_run, now: t0() };
    import::import_leads(&w.db, &Routes::default(), csv.as_bytes(), &opts).await
}

async fn scalar(db: &Db, sql: &'static str, id: i64) -> i64 {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.expect("query"),
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await.expect("query"),
    }
}

async fn outbox_count(db: &Db) -> i64 {
    let sql = "SELECT COUNT(*) FROM outbox";
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count outbox"),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count outbox"),
    }
}

async fn duplicate_submissions(db: &Db, lead_id: i64) -> i64 {
    let sql = "SELECT COUNT(*) FROM audit_log WHERE action = 'duplicate_submission' AND entity = 'lead' \
               AND entity_id = $1";
    scalar(db, sql, lead_id).await
}

/// Leads, audit rows and outbox messages: what an import may write.
async fn footprint(w: &World) -> (i64, i64, i64) {
    (w.count("leads").await, w.count("audit_log").await, outbox_count(&w.db).await)
}

async fn lead(w: &World, id: i64) -> Lead {
    let mut tx = w.db.begin_read().await.expect("begin");
    let l = chatcrm::store::leads::by_id(&mut tx, w.org.id, id).await.expect("lead").expect("lead exists");
    tx.commit().await.expect("commit");
    l
}

async fn lead_by_company(w: &World, company: &str) -> Vec<Lead> {
    let ids: Vec<i64> = match &w.db {
        Db::Sqlite(p) => sqlx::query_scalar("SELECT id FROM leads WHERE company = $1 ORDER BY id")
            .bind(company)
            .fetch_all(p)
            .await
            .expect("ids"),
        Db::Postgres(p) => sqlx::query_scalar("SELECT id FROM leads WHERE company = $1 ORDER BY id")
            .bind(company)
            .fetch_all(p)
            .await
            .expect("ids"),
    };
    let mut out = Vec::new();
    for id in ids {
        out.push(lead(w, id).await);
    }
    out
}

/// The per-row outcomes both runs must report (lead ids aside).
fn check_rows(f: &Fixture, r: &ImportReport) {
    let rows: Vec<u64> = r.rows.iter().map(|row| row.row).collect();
    assert_eq!(rows, vec![2, 3, 4, 5, 6, 7, 8], "{r:#?}");
    let out = |line: u64| &r.rows.iter().find(|row| row.row == line).expect("row").outcome;
    match out(2) {
        Outcome::Created { owner_id, owner_name, rule, reason, .. } => {
            assert_eq!(*owner_id, Some(f.w.r1.id));
            assert_eq!(owner_name.as_deref(), Some("r1"));
            assert_eq!(rule.as_deref(), Some("青岛"));
            assert!(reason.contains("按规则『青岛』"), "{reason}");
        }
        other => panic!("line 2: {other:?}"),
    }
    match out(3) {
        Outcome::Duplicate { lead_id, owner_name, same_file_row } => {
            assert_eq!(*lead_id, Some(f.existing.id));
            assert_eq!(owner_name.as_deref(), Some("r2"));
            assert_eq!(*same_file_row, None);
        }
        other => panic!("line 3: {other:?}"),
    }
    assert_eq!(
        out(4),
        &Outcome::Customer { customer_id: f.customer.id, customer_name: "海尔".into() },
        "青岛海尔集团有限公司 is 海尔"
    );
    match out(5) {
        Outcome::Duplicate { owner_name, same_file_row, .. } => {
            assert_eq!(*same_file_row, Some(2));
            assert_eq!(owner_name.as_deref(), Some("r1"));
        }
        other => panic!("line 5: {other:?}"),
    }
    assert_eq!(out(6), &Outcome::Error { message: "电话号码看不懂，例如 13800000000".into() });
    assert_eq!(out(7), &Outcome::Error { message: "公司名称不能为空".into() });
    match out(8) {
        Outcome::Created { owner_id: None, owner_name: None, rule: None, reason, notice_queued: false, .. } => {
            assert_eq!(reason, "没有匹配的分配规则，进入公海");
        }
        other => panic!("line 8: {other:?}"),
    }
    let t = &r.totals;
    assert_eq!(
        (t.rows, t.created, t.assigned, t.pooled, t.duplicates, t.customers, t.errors),
        (7, 2, 1, 1, 2, 1, 2),
        "{t:?}"
    );
    assert_eq!(r.exit_code(), 1);
    assert!(r.warnings.iter().any(|w| w.contains("备注")), "{:?}", r.warnings);
}

async fn dry_run_reports_every_row_and_writes_nothing(db: Db) {
    let f = fixture(db).await;
    let before = footprint(&f.w).await;
    let dups_before = duplicate_submissions(&f.w.db, f.existing.id).await;

    let r = run_import(&f.w, MIXED_CSV, true).await.expect("dry run");
    check_rows(&f, &r);
    assert!(r.dry_run && !r.committed);
    for row in &r.rows {
        match &row.outcome {
            Outcome::Created { lead_id, .. } => assert_eq!(*lead_id, None, "no lead id in a dry run"),
            Outcome::Duplicate { lead_id, same_file_row: Some(_), .. } => assert_eq!(*lead_id, None),
            _ => {}
        }
    }
    let Outcome::Created { notice_queued, .. } = &r.rows[0].outcome else { panic!("{r:?}") };
    assert!(notice_queued, "the notice is queued (and rolled back) as in a real run");
    let text = r.render();
    assert!(text.contains("would create → r1"), "{text}");
    assert!(text.contains(&format!("duplicate of lead #{} (r2)", f.existing.id)), "{text}");
    assert!(text.contains(&format!("already a customer #{} 海尔", f.customer.id)), "{text}");
    assert!(text.contains("duplicate of row 2 (r1)"), "{text}");
    assert!(text.contains("error: 公司名称不能为空"), "{text}");
    assert!(text.contains("nothing was written; 5 rows would be skipped"), "{text}");

    assert_eq!(footprint(&f.w).await, before, "leads, audit rows and outbox unchanged");
    assert_eq!(duplicate_submissions(&f.w.db, f.existing.id).await, dups_before);
    assert!(lead_by_company(&f.w, "青岛啤酒股份有限公司").await.is_empty());

    // The same dry run again gives the same answer: nothing was left behind.
    let again = run_import(&f.w, MIXED_CSV, true).await.expect("dry run again");
    assert_eq!(again.rows, r.rows);
}

async fn import_creates_only_good_rows_and_routes_them(db: Db) {
    let f = fixture(db).await;
    let (leads, _, outbox) = footprint(&f.w).await;

    let r = run_import(&f.w, MIXED_CSV, false).await.expect("import");
    check_rows(&f, &r);
    assert!(!r.dry_run && r.committed);
    assert_eq!(f.w.count("leads").await, leads + 2, "only the two good rows");

    let made = lead_by_company(&f.w, "青岛啤酒股份有限公司").await;
    assert_eq!(made.len(), 1, "the repeat on line 5 made no second lead");
    let beer = &made[0];
    assert_eq!(beer.owner_id, Some(f.w.r1.id));
    assert_eq!(beer.status, LeadStatus::Assigned);
    let reason = beer.assign_reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with(&format!("按规则『{}』", f.rule.name)), "{reason}");
    assert_eq!(beer.phone_norm.as_deref(), Some("13900000001"));
    assert_eq!(beer.contact_name.as_deref(), Some("张三"));
    assert_eq!(beer.region.as_deref(), Some("青岛市"));
    assert_eq!(beer.industry.as_deref(), Some("制造业"));
    assert_eq!(beer.tags, "展会,重点");
    let Outcome::Created { lead_id, notice_queued, .. } = &r.rows[0].outcome else { panic!("{r:?}") };
    assert_eq!(*lead_id, Some(beer.id));
    assert!(notice_queued);
    let Outcome::Duplicate { lead_id, .. } = &r.rows[3].outcome else { panic!("{r:?}") };
    assert_eq!(*lead_id, Some(beer.id), "line 5 names the lead line 2 made");

    let pooled = lead_by_company(&f.w, "杭州云帆网络").await;
    assert_eq!(pooled.len(), 1);
    assert_eq!((pooled[0].owner_id, pooled[0].status), (None, LeadStatus::Pool));
    assert_eq!(pooled[0].assign_reason.as_deref(), Some("没有匹配的分配规则，进入公海"));

    for skipped in ["新名字商贸", "青岛海尔集团有限公司", "坏电话公司"] {
        assert!(lead_by_company(&f.w, skipped).await.is_empty(), "{skipped} was skipped");
    }
    // Duplicates are linked to the leads they repeat; the existing lead is untouched.
    assert_eq!(duplicate_submissions(&f.w.db, f.existing.id).await, 1);
    assert_eq!(duplicate_submissions(&f.w.db, beer.id).await, 1);
    assert_eq!(lead(&f.w, f.existing.id).await.owner_id, Some(f.w.r2.id));
    // One notice, to r1, naming the rule.
    assert_eq!(outbox_count(&f.w.db).await, outbox + 1);
    let mut tx = f.w.db.begin_read().await.expect("begin");
    let rows = chatcrm::store::outbox::list(&mut tx, "", 10).await.expect("outbox");
    tx.commit().await.expect("commit");
    assert_eq!(rows[0].user_id, Some(f.w.r1.id));
    assert!(rows[0].body.contains("按规则『青岛』分配给你"), "{}", rows[0].body);

    // Importing the same file again: everything is a duplicate or skipped, nothing new.
    let again = run_import(&f.w, MIXED_CSV, false).await.expect("import again");
    assert_eq!((again.totals.created, again.totals.duplicates), (0, 4), "{:?}", again.totals);
    assert_eq!(f.w.count("leads").await, leads + 2);
}

async fn english_headers_without_bom(db: Db) {
    let w = World::new(db).await;
    let mut tx = w.tx().await;
    let new = NewRule {
        name: "expo".into(),
        position: None,
        region_prefix: None,
        industry: None,
        source: None,
        tag: Some("expo".into()),
        target: Target::Team(w.r1.team_id.expect("team a")),
        strategy: Strategy::RoundRobin,
        capacity: None,
    };
    lead_rules::create_rule(&mut tx, &system(&w), new).await.expect("rule");
    tx.commit().await.expect("commit");
    let csv = "Company,Contact,Phone,Email,Source,Region,Industry,Tags\n\
               Acme Ltd,Ann,13911112222,ann@acme.test,web,Shanghai,retail,vip|expo\n\
               Globex,Bob,13911113333,,,,,hot、expo\n";
    let r = run_import(&w, csv, false).await.expect("import");
    assert_eq!(r.exit_code(), 0, "{}", r.render());
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let owners: Vec<Option<i64>> = r
        .rows
        .iter()
        .map(|row| match &row.outcome {
            Outcome::Created { owner_id, .. } => *owner_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(owners, vec![Some(w.r1.id), Some(w.r2.id)], "round robin over team A by tag");
    let acme = &lead_by_company(&w, "Acme Ltd").await[0];
    assert_eq!(acme.email.as_deref(), Some("ann@acme.test"));
    assert_eq!(acme.source.as_deref(), Some("web"));
    assert_eq!(acme.tags, "vip,expo");
}

async fn file_errors_write_nothing(db: Db) {
    let w = World::new(db).await;
    let before = footprint(&w).await;
    let no_company = run_import(&w, "联系人,电话\n张三,13900000001\n", false).await;
    match no_company {
        Err(e @ ImportError::NoCompanyColumn { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("公司名称") && msg.contains("「联系人」"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let gbk = b"\xb9\xab\xcb\xbe\n\xba\xa3\xb6\xfb\n";
    let opts = ImportOptions { org_id: w.org.id, dry_run: false, now: t0() };
    let r = import::import_leads(&w.db, &Routes::default(), gbk, &opts).await;
    assert!(matches!(r, Err(ImportError::NotUtf8 { line: 1 })), "{r:?}");
    assert!(matches!(run_import(&w, "\u{FEFF}", false).await, Err(ImportError::Empty)));
    // A header and no rows is not an error.
    let empty = run_import(&w, "公司\n\n", false).await.expect("no rows");
    assert_eq!((empty.totals.rows, empty.exit_code()), (0, 0));
    assert_eq!(footprint(&w).await, before);
}

both_backends!(
    dry_run_reports_every_row_and_writes_nothing,
    import_creates_only_good_rows_and_routes_them,
    english_headers_without_bom,
    file_errors_write_nothing,
);

// --- CLI (SQLite) -----------------------------------------------------------------------------

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A SQLite database file the binary and the test share.
struct CliDb {
    dir: tempfile::TempDir,
    url: String,
}

impl CliDb {
    async fn new() -> (Self, Fixture) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let db = Db::connect(&DbOptions::new(&url)).await.expect("open sqlite");
        db.migrate().await.expect("migrate");
        let f = fixture(db).await;
        (Self { dir, url }, f)
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write csv");
        path.display().to_string()
    }

    /// The binary against this database, with no other `CHATCRM_*` variable and no backtraces.
    fn run(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path()).args(args);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("CHATCRM_") || matches!(k.as_ref(), "RUST_LOG" | "RUST_BACKTRACE" | "RUST_LIB_BACKTRACE") {
                cmd.env_remove(&key);
            }
        }
        let out = cmd.env("NO_COLOR", "1").env("CHATCRM_DATABASE_URL", &self.url).output().expect("run chatcrm");
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn expect(&self, args: &[&str], code: i32) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, Some(code), "chatcrm {args:?}: {out:#?}");
        out
    }
}

const ORG: &str = "Org One";

#[tokio::test]
async fn cli_import_dry_run_then_real() {
    let (c, f) = CliDb::new().await;
    let w = &f.w;
    let file = c.write("leads.csv", MIXED_CSV);
    let before = footprint(w).await;

    let out = c.expect(&["import", "leads", &file, "--org", ORG, "--dry-run"], 1);
    let line =
        |n: u64| out.stdout.lines().find(|l| l.starts_with(&format!("row {n} "))).unwrap_or_default().to_string();
    assert!(
        line(2).contains("青岛啤酒股份有限公司") && line(2).contains("would create → r1 (按规则『青岛』"),
        "{out:#?}"
    );
    assert!(line(3).contains(&format!("duplicate of lead #{} (r2)", f.existing.id)), "{out:#?}");
    assert!(line(4).contains(&format!("already a customer #{} 海尔", f.customer.id)), "{out:#?}");
    assert!(line(5).contains("duplicate of row 2 (r1)"), "{out:#?}");
    assert!(line(6).contains("error: 电话号码看不懂"), "{out:#?}");
    assert!(line(7).contains("(no company)") && line(7).contains("error: 公司名称不能为空"), "{out:#?}");
    assert!(line(8).contains("would create → pool (没有匹配的分配规则，进入公海)"), "{out:#?}");
    assert!(out.stdout.contains("dry run, 7 rows: 2 would be created (1 assigned, 1 to the pool)"), "{out:#?}");
    assert!(out.stdout.contains("5 rows would be skipped"), "{out:#?}");
    assert!(out.stderr.contains("warning: column 「备注」"), "{out:#?}");
    assert_eq!(footprint(w).await, before, "the dry run wrote nothing");

    let out = c.expect(&["import", "leads", &file, "--org", ORG, "--dry-run", "--json"], 1);
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON report");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["totals"]["created"], 2);
    assert_eq!(v["rows"][0]["outcome"], "created");
    assert_eq!(v["rows"][0]["owner_name"], "r1");
    assert_eq!(v["rows"][1]["outcome"], "duplicate");
    assert_eq!(v["rows"][1]["lead_id"], f.existing.id);
    assert_eq!(v["rows"][2]["outcome"], "customer");
    assert_eq!(v["rows"][4]["message"], "电话号码看不懂，例如 13800000000");
    assert_eq!(footprint(w).await, before);

    let out = c.expect(&["import", "leads", &file, "--org", ORG], 1);
    let beer = &lead_by_company(w, "青岛啤酒股份有限公司").await;
    assert_eq!(beer.len(), 1);
    assert_eq!(beer[0].owner_id, Some(w.r1.id));
    assert!(out.stdout.contains(&format!("created lead #{} → r1", beer[0].id)), "{out:#?}");
    assert!(out.stdout.contains("imported 2 of 7 rows; skipped 5 rows"), "{out:#?}");
    assert_eq!(w.count("leads").await, before.0 + 2);
    assert_eq!(outbox_count(&w.db).await, before.2 + 1, "r1's notice");

    // A file whose every row goes in: exit 0.
    let good = c.write("good.csv", "公司,手机,地区\n青岛港湾机械,13900000020,青岛市黄岛区\n");
    let out = c.expect(&["import", "leads", &good, "--org", ORG], 0);
    assert!(out.stdout.contains("imported all 1 row"), "{out:#?}");
    assert_eq!(lead_by_company(w, "青岛港湾机械").await[0].owner_id, Some(w.r1.id));
}

#[tokio::test]
async fn cli_import_file_errors_exit_2() {
    let (c, f) = CliDb::new().await;
    let before = footprint(&f.w).await;

    let out = c.expect(&["import", "leads", "missing.csv", "--org", ORG], 2);
    assert!(out.stderr.contains("cannot read missing.csv"), "{out:#?}");

    let file = c.write("contacts.csv", "\u{FEFF}联系人,电话\n张三,13900000001\n");
    let out = c.expect(&["import", "leads", &file, "--org", ORG], 2);
    assert!(out.stderr.contains("no company column") && out.stderr.contains("「联系人」"), "{out:#?}");
    let out = c.expect(&["import", "leads", &file, "--org", ORG, "--json"], 2);
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON error");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("no company column")), "{v}");

    let good = c.write("good.csv", "公司\n某公司\n");
    let out = c.expect(&["import", "leads", &good, "--org", "No Such Org"], 2);
    assert!(out.stderr.contains("No Such Org"), "{out:#?}");
    assert_eq!(footprint(&f.w).await, before);
}

async fn rules_of(w: &World) -> Vec<lead_rules::Rule> {
    let mut tx = w.db.begin_read().await.expect("begin");
    let rules = lead_rules::list_rules(&mut tx, &system(w)).await.expect("rules");
    tx.commit().await.expect("commit");
    rules
}

#[tokio::test]
async fn cli_rules_add_list_enable_disable_remove() {
    let (c, f) = CliDb::new().await;
    let w = &f.w;
    let out = c.expect(
        &[
            "rules",
            "add",
            "华东制造",
            "--region",
            "上海",
            "--industry",
            "制造业",
            "--team",
            "Team A",
            "--strategy",
            "least_loaded",
            "--capacity",
            "20",
            "--position",
            "1",
            "--org",
            ORG,
        ],
        0,
    );
    assert!(out.stdout.contains("「华东制造」 at position 1: 地区 上海、行业 制造业 → team Team A"), "{out:#?}");
    let out = c.expect(&["rules", "add", "展会", "--tag", "展会", "--user", "r3", "--org", ORG], 0);
    assert!(out.stdout.contains("→ user r3 (r3)"), "{out:#?}");

    let rules = rules_of(w).await;
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["华东制造", "青岛", "展会"], "by position");
    let east = &rules[0];
    assert_eq!(east.target_team_id, w.r1.team_id);
    assert_eq!((east.strategy.as_str(), east.capacity), ("least_loaded", Some(20)));
    assert_eq!(rules[2].target_user_id, Some(w.r3.id));

    let out = c.expect(&["rules", "list", "--org", ORG], 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header and three rules: {}", out.stdout);
    assert!(lines[0].contains("POS") && lines[0].contains("ACTIVE"), "{}", out.stdout);
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(first[..2], ["1", &east.id.to_string()], "{}", lines[1]);
    assert!(lines[1].contains("华东制造") && lines[1].contains("地区 上海、行业 制造业"), "{}", lines[1]);
    assert!(lines[1].contains("team Team A") && lines[1].contains("least_loaded"), "{}", lines[1]);
    assert!(lines[1].contains(" 20 ") && lines[1].ends_with("yes"), "{}", lines[1]);
    assert!(lines[2].contains("青岛") && lines[2].contains("user r1 (r1)"), "{}", lines[2]);

    // --org before the subcommand works too.
    let out = c.expect(&["rules", "--org", ORG, "disable", "华东制造"], 0);
    assert!(out.stdout.contains(&format!("disabled rule #{} 「华东制造」", east.id)), "{out:#?}");
    assert!(!rules_of(w).await[0].active);
    assert!(c.expect(&["rules", "list", "--org", ORG], 0).stdout.lines().nth(1).is_some_and(|l| l.ends_with("no")));
    c.expect(&["rules", "enable", &format!("#{}", east.id), "--org", ORG], 0);
    assert!(rules_of(w).await[0].active);

    let out = c.expect(&["rules", "remove", &east.id.to_string(), "--org", ORG], 0);
    assert!(out.stdout.contains("removed rule"), "{out:#?}");
    c.expect(&["rules", "remove", "展会", "--org", ORG], 0);
    let names: Vec<String> = rules_of(w).await.into_iter().map(|r| r.name).collect();
    assert_eq!(names, vec!["青岛"]);

    // Refusals: no target, both targets, unknown rule, unknown team, duplicate name.
    c.expect(&["rules", "add", "x", "--org", ORG], 2);
    c.expect(&["rules", "add", "x", "--user", "r1", "--team", "Team A", "--org", ORG], 2);
    let out = c.expect(&["rules", "remove", "没有这条", "--org", ORG], 1);
    assert!(out.stderr.contains("没有这条"), "{out:#?}");
    c.expect(&["rules", "add", "x", "--team", "Team Z", "--org", ORG], 1);
    let out = c.expect(&["rules", "add", "青岛", "--user", "r2", "--org", ORG], 1);
    assert!(out.stderr.contains("already exists"), "{out:#?}");
    assert_eq!(rules_of(w).await.len(), 1);
}

async fn on_leave(w: &World, user: &User) -> bool {
    let v: i64 = match &w.db {
        Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT on_leave FROM users WHERE id = $1").bind(user.id).fetch_one(p).await.expect("q")
        }
        Db::Postgres(_) => unreachable!("the CLI tests run on SQLite"),
    };
    v != 0
}

/// Where the system actor's next lead with `tag` goes.
async fn route_one(w: &World, company: &str) -> Option<i64> {
    let mut tx = w.tx().await;
    let new = NewLead { company: company.into(), tags: vec!["团队".into()], ..Default::default() };
    let owner = match crm::leads::intake(&mut tx, &system(w), new).await.expect("intake") {
        Intake::Created { lead, .. } => lead.owner_id,
        other => panic!("{other:?}"),
    };
    tx.commit().await.expect("commit");
    owner
}

#[tokio::test]
async fn cli_users_leave_and_back_change_routing() {
    let (c, f) = CliDb::new().await;
    let w = &f.w;
    c.expect(&["rules", "add", "团队A", "--tag", "团队", "--team", "Team A", "--org", ORG], 0);

    let out = c.expect(&["users", "leave", "r1", "--org", ORG], 0);
    assert!(out.stdout.contains("r1 (r1) is on leave"), "{out:#?}");
    assert!(on_leave(w, &w.r1).await);
    assert_eq!(route_one(w, "甲公司").await, Some(w.r2.id));
    assert_eq!(route_one(w, "乙公司").await, Some(w.r2.id), "r1 is skipped while on leave");

    let out = c.expect(&["users", "back", "@r1", "--org", ORG], 0);
    assert!(out.stdout.contains("r1 (r1) is back"), "{out:#?}");
    assert!(!on_leave(w, &w.r1).await);
    assert_eq!(route_one(w, "丙公司").await, Some(w.r1.id), "r1 takes turns again");
    assert_eq!(route_one(w, "丁公司").await, Some(w.r2.id));

    let out = c.expect(&["users", "leave", "nobody", "--org", ORG], 1);
    assert!(out.stderr.contains("nobody"), "{out:#?}");
}

// --- Customers, deals and activities (chatcrm::csv_io) -----------------------------------------

mod csv_io_tests {
    use super::*;
    use chatcrm::crm::Role;
    use chatcrm::crm::users::NewUser;
    use chatcrm::csv_io::{self, CsvIoError, EncodingChoice, Kind, Outcome as RowOutcome};

    /// Mixed Chinese and English headers, an unknown column (备注). Lines: 2 a new customer with a
    /// contact; 3 the existing 海尔 written differently (fills its empty industry, adds a
    /// contact); 4 line 2 again (nothing new); 5 a bad grade.
    pub(super) const CUSTOMERS: &str = "客户名称,Industry,地区,grade,负责人,tags,contact,职位,电话,Email,备注\n\
        青岛啤酒股份有限公司,制造业,青岛,A,r1,重点;展会、华东,张三,采购经理,13900000001,zs@beer.cn,x\n\
        海尔有限公司,家电,,,,,王五,,13900000003,,\n\
        青岛啤酒股份有限公司,制造业,青岛,A,r1,重点,张三,采购经理,13900000001,zs@beer.cn,\n\
        坏等级公司,,,Z,,,,,,,\n";

    fn opts(org_id: i64, dry_run: bool, skip_bad: bool) -> csv_io::ImportOptions {
        csv_io::ImportOptions { org_id, dry_run, skip_bad, encoding: EncodingChoice::Auto, now: t0() }
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write csv");
        p
    }

    async fn counts(w: &World) -> [i64; 5] {
        [
            w.count("customers").await,
            w.count("contacts").await,
            w.count("deals").await,
            w.count("activities").await,
            w.count("audit_log").await,
        ]
    }

    fn outcomes(r: &csv_io::ImportReport) -> Vec<(u64, RowOutcome)> {
        r.rows.iter().map(|r| (r.row, r.outcome)).collect()
    }

    async fn csv_dedupe_dry_run_and_all_or_nothing(db: Db) {
        let w = World::new(db).await;
        let haier = w.customer(&w.r3, "海尔").await;
        let dir = tempfile::tempdir().expect("dir");
        let file = write(&dir, "c.csv", CUSTOMERS.as_bytes());
        let before = counts(&w).await;

        let dry = csv_io::import_file(&w.db, Kind::Customers, &file, &opts(w.org.id, true, false)).await.expect("dry");
        let want = vec![
            (2, RowOutcome::Created),
            (3, RowOutcome::Updated),
            (4, RowOutcome::Deduplicated),
            (5, RowOutcome::Rejected),
        ];
        assert_eq!(outcomes(&dry), want, "{dry:#?}");
        assert_eq!(dry.rows[1].id, Some(haier.id));
        assert!(dry.rows[3].message.as_deref().is_some_and(|m| m.contains("等级")), "{dry:#?}");
        assert!(dry.warnings.iter().any(|x| x.contains("备注")), "{:?}", dry.warnings);
        assert_eq!((dry.committed, dry.exit_code()), (false, 1));
        assert_eq!(counts(&w).await, before, "a dry run writes nothing");

        // A rejected row: nothing is written.
        let real =
            csv_io::import_file(&w.db, Kind::Customers, &file, &opts(w.org.id, false, false)).await.expect("run");
        assert_eq!(outcomes(&real), want);
        assert_eq!((real.committed, real.exit_code()), (false, 1));
        assert_eq!(counts(&w).await, before, "one bad row rejects the whole commit");

        // --skip-bad: the good rows go in, the bad one is reported.
        let real = csv_io::import_file(&w.db, Kind::Customers, &file, &opts(w.org.id, false, true)).await.expect("run");
        assert_eq!(outcomes(&real), want);
        assert_eq!((real.committed, real.exit_code()), (true, 1));
        let after = counts(&w).await;
        assert_eq!((after[0], after[1]), (before[0] + 1, before[1] + 2), "one customer, two contacts");
        let mut tx = w.tx().await;
        let ctx = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
        let h = crm::customers::customer_detail(&mut tx, &ctx, haier.id).await.expect("haier");
        assert_eq!(h.customer.industry.as_deref(), Some("家电"));
        assert_eq!(h.customer.owner_id, Some(w.r3.id), "an existing owner is never overwritten");
        assert_eq!(h.contacts.len(), 1);
        let beer_id = real.rows[0].id.expect("beer id");
        let beer = crm::customers::customer_detail(&mut tx, &ctx, beer_id).await.expect("beer");
        assert_eq!(beer.customer.owner_id, Some(w.r1.id));
        assert_eq!(beer.customer.grade, Some(crm::Grade::A));
        let mut tags = beer.tags.clone();
        tags.sort();
        assert_eq!(tags, vec!["华东", "展会", "重点"]);
        assert_eq!(beer.contacts[0].title.as_deref(), Some("采购经理"));
        tx.rollback().await.expect("rollback");
        assert!(after[4] > before[4], "audit rows were written");

        // Again: everything is now a duplicate (the bad row still rejected).
        let again =
            csv_io::import_file(&w.db, Kind::Customers, &file, &opts(w.org.id, true, false)).await.expect("again");
        assert_eq!(again.totals.deduplicated, 3, "{again:#?}");
    }

    async fn csv_gbk_and_bom_files_import_the_same(db: Db) {
        let w = World::new(db).await;
        let dir = tempfile::tempdir().expect("dir");
        let text = "客户名称,行业,联系人,电话\n青岛啤酒,制造业,张三,13900000001\n杭州云帆,互联网,李四,13900000002\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let gbk_file = write(&dir, "gbk.csv", &gbk);
        let bom_file = write(&dir, "bom.csv", format!("\u{FEFF}{text}").as_bytes());
        let g =
            csv_io::import_file(&w.db, Kind::Customers, &gbk_file, &opts(w.org.id, true, false)).await.expect("gbk");
        let b =
            csv_io::import_file(&w.db, Kind::Customers, &bom_file, &opts(w.org.id, true, false)).await.expect("bom");
        assert_eq!((g.encoding, b.encoding), ("gb18030", "UTF-8"));
        assert_eq!(g.rows, b.rows);
        assert_eq!(g.rows[0].key, "青岛啤酒");
        assert_eq!(g.totals.created, 2);
        // Forcing UTF-8 on the GBK file refuses it; forcing GBK reads it.
        let forced = csv_io::ImportOptions { encoding: EncodingChoice::Utf8, ..opts(w.org.id, true, false) };
        assert!(csv_io::import_file(&w.db, Kind::Customers, &gbk_file, &forced).await.is_err());
        let forced = csv_io::ImportOptions { encoding: EncodingChoice::Gbk, ..opts(w.org.id, false, false) };
        let real = csv_io::import_file(&w.db, Kind::Customers, &gbk_file, &forced).await.expect("gbk real");
        assert!(real.committed);
        let again =
            csv_io::import_file(&w.db, Kind::Customers, &bom_file, &opts(w.org.id, false, false)).await.expect("bom");
        assert_eq!(again.totals.deduplicated, 2, "the BOM file names the same customers: {again:#?}");
        assert_eq!(w.count("customers").await, 2);
        assert_eq!(w.count("contacts").await, 2);
    }

    async fn csv_missing_required_column_is_refused(db: Db) {
        let w = World::new(db).await;
        let dir = tempfile::tempdir().expect("dir");
        let file = write(&dir, "d.csv", "客户,金额\n海尔,5万\n".as_bytes());
        let r = csv_io::import_file(&w.db, Kind::Deals, &file, &opts(w.org.id, false, false)).await;
        assert!(matches!(&r, Err(CsvIoError::MissingColumns { missing, .. }) if missing.contains("商机")), "{r:?}");
        assert_eq!(w.count("deals").await, 0);
    }

    async fn export(w: &World, kind: Kind, org_id: i64, en: bool) -> Vec<u8> {
        let mut out = Vec::new();
        csv_io::export(&w.db, kind, org_id, en, &mut out).await.expect("export");
        out
    }

    async fn csv_export_import_round_trip(db: Db) {
        let w = World::new(db).await;
        let dir = tempfile::tempdir().expect("dir");
        let customers = write(&dir, "c.csv", CUSTOMERS.as_bytes());
        let deals = "客户,商机,金额,阶段,预计成交,负责人,状态\n\
            青岛啤酒,二期扩产,5万,方案报价,2026-12-31,r1,\n\
            青岛啤酒,一期,¥120,000,赢单,,r1,\n\
            青岛啤酒,试点,50k,,,r1,输单\n\
            不存在公司,x,1,,,,\n";
        // The amount ¥120,000 has a comma: quote it as Excel would.
        let deals = deals.replace("¥120,000", "\"¥120,000\"");
        let deals_file = write(&dir, "d.csv", deals.as_bytes());
        let acts = "customer,kind,occurred_at,content,user,next_step\n\
            青岛啤酒,拜访,2026-11-20 14:30,聊了报价,r1,下周报方案\n\
            青岛啤酒,call,2026-11-21,电话确认,,\n\
            青岛啤酒,飞鸽传书,2026-11-21,x,r1,\n";
        let acts_file = write(&dir, "a.csv", acts.as_bytes());
        let o = opts(w.org.id, false, true);
        csv_io::import_file(&w.db, Kind::Customers, &customers, &o).await.expect("customers");
        let d = csv_io::import_file(&w.db, Kind::Deals, &deals_file, &o).await.expect("deals");
        assert_eq!(
            outcomes(&d),
            vec![
                (2, RowOutcome::Created),
                (3, RowOutcome::Created),
                (4, RowOutcome::Created),
                (5, RowOutcome::Rejected)
            ],
            "{d:#?}"
        );
        let a = csv_io::import_file(&w.db, Kind::Activities, &acts_file, &o).await.expect("activities");
        assert_eq!(
            outcomes(&a),
            vec![(2, RowOutcome::Created), (3, RowOutcome::Created), (4, RowOutcome::Rejected)],
            "{a:#?}"
        );

        let ce = export(&w, Kind::Customers, w.org.id, false).await;
        let de = export(&w, Kind::Deals, w.org.id, false).await;
        let ae = export(&w, Kind::Activities, w.org.id, false).await;
        for e in [&ce, &de, &ae] {
            assert!(e.starts_with(b"\xEF\xBB\xBF"), "the export starts with the UTF-8 BOM");
        }
        let de_text = String::from_utf8(de.clone()).expect("utf-8");
        assert!(de_text.contains("青岛啤酒股份有限公司,二期扩产,50000.00,方案报价,2026-12-31,r1,进行中,"), "{de_text}");
        assert!(de_text.contains(",120000.00,赢单,,r1,赢单,"), "{de_text}");
        assert!(de_text.contains("试点,50000.00,输单,,r1,输单,other"), "{de_text}");
        let ae_text = String::from_utf8(ae.clone()).expect("utf-8");
        assert!(ae_text.contains("青岛啤酒股份有限公司,拜访,2026-11-20 14:30:00,聊了报价,r1,下周报方案"), "{ae_text}");
        assert!(
            ae_text.contains(",电话,2026-11-21 00:00:00,电话确认,r1,"),
            "the customer's owner logged it: {ae_text}"
        );

        // Re-importing the export changes nothing.
        let again = write(&dir, "again.csv", &ce);
        let r =
            csv_io::import_file(&w.db, Kind::Customers, &again, &opts(w.org.id, false, false)).await.expect("again");
        assert_eq!((r.totals.created, r.totals.updated, r.totals.rejected), (0, 0, 0), "{r:#?}");

        // Into a fresh org with the same handles: the exports come out the same (English too).
        let mut tx = w.tx().await;
        let org3 = crm::orgs::create_org(&mut tx, "Org Three", "Asia/Shanghai", Via::Cli, t0()).await.expect("org3");
        let sys = Ctx::new(Actor::system(org3.id), Via::Cli, t0());
        for h in ["r1", "r3"] {
            crm::users::create_user(&mut tx, &sys, NewUser { handle: h, name: h, role: Role::Rep, team_id: None })
                .await
                .expect("user");
        }
        tx.commit().await.expect("commit");
        let o3 = opts(org3.id, false, false);
        for (kind, bytes) in [(Kind::Customers, &ce), (Kind::Deals, &de), (Kind::Activities, &ae)] {
            let f = write(&dir, "in.csv", bytes);
            let r = csv_io::import_file(&w.db, kind, &f, &o3).await.expect("import export");
            assert!(r.committed && r.totals.rejected == 0, "{r:#?}");
        }
        assert_eq!(export(&w, Kind::Customers, org3.id, false).await, ce);
        assert_eq!(export(&w, Kind::Deals, org3.id, false).await, de);
        assert_eq!(export(&w, Kind::Activities, org3.id, false).await, ae);
        assert_eq!(export(&w, Kind::Deals, org3.id, true).await, export(&w, Kind::Deals, w.org.id, true).await);
        let en = String::from_utf8(export(&w, Kind::Activities, org3.id, true).await).expect("utf-8");
        assert!(en.starts_with("\u{FEFF}customer,kind,occurred_at,content,user,next_step\n"), "{en}");
    }

    both_backends!(
        csv_dedupe_dry_run_and_all_or_nothing,
        csv_gbk_and_bom_files_import_the_same,
        csv_missing_required_column_is_refused,
        csv_export_import_round_trip,
    );

    #[tokio::test]
    async fn cli_csv_import_export_exit_codes() {
        let (c, f) = CliDb::new().await;
        let before = counts(&f.w).await;
        let file = c.write("deals.csv", "\u{FEFF}客户,金额\n海尔,5万\n");
        let out = c.expect(&["import", "deals", &file, "--org", ORG], 2);
        assert!(out.stderr.contains("missing required column") && out.stderr.contains("商机"), "{out:#?}");

        let file = c.write("customers.csv", CUSTOMERS);
        let out = c.expect(&["import", "customers", &file, "--org", ORG, "--dry-run", "--json"], 1);
        let v: Value = serde_json::from_str(&out.stdout).expect("JSON report");
        assert_eq!(v["totals"]["rejected"], 1);
        assert_eq!(v["rows"][3]["outcome"], "rejected");
        let out = c.expect(&["import", "customers", &file, "--org", ORG], 1);
        assert!(out.stdout.contains("nothing was written"), "{out:#?}");
        assert_eq!(counts(&f.w).await, before);
        c.expect(&["import", "customers", &file, "--org", ORG, "--skip-bad"], 1);
        let good = c.write("good.csv", "name\n全新客户\n");
        c.expect(&["import", "customers", &good, "--org", ORG], 0);

        c.expect(&["export", "customers", "--org", ORG, "--out", "out.csv"], 0);
        let bytes = std::fs::read(c.dir.path().join("out.csv")).expect("out.csv");
        assert!(bytes.starts_with("\u{FEFF}客户名称,行业".as_bytes()));
        let out = c.expect(&["export", "deals", "--org", ORG, "--en"], 0);
        assert!(out.stdout.starts_with("\u{FEFF}customer,title,amount"), "{out:#?}");
    }
}
