//! The whole bridge process with a large install: `cargo bench --bench memory_process
//! [-- COMMANDS [--sessions=N]]` (default 1,000 commands, at most 4,000, the generated
//! aliases of that shape; 1,000 sessions). `STORMBRIDGE_BENCH_WRAPPER` runs the bridge under
//! a tool (deploy/link-order/profile runs it under callgrind with a few sessions).
//!
//! The bridge binary (release build, its production allocator) runs against the in-process
//! StackStorm emulator serving the demo aliases plus the 10,000 generated ones of
//! `benches/common`, with its console on pipes. Printed: the process's RSS once the list is
//! loaded and 1,000 sessions made, then after 1,000 commands that each reach a different
//! format (each format's matcher is built on first use; the emulator refuses the runs, as
//! StackStorm does for actions that are not installed, so no execution is left waiting;
//! each is kept in the job history, as every command is), each also fifteen seconds on,
//! once the allocator has given back what the burst of work freed.
//! RSS is split into the process's own memory (anonymous) and the binary's pages the kernel
//! has mapped (file), which depend on the kernel's fault-around and page cache, not on the
//! bridge. ARCHITECTURE.md §9 / issue 14: ≤ 30 MiB with 10,000 aliases in use and 1,000
//! sessions. The sessions are made as people make them, first (in this mode only people with
//! a session run commands): 1,000 people (the console's `/as`) each ask for a login link in
//! a direct message and the login form is posted for each (an API key), so the default
//! (memory) store holds 1,000 active sessions; the commands are then the first person's.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

#[macro_use]
#[path = "../tests/it/wait.rs"]
mod wait;

#[path = "../tests/it/crowd.rs"]
#[allow(dead_code)]
mod crowd;

const ALIASES: usize = 10_000;
/// Sessions made before the commands, unless `--sessions=N` says otherwise.
const SESSIONS: usize = 1_000;
/// The API key every session is made with (the emulator knows it).
const SESSION_KEY: (&str, &str) = ("membench0123456789abcdef", "membench-st2");
/// The login page's public address in the links the bridge hands out (the bench posts to
/// the bridge's real address instead).
const PUBLIC_URL: &str = "https://bridge.test";
/// Commands sent when the command line names no number.
const COMMANDS: usize = 1_000;

