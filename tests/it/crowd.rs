//! `Crowd`: several people at once against one bridge and one StackStorm emulator, and the
//! tally of what each command got back. Used by the fault drills (`drills.rs`) and by
//! `cargo bench --bench drill` (which includes this file by path).
//!
//! Each person is a console connection of their own (`[[chat]]` named `c1`, `c2`, …, user
//! `u1` in room `room1`, …), so a result posted to the wrong connection is caught. Every
//! command is `run echo drill-<n>`: its acknowledgement names `run echo drill-<n>`, its
//! result carries `drill-<n>` as the command's output, and its error (when StackStorm
//! refused it) names the command too, so each line is attributed to exactly one command.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};
use stormbridge::backends::registry::REGISTRY;

use parking_lot::Mutex;
use stormbridge::{
    app::{self, AppOptions, RunningApp},
    backends::console::{unescape_line, ConsoleIo},
    config,
    emulator::{Emulator, EmulatorConfig},
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

/// One line a console printed.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which console (connection name).
    pub console: String,
    /// The line, unescaped.
    pub line: String,
}

/// How the crowd is set up.
pub struct CrowdOptions {
    /// The emulator's configuration.
    pub emulator: EmulatorConfig,
    /// How many people (console connections).
    pub people: usize,
    /// Extra TOML for the bridge's configuration (sections not already written).
    pub extra_toml: String,
    /// Extra keys for the `[st2]` section.
    pub st2_toml: String,
    /// `st2.stream_idle_refresh`, seconds (0: never).
    pub idle_refresh: u64,
}

impl Default for CrowdOptions {
    fn default() -> Self {
        Self {
            emulator: EmulatorConfig {
                heartbeat: Duration::from_secs(1),
                background_interval: Some(Duration::from_millis(200)),
                web_url: Some("https://st2.test".into()),
                execution_delay: Duration::from_millis(30),
                ..EmulatorConfig::default()
            },
            people: 3,
            extra_toml: String::new(),
            st2_toml: String::new(),
            idle_refresh: 3,
        }
    }
}

/// The bridge's configuration for a crowd of `people` against `emulator`.
pub fn crowd_toml(emulator: &Emulator, opts: &CrowdOptions) -> String {
    let mut toml = format!(
        r#"
[st2]
api_url = "{api}"
auth_url = "{auth}"
stream_url = "{stream}"
stream_heartbeat = 1
stream_idle_refresh = {refresh}
request_timeout = 5
{st2}
[st2.credentials]
username = "st2admin"
password = "Ch@ngeMe"
[http]
listen = "127.0.0.1:0"
[access]
default = "allow"
[supervisor]
restart_backoff_initial_ms = 50
restart_backoff_max_ms = 400
[results]
first_check = 1
grace = 1
max_check_interval = 2
{extra}
"#,
        api = emulator.api_url(),
        auth = emulator.auth_url(),
        stream = emulator.stream_url(),
        st2 = opts.st2_toml,
        refresh = opts.idle_refresh,
        extra = opts.extra_toml,
    );
    // One console is all a configuration file may have (there is one standard input); the
    // others are added to the validated settings by `Crowd::start`.
    toml.push_str(
        "[[chat]]\nname = \"c1\"\nbackend = \"console\"\nuser_id = \"u1\"\nuser_name = \"User 1\"\nroom = \"room1\"\n",
    );
    toml
}

/// Adds consoles `c2`…`c<people>` (users `u2`…, rooms `room2`…) like `c1`.
fn add_people(settings: &mut config::Settings, people: usize) {
    let Some(first) = settings.chat.first().cloned() else {
        return;
    };
    for i in 2..=people {
        let mut chat = first.clone();
        chat.name = format!("c{i}");
        if let Some(base) = chat
            .backend
            .as_any()
            .downcast_ref::<stormbridge::backends::console::ConsoleSettings>()
        {
            let mut console = base.clone();
            console.user_id = format!("u{i}");
            console.user_name = format!("User {i}");
            console.room = format!("room{i}");
            chat.backend = std::sync::Arc::new(console);
        }
        settings.chat.push(chat);
    }
}

