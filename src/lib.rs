//! chatcrm: a self-hosted CRM for small sales teams whose interface is their enterprise chat.
//!
//! Data flow: platform adapter → [`bot`] (inbox dedupe, [`command`] parsing) → [`crm`] services →
//! [`store`]. See docs/ARCHITECTURE.md.

pub mod bench;
pub mod bot;
pub mod clock;
pub mod command;
pub mod config;
pub mod crm;
pub mod demo;
pub mod http;
pub mod platform;
pub mod report;
pub mod startup;
pub mod store;
pub mod telemetry;
