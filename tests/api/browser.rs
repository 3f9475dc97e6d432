//! The console page in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! spoken as plain JSON over HTTP. Load the page, pick a user, send a visit, see the reply, see a
//! reminder and the funnel picture arrive. Skipped where Debian's chromium and chromium-driver
//! are not installed. Also the page's assets and its examples route, without a browser.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chatcrm::clock::Clock;
use chatcrm::outbox::{DispatchConfig, Dispatcher, Routes, Senders};
use chatcrm::schedule::{Plan, ScheduleSettings, Scheduler};
use chatcrm::store::Db;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::TestDb;
use crate::http::{ORG, Server, seed_demo, settings};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest wait for anything the page should show (a push is polled every 3 s).
const WAIT: Duration = Duration::from_secs(20);

// --- Without a browser ------------------------------------------------------------------------

#[tokio::test]
async fn page_assets_and_headers() {
    let t = TestDb::sqlite().await;
    let server = Server::start(settings(), t.db.clone()).await;

    let page = server.get("/console").await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(!page.body.contains("<script>") && !page.body.contains("<style>"), "no inline code under the CSP");
    for (path, ct, needle) in
        [("/console/console.js", "text/javascript", "textContent"), ("/console/console.css", "text/css", ".push")]
    {
        assert!(page.body.contains(path), "the page loads {path}");
        let r = server.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap_or_default().starts_with(ct), "{path}: {:?}", r.headers);
        assert!(r.body.contains(needle), "{path}");
    }
    // The script never hands server text to innerHTML.
    let js = server.get("/console/console.js").await.body;
    assert!(!js.contains("innerHTML"), "console.js uses innerHTML");
    server.stop().await;
}

#[tokio::test]
async fn examples_come_from_bot_commands_in_either_language() {
    let t = TestDb::sqlite().await;
    let server = Server::start(settings(), t.db.clone()).await;

    let r = server.get("/console/examples").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["lang"], "zh");
    let zh = v["examples"].as_array().cloned().unwrap_or_default();
    assert!(zh.len() >= 15, "{v}");
    let visit = zh.iter().find(|e| e["command"] == "log_activity").cloned().unwrap_or_default();
    assert_eq!(visit["text"], "拜访 海尔 聊了二期需求", "{visit}");
    assert_eq!(visit["summary"], "记录拜访、电话、微信等跟进", "{visit}");
    assert_eq!(visit["usage"], "拜访 <客户> <内容>", "{visit}");
    assert!(zh.iter().all(|e| e["command"] != "select" && e["command"] != "unknown"), "{v}");
    assert!(zh.iter().all(|e| e["text"].as_str().is_some_and(|s| s.chars().any(chatcrm::command::is_cjk))));

    let r = server.get("/console/examples?lang=en").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let en = r.json()["examples"].as_array().cloned().unwrap_or_default();
    let visit = en.iter().find(|e| e["command"] == "log_activity").cloned().unwrap_or_default();
    assert_eq!(visit["text"], "visit haier discussed phase two", "{visit}");
    assert_eq!(visit["summary"], "Log a visit, call, message or meeting", "{visit}");
    assert!(en.iter().all(|e| e["text"].as_str().is_some_and(|s| !s.chars().any(chatcrm::command::is_cjk))));

    server.get("/console/examples?lang=fr").await.assert_error(400, "bad_query");
    server.stop().await;
}

// --- In Chromium ------------------------------------------------------------------------------

#[tokio::test]
async fn console_page_in_headless_chromium() {
    for path in [CHROMEDRIVER, CHROMIUM] {
        if !std::path::Path::new(path).exists() {
            eprintln!("skipped browser test: {path} not installed (apt-get install chromium chromium-driver)");
            return;
        }
    }
    // Fail rather than hang; dropping the future drops the browser guard, which stops chromedriver.
    tokio::time::timeout(Duration::from_secs(180), in_chromium()).await.expect("browser test took over 180 s");
}

