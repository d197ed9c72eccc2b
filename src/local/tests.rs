//! End-to-end runs of real programs through [`run`]. Every wait is bounded.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    sync::mpsc::{unbounded_channel, UnboundedReceiver},
    time::{sleep, timeout, Instant},
};

use super::*;

/// The most any test run may take before the test fails instead of hanging.
const BOUND: Duration = Duration::from_secs(15);

fn command(program: &str, args: &[&str]) -> LocalCommandConfig {
    let mut c = LocalCommandConfig::new("test", program, "a test command");
    c.args = args.iter().map(|a| (*a).to_owned()).collect();
    c
}

/// `sh -c script sh extra…`: `$1`… are `extra`.
fn shell(script: &str, extra: &[&str]) -> LocalCommandConfig {
    let mut args = vec!["-c", script, "sh"];
    args.extend_from_slice(extra);
    command("/bin/sh", &args)
}

fn parent_env() -> Vec<(OsString, OsString)> {
    vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))]
}

fn invocation(c: &LocalCommandConfig, user_args: &[&str]) -> Invocation {
    Invocation::with_parent_env(
        c,
        user_args.iter().map(|a| (*a).to_owned()).collect(),
        parent_env(),
        &[],
    )
    .with_kill_grace(Duration::from_millis(500))
}

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

fn collected(rx: &mut UnboundedReceiver<OutputChunk>) -> String {
    let mut text = String::new();
    while let Ok(chunk) = rx.try_recv() {
        text.push_str(&chunk.text);
    }
    text
}

/// Runs to the end; the outcome and all output.
async fn run_all(inv: Invocation) -> (LocalOutcome, String) {
    let (tx, mut rx) = unbounded_channel();
    let outcome = bounded("run", run(inv, tx, CancelHandle::new())).await;
    (outcome, collected(&mut rx))
}

/// Whether a process is alive: it exists and is not a zombie (an orphan the container's
/// init has not reaped yet is dead for our purpose).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (bounded) until none of `pids` is alive; false if some still are.
async fn all_gone(pids: &[i32]) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if !pids.iter().any(|&p| alive(p)) {
            return true;
        }
        sleep(Duration::from_millis(20)).await;
    }
    false
}

fn pids_in(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Waits (bounded) until `file` lists `n` pids.
async fn wait_for_pids(file: &Path, n: usize) -> Vec<i32> {
    let until = Instant::now() + BOUND;
    loop {
        let pids = pids_in(file);
        if pids.len() >= n {
            return pids;
        }
        assert!(
            Instant::now() < until,
            "{} never listed {n} pids",
            file.display()
        );
        sleep(Duration::from_millis(20)).await;
    }
}

fn pid_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pids");
    (dir, file)
}

