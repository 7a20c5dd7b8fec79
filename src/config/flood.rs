//! The `[flood]` section: per-source flood protection (see `sip::flood`).

use super::toml_doc::{Doc, Section};
use crate::sip::flood::FloodSettings;
use std::time::Duration;

const KEYS: &[&str] = &["requests_per_sec", "trunk_requests_per_sec", "block_secs"];

/// Largest threshold: far above any single trunk's signalling rate.
const RATE_MAX: i64 = 1_000_000;
/// Longest block: one day.
const BLOCK_SECS_MAX: i64 = 86_400;

/// Read `[flood]` (optional; every key has a default).
pub fn read(doc: &mut Doc<'_>, root: &Section<'_>) -> FloodSettings {
    let mut settings = FloodSettings::default();
    let Some(section) = root.table(doc, "flood") else {
        return settings;
    };
    section.check_keys(doc, KEYS, &[]);
    let rate = format!("a whole number of datagrams per second from 0 (off) to {RATE_MAX}");
    if let Some(f) = section.field(doc, "requests_per_sec") {
        if let Some(n) = f.integer_in(doc, 0, RATE_MAX, &rate) {
            settings.per_source = n as u32;
        }
    }
    if let Some(f) = section.field(doc, "trunk_requests_per_sec") {
        if let Some(n) = f.integer_in(doc, 0, RATE_MAX, &rate) {
            settings.per_trunk_source = n as u32;
        }
    }
    if let Some(f) = section.field(doc, "block_secs") {
        let expected = format!("a whole number of seconds from 1 to {BLOCK_SECS_MAX}");
        if let Some(n) = f.integer_in(doc, 1, BLOCK_SECS_MAX, &expected) {
            settings.block = Duration::from_secs(n as u64);
        }
    }
    settings
}
