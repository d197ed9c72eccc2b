//! Soak: `cargo bench --bench soak [-- MINUTES [COMMANDS_PER_SECOND]]` (default 60 and 10).
//!
//! The bridge binary (release build, its production allocator) runs against the in-process
//! StackStorm emulator in its default mode (close-delimited stream behind nginx, busy bus),
//! with its console on pipes. Steady commands go in — room and direct messages, every tenth
//! stream connection cut — and the bridge process's RSS is sampled every 30 s. At the end it
//! prints the samples, the drift of RSS from the first quarter of the run to its end, and
//! the tally (sent, delivered, lost, duplicated). Not run in CI: an hour is the point.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

mod common;

#[macro_use]
#[path = "../tests/it/wait.rs"]
mod wait;

#[path = "../tests/it/crowd.rs"]
#[allow(dead_code)]
mod crowd;

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<f64>().ok());
    let minutes = args.next().unwrap_or(60.0);
    let rate = args.next().unwrap_or(10.0).max(0.1);
    let system = actix_rt::System::new();
    system.block_on(soak(minutes, rate));
}

async fn soak(minutes: f64, rate: f64) {
    let emulator = stormbridge::emulator::Emulator::start(crowd::CrowdOptions::default().emulator)
        .await
        .expect("emulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("stormbridge.toml");
    let toml =
        crowd::crowd_toml(&emulator, &crowd::CrowdOptions::default()) + "[log]\nlevel = \"warn\"\n";
    std::fs::write(&config, toml).expect("config");
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<crowd::Seen>::new()));
    let bridge = {
        let seen = seen.clone();
        common::BridgeChild::start(&config, move |line| {
            seen.lock().push(crowd::Seen {
                console: "c1".into(),
                line: stormbridge::backends::console::unescape_line(&line),
            });
        })
    };
    let (pid, lines) = (bridge.pid(), bridge.lines.clone());
    assert!(
        eventually!(Duration::from_secs(30), emulator.stream_connections() >= 1),
        "the bridge never connected"
    );
    let total = Duration::from_secs_f64(minutes * 60.0);
    let every = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut sent = BTreeMap::new();
    let mut samples = vec![(Duration::ZERO, rss_mib(pid))];
    let mut next_sample = Duration::from_secs(30);
    let mut n = 0usize;
    while started.elapsed() < total {
        let direct = n % 3 == 2;
        let line = if direct {
            format!("/dm st2 run echo drill-{n}\n")
        } else {
            format!("!st2 run echo drill-{n}\n")
        };
        if lines.send(line).is_err() {
            break;
        }
        sent.insert(n, (0usize, direct));
        n += 1;
        if n.is_multiple_of((rate.ceil() as usize * 60).max(1)) {
            // Now and then StackStorm's stream is cut, as proxies do.
            emulator.drop_streams();
        }
        if started.elapsed() >= next_sample {
            let at = started.elapsed();
            let rss = rss_mib(pid);
            // A copy, so the reader of the bridge's output never waits on the tally.
            let lines = seen.lock().clone();
            let tally = crowd::Tally::of(&sent, &lines);
            println!(
                "{:6.1} min  RSS {rss:6.1} MiB  {tally}",
                at.as_secs_f64() / 60.0
            );
            samples.push((at, rss));
            // The next whole half-minute still ahead: a run slowed by a busy machine
            // samples less often rather than on every command.
            while next_sample <= started.elapsed() {
                next_sample += Duration::from_secs(30);
            }
        }
        tokio::time::sleep(every).await;
    }
    drop(lines);
    let settled = eventually!(Duration::from_secs(60), {
        crowd::Tally::of(&sent, &seen.lock()).unanswered() == 0
    });
    let tally = crowd::Tally::of(&sent, &seen.lock());
    bridge.stop().await;
    let quarter = samples
        .iter()
        .find(|(at, _)| at.as_secs_f64() >= total.as_secs_f64() / 4.0)
        .map_or(0.0, |(_, rss)| *rss);
    let last = samples.last().map_or(0.0, |(_, rss)| *rss);
    let peak = samples.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    println!(
        "soak: {minutes} min at {rate} commands/s; bridge RSS {quarter:.1} MiB after a quarter, \
         {last:.1} MiB at the end (drift {:+.1} MiB), peak {peak:.1} MiB",
        last - quarter
    );
    println!("  {tally}{}", if settled { "" } else { " (not settled)" });
    if tally.lost > 0 || tally.duplicated > 0 || tally.misrouted > 0 {
        std::process::exit(1);
    }
}