#[tokio::test]
async fn output_is_streamed_while_the_command_runs() {
    let c = shell("echo first; sleep 1; echo second", &[]);
    let (tx, mut rx) = unbounded_channel();
    let running = run(invocation(&c, &[]), tx, CancelHandle::new());
    tokio::pin!(running);
    let first = bounded("first chunk", async {
        tokio::select! {
            chunk = rx.recv() => chunk,
            outcome = &mut running => panic!("ended before any output: {outcome:?}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(first.text, "first\n");
    // The command is still sleeping: nothing else has arrived and the run goes on.
    assert!(rx.try_recv().is_err());
    let outcome = bounded("run", &mut running).await;
    assert_eq!(outcome.status, LocalStatus::Exited(0));
    assert!(
        outcome.duration >= Duration::from_millis(900),
        "{outcome:?}"
    );
    assert_eq!(collected(&mut rx), "second\n");
}

#[tokio::test]
async fn a_partial_line_is_flushed_after_a_pause() {
    let c = shell("printf 'working...'; sleep 1; echo ' done'", &[]);
    let (tx, mut rx) = unbounded_channel();
    let running = run(invocation(&c, &[]), tx, CancelHandle::new());
    tokio::pin!(running);
    let first = bounded("partial chunk", async {
        tokio::select! {
            chunk = rx.recv() => chunk,
            outcome = &mut running => panic!("ended before any output: {outcome:?}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(first.text, "working...");
    let outcome = bounded("run", &mut running).await;
    assert!(outcome.status.succeeded());
    assert_eq!(collected(&mut rx), " done\n");
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let (outcome, _) = run_all(invocation(&shell("exit 3", &[]), &[])).await;
    assert_eq!(outcome.status, LocalStatus::Exited(3));
    let (outcome, _) = run_all(invocation(&command("/bin/echo", &[]), &[])).await;
    assert_eq!(outcome.status, LocalStatus::Exited(0));
    let (outcome, _) = run_all(invocation(&shell("kill -USR1 $$", &[]), &[])).await;
    assert_eq!(outcome.status, LocalStatus::Signalled(10));
    assert!(!outcome.leftovers_killed);
}

#[tokio::test]
async fn stdout_and_stderr_are_merged_in_order() {
    let c = shell("echo out1; echo err1 >&2; echo out2; echo err2 >&2", &[]);
    let (outcome, text) = run_all(invocation(&c, &[])).await;
    assert!(outcome.status.succeeded());
    assert_eq!(text, "out1\nerr1\nout2\nerr2\n");
}

#[tokio::test]
async fn nothing_is_expanded() {
    let literal = [
        "$HOME", "*", ";", "id", "`id`", "$(id)", "~", "a|b", ">x", "\\n",
    ];
    let (outcome, text) = run_all(invocation(&command("/bin/echo", &[]), &literal)).await;
    assert!(outcome.status.succeeded());
    assert_eq!(text, "$HOME * ; id `id` $(id) ~ a|b >x \\n\n");

    // From the chat text to argv, through the matcher.
    let mut printf = LocalCommandConfig::new("show", "/usr/bin/printf", "print arguments");
    printf.args = vec!["[%s]".into()];
    let commands = LocalCommands::new(vec![printf], &["help"]).unwrap();
    let found = commands
        .find(r#"show a "b c" $HOME * ;x 'd"e'"#)
        .unwrap()
        .unwrap();
    let inv = Invocation::with_parent_env(found.command, found.args, parent_env(), &[]);
    assert_eq!(
        inv.command_line(),
        r#"/usr/bin/printf [%s] a 'b c' $HOME * ;x 'd"e'"#
    );
    let (_, text) = run_all(inv).await;
    assert_eq!(text, r#"[a][b c][$HOME][*][;x][d"e]"#);
}

#[tokio::test]
async fn invalid_utf8_is_replaced() {
    let c = command("/usr/bin/printf", &[r"\377\376ok\n"]);
    let (outcome, text) = run_all(invocation(&c, &[])).await;
    assert!(outcome.status.succeeded());
    assert_eq!(text, "\u{FFFD}\u{FFFD}ok\n");
}

#[tokio::test]
async fn the_timeout_kills_the_whole_group() {
    let (_dir, file) = pid_file();
    let c = shell(
        r#"sleep 100 & echo $! > "$1"; sleep 100 & echo $! >> "$1"; echo $$ >> "$1"; wait"#,
        &[file.to_str().unwrap()],
    );
    let inv = invocation(&c, &[]).with_timeout(Duration::from_millis(700));
    let (outcome, _) = run_all(inv).await;
    assert_eq!(outcome.status, LocalStatus::TimedOut);
    assert!(outcome.duration < Duration::from_secs(3), "{outcome:?}");
    let pids = pids_in(&file);
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(all_gone(&pids).await, "still alive: {pids:?}");
}

#[tokio::test]
async fn sigterm_is_followed_by_sigkill() {
    let (_dir, file) = pid_file();
    // Both the shell and its child ignore SIGTERM.
    let c = shell(
        r#"trap '' TERM; sleep 100 & echo $! > "$1"; echo $$ >> "$1"; wait; wait"#,
        &[file.to_str().unwrap()],
    );
    let inv = invocation(&c, &[])
        .with_timeout(Duration::from_millis(500))
        .with_kill_grace(Duration::from_millis(300));
    let (outcome, _) = run_all(inv).await;
    assert_eq!(outcome.status, LocalStatus::TimedOut);
    assert!(
        outcome.duration >= Duration::from_millis(800),
        "{outcome:?}"
    );
    let pids = pids_in(&file);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(all_gone(&pids).await, "still alive: {pids:?}");
}

#[tokio::test]
async fn cancel_kills_the_whole_group() {
    let (_dir, file) = pid_file();
    let c = shell(
        r#"sleep 100 & echo $! > "$1"; echo $$ >> "$1"; echo started; wait"#,
        &[file.to_str().unwrap()],
    );
    let (tx, mut rx) = unbounded_channel();
    let cancel = CancelHandle::new();
    let running = run(invocation(&c, &[]), tx, cancel.clone());
    tokio::pin!(running);
    let started = bounded("started", async {
        tokio::select! {
            chunk = rx.recv() => chunk,
            outcome = &mut running => panic!("ended early: {outcome:?}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(started.text, "started\n");
    cancel.cancel();
    let outcome = bounded("canceled run", &mut running).await;
    assert_eq!(outcome.status, LocalStatus::Canceled);
    assert!(outcome.duration < Duration::from_secs(5), "{outcome:?}");
    let pids = pids_in(&file);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(all_gone(&pids).await, "still alive: {pids:?}");
}

#[tokio::test]
async fn a_cancel_before_the_start_runs_nothing() {
    let (_dir, file) = pid_file();
    let c = shell(r#"echo ran > "$1""#, &[file.to_str().unwrap()]);
    let (tx, _rx) = unbounded_channel();
    let cancel = CancelHandle::new();
    cancel.cancel();
    let outcome = bounded("run", run(invocation(&c, &[]), tx, cancel)).await;
    assert_eq!(outcome.status, LocalStatus::Canceled);
    assert!(!file.exists());
}

#[tokio::test]
async fn dropping_the_run_kills_the_group() {
    let (_dir, file) = pid_file();
    let c = shell(
        r#"sleep 100 & echo $! > "$1"; echo $$ >> "$1"; wait"#,
        &[file.to_str().unwrap()],
    );
    let (tx, _rx) = unbounded_channel();
    // Boxed, so that dropping it drops the future itself (not a pinned reference).
    let mut running = Box::pin(run(invocation(&c, &[]), tx, CancelHandle::new()));
    let pids = tokio::select! {
        pids = wait_for_pids(&file, 2) => pids,
        outcome = &mut running => panic!("ended early: {outcome:?}"),
    };
    drop(running);
    assert!(all_gone(&pids).await, "still alive: {pids:?}");
}

#[tokio::test]
async fn leftovers_are_stopped_when_the_leader_exits() {
    let (_dir, file) = pid_file();
    // One background process keeps the output pipe open, one does not.
    let c = shell(
        r#"sleep 100 & echo $! > "$1"; sleep 100 >/dev/null 2>&1 & echo $! >> "$1"; echo done"#,
        &[file.to_str().unwrap()],
    );
    let (outcome, text) = run_all(invocation(&c, &[])).await;
    assert_eq!(outcome.status, LocalStatus::Exited(0));
    assert!(outcome.leftovers_killed);
    assert!(outcome.duration < Duration::from_secs(3), "{outcome:?}");
    assert_eq!(text, "done\n");
    let pids = pids_in(&file);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(all_gone(&pids).await, "still alive: {pids:?}");
}

#[tokio::test]
async fn a_command_that_finishes_cleanly_is_not_reported_for_leftovers() {
    let (outcome, text) = run_all(invocation(&shell("sleep 0.1 & wait; echo ok", &[]), &[])).await;
    assert_eq!(outcome.status, LocalStatus::Exited(0));
    assert!(!outcome.leftovers_killed, "{outcome:?}");
    assert_eq!(text, "ok\n");
}

#[tokio::test]
async fn an_orphaned_zombie_is_not_a_leftover() {
    // `true` ends at once, and its parent (the exec'd `sleep`) never reaps it: once the
    // leader exits it is an orphan zombie in the group until init reaps it — late (here,
    // about a second later), or never (the bridge as a container's PID 1). The run must
    // not wait for that, nor report it.
    let c = shell("/bin/true & exec sleep 0.3", &[]);
    let inv = invocation(&c, &[]).with_kill_grace(Duration::from_secs(5));
    let (outcome, _) = run_all(inv).await;
    assert_eq!(outcome.status, LocalStatus::Exited(0));
    assert!(!outcome.leftovers_killed, "{outcome:?}");
    assert!(
        outcome.duration < Duration::from_millis(1200),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn output_is_capped_and_the_rest_counted() {
    let mut c = shell(
        "i=0; while [ $i -lt 1000 ]; do echo 0123456789; i=$((i+1)); done; exit 4",
        &[],
    );
    c.max_output_bytes = 100;
    let (outcome, text) = run_all(invocation(&c, &[])).await;
    assert_eq!(outcome.status, LocalStatus::Exited(4));
    assert_eq!(text.len(), 100);
    assert!(text.starts_with("0123456789\n0123456789\n"));
    assert!(outcome.output_truncated);
    assert_eq!(outcome.dropped_bytes, 11_000 - 100);
}

#[tokio::test]
async fn a_missing_executable_fails_to_start_clearly() {
    let c = command("/nonexistent/stormbridge-diag", &[]);
    let (outcome, text) = run_all(invocation(&c, &[])).await;
    let LocalStatus::FailedToStart(reason) = outcome.status else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.starts_with("cannot start /nonexistent/stormbridge-diag: not found"),
        "{reason}"
    );
    assert!(text.is_empty());
}

#[tokio::test]
async fn a_non_executable_file_fails_to_start_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let c = command(script.to_str().unwrap(), &[]);
    let (outcome, _) = run_all(invocation(&c, &[])).await;
    let LocalStatus::FailedToStart(reason) = outcome.status else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("permission denied"), "{reason}");
}

#[tokio::test]
async fn the_environment_is_passed_through_without_the_bridge_variables() {
    let mut c = command("/usr/bin/env", &[]);
    c.env = BTreeMap::from([("EXTRA".to_owned(), "2".to_owned())]);
    let parent = [
        ("PATH", "/usr/bin:/bin"),
        ("KEEP_ME", "1"),
        ("STORMBRIDGE__ST2__API_KEY", "s3cret-api-key"),
        ("STORMBRIDGE_CONFIG", "/etc/stormbridge.toml"),
        ("STORE_KEY", "s3cret-store-key"),
    ]
    .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let inv = Invocation::with_parent_env(&c, Vec::new(), parent, &[OsString::from("STORE_KEY")]);
    let (outcome, text) = run_all(inv).await;
    assert!(outcome.status.succeeded());
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["EXTRA=2", "KEEP_ME=1", "PATH=/usr/bin:/bin"]);
}

#[tokio::test]
async fn the_bridge_environment_is_the_default_parent() {
    let c = command("/usr/bin/env", &[]);
    let (_, text) = run_all(Invocation::new(&c, Vec::new(), &[])).await;
    if let Some(path) = std::env::var_os("PATH") {
        let expected = format!("PATH={}", path.to_string_lossy());
        assert!(text.lines().any(|l| l == expected), "{text}");
    }
    assert!(
        !text.lines().any(|l| l.starts_with("STORMBRIDGE_")),
        "{text}"
    );
}

#[tokio::test]
async fn the_working_directory_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command("/bin/pwd", &[]);
    c.working_dir = Some(dir.path().to_owned());
    let (outcome, text) = run_all(invocation(&c, &[])).await;
    assert!(outcome.status.succeeded());
    let real = dir.path().canonicalize().unwrap();
    assert_eq!(Path::new(text.trim_end()).canonicalize().unwrap(), real);

    c.working_dir = Some(dir.path().join("gone"));
    let (outcome, _) = run_all(invocation(&c, &[])).await;
    let LocalStatus::FailedToStart(reason) = outcome.status else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("working directory"), "{reason}");
}

#[actix_rt::test]
async fn runs_on_the_actix_runtime() {
    let (outcome, text) = run_all(invocation(&command("/bin/echo", &[]), &["hello"])).await;
    assert_eq!(outcome.status, LocalStatus::Exited(0));
    assert_eq!(text, "hello\n");
}
