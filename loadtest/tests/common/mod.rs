//! Helpers shared by the loadtest integration tests that run the junction binary.
#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;

/// The junction binary to run: `$JUNCTION_BIN`, else the newest debug or release build.
pub fn junction_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("JUNCTION_BIN") {
        return PathBuf::from(p);
    }
    // This test runs from <target>/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .parent()
        .and_then(|d| d.parent())
        .and_then(|d| d.parent());
    let candidates: Vec<PathBuf> = target
        .into_iter()
        .flat_map(|t| ["debug", "release"].map(|p| t.join(p).join("junction")))
        .chain(["debug", "release"].map(|p| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(p)
                .join("junction")
        }))
        .filter(|p| p.is_file())
        .collect();
    candidates
        .into_iter()
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("no junction binary: build it first (cargo build -p junction) or set JUNCTION_BIN")
}

/// A free UDP port on `ip`.
pub fn free_udp(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
