//! chatcrm: a self-hosted CRM for small sales teams whose interface is their enterprise chat.
//!
//! Data flow: platform adapter → [`bot`] (inbox dedupe, [`command`] parsing) → [`crm`] services →
//! [`store`]. See docs/ARCHITECTURE.md.

pub mod api_bench;
pub mod backup;
pub mod bench;
pub mod bot;
pub mod chart;
pub mod clock;
pub mod command;
pub mod config;
pub mod crm;
pub mod csv_io;
pub mod demo;
pub mod digest_bench;
pub mod doctor;
pub mod http;
pub mod import;
pub mod import_bench;
pub mod loadgen;
pub mod metrics;
pub mod outbox;
pub mod platform;
pub mod reminder_bench;
pub mod report;
pub mod schedule;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;

/// Installs the process-wide TLS crypto provider (ring) for outbound HTTPS. reqwest is built
/// without a default provider so no C toolchain beyond `cc` is needed; every HTTP client needs
/// this first. Idempotent.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
