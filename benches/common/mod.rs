//! What the benchmarks share: 10,000 generated, realistic aliases.

use stormbridge::alias::model::{ActionAlias, AliasFormat, FormatObject, Representation};

pub const PACKS: &[&str] = &[
    "ops",
    "k8s",
    "aws",
    "gcp",
    "jira",
    "nagios",
    "pagerduty",
    "github",
    "jenkins",
    "consul",
    "vault",
    "docker",
    "ansible",
    "terraform",
    "datadog",
    "sensu",
    "slack",
    "zabbix",
    "mysql",
    "redis",
    "nginx",
    "haproxy",
    "elastic",
    "kafka",
    "rabbitmq",
    "puppet",
    "salt",
    "chef",
    "openstack",
    "vsphere",
    "netbox",
    "servicenow",
    "splunk",
    "grafana",
    "prometheus",
    "git",
    "npm",
    "pypi",
    "helm",
    "argo",
];
pub const VERBS: &[&str] = &[
    "deploy", "restart", "get", "list", "show", "create", "delete", "scale", "rollback", "ack",
    "silence", "run", "exec", "ping", "status", "describe", "tail", "open", "close", "assign",
    "start", "stop", "check", "sync", "backup", "restore", "promote", "drain", "cordon", "page",
];
pub const NOUNS: &[&str] = &[
    "service",
    "host",
    "pod",
    "pods",
    "node",
    "cluster",
    "instance",
    "bucket",
    "ticket",
    "issue",
    "alert",
    "build",
    "job",
    "pipeline",
    "release",
    "app",
    "database",
    "queue",
    "topic",
    "user",
    "key",
    "secret",
    "volume",
    "image",
    "container",
    "vm",
    "stack",
    "record",
    "incident",
    "check",
];

pub fn pick<'a>(list: &'a [&'a str], n: usize) -> &'a str {
    list[n % list.len()]
}

/// 10,000 aliases: mostly `<pack> <verb> <noun> …` and `<verb> <noun> …` shapes with
/// placeholders and defaults, some object formats with several representations,
/// and a few percent of regex-heavy formats (leading placeholder, alternation,
/// case-insensitive, user anchors).
#[allow(dead_code)]
pub fn generate(n: usize) -> Vec<ActionAlias> {
    generate_range(0..n)
}

/// Aliases `range` of [`generate`]'s list.
pub fn generate_range(range: std::ops::Range<usize>) -> Vec<ActionAlias> {
    range
        .map(|i| {
            let pack = pick(PACKS, i);
            let verb = pick(VERBS, i / PACKS.len());
            let noun = pick(NOUNS, i / (PACKS.len() * VERBS.len()) + i * 7);
            let tag = i % 97;
            let formats = match i % 50 {
                0 => vec![AliasFormat::Plain(format!(
                    "{{{{target}}}} {verb} {noun} {tag}"
                ))],
                1 => vec![AliasFormat::Plain(format!(
                    "(?i){pack} {verb} {noun}{tag} {{{{name}}}}"
                ))],
                2 => vec![AliasFormat::Plain(format!(
                    r"^\s*{pack}-{verb}-{tag} (?P<ticket>[A-Z]+-\d+)\s*$"
                ))],
                3..=9 => vec![AliasFormat::Object(Box::new(FormatObject {
                    display: Some(format!("{pack} {verb} {noun}{tag} <name> [on <env>]")),
                    representation: Some(Representation::Many(vec![
                        format!("{pack} {verb} {noun}{tag} {{{{name}}}}"),
                        format!("{pack} {verb} {noun}{tag} {{{{name}}}} on {{{{env=staging}}}}"),
                    ])),
                    match_multiple: false,
                }))],
                10..=29 => vec![AliasFormat::Plain(format!(
                    "{pack} {verb} {noun}{tag} {{{{name}}}} {{{{count=1}}}}"
                ))],
                _ => vec![
                    AliasFormat::Plain(format!("{verb} {noun}{tag} {{{{name}}}} in {pack}")),
                    AliasFormat::Plain(format!(
                        "{verb} (?:the )?{noun}{tag} {{{{name}}}} in {pack} with {{{{opts}}}}"
                    )),
                ],
            };
            ActionAlias {
                id: Some(format!("{i:024x}")),
                name: format!("{verb}_{noun}_{tag}_{i}"),
                pack: pack.to_string(),
                reference: format!("{pack}.{verb}_{noun}_{tag}_{i}"),
                description: Some(format!("{verb} a {noun}")),
                action_ref: format!("{pack}.{verb}_{noun}"),
                formats,
                ..ActionAlias::default()
            }
        })
        .collect()
}

/// A command that matches alias `i` of [`generate`], for the aliases of the common
/// `<pack> <verb> <noun><tag> {{name}} {{count=1}}` shape (`i % 50` in `10..=29`).
#[allow(dead_code)]
pub fn command_for(i: usize) -> Option<String> {
    (10..=29).contains(&(i % 50)).then(|| {
        format!(
            "{} {} {}{} web-frontend 3",
            pick(PACKS, i),
            pick(VERBS, i / PACKS.len()),
            pick(NOUNS, i / (PACKS.len() * VERBS.len()) + i * 7),
            i % 97
        )
    })
}

/// [`generate`]'d aliases as `GET /api/v1/actionalias?limit=-1` sends them: with the
/// fields StackStorm adds (`uid`, `metadata_file`) and some `ack`/`result` settings.
#[allow(dead_code)]
pub fn wire_json(n: usize) -> Vec<u8> {
    wire_json_range(0..n)
}

/// [`wire_json`] of aliases `range` only: one page of `GET /api/v1/actionalias?limit=…&offset=…`.
#[allow(dead_code)]
pub fn wire_json_range(range: std::ops::Range<usize>) -> Vec<u8> {
    // Item by item, so that generating the body does not itself need a JSON tree of it.
    let mut body = b"[".to_vec();
    let first = range.start;
    for (i, a) in (first..).zip(generate_range(range)) {
        if i > first {
            body.push(b',');
        }
        let item = {
            let mut v = serde_json::to_value(&a).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "uid".into(),
                    format!("action_alias:{}:{}", a.pack, a.name).into(),
                );
                o.insert(
                    "metadata_file".into(),
                    format!("aliases/{}.yaml", a.name).into(),
                );
                if i % 4 == 0 {
                    o.insert(
                        "ack".into(),
                        serde_json::json!({"format": "Running {{ execution.id }}", "append_url": false}),
                    );
                    o.insert(
                        "result".into(),
                        serde_json::json!({"format": "{{ execution.result.stdout }}"}),
                    );
                }
            }
            v
        };
        serde_json::to_writer(&mut body, &item).unwrap_or_default();
    }
    body.push(b']');
    body
}

