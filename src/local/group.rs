//! A local command's process group: signalling it, and telling whether anything in it is
//! still alive.

use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::time::Instant;

/// How long an "alive" answer is trusted before the group is looked at again.
const RECHECK: Duration = Duration::from_millis(50);

/// The process group a command's leader heads (its id is the leader's pid).
///
/// Dropped without [`ProcessGroup::release`], it sends SIGKILL to the group: a `run`
/// future dropped midway leaves nothing running.
#[derive(Debug)]
pub(super) struct ProcessGroup {
    pgid: Pid,
    /// Seen empty: final, nobody can join a group without members.
    gone: bool,
    /// The last "alive" answer and when it was found.
    alive_at: Option<Instant>,
    /// Whether dropping sends SIGKILL.
    kill_on_drop: bool,
}

impl ProcessGroup {
    /// The group `pgid`.
    pub(super) fn new(pgid: Pid) -> Self {
        Self {
            pgid,
            gone: false,
            alive_at: None,
            kill_on_drop: true,
        }
    }

    /// The run is over and its signals were sent: dropping no longer kills.
    pub(super) fn release(mut self) {
        self.kill_on_drop = false;
    }

    /// Sends `signal` to every process of the group, unless it was seen empty (its number
    /// may belong to someone else by now). Failures are ignored: ESRCH (nobody left) is
    /// the expected one, and none changes what to do next.
    pub(super) fn signal(&self, signal: Signal) {
        if !self.gone {
            let _ = rustix::process::kill_process_group(self.pgid, signal);
        }
    }

    /// Whether a live process is left in the group. Zombies do not count: an orphan whose
    /// new parent does not reap it (the bridge as a container's PID 1, without an init)
    /// would otherwise keep the group "alive" for ever. A process the bridge may not signal
    /// (EPERM) counts as alive.
    pub(super) fn alive(&mut self, now: Instant) -> bool {
        if self.gone {
            return false;
        }
        if self.alive_at.is_some_and(|at| now < at + RECHECK) {
            return true;
        }
        let alive = match rustix::process::test_kill_process_group(self.pgid) {
            Ok(()) => !only_zombies(self.pgid),
            Err(e) => e != rustix::io::Errno::SRCH,
        };
        if alive {
            self.alive_at = Some(now);
        } else {
            self.gone = true;
        }
        alive
    }
}

/// Whether `/proc` shows members of the group and all of them are zombies. Anything
/// unclear (no `/proc`, no member visible) answers false, so the group counts as alive.
///
/// procfs is read synchronously: its files are generated in memory, never waiting on a
/// disk, and this runs only after a command's leader has exited and its group is not
/// empty.
fn only_zombies(pgid: Pid) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    let pgid = pgid.as_raw_pid().to_string();
    let mut zombies = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // A process may end between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, fields)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = fields.split_ascii_whitespace();
        let (state, pgrp) = (fields.next(), fields.nth(1));
        if pgrp != Some(pgid.as_str()) {
            continue;
        }
        match state {
            Some("Z" | "X") => zombies += 1,
            _ => return false,
        }
    }
    zombies > 0
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.kill_on_drop {
            self.signal(Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unused_group_id_is_gone_for_good() {
        // Group ids are pids; the maximum pid is at most 2^22 on Linux.
        let mut group = ProcessGroup::new(Pid::from_raw(i32::MAX - 1).unwrap());
        assert!(!group.alive(Instant::now()));
        assert!(!group.alive(Instant::now()));
        group.signal(Signal::TERM); // not even attempted once gone
        group.release();
    }

    #[test]
    fn the_callers_own_group_is_alive() {
        let own = rustix::process::getpgrp();
        let mut group = ProcessGroup::new(own);
        // Disarmed before anything can fail: never signal the test's own group.
        group.kill_on_drop = false;
        assert!(group.alive(Instant::now()));
        assert!(!only_zombies(own));
    }
}
