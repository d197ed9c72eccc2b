//! What the end-to-end benches share (`pipeline`, `xmpp`): the StackStorm emulator in a child
//! process, readiness, and CPU time read from `/proc`.

use std::{
    io::{BufRead, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use stormbridge::emulator::{Emulator, EmulatorConfig, Framing};

/// The emulator's child: an emulator on loopback, with no execution delay and a quiet bus,
/// reached as st2's services directly, until its standard input closes. Prints its API, auth
/// and stream URLs, one a line.
pub fn emulator_child() {
    let system = actix_rt::System::new();
    system.block_on(async {
        let emulator = Emulator::start(EmulatorConfig {
            execution_delay: Duration::ZERO,
            background_interval: None,
            heartbeat: Duration::from_secs(5),
            web_url: Some("https://st2.test".into()),
            framing: Framing::Direct,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        println!(
            "{}\n{}\n{}",
            emulator.api_url(),
            emulator.auth_url(),
            emulator.stream_url()
        );
        let _ = std::io::stdout().flush();
        until_stdin_closes().await;
        drop(emulator);
    });
}

/// Returns once the parent is gone (standard input closed).
pub async fn until_stdin_closes() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// This bench's binary again, with `args`, its standard input and output piped; killed
/// when dropped.
pub struct ChildProcess(pub Child);

impl ChildProcess {
    pub fn spawn(args: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("own path");
        Self(
            Command::new(exe)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("bench child starts"),
        )
    }

    /// The next `n` lines the child prints (anything it printed after them and already
    /// buffered is dropped: the children print nothing more).
    pub fn read_lines(&mut self, n: usize) -> Vec<String> {
        let out = self.0.stdout.take().expect("child stdout");
        let mut reader = std::io::BufReader::new(out);
        let lines = (0..n)
            .map(|_| {
                let mut line = String::new();
                reader.read_line(&mut line).expect("child output");
                assert!(!line.is_empty(), "the bench child ended early");
                line.trim_end().to_string()
            })
            .collect();
        self.0.stdout = Some(reader.into_inner());
        lines
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildProcess {
    // The bench's own thread, outside any arbiter: a short poll bounds the wait.
    #[allow(clippy::disallowed_methods)]
    fn drop(&mut self) {
        // Closing its input asks it to stop; the kill covers one that does not.
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// StackStorm's URLs, as the emulator child printed them.
pub struct Urls {
    pub api: String,
    pub auth: String,
    pub stream: String,
}

/// Starts the emulator child (the bench binary re-run with `--emulator-child`).
pub fn spawn_emulator() -> (ChildProcess, Urls) {
    let mut child = ChildProcess::spawn(&["--emulator-child"]);
    let mut lines = child.read_lines(3).into_iter();
    let mut next = || lines.next().expect("emulator URL");
    let urls = Urls {
        api: next(),
        auth: next(),
        stream: next(),
    };
    (child, urls)
}

/// The `[st2]`, `[http]`, `[access]` and `[log]` sections of a bench bridge's configuration.
pub fn st2_toml(urls: &Urls) -> String {
    format!(
        r#"
[st2]
api_url = "{api}"
auth_url = "{auth}"
stream_url = "{stream}"
stream_heartbeat = 5
request_timeout = 10
[st2.credentials]
username = "st2admin"
password = "Ch@ngeMe"
[http]
listen = "127.0.0.1:0"
[access]
default = "allow"
[log]
level = "warn"
"#,
        api = urls.api,
        auth = urls.auth,
        stream = urls.stream,
    )
}

/// Waits (at most 20 s) until the bridge at `addr` answers `/ready` with 200.
pub async fn wait_ready(addr: std::net::SocketAddr) {
    let client = awc::Client::default();
    let url = format!("http://{addr}/ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if client
            .get(url.as_str())
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the bridge never became ready");
}

/// The value at fraction `p` of sorted `latencies` (zero when there are none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// User + system CPU time of a process (`"self"` or a pid; see [`ticks`]).
pub fn cpu_time(pid: &str) -> Duration {
    ticks(pid, &[11, 12])
}

/// System CPU time of a process (see [`ticks`]).
pub fn sys_time(pid: &str) -> Duration {
    ticks(pid, &[12])
}

/// The sum of the CPU-time fields `which` of a process, from `/proc/<pid>/stat` (in clock
/// ticks of 10 ms: `sysconf(_SC_CLK_TCK)` is 100 on Linux).
fn ticks(pid: &str, which: &[usize]) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the `)`.
    let ticks: u64 = which
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}
