//! The bridge's own ceiling, end to end: `cargo bench --bench pipeline [-- SECONDS]
//! [--people=N]`.
//!
//! N people (1, then 64) each type `!st2 run echo …` at a console connection of their own,
//! in a closed loop: the next command goes once the previous one's result is back. Every
//! command crosses the whole bridge — console input, prefix and alias matching, the access
//! gate, `POST /api/v1/aliasexecution` over loopback HTTP, the ledger, the announcement on
//! the event stream, routing, the result template, console output. The StackStorm emulator
//! runs in a child process (this binary, re-run with `--emulator-child`), with no execution
//! delay and a quiet bus, so the figures are the bridge's and the emulator's CPU is counted
//! apart. Printed per run: commands/s, command→result latency p50/p99, and CPU time per
//! command of the bridge's process and of the emulator's.
//!
//! ARCHITECTURE.md §9 / issue 14 target: ≥ 5,000 commands/s on the 2-core machine.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};
use stormbridge::backends::registry::REGISTRY;

use stormbridge::{
    app::{self, AppOptions},
    backends::console::ConsoleIo,
    config,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[path = "common/e2e.rs"]
mod e2e;
use e2e::{cpu_time, percentile, spawn_emulator, sys_time, wait_ready, Urls};

/// The binary's allocator, so the figures are the shipped binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if std::env::args().any(|a| a == "--emulator-child") {
        e2e::emulator_child();
        return;
    }
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    // `--people=N`: that run only (for profiling one of them).
    let only: Option<usize> =
        std::env::args().find_map(|a| a.strip_prefix("--people=").and_then(|n| n.parse().ok()));
    let (emulator, urls) = spawn_emulator();
    for people in only.map_or(vec![1usize, 64], |n| vec![n]) {
        let run = run(&urls, people, Duration::from_secs(seconds), emulator.pid());
        println!("{run}");
    }
}

/// What one run measured.
struct Run {
    people: usize,
    commands: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    bridge_cpu: Duration,
    /// Of which in the kernel.
    bridge_sys: Duration,
    emulator_cpu: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| percentile(&l, p);
        let per = |d: Duration| d.as_secs_f64() * 1e3 / self.commands.max(1) as f64;
        write!(
            f,
            "pipeline, {:>2} people: {:>6} commands in {:.1} s = {:>7.0} commands/s; \
             latency p50 {:.2} ms, p99 {:.2} ms; CPU per command: bridge {:.3} ms ({:.3} ms in the kernel), \
             emulator {:.3} ms",
            self.people,
            self.commands,
            self.elapsed.as_secs_f64(),
            self.commands as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            per(self.bridge_cpu),
            per(self.bridge_sys),
            per(self.emulator_cpu),
        )
    }
}

fn config_toml(urls: &Urls) -> String {
    e2e::st2_toml(urls)
        + r#"
[[chat]]
name = "c0"
backend = "console"
user_id = "u0"
user_name = "User 0"
room = "room0"
"#
}

fn run(urls: &Urls, people: usize, length: Duration, emulator_pid: u32) -> Run {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut settings = config::load_from_str(&config_toml(urls), &REGISTRY)
            .expect("bench configuration is valid");
        let first = settings.chat[0].clone();
        for i in 1..people {
            let mut chat = first.clone();
            chat.name = format!("c{i}");
            if let Some(base) = chat
                .backend
                .as_any()
                .downcast_ref::<stormbridge::backends::console::ConsoleSettings>()
            {
                let mut c = base.clone();
                c.user_id = format!("u{i}");
                c.room = format!("room{i}");
                chat.backend = std::sync::Arc::new(c);
            }
            settings.chat.push(chat);
        }
        let mut consoles = HashMap::new();
        let mut ends = Vec::new();
        for i in 0..people {
            let (bot_in, input) = tokio::io::duplex(1 << 16);
            let (bot_out, output) = tokio::io::duplex(1 << 16);
            consoles.insert(
                format!("c{i}"),
                ConsoleIo {
                    input: Box::new(bot_in),
                    output: Box::new(bot_out),
                    terminal: false,
                },
            );
            ends.push((input, BufReader::new(output).lines()));
        }
        let app = app::start(
            settings,
            AppOptions {
                consoles,
                ..AppOptions::default()
            },
        )
        .await
        .expect("bridge starts");
        wait_ready(app.http_addr).await;
        // One command each first, so the stream is up and every path warm.
        let started = Instant::now();
        let deadline = started + length;
        let bridge_cpu0 = cpu_time("self");
        let bridge_sys0 = sys_time("self");
        let emulator_cpu0 = cpu_time(&emulator_pid.to_string());
        let mut tasks = Vec::new();
        for (i, (mut input, mut output)) in ends.into_iter().enumerate() {
            tasks.push(actix_rt::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let word = format!("p{i}x{n}");
                    let sent = Instant::now();
                    input
                        .write_all(format!("!st2 run echo {word}\n").as_bytes())
                        .await
                        .expect("console input");
                    let result = format!("stdout : {word}");
                    loop {
                        let line =
                            tokio::time::timeout(Duration::from_secs(30), output.next_line())
                                .await
                                .expect("a result within 30 s")
                                .expect("console output")
                                .expect("console open");
                        if line.contains(&result) {
                            break;
                        }
                    }
                    latencies.push(sent.elapsed());
                    n += 1;
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("user task"));
        }
        let elapsed = started.elapsed();
        let run = Run {
            people,
            commands: latencies.len(),
            elapsed,
            latencies,
            bridge_cpu: cpu_time("self").saturating_sub(bridge_cpu0),
            bridge_sys: sys_time("self").saturating_sub(bridge_sys0),
            emulator_cpu: cpu_time(&emulator_pid.to_string()).saturating_sub(emulator_cpu0),
        };
        app.stop().await;
        run
    })
}
