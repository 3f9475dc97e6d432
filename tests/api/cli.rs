//! The real `chatcrm` binary, run in a temporary directory with a controlled environment.
//! SQLite only: the commands under test are backend-agnostic, and the storage they call is
//! covered on both backends elsewhere.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chatcrm::store::{Db, DbOptions};

const BIN: &str = env!("CARGO_BIN_EXE_chatcrm");

/// A temp dir to run in, with its own SQLite database URL.
struct Cli {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
struct Out {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self { dir, env: Vec::new() }
    }

    /// Same, with `CHATCRM_DATABASE_URL` naming `c.db` in the temp dir.
    fn with_db() -> Self {
        let mut cli = Self::new();
        let url = cli.db_url();
        cli.env.push(("CHATCRM_DATABASE_URL".into(), url));
        cli
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn db_url(&self) -> String {
        format!("sqlite://{}", self.path("c.db").display())
    }

    /// The binary in the temp dir, with no `CHATCRM_*` variable but the ones set here (and no
    /// backtraces, so stderr holds only the error itself).
    fn command(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path()).args(args);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("CHATCRM_") || matches!(k.as_ref(), "RUST_LOG" | "RUST_BACKTRACE" | "RUST_LIB_BACKTRACE") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    fn run_with(&self, args: &[&str], extra_env: &[(&str, &str)], stdin: &str) -> Out {
        let mut child = self
            .command(args, extra_env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatcrm");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("write stdin");
        drop(input);
        let out = child.wait_with_output().expect("wait for chatcrm");
        Out {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, &[], "")
    }

    /// Runs and asserts success.
    fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert!(out.success, "chatcrm {args:?} failed: {out:?}");
        out
    }

    /// Runs and asserts a non-zero exit.
    fn fails(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Out {
        let out = self.run_with(args, extra_env, "");
        assert!(!out.success, "chatcrm {args:?} should have failed: {out:?}");
        assert!(out.code.is_some_and(|c| c != 0), "{out:?}");
        out
    }

    async fn count(&self, table: &'static str) -> i64 {
        let sql = match table {
            "customers" => "SELECT COUNT(*) FROM customers",
            "deals" => "SELECT COUNT(*) FROM deals",
            "orgs" => "SELECT COUNT(*) FROM orgs",
            "chat_identities" => "SELECT COUNT(*) FROM chat_identities",
            other => panic!("count: unknown table {other}"),
        };
        let db = Db::connect(&DbOptions::new(self.db_url())).await.expect("open the CLI's database");
        let Db::Sqlite(pool) = &db else { panic!("not SQLite") };
        let n = sqlx::query_scalar(sql).fetch_one(pool).await.expect("count");
        db.close().await;
        n
    }
}

/// The number printed before `label` in "..., 30 customers, 20 deals, ...".
fn number_before(text: &str, label: &str) -> Option<i64> {
    let end = text.find(&format!(" {label}"))?;
    let start = text[..end].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    text[start..end].parse().ok()
}

#[test]
fn print_config_prints_the_example() {
    let cli = Cli::new();
    // It does not load the config, so a broken one does not stop it.
    let out = cli.run_with(&["print-config"], &[("CHATCRM_LISTEN", "nowhere")], "");
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("database_url ="), "{}", out.stdout);
    assert_eq!(out.stdout, chatcrm::config::EXAMPLE);
}

#[test]
fn check_config_accepts_the_defaults_and_the_example() {
    let cli = Cli::new();
    let out = cli.ok(&["check-config"]);
    assert!(out.stdout.contains("configuration OK"), "{out:?}");
    std::fs::write(cli.path("chatcrm.toml"), chatcrm::config::EXAMPLE).expect("write config");
    let out = cli.ok(&["check-config"]);
    assert!(out.stdout.contains("configuration OK"), "{out:?}");
}

#[test]
fn check_config_names_the_bad_key_and_its_source() {
    let cli = Cli::new();
    let out = cli.fails(&["check-config"], &[("CHATCRM_LISTEN", "nowhere")]);
    assert!(out.stderr.contains("listen") && out.stderr.contains("CHATCRM_LISTEN"), "{}", out.stderr);
    assert!(out.stderr.contains("nowhere"), "{}", out.stderr);

    let out = cli.fails(&["check-config"], &[("CHATCRM_SQLITE_SYNCHRONOUS", "off")]);
    assert!(out.stderr.contains("sqlite_synchronous"), "{}", out.stderr);

    std::fs::write(cli.path("chatcrm.toml"), "lisen = \"x\"\n").expect("write config");
    let out = cli.fails(&["check-config"], &[]);
    assert!(out.stderr.contains("lisen"), "{}", out.stderr);
    assert!(out.stderr.contains("chatcrm.toml"), "{}", out.stderr);
}

#[test]
fn missing_config_file_is_named() {
    let cli = Cli::new();
    let out = cli.fails(&["check-config", "--config", "missing.toml"], &[]);
    assert!(out.stderr.contains("missing.toml"), "{}", out.stderr);
    let out = cli.fails(&["check-config"], &[("CHATCRM_CONFIG", "also-missing.toml")]);
    assert!(out.stderr.contains("also-missing.toml"), "{}", out.stderr);
    // A file that exists is used: an explicit one with a bad key fails naming the key.
    std::fs::write(cli.path("other.toml"), "request_timeout_secs = \"soon\"\n").expect("write config");
    let out = cli.fails(&["check-config", "--config", "other.toml"], &[]);
    assert!(out.stderr.contains("request_timeout_secs"), "{}", out.stderr);
}

#[tokio::test]
async fn migrate_then_demo_once() {
    let cli = Cli::with_db();
    let out = cli.ok(&["migrate"]);
    assert!(out.stdout.contains("migrations applied"), "{out:?}");
    assert!(Path::new(&cli.path("c.db")).exists());

    let out = cli.ok(&["demo"]);
    let customers = number_before(&out.stdout, "customers");
    let deals = number_before(&out.stdout, "deals");
    assert!(customers.is_some_and(|n| n > 0) && deals.is_some_and(|n| n > 0), "{}", out.stdout);
    assert_eq!(customers, Some(cli.count("customers").await), "{}", out.stdout);
    assert_eq!(deals, Some(cli.count("deals").await), "{}", out.stdout);
    assert!(out.stdout.contains("lilei"), "{}", out.stdout);

    let out = cli.fails(&["demo"], &[]);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert!(out.stderr.contains("演示公司"), "{}", out.stderr);
    assert_eq!(Some(cli.count("customers").await), customers, "a failed demo left rows behind");
    assert_eq!(cli.count("orgs").await, 1);
}

#[tokio::test]
async fn users_add_list_and_link() {
    let cli = Cli::with_db();
    let out = cli.ok(&["users", "add", "bob", "鲍勃", "--role", "rep", "--team", "华北组"]);
    assert!(out.stdout.contains("bob"), "{out:?}");

    let out = cli.ok(&["users", "list"]);
    let line = out.stdout.lines().find(|l| l.split_whitespace().next() == Some("bob"));
    let line = line.unwrap_or_else(|| panic!("bob not listed: {}", out.stdout));
    assert!(line.contains("鲍勃") && line.contains("rep") && line.contains("华北组"), "{line}");

    let identities = cli.count("chat_identities").await;
    let link = ["users", "link", "bob", "--platform", "wecom", "--corp", "ww1", "--id", "bob01"];
    let out = cli.ok(&link);
    assert!(out.stdout.contains("bob01"), "{out:?}");
    assert_eq!(cli.count("chat_identities").await, identities + 1);

    let out = cli.fails(&link, &[]);
    assert!(out.stderr.contains("already linked"), "{}", out.stderr);
    assert_eq!(cli.count("chat_identities").await, identities + 1);

    // A handle that is taken, and a user that does not exist.
    let out = cli.fails(&["users", "add", "bob", "另一个鲍勃"], &[]);
    assert!(out.stderr.contains("bob"), "{}", out.stderr);
    let out = cli.fails(&["users", "link", "carol", "--platform", "wecom", "--corp", "ww1", "--id", "c1"], &[]);
    assert!(out.stderr.contains("carol"), "{}", out.stderr);
}

#[test]
fn chat_as_a_demo_user() {
    let cli = Cli::with_db();
    cli.ok(&["demo"]);
    let out = cli.run_with(&["chat", "--as", "lilei"], &[], "今天\nhelp\n");
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("今天"), "{}", out.stdout);
    // lilei's overdue demo task ("回访…，确认方案反馈") is listed.
    assert!(out.stdout.contains("确认方案反馈"), "{}", out.stdout);
    assert!(out.stdout.contains("chatcrm commands"), "{}", out.stdout);

