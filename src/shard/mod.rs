//! The glommio shell: one pinned executor per shard. (The shell helper implements this.)

use crate::config::Config;

/// Start every shard and the control plane; block until the process is told to stop.
pub fn run(config: Config) -> Result<(), String> {
    let _ = config;
    unimplemented!("shell helper implements this")
}