async fn in_chromium() {
    let t = TestDb::sqlite().await;
    seed_demo(&t.db).await;
    let server = Server::start(settings(), t.db.clone()).await;
    let mut b = Browser::start().await;

    // Load the page; the user list and the examples arrive.
    b.post("/url", json!({ "url": server.url("/console") })).await;
    b.wait("the user lilei in the picker", async || b.find("#user-select option[value='lilei']").await).await;
    let n = b
        .wait("the try-these list", async || {
            b.js_u64("return document.querySelectorAll('#examples .example').length").await.filter(|n| *n >= 15)
        })
        .await;
    assert!(n >= 15);
    assert_eq!(b.text("#title").await, "chatcrm 控制台", "Chinese by default");

    // Pick 李雷; an example goes into the input on a click.
    b.click("#user-select option[value='lilei']").await;
    b.wait("李雷 picked", async || b.text("#chat-who").await.contains("李雷").then_some(())).await;
    b.click("#examples .example").await;
    let first = b.js_str("return document.querySelector('#examples .example').textContent").await;
    assert_eq!(b.js_str("return document.getElementById('input').value").await, first);

    // Send a visit with a follow-up, with Enter; the reply appears.
    let input = b.find("#input").await.expect("input");
    b.post(&format!("/element/{input}/clear"), json!({})).await;
    b.type_into(&input, "拜访 海尔 聊了报价，明天下午3点再跟进\u{E007}").await;
    let reply = b
        .wait("the visit's reply", async || {
            Some(b.js_str("var r = document.querySelectorAll('#messages .row.bot:not(.pending)'); return r.length ? r[r.length-1].innerText : ''").await)
                .filter(|s| !s.is_empty())
        })
        .await;
    assert!(reply.contains("已记录拜访") && reply.contains("海尔智家"), "{reply}");
    assert!(reply.contains("11月25日") && reply.contains("15:00"), "the follow-up is echoed: {reply}");
    assert!(b.text("#messages .row.me").await.contains("拜访 海尔 聊了报价"));

    // Message text is shown, never run: markup typed by the user stays text.
    b.type_into(&input, "客户 <img src=x id=injected>\u{E007}").await;
    b.wait("the second reply", async || (b.count("#messages .row.bot:not(.pending)").await >= 2).then_some(())).await;
    assert_eq!(b.count("#injected").await, 0, "markup from a message became an element");
    assert!(b.text("#messages").await.contains("<img src=x id=injected>"));

    // The reminder comes due: the scheduler, one minute past 15:00 tomorrow, on the server's DB.
    let due = shanghai(2026, 11, 25, 15, 1);
    let (sched, outbox) = background(&t.db, due);
    let fired = sched.tick().await.expect("tick").reminders_fired;
    assert!(fired >= 1, "no reminder fired");
    outbox.drain().await.expect("drain");
    let pushes = b
        .wait("the reminder in the pushes panel", async || {
            Some(b.text("#push-list").await).filter(|s| s.contains("再跟进") && s.contains("15:00"))
        })
        .await;
    assert!(pushes.contains("⏰ 提醒"), "{pushes}");
    assert!(b.js_bool("return !document.getElementById('push-new').hidden").await, "new pushes are counted");

    // A push with light markdown and markup: bold and a list rendered, the markup as text.
    push(&t.db, "lilei", "**周报** <b>x</b>\n- 一\n- 二").await;
    let top = "#push-list li.push:first-child";
    b.wait("the markdown push", async || b.text(top).await.contains("周报").then_some(())).await;
    assert_eq!(b.text(&format!("{top} strong")).await, "周报");
    assert_eq!(b.count(&format!("{top} ul li")).await, 2);
    assert_eq!(b.count(&format!("{top} b")).await, 0);
    assert!(b.text(top).await.contains("<b>x</b>"));

    // The funnel picture: asked for in the chat, delivered by the outbox, shown as an image.
    b.type_into(&input, "漏斗\u{E007}").await;
    b.wait("the pipeline reply", async || (b.count("#messages .row.bot:not(.pending)").await >= 3).then_some(())).await;
    let reply =
        b.js_str("var r = document.querySelectorAll('#messages .row.bot'); return r[r.length-1].innerText").await;
    assert!(reply.contains("漏斗图随后"), "{reply}");
    outbox.drain().await.expect("drain");
    b.wait("the funnel image, loaded", async || {
        b.js_bool("var i = document.querySelector('#push-list img'); return !!i && i.complete && i.naturalWidth > 0")
            .await
            .then_some(())
    })
    .await;
    let src = b.js_str("return document.querySelector('#push-list img').getAttribute('src')").await;
    assert!(src.starts_with("/console/pushes/") && src.ends_with("/image?user=lilei"), "{src}");

    // English on a click; the chat stays.
    b.click("#lang").await;
    b.wait("the English title", async || (b.text("#title").await == "chatcrm console").then_some(())).await;
    b.wait("English examples", async || {
        let first =
            b.js_str("var e = document.querySelector('#examples .example'); return e ? e.textContent : ''").await;
        (!first.is_empty() && first.is_ascii()).then_some(())
    })
    .await;
    assert!(b.text("#messages").await.contains("已记录拜访"));

    // `CHATCRM_SCREENSHOT=console.png` keeps a picture of the page for a look by eye.
    if let Some(path) = std::env::var_os("CHATCRM_SCREENSHOT") {
        b.click("#lang").await; // back to Chinese, the default
        b.screenshot(std::path::Path::new(&path)).await;
    }
    b.quit().await;
    drop(b);
    server.stop().await;
}

fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("time").with_timezone(&Utc)
}

