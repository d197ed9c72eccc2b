//! Local commands (`[[commands]]`, issue 17): programs the bridge runs itself, with no
//! shell, as jobs — through the access rules, with their output in the job, a timeout and
//! cancel that stop the whole process group.

use crate::support::{job_number, with_test_aliases, Options, TestBridge};

fn options() -> Options {
    let mut o = with_test_aliases();
    o.access_toml.push_str(
        "[[access.rules]]\naliases = [\"local.sleepy\"]\nusers = [\"admins\"]\naction = \"allow\"\n\
         [[access.rules]]\naliases = [\"local.sleepy\"]\naction = \"deny\"\n\
         [[access.rules]]\npacks = [\"local\"]\nusers = [\"console:carol\"]\naction = \"deny\"\n",
    );
    o.extra_toml.push_str(
        r#"
[[commands]]
name = "say"
executable = "/bin/echo"
args = ["said:"]
help = "echo the words back"

[[commands]]
name = "slow"
executable = "/bin/sh"
args = ["-c", "echo started; sleep 30; echo never"]
allow_arguments = false
timeout_secs = 1
help = "a command that outlives its timeout"

[[commands]]
name = "sleepy"
executable = "/bin/sh"
args = ["-c", "echo dozing; sleep 60"]
allow_arguments = false
help = "a command to cancel"
"#,
    );
    o
}

/// A sqlite store in a directory of its own, whose jobs a test reads as they were written.
struct SqliteStore {
    dir: tempfile::TempDir,
}

impl SqliteStore {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("key"), "5a".repeat(32)).expect("key file");
        Self { dir }
    }

    /// The `[store]` table.
    fn toml(&self) -> String {
        format!(
            "\n[store]\nbackend = \"sqlite\"\npath = \"{}\"\nkey_file = \"{}\"\n",
            self.dir.path().join("state.db").display(),
            self.dir.path().join("key").display()
        )
    }

    /// The output job `job` has in the store, as written.
    fn kept_output(&self, job: u64) -> String {
        rusqlite::Connection::open(self.dir.path().join("state.db"))
            .expect("the store")
            .query_row("SELECT output FROM jobs WHERE id = ?1", [job as i64], |r| {
                r.get(0)
            })
            .expect("the job's output")
    }
}

#[actix_rt::test]
async fn a_local_command_runs_without_a_shell_as_a_job() {
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    b.say("!st2 say $HOME * ; \"two words\"").await;
    let started = b.line_containing("Started local command `say`").await;
    let job = job_number(&started);
    let result = b.line_containing("Local command `say`").await;
    assert!(result.contains("succeeded"), "{result}");
    assert!(
        result.contains("said: $HOME * ; two words"),
        "nothing is expanded: {result}"
    );
    assert!(
        b.emulator.executions().is_empty(),
        "StackStorm is not asked"
    );
    b.say(&format!("!st2job {job}")).await;
    let detail = b.line_containing(&format!("Job #{job}: succeeded")).await;
    assert!(detail.contains("Local command: say"), "{detail}");
    b.say(&format!("!st2logs {job}")).await;
    let logs = b.line_containing(&format!("Output of job #{job}")).await;
    assert!(logs.contains("said: $HOME"), "{logs}");
    // Arguments that cannot be split are refused before anything runs.
    b.say("!st2 say \"unclosed").await;
    b.line_containing("Sorry").await;
    // Help lists them after the aliases.
    b.say("!st2help").await;
    let help = b
        .line_containing("Local commands (run on the bridge's host)")
        .await;
    assert!(help.contains("!st2 say — echo the words back"), "{help}");
    // The access rules see it as `local.say` in the pack `local`.
    b.say("/as carol !st2 say hi").await;
    b.line_containing("Access control does not allow").await;
}

#[actix_rt::test]
async fn a_local_command_past_its_timeout_is_stopped() {
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    b.say("!st2 slow").await;
    let job = job_number(&b.line_containing("Started local command `slow`").await);
    let result = b.line_containing("Local command `slow`").await;
    assert!(result.contains("ran past its timeout"), "{result}");
    assert!(
        result.contains("started") && !result.contains("never"),
        "{result}"
    );
    b.say("!st2jobs --status timedout").await;
    let list = b.line_containing("Your jobs (timedout)").await;
    assert!(list.contains(&format!("#{job} timedout")), "{list}");
    b.say("!st2 slow extra words").await;
    b.line_containing("Sorry").await;
}

#[actix_rt::test]
async fn a_running_local_command_is_cancelled_by_its_owner() {
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    b.say("!st2 sleepy").await;
    let job = job_number(&b.line_containing("Started local command `sleepy`").await);
    // Its output is in the job while it runs.
    b.say(&format!("!st2tail {job}")).await;
    b.line_containing("dozing").await;
    b.say(&format!("/as bob !st2cancel {job}")).await;
    b.line_containing(&format!("There is no job #{job}")).await;
    b.say(&format!("!st2cancel {job}")).await;
    b.line_containing(&format!("Stopping job #{job}")).await;
    let result = b.line_containing("Local command `sleepy`").await;
    assert!(result.contains("was canceled"), "{result}");
    b.say(&format!("!st2job {job}")).await;
    b.line_containing(&format!("Job #{job}: canceled")).await;
    // Only admins may run it.
    b.say("/as bob !st2 sleepy").await;
    b.line_containing("Access control does not allow").await;
}

