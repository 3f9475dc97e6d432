//! WeCom push client against the mock WeCom server: token cache and single-flight refresh, error classes,
//! timeouts, robot rate limit and message splitting; images (upload, robot base64 + md5) directly and
//! through the outbox.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatcrm::platform::wecom::{client, mock};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn start() -> (mock::MockWecom, client::WecomClient) {
    let mock = mock::MockWecom::start().await;
    let client = client::WecomClient::new(&mock.base_url(), mock::MockWecom::credentials(), TIMEOUT).expect("client");
    (mock, client)
}

fn text(content: &str) -> client::Message {
    client::Message::Text(content.to_owned())
}

/// Contents of the app messages the mock accepted, in order.
fn app_contents(mock: &mock::MockWecom) -> Vec<String> {
    mock.received()
        .iter()
        .filter(|received| received.touser.is_some())
        .filter_map(|received| received.content().map(str::to_owned))
        .collect()
}

/// Every expected content was accepted exactly once, and nothing else was.
fn assert_each_once(got: &[String], expected: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for content in got {
        *counts.entry(content.as_str()).or_default() += 1;
    }
    for content in expected {
        assert_eq!(counts.get(content.as_str()), Some(&1), "{content:?} should be delivered exactly once: {got:?}");
    }
    assert_eq!(got.len(), expected.len(), "unexpected deliveries: {got:?}");
}

/// What the outbox does: retry transient failures with backoff. Time is compressed for the test (WeCom's
/// `after` of 60 s for 45009 is not waited out).
async fn send_with_retry(
    client: &client::WecomClient,
    to: &str,
    msg: &client::Message,
    max_attempts: u32,
) -> (Result<client::SendOk, client::PushError>, Vec<client::PushError>) {
    let mut failures = Vec::new();
    for attempt in 1..=max_attempts {
        match client.send(to, msg).await {
            Ok(ok) => return (Ok(ok), failures),
            Err(err) if err.class() == client::ErrorClass::Retry && attempt < max_attempts => {
                failures.push(err);
                tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
            }
            Err(err) => return (Err(err), failures),
        }
    }
    unreachable!("the last attempt returns")
}

#[tokio::test]
async fn token_is_cached_across_sends() {
    let (mock, client) = start().await;
    for i in 0..10 {
        let ok = client.send("zhangsan", &text(&format!("消息 {i}"))).await.expect("send");
        assert!(ok.msgid.starts_with("mock-msgid-"), "{ok:?}");
        assert!(!ok.is_partial());
    }
    assert_eq!(mock.token_fetches(), 1);
    let received = mock.received();
    assert_eq!(received.len(), 10);
    let first = &received[0];
    assert_eq!(first.touser.as_deref(), Some("zhangsan"));
    assert_eq!(first.msgtype, "text");
    assert_eq!(first.body["agentid"], mock::AGENT_ID);
    assert_eq!(first.body["enable_duplicate_check"], 1);
    assert_eq!(first.body["duplicate_check_interval"], 1800);
    mock.stop().await;
}

#[tokio::test]
async fn expired_token_mid_stream_is_refreshed_once_and_each_message_delivered_once() {
    let (mock, client) = start().await;
    let expected: Vec<String> = (0..10).map(|i| format!("跟进提醒 #{i}")).collect();
    let first_token = client.access_token().await.expect("token");
    for (i, content) in expected.iter().enumerate() {
        if i == 5 {
            mock.expire_tokens();
        }
        client.send("lisi", &text(content)).await.expect("send");
    }
    assert_eq!(mock.token_fetches(), 2, "one fetch at the start, one after the token was revoked");
    assert_eq!(mock.send_attempts(), 11, "exactly one request was rejected for its token");
    assert_each_once(&app_contents(&mock), &expected);
    assert_ne!(client.access_token().await.expect("token"), first_token);
    mock.stop().await;
}

