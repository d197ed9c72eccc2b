//! The bridge binary run as a user runs it, for tests that kill and restart it: its
//! console on pipes, its configuration in a file, its HTTP endpoints scraped.

use std::time::Duration;

use crate::crowd::CrowdOptions;

/// Results posted from StackStorm's API rather than the stream.
pub const RECONCILED: &str = "stormbridge_results_delivered_total{source=\"reconciliation\"}";

/// One series of the bridge's `/metrics` on `port` (`None` when absent or unreachable).
pub async fn scrape(port: u16, series: &str) -> Option<f64> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut resp = awc::Client::default().get(url).send().await.ok()?;
    let body = resp.body().await.unwrap_or_default();
    String::from_utf8_lossy(&body).lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|v| v.trim().parse::<f64>().ok())
    })
}

/// Waits until the bridge on `port` answers `/ready` with 200.
pub async fn bridge_ready(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/ready");
    eventually!(Duration::from_secs(20), {
        awc::Client::default()
            .get(url.as_str())
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
}

/// A `[store]` table for an encrypted SQLite store in `dir` (`state.db`, its key, new and
/// random, in `store.key`).
pub fn sqlite_store_toml(dir: &std::path::Path) -> String {
    let key = dir.join("store.key");
    let key_hex: String = (0..32)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect();
    std::fs::write(&key, format!("{key_hex}\n")).expect("key file");
    format!(
        "[store]\nbackend = \"sqlite\"\npath = \"{}\"\nkey_file = \"{}\"\n",
        dir.join("state.db").display(),
        key.display()
    )
}

/// Results the store [`sqlite_store_toml`] made in `dir` still owes chat: not posted, or
/// posted but not yet recorded as posted.
pub async fn owed_in_sqlite(dir: &std::path::Path) -> Option<usize> {
    let (db, key) = (dir.join("state.db"), dir.join("store.key"));
    tokio::task::spawn_blocking(move || {
        let key = stormbridge::store::StoreKey::from_file(&key).ok()?;
        let store = stormbridge::store::SessionStore::open_sqlite(&db, &key).ok()?;
        let owed = store.results().load().ok()?;
        Some(owed.iter().filter(|r| r.delivered_at.is_none()).count())
    })
    .await
    .ok()?
}

/// Marks every result the store in `dir` records as posted as owed again, as a bridge
/// killed after posting a result and before recording that leaves it; how many.
pub async fn owe_again_in_sqlite(dir: &std::path::Path) -> Option<usize> {
    let (db, key) = (dir.join("state.db"), dir.join("store.key"));
    tokio::task::spawn_blocking(move || {
        let key = stormbridge::store::StoreKey::from_file(&key).ok()?;
        let store = stormbridge::store::SessionStore::open_sqlite(&db, &key).ok()?;
        let results = store.results();
        let posted: Vec<_> = results
            .load()
            .ok()?
            .into_iter()
            .filter(|r| r.delivered_at.is_some())
            .collect();
        for r in &posted {
            results.set_delivered(&r.request_id, None).ok()?;
        }
        Some(posted.len())
    })
    .await
    .ok()?
}

/// A configuration file for the bridge binary on `port` with an encrypted SQLite store in
/// `dir`: `crowd_toml` (one console) plus `extra`.
pub fn binary_config(
    dir: &std::path::Path,
    emulator: &stormbridge::emulator::Emulator,
    port: u16,
    extra: &str,
) -> std::path::PathBuf {
    let config = dir.join("stormbridge.toml");
    let toml = crate::crowd::crowd_toml(emulator, &CrowdOptions::default()).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    ) + &sqlite_store_toml(dir)
        + &format!("[log]\nlevel = \"warn\"\n{extra}\n");
    std::fs::write(&config, toml).expect("config");
    config
}

/// The bridge binary with a console on pipes: what it prints, line by line.
pub struct BridgeProcess {
    pub process: crate::support::Process,
    stdin: std::process::ChildStdin,
}

impl BridgeProcess {
    pub fn start(
        config: &std::path::Path,
        seen: &std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
    ) -> Self {
        use std::io::BufRead as _;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stormbridge"));
        cmd.arg("--config")
            .arg(config)
            .arg("run")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            });
        let mut child = cmd.spawn().expect("the bridge binary starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen.lock()
                    .push(stormbridge::backends::console::unescape_line(&line));
            }
        });
        let mut process = crate::support::Process::default();
        process.adopt(child);
        Self { process, stdin }
    }

    pub fn say(&mut self, line: &str) {
        use std::io::Write as _;
        // A write to a bridge that was just killed fails; the command was never sent.
        let _ = self.stdin.write_all(format!("{line}\n").as_bytes());
        let _ = self.stdin.flush();
    }
}