/// The bridge binary (`stormbridge --config CONFIG run`) with its console on pipes.
#[allow(dead_code)]
pub struct BridgeChild {
    child: std::process::Child,
    /// Lines for the bridge's console (each ends with `\n`).
    pub lines: std::sync::mpsc::Sender<String>,
    writer: std::thread::JoinHandle<()>,
}

/// How long [`BridgeChild::stop`] lets the bridge shut down before killing it (long enough
/// for one running under valgrind).
#[allow(dead_code)]
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

#[allow(dead_code)]
impl BridgeChild {
    /// Starts the binary with `config`; every line it writes goes to `each_line`, on a thread
    /// of its own. Lines for it are written from another thread: a blocking write on the
    /// caller's would stall an emulator living there whenever the bridge holds its input
    /// back, and the bridge would then be waiting on a StackStorm that cannot answer.
    pub fn start(
        config: &std::path::Path,
        mut each_line: impl FnMut(String) + Send + 'static,
    ) -> BridgeChild {
        use std::io::{BufRead as _, Write as _};
        // `STORMBRIDGE_BENCH_WRAPPER`: a command the bridge runs under (words split at
        // spaces), e.g. valgrind's callgrind for deploy/link-order/profile, or heaptrack.
        let wrapper = std::env::var("STORMBRIDGE_BENCH_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let bridge = env!("CARGO_BIN_EXE_stormbridge");
        let mut command = std::process::Command::new(words.next().unwrap_or(bridge));
        if !wrapper.trim().is_empty() {
            command.args(words).arg(bridge);
        }
        let mut child = command
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the bridge binary starts");
        let (lines, to_write) = std::sync::mpsc::channel::<String>();
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || {
            for line in to_write {
                if stdin.write_all(line.as_bytes()).is_err() {
                    eprintln!("the bridge stopped reading its input");
                    return;
                }
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                each_line(line);
            }
        });
        BridgeChild {
            child,
            lines,
            writer,
        }
    }

    /// The process id (for its RSS).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process as a service manager does (SIGTERM: the bridge shuts down, and a
    /// tool it runs under writes its report), killing it after [`STOP_GRACE`]; then waits
    /// for it and the writer thread.
    pub async fn stop(mut self) {
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = std::time::Instant::now() + STOP_GRACE;
        while terminated && std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.lines);
        let _ = self.writer.join();
    }
}