/// A running crowd.
pub struct Crowd {
    /// The StackStorm emulator.
    pub emulator: Emulator,
    /// The bridge.
    pub app: RunningApp,
    inputs: Vec<DuplexStream>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Commands sent so far, by number: (console index, direct message?).
    pub sent: BTreeMap<usize, (usize, bool)>,
}

impl Crowd {
    /// Starts an emulator and a bridge with `opts.people` consoles, and waits until the
    /// bridge is ready.
    pub async fn start(opts: CrowdOptions) -> Self {
        let emulator = Emulator::start(opts.emulator.clone())
            .await
            .expect("emulator starts");
        let mut settings = config::load_from_str(&crowd_toml(&emulator, &opts), &REGISTRY)
            .unwrap_or_else(|e| panic!("crowd config invalid: {e}"));
        add_people(&mut settings, opts.people);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut consoles = HashMap::new();
        let mut inputs = Vec::new();
        for i in 1..=opts.people {
            let name = format!("c{i}");
            let (bot_in, input) = tokio::io::duplex(1 << 20);
            let (bot_out, output) = tokio::io::duplex(1 << 20);
            consoles.insert(
                name.clone(),
                ConsoleIo {
                    input: Box::new(bot_in),
                    output: Box::new(bot_out),
                    terminal: false,
                },
            );
            inputs.push(input);
            let seen = seen.clone();
            actix_rt::spawn(async move {
                let mut lines = BufReader::new(output).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    seen.lock().push(Seen {
                        console: name.clone(),
                        line: unescape_line(&line),
                    });
                }
            });
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
        let crowd = Self {
            emulator,
            app,
            inputs,
            seen,
            sent: BTreeMap::new(),
        };
        crowd.wait_ready().await;
        crowd
    }

    /// Waits (bounded) until `/ready` says 200.
    pub async fn wait_ready(&self) {
        let client = awc::Client::default();
        let url = format!("http://{}/ready", self.app.http_addr);
        let ready = eventually!(Duration::from_secs(15), {
            client
                .get(url.as_str())
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200)
        });
        assert!(ready, "the bridge never became ready");
    }

    /// Person `who` (0-based) sends command number `n`, in their room or as a direct
    /// message.
    pub async fn command(&mut self, who: usize, n: usize, direct: bool) {
        let line = if direct {
            format!("/dm st2 run echo drill-{n}\n")
        } else {
            format!("!st2 run echo drill-{n}\n")
        };
        let input = &mut self.inputs[who];
        input
            .write_all(line.as_bytes())
            .await
            .expect("console input");
        self.sent.insert(n, (who, direct));
    }

    /// Waits (bounded) until StackStorm's stream has a connection open.
    pub async fn wait_stream(&self) {
        assert!(
            eventually!(
                Duration::from_secs(10),
                self.emulator.stream_connections() >= 1
            ),
            "the stream never reconnected"
        );
    }

    /// Waits (bounded) until every command sent so far was acknowledged or refused.
    pub async fn wait_acknowledged(&self) {
        let answered = |seen: &[Seen]| {
            self.sent.keys().all(|n| {
                let command = format!("`run echo drill-{n}`");
                seen.iter().any(|s| s.line.contains(&command))
            })
        };
        assert!(
            eventually!(Duration::from_secs(15), answered(&self.seen())),
            "commands were not acknowledged in time"
        );
    }

    /// The stream-cut drill: `cuts` times, two more commands (from the people in turn, every
    /// third a direct message), a random moment, then a cut of the live stream — a third of
    /// them in the middle of an event.
    pub async fn cut_under_load(&mut self, cuts: usize) {
        let people = self.inputs.len();
        for cut in 0..cuts {
            for _ in 0..2 {
                let n = self.sent.len();
                self.command(n % people, n, n % 3 == 2).await;
            }
            tokio::time::sleep(Duration::from_millis(fastrand::u64(5..60))).await;
            // Cut a live stream each time (not the gap between two).
            self.wait_stream().await;
            if cut % 3 == 0 {
                self.emulator.cut_streams_mid_event();
            } else {
                self.emulator.drop_streams();
            }
        }
    }

    /// Every line printed so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// The tally of every command sent so far.
    pub fn tally(&self) -> Tally {
        Tally::of(&self.sent, &self.seen())
    }

    /// Waits until every command sent has its result or its error, or `limit` passes;
    /// returns the tally either way.
    pub async fn settle(&self, limit: Duration) -> Tally {
        eventually!(limit, self.tally().unanswered() == 0);
        // Anything still to come would be a duplicate: give it a moment to show.
        let quiet = Duration::from_millis(500);
        let mut last = self.seen.lock().len();
        let _ = eventually!(Duration::from_secs(5), {
            tokio::time::sleep(quiet).await;
            let now = self.seen.lock().len();
            let still = now == last;
            last = now;
            still
        });
        self.tally()
    }

    /// The value of one metric line of the bridge, or 0.
    pub async fn metric(&self, series: &str) -> f64 {
        let url = format!("http://{}/metrics", self.app.http_addr);
        let Ok(mut resp) = awc::Client::default().get(url).send().await else {
            return 0.0;
        };
        let body = resp.body().await.unwrap_or_default();
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// What the commands got back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Commands sent.
    pub sent: usize,
    /// Commands whose result was posted exactly once, where it belonged.
    pub delivered: usize,
    /// Commands StackStorm refused (or that could not be sent), said plainly.
    pub refused: usize,
    /// Commands with neither result nor error.
    pub lost: usize,
    /// Results posted more than once (each extra copy counts).
    pub duplicated: usize,
    /// Results posted to another person's console or to the wrong kind of room.
    pub misrouted: usize,
    /// Notices that a result will not come (`result_lost`), not attributable to a command.
    pub given_up: usize,
    /// Commands numbers that were lost, for the failure message.
    pub lost_ids: Vec<usize>,
}

