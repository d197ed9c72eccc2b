//! A huge alias list, with the allocator the bridge binary uses (mimalloc):
//! `cargo bench --bench memory_large`.
//!
//! 100,000 aliases as StackStorm sends them to the bridge: a list that large (39 MiB) is
//! over `[st2] alias_list_max_bytes`, so it is read as 100 pages of 1,000
//! (`St2Client::list_aliases` holds the pages' bytes), decoded page by page and indexed
//! (the alias cache's load); then a reload goes down to 26 aliases. Printed: the time, RSS
//! after each step, the peak RSS (the kernel's high-water mark) and RSS a few seconds after
//! the reload, when the allocator has returned what it no longer needs (ARCHITECTURE.md
//! §9: 100,000 aliases within 3 s under 150 MiB peak), and then the time the same work takes
//! for 10,000 (§9: 300 ms). Live-heap figures for 10,000 aliases are in
//! `cargo bench --bench memory`.

mod common;

use std::time::{Duration, Instant};

use stormbridge::alias::{index::AliasIndex, model::parse_alias_list_bytes};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALIASES: usize = 100_000;
const PAGE: usize = 1_000;

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let mut lines = vec![("start".to_owned(), status_kib("VmRSS:"))];
    let pages: Vec<Vec<u8>> = (0..ALIASES)
        .step_by(PAGE)
        .map(|first| common::wire_json_range(first..first + PAGE))
        .collect();
    let bytes: usize = pages.iter().map(Vec::len).sum();
    lines.push((
        format!("{} pages read ({} MiB)", pages.len(), bytes >> 20),
        status_kib("VmRSS:"),
    ));
    let started = Instant::now();
    let mut aliases = Vec::new();
    for page in pages {
        let (some, problems) = parse_alias_list_bytes(&page).expect("a list");
        assert!(problems.is_empty(), "{problems:?}");
        // As the alias cache does.
        aliases.extend(some.into_iter().map(std::sync::Arc::new));
    }
    lines.push((
        format!("decoded ({} ms)", started.elapsed().as_millis()),
        status_kib("VmRSS:"),
    ));
    let (index, _) = AliasIndex::build(aliases);
    lines.push((
        format!("and indexed ({} ms in all)", started.elapsed().as_millis()),
        status_kib("VmRSS:"),
    ));
    let peak = status_kib("VmHWM:");
    let small = common::wire_json(26);
    let (aliases, _) = parse_alias_list_bytes(&small).expect("a list");
    let (small_index, _) = AliasIndex::rebuild(aliases, Some(&index));
    drop(index);
    lines.push(("reloaded with 26 aliases".to_owned(), status_kib("VmRSS:")));
    // The allocator returns freed memory lazily, as the process goes on allocating. (A
    // bench's own thread: no arbiter to block.)
    #[allow(clippy::disallowed_methods)]
    let pause = || std::thread::sleep(Duration::from_millis(100));
    for _ in 0..30 {
        pause();
        let churn: Vec<Vec<u8>> = (0..1000).map(|i| vec![0u8; 64 + i % 512]).collect();
        std::hint::black_box(churn);
    }
    lines.push(("3 s later".to_owned(), status_kib("VmRSS:")));
    // The §9 budget for 10,000 aliases: ready within 300 ms of StackStorm's answer. The same
    // work for a tenth of the list, timed alone.
    let pages: Vec<Vec<u8>> = (0..ALIASES / 10)
        .step_by(PAGE)
        .map(|first| common::wire_json_range(first..first + PAGE))
        .collect();
    let started = Instant::now();
    let mut aliases = Vec::new();
    for page in pages {
        let (some, _) = parse_alias_list_bytes(&page).expect("a list");
        aliases.extend(some.into_iter().map(std::sync::Arc::new));
    }
    let (ten_thousand, _) = AliasIndex::build(aliases);
    let ten_thousand_ms = started.elapsed().as_millis();
    std::hint::black_box(&ten_thousand);
    println!("RSS of this process, MiB (allocator: mimalloc)");
    for (what, rss) in &lines {
        println!("  {what:42} {rss:7.1}");
    }
    println!("  {:42} {peak:7.1}", "peak RSS");
    println!("10,000 aliases decoded and indexed in {ten_thousand_ms} ms");
    std::hint::black_box(&small_index);
}
