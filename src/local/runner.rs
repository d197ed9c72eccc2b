//! Running one local command: fork/exec in a process group of its own, output streamed
//! as it arrives, a timeout and a cancel that stop the whole group.
//!
//! # How a run goes
//!
//! 1. The program is executed directly (no shell) with the argv and environment of an
//!    [`Invocation`], stdin `/dev/null`, and stdout and stderr both connected to **one**
//!    pipe, so the output keeps the exact order the command wrote it in (as in a
//!    terminal). The process is made the leader of a new process group
//!    (`process_group(0)`): everything it starts stays in that group unless it detaches
//!    itself (`setsid`).
//! 2. The output is read asynchronously and sent through a channel as [`OutputChunk`]s:
//!    whole lines at once, an unterminated line after
//!    [`PARTIAL_LINE_FLUSH`](super::output::PARTIAL_LINE_FLUSH). At most
//!    `max_output_bytes` are kept; the rest is still read (a command is never stalled on a
//!    full pipe) but only counted.
//! 3. On timeout or [`CancelHandle::cancel`], the whole group gets SIGTERM, and SIGKILL
//!    after the invocation's kill grace ([`KILL_GRACE`] by default) if anything in it is
//!    still alive.
//! 4. When the leader exits by itself, whatever else is still in its group (or still holds
//!    the output pipe) gets the kill grace to finish, then SIGTERM, then SIGKILL after
//!    another grace: nothing a local command starts outlives it
//!    ([`LocalOutcome::leftovers_killed`] says when this happened). A command that must
//!    start something long-lived has to detach it (`setsid`, `systemd-run`).
//!
//! A run therefore lasts at most `timeout + kill_grace + 1 s`. The leader is always reaped
//! (no zombie is left by the bridge); if the [`run`] future is dropped before it ends, the
//! group is sent SIGKILL and tokio reaps the leader in the background. The leader's own
//! children, orphaned when it exits, are reparented to the system's init, which reaps
//! them — in a container the bridge must not be PID 1 without an init (`docker run
//! --init`, tini), or they stay zombies; the runner does not count zombies as alive.
//!
//! The runner never blocks the executor (tokio's asynchronous child and pipe), never
//! panics on what a command prints (invalid UTF-8 becomes U+FFFD), and needs no actor:
//! it runs on any tokio runtime with I/O and time enabled, actix's included.
//!
//! Process groups are addressed by the leader's pid. Once the leader is reaped that
//! number stays reserved only while members of its group live, so signals to a group
//! whose last member just died could in principle reach a new group that reused the
//! number; the runner stops signalling as soon as it sees the group empty.

