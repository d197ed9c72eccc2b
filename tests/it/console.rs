//! The console backend against bad input and hostile output: a line too long or not UTF-8 is
//! skipped and the console goes on; control characters in what the bot says are shown
//! escaped, never raw on the operator's terminal.
//!
//! These tests drive the console's `ConsoleIo` with raw bytes (`TestBridge::say` takes text),
//! and read its output raw, before `unescape_line`.

use std::time::Duration;

use stormbridge::{
    app::RunningApp, backends::console::unescape_line, domain::escape::needs_escape,
    emulator::Emulator,
};
use tokio::io::{AsyncWriteExt, BufReader, DuplexStream, Lines};

use crate::support::{
    captured_logs, init_test_log, settings_for, start_with_console_on, with_test_aliases, WAIT,
};

/// A bridge whose console input takes raw bytes and whose output is read raw.
struct RawConsole {
    _emulator: Emulator,
    app: RunningApp,
    input: DuplexStream,
    output: Lines<BufReader<DuplexStream>>,
    /// Raw output lines seen so far.
    seen: Vec<String>,
}

impl RawConsole {
    async fn start() -> Self {
        Self::start_on(false).await
    }

    /// A console that believes its output is a terminal.
    async fn start_on(terminal: bool) -> Self {
        init_test_log();
        let opts = with_test_aliases();
        let emulator = Emulator::start(opts.emulator.clone())
            .await
            .expect("emulator starts");
        let settings = settings_for(&emulator, &opts);
        let (app, input, output) = start_with_console_on(settings, terminal).await;
        let console = Self {
            _emulator: emulator,
            app,
            input,
            output,
            seen: Vec::new(),
        };
        let url = format!("http://{}/ready", console.app.http_addr);
        let ready = eventually!(WAIT, {
            awc::Client::default()
                .get(url.as_str())
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200)
        });
        assert!(ready, "the bridge never became ready");
        console
    }

    async fn type_bytes(&mut self, bytes: &[u8]) {
        self.input.write_all(bytes).await.expect("console input");
    }

    /// The next raw output line containing `needle` (after unescaping); panics after `WAIT`.
    async fn raw_line_containing(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.output.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(other) => panic!("console output ended: {other:?}"),
                Err(_) => panic!(
                    "no console line containing {needle:?}; seen: {:#?}",
                    self.seen
                ),
            };
            self.seen.push(line.clone());
            if unescape_line(&line).contains(needle) {
                return line;
            }
        }
    }

    /// The first raw line seen so far that contains `needle`.
    fn seen_line(&self, needle: &str) -> String {
        self.seen
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("no line with {needle:?} in {:#?}", self.seen))
    }

    /// Types `!st2 run echo <word>` and waits for the result that echoes it.
    async fn command_is_answered(&mut self, word: &str) {
        self.type_bytes(format!("!st2 run echo {word}\n").as_bytes())
            .await;
        self.raw_line_containing("Started").await;
        self.raw_line_containing(word).await;
    }
}

/// Bad-line warnings on the console: short, escaped, one line.
fn assert_short_warning(line: &str, why: &str) {
    assert!(line.contains(why), "{line}");
    assert!(line.contains("input line ignored ("), "{line}");
    assert!(
        line.len() < 300,
        "the bad line is echoed: {} bytes",
        line.len()
    );
    assert!(!line.chars().any(char::is_control), "{line:?}");
}

#[actix_rt::test]
async fn a_line_over_64_kib_is_skipped_and_commands_after_it_are_answered() {
    let mut console = RawConsole::start().await;
    let mut long = b"!st2 run echo ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 64 * 1024 + 100));
    long.push(b'\n');
    console.type_bytes(&long).await;
    console.command_is_answered("after-the-long-line").await;
    let warning = console.seen_line("longer than 65536 bytes");
    assert_short_warning(&warning, "longer than 65536 bytes");
    assert!(warning.contains("it began: !st2 run echo xxx"), "{warning}");
    // Twice in a row, and one that arrives in pieces, are skipped just the same.
    console.type_bytes(&long).await;
    console.type_bytes(&long[..40_000]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    console.type_bytes(&long[40_000..]).await;
    console.command_is_answered("after-three-long-lines").await;
    let warnings = console
        .seen
        .iter()
        .filter(|l| l.contains("longer than"))
        .count();
    assert_eq!(warnings, 3, "{:#?}", console.seen);
}

#[actix_rt::test]
async fn a_line_that_is_not_utf8_is_skipped_and_commands_after_it_are_answered() {
    let mut console = RawConsole::start().await;
    console
        .type_bytes(b"!st2 run echo caf\xe9 \x1b]0;pwned\x07\xff\xfe\n")
        .await;
    console.command_is_answered("after-the-bad-bytes").await;
    let warning = console.seen_line("not valid UTF-8");
    assert_short_warning(&warning, "not valid UTF-8");
    // The prefix is shown escaped: no ESC or BEL reaches the terminal.
    assert!(
        warning.contains("it began: !st2 run echo caf\u{fffd} \\u{1b}]0;pwned\\u{7}"),
        "{warning}"
    );
    // The log says so too, on one line, escaped.
    if std::env::var_os("TEST_LOG").is_none() {
        let logs = captured_logs();
        let logged = logs
            .lines()
            .find(|l| l.contains("console input line skipped") && l.contains("not valid UTF-8"))
            .unwrap_or_else(|| panic!("no warning in the log"));
        assert!(logged.contains("pwned\\u{7}"), "{logged}");
        assert!(!logged.chars().any(needs_escape), "{logged:?}");
    }
}

#[actix_rt::test]
async fn control_characters_in_what_the_bot_says_are_shown_escaped() {
    let mut console = RawConsole::start().await;
    // The emulator echoes the text back as the result: ESC sequences (7- and 8-bit CSI), BEL,
    // DEL and a bidi override, as an announcement from StackStorm could carry them.
    let hostile = "marker\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{7f}\u{202e}gpj.exe\u{2066}";
    console
        .type_bytes(format!("!st2 run echo {hostile}\n").as_bytes())
        .await;
    console.raw_line_containing("Started").await;
    let raw = console.raw_line_containing(hostile).await;
    assert!(
        !raw.chars().any(needs_escape),
        "raw on the terminal: {raw:?}"
    );
    assert!(
        raw.contains(
            "marker\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{9b}31m\\u{7f}\\u{202e}gpj.exe\\u{2066}"
        ),
        "{raw}"
    );
    for line in &console.seen {
        assert!(!line.chars().any(needs_escape), "{line:?}");
    }
}

#[actix_rt::test]
async fn on_a_terminal_a_result_is_printed_as_lines_and_on_a_pipe_as_one() {
    let mut tty = RawConsole::start_on(true).await;
    tty.type_bytes(b"!st2 run uname\n").await;
    tty.raw_line_containing("Started").await;
    // The result's first line is its head; its lines follow, indented, none escaped.
    tty.raw_line_containing("#ops: Alice:").await;
    let status = tty.raw_line_containing("status : succeeded").await;
    assert_eq!(status, "    status : succeeded", "{:#?}", tty.seen);
    let stdout = tty.raw_line_containing("stdout : Linux").await;
    assert_eq!(stdout, "    stdout : Linux");

    let mut pipe = RawConsole::start().await;
    pipe.type_bytes(b"!st2 run uname\n").await;
    let result = pipe.raw_line_containing("status : succeeded").await;
    assert!(
        result.starts_with("[stormbridge] #ops: Alice: ")
            && result.contains(r"\nstatus : succeeded\n"),
        "one escaped line: {result}"
    );
}
