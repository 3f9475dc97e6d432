//! The `chatcrm` command line. Logic lives in the library; this file parses flags and reports.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use chatcrm::clock::Clock;
use chatcrm::config::Settings;
use chatcrm::crm::users::NewUser;
use chatcrm::crm::{self, Actor, Ctx, Role, Via};
use chatcrm::platform::console;
use chatcrm::startup::{self, Application};
use chatcrm::store::outbox::STATUSES as OUTBOX_STATUSES;

#[derive(Parser)]
#[command(name = "chatcrm", version, about = "A CRM for sales teams, used from enterprise chat")]
struct Cli {
    /// Config file (default ./chatcrm.toml when present).
    #[arg(long, global = true, env = "CHATCRM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (migrates the database first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Chat with the bot in the terminal, as a console user.
    Chat {
        /// Handle or name of the user to act as.
        #[arg(long = "as")]
        as_user: String,
    },
    /// Seed the demo org (a manager, three reps, customers, deals, activities, leads, tasks).
    Demo,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCmd,
    },
    /// Inspect the outbox (messages chatcrm sends on its own), retry dead letters, drop messages.
    Outbox {
        #[command(subcommand)]
        command: OutboxCmd,
    },
    /// API tokens for the JSON API (/api/v1): create (printed once), list, revoke.
    Tokens {
        #[command(subcommand)]
        command: TokensCmd,
    },
    /// Import data from files.
    Import {
        #[command(subcommand)]
        what: ImportCmd,
    },
    /// Export customers (with contacts), deals or activities as CSV (UTF-8 with BOM, for Excel).
    Export {
        #[command(subcommand)]
        what: ExportCmd,
    },
    /// Lead assignment rules: list, add, remove, enable, disable.
    Rules {
        /// Org name (default: console_org from the config).
        #[arg(long, global = true)]
        org: Option<String>,
        #[command(subcommand)]
        command: RulesCmd,
    },
    /// Reports: a user's digest as their chat would show it, the funnel (optionally as a PNG).
    Report {
        #[command(subcommand)]
        what: ReportCmd,
    },
    /// Outbound webhooks: signed JSON POSTs of CRM events to other systems.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCmd,
    },
    /// Print the commented example configuration.
    PrintConfig,
    /// Print the chat command reference (Markdown, from bot-commands/).
    Commands,
    /// Parse a chat message and print the command as JSON (TEXT `-` reads one message per line).
    Parse {
        /// Print compact JSON, one object per line (the stable contract).
        #[arg(long)]
        json: bool,
        /// "Now" for relative times (RFC 3339); default: the current time.
        #[arg(long)]
        now: Option<String>,
        /// The org's time zone.
        #[arg(long, default_value = "Asia/Shanghai")]
        tz: String,
        text: String,
    },
    /// Resolve a time expression ("下周三下午3点", "tomorrow 3pm") to RFC 3339 (`-`: one per line).
    When {
        #[arg(long)]
        now: Option<String>,
        #[arg(long, default_value = "Asia/Shanghai")]
        tz: String,
        expression: String,
    },
    /// WeCom tools: simulate a callback, generate load.
    Wecom {
        #[command(subcommand)]
        what: WecomCmd,
    },
    /// DingTalk tools: simulate a robot callback.
    Dingtalk {
        #[command(subcommand)]
        what: DingtalkCmd,
    },
    /// Feishu tools: simulate a callback, run a mock Feishu API.
    Feishu {
        #[command(subcommand)]
        what: FeishuCmd,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Validate the configuration and the command specs, then exit.
    CheckConfig,
    /// Check the configuration, the database (reachable, schema, clock) and every chat platform
    /// app's credentials against its API; say what is wrong and how to fix it (exit 1 if anything
    /// failed).
    Doctor {
        /// The checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back up the SQLite database while the server runs: a consistent copy of one moment,
    /// checked after writing. For PostgreSQL it prints how to use pg_dump (exit 2).
    Backup {
        /// The backup file to create (must not exist).
        file: PathBuf,
        /// Print what was written as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mixed chat traffic against a running server: signed (and encrypted) callbacks for every
    /// configured WeCom, DingTalk and Feishu app from many users (visits, calls, deal updates,
    /// leads, reminders, queries); prints msgs/s and p50/p90/p99/max latency per platform. Links
    /// the senders in the configured database first (seeding the demo org when missing).
    Loadgen(LoadgenArgs),
    /// Replace the SQLite database with a backup, after checking the backup. Stop the server
    /// first. Exit 2 when refused (nothing is changed).
    Restore {
        /// A file written by `chatcrm backup`.
        file: PathBuf,
        /// Replace a database that holds data.
        #[arg(long)]
        force: bool,
        /// Print what was restored as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where and how hard `loadgen` sends (shared by `chatcrm loadgen` and `chatcrm wecom loadgen`).
#[derive(clap::Args)]
struct LoadFlags {
    /// The server (default: http:// + the configured `listen`).
    #[arg(long)]
    url: Option<String>,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Total messages per second (default: as fast as possible). Latency then counts from when
    /// each request was due.
    #[arg(long)]
    rate: Option<u64>,
    /// Write the requests to this file instead of sending them.
    #[arg(long)]
    write: Option<PathBuf>,
    /// With --write: how many requests.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
}

#[derive(clap::Args)]
struct LoadgenArgs {
    /// Only these platforms (repeat or comma-separate: wecom, dingtalk, feishu). Default: every
    /// configured app.
    #[arg(long = "platform", value_delimiter = ',')]
    platforms: Vec<chatcrm::loadgen::Platform>,
    #[command(flatten)]
    load: LoadFlags,
    /// Reps made (once) per org for the load, besides the demo's, each with two customers.
    #[arg(long, default_value_t = 30)]
    users: usize,
    /// `full` (visits, calls, deal updates, leads, reminders, queries) or `visits` (visits,
    /// calls, the day's plan, customer cards).
    #[arg(long, default_value = "full")]
    mix: chatcrm::loadgen::Mix,
    /// With --write: `jsonl` (one {platform, method, path, headers, body} per line) or `wrk` (a
    /// script for `wrk -s FILE http://HOST:PORT`).
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// Print the figures as JSON after the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum FeishuCmd {
    /// Send one encrypted, signed event callback to a running server as a Feishu user; print the
    /// answer. The bot's reply is pushed through the outbox to `feishu.api_base`.
    Simulate {
        /// The app's `name` in the config.
        #[arg(long)]
        app: String,
        /// The sender's open_id.
        #[arg(long)]
        user: String,
        /// The server (default: http:// + the configured `listen`).
        #[arg(long)]
        url: Option<String>,
        text: String,
    },
    /// Run a mock Feishu open API and print every message it receives (point `feishu.api_base` at
    /// it and use its app_id/app_secret).
    Mock {
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum DingtalkCmd {
    /// Send one signed robot callback to a running server as a DingTalk user; print the reply,
    /// which arrives at a local session webhook (the server needs
    /// `dingtalk.allow_local_session_webhooks = true` unless its api_base is local).
    Simulate {
        /// The app's `name` in the config.
        #[arg(long)]
        app: String,
        /// The sender's staffId (userid).
        #[arg(long)]
        user: String,
        /// Send as an @-mention in this group instead of a 1:1 message.
        #[arg(long)]
        group: Option<String>,
        /// The server (default: http:// + the configured `listen`).
        #[arg(long)]
        url: Option<String>,
        text: String,
    },
}

#[derive(Subcommand)]
enum WecomCmd {
    /// Send one signed, encrypted callback to a running server as a WeCom user; print the reply.
    Simulate {
        /// The app's `name` in the config.
        #[arg(long)]
        app: String,
        /// The sender's WeCom user id.
        #[arg(long)]
        user: String,
        /// The server (default: http:// + the configured `listen`).
        #[arg(long)]
        url: Option<String>,
        text: String,
    },
    /// Distinct valid callbacks from many users against a running server; prints msgs/s and latency.
    /// Uses the configured database to link the demo reps to WeCom ids (seeding the demo if needed).
    Loadgen {
        #[arg(long)]
        app: String,
        #[command(flatten)]
        load: LoadFlags,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Lead intake through the JSON API (real server in-process, concurrent clients, assignment
    /// rules): leads/s, p50/p99 latency, routed by rule vs pool. Ignores the configured database:
    /// uses --database-url or a temporary SQLite file; works in an org of its own.
    LeadsApi {
        /// sqlite://FILE or postgres://USER@HOST/DB (created when missing). Default: a temporary
        /// SQLite file, deleted afterwards.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Print the figures as JSON after the summary.
        #[arg(long)]
        json: bool,
    },
    /// Parser throughput on one core, and worst-case time on adversarial input.
    Parse {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// The bot core on the configured database: messages/s and latency per concurrency level.
    /// Writes demo data and visits into that database: point it at a scratch one.
    Bot {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        concurrency: Vec<usize>,
    },
    /// Reminders fired by the scheduler and delivered by the outbox into an in-process mock WeCom:
    /// lateness at a steady rate, then throughput on a backlog, with `pending` reminders stored.
    /// Ignores the configured database: uses --database-url or a temporary SQLite file.
    Reminders {
        /// sqlite://FILE (new or empty) or postgres://USER@HOST/DB (created when missing; must
        /// hold no tasks unless --recreate). Default: a temporary SQLite file, deleted afterwards.
        #[arg(long)]
        database_url: Option<String>,
        /// PostgreSQL: drop and recreate the database first.
        #[arg(long)]
        recreate: bool,
        /// Pending reminders stored in all (the window, the backlog and far-future ones).
        #[arg(long, default_value_t = 1_000_000)]
        pending: u64,
        /// Reminders falling due per second in phase A.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        /// Length of phase A.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Reminders made due at once in phase B.
        #[arg(long, default_value_t = 100_000)]
        backlog: u64,
        /// Instances (each its own pool, scheduler and dispatcher).
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Scheduler tick and idle dispatcher poll, in milliseconds.
        #[arg(long, default_value_t = 100)]
        tick_ms: u64,
        /// Reps the reminders go to in turn (the dispatcher sends one WeCom member at most 30 a
        /// minute, so 1,000/s needs at least 2,000 of them).
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Print the figures as JSON after the summary.
        #[arg(long)]
        json: bool,
    },
    /// The daily digest of every manager and admin in a generated org (50 reps, 100,000
    /// customers, 1,000,000 activities, 50,000 deals by default): per-pass totals, per-recipient
    /// times, peak RSS. Ignores the configured database: uses --database-url or a temporary SQLite
    /// file.
    Digest {
        /// sqlite://FILE (new or empty) or postgres://USER@HOST/DB (DROPPED and recreated unless
        /// --reuse; dropped at the end unless --keep). Default: a temporary SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 50)]
        reps: usize,
        #[arg(long, default_value_t = 100_000)]
        customers: usize,
        #[arg(long, default_value_t = 1_000_000)]
        activities: usize,
        #[arg(long, default_value_t = 50_000)]
        deals: usize,
        #[arg(long, default_value_t = 50_000)]
        tasks: usize,
        #[arg(long, default_value_t = 20_000)]
        leads: usize,
        /// Timed passes over all recipients, after one warm-up pass.
        #[arg(long, default_value_t = 5)]
        passes: usize,
        /// Keep the generated database and print where it is.
        #[arg(long)]
        keep: bool,
        /// Generate and keep the database, print where it is, measure nothing (to EXPLAIN the
        /// digest's queries by hand).
        #[arg(long, env = "CHATCRM_BENCH_ONLY_GENERATE")]
        only_generate: bool,
        /// Measure the bench org already in --database-url (kept earlier) without generating.
        #[arg(long)]
        reuse: bool,
        /// Print the figures as JSON after the summary.
        #[arg(long)]
        json: bool,
    },
    /// Import generated customers (with contacts) from a CSV file through `import customers`:
    /// rows/s and peak RSS. Uses --database-url (PostgreSQL: the database is DROPPED and
    /// recreated) or a temporary SQLite file.
    Import {
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UsersCmd {
    /// Add a user to the org.
    Add {
        handle: String,
        name: String,
        #[arg(long, default_value = "rep", value_parser = ["rep", "manager", "admin"])]
        role: String,
        /// Team name; created when it does not exist.
        #[arg(long)]
        team: Option<String>,
        /// Org name (default: console_org from the config); created when it does not exist.
        #[arg(long)]
        org: Option<String>,
    },
    /// List the org's users.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Link a chat identity (platform, corp id, platform user id) to a user.
    Link {
        handle: String,
        #[arg(long, value_parser = ["wecom", "dingtalk", "feishu", "console"])]
        platform: String,
        /// WeCom/DingTalk corp id or Feishu tenant key.
        #[arg(long)]
        corp: String,
        /// The user's id on that platform.
        #[arg(long)]
        id: String,
        #[arg(long)]
        org: Option<String>,
    },
    /// Put a user on leave: assignment rules skip them until `users back`.
    Leave {
        handle: String,
        #[arg(long)]
        org: Option<String>,
    },
    /// Bring a user back from leave.
    Back {
        handle: String,
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImportCmd {
    /// Import leads from a CSV file with a header row (Chinese or English column names), each
    /// deduped and routed like a lead from chat. Exit code 0: every row went in; 1: some rows
    /// were skipped; 2: the file could not be imported at all.
    Leads {
        file: PathBuf,
        /// Org name (default: console_org from the config).
        #[arg(long)]
        org: Option<String>,
        /// Check every row as a real import would, then roll back: nothing is written.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import customers (and their contacts) from CSV (UTF-8, UTF-8 with BOM or GBK; Chinese or
    /// English headers). A customer whose normalised name exists gets its empty fields filled.
    /// All or nothing unless --skip-bad. Exit code 0: all rows in; 1: some rows rejected (nothing
    /// written without --skip-bad); 2: the file was refused.
    Customers {
        file: PathBuf,
        /// Org name (default: console_org from the config).
        #[arg(long)]
        org: Option<String>,
        /// Check every row as a real import would, then roll back: nothing is written.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Commit the good rows and skip (and report) the rejected ones.
        #[arg(long)]
        skip_bad: bool,
        /// auto (BOM, else valid UTF-8, else GBK), utf-8 or gbk.
        #[arg(long, default_value = "auto")]
        encoding: chatcrm::csv_io::EncodingChoice,
    },
    /// Import deals from CSV (customer by name, amount like 5万 or ¥50,000, stage, status).
    Deals {
        file: PathBuf,
        /// Org name (default: console_org from the config).
        #[arg(long)]
        org: Option<String>,
        /// Check every row as a real import would, then roll back: nothing is written.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Commit the good rows and skip (and report) the rejected ones.
        #[arg(long)]
        skip_bad: bool,
        /// auto (BOM, else valid UTF-8, else GBK), utf-8 or gbk.
        #[arg(long, default_value = "auto")]
        encoding: chatcrm::csv_io::EncodingChoice,
    },
    /// Import activities from CSV (customer by name, kind, time in the org's zone, content, user).
    Activities {
        file: PathBuf,
        /// Org name (default: console_org from the config).
        #[arg(long)]
        org: Option<String>,
        /// Check every row as a real import would, then roll back: nothing is written.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Commit the good rows and skip (and report) the rejected ones.
        #[arg(long)]
        skip_bad: bool,
        /// auto (BOM, else valid UTF-8, else GBK), utf-8 or gbk.
        #[arg(long, default_value = "auto")]
        encoding: chatcrm::csv_io::EncodingChoice,
    },
}

#[derive(Subcommand)]
enum ExportCmd {
    /// Customers, one row per contact.
    Customers {
        #[arg(long)]
        org: Option<String>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// English headers.
        #[arg(long)]
        en: bool,
    },
    /// Deals, with stage, status and amount in 元.
    Deals {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        en: bool,
    },
    /// Activities, times in the org's time zone.
    Activities {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        en: bool,
    },
}

#[derive(Subcommand)]
enum ReportCmd {
    /// The digest USER would get now: yesterday (or the last 7 days with --weekly), their scope.
    Digest {
        /// Handle or name of the reader (a manager gets their team, an admin the org, a rep their own).
        user: String,
        #[arg(long)]
        weekly: bool,
        /// Markdown dialect: wecom, wecom_robot, dingtalk, feishu or plain.
        #[arg(long, default_value = "plain")]
        dialect: String,
        /// English instead of Chinese.
        #[arg(long)]
        en: bool,
        /// The figures as JSON instead of the message.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        org: Option<String>,
    },
    /// The funnel (stage conversion and dwell time) and per-rep activity of the last 7 days.
    Funnel {
        /// Whose view (default: the org, as its admin sees it).
        #[arg(long)]
        user: Option<String>,
        /// Write the chart to this PNG file.
        #[arg(long)]
        png: Option<std::path::PathBuf>,
        #[arg(long)]
        en: bool,
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum WebhooksCmd {
    /// Subscribe a URL to events of an org; prints the secret once when it is generated.
    Add {
        /// Org name.
        #[arg(long)]
        org: String,
        #[arg(long)]
        url: String,
        /// Comma-separated: customer.created, activity.logged, deal.stage_changed, deal.won,
        /// deal.lost, lead.assigned, task.overdue, or *.
        #[arg(long)]
        events: String,
        /// Signing secret (default: a random one, printed once).
        #[arg(long)]
        secret: Option<String>,
    },
    /// List subscriptions (never their secrets), of one org or all.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Delete a subscription; its queued deliveries are dropped.
    Remove { id: i64 },
    /// Send a `ping` event to a subscription now and print the answer.
    Test { id: i64 },
    /// Put the deliveries of an event (sent or dead), or with --dead every dead one, back in the queue.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["event_id", "dead"])))]
    Replay {
        event_id: Option<String>,
        #[arg(long)]
        dead: bool,
        /// Only this subscription's deliveries.
        #[arg(long)]
        sub: Option<i64>,
    },
    /// Delivery attempts, newest first.
    Log {
        #[arg(long)]
        sub: Option<i64>,
        #[arg(long, default_value_t = 50, value_parser = positive)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// List the rules in the order they are tried.
    List,
    /// Add a rule: leads meeting every condition given go to the user or team.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["user", "team"])))]
    Add {
        name: String,
        /// Region prefix, e.g. 青岛 (also covers 青岛市 and its districts).
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        industry: Option<String>,
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Give the leads to this user (handle or name).
        #[arg(long)]
        user: Option<String>,
        /// Give the leads to this team's members.
        #[arg(long)]
        team: Option<String>,
        /// How a team's leads are shared: round_robin or least_loaded.
        #[arg(long, default_value = "round_robin", value_parser = parse_strategy)]
        strategy: crm::lead_rules::Strategy,
        /// Most open leads a rep may hold under this rule.
        #[arg(long, value_parser = positive)]
        capacity: Option<i64>,
        /// 1 = tried first (default: last).
        #[arg(long, value_parser = positive)]
        position: Option<i64>,
    },
    /// Delete a rule (by id or name).
    Remove { rule: String },
    /// Turn a rule back on (by id or name).
    Enable { rule: String },
    /// Turn a rule off without deleting it (by id or name).
    Disable { rule: String },
}

fn parse_strategy(s: &str) -> Result<crm::lead_rules::Strategy, String> {
    s.parse()
}

#[derive(Subcommand)]
enum OutboxCmd {
    /// List messages, newest first, with the number per status.
    List {
        #[arg(long, value_parser = OUTBOX_STATUSES)]
        status: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = positive)]
        limit: i64,
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead or dropped message (or, with --dead, every dead one) back in the queue.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "dead"])))]
    Retry {
        id: Option<i64>,
        /// Every dead message.
        #[arg(long)]
        dead: bool,
    },
    /// Do not send a pending or dead message.
    Drop { id: i64 },
}

#[derive(Subcommand)]
enum TokensCmd {
    /// Make a token for an org; it is printed once and only its hash is kept.
    Create {
        /// Org name.
        #[arg(long)]
        org: String,
        /// What the token is for, e.g. "website form".
        #[arg(long)]
        name: String,
        /// `full` (every endpoint) or `intake` (POST /api/v1/leads only).
        #[arg(long, default_value = "full", value_parser = ["full", "intake"])]
        scope: String,
        /// Act as this user (handle or name), with their role's permissions; default: the org.
        #[arg(long)]
        user: Option<String>,
    },
    /// List tokens (their first characters only), of one org or all.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a token by id: it stops working at once.
    Revoke { id: i64 },
}

/// A count flag: a whole number of at least 1.
fn positive(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    chatcrm::install_tls_provider();
    let cli = Cli::parse();
    match cli.command {
        Cmd::PrintConfig => {
            print!("{}", chatcrm::config::EXAMPLE);
            return Ok(());
        }
        Cmd::Commands => {
            print!("{}", chatcrm::command::spec::reference_markdown());
            return Ok(());
        }
        Cmd::Parse { json, now, tz, text } => return parse_cmd(json, now.as_deref(), &tz, &text),
        Cmd::When { now, tz, expression } => return when_cmd(now.as_deref(), &tz, &expression),
        Cmd::Bench { what: BenchCmd::LeadsApi { database_url, count, concurrency, json } } => {
            chatcrm::telemetry::init("pretty", "warn");
            let opts = chatcrm::api_bench::Options { database_url, count, concurrency };
            let report = chatcrm::api_bench::run(opts).await?;
            print!("{}", report.summary());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            return Ok(());
        }
        Cmd::Bench {
            what:
                BenchCmd::Digest {
                    database_url,
                    reps,
                    customers,
                    activities,
                    deals,
                    tasks,
                    leads,
                    passes,
                    keep,
                    only_generate,
                    reuse,
                    json,
                },
        } => {
            // The bulk inserts are slow statements by design: no warning for each.
            chatcrm::telemetry::init("pretty", "warn,sqlx::query=error");
            let sizes = chatcrm::digest_bench::Sizes { reps, customers, activities, deals, tasks, leads };
            let opts = chatcrm::digest_bench::Options { database_url, sizes, passes, keep, only_generate, reuse };
            let report = chatcrm::digest_bench::run(opts).await?;
            print!("{}", report.summary());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            return Ok(());
        }
        Cmd::Bench { what: BenchCmd::Import { rows, database_url, json } } => {
            chatcrm::telemetry::init("pretty", "warn");
            let report = chatcrm::import_bench::run(rows, database_url).await?;
            print!("{}", report.summary());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            return Ok(());
        }
        Cmd::Bench { what: BenchCmd::Parse { seconds } } => {
            let r = chatcrm::command::bench::run(std::time::Duration::from_secs(seconds.max(1)), 256 * 1024);
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        Cmd::Bench {
            what:
                BenchCmd::Reminders {
                    database_url,
                    recreate,
                    pending,
                    rate,
                    seconds,
                    backlog,
                    instances,
                    tick_ms,
                    users,
                    json,
                },
        } => {
            // Warnings and errors only: the scheduler logs every batch at info.
            chatcrm::telemetry::init("pretty", "warn");
            let opts = chatcrm::reminder_bench::Options {
                database_url,
                recreate,
                pending,
                rate,
                seconds,
                backlog,
                instances,
                tick_ms,
                users,
            };
            let report = chatcrm::reminder_bench::run(opts).await?;
            print!("{}", report.summary());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            return Ok(());
        }
        _ => {}
    }
    let settings = Settings::load(cli.config.as_deref()).context("invalid configuration")?;
    chatcrm::telemetry::init(&settings.log_format, &settings.log_level);
    match cli.command {
        Cmd::PrintConfig | Cmd::Commands | Cmd::Parse { .. } | Cmd::When { .. } => Ok(()),
        Cmd::Bench { what: BenchCmd::LeadsApi { .. } } => Ok(()),
        Cmd::Bench { what: BenchCmd::Import { .. } } => Ok(()),
        Cmd::Bench { what: BenchCmd::Parse { .. } | BenchCmd::Reminders { .. } | BenchCmd::Digest { .. } } => Ok(()),
        Cmd::Backup { file, json } => {
            let url = secrecy::ExposeSecret::expose_secret(&settings.database_url);
            if chatcrm::config::DatabaseKind::of(url) == Ok(chatcrm::config::DatabaseKind::Postgres) {
                return backup_outcome("backed up to", Err(chatcrm::backup::BackupError::Postgres), json);
            }
            // Not `open_db`: a backup must not migrate the live database under a running server.
            let db = chatcrm::store::Db::connect(&chatcrm::store::DbOptions::from_settings(&settings)).await?;
            let done = chatcrm::backup::backup(&db, &file).await;
            db.close().await;
            backup_outcome("backed up to", done, json)
        }
        Cmd::Restore { file, force, json } => {
            let url = secrecy::ExposeSecret::expose_secret(&settings.database_url).to_string();
            backup_outcome(
                "restored from",
                chatcrm::backup::restore(&file, &url, force).await.map(|mut r| {
                    r.path = file.clone();
                    r
                }),
                json,
            )
        }
        Cmd::Doctor { json } => {
            let checks = chatcrm::doctor::run(&settings, Clock::system().now()).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                print!("{}", chatcrm::doctor::render(&checks));
            }
            if checks.iter().any(|c| c.status == chatcrm::doctor::Status::Fail) {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::CheckConfig => {
            let n = chatcrm::command::spec::validate()?;
            println!("configuration OK (database {}), {n} command specs OK", settings.database_url_redacted());
            Ok(())
        }
        Cmd::Serve => serve(settings).await,
        Cmd::Bench { what: BenchCmd::Bot { seconds, concurrency } } => {
            let db = startup::open_db(&settings).await?;
            let rows = chatcrm::bench::bot(db, &concurrency, std::time::Duration::from_secs(seconds.max(1))).await?;
            println!("database: {}", settings.database_url_redacted());
            println!("{}", serde_json::to_string_pretty(&rows)?);
            Ok(())
        }
        Cmd::Migrate => {
            startup::open_db(&settings).await?;
            println!("migrations applied to {}", settings.database_url_redacted());
            Ok(())
        }
        Cmd::Demo => {
            let db = startup::open_db(&settings).await?;
            let mut tx = db.begin().await?;
            let s =
                chatcrm::demo::seed(&mut tx, &settings.console_org, &settings.default_timezone, Clock::system().now())
                    .await
                    .context("cannot seed the demo org")?;
            tx.commit().await?;
            println!(
                "demo org 「{}」: {} customers, {} deals, {} activities, {} leads, {} tasks",
                s.org, s.customers, s.deals, s.activities, s.leads, s.tasks
            );
            for (handle, name, role) in &s.users {
                println!("  {handle:<10} {name}  ({role})");
            }
            println!("try: chatcrm chat --as lilei   then type 今天");
            Ok(())
        }
        Cmd::Chat { as_user } => chat(settings, &as_user).await,
        Cmd::Wecom { what } => wecom_cmd(settings, what).await,
        Cmd::Loadgen(args) => loadgen(settings, args).await,
        Cmd::Dingtalk { what } => dingtalk_cmd(settings, what).await,
        Cmd::Feishu { what } => feishu_cmd(settings, what).await,
        Cmd::Users { command } => users(settings, command).await,
        Cmd::Outbox { command } => outbox(settings, command).await,
        Cmd::Tokens { command } => tokens(settings, command).await,
        Cmd::Import { what: ImportCmd::Leads { file, org, dry_run, json } } => {
            // 2 when the file as a whole could not be imported (also for a missing org or database).
            let code = match import_leads(&settings, &file, org, dry_run, json).await {
                Ok(code) => code,
                Err(e) => {
                    if json {
                        println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
                    }
                    eprintln!("error: {e:#}");
                    2
                }
            };
            std::io::stdout().flush()?;
            std::process::exit(code)
        }
        Cmd::Import { what: ImportCmd::Customers { file, org, dry_run, json, skip_bad, encoding } } => {
            let flags = CsvImportFlags { dry_run, json, skip_bad, encoding };
            import_csv_exit(&settings, chatcrm::csv_io::Kind::Customers, &file, org, flags).await
        }
        Cmd::Import { what: ImportCmd::Deals { file, org, dry_run, json, skip_bad, encoding } } => {
            let flags = CsvImportFlags { dry_run, json, skip_bad, encoding };
            import_csv_exit(&settings, chatcrm::csv_io::Kind::Deals, &file, org, flags).await
        }
        Cmd::Import { what: ImportCmd::Activities { file, org, dry_run, json, skip_bad, encoding } } => {
            let flags = CsvImportFlags { dry_run, json, skip_bad, encoding };
            import_csv_exit(&settings, chatcrm::csv_io::Kind::Activities, &file, org, flags).await
        }
        Cmd::Export { what: ExportCmd::Customers { org, out, en } } => {
            export_csv(&settings, chatcrm::csv_io::Kind::Customers, org, out, en).await
        }
        Cmd::Export { what: ExportCmd::Deals { org, out, en } } => {
            export_csv(&settings, chatcrm::csv_io::Kind::Deals, org, out, en).await
        }
        Cmd::Export { what: ExportCmd::Activities { org, out, en } } => {
            export_csv(&settings, chatcrm::csv_io::Kind::Activities, org, out, en).await
        }
        Cmd::Rules { org, command } => rules(settings, org, command).await,
        Cmd::Webhooks { command } => webhooks_cmd(settings, command).await,
        Cmd::Report { what } => report(settings, what).await,
    }
}

async fn serve(settings: Settings) -> Result<()> {
    let db = startup::open_db(&settings).await?;
    let clock = Clock::system();
    if db.kind() == chatcrm::config::DatabaseKind::Sqlite {
        tracing::info!("SQLite database: run a single chatcrm instance (use PostgreSQL for several)");
    }
    // A deployment with a chat platform configured is not a trial: no demo data there.
    if settings.seed_demo_if_empty && settings.wecom.apps.is_empty() {
        let mut tx = db.begin().await?;
        if chatcrm::store::orgs::list(&mut tx).await?.is_empty() {
            let s =
                chatcrm::demo::seed(&mut tx, &settings.console_org, &settings.default_timezone, clock.now()).await?;
            tx.commit().await?;
            tracing::info!(org = %s.org, "empty database: seeded the demo org (seed_demo_if_empty = false turns this off)");
        } else {
            tx.rollback().await?;
        }
    }
    let app = Application::build(settings.clone(), db.clone(), clock).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, database = %settings.database_url_redacted(), "chatcrm listening");
    if settings.console_served() {
        tracing::info!("console: http://{addr}/console");
    }
    app.run_until(startup::shutdown_signal()).await?;
    // Closing waits for every connection to come back; one held by a task still stuck on the
    // database (past the grace period) must not keep the process from exiting.
    if tokio::time::timeout(std::time::Duration::from_secs(5), db.close()).await.is_err() {
        tracing::warn!("a database connection was still in use after 5 s; exiting without closing it");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn chat(settings: Settings, who: &str) -> Result<()> {
    let db = startup::open_db(&settings).await?;
    let clock = Clock::system();
    let bot = chatcrm::bot::Bot::with_options(db.clone(), clock.clone(), settings.undo_window());
    let org = settings.console_org.clone();
    let (_, users) = console::users(&db, &org).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(me) = users.iter().find(|u| u.handle == who.trim_start_matches('@') || u.name == who) else {
        bail!("no user `{who}` in org 「{org}」; see `chatcrm users list` (or run `chatcrm demo`)");
    };
    println!("chatcrm · {} ({}) · 输入「帮助」或 help，Ctrl-D 退出", me.name, me.handle);
    let mut last_push = i64::MAX;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        // Show pushes that arrived since the last prompt (the first time: none of the backlog).
        let pushes = console::pushes(&db, &org, &me.handle, if last_push == i64::MAX { 0 } else { last_push }).await?;
        if last_push != i64::MAX {
            for p in &pushes {
                println!("🔔 {}", p.text);
            }
        }
        last_push = pushes.last().map_or(if last_push == i64::MAX { 0 } else { last_push }, |p| p.id);
        print!("> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let msg = console::incoming(&db, &org, &me.handle, &line, &id, clock.now())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let reply = bot.handle(&msg).await?;
        println!("{}\n", reply.text);
    }
    db.close().await;
    Ok(())
}

async fn users(settings: Settings, command: UsersCmd) -> Result<()> {
    let db = startup::open_db(&settings).await?;
    let now = Clock::system().now();
    let mut tx = db.begin().await?;
    let org_name = |o: &Option<String>| o.clone().unwrap_or_else(|| settings.console_org.clone());
    match command {
        UsersCmd::Add { handle, name, role, team, org } => {
            let org_name = org_name(&org);
            let org = match crm::orgs::org_by_name(&mut tx, &org_name).await {
                Ok(o) => o,
                Err(crm::CrmError::NotFound(_)) => {
                    crm::orgs::create_org(&mut tx, &org_name, &settings.default_timezone, Via::Cli, now).await?
                }
                Err(e) => return Err(e.into()),
            };
            let ctx = Ctx::new(Actor::system(org.id), Via::Cli, now);
            let team_id = match team {
                Some(t) => Some(match crm::users::team_by_name(&mut tx, &ctx, &t).await {
                    Ok(team) => team.id,
                    Err(crm::CrmError::NotFound(_)) => crm::users::create_team(&mut tx, &ctx, &t).await?.id,
                    Err(e) => return Err(e.into()),
                }),
                None => None,
            };
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let u =
                crm::users::create_user(&mut tx, &ctx, NewUser { handle: &handle, name: &name, role, team_id }).await?;
            tx.commit().await?;
            println!("added {} ({}) as {} to 「{}」", u.name, u.handle, u.role, org.name);
        }
        UsersCmd::List { org } => {
            let org = crm::orgs::org_by_name(&mut tx, &org_name(&org)).await?;
            for u in crm::users::list_users(&mut tx, org.id).await? {
                let team = u.team_name.as_deref().unwrap_or("-");
                println!(
                    "{:<12} {:<8} {:<8} {team}{}",
                    u.handle,
                    u.name,
                    u.role,
                    if u.active { "" } else { " (inactive)" }
                );
            }
            tx.commit().await?;
        }
        UsersCmd::Link { handle, platform, corp, id, org } => {
            let org = crm::orgs::org_by_name(&mut tx, &org_name(&org)).await?;
            let ctx = Ctx::new(Actor::system(org.id), Via::Cli, now);
            let user = crm::users::find_user(&mut tx, org.id, &handle).await?;
            crm::users::link_identity(&mut tx, &ctx, user.id, &platform, &corp, &id).await?;
            tx.commit().await?;
            println!("linked {platform} {corp}/{id} to {} ({})", user.name, user.handle);
        }
        UsersCmd::Leave { handle, org } => set_leave(tx, &org_name(&org), &handle, true, now).await?,
        UsersCmd::Back { handle, org } => set_leave(tx, &org_name(&org), &handle, false, now).await?,
    }
    db.close().await;
    Ok(())
}

async fn set_leave(
    mut tx: chatcrm::store::Tx,
    org: &str,
    handle: &str,
    on_leave: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let org = crm::orgs::org_by_name(&mut tx, org).await?;
    let ctx = Ctx::new(Actor::system(org.id), Via::Cli, now);
    let user = crm::users::find_user(&mut tx, org.id, handle).await?;
    crm::users::set_on_leave(&mut tx, &ctx, user.id, on_leave).await?;
    tx.commit().await?;
    if on_leave {
        println!(
            "{} ({}) is on leave: assignment rules skip them until `chatcrm users back {}`",
            user.name, user.handle, user.handle
        );
    } else {
        println!("{} ({}) is back: assignment rules include them again", user.name, user.handle);
    }
    Ok(())
}

/// `import leads`: the exit code for the report, or an error for the file as a whole.
async fn import_leads(
    settings: &Settings,
    file: &std::path::Path,
    org: Option<String>,
    dry_run: bool,
    json: bool,
) -> Result<i32> {
    use chatcrm::import;
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    // The whole file is checked before the database is opened.
    let parsed = import::parse_csv(&data).with_context(|| format!("cannot import {}", file.display()))?;
    let db = startup::open_db(settings).await?;
    let mut tx = db.begin_read().await?;
    let org = crm::orgs::org_by_name(&mut tx, &org.unwrap_or_else(|| settings.console_org.clone())).await;
    tx.commit().await?;
    let opts = import::ImportOptions { org_id: org?.id, dry_run, now: Clock::system().now() };
    let routes = chatcrm::outbox::Routes::from_settings(settings);
    let report = import::import_rows(&db, &routes, parsed, &opts).await;
    db.close().await;
    let report = report?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(report.exit_code())
}

async fn rules(settings: Settings, org: Option<String>, command: RulesCmd) -> Result<()> {
    use crm::lead_rules::{self, NewRule, Target};
    let db = startup::open_db(&settings).await?;
    let now = Clock::system().now();
    let mut tx = db.begin().await?;
    let org = crm::orgs::org_by_name(&mut tx, &org.unwrap_or_else(|| settings.console_org.clone())).await?;
    let ctx = Ctx::new(Actor::system(org.id), Via::Cli, now);
    let users = crm::users::list_users(&mut tx, org.id).await?;
    let teams = chatcrm::store::users::teams(&mut tx, org.id).await?;
    let target = |r: &lead_rules::Rule| match (r.target_user_id, r.target_team_id) {
        (Some(u), _) => {
            users.iter().find(|x| x.id == u).map_or(format!("user #{u}"), |x| format!("user {} ({})", x.name, x.handle))
        }
        (None, Some(t)) => {
            teams.iter().find(|x| x.id == t).map_or(format!("team #{t}"), |x| format!("team {}", x.name))
        }
        (None, None) => "-".to_string(),
    };
    let enable = matches!(command, RulesCmd::Enable { .. });
    match command {
        RulesCmd::List => {
            let rules = lead_rules::list_rules(&mut tx, &ctx).await?;
            tx.commit().await?;
            if rules.is_empty() {
                println!("no rules: every new lead goes to the public pool (add one with `chatcrm rules add`)");
            } else {
                println!(
                    "{:>3}  {:>4}  {:<16} {:<24} {:<24} {:<12} {:>8}  ACTIVE",
                    "POS", "ID", "NAME", "CONDITIONS", "TARGET", "STRATEGY", "CAPACITY"
                );
            }
            for r in &rules {
                let capacity = r.capacity.map_or("-".to_string(), |c| c.to_string());
                let strategy = if r.target_team_id.is_some() { r.strategy.as_str() } else { "-" };
                println!(
                    "{:>3}  {:>4}  {:<16} {:<24} {:<24} {:<12} {:>8}  {}",
                    r.position,
                    r.id,
                    r.name,
                    lead_rules::describe(r),
                    target(r),
                    strategy,
                    capacity,
                    if r.active { "yes" } else { "no" }
                );
            }
        }
        RulesCmd::Add { name, region, industry, source, tag, user, team, strategy, capacity, position } => {
            let target_of = match (user, team) {
                (Some(u), _) => Target::User(crm::users::find_user(&mut tx, org.id, &u).await?.id),
                (None, Some(t)) => Target::Team(crm::users::team_by_name(&mut tx, &ctx, &t).await?.id),
                (None, None) => bail!("give --user or --team"),
            };
            let new = NewRule {
                name,
                position,
                region_prefix: region,
                industry,
                source,
                tag,
                target: target_of,
                strategy,
                capacity,
            };
            let r = lead_rules::create_rule(&mut tx, &ctx, new).await?;
            tx.commit().await?;
            println!(
                "added rule #{} 「{}」 at position {}: {} → {}",
                r.id,
                r.name,
                r.position,
                lead_rules::describe(&r),
                target(&r)
            );
        }
        RulesCmd::Remove { rule } => {
            let r = lead_rules::find_rule(&mut tx, &ctx, &rule).await?;
            let r = lead_rules::delete_rule(&mut tx, &ctx, r.id).await?;
            tx.commit().await?;
            println!("removed rule #{} 「{}」", r.id, r.name);
        }
        RulesCmd::Enable { rule } | RulesCmd::Disable { rule } => {
            let r = lead_rules::find_rule(&mut tx, &ctx, &rule).await?;
            let r = lead_rules::set_rule_active(&mut tx, &ctx, r.id, enable).await?;
            tx.commit().await?;
            println!("{} rule #{} 「{}」", if enable { "enabled" } else { "disabled" }, r.id, r.name);
        }
    }
    db.close().await;
    Ok(())
}

async fn outbox(settings: Settings, command: OutboxCmd) -> Result<()> {
    use chatcrm::store::outbox as store;
    let db = startup::open_db(&settings).await?;
    let now = Clock::system().now();
    match command {
        OutboxCmd::List { status, limit, json } => {
            let mut tx = db.begin_read().await?;
            let rows = store::list(&mut tx, status.as_deref().unwrap_or(""), limit).await?;
            let counts = store::counts(&mut tx).await?;
            tx.commit().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_outbox(&rows, &counts);
            }
        }
        OutboxCmd::Retry { id: Some(id), .. } => {
            let mut tx = db.begin().await?;
            if !store::requeue(&mut tx, id, now).await? {
                let row = store::by_id(&mut tx, id).await?;
                tx.rollback().await?;
                return Err(outbox_refused(id, row, "only dead or dropped messages can be retried"));
            }
            tx.commit().await?;
            println!("requeued message {id} (1 message)");
        }
        OutboxCmd::Retry { id: None, .. } => {
            let mut tx = db.begin().await?;
            let n = store::requeue_dead(&mut tx, now).await?;
            tx.commit().await?;
            println!("requeued {n} dead message{}", if n == 1 { "" } else { "s" });
        }
        OutboxCmd::Drop { id } => {
            let mut tx = db.begin().await?;
            if !store::drop_message(&mut tx, id).await? {
                let row = store::by_id(&mut tx, id).await?;
                tx.rollback().await?;
                return Err(outbox_refused(id, row, "only pending or dead messages can be dropped"));
            }
            tx.commit().await?;
            println!("dropped message {id}");
        }
    }
    db.close().await;
    Ok(())
}

async fn tokens(settings: Settings, command: TokensCmd) -> Result<()> {
    use chatcrm::http::api_v1::auth;
    let db = startup::open_db(&settings).await?;
    let now = Clock::system().now();
    match command {
        TokensCmd::Create { org, name, scope, user } => {
            let scope: chatcrm::http::api_v1::Scope = scope.parse().map_err(anyhow::Error::msg)?;
            let mut tx = db.begin().await?;
            let org = crm::orgs::org_by_name(&mut tx, &org).await?;
            let user = match &user {
                Some(u) => Some(crm::users::find_user(&mut tx, org.id, u.trim_start_matches('@')).await?),
                None => None,
            };
            let uid = user.as_ref().map(|u| u.id);
            let (row, token) = auth::create_token_for(&mut tx, org.id, uid, &name, scope, Via::Cli, now).await?;
            tx.commit().await?;
            let who = user.map_or_else(|| "the org".to_string(), |u| format!("{} ({}, {})", u.name, u.handle, u.role));
            println!(
                "token {} 「{}」 for org 「{}」, scope {}, acting as {who}:",
                row.id, row.name, row.org_name, row.scope
            );
            println!("{token}");
            eprintln!("store it now: it is not shown again (only its SHA-256 hash is kept)");
        }
        TokensCmd::List { org } => {
            let mut tx = db.begin_read().await?;
            let org_id = match org {
                Some(o) => Some(crm::orgs::org_by_name(&mut tx, &o).await?.id),
                None => None,
            };
            let rows = chatcrm::store::tokens::list(&mut tx, org_id).await?;
            tx.commit().await?;
            if rows.is_empty() {
                println!("no API tokens; make one with `chatcrm tokens create --org ORG --name NAME`");
            }
            for t in rows {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None => "active".to_string(),
                };
                println!(
                    "{:>4}  {}…  {:<7} {:<16} {}  created {}  {state}",
                    t.id,
                    t.prefix,
                    t.scope,
                    t.org_name,
                    t.name,
                    t.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        TokensCmd::Revoke { id } => {
            let mut tx = db.begin().await?;
            let Some(row) = auth::revoke_token(&mut tx, id, Via::Cli, now).await? else {
                tx.rollback().await?;
                bail!("no active API token {id}; see `chatcrm tokens list`");
            };
            tx.commit().await?;
            println!("revoked token {} 「{}」 ({}…) of org 「{}」", row.id, row.name, row.prefix, row.org_name);
        }
    }
    db.close().await;
    Ok(())
}

/// Why a retry or drop changed nothing: no such message, or not in a state that allows it.
fn outbox_refused(id: i64, row: Option<chatcrm::store::outbox::OutboxRow>, rule: &str) -> anyhow::Error {
    match row {
        None => anyhow::anyhow!("no outbox message {id}; see `chatcrm outbox list`"),
        Some(row) => anyhow::anyhow!("message {id} is {}; {rule}", row.status),
    }
}

fn print_outbox(rows: &[chatcrm::store::outbox::OutboxRow], counts: &[(String, i64)]) {
    /// At most `max` characters, with an ellipsis when cut.
    fn cut(s: &str, max: usize) -> String {
        if s.chars().count() <= max {
            return s.to_string();
        }
        s.chars().take(max.saturating_sub(1)).chain(std::iter::once('…')).collect()
    }
    if rows.is_empty() {
        println!("no messages");
    } else {
        println!(
            "{:>6}  {:<8} {:<9} {:<16} {:<12} {:>3}  {:<20} {:<32} TEXT",
            "ID", "STATUS", "KIND", "PLATFORM/APP", "RECIPIENT", "TRY", "NEXT ATTEMPT (UTC)", "LAST ERROR"
        );
    }
    for r in rows {
        let to = if r.app.is_empty() { r.platform.clone() } else { format!("{}/{}", r.platform, r.app) };
        let next = if r.status == "pending" {
            r.next_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string()
        } else {
            "-".to_string()
        };
        let text = serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(|t| t.lines().next().unwrap_or("").to_string()))
            .unwrap_or_else(|| "(unreadable body)".to_string());
        let error = r.last_error.as_deref().map_or("-".to_string(), |e| cut(e.lines().next().unwrap_or(""), 32));
        println!(
            "{:>6}  {:<8} {:<9} {:<16} {:<12} {:>3}  {:<20} {:<32} {}",
            r.id,
            r.status,
            r.kind,
            cut(&to, 16),
            cut(&r.recipient, 12),
            r.attempts,
            next,
            error,
            cut(&text, 40)
        );
    }
    let count = |s: &str| counts.iter().find(|(status, _)| status == s).map_or(0, |(_, n)| *n);
    let line: Vec<String> = OUTBOX_STATUSES.iter().map(|s| format!("{} {s}", count(s))).collect();
    println!("{}", line.join(", "));
}

/// "Now" in the given zone: `--now` (RFC 3339) or the current time.
fn now_in(now: Option<&str>, tz: &str) -> Result<chrono::DateTime<chrono_tz::Tz>> {
    let tz: chrono_tz::Tz =
        tz.parse().map_err(|_| anyhow::anyhow!("`{tz}` is not a time zone such as Asia/Shanghai"))?;
    let now = match now {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--now `{s}` is not RFC 3339, e.g. 2026-11-24T10:00:00+08:00"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    Ok(now.with_timezone(&tz))
}

/// Runs `f` on TEXT, or on each stdin line when TEXT is `-`; fails when any input failed.
fn each_input(text: &str, mut f: impl FnMut(&str) -> bool) -> Result<()> {
    let ok = if text == "-" {
        let mut all = true;
        for line in std::io::stdin().lock().lines() {
            all &= f(&line?);
        }
        all
    } else {
        f(text)
    };
    if ok { Ok(()) } else { std::process::exit(1) }
}

fn parse_cmd(json: bool, now: Option<&str>, tz: &str, text: &str) -> Result<()> {
    use chatcrm::command::{ParseError, parse};
    let now = now_in(now, tz)?;
    each_input(text, |line| {
        let (value, ok) = match parse(line, now) {
            Ok(p) => (serde_json::to_value(&p.command).unwrap_or_default(), true),
            Err(ParseError::Usage { command, detail, .. }) => {
                (serde_json::json!({ "error": "usage", "command": command, "detail": detail.map(|(_, en)| en) }), false)
            }
            Err(ParseError::Empty) => (serde_json::json!({ "error": "empty" }), false),
        };
        let out = if json { value.to_string() } else { serde_json::to_string_pretty(&value).unwrap_or_default() };
        println!("{out}");
        ok
    })
}

fn when_cmd(now: Option<&str>, tz: &str, expression: &str) -> Result<()> {
    use chatcrm::command::when::{WhenError, parse_when};
    let now = now_in(now, tz)?;
    each_input(expression, |line| match parse_when(line, now) {
        Ok(w) => {
            println!("{}", w.at.to_rfc3339());
            true
        }
        Err(e) => {
            let why = match e {
                WhenError::NotATime => format!("`{line}` is not a time expression"),
                WhenError::Invalid(m) => m,
            };
            eprintln!("error: {why}");
            if expression == "-" {
                println!("error: {why}");
            }
            false
        }
    })
}

fn wecom_app<'a>(settings: &'a Settings, name: &str) -> Result<&'a chatcrm::config::WecomApp> {
    settings.wecom.apps.iter().find(|a| a.name == name).ok_or_else(|| {
        let known: Vec<&str> = settings.wecom.apps.iter().map(|a| a.name.as_str()).collect();
        anyhow::anyhow!(
            "no wecom app `{name}` in the config (configured: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )
    })
}

async fn wecom_cmd(settings: Settings, what: WecomCmd) -> Result<()> {
    use chatcrm::platform::wecom::simulate::Simulator;
    use secrecy::ExposeSecret;
    let base = |url: Option<String>, app: &str| {
        url.unwrap_or_else(|| format!("http://{}", settings.listen)).trim_end_matches('/').to_string()
            + "/callback/wecom/"
            + app
    };
    match what {
        WecomCmd::Simulate { app, user, url, text } => {
            let cfg = wecom_app(&settings, &app)?;
            let sim = Simulator::new(
                cfg.token.expose_secret(),
                cfg.encoding_aes_key.expose_secret(),
                &cfg.corp_id,
                cfg.agent_id,
            )?;
            let now = chrono::Utc::now().timestamp();
            let cb = sim.text(&user, &text, &format!("sim{}", rand::random::<u32>()), now);
            let res =
                reqwest::Client::new().post(format!("{}?{}", base(url, &app), cb.query)).body(cb.body).send().await?;
            let status = res.status();
            let body = res.text().await?;
            if !status.is_success() {
                bail!("server answered {status}: {body}");
            }
            if body.is_empty() {
                println!("(acknowledged; no passive reply)");
            } else {
                println!("{}", sim.open_reply(&body)?);
            }
            Ok(())
        }
        WecomCmd::Loadgen { app, load } => {
            let mut settings = settings;
            wecom_app(&settings, &app)?;
            // The mixed generator, limited to this one app.
            settings.wecom.apps.retain(|a| a.name == app);
            let args = LoadgenArgs {
                platforms: vec![chatcrm::loadgen::Platform::Wecom],
                load,
                users: 0,
                mix: chatcrm::loadgen::Mix::Visits,
                format: "jsonl".into(),
                json: true,
            };
            loadgen(settings, args).await
        }
    }
}

/// `chatcrm loadgen` (and `chatcrm wecom loadgen`, limited to one app).
async fn loadgen(settings: Settings, args: LoadgenArgs) -> Result<()> {
    use chatcrm::loadgen::{Plan, RunOptions, Traffic, run};
    let db = startup::open_db(&settings).await?;
    let plan = Plan { platforms: &args.platforms, extra_users: args.users, mix: args.mix };
    let traffic = Traffic::prepare(&settings, &db, plan).await;
    db.close().await;
    let traffic = std::sync::Arc::new(traffic?);
    let load = args.load;
    if let Some(path) = load.write {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        match args.format.as_str() {
            "jsonl" => traffic.write_jsonl(&mut out, load.count)?,
            "wrk" => traffic.write_wrk(&mut out, load.count)?,
            other => bail!("unknown --format `{other}`: use jsonl or wrk"),
        }
        let window = settings.wecom.timestamp_window_secs.min(settings.feishu.timestamp_window_secs);
        println!(
            "wrote {} requests from {} senders to {} (their timestamps are now: the server accepts them for about {window} s)",
            load.count,
            traffic.senders(),
            path.display()
        );
        return Ok(());
    }
    let opts = RunOptions {
        base_url: load.url.unwrap_or_else(|| format!("http://{}", settings.listen)),
        concurrency: load.concurrency,
        duration: std::time::Duration::from_secs(load.seconds.max(1)),
        rate: load.rate,
    };
    let report = run(traffic, opts).await?;
    println!("{}", report.summary());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn report(settings: Settings, what: ReportCmd) -> Result<()> {
    use chatcrm::report::{self, DigestKind, ReportOptions, Scope, render::Dialect};
    let db = startup::open_db(&settings).await?;
    let now = Clock::system().now();
    let opts = ReportOptions::from(&settings.schedule);
    let mut tx = db.begin_read().await?;
    let org_name = match &what {
        ReportCmd::Digest { org, .. } | ReportCmd::Funnel { org, .. } => {
            org.clone().unwrap_or_else(|| settings.console_org.clone())
        }
    };
    let org = crm::orgs::org_by_name(&mut tx, &org_name).await?;
    let lang = |en: bool| if en { crm::Lang::En } else { crm::Lang::Zh };
    match what {
        ReportCmd::Digest { user, weekly, dialect, en, json, .. } => {
            let u = crm::users::find_user(&mut tx, org.id, user.trim_start_matches('@')).await?;
            let dialect = match dialect.as_str() {
                "wecom" => Dialect::WeCom,
                "wecom_robot" => Dialect::WeComRobot,
                "dingtalk" => Dialect::DingTalk,
                "feishu" => Dialect::Feishu,
                "plain" => Dialect::Plain,
                other => anyhow::bail!("unknown dialect `{other}`: use wecom, wecom_robot, dingtalk, feishu or plain"),
            };
            let kind = if weekly { DigestKind::Weekly } else { DigestKind::Daily };
            let actor = Actor::of(&u);
            let ctx = Ctx::new(actor.clone(), Via::Cli, now);
            let span = report::digest_period(now, org.tz(), kind);
            let d = report::digest_for(&mut tx, &ctx, Scope::of(&actor), kind, span, &opts).await?;
            tx.commit().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                let chunks = report::render::digest(&d, dialect, lang(en));
                println!("{}", chunks.join("\n\n----- next message -----\n\n"));
            }
        }
        ReportCmd::Funnel { user, png, en, .. } => {
            let actor = match &user {
                Some(u) => Actor::of(&crm::users::find_user(&mut tx, org.id, u.trim_start_matches('@')).await?),
                None => Actor::system(org.id),
            };
            let ctx = Ctx::new(actor.clone(), Via::Cli, now);
            let scope = Scope::of(&actor);
            let view = report::pipeline_view(&mut tx, &ctx, scope, &opts).await?;
            let week = report::digest_period(now, org.tz(), DigestKind::Weekly);
            let names = report::Names::load(&mut tx, org.id).await?;
            let activity = report::activity(&mut tx, org.id, &scope, &names, week.0, week.1).await?;
            tx.commit().await?;
            println!("{}", report::render::pipeline_view(&view, Dialect::Plain, lang(en)).join("\n\n"));
            if let Some(path) = png {
                let input = report::funnel_chart(&view.funnel, Some(&activity), &org.name, lang(en));
                let bytes = chatcrm::chart::render_png(&input)?;
                std::fs::write(&path, &bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                println!("wrote {} ({} bytes)", path.display(), bytes.len());
            }
        }
    }
    Ok(())
}

async fn feishu_cmd(settings: Settings, what: FeishuCmd) -> Result<()> {
    use chatcrm::platform::feishu::{mock::MockFeishu, simulate::Simulator};
    use secrecy::ExposeSecret;
    match what {
        FeishuCmd::Simulate { app, user, url, text } => {
            let cfg = settings.feishu.apps.iter().find(|a| a.name == app).ok_or_else(|| {
                let known: Vec<&str> = settings.feishu.apps.iter().map(|a| a.name.as_str()).collect();
                anyhow::anyhow!("no feishu app `{app}` in the config (configured: {})", known.join(", "))
            })?;
            let key = cfg.encrypt_key.as_ref().map(|k| k.expose_secret().to_string());
            let sim = Simulator::new(cfg.verification_token.expose_secret(), key.as_deref(), &cfg.app_id, &cfg.corp_id);
            let message_id = format!("om_sim_{}", rand::random::<u32>());
            let cb = sim.text(&user, &text, &message_id, chrono::Utc::now().timestamp());
            let base = url.unwrap_or_else(|| format!("http://{}", settings.listen));
            let mut req = reqwest::Client::new()
                .post(format!("{}/callback/feishu/{app}", base.trim_end_matches('/')))
                .header("content-type", "application/json")
                .body(cb.body);
            for (k, v) in &cb.headers {
                req = req.header(k, v);
            }
            let res = req.send().await?;
            let status = res.status();
            let body = res.text().await?;
            println!("server answered {status}: {body}");
            if !status.is_success() {
                bail!("the callback was refused");
            }
            println!(
                "the reply is pushed by the outbox to {} as `reply:{message_id}` (run `chatcrm feishu mock` and point feishu.api_base at it to see it)",
                settings.feishu.api_base
            );
            Ok(())
        }
        FeishuCmd::Mock { listen } => {
            let mock = MockFeishu::bind(listen).await?;
            let creds = MockFeishu::credentials();
            println!(
                "mock Feishu API on {} (app_id {}, app_secret {})",
                mock.base_url(),
                creds.app_id,
                creds.app_secret
            );
            println!("set CHATCRM_FEISHU__API_BASE={} and those credentials; Ctrl-C stops", mock.base_url());
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                }
                let received = mock.received();
                for r in received.iter().skip(seen) {
                    println!("→ {} [{}] {}", r.to, r.msg_type, r.words());
                }
                seen = received.len();
            }
            mock.stop().await;
            Ok(())
        }
    }
}

async fn dingtalk_cmd(settings: Settings, what: DingtalkCmd) -> Result<()> {
    use chatcrm::platform::dingtalk::simulate::{SessionReceiver, Simulator};
    match what {
        DingtalkCmd::Simulate { app, user, group, url, text } => {
            let cfg = settings.dingtalk.apps.iter().find(|a| a.name == app).ok_or_else(|| {
                let known: Vec<&str> = settings.dingtalk.apps.iter().map(|a| a.name.as_str()).collect();
                anyhow::anyhow!(
                    "no dingtalk app `{app}` in the config (configured: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )
            })?;
            let sim = Simulator::new(cfg)?;
            let mut receiver = SessionReceiver::start().await?;
            let now = chrono::Utc::now().timestamp_millis();
            let msg_id = format!("sim{}", rand::random::<u32>());
            let cb = sim.text(&user, &text, &msg_id, group.as_deref(), now, Some(&receiver.url));
            let base = url.unwrap_or_else(|| format!("http://{}", settings.listen));
            let res = reqwest::Client::new()
                .post(format!("{}/callback/dingtalk/{app}", base.trim_end_matches('/')))
                .header("timestamp", &cb.timestamp)
                .header("sign", &cb.sign)
                .header("content-type", "application/json")
                .body(cb.body)
                .send()
                .await?;
            let status = res.status();
            let body = res.text().await?;
            if !status.is_success() {
                bail!("server answered {status}: {body}");
            }
            // The server posts the reply before answering; allow a moment for several parts.
            let mut got = false;
            while let Ok(Some(v)) =
                tokio::time::timeout(std::time::Duration::from_millis(500), receiver.bodies.recv()).await
            {
                let text = v.pointer("/text/content").or_else(|| v.pointer("/markdown/text"));
                println!("{}", text.and_then(|t| t.as_str()).unwrap_or_default());
                got = true;
            }
            if !got {
                println!(
                    "(acknowledged; no reply arrived at the local session webhook: set dingtalk.allow_local_session_webhooks = true on the server, or the reply was pushed as a work notification)"
                );
            }
            Ok(())
        }
    }
}

struct CsvImportFlags {
    dry_run: bool,
    json: bool,
    skip_bad: bool,
    encoding: chatcrm::csv_io::EncodingChoice,
}

/// Runs [`import_csv`] and exits: 0 all rows in, 1 some rejected, 2 the file was refused (also
/// for a missing org or database).
async fn import_csv_exit(
    settings: &Settings,
    kind: chatcrm::csv_io::Kind,
    file: &std::path::Path,
    org: Option<String>,
    flags: CsvImportFlags,
) -> Result<()> {
    let json = flags.json;
    let code = match import_csv(settings, kind, file, org, flags).await {
        Ok(code) => code,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            }
            eprintln!("error: {e:#}");
            2
        }
    };
    std::io::stdout().flush()?;
    std::process::exit(code)
}

/// `import customers|deals|activities`: the exit code for the report, or an error when the file
/// was refused.
async fn import_csv(
    settings: &Settings,
    kind: chatcrm::csv_io::Kind,
    file: &std::path::Path,
    org: Option<String>,
    flags: CsvImportFlags,
) -> Result<i32> {
    use chatcrm::csv_io;
    // Refuse an unreadable file before opening the database.
    std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    let db = startup::open_db(settings).await?;
    let mut tx = db.begin_read().await?;
    let org = crm::orgs::org_by_name(&mut tx, &org.unwrap_or_else(|| settings.console_org.clone())).await;
    tx.commit().await?;
    let opts = csv_io::ImportOptions {
        org_id: org?.id,
        dry_run: flags.dry_run,
        skip_bad: flags.skip_bad,
        encoding: flags.encoding,
        now: Clock::system().now(),
    };
    let report = csv_io::import_file(&db, kind, file, &opts).await;
    db.close().await;
    let report = report.with_context(|| format!("cannot import {}", file.display()))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(report.exit_code())
}

/// `export customers|deals|activities`: CSV to --out or stdout.
async fn export_csv(
    settings: &Settings,
    kind: chatcrm::csv_io::Kind,
    org: Option<String>,
    out: Option<PathBuf>,
    en: bool,
) -> Result<()> {
    let db = startup::open_db(settings).await?;
    let mut tx = db.begin_read().await?;
    let org = crm::orgs::org_by_name(&mut tx, &org.unwrap_or_else(|| settings.console_org.clone())).await;
    tx.commit().await?;
    let org = org?;
    let written = match &out {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
            chatcrm::csv_io::export(&db, kind, org.id, en, std::io::BufWriter::new(file)).await?
        }
        None => {
            chatcrm::csv_io::export(&db, kind, org.id, en, std::io::BufWriter::new(std::io::stdout().lock())).await?
        }
    };
    db.close().await;
    if let Some(path) = out {
        eprintln!("{written} rows written to {}", path.display());
    }
    Ok(())
}

async fn webhooks_cmd(settings: Settings, command: WebhooksCmd) -> Result<()> {
    use chatcrm::store::webhooks as store;
    use chatcrm::webhooks;
    let db = startup::open_db(&settings).await?;
    let now = Clock::system().now();
    match command {
        WebhooksCmd::Add { org, url, events, secret } => {
            let mut tx = db.begin().await?;
            let org = crm::orgs::org_by_name(&mut tx, &org).await?;
            let given = secret.is_some();
            let (sub, secret) = webhooks::add(&mut tx, org.id, &url, &events, secret.as_deref(), now).await?;
            tx.commit().await?;
            println!("webhook {} for org 「{}」: {} → {}", sub.id, org.name, sub.events, sub.url);
            if !given {
                println!("secret: {secret}");
                eprintln!("store the secret now: it is not shown again (receivers verify signatures with it)");
            }
        }
        WebhooksCmd::List { org } => {
            let mut tx = db.begin_read().await?;
            let org_id = match org {
                Some(o) => Some(crm::orgs::org_by_name(&mut tx, &o).await?.id),
                None => None,
            };
            let rows = store::list(&mut tx, org_id).await?;
            tx.commit().await?;
            if rows.is_empty() {
                println!("no webhooks; add one with `chatcrm webhooks add --org ORG --url URL --events EVENTS`");
            }
            for s in rows {
                println!(
                    "{:>4}  org {:<4} {:<8} {}  {}  created {}",
                    s.id,
                    s.org_id,
                    if s.active { "active" } else { "inactive" },
                    s.url,
                    s.events,
                    s.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        WebhooksCmd::Remove { id } => {
            let mut tx = db.begin().await?;
            if !store::delete(&mut tx, id).await? {
                tx.rollback().await?;
                bail!("no webhook subscription #{id}");
            }
            tx.commit().await?;
            println!("removed webhook {id}");
        }
        WebhooksCmd::Test { id } => {
            let timeout = std::time::Duration::from_secs(settings.request_timeout_secs.max(1));
            let sender = webhooks::Sender::new(timeout)?;
            let keep = chrono::Duration::days(i64::from(settings.schedule.outbox_keep_days.max(1)));
            let (event, attempt) = webhooks::ping(&db, &sender, id, now, keep).await?;
            let answer = match (attempt.status, &attempt.error) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(e)) => e.clone(),
                (None, None) => "no answer".into(),
            };
            println!("ping {} to webhook {id}: {answer} in {} ms", event.id, attempt.duration.as_millis());
            if let Err(e) = attempt.outcome() {
                db.close().await;
                bail!("the webhook did not accept the ping: {e}");
            }
        }
        WebhooksCmd::Replay { event_id, dead: _, sub } => {
            let mut tx = db.begin().await?;
            let n = match &event_id {
                Some(e) => store::requeue_event(&mut tx, e, sub, now).await?,
                None => store::requeue_dead(&mut tx, sub, now).await?,
            };
            tx.commit().await?;
            if n == 0 && event_id.is_some() {
                db.close().await;
                bail!("no sent or dead delivery of that event (it may have been pruned)");
            }
            println!("requeued {n} deliver{}", if n == 1 { "y" } else { "ies" });
        }
        WebhooksCmd::Log { sub, limit } => {
            let mut tx = db.begin_read().await?;
            let rows = store::log(&mut tx, sub, limit).await?;
            tx.commit().await?;
            for d in rows {
                let outcome = match (d.status_code, &d.error) {
                    (Some(s), _) => format!("HTTP {s}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "-".into(),
                };
                println!(
                    "{}  webhook {:<4} {:<20} {:<40} {outcome} {} ms",
                    d.at.format("%Y-%m-%d %H:%M:%S"),
                    d.subscription_id,
                    d.event_type,
                    d.event_id,
                    d.duration_ms
                );
            }
        }
    }
    db.close().await;
    Ok(())
}

/// Prints a backup or restore result; refusals exit 2 with what to do instead.
fn backup_outcome(
    what: &str,
    done: Result<chatcrm::backup::Report, chatcrm::backup::BackupError>,
    json: bool,
) -> Result<()> {
    match done {
        Ok(r) if json => {
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Ok(r) => {
            let rows: i64 = r.tables.iter().map(|(_, n)| n).sum();
            println!(
                "{what} {} ({} bytes, {} migrations, {} tables, {rows} rows; integrity check ok)",
                r.path.display(),
                r.bytes,
                r.migrations,
                r.tables.len()
            );
            for (t, n) in r.tables.iter().filter(|(t, _)| {
                ["orgs", "users", "customers", "activities", "deals", "leads", "tasks", "inbox"].contains(&t.as_str())
            }) {
                println!("  {t:<12} {n}");
            }
            Ok(())
        }
        Err(e @ (chatcrm::backup::BackupError::Db(_) | chatcrm::backup::BackupError::Io(_))) => Err(e.into()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    }
}