use std::{
    borrow::Cow,
    ffi::OsString,
    io,
    os::{fd::OwnedFd, unix::process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use rustix::process::{Pid, Signal};
use tokio::{
    io::AsyncReadExt,
    net::unix::pipe,
    process::{Child, Command},
    sync::mpsc::UnboundedSender,
    time::{sleep, sleep_until, timeout, Instant},
};
use tokio_util::sync::CancellationToken;

use super::{
    config::LocalCommandConfig,
    env::child_environment,
    group::ProcessGroup,
    output::{OutputBuffer, OutputChunk},
};

/// How long a process group gets between SIGTERM and SIGKILL, and how long stragglers
/// get after the leader exited, unless [`Invocation::with_kill_grace`] says otherwise.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// After SIGKILL: how long output still in the pipe is read before the run ends anyway
/// (a process outside the group may hold the pipe open).
const DRAIN: Duration = Duration::from_millis(500);

/// How often the group is checked for survivors once the leader and the pipe are done.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// Bytes read from the pipe at a time.
const READ_SIZE: usize = 8 * 1024;

/// Everything needed to run one local command: the resolved argv, environment and
/// limits. Built from a [`LocalCommandConfig`] and the user's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(OsString, OsString)>,
    working_dir: Option<PathBuf>,
    timeout: Duration,
    kill_grace: Duration,
    max_output_bytes: usize,
}

impl Invocation {
    /// The invocation of `command` with `user_args` appended to its fixed arguments, in
    /// the bridge's current environment minus its own variables and the names in `strip`
    /// (see [`super::env`]).
    pub fn new(command: &LocalCommandConfig, user_args: Vec<String>, strip: &[OsString]) -> Self {
        Self::with_parent_env(command, user_args, std::env::vars_os(), strip)
    }

    /// Like [`Invocation::new`], with `parent` standing for the bridge's environment
    /// (tests; callers that keep a snapshot of it).
    pub fn with_parent_env<I>(
        command: &LocalCommandConfig,
        user_args: Vec<String>,
        parent: I,
        strip: &[OsString],
    ) -> Self
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        let mut args = command.args.clone();
        args.extend(user_args);
        Self {
            program: command.executable.clone(),
            args,
            env: child_environment(parent, strip, &command.env),
            working_dir: command.working_dir.clone(),
            timeout: command.timeout(),
            kill_grace: KILL_GRACE,
            max_output_bytes: command.max_output_bytes,
        }
    }

    /// Overrides the timeout (normally the command's `timeout_secs`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Overrides the grace between SIGTERM and SIGKILL ([`KILL_GRACE`]).
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The program executed.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its arguments after the program: the fixed ones, then the user's.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Its complete environment, sorted by name.
    pub fn env(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// Its working directory; `None`: the bridge's.
    pub fn working_dir(&self) -> Option<&Path> {
        self.working_dir.as_deref()
    }

    /// How long it may run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The grace between SIGTERM and SIGKILL.
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace
    }

    /// The most output kept, in bytes.
    pub fn max_output_bytes(&self) -> usize {
        self.max_output_bytes
    }

    /// The command line for people (logs, the job's message): the program and each
    /// argument, quoted by [`super::args`]'s rules where needed, so that the user's part
    /// reads back as the same arguments. It is never executed as text.
    pub fn command_line(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        line
    }
}

/// `arg` written so that [`super::args::split_arguments`] reads it back as one argument.
fn quote(arg: &str) -> Cow<'_, str> {
    let plain = !arg.is_empty()
        && !arg
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'');
    if plain {
        return Cow::Borrowed(arg);
    }
    let mut out = String::with_capacity(arg.len() + 2);
    let mut open: Option<char> = None;
    for c in arg.chars() {
        let wanted = match c {
            '\'' => '"',
            '"' => '\'',
            _ => open.unwrap_or('\''),
        };
        if open != Some(wanted) {
            if let Some(q) = open {
                out.push(q);
            }
            out.push(wanted);
            open = Some(wanted);
        }
        out.push(c);
    }
    match open {
        Some(q) => out.push(q),
        None => out.push_str("''"),
    }
    Cow::Owned(out)
}

/// Asks a running local command to stop: its process group gets SIGTERM, then SIGKILL.
/// Cloneable; every clone cancels the same run. Cancelling before the run starts keeps it
/// from starting; cancelling after it ended does nothing.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(CancellationToken);

impl CancelHandle {
    /// A handle for a new run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the run (idempotent).
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether [`CancelHandle::cancel`] was called.
    pub fn is_canceled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes once [`CancelHandle::cancel`] is called.
    pub async fn canceled(&self) {
        self.0.cancelled().await;
    }
}

/// How a local command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalStatus {
    /// The program exited by itself with this code (0: success).
    Exited(i32),
    /// The program was ended by this signal, not sent by the bridge.
    Signalled(i32),
    /// It ran past its timeout and its process group was stopped.
    TimedOut,
    /// It was cancelled ([`CancelHandle::cancel`]) and its process group was stopped; also
    /// when the cancel came before it started.
    Canceled,
    /// It could not be started; the reason, for the user (e.g. `cannot start
    /// /usr/local/bin/diag: not found (…)`).
    FailedToStart(String),
    /// It ran, but its exit status could not be collected (something else in the bridge's
    /// process reaped it); not expected to happen.
    Unknown(String),
}

impl LocalStatus {
    /// Whether the command succeeded: exited with code 0.
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Exited(0))
    }
}