/// A scheduler (reminders only) and a console dispatcher at a fixed time, as the server's
/// background would run them.
fn background(db: &Db, at: DateTime<Utc>) -> (Scheduler, Dispatcher) {
    let clock = Clock::fixed(at);
    let plan = Plan::try_from(&ScheduleSettings::default().without_jobs()).expect("plan");
    let sched = Scheduler::new(db.clone(), clock.clone(), Arc::new(plan), Arc::new(Routes::default()), "browser");
    let outbox = Dispatcher::new(db.clone(), clock, "browser", Senders::default(), DispatchConfig::default());
    (sched, outbox)
}

async fn push(db: &Db, handle: &str, text: &str) {
    let mut tx = db.begin().await.expect("begin");
    let org = chatcrm::crm::orgs::org_by_name(&mut tx, ORG).await.expect("org");
    let user = chatcrm::crm::users::find_user(&mut tx, org.id, handle).await.expect("user");
    chatcrm::platform::console::push(&mut tx, &user, text, crate::helpers::t0()).await.expect("push");
    tx.commit().await.expect("commit");
}

// --- A small WebDriver client -----------------------------------------------------------------

/// chromedriver with one headless Chromium session. Dropping it ends the session and kills
/// chromedriver's process group, also when the test failed or timed out.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own group, so Chromium's processes can be killed with it.
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("client");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut b =
            Self { http, base: format!("http://127.0.0.1:{port}"), session: String::new(), driver, _profile: profile };
        b.wait("chromedriver to listen", async || {
            let r = b.http.get(format!("{}/status", b.base)).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            v.pointer("/value/ready").and_then(Value::as_bool).filter(|r| *r)
        })
        .await;
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            // This machine's network is closed: no background calls home.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--no-proxy-server",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "timeouts": { "script": 10_000, "pageLoad": 30_000, "implicit": 0 },
        }}});
        let res = b.http.post(format!("{}/session", b.base)).json(&caps).send().await.expect("new session");
        let v: Value = res.json().await.expect("new session JSON");
        b.session = v.pointer("/value/sessionId").and_then(Value::as_str).unwrap_or_default().to_string();
        assert!(!b.session.is_empty(), "no WebDriver session: {v}");
        b
    }

    /// A command on the session; panics on a WebDriver error.
    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let res = self.http.post(url).json(&body).send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let v: Value = res.json().await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!(v.pointer("/value/error").is_none(), "POST {path} {body}: {v}");
        v["value"].clone()
    }

    /// The element matching `css`, if any.
    async fn find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let body = json!({ "using": "css selector", "value": css });
        let v: Value = self.http.post(url).json(&body).send().await.ok()?.json().await.ok()?;
        v.pointer(&format!("/value/{ELEMENT}")).and_then(Value::as_str).map(str::to_string)
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await.unwrap_or_else(|| panic!("no element {css}"));
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn type_into(&self, element: &str, text: &str) {
        self.post(&format!("/element/{element}/value"), json!({ "text": text })).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] })).await
    }

    async fn js_str(&self, script: &str) -> String {
        self.js(script).await.as_str().unwrap_or_default().to_string()
    }

    async fn js_bool(&self, script: &str) -> bool {
        self.js(script).await.as_bool().unwrap_or(false)
    }

    async fn js_u64(&self, script: &str) -> Option<u64> {
        self.js(script).await.as_u64()
    }

    /// The visible text of the first element matching `css` ("" when there is none).
    async fn text(&self, css: &str) -> String {
        let script = format!("var e = document.querySelector({}); return e ? e.innerText : ''", json!(css));
        self.js_str(&script).await
    }

    async fn count(&self, css: &str) -> u64 {
        self.js_u64(&format!("return document.querySelectorAll({}).length", json!(css))).await.unwrap_or(0)
    }

    /// Polls `f` until it gives a value; panics after [`WAIT`].
    async fn wait<T>(&self, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let page = self.text("body").await;
                panic!("waited {WAIT:?} for {what}; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let v: Value = self.http.get(url).send().await.expect("screenshot").json().await.expect("screenshot JSON");
        let png = base64::engine::general_purpose::STANDARD.decode(v["value"].as_str().unwrap_or_default());
        std::fs::write(path, png.expect("screenshot base64")).expect("write screenshot");
    }

    /// Ends the session (Chromium exits).
    async fn quit(&mut self) {
        if self.session.is_empty() {
            return;
        }
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never reached `quit`: ask chromedriver to close Chromium, briefly.
        if !self.session.is_empty() {
            let _ = delete_session_blocking(&self.base, &self.session);
        }
        // Then chromedriver and whatever is left in its group (Chromium's helpers).
        let pgid = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).stderr(Stdio::null()).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` over a plain socket: `Drop` cannot await.
fn delete_session_blocking(base: &str, session: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    Ok(())
}
