//! One million prefixes: how long a `prefix_file` of 1M lines takes to load (read, check,
//! compile), how much memory the compiled table holds, and how long a lookup takes for
//! random called numbers that hit a listed prefix and that miss every one.
//!
//! `cargo bench --bench prefix`. The load time and memory are printed first; the lookups
//! are criterion benchmarks (medians in target/criterion/prefix_1m/.../new/estimates.json):
//!
//! - `trie_walk/*`: the prefix trie alone (`PrefixTrie::walk`), every prefix of the number
//!   visited;
//! - `route_with/*`: the whole routing decision for a call from a trunk with usages (trie
//!   walk, a pattern route, merge, weighted rotation, attempt list).
//!
//! Numbers cycle through 64Ki random ones, so most lookups miss the CPU caches as they would
//! with real traffic. The prefixes look like a carrier's LCR table: a country code (weighted
//! towards big destinations) and 3 to 9 more digits.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{black_box, BenchmarkId, Criterion};
use junction::config;
use junction::routing::prefix::PrefixTrie;
use junction::routing::{Decision, TrunkId};
use mimalloc::MiMalloc;

// The production allocator.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const PREFIXES: usize = 1_000_000;
const NUMBERS: usize = 1 << 16;
const LOADS: usize = 3;

/// xorshift64*: deterministic, no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn digits(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            out.push(b'0' + self.below(10) as u8);
        }
    }
}

/// Country codes, the big ones listed several times.
const COUNTRIES: &[&str] = &[
    "1", "1", "1", "1", "44", "44", "33", "49", "49", "39", "34", "7", "86", "86", "81", "91",
    "91", "55", "52", "61", "27", "234", "254", "971", "966", "380", "48", "31", "32", "41", "43",
    "45", "46", "47", "353", "351", "30", "90", "20", "62", "63", "66", "84", "82", "64",
];