/// The result of a run. The output itself went through the channel given to [`run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOutcome {
    /// How it ended.
    pub status: LocalStatus,
    /// Whether output was dropped past `max_output_bytes`.
    pub output_truncated: bool,
    /// How many bytes were dropped past `max_output_bytes`.
    pub dropped_bytes: u64,
    /// Whether processes the command left running after its main process exited were
    /// stopped (SIGTERM, then SIGKILL if needed).
    pub leftovers_killed: bool,
    /// From the start (or the attempt to start) to the end of the run.
    pub duration: Duration,
}

/// Why the bridge stopped a still-running command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Canceled,
}

/// Where a run is after the start.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The leader runs; the timeout is pending.
    Running,
    /// The leader exited; the rest of the group and the pipe have until then to finish.
    Settling(Instant),
    /// SIGTERM was sent; SIGKILL follows then.
    Terminating(Instant),
    /// SIGKILL was sent (or nothing was left to signal); output is read until then.
    Draining(Instant),
}

/// The user-facing reason a spawn failed.
fn start_error(invocation: &Invocation, e: &io::Error) -> String {
    let program = invocation.program.display();
    if let Some(dir) = &invocation.working_dir {
        if !dir.is_dir() {
            return format!(
                "cannot start {program}: working directory {} does not exist",
                dir.display()
            );
        }
    }
    match e.kind() {
        io::ErrorKind::NotFound => format!(
            "cannot start {program}: not found (the file, or the interpreter its #! line \
             names) ({e})"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("cannot start {program}: permission denied ({e})")
        }
        _ => format!("cannot start {program}: {e}"),
    }
}

/// Runs `invocation` to its end, sending its output to `output` as it arrives, and says
/// how it ended. See the module documentation for the whole sequence.
///
/// `output` is unbounded, but at most `max_output_bytes` ever go through it per run. A
/// closed receiver does not stop the command: use `cancel` for that.
pub async fn run(
    invocation: Invocation,
    output: UnboundedSender<OutputChunk>,
    cancel: CancelHandle,
) -> LocalOutcome {
    let started = Instant::now();
    let not_run = |status: LocalStatus| LocalOutcome {
        status,
        output_truncated: false,
        dropped_bytes: 0,
        leftovers_killed: false,
        duration: started.elapsed(),
    };
    if cancel.is_canceled() {
        return not_run(LocalStatus::Canceled);
    }
    let (reader, writer) = match io::pipe() {
        Ok(pair) => pair,
        Err(e) => return not_run(LocalStatus::FailedToStart(format!("no output pipe: {e}"))),
    };
    let writer_for_stderr = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return not_run(LocalStatus::FailedToStart(format!("no output pipe: {e}"))),
    };
    let mut command = Command::new(&invocation.program);
    command
        .args(&invocation.args)
        .env_clear()
        .envs(invocation.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_for_stderr)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &invocation.working_dir {
        command.current_dir(dir);
    }
    let spawned = command.spawn();
    // The command holds the pipe's write ends: only the child may keep them, or the pipe
    // would never report the end of the output.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let reason = start_error(&invocation, &e);
            tracing::debug!(
                program = %invocation.program.display(),
                %reason,
                "local command did not start"
            );
            return not_run(LocalStatus::FailedToStart(reason));
        }
    };
    let Some(pgid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
    else {
        // Not reachable: a child just spawned has a pid. Leave it to kill_on_drop.
        return not_run(LocalStatus::FailedToStart(
            "the started process has no pid".to_owned(),
        ));
    };
    let mut group = ProcessGroup::new(pgid);
    tracing::debug!(
        pid = pgid.as_raw_pid(),
        program = %invocation.program.display(),
        "local command started"
    );
    let reader = match pipe::Receiver::from_owned_fd(OwnedFd::from(reader)) {
        Ok(r) => r,
        Err(e) => {
            group.signal(Signal::KILL);
            let _ = timeout(DRAIN, child.wait()).await;
            return not_run(LocalStatus::FailedToStart(format!("no output pipe: {e}")));
        }
    };
    let buffer = OutputBuffer::new(invocation.max_output_bytes, output);
    let mut supervision = Supervision {
        invocation: &invocation,
        group: &mut group,
        deadline: started + invocation.timeout,
        phase: Phase::Running,
        exit: None,
        stop: None,
        leftovers_killed: false,
    };
    let dropped = supervision.watch(&mut child, reader, buffer, &cancel).await;
    if supervision.exit.is_none() {
        // Only after SIGKILL: the leader has not died yet (uninterruptible sleep). Give it a
        // moment; otherwise kill_on_drop and tokio's orphan reaping take over.
        if let Ok(exit) = timeout(DRAIN, child.wait()).await {
            supervision.exit = Some(exit.map_err(|e| e.to_string()));
        }
    }
    let (stop, exit, leftovers_killed) = (
        supervision.stop,
        supervision.exit,
        supervision.leftovers_killed,
    );
    group.release();
    let status = match (stop, exit) {
        (Some(Stop::TimedOut), _) => LocalStatus::TimedOut,
        (Some(Stop::Canceled), _) => LocalStatus::Canceled,
        (None, Some(Ok(exit))) => status_of(exit),
        (None, Some(Err(e))) => LocalStatus::Unknown(e),
        // Not reachable: without a stop the loop only ends after the leader exited.
        (None, None) => LocalStatus::Unknown("the process did not end".to_owned()),
    };
    tracing::debug!(pid = pgid.as_raw_pid(), ?status, "local command ended");
    LocalOutcome {
        status,
        output_truncated: dropped > 0,
        dropped_bytes: dropped,
        leftovers_killed,
        duration: started.elapsed(),
    }
}