#[actix_rt::test]
async fn a_local_command_waits_for_its_confirmation_like_an_alias() {
    let mut o = options();
    o.access_toml
        .push_str("\n[confirm]\n[[confirm.rules]]\naliases = [\"local.say\"]\n");
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    b.say("!st2 say hello there").await;
    let ask = b.line_containing("needs your confirmation").await;
    assert!(ask.contains("local.say"), "{ask}");
    assert!(ask.contains("arguments=hello there"), "{ask}");
    let at = ask.find("`!st2confirm ").expect("a code");
    let code: String = ask[at + 13..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    b.say(&format!("!st2confirm {code}")).await;
    b.line_containing("confirmed").await;
    let started = b.line_containing("Started local command `say`").await;
    let job = job_number(&started);
    let result = b.line_containing("Local command `say`").await;
    assert!(result.contains("said: hello there"), "{result}");
    b.say(&format!("!st2job {job}")).await;
    let detail = b.line_containing(&format!("Job #{job}:")).await;
    assert!(
        detail.contains("Confirmed or approved by: Alice (confirmed)"),
        "{detail}"
    );
}

#[actix_rt::test]
async fn long_output_is_paged_and_kept_masked() {
    let store = SqliteStore::new();
    let mut o = options();
    o.extra_toml.push_str(&format!(
        r#"
[[commands]]
name = "chatty"
executable = "/bin/sh"
args = ["-c", "echo password=hunter2222; i=0; while [ $i -lt 400 ]; do echo line $i of a chatty command; i=$((i+1)); done"]
allow_arguments = false
help = "a command with a lot to say"
{}"#,
        store.toml()
    ));
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    b.say("!st2 chatty").await;
    let job = job_number(&b.line_containing("Started local command `chatty`").await);
    let result = b.line_containing("Local command `chatty`").await;
    assert!(result.contains("succeeded"), "{result}");

    // The last page by default; any page by its number, with a pointer to the next.
    b.say(&format!("!st2logs {job}")).await;
    let last = b.line_containing(&format!("Output of job #{job}")).await;
    let pages: usize = last
        .split(", page ")
        .nth(1)
        .and_then(|p| p.split(" of ").nth(1))
        .and_then(|p| p.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("paged: {last}"));
    assert!(pages > 2, "{last}");
    assert!(last.contains(&format!("page {pages} of {pages}")), "{last}");
    assert!(last.contains("line 399 of a chatty command"), "{last}");
    assert!(!last.contains("More:"), "{last}");
    b.say(&format!("!st2logs {job} 1")).await;
    let first = b
        .line_containing(&format!(
            "Output of job #{job} (succeeded), page 1 of {pages}"
        ))
        .await;
    assert!(first.contains("line 0 of a chatty command"), "{first}");
    assert!(
        first.contains(&format!("More: `!st2logs {job} 2`")),
        "{first}"
    );
    b.say(&format!("!st2logs {job} --page 2")).await;
    b.line_containing(&format!("page 2 of {pages}")).await;

    // What the store keeps was masked before it was written (jobs are not sealed).
    let output = store.kept_output(job);
    assert!(output.contains("line 399 of a chatty command"), "{output}");
    assert!(!output.contains("hunter2222"), "{output}");
    assert!(output.contains("[redacted]"), "{output}");
}

#[actix_rt::test]
async fn a_secret_printed_in_pieces_is_masked_whole() {
    let store = SqliteStore::new();
    let mut o = options();
    // The pauses are the command's own (longer than the 200 ms after which a partial line
    // is passed on): its output reaches the bridge in pieces cut inside each secret.
    o.extra_toml.push_str(&format!(
        r#"
[[commands]]
name = "leaky"
executable = "/bin/sh"
args = ["-c", "printf 'id AKIAIOSF'; sleep 0.5; printf 'ODNN7EXAMPLE ok\n'; echo '-----BEGIN RSA PRIVATE KEY-----'; sleep 0.5; echo MIIEowSECRETBODY; echo '-----END RSA PRIVATE KEY-----'; echo done"]
allow_arguments = false
help = "prints secrets slowly"
{}"#,
        store.toml()
    ));
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    b.say("!st2 leaky").await;
    let job = job_number(&b.line_containing("Started local command `leaky`").await);
    let result = b.line_containing("Local command `leaky`").await;
    assert!(result.contains("succeeded"), "{result}");
    b.say(&format!("!st2logs {job}")).await;
    let logs = b.line_containing(&format!("Output of job #{job}")).await;
    let kept = store.kept_output(job);
    for (what, text) in [("result", &result), ("logs", &logs), ("store", &kept)] {
        assert!(text.contains("done"), "{what}: {text}");
        for secret in ["ODNN7EXAMPLE", "AKIAIOSF", "MIIEowSECRETBODY"] {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
}
