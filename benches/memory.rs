//! The memory budget of ARCHITECTURE.md §9: under 40 MiB RSS with 10,000 aliases and 1,000
//! sessions. Not a timing benchmark: it builds the alias index from 10,000 generated aliases,
//! runs commands that reach 1,000 different formats (each builds its matcher on first use;
//! at most `alias::format::MATCHERS_KEPT` stay built),
//! reloads the same list (as the periodic refresh does), fills the in-memory session store
//! with 1,000 active sessions, and prints the resident set size after each step. The bridge's own idle RSS is measured on the running binary
//! (`stormbridge demo`); add the two to compare with the budget.
//!
//! Run: `cargo bench --bench memory`.

mod common;

use std::{alloc::System, time::Duration};

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

use chrono::Utc;
use secrecy::SecretString;
use stormbridge::{
    alias::index::{AliasIndex, Selection},
    store::{CredentialKind, SessionStore, StoredCredential, UserKey},
};

/// The system allocator with counters (stats_alloc): RSS alone cannot tell memory in use
/// from memory freed but kept by the allocator.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// This process's resident set size in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn add_sessions(store: &SessionStore, users: std::ops::Range<usize>) {
    let hour = Duration::from_secs(3600);
    for u in users {
        let now = Utc::now();
        let user = UserKey::new("matrix", &format!("@user{u}:example.org"));
        let (_, link) = store
            .start_session(&user, "correct horse", hour, hour * 8, now)
            .expect("session started");
        let claim = store
            .consume_link(
                secrecy::ExposeSecret::expose_secret(&link),
                "correct horse",
                now,
            )
            .expect("link claimed");
        let credential = StoredCredential {
            kind: CredentialKind::Token,
            secret: SecretString::from(format!("{u:032x}")),
            st2_user: format!("user{u}"),
            expires_at: Some(now + chrono::TimeDelta::hours(24)),
        };
        store
            .complete_link(claim, credential, now)
            .expect("session active");
    }
}

/// One step's figures (KiB): RSS, and the heap live after it (allocated minus freed since
/// the start).
struct Step {
    what: String,
    rss: u64,
    live: u64,
}

fn step(what: impl Into<String>, since_start: &Region<'_, System>) -> Step {
    let stats = since_start.change();
    // stats_alloc already counts a realloc's growth or shrink in these two.
    let live = stats.bytes_allocated as isize - stats.bytes_deallocated as isize;
    Step {
        what: what.into(),
        rss: rss_kib(),
        live: (live.max(0) / 1024) as u64,
    }
}

fn main() {
    let since_start = Region::new(ALLOCATOR);
    let mut steps = vec![step("start", &since_start)];

    let aliases = common::generate(10_000);
    steps.push(step("10,000 aliases as read", &since_start));
    let started = std::time::Instant::now();
    let (index, warnings) = AliasIndex::build(aliases);
    let build = started.elapsed();
    assert!(warnings.is_empty(), "{warnings:?}");
    steps.push(step(
        format!("index of 10,000 aliases ({} ms)", build.as_millis()),
        &since_start,
    ));

    let mut reached = 0;
    for i in 0..10_000 {
        let Some(command) = common::command_for(i) else {
            continue;
        };
        if let Selection::Matched(_) = index.select(&command) {
            reached += 1;
        }
        if reached == 1_000 {
            break;
        }
    }
    steps.push(step(
        format!("{reached} formats run by commands"),
        &since_start,
    ));

    // The periodic reload of the same list: compiled formats are reused from the old index.
    let started = std::time::Instant::now();
    let (reloaded, _) = AliasIndex::rebuild(common::generate(10_000), Some(&index));
    let reload = started.elapsed();
    // The cache swaps the snapshot; the old one goes when the last command using it ends.
    drop(index);
    let index = reloaded;
    steps.push(step(
        format!("reload ({} ms)", reload.as_millis()),
        &since_start,
    ));

    let store = SessionStore::memory();
    // PBKDF2 makes each login slow on purpose; two threads for the two cores.
    std::thread::scope(|s| {
        s.spawn(|| add_sessions(&store, 0..500));
        s.spawn(|| add_sessions(&store, 500..1_000));
    });
    assert_eq!(store.list(Utc::now()).len(), 1_000, "1,000 active sessions");
    steps.push(step("1,000 active sessions", &since_start));

    println!("memory of this process, MiB: RSS | heap live since the start");
    for s in &steps {
        println!("  {:32} {:7.1} | {:7.1}", s.what, mib(s.rss), mib(s.live));
    }
    std::hint::black_box((&index, &store));
}
