//! WeCom (企业微信). Protocol facts: ../shared/PLATFORMS.md §1.

pub mod crypto;
pub mod xml;