fn status_of(exit: ExitStatus) -> LocalStatus {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => LocalStatus::Exited(code),
        (None, Some(signal)) => LocalStatus::Signalled(signal),
        (None, None) => LocalStatus::Unknown(format!("{exit}")),
    }
}

/// The state of one run between start and end.
struct Supervision<'a> {
    invocation: &'a Invocation,
    group: &'a mut ProcessGroup,
    /// When the timeout strikes.
    deadline: Instant,
    phase: Phase,
    /// The leader's exit status once reaped (or why it could not be).
    exit: Option<Result<ExitStatus, String>>,
    /// Why the bridge stopped the command while its leader ran, if it did.
    stop: Option<Stop>,
    leftovers_killed: bool,
}

impl Supervision<'_> {
    /// Reads the output, reaps the leader and stops the group when due; returns the
    /// number of output bytes dropped past the cap.
    async fn watch(
        &mut self,
        child: &mut Child,
        mut reader: pipe::Receiver,
        mut buffer: OutputBuffer,
        cancel: &CancelHandle,
    ) -> u64 {
        let mut pipe_open = true;
        let mut chunk = vec![0u8; READ_SIZE];
        loop {
            let now = Instant::now();
            if self.exit.is_some() {
                let alive = self.group.alive(now);
                if !alive && !pipe_open {
                    break;
                }
                match self.phase {
                    Phase::Running => {
                        self.phase = Phase::Settling(
                            (now + self.invocation.kill_grace).min(self.deadline.max(now)),
                        );
                    }
                    Phase::Terminating(_) if !alive => self.phase = Phase::Draining(now + DRAIN),
                    _ => {}
                }
            }
            let phase_end = match self.phase {
                Phase::Running => self.deadline,
                Phase::Settling(t) | Phase::Terminating(t) | Phase::Draining(t) => t,
            };
            let flush_at = buffer.flush_due();
            let may_cancel = matches!(self.phase, Phase::Running | Phase::Settling(_));
            let poll_group = self.exit.is_some() && !pipe_open;
            tokio::select! {
                read = reader.read(&mut chunk), if pipe_open => match read {
                    Ok(0) => pipe_open = false,
                    Ok(n) => buffer.push(&chunk[..n], Instant::now()),
                    Err(e) => {
                        tracing::debug!(error = %e, "local command output unreadable");
                        pipe_open = false;
                    }
                },
                exit = child.wait(), if self.exit.is_none() => {
                    self.exit = Some(exit.map_err(|e| e.to_string()));
                }
                () = cancel.canceled(), if may_cancel => {
                    if self.exit.is_none() {
                        self.stop = Some(Stop::Canceled);
                    } else if self.group.alive(Instant::now()) {
                        self.leftovers_killed = true;
                    }
                    self.terminate();
                }
                () = sleep_until(phase_end) => match self.phase {
                    Phase::Running => {
                        self.stop = Some(Stop::TimedOut);
                        self.terminate();
                    }
                    Phase::Settling(_) => {
                        if !self.group.alive(Instant::now()) {
                            // Only a process outside the group holds the pipe: stop reading.
                            break;
                        }
                        self.leftovers_killed = true;
                        self.terminate();
                    }
                    Phase::Terminating(_) => {
                        self.group.signal(Signal::KILL);
                        self.phase = Phase::Draining(Instant::now() + DRAIN);
                    }
                    Phase::Draining(_) => break,
                },
                () = sleep_until(flush_at.unwrap_or(phase_end)), if flush_at.is_some() => {
                    buffer.flush_partial(Instant::now());
                }
                () = sleep(GROUP_POLL), if poll_group => {}
            }
        }
        buffer.finish()
    }

    /// SIGTERM to the group; SIGKILL follows after the grace.
    fn terminate(&mut self) {
        self.group.signal(Signal::TERM);
        self.phase = Phase::Terminating(Instant::now() + self.invocation.kill_grace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::args::split_arguments;

    #[test]
    fn quoting_reads_back() {
        for arg in [
            "plain",
            "",
            "a b",
            "it's",
            r#"say "hi""#,
            r#"both ' and " here"#,
            "tab\there",
            r"back\slash",
        ] {
            let quoted = quote(arg);
            assert_eq!(split_arguments(&quoted).unwrap(), [arg], "{quoted}");
        }
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn invocation_composes_argv_env_and_limits() {
        let mut c = LocalCommandConfig::new("ping", "/usr/bin/ping", "ping");
        c.args = vec!["-c".into(), "3".into()];
        c.timeout_secs = 20;
        c.max_output_bytes = 100;
        c.working_dir = Some("/tmp".into());
        c.env.insert("LC_ALL".into(), "C".into());
        let parent = [
            (OsString::from("PATH"), OsString::from("/bin")),
            (
                OsString::from("STORMBRIDGE__ST2__API_KEY"),
                OsString::from("k"),
            ),
        ];
        let inv = Invocation::with_parent_env(&c, vec!["web 1".into()], parent, &[]);
        assert_eq!(inv.program(), Path::new("/usr/bin/ping"));
        assert_eq!(inv.args(), ["-c", "3", "web 1"]);
        assert_eq!(
            inv.env(),
            [
                (OsString::from("LC_ALL"), OsString::from("C")),
                (OsString::from("PATH"), OsString::from("/bin")),
            ]
        );
        assert_eq!(inv.working_dir(), Some(Path::new("/tmp")));
        assert_eq!(inv.timeout(), Duration::from_secs(20));
        assert_eq!(inv.kill_grace(), KILL_GRACE);
        assert_eq!(inv.max_output_bytes(), 100);
        assert_eq!(inv.command_line(), "/usr/bin/ping -c 3 'web 1'");
        let inv = inv
            .with_timeout(Duration::from_millis(5))
            .with_kill_grace(Duration::from_millis(7));
        assert_eq!(inv.timeout(), Duration::from_millis(5));
        assert_eq!(inv.kill_grace(), Duration::from_millis(7));
    }

    #[test]
    fn cancel_handles_share_one_state() {
        let a = CancelHandle::new();
        let b = a.clone();
        assert!(!b.is_canceled());
        a.cancel();
        assert!(b.is_canceled());
    }

    #[test]
    fn success_is_exit_code_zero() {
        assert!(LocalStatus::Exited(0).succeeded());
        assert!(!LocalStatus::Exited(1).succeeded());
        assert!(!LocalStatus::TimedOut.succeeded());
    }
}
