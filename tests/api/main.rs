//! Integration tests: one binary (one link step). Storage tests run on SQLite always and on
//! PostgreSQL when CHATCRM_TEST_PG names a server, each test on a fresh database.

mod helpers;

mod api_records;
mod api_v1;
mod audit;
mod authz;
mod backup;
mod bot;
mod browser;
mod cli;
mod commands;
mod crash;
mod crm_customers;
mod crm_deals;
mod crm_leads_tasks;
mod demo;
mod dingtalk;
mod doctor;
mod feishu;
mod http;
mod import;
mod inbox;
mod injection;
mod inline_tx;
mod lead_commands;
mod lead_rules;
mod loadgen;
mod matching;
mod outbox_admin;
mod outbox_faults;
mod parser_props;
mod permissions;
mod report;
mod schedule;
mod shutdown;
mod webhooks;
mod wecom;
mod wecom_push;
