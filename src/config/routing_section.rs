//! The `[routing]` section: settings of the routing model as a whole.

use super::toml_doc::{Doc, Section};
use super::RoutingSettings;

const KEYS: &[&str] = &["failover_after_provisional"];
const LATER: &[&str] = &["hairpin"];

/// Read `[routing]` (optional; every key has a default).
pub fn read(doc: &mut Doc<'_>, root: &Section<'_>) -> RoutingSettings {
    let mut settings = RoutingSettings::default();
    let Some(section) = root.table(doc, "routing") else {
        return settings;
    };
    section.check_keys(doc, KEYS, LATER);
    if let Some(f) = section.field(doc, "failover_after_provisional") {
        if let Some(b) = f.boolean(doc) {
            settings.failover_after_provisional = b;
        }
    }
    settings
}