fn random_prefix(rng: &mut Rng) -> Vec<u8> {
    let mut p = Vec::with_capacity(16);
    p.push(b'+');
    p.extend_from_slice(COUNTRIES[rng.below(COUNTRIES.len())].as_bytes());
    let more = 3 + rng.below(7);
    rng.digits(&mut p, more);
    p
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn write_config(dir: &Path, prefixes: &[Vec<u8>]) -> std::path::PathBuf {
    let mut csv = Vec::with_capacity(prefixes.len() * 16);
    csv.extend_from_slice(b"prefix,carrier\n");
    for (i, p) in prefixes.iter().enumerate() {
        csv.extend_from_slice(p);
        csv.extend_from_slice(format!(",carrier-{}\n", i % 7).as_bytes());
    }
    let _ = std::fs::write(dir.join("lcr.csv"), csv);
    let toml = r#"
[server]
listen = "127.0.0.1:5060"

[[trunk]]
name = "pbx"
peers = ["10.1.0.0/24"]
send_to = "10.1.0.10:5060"
usages = ["lcr"]

[[trunk]]
name = "gw-a"
peers = ["198.51.100.10"]
send_to = "198.51.100.10:5060"
usages = ["in"]

[[trunk]]
name = "gw-b"
peers = ["198.51.100.20"]
send_to = "198.51.100.20:5060"
usages = ["in"]

[[trunk]]
name = "gw-c"
peers = ["198.51.100.30"]
send_to = "198.51.100.30:5060"
usages = ["in"]

[[route]]
name = "lcr"
prefix_file = "lcr.csv"
usages = ["lcr"]
trunks = ["gw-a", "gw-b"]
weights = [2, 1]

[[route]]
name = "nanp"
pattern = '\+1[2-9]\d{9}'
usages = ["lcr"]
trunks = ["gw-c"]
priority = 200

[[route]]
name = "in"
prefixes = ["+1212555"]
usages = ["in"]
trunks = ["pbx"]
"#;
    let path = dir.join("prefix-bench.toml");
    let _ = std::fs::write(&path, toml);
    path
}

fn main() {
    let dir = std::env::temp_dir().join(format!("junction-bench-prefix-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return;
    }

    // 1M distinct prefixes.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(PREFIXES);
    let mut prefixes: Vec<Vec<u8>> = Vec::with_capacity(PREFIXES);
    while prefixes.len() < PREFIXES {
        let p = random_prefix(&mut rng);
        if seen.insert(p.clone()) {
            prefixes.push(p);
        }
    }
    drop(seen);
    let path = write_config(&dir, &prefixes);
    let csv_bytes = std::fs::metadata(dir.join("lcr.csv")).map_or(0, |m| m.len());

    // Load: read + check the CSV, parse the TOML, compile the table.
    let mut loads = Vec::new();
    let mut table = None;
    let rss_before = rss_bytes();
    for _ in 0..LOADS {
        drop(table.take());
        let started = Instant::now();
        let loaded = config::load_compiled(&path);
        loads.push(started.elapsed());
        match loaded {
            Ok(ct) => table = Some(ct),
            Err(errors) => {
                for e in errors.iter().take(5) {
                    eprintln!("{e}");
                }
                return;
            }
        }
    }
    let Some((cfg, table)) = table else { return };
    let rss_after = rss_bytes();
    let file_bytes = cfg
        .routes
        .first()
        .and_then(|r| r.prefix_file.as_ref())
        .map_or(0, |f| f.heap_bytes());

    // The trie alone, for its node count and the raw walk.
    let started = Instant::now();
    let trie = match PrefixTrie::build(
        prefixes.iter().map(|p| (p.as_slice(), 0u16)).collect(),
        u64::from,
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let trie_build = started.elapsed();

    // Numbers: hits extend a listed prefix to a full number; misses match no listed prefix.
    let mut hits: Vec<Vec<u8>> = Vec::with_capacity(NUMBERS);
    let mut misses: Vec<Vec<u8>> = Vec::with_capacity(NUMBERS);
    while hits.len() < NUMBERS {
        let mut n = prefixes[rng.below(prefixes.len())].clone();
        let more = 13usize.saturating_sub(n.len()) + rng.below(3);
        rng.digits(&mut n, more);
        hits.push(n);
    }
    while misses.len() < NUMBERS {
        let mut n = random_prefix(&mut rng);
        let more = 13usize.saturating_sub(n.len()) + rng.below(3);
        rng.digits(&mut n, more);
        let mut matched = false;
        trie.walk(&n, |_, _| matched = true);
        if !matched {
            misses.push(n);
        }
    }

    let min = loads.iter().min().copied().unwrap_or(Duration::ZERO);
    println!(
        "prefix benchmark: {PREFIXES} prefixes in a {:.1} MiB CSV",
        mib(csv_bytes as usize)
    );
    println!(
        "  load (read + check + sort the CSV, parse the config, compile): {}; min {:.2} s",
        loads
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        min.as_secs_f64()
    );
    println!(
        "  trie build alone, from the prefixes in random order: {:.2} s",
        trie_build.as_secs_f64()
    );
    println!(
        "  memory: trie {:.1} MiB ({} nodes of 32 bytes for {} prefixes; {:.1} bytes per prefix); \
         prefix file kept in the config {:.1} MiB",
        mib(table.prefix_heap_bytes()),
        trie.nodes_len(),
        trie.len(),
        table.prefix_heap_bytes() as f64 / PREFIXES as f64,
        mib(file_bytes)
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "  resident set after {LOADS} loads: {:.0} MiB (was {:.0} MiB with the generated prefixes)",
            mib(after),
            mib(before)
        );
    }
    drop(prefixes);

    let pbx = TrunkId(0);
    let usable = |_: TrunkId| true;
    let mut routed = 0usize;
    for n in &hits {
        if matches!(table.route_with(pbx, n, 0, &usable), Decision::Route { .. }) {
            routed += 1;
        }
    }
    println!("  check: {routed} of {NUMBERS} hit numbers routed\n");

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("prefix_1m");
    for (kind, numbers) in [("hit", &hits), ("miss", &misses)] {
        group.bench_with_input(
            BenchmarkId::new("trie_walk", kind),
            numbers,
            |b, numbers| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & (NUMBERS - 1);
                    let mut longest = 0;
                    trie.walk(black_box(&numbers[i]), |len, _| longest = len);
                    longest
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("route_with", kind),
            numbers,
            |b, numbers| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & (NUMBERS - 1);
                    table.route_with(pbx, black_box(&numbers[i]), i as u64, &usable)
                })
            },
        );
    }
    group.finish();
    c.final_summary();
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