    let out = cli.fails(&["chat", "--as", "nobody"], &[]);
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);
}

/// Kills the child on drop, so a failed assertion does not leave a server running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on an empty database seeds the demo org, serves the console, and stops cleanly on SIGTERM.
#[cfg(unix)]
#[tokio::test]
async fn serve_seeds_the_demo_and_stops_on_sigterm() {
    let cli = Cli::with_db();
    let env = [("CHATCRM_LISTEN", "127.0.0.1:0"), ("CHATCRM_LOG_FORMAT", "json"), ("CHATCRM_LOG_LEVEL", "info")];
    let child = cli
        .command(&["serve"], &env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut server = Running(child);
    let stderr = server.0.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait = Duration::from_secs(60);
    let mut log = Vec::new();
    let addr = loop {
        let line = rx.recv_timeout(wait).unwrap_or_else(|e| panic!("no `chatcrm listening` line ({e}): {log:#?}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        log.push(line);
        if v["fields"]["message"] == "chatcrm listening" {
            break v["fields"]["addr"].as_str().unwrap_or_default().to_string();
        }
    };

    let client = super::http::client();
    let users: serde_json::Value = client
        .get(format!("http://{addr}/console/users"))
        .send()
        .await
        .expect("GET /console/users")
        .json()
        .await
        .expect("JSON");
    let handles: Vec<&str> =
        users["users"].as_array().into_iter().flatten().filter_map(|u| u["handle"].as_str()).collect();
    assert!(handles.contains(&"lilei"), "{users}");

    let kill = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("run kill");
    assert!(kill.success());
    let stopped = loop {
        match rx.recv_timeout(wait) {
            Ok(line) => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                log.push(line);
                if v["fields"]["message"] == "stopped" {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    assert!(stopped, "no `stopped` line after SIGTERM: {log:#?}");
    let status = server.0.wait().expect("wait for serve");
    assert!(status.success(), "serve exited with {status}: {log:#?}");
    assert!(client.get(format!("http://{addr}/healthz")).send().await.is_err(), "still serving after exit");
}

const NOW: &str = "2026-11-24T10:00:00+08:00";

#[test]
fn parse_prints_the_json_contract() {
    let cli = Cli::new();
    let out = cli.ok(&["parse", "--json", "--now", NOW, "拜访 海尔 聊了报价，对方嫌贵，下周三下午再跟进"]);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(
        v,
        serde_json::json!({
            "command": "log_activity", "kind": "visit", "customer": "海尔", "content": "聊了报价，对方嫌贵",
            "follow_up": { "at": "2026-12-02T15:00:00+08:00", "title": "再跟进" }
        })
    );
    // Batch: one answer per input line, in order; a usage error is an answer too, and fails the run.
    let out = cli.run_with(&["parse", "--json", "--now", NOW, "-"], &[], "商机 #12 报价 金额 12万\n今天\n拜访 海尔\n");
    assert!(!out.success, "{out:?}");
    let lines: Vec<serde_json::Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert_eq!(
        lines[0],
        serde_json::json!({"command": "update_deal", "deal": 12, "stage": "proposal", "amount": 12_000_000})
    );
    assert_eq!(lines[1], serde_json::json!({"command": "today"}));
    assert_eq!((lines[2]["error"].as_str(), lines[2]["command"].as_str()), (Some("usage"), Some("log_activity")));
    let out = cli.run(&["parse", "--json", "--now", "yesterday", "今天"]);
    assert!(!out.success && out.stderr.contains("RFC 3339"), "{out:?}");
}

#[test]
fn when_resolves_or_explains() {
    let cli = Cli::new();
    let out = cli.ok(&["when", "--now", NOW, "下周三下午3点"]);
    assert_eq!(out.stdout.trim(), "2026-12-02T15:00:00+08:00");
    let out = cli.ok(&["when", "--now", NOW, "--tz", "America/New_York", "tomorrow 3pm"]);
    assert_eq!(out.stdout.trim(), "2026-11-24T15:00:00-05:00", "now is 2026-11-23 21:00 in New York");
    let out = cli.fails(&["when", "--now", NOW, "2月30日"], &[]);
    assert!(out.stderr.contains("2月30日"), "{out:?}");
    let out = cli.fails(&["when", "--now", NOW, "--tz", "Mars/Base", "明天"], &[]);
    assert!(out.stderr.contains("Mars/Base"), "{out:?}");
    let out = cli.run_with(&["when", "--now", NOW, "-"], &[], "明天\n月底\nnext wed\n");
    assert!(out.success, "{out:?}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        vec!["2026-11-25T09:00:00+08:00", "2026-11-30T09:00:00+08:00", "2026-12-02T09:00:00+08:00"]
    );
}

#[test]
fn bench_parse_prints_figures() {
    let out = Cli::new().ok(&["bench", "parse", "--seconds", "1"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON report");
    assert!(v["parsed"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["messages_per_second"].as_f64().is_some_and(|n| n > 0.0), "{v}");
    assert_eq!(v["adversarial_max_bytes"], 262_144);
}

#[test]
fn report_prints_digests_and_draws_the_funnel() {
    let cli = Cli::with_db();
    cli.ok(&["demo"]);
    let out = cli.ok(&["report", "digest", "hanmeimei", "--weekly", "--dialect", "wecom"]);
    assert!(out.stdout.starts_with("### 团队周报"), "{}", out.stdout);
    assert!(out.stdout.contains("**成员**") && out.stdout.contains("漏斗（近 90 天"), "{}", out.stdout);
    let out = cli.ok(&["report", "digest", "lilei", "--en"]);
    assert!(out.stdout.contains("My daily digest"), "{}", out.stdout);
    let out = cli.ok(&["report", "digest", "lilei", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["scope"], "own", "{v}");
    let out = cli.fails(&["report", "digest", "nobody"], &[]);
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);
    let out = cli.fails(&["report", "digest", "lilei", "--dialect", "slack"], &[]);
    assert!(out.stderr.contains("unknown dialect `slack`"), "{}", out.stderr);

    let png = cli.path("funnel.png");
    let out = cli.ok(&["report", "funnel", "--png", png.to_str().expect("utf-8 path")]);
    assert!(out.stdout.contains("全公司漏斗") && out.stdout.contains("wrote"), "{}", out.stdout);
    let bytes = std::fs::read(&png).expect("png written");
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG");
    assert!(reader.info().width >= 400, "{}", reader.info().width);
}
