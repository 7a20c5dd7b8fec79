//! The `[limits]` section: input limits operators may tighten or (for message size) raise.
//! Defaults and hard bounds live in `crate::limits`.

use super::toml_doc::{Doc, Section};
use crate::limits::{self, InputLimits};

const KEYS: &[&str] = &[
    "max_message_bytes",
    "max_headers",
    "max_header_line_bytes",
    "max_uri_bytes",
    "max_vias",
];

/// Read `[limits]` (optional; every key has a default).
pub fn read(doc: &mut Doc<'_>, root: &Section<'_>) -> InputLimits {
    let mut out = InputLimits::default();
    let Some(section) = root.table(doc, "limits") else {
        return out;
    };
    section.check_keys(doc, KEYS, &[]);
    let mut key = |name: &str, min: usize, max: usize, unit: &str, slot: &mut usize| {
        if let Some(f) = section.field(doc, name) {
            let expected = format!("a whole number of {unit} from {min} to {max}");
            if let Some(n) = f.integer_in(doc, min as i64, max as i64, &expected) {
                *slot = n as usize;
            }
        }
    };
    // A message must hold at least a minimal INVITE with SDP.
    key(
        "max_message_bytes",
        1024,
        limits::MESSAGE_BYTES_CONFIGURABLE_MAX,
        "bytes",
        &mut out.max_message_bytes,
    );
    // The scanner indexes at most HEADERS_MAX lines; a request needs ~8 mandatory ones.
    key(
        "max_headers",
        16,
        limits::HEADERS_MAX,
        "header lines",
        &mut out.max_headers,
    );
    key(
        "max_header_line_bytes",
        128,
        limits::MESSAGE_BYTES_CONFIGURABLE_MAX,
        "bytes",
        &mut out.max_header_line_bytes,
    );
    key(
        "max_uri_bytes",
        64,
        limits::MESSAGE_BYTES_CONFIGURABLE_MAX,
        "bytes",
        &mut out.max_uri_bytes,
    );
    // A request crossing a few proxies carries several Vias; 70 is Max-Forwards' default.
    key("max_vias", 4, limits::VIAS_MAX, "Vias", &mut out.max_vias);
    out
}