/// RSS and its anonymous and file-backed parts (MiB) of process `pid`.
fn rss(pid: u32) -> (f64, f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// [`rss`] fifteen seconds on: mimalloc hands memory freed by a burst of work back to the
/// system only after a delay (10 s: `purge_delay` 1 s × `arena_purge_mult` 10), at its next
/// allocation, and the steady state is what a budget is about.
async fn settled(pid: u32) -> (f64, f64, f64) {
    let at = std::time::Instant::now() + SETTLE;
    let _ = eventually!(SETTLE * 2, std::time::Instant::now() >= at);
    rss(pid)
}

/// How long [`settled`] waits.
const SETTLE: Duration = Duration::from_secs(15);

fn main() {
    let system = actix_rt::System::new();
    system.block_on(run());
}

async fn run() {
    let wanted_sessions = std::env::args()
        .find_map(|a| a.strip_prefix("--sessions=")?.parse::<usize>().ok())
        .unwrap_or(SESSIONS);
    let mut options = crowd::CrowdOptions::default();
    options.emulator.background_interval = None;
    options
        .emulator
        .api_keys
        .push((SESSION_KEY.0.into(), SESSION_KEY.1.into()));
    options.emulator.aliases.extend(
        common::generate(ALIASES)
            .iter()
            .map(|a| serde_json::to_value(a).expect("an alias as JSON")),
    );
    let emulator = stormbridge::emulator::Emulator::start(options.emulator.clone())
        .await
        .expect("emulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("stormbridge.toml");
    // A free port for the login page (the configuration must name it to be posted to).
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    options.extra_toml = format!(
        "[auth]\nmode = \"clientside\"\npublic_url = \"{PUBLIC_URL}\"\n\
         login_attempts_per_address = {}\n",
        wanted_sessions.max(1) * 4
    );
    let toml = crowd::crowd_toml(&emulator, &options)
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{http}\""))
        + "[log]\nlevel = \"warn\"\n";
    std::fs::write(&config, toml).expect("config");
    // Replies to the commands: StackStorm's refusal of an action that is not installed.
    let refused = Arc::new(AtomicUsize::new(0));
    // The login links handed out in direct messages: (person, link id).
    let (links, handed_out) = std::sync::mpsc::channel::<(String, String)>();
    let bridge = {
        let refused = refused.clone();
        let link_prefix = format!("{PUBLIC_URL}/login/");
        common::BridgeChild::start(&config, move |line| {
            if line.contains("not found") {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            if let Some((before, after)) = line.split_once(&link_prefix) {
                let person = before
                    .split_once(" @")
                    .and_then(|(_, rest)| rest.split_once(' '))
                    .map(|(person, _)| person.to_owned())
                    .unwrap_or_default();
                // A link id is URL-safe base64; the console escapes the message's newline.
                let id: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                    .collect();
                let _ = links.send((person, id));
            }
        })
    };
    let (pid, lines) = (bridge.pid(), bridge.lines.clone());
    let commands: Vec<String> = (0..ALIASES).filter_map(common::command_for).collect();
    // Commands run only for people with a session (`mode = "clientside"`): they are made
    // first, and the commands are person p0's.
    let sessions = make_sessions(&lines, &handed_out, http, wanted_sessions).await;
    // The list is in once the first command reaches one of the generated aliases.
    let mut tries = 0;
    let loaded = eventually!(Duration::from_secs(60), {
        if tries % 20 == 0 {
            let _ = lines.send(format!("/as p0 !st2 {}\n", commands[0]));
        }
        tries += 1;
        refused.load(Ordering::Relaxed) >= 1
    });
    assert!(
        loaded,
        "the bridge never answered a command for a generated alias"
    );
    let before = refused.load(Ordering::Relaxed);
    let just_loaded = rss(pid);
    let at_load = settled(pid).await;
    let wanted = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(COMMANDS);
    for command in commands.iter().skip(1).take(wanted) {
        let _ = lines.send(format!("/as p0 !st2 {command}\n"));
    }
    let sent = commands.len().saturating_sub(1).min(wanted);
    let answered = eventually!(Duration::from_secs(120), {
        refused.load(Ordering::Relaxed) >= before + sent
    });
    let after_commands = rss(pid);
    let settled_after_commands = settled(pid).await;
    drop(lines);
    bridge.stop().await;
    println!("bridge process RSS, MiB: total (anonymous + file)");
    for (what, (total, anon, file)) in [
        (
            format!("{sessions} sessions, {ALIASES} aliases loaded"),
            just_loaded,
        ),
        ("15 s later".to_owned(), at_load),
        (
            format!(
                "{sent} commands, each a different format{}",
                if answered { "" } else { " (not all answered)" }
            ),
            after_commands,
        ),
        ("15 s later".to_owned(), settled_after_commands),
    ] {
        println!("  {what:46} {total:6.1} ({anon:5.1} + {file:5.1})");
    }
}

/// Makes `count` sessions the way people do: each person asks for a login link in a
/// direct message, and the login form is posted with an API key. Returns how many the bridge
/// accepted.
async fn make_sessions(
    lines: &std::sync::mpsc::Sender<String>,
    handed_out: &std::sync::mpsc::Receiver<(String, String)>,
    http: std::net::SocketAddr,
    count: usize,
) -> usize {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut made = 0;
    for person in 0..count {
        let word = format!("correct horse {person}");
        let _ = lines.send(format!("/as p{person} /dm st2session_start {word}\n"));
        // The bridge's answer comes on the output thread; wait for it without blocking the
        // emulator, which lives on this thread.
        let mut link = None;
        let _ = eventually!(Duration::from_secs(30), {
            if link.is_none() {
                link = handed_out.try_recv().ok();
            }
            link.is_some()
        });
        let Some((to, id)) = link else {
            eprintln!("no login link for person {person}");
            break;
        };
        assert_eq!(
            to,
            format!("p{person}"),
            "a link handed to the wrong person"
        );
        let posted = client
            .post(format!("http://{http}/login/{id}"))
            .insert_header(("Accept", "application/json"))
            .send_form(&[
                ("shared_word", word.as_str()),
                ("method", "api_key"),
                ("api_key", SESSION_KEY.0),
            ])
            .await;
        match posted {
            Ok(resp) if resp.status().is_success() => made += 1,
            Ok(resp) => eprintln!("login {person}: HTTP {}", resp.status()),
            Err(e) => eprintln!("login {person}: {e}"),
        }
    }
    made
}