#[tokio::test]
async fn token_is_refreshed_before_it_expires() {
    let (mock, client) = start().await;
    mock.set_token_ttl(Duration::from_secs(2));
    let first = client.access_token().await.expect("token");
    client.send("wangwu", &text("一")).await.expect("send");
    // Half the 2 s lifetime in, the client asks again (WeCom answers with the same, still valid token) ...
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.send("wangwu", &text("二")).await.expect("send");
    assert_eq!(mock.token_fetches(), 2);
    assert_eq!(client.access_token().await.expect("token"), first);
    // ... and once it has expired, it fetches the new one before WeCom has to reject anything.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.send("wangwu", &text("三")).await.expect("send");
    assert_eq!(mock.token_fetches(), 3);
    assert_ne!(client.access_token().await.expect("token"), first);
    assert_eq!(mock.send_attempts(), 3, "no request went out with an expired token");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_with_an_expired_token_share_one_refetch() {
    let (mock, client) = start().await;
    client.send("zhaoliu", &text("预热")).await.expect("send");
    mock.expire_tokens();
    let expected: Vec<String> = (0..20).map(|i| format!("并发消息 {i}")).collect();
    let tasks: Vec<_> = expected
        .iter()
        .map(|content| {
            let client = client.clone();
            let content = content.clone();
            tokio::spawn(async move { client.send("zhaoliu", &client::Message::Text(content)).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("send");
    }
    assert_eq!(mock.token_fetches(), 2, "one refetch shared by all 20 senders");
    let mut all = expected.clone();
    all.push("预热".to_owned());
    assert_each_once(&app_contents(&mock), &all);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_use_fetches_one_token() {
    let (mock, client) = start().await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.send("sunqi", &client::Message::Text(format!("冷启动 {i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("send");
    }
    assert_eq!(mock.token_fetches(), 1);
    assert_eq!(mock.received().len(), 20);
    mock.stop().await;
}

#[tokio::test]
async fn frequency_limit_is_retry_and_a_retry_loop_delivers_each_message_once() {
    let (mock, client) = start().await;
    mock.script(vec![mock::Fault::Errcode(45009), mock::Fault::Errcode(45009), mock::Fault::Errcode(-1)]);
    let first = client.send("zhouba", &text("消息 0")).await.expect_err("45009");
    assert_eq!(
        first,
        client::PushError::Retry {
            code: 45009,
            message: "mock fault 45009".to_owned(),
            after: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(first.class(), client::ErrorClass::Retry);
    assert!(mock.received().is_empty());

    let expected: Vec<String> = (0..5).map(|i| format!("消息 {i}")).collect();
    let mut failures = 0;
    for content in &expected {
        let (result, failed) = send_with_retry(&client, "zhouba", &text(content), 5).await;
        result.expect("delivered after retrying");
        failures += failed.len();
    }
    assert_eq!(failures, 2, "the second 45009 and the -1");
    assert_eq!(mock.pending_faults(), 0);
    assert_each_once(&app_contents(&mock), &expected);
    assert_eq!(mock.token_fetches(), 1, "rate limits do not touch the token");
    mock.stop().await;
}

#[tokio::test]
async fn busy_and_server_errors_are_retry_and_client_errors_fatal() {
    let (mock, client) = start().await;
    mock.script(vec![
        mock::Fault::Errcode(-1),
        mock::Fault::Http(500),
        mock::Fault::Http(503),
        mock::Fault::Errcode(45033),
        mock::Fault::Http(404),
    ]);
    for expected_code in [-1, 500, 503, 45033] {
        let err = client.send("wujiu", &text("忙")).await.expect_err("transient");
        assert!(matches!(err, client::PushError::Retry { code, .. } if code == expected_code), "{err:?}");
        assert_eq!(err.class(), client::ErrorClass::Retry);
    }
    let err = client.send("wujiu", &text("忙")).await.expect_err("404");
    assert!(matches!(err, client::PushError::Fatal { code: 404, .. }), "{err:?}");
    assert!(mock.received().is_empty());
    client.send("wujiu", &text("忙")).await.expect("the server is fine again");
    assert_eq!(mock.received().len(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn timeout_is_retry_and_the_timed_out_message_may_still_be_delivered() {
    let mock = mock::MockWecom::start().await;
    let client = client::WecomClient::new(&mock.base_url(), mock::MockWecom::credentials(), Duration::from_millis(500))
        .expect("client");
    client.access_token().await.expect("token");
    mock.script(vec![mock::Fault::Delay(Duration::from_millis(1500))]);
    let started = tokio::time::Instant::now();
    let err = client.send("zhengshi", &text("超时的消息")).await.expect_err("timeout");
    assert!(started.elapsed() < Duration::from_millis(1400), "the client gave up at its timeout");
    assert!(
        matches!(&err, client::PushError::Retry { code: 0, message, .. } if message.contains("timed out")),
        "{err:?}"
    );
    assert_eq!(err.class(), client::ErrorClass::Retry);

    // The server finishes the request the client gave up on: the message was delivered all the same.
    for _ in 0..60 {
        if !mock.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app_contents(&mock), vec!["超时的消息".to_owned()]);

    // So the caller's retry is a second copy. Both bodies are identical and ask for WeCom's duplicate check,
    // which is what keeps the user from seeing it twice: the mock, like WeCom, answers ok and drops it.
    client.send("zhengshi", &text("超时的消息")).await.expect("retry");
    let received = mock.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].body["enable_duplicate_check"], 1);
    assert_eq!(mock.duplicates_dropped(), 1);
    // A different message to the same user is not a duplicate.
    client.send("zhengshi", &text("另一条消息")).await.expect("send");
    assert_eq!(mock.received().len(), 2);
    assert_eq!(mock.duplicates_dropped(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn fatal_errcodes_are_reported_as_fatal() {
    let (mock, client) = start().await;
    for code in [60020, 81013, 48002, 40003, 40056, 60011] {
        mock.script(vec![mock::Fault::Errcode(code)]);
        let err = client.send("chenshi", &text("不会送达")).await.expect_err("fatal");
        assert!(matches!(err, client::PushError::Fatal { code: got, .. } if got == code), "{err:?}");
        assert_eq!(err.class(), client::ErrorClass::Fatal);
    }
    assert!(mock.received().is_empty());
    assert_eq!(mock.token_fetches(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn unknown_recipients_are_fatal_alone_and_partial_in_company() {
    let (mock, client) = start().await;
    mock.mark_invalid_user("ghost");
    let err = client.send("ghost", &text("无人接收")).await.expect_err("81013");
    assert!(matches!(err, client::PushError::Fatal { code: 81013, .. }), "{err:?}");

    let ok = client.send("alice|ghost", &text("部分送达")).await.expect("partial success");
    assert!(ok.is_partial());
    assert_eq!(ok.invalid_users, vec!["ghost".to_owned()]);
    assert_eq!(app_contents(&mock), vec!["部分送达".to_owned()]);

    let mut wrong_agent = mock::MockWecom::credentials();
    wrong_agent.agent_id = 42;
    let other = client::WecomClient::new(&mock.base_url(), wrong_agent, TIMEOUT).expect("client");
    let err = other.send("alice", &text("错误的应用")).await.expect_err("40056");
    assert!(matches!(err, client::PushError::Fatal { code: 40056, .. }), "{err:?}");
    mock.stop().await;
}

#[tokio::test]
async fn unreadable_body_is_bad_response() {
    let (mock, client) = start().await;
    mock.script(vec![mock::Fault::Http(200)]);
    let err = client.send("alice", &text("你好")).await.expect_err("bad body");
    assert!(matches!(err, client::PushError::BadResponse(_)), "{err:?}");
    assert_eq!(err.class(), client::ErrorClass::Retry);
    client.send("alice", &text("你好")).await.expect("send");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_secret_is_fatal_and_asked_only_once() {
    let mock = mock::MockWecom::start().await;
    let mut app = mock::MockWecom::credentials();
    app.secret = "not-the-secret".to_owned();
    let client = client::WecomClient::new(&mock.base_url(), app, TIMEOUT).expect("client");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send("alice", &client::Message::Text("你好".to_owned())).await })
        })
        .collect();
    for task in tasks {
        let err = task.await.expect("join").expect_err("wrong secret");
        assert!(matches!(err, client::PushError::Fatal { code: 40001, .. }), "{err:?}");
    }
    let err = client.send("alice", &text("再试一次")).await.expect_err("still wrong");
    assert!(matches!(err, client::PushError::Fatal { code: 40001, .. }), "{err:?}");
    assert_eq!(mock.token_fetches(), 1, "a wrong secret is not hammered at gettoken");
    assert_eq!(mock.send_attempts(), 0);
    mock.stop().await;
}

#[tokio::test]
async fn token_rejected_again_after_refresh_is_refresh_and_retry() {
    let (mock, client) = start().await;
    mock.script(vec![mock::Fault::Errcode(42001), mock::Fault::Errcode(40014)]);
    let err = client.send("alice", &text("令牌")).await.expect_err("rejected twice");
    assert_eq!(err, client::PushError::RefreshAndRetry { code: 40014 });
    assert_eq!(err.class(), client::ErrorClass::Retry);
    assert_eq!(mock.token_fetches(), 2, "one refresh inside the call, no more");
    assert_eq!(mock.send_attempts(), 2, "one retry inside the call, no more");
    client.send("alice", &text("令牌")).await.expect("next call fetches a token and succeeds");
    assert_eq!(mock.token_fetches(), 3, "the refused token was not kept");
    assert_eq!(mock.received().len(), 1);
    mock.stop().await;
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

#[tokio::test]
async fn secrets_tokens_and_robot_keys_stay_out_of_logs_and_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // tracing caches each callsite's interest process-wide. While exactly one dispatcher is registered, a
    // callsite first hit on another test's thread (which has no subscriber) is cached as "never", and this
    // test's subscriber would miss it. A second live dispatcher makes tracing ask every registered one.
    let _second_dispatcher = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let mock = mock::MockWecom::start().await;
    let base_url = mock.base_url();
    let app = mock::MockWecom::credentials();
    assert!(!format!("{app:?}").contains(mock::CORP_SECRET));
    let client = client::WecomClient::new(&base_url, app.clone(), Duration::from_millis(500)).expect("client");
    assert!(!format!("{client:?}").contains(mock::CORP_SECRET));
    let token = client.access_token().await.expect("token");

    let mut errors = Vec::new();
    mock.script(vec![
        mock::Fault::Http(502),
        mock::Fault::Delay(Duration::from_millis(1200)),
        mock::Fault::Errcode(42001),
        mock::Fault::Errcode(42001),
    ]);
    for _ in 0..3 {
        errors.push(client.send("alice", &text("日志")).await.expect_err("scripted failure"));
    }
    let robot = client::RobotClient::new(TIMEOUT).expect("robot");
    let robot_key = "robot-key-3b9f0c7e-secret";
    mock.disable_robot(robot_key);
    errors.push(
        robot.send(&mock.robot_webhook_url(robot_key), &client::RobotMessage::text("群消息")).await.expect_err("93000"),
    );
    mock.stop().await;
    // Nobody listens any more: a connection error for gettoken, whose URL holds the secret.
    let fresh = client::WecomClient::new(&base_url, app, TIMEOUT).expect("client");
    errors.push(fresh.access_token().await.expect_err("connection refused"));
    errors.push(
        robot
            .send(&format!("{base_url}/cgi-bin/webhook/send?key={robot_key}"), &client::RobotMessage::text("x"))
            .await
            .expect_err("refused"),
    );

    let logs = captured.text();
    let error_text: String = errors.iter().map(|err| format!("{err} {err:?}\n")).collect();
    for haystack in [&logs, &error_text] {
        assert!(!haystack.contains(mock::CORP_SECRET), "secret leaked:\n{haystack}");
        assert!(!haystack.contains(&token), "token leaked:\n{haystack}");
        assert!(!haystack.contains(robot_key), "robot key leaked:\n{haystack}");
    }
    // One line per failure, with code, class and the next step.
    assert!(logs.contains("code=502") && logs.contains("class=Retry"), "{logs}");
    assert!(logs.contains("timed out"), "{logs}");
    assert!(logs.contains("code=93000") && logs.contains("class=Fatal"), "{logs}");
    assert!(logs.contains("RefreshAndRetry") || logs.contains("freshly fetched"), "{logs}");
    assert!(logs.contains("next="), "{logs}");
    assert_eq!(logs.matches("code=502").count(), 1, "{logs}");
}

#[tokio::test]
async fn robot_client_keeps_to_20_messages_a_minute_without_asking_the_server() {
    let mock = mock::MockWecom::start().await;
    let robot = client::RobotClient::new(TIMEOUT).expect("robot");
    let url = mock.robot_webhook_url("team-sales");
    for i in 0..20 {
        robot.send(&url, &client::RobotMessage::text(format!("播报 {i}"))).await.expect("within the limit");
    }
    let err = robot.send(&url, &client::RobotMessage::text("第 21 条")).await.expect_err("over the limit");
    match err {
        client::PushError::RateLimited { retry_after } => {
            assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60), "{retry_after:?}")
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(mock.robot_attempts(), 20, "the 21st message never reached the server");
    // Another robot has its own window.
    robot.send(&mock.robot_webhook_url("team-support"), &client::RobotMessage::text("另一个群")).await.expect("send");
    let received = mock.received();
    assert_eq!(received.iter().filter(|r| r.robot_key.as_deref() == Some("team-sales")).count(), 20);
    assert_eq!(received.iter().filter(|r| r.robot_key.as_deref() == Some("team-support")).count(), 1);
    mock.stop().await;
}

#[tokio::test]
async fn robot_over_the_limit_at_the_server_gets_45009_as_retry() {
    let mock = mock::MockWecom::start().await;
    let robot = client::RobotClient::with_rate_limit(TIMEOUT, 100, Duration::from_secs(60)).expect("robot");
    let url = mock.robot_webhook_url("greedy");
    for i in 0..20 {
        robot.send(&url, &client::RobotMessage::text(format!("{i}"))).await.expect("send");
    }
    let err = robot.send(&url, &client::RobotMessage::text("21")).await.expect_err("45009");
    assert!(matches!(err, client::PushError::Retry { code: 45009, after: Some(_), .. }), "{err:?}");
    assert_eq!(mock.robot_attempts(), 21);
    assert_eq!(mock.received().len(), 20);
    // After WeCom said 45009 the client holds back by itself for a window.
    let err = robot.send(&url, &client::RobotMessage::text("22")).await.expect_err("held back");
    assert!(matches!(err, client::PushError::RateLimited { .. }), "{err:?}");
    assert_eq!(mock.robot_attempts(), 21);
    mock.stop().await;
}

#[tokio::test]
async fn long_robot_messages_are_split_on_line_boundaries() {
    let mock = mock::MockWecom::start().await;
    let robot = client::RobotClient::new(TIMEOUT).expect("robot");
    let url = mock.robot_webhook_url("digest");
    let lines: Vec<String> = (0..300).map(|i| format!("- 第{i}条：客户「华东机电」拜访完成，下周跟进报价。")).collect();
    let markdown = lines.join("\n");
    assert!(markdown.len() > 3 * client::ROBOT_MARKDOWN_MAX_BYTES);
    robot.send(&url, &client::RobotMessage::Markdown(markdown.clone())).await.expect("send");
    let parts: Vec<String> = mock.received().iter().filter_map(|r| r.content().map(str::to_owned)).collect();
    assert!(parts.len() >= 4, "{} parts", parts.len());
    for part in &parts {
        assert!(part.len() <= client::ROBOT_MARKDOWN_MAX_BYTES);
    }
    assert_eq!(parts.join("\n"), markdown, "nothing lost, no line cut");

    let long_text = lines[..80].join("\n");
    let mention = client::RobotMessage::Text {
        content: long_text,
        mentioned_list: vec!["@all".to_owned()],
        mentioned_mobile_list: Vec::new(),
    };
    let before = mock.received().len();
    robot.send(&url, &mention).await.expect("send");
    let texts: Vec<mock::Received> = mock.received().into_iter().skip(before).collect();
    assert!(texts.len() >= 2);
    assert_eq!(texts[0].body["text"]["mentioned_list"], serde_json::json!(["@all"]));
    assert!(texts[1..].iter().all(|r| r.body["text"].get("mentioned_list").is_none()), "mention only once");
    assert!(texts.iter().all(|r| r.content().is_some_and(|c| c.len() <= client::TEXT_MAX_BYTES)));
    mock.stop().await;
}

/// Deterministic text: lines of ASCII, CJK and emoji of varied length, some blank, some very long.
fn generated_text(seed: u64, lines: usize) -> String {
    let alphabet = ["a", "Z", "9", " ", "客", "户", "拜", "访", "，", "😀", "é"];
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..lines)
        .map(|_| {
            let len = match next() % 10 {
                0 => 0,
                1 => 400 + next() % 400,
                _ => next() % 60,
            };
            (0..len).map(|_| alphabet[next() % alphabet.len()]).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn split_for_limit_splits_chinese_text_on_line_boundaries() {
    // 100 lines of 30 CJK characters = 90 bytes each.
    let lines: Vec<String> = (0..100).map(|i| format!("{:02}", i % 100) + &"销售线索跟进".repeat(5)).collect();
    let text = lines.join("\n");
    let parts = client::split_for_limit(&text, 2048);
    assert!(parts.len() > 1);
    for part in &parts {
        assert!(part.len() <= 2048, "{} bytes", part.len());
        for line in part.split('\n') {
            assert!(lines.contains(&line.to_owned()), "line cut: {line:?}");
        }
    }
    assert_eq!(parts.join("\n"), text);
    // Greedy: each part is full up to the next whole line.
    for pair in parts.windows(2) {
        let next_line = pair[1].split('\n').next().unwrap_or_default();
        assert!(pair[0].len() + 1 + next_line.len() > 2048);
    }

    // A single line over the limit is cut at character boundaries, nowhere else.
    let long_line = "长".repeat(1000); // 3000 bytes
    let text = format!("开头\n{long_line}\n结尾");
    let parts = client::split_for_limit(&text, 2048);
    assert_eq!(parts[0], "开头");
    assert!(parts.iter().all(|part| part.len() <= 2048));
    assert_eq!(parts.concat().replace('\n', ""), text.replace('\n', ""));
    assert!(parts[1].chars().all(|c| c == '长') && parts[1].len() == 2046);

    assert_eq!(client::split_for_limit("短消息", 2048), vec!["短消息".to_owned()]);
    assert!(client::split_for_limit("", 2048).is_empty());
}

#[test]
fn split_for_limit_invariants_on_generated_text() {
    for seed in 0..40u64 {
        let text = generated_text(seed, 60);
        for max in [8usize, 13, 64, 100, 2048] {
            let parts = client::split_for_limit(&text, max);
            let joined: String = parts.concat();
            assert_eq!(joined.replace('\n', ""), text.replace('\n', ""), "seed {seed} max {max}: content changed");
            for part in &parts {
                assert!(!part.is_empty() && !part.starts_with('\n'), "seed {seed} max {max}: {part:?}");
                assert!(part.len() <= max, "seed {seed} max {max}: {} bytes", part.len());
            }
            // Every line that fits is whole in some part.
            let part_lines: Vec<&str> = parts.iter().flat_map(|part| part.split('\n')).collect();
            for line in text.split('\n').filter(|line| !line.is_empty() && line.len() <= max) {
                assert!(part_lines.contains(&line), "seed {seed} max {max}: line {line:?} was cut");
            }
        }
    }
}

#[test]
fn classify_covers_the_errcode_table() {
    use client::ErrorClass::{Fatal, Retry};
    // PLATFORMS.md 1.10, plus the fatal codes named for the client.
    let table = [
        (-1, Retry),
        (40001, Fatal),
        (40014, Retry),
        (42001, Retry),
        (41001, Fatal),
        (44004, Fatal),
        (45002, Fatal),
        (45009, Retry),
        (45033, Retry),
        (48002, Fatal),
        (60011, Fatal),
        (60020, Fatal),
        (81013, Fatal),
        (93000, Fatal),
        (40003, Fatal),
        (40056, Fatal),
        (42007, Retry),
        (99999, Fatal),
    ];
    for (code, class) in table {
        assert_eq!(client::classify(code), class, "errcode {code}");
    }
    for info in client::ERRCODES {
        assert_eq!(client::classify(info.code), info.class);
        assert!(!info.action.is_empty());
    }
    for code in [40014, 42001, 42007, 40001] {
        assert!(client::is_token_error(code));
    }
    assert!(!client::is_token_error(45009));

    let retry = client::PushError::Retry { code: 45009, message: String::new(), after: Some(Duration::from_secs(60)) };
    assert_eq!(retry.class(), Retry);
    assert_eq!(retry.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(client::PushError::RefreshAndRetry { code: 42001 }.class(), Retry);
    assert_eq!(client::PushError::RateLimited { retry_after: Duration::from_secs(3) }.class(), Retry);
    assert_eq!(client::PushError::BadResponse(String::new()).class(), Retry);
    assert_eq!(client::PushError::Fatal { code: 60020, message: String::new() }.class(), Fatal);
    assert_eq!(client::PushError::Config(String::new()).class(), Fatal);
}

#[tokio::test]
async fn cards_have_wecom_shapes_and_bad_messages_are_refused_locally() {
    let (mock, client) = start().await;
    let card = client::Message::TextCard {
        title: "新线索".to_owned(),
        description: "<div class=\"gray\">2026-05-01</div>华东机电 询价 30 万".to_owned(),
        url: "https://crm.example.com/leads/42".to_owned(),
        btntxt: Some("查看".to_owned()),
    };
    client.send("alice", &card).await.expect("textcard");
    let reminder = client::Message::ButtonCard {
        title: "跟进提醒：华东机电".to_owned(),
        description: "今天 15:00 回访报价".to_owned(),
        task_key: "remind-42-1714550400".to_owned(),
        buttons: vec![("done".to_owned(), "完成".to_owned()), ("snooze_1h".to_owned(), "推迟".to_owned())],
    };
    let ok = client.send("alice", &reminder).await.expect("button card");
    assert!(ok.response_code.is_some(), "interactive cards return a response_code");

    let received = mock.received();
    assert_eq!(received[0].msgtype, "textcard");
    assert_eq!(received[0].body["textcard"]["btntxt"], "查看");
    let body = &received[1].body;
    assert_eq!(received[1].msgtype, "template_card");
    assert_eq!(body["template_card"]["card_type"], "button_interaction");
    assert_eq!(body["template_card"]["task_id"], "remind-42-1714550400");
    assert_eq!(body["template_card"]["main_title"]["title"], "跟进提醒：华东机电");
    assert_eq!(body["template_card"]["sub_title_text"], "今天 15:00 回访报价");
    assert_eq!(
        body["template_card"]["button_list"],
        serde_json::json!([{"text": "完成", "key": "done"}, {"text": "推迟", "key": "snooze_1h"}])
    );
    client.send("alice", &client::Message::Markdown("**本周** 新增 3 条线索".to_owned())).await.expect("markdown");

    let attempts = mock.send_attempts();
    let too_long = "字".repeat(683); // 2049 bytes
    let bad = [
        ("alice", text(&too_long)),
        ("alice", text("  ")),
        ("", text("没有收件人")),
        (
            "alice",
            client::Message::ButtonCard {
                title: "t".to_owned(),
                description: String::new(),
                task_key: "带中文的task".to_owned(),
                buttons: vec![("k".to_owned(), "v".to_owned())],
            },
        ),
        (
            "alice",
            client::Message::ButtonCard {
                title: "t".to_owned(),
                description: String::new(),
                task_key: "task-1".to_owned(),
                buttons: (0..7).map(|i| (format!("k{i}"), format!("v{i}"))).collect(),
            },
        ),
        (
            "alice",
            client::Message::TextCard {
                title: "t".to_owned(),
                description: "d".to_owned(),
                url: "https://x".to_owned(),
                btntxt: Some("五个字按钮".to_owned()),
            },
        ),
    ];
    for (to, msg) in &bad {
        let err = client.send(to, msg).await.expect_err("refused");
        assert!(matches!(err, client::PushError::Config(_)), "{err:?}");
        assert_eq!(err.class(), client::ErrorClass::Fatal);
    }
    assert_eq!(mock.send_attempts(), attempts, "nothing was sent");
    assert!(client::WecomClient::new("not a url", mock::MockWecom::credentials(), TIMEOUT).is_err());
    mock.stop().await;
}

// ---- Images: the funnel chart as a WeCom app image, a robot image and a console picture. ----

mod images {
    use std::time::Duration as StdDuration;

    use chatcrm::chart::{ChartInput, FunnelStep, RepBar, render_png};
    use chatcrm::clock::Clock;
    use chatcrm::crm::{self, Actor, Ctx, Via};
    use chatcrm::outbox::{DispatchConfig, Dispatcher, Kind, OutMessage, Outgoing, Routes, Senders, Target};
    use chatcrm::platform::wecom::client::{self, Message, PushError, RobotClient, RobotMessage, WecomClient};
    use chatcrm::platform::wecom::mock::{Fault, MockWecom, Received};
    use chatcrm::store::Db;
    use chrono::Duration;
    use serde_json::json;

    use crate::both_backends;
    use crate::helpers::{World, t0};

    const APP: &str = "sales";

    /// A real funnel chart, as the reports send it.
    fn chart() -> Vec<u8> {
        let input = ChartInput {
            title: "华东一组 · 本周销售漏斗".to_owned(),
            subtitle: "11月17日–11月23日".to_owned(),
            funnel: vec![
                FunnelStep {
                    label: "初步接触".into(), deals: 20, amount_fen: 150_000_000, conversion_pct: Some(60.0)
                },
                FunnelStep {
                    label: "方案报价".into(), deals: 12, amount_fen: 36_500_000, conversion_pct: Some(25.0)
                },
                FunnelStep { label: "赢单".into(), deals: 3, amount_fen: 9_000_000, conversion_pct: None },
            ],
            reps: vec![RepBar { name: "李雷".into(), visits: 5, calls: 9, other: 1 }],
        };
        render_png(&input).expect("chart")
    }

    fn images(mock: &MockWecom) -> Vec<(Received, Vec<u8>)> {
        mock.received()
            .into_iter()
            .filter(|r| r.msgtype == "image")
            .map(|r| {
                let bytes = mock.image_of(&r).expect("the image's bytes");
                (r, bytes)
            })
            .collect()
    }

    fn app_client(mock: &MockWecom, timeout: StdDuration) -> WecomClient {
        WecomClient::new(&mock.base_url(), MockWecom::credentials(), timeout).expect("client")
    }

    #[tokio::test]
    async fn an_app_image_is_uploaded_then_sent_by_its_media_id() {
        let mock = MockWecom::start().await;
        let client = app_client(&mock, StdDuration::from_secs(5));
        let png = chart();
        let ok = client.send("zhangsan", &Message::Image { png: png.clone() }).await.expect("send");
        assert!(ok.msgid.starts_with("mock-msgid-"), "{ok:?}");
        let uploads = mock.uploads();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].kind, "image");
        assert_eq!(uploads[0].filename.as_deref(), Some("chart.png"));
        assert_eq!(uploads[0].content_type.as_deref(), Some("image/png"));
        assert_eq!(uploads[0].bytes, png);
        let got = images(&mock);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.touser.as_deref(), Some("zhangsan"));
        assert_eq!(got[0].0.media_id(), Some(uploads[0].media_id.as_str()));
        assert_eq!(got[0].0.body["enable_duplicate_check"], 1);
        assert_eq!(got[0].1, png);
        // The same picture again within the reuse window: no second upload, an identical body, which the
        // duplicate check drops (what makes a resend after a lost answer harmless).
        client.send("zhangsan", &Message::Image { png: png.clone() }).await.expect("send");
        assert_eq!(mock.upload_attempts(), 1);
        assert_eq!(mock.duplicates_dropped(), 1);
        assert_eq!(images(&mock).len(), 1);
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_expired_token_during_the_upload_is_refreshed_once() {
        let mock = MockWecom::start().await;
        let client = app_client(&mock, StdDuration::from_secs(5));
        let first = client.access_token().await.expect("token");
        mock.expire_tokens();
        client.send("lisi", &Message::Image { png: chart() }).await.expect("send");
        assert_eq!(mock.token_fetches(), 2);
        assert_eq!(mock.upload_attempts(), 2, "one upload rejected for its token, one accepted");
        assert_eq!(mock.send_attempts(), 1);
        assert_eq!(images(&mock).len(), 1);
        assert_ne!(client.access_token().await.expect("token"), first);
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_media_id_wecom_forgot_is_uploaded_again() {
        let mock = MockWecom::start().await;
        let client = app_client(&mock, StdDuration::from_secs(5));
        let png = chart();
        client.send("wangwu", &Message::Image { png: png.clone() }).await.expect("send");
        mock.forget_media();
        client.send("wangwu", &Message::Image { png: png.clone() }).await.expect("send after 40007");
        assert_eq!(mock.upload_attempts(), 2);
        assert_eq!(mock.send_attempts(), 3, "the send naming the forgotten id, then the resend");
        let got = images(&mock);
        assert_eq!(got.len(), 2);
        assert_ne!(got[0].0.media_id(), got[1].0.media_id());
        assert!(got.iter().all(|(_, bytes)| *bytes == png));
        mock.stop().await;
    }

    #[tokio::test]
    async fn images_wecom_would_refuse_are_refused_before_any_request() {
        let mock = MockWecom::start().await;
        let client = app_client(&mock, StdDuration::from_secs(5));
        let robot = RobotClient::new(StdDuration::from_secs(5)).expect("robot");
        let mut too_big = chart();
        too_big.resize(client::IMAGE_MAX_BYTES + 1, 0);
        for png in [Vec::new(), b"GIF89a not a png".to_vec(), too_big] {
            let err = client.send("alice", &Message::Image { png: png.clone() }).await.expect_err("refused");
            assert!(matches!(err, PushError::Config(_)), "{err:?}");
            let err = client.upload_image(&png).await.expect_err("refused");
            assert!(matches!(err, PushError::Config(_)), "{err:?}");
            let err =
                robot.send(&mock.robot_webhook_url("k"), &RobotMessage::Image { png }).await.expect_err("refused");
            assert!(matches!(err, PushError::Config(_)), "{err:?}");
        }
        assert_eq!((mock.upload_attempts(), mock.send_attempts(), mock.robot_attempts()), (0, 0, 0));
        mock.stop().await;
    }

    #[tokio::test]
    async fn the_mock_checks_uploads_media_ids_and_robot_md5s() {
        let mock = MockWecom::start().await;
        let client = app_client(&mock, StdDuration::from_secs(5));
        let token = client.access_token().await.expect("token");
        let http = reqwest::Client::new();
        let base = mock.base_url();
        let errcode = |v: serde_json::Value| v["errcode"].as_i64().unwrap_or(i64::MIN);
        let post = |path: &str| http.post(format!("{base}{path}"));
        let upload = |kind: &str, field: &str, bytes: Vec<u8>| {
            let part = reqwest::multipart::Part::bytes(bytes).file_name("x.png");
            post("/cgi-bin/media/upload")
                .query(&[("access_token", token.as_str()), ("type", kind)])
                .multipart(reqwest::multipart::Form::new().part(field.to_owned(), part))
        };
        let answer = |req: reqwest::RequestBuilder| async move {
            req.send().await.expect("request").json::<serde_json::Value>().await.expect("JSON")
        };
        let png = chart();
        assert_eq!(errcode(answer(upload("voice", "media", png.clone())).await), 40004);
        assert_eq!(errcode(answer(upload("image", "file", png.clone())).await), 41005);
        assert_eq!(errcode(answer(upload("image", "media", Vec::new())).await), 44001);
        assert_eq!(errcode(answer(upload("image", "media", b"GIF89a".to_vec())).await), 40005);
        assert_eq!(errcode(answer(upload("image", "media", vec![0x89; 3 << 20])).await), 40009);
        let bad_token = post("/cgi-bin/media/upload").query(&[("access_token", "nope"), ("type", "image")]);
        assert_eq!(errcode(answer(bad_token).await), 40014);
        let ok = answer(upload("image", "media", png.clone())).await;
        assert_eq!((errcode(ok.clone()), ok["type"].clone()), (0, json!("image")), "{ok}");
        let media_id = ok["media_id"].as_str().expect("media_id").to_owned();

        let send = |media_id: &str| {
            post("/cgi-bin/message/send").query(&[("access_token", token.as_str())]).json(&json!({
                "touser": "zhangsan", "msgtype": "image", "agentid": chatcrm::platform::wecom::mock::AGENT_ID,
                "image": { "media_id": media_id },
            }))
        };
        assert_eq!(errcode(answer(send("")).await), 41006);
        assert_eq!(errcode(answer(send("mock-media-unknown")).await), 40007);
        assert_eq!(errcode(answer(send(&media_id)).await), 0);

        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        let robot = |body: serde_json::Value| http.post(mock.robot_webhook_url("team-a")).json(&body);
        let image = |base64: &str, md5: &str| json!({ "msgtype": "image", "image": { "base64": base64, "md5": md5 } });
        let wrong_md5 = client::md5_hex(b"something else");
        assert_eq!(errcode(answer(robot(image(&b64, &wrong_md5))).await), 301019);
        assert_eq!(errcode(answer(robot(image("%%% not base64", &wrong_md5))).await), 40035);
        assert_eq!(errcode(answer(robot(image(&b64, &client::md5_hex(&png)))).await), 0);
        assert_eq!(images(&mock).len(), 2, "the app image and the robot image");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_robot_image_carries_its_base64_and_md5() {
        let mock = MockWecom::start().await;
        let robot = RobotClient::new(StdDuration::from_secs(5)).expect("robot");
        let png = chart();
        robot.send(&mock.robot_webhook_url("team-a"), &RobotMessage::Image { png: png.clone() }).await.expect("send");
        let got = images(&mock);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.robot_key.as_deref(), Some("team-a"));
        assert_eq!(got[0].0.body["image"]["md5"], json!(client::md5_hex(&png)));
        assert_eq!(client::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(got[0].1, png);
        mock.stop().await;
    }

    // ---- Through the outbox, on both databases. ----

    both_backends!(
        an_image_message_reaches_a_wecom_user_once_through_token_expiry_5xx_and_a_timeout,
        an_image_message_reaches_a_robot_with_its_md5,
        a_markdown_message_reaches_a_robot_as_markdown,
        a_long_robot_text_is_retried_part_by_part,
        an_image_message_for_the_console_is_stored_and_served,
    );

    async fn queue(db: &Db, org_id: i64, target: &Target, message: &OutMessage, key: &str) {
        let mut tx = db.begin().await.expect("begin");
        let out = Outgoing {
            org_id: Some(org_id),
            user_id: None,
            kind: Kind::Digest,
            target,
            message,
            dedupe_key: key,
            not_before: t0(),
        };
        assert!(chatcrm::outbox::enqueue(&mut tx, &out, t0()).await.expect("enqueue"));
        tx.commit().await.expect("commit");
    }

    async fn statuses(db: &Db) -> Vec<(String, i64)> {
        let mut tx = db.begin_read().await.expect("begin");
        let counts = chatcrm::store::outbox::counts(&mut tx).await.expect("counts");
        tx.commit().await.expect("commit");
        counts
    }

    /// Drains, stepping the clock past each backoff, until nothing is pending (at most `rounds` times).
    /// A dispatcher that sends WeCom group-robot messages to the mock.
    fn robot_outbox(db: &Db, clock: &Clock, mock: &MockWecom, cfg: DispatchConfig) -> Dispatcher {
        let robot = RobotClient::new(StdDuration::from_secs(2)).expect("robot");
        let senders = Senders::default().with_robot(robot, &mock.base_url());
        Dispatcher::new(db.clone(), clock.clone(), "one", senders, cfg)
    }

    async fn deliver(outbox: &Dispatcher, clock: &Clock, db: &Db, rounds: usize) {
        for _ in 0..rounds {
            outbox.drain().await.expect("drain");
            if statuses(db).await.iter().all(|(status, _)| status != "pending") {
                return;
            }
            clock.set(clock.now() + Duration::minutes(2));
        }
        panic!("still pending: {:?}", statuses(db).await);
    }

    async fn an_image_message_reaches_a_wecom_user_once_through_token_expiry_5xx_and_a_timeout(db: Db) {
        let w = World::new(db.clone()).await;
        let corp = MockWecom::credentials().corp_id;
        {
            let mut tx = w.tx().await;
            let ctx = Ctx::new(Actor::system(w.org.id), Via::Cli, t0());
            crm::users::link_identity(&mut tx, &ctx, w.ma.id, "wecom", &corp, "manager-a").await.expect("link");
            tx.commit().await.expect("commit");
        }
        let routes = Routes::default().with_wecom_app(APP, &corp);
        let target = {
            let mut tx = w.tx().await;
            let target = routes.target_for_user(&mut tx, w.ma.id).await.expect("target");
            tx.commit().await.expect("commit");
            target
        };
        assert_eq!((target.platform.as_str(), target.recipient.as_str()), ("wecom", "manager-a"));
        let mock = MockWecom::start().await;
        let clock = Clock::fixed(t0());
        let client = app_client(&mock, StdDuration::from_millis(400));
        let senders = Senders::default().with_wecom(APP, client.clone());
        let outbox = Dispatcher::new(db.clone(), clock.clone(), "one", senders, DispatchConfig::default());
        // Words and picture are two rows with their own keys (the outbox does not order rows).
        let words = OutMessage::text("本周销售漏斗如下图");
        queue(&db, w.org.id, &target, &words, "funnel:1:text").await;
        deliver(&outbox, &clock, &db, 1).await;
        let pngs: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let mut input = ChartInput { title: format!("漏斗 {i}"), ..ChartInput::default() };
                input.reps.push(RepBar { name: "李雷".into(), visits: i, calls: 1, other: 0 });
                render_png(&input).expect("chart")
            })
            .collect();

        // 1. The token expires before the upload: refreshed once, delivered once.
        client.access_token().await.expect("token");
        mock.expire_tokens();
        let picture = OutMessage::image("本周销售漏斗（图片）", pngs[0].clone());
        queue(&db, w.org.id, &target, &picture, "funnel:1:image").await;
        deliver(&outbox, &clock, &db, 3).await;
        assert_eq!(mock.token_fetches(), 2);

        // 2. A 502 on the upload, then one on the send: each retried by the outbox; the send's retry reuses
        //    the uploaded media_id.
        mock.script(vec![Fault::Http(502)]);
        queue(&db, w.org.id, &target, &OutMessage::image("图 2", pngs[1].clone()), "funnel:2:image").await;
        deliver(&outbox, &clock, &db, 5).await;
        mock.script(vec![Fault::Delay(StdDuration::ZERO), Fault::Http(503)]);
        queue(&db, w.org.id, &target, &OutMessage::image("图 3", pngs[2].clone()), "funnel:3:image").await;
        let uploads_before = mock.upload_attempts();
        deliver(&outbox, &clock, &db, 5).await;
        assert_eq!(mock.upload_attempts(), uploads_before + 1, "the resend reused the media_id");

        // 3. The send times out although the mock delivers it: the retry is the identical body, which the
        //    duplicate check drops.
        let mut input = ChartInput { title: "漏斗 4".into(), ..ChartInput::default() };
        input.reps.push(RepBar { name: "韩梅梅".into(), visits: 4, calls: 4, other: 4 });
        let last = render_png(&input).expect("chart");
        mock.script(vec![Fault::Delay(StdDuration::ZERO), Fault::Delay(StdDuration::from_millis(800))]);
        queue(&db, w.org.id, &target, &OutMessage::image("图 4", last.clone()), "funnel:4:image").await;
        deliver(&outbox, &clock, &db, 5).await;
        // Let the timed-out request finish on the mock before counting.
        tokio::time::sleep(StdDuration::from_millis(900)).await;

        let received = mock.received();
        assert_eq!(received[0].content(), Some("本周销售漏斗如下图"));
        let got = images(&mock);
        let expected = [&pngs[0], &pngs[1], &pngs[2], &last];
        assert_eq!(got.len(), expected.len(), "{:?}", got.iter().map(|(r, _)| &r.body).collect::<Vec<_>>());
        for (png, (r, bytes)) in expected.iter().zip(&got) {
            assert_eq!(r.touser.as_deref(), Some("manager-a"));
            assert_eq!(bytes, *png, "each picture exactly once, in order");
        }
        assert_eq!(received.len(), 5, "the words and four pictures, nothing twice");
        assert!(mock.duplicates_dropped() >= 1);
        assert_eq!(statuses(&db).await, vec![("sent".to_string(), 5)]);
        mock.stop().await;
    }

    async fn an_image_message_reaches_a_robot_with_its_md5(db: Db) {
        let w = World::new(db.clone()).await;
        let mock = MockWecom::start().await;
        let clock = Clock::fixed(t0());
        let outbox = robot_outbox(&db, &clock, &mock, DispatchConfig::default());
        let target = Target { platform: "wecom_robot".into(), app: String::new(), recipient: "team-a".into() };
        let png = chart();
        mock.script(vec![Fault::Http(500)]);
        queue(&db, w.org.id, &target, &OutMessage::image("团队漏斗", png.clone()), "robot-funnel:1").await;
        deliver(&outbox, &clock, &db, 5).await;
        let got = images(&mock);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.robot_key.as_deref(), Some("team-a"));
        assert_eq!(got[0].0.body["image"]["md5"], json!(client::md5_hex(&png)));
        assert_eq!(got[0].1, png);
        assert_eq!(mock.robot_attempts(), 2, "the 500, then the delivery");
        assert_eq!(statuses(&db).await, vec![("sent".to_string(), 1)]);
        mock.stop().await;
    }

    /// A markdown message (a digest in the robot's dialect) reaches a robot as markdown, so its
    /// `<font>` and `###` render; plain text stays text.
    async fn a_markdown_message_reaches_a_robot_as_markdown(db: Db) {
        let w = World::new(db.clone()).await;
        let mock = MockWecom::start().await;
        let clock = Clock::fixed(t0());
        let outbox = robot_outbox(&db, &clock, &mock, DispatchConfig::default());
        let target = Target { platform: "wecom_robot".into(), app: String::new(), recipient: "team-a".into() };
        let md = "### 华东一组 日报\n拜访 <font color=\"info\">3</font>";
        queue(&db, w.org.id, &target, &OutMessage::markdown(md), "robot-digest:1").await;
        queue(&db, w.org.id, &target, &OutMessage::text("纯文本"), "robot-text:1").await;
        deliver(&outbox, &clock, &db, 5).await;
        let got: Vec<(String, String)> =
            mock.received().iter().map(|r| (r.msgtype.clone(), r.content().unwrap_or_default().to_string())).collect();
        assert_eq!(got, [("markdown".to_string(), md.to_string()), ("text".to_string(), "纯文本".to_string())]);
        mock.stop().await;
    }

    /// A robot text over WeCom's limit is queued as one row per part, so a part that failed is
    /// sent again alone: the parts already delivered are not posted twice (webhooks have no
    /// duplicate check).
    async fn a_long_robot_text_is_retried_part_by_part(db: Db) {
        let w = World::new(db.clone()).await;
        let mock = MockWecom::start().await;
        let clock = Clock::fixed(t0());
        let outbox = robot_outbox(&db, &clock, &mock, DispatchConfig { concurrency: 1, ..DispatchConfig::default() });
        let target = Target { platform: "wecom_robot".into(), app: String::new(), recipient: "team-a".into() };
        let lines: Vec<String> = (0..60).map(|i| format!("第{i:02}行：华东一组本周拜访与商机进展")).collect();
        let text = lines.join("\n");
        assert!(text.len() > 2048 && text.len() <= 4096, "{} bytes", text.len());
        queue(&db, w.org.id, &target, &OutMessage::text(text.clone()), "robot-long:1").await;
        assert_eq!(statuses(&db).await, vec![("pending".to_string(), 2)], "one row per part");
        // The first part goes through, the second gets a 500 and is retried.
        mock.script(vec![Fault::Delay(StdDuration::ZERO), Fault::Http(500)]);
        deliver(&outbox, &clock, &db, 5).await;
        let got: Vec<String> = mock
            .received()
            .iter()
            .filter(|r| r.robot_key.as_deref() == Some("team-a"))
            .map(|r| r.content().unwrap_or_default().to_string())
            .collect();
        assert_eq!(got.len(), 2, "each part once: {got:?}");
        assert_eq!(got.join("\n"), text);
        assert_eq!(mock.robot_attempts(), 3, "two parts and one retry");
        mock.stop().await;
    }

    async fn an_image_message_for_the_console_is_stored_and_served(db: Db) {
        let w = World::new(db.clone()).await;
        let routes = Routes::default();
        let target = {
            let mut tx = w.tx().await;
            let target = routes.target_for_user(&mut tx, w.r1.id).await.expect("target");
            tx.commit().await.expect("commit");
            target
        };
        assert_eq!(target.platform, "console");
        let png = chart();
        queue(&db, w.org.id, &target, &OutMessage::text("本周漏斗"), "console-funnel:text").await;
        queue(&db, w.org.id, &target, &OutMessage::image("销售漏斗图", png.clone()), "console-funnel:image").await;
        let outbox =
            Dispatcher::new(db.clone(), Clock::fixed(t0()), "one", Senders::default(), DispatchConfig::default());
        assert_eq!(outbox.drain().await.expect("drain").sent, 2);

        let mut tx = db.begin_read().await.expect("begin");
        let pushes = chatcrm::store::inbox::pushes_after(&mut tx, w.r1.id, 0, 10).await.expect("pushes");
        let stored = chatcrm::store::inbox::push_image(&mut tx, w.r1.id, pushes[1].id).await.expect("image");
        let not_hers = chatcrm::store::inbox::push_image(&mut tx, w.r2.id, pushes[1].id).await.expect("image");
        tx.commit().await.expect("commit");
        let seen: Vec<(&str, bool)> = pushes.iter().map(|p| (p.text.as_str(), p.has_image)).collect();
        assert_eq!(seen, [("本周漏斗", false), ("销售漏斗图", true)]);
        assert_eq!(stored.as_deref(), Some(png.as_slice()));
        assert_eq!(not_hers, None);

        // Over HTTP: the list says which push has a picture, and the picture is served as PNG.
        let settings = chatcrm::config::Settings { console_org: w.org.name.clone(), ..crate::http::settings() };
        let server = crate::http::Server::start(settings, db.clone()).await;
        let r = server.get("/console/pushes?user=r1").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let listed = r.json()["pushes"].as_array().cloned().unwrap_or_default();
        assert_eq!(listed.iter().map(|p| p["has_image"].clone()).collect::<Vec<_>>(), [json!(false), json!(true)]);
        let image_url = server.url(&format!("/console/pushes/{}/image?user=r1", pushes[1].id));
        let res = server.client.get(&image_url).send().await.expect("request");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
        assert_eq!(res.bytes().await.expect("body").as_ref(), png.as_slice());
        server.get(&format!("/console/pushes/{}/image?user=r1", pushes[0].id)).await.assert_error(404, "not_found");
        server.get(&format!("/console/pushes/{}/image?user=r2", pushes[1].id)).await.assert_error(404, "not_found");
        server.get(&format!("/console/pushes/{}/image", pushes[1].id)).await.assert_error(400, "bad_query");
        server.stop().await;
    }
}