impl Tally {
    /// The tally of `sent` (number → (console index, direct?)) in `seen`. Linear in both:
    /// each line is read once for the commands it names (an hour's soak sees tens of
    /// thousands of each).
    pub fn of(sent: &BTreeMap<usize, (usize, bool)>, seen: &[Seen]) -> Self {
        let mut t = Tally {
            sent: sent.len(),
            ..Tally::default()
        };
        t.given_up = seen
            .iter()
            .filter(|s| {
                s.line.contains("I was restarted while sending")
                    || s.line.contains("I cannot show the result")
            })
            .count();
        // Per command number, its results and its errors.
        let mut results: std::collections::HashMap<usize, Vec<&Seen>> = Default::default();
        let mut errors: std::collections::HashMap<usize, usize> = Default::default();
        for s in seen {
            let result = s.line.contains("execution: ");
            let error = s.line.contains("Sorry, I couldn't run");
            if !result && !error {
                continue;
            }
            let mut named = drill_numbers(&s.line);
            named.sort_unstable();
            named.dedup();
            for n in named {
                if result {
                    results.entry(n).or_default().push(s);
                }
                if error {
                    *errors.entry(n).or_default() += 1;
                }
            }
        }
        for (&n, &(who, direct)) in sent {
            let results = results.remove(&n).unwrap_or_default();
            let errors = errors.get(&n).copied().unwrap_or(0);
            let console = format!("c{}", who + 1);
            for r in &results {
                let in_dm = r.line.contains("(dm)");
                if r.console != console || in_dm != direct {
                    t.misrouted += 1;
                }
            }
            match results.len() {
                0 if errors > 0 => t.refused += 1,
                0 => {
                    t.lost += 1;
                    t.lost_ids.push(n);
                }
                k => {
                    t.delivered += 1;
                    t.duplicated += k - 1;
                }
            }
        }
        t
    }

    /// Commands with neither a result nor an error nor a notice that might be theirs.
    pub fn unanswered(&self) -> usize {
        self.lost.saturating_sub(self.given_up)
    }
}

/// The numbers `n` of every `drill-<n>` in `line` (whole numbers: `drill-1` is not in
/// `drill-12`).
fn drill_numbers(line: &str) -> Vec<usize> {
    line.match_indices("drill-")
        .filter_map(|(i, m)| {
            let digits: &str = &line[i + m.len()..];
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse().ok()
        })
        .collect()
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent: {} delivered, {} refused with a clear error, {} lost, {} duplicated, {} misrouted, {} given up with a notice",
            self.sent, self.delivered, self.refused, self.lost, self.duplicated, self.misrouted, self.given_up
        )
    }
}
