//! A huge alias list, with the allocator the bridge binary uses (mimalloc):
//! `cargo bench --bench memory_large [-- value]`.
//!
//! 100,000 aliases as StackStorm sends them (the body's bytes) are parsed and indexed, then
//! a reload goes down to 26 aliases. Printed: the time, RSS after each step, the peak RSS
//! (the kernel's high-water mark) and RSS a few seconds after the reload, when the
//! allocator has returned what it no longer needs (ARCHITECTURE.md §9: 100,000 aliases
//! within 3 s under 150 MiB peak). `-- value` parses the way the bridge did before
//! (a JSON tree of the whole list first), for comparison. Live-heap figures for 10,000
//! aliases are in `cargo bench --bench memory`.

mod common;

use std::time::{Duration, Instant};

use stormbridge::alias::{
    index::AliasIndex, model::parse_alias_list, model::parse_alias_list_bytes,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let as_value = std::env::args().any(|a| a == "value");
    // The body is made by a child process (this bench run again with `make`), so that
    // making it leaves nothing behind in this one: what is measured is the bridge's work.
    if std::env::args().any(|a| a == "make") {
        use std::io::Write as _;
        let _ = std::io::stdout().write_all(&common::wire_json(100_000));
        return;
    }
    let mut lines = vec![("start".to_owned(), status_kib("VmRSS:"))];
    let body = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("make")
        .output()
        .expect("the body is made")
        .stdout;
    lines.push((
        format!("body of 100,000 aliases ({} MiB)", body.len() >> 20),
        status_kib("VmRSS:"),
    ));
    let started = Instant::now();
    let (aliases, problems) = if as_value {
        let tree: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        parse_alias_list(&tree).expect("a list")
    } else {
        parse_alias_list_bytes(&body).expect("a list")
    };
    assert!(problems.is_empty(), "{problems:?}");
    drop(body);
    let (index, _) = AliasIndex::build(aliases);
    lines.push((
        format!(
            "parsed{} and indexed ({} ms)",
            if as_value {
                " as a JSON tree"
            } else {
                " item by item"
            },
            started.elapsed().as_millis()
        ),
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
    println!("RSS of this process, MiB (allocator: mimalloc)");
    for (what, rss) in &lines {
        println!("  {what:42} {rss:7.1}");
    }
    println!("  {:42} {peak:7.1}", "peak RSS");
    std::hint::black_box(&small_index);
}
