//! WeCom push client against the mock WeCom server: token cache and single-flight refresh, error classes,
//! timeouts, robot rate limit and message splitting.

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
