//! Every command is a job (issue 17): recorded with its user, room, text and executions;
//! listed, shown, followed and cancelled by its owner; audited by admins; never shown to
//! anyone else. Against the emulator over HTTP, on the console (`/as <id>` speaks as
//! someone else, `/dm` in a direct chat).

use std::time::{Duration, Instant};

use stormbridge::emulator::long_job_alias;

use crate::support::{job_number, with_test_aliases, Options, TestBridge, WAIT};

fn jobs_options() -> Options {
    let mut o = with_test_aliases();
    o.emulator.aliases.push(long_job_alias());
    o
}

#[actix_rt::test]
async fn every_command_is_a_job_its_owner_and_admins_can_see() {
    let mut b = TestBridge::start_with(jobs_options()).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    let ack = b.line_containing("Started `run date`").await;
    let alices = job_number(&ack);
    let execution = b.emulator.executions()[0].id.clone();
    b.line_containing(&format!("execution: {execution}")).await;
    b.say("/as bob !st2 run uptime").await;
    let bobs = job_number(&b.line_containing("Started `run uptime`").await);
    assert_ne!(alices, bobs);
    let uptime = b.emulator.executions()[1].id.clone();
    b.line_containing(&format!("execution: {uptime}")).await;

    // Alice sees her job, finished, and not Bob's.
    b.say("!st2jobs").await;
    let list = b.line_containing("Your jobs").await;
    assert!(
        list.contains(&format!("#{alices} succeeded `run date`")),
        "{list}"
    );
    assert!(!list.contains("run uptime"), "{list}");
    b.say(&format!("!st2job {alices}")).await;
    let detail = b
        .line_containing(&format!("Job #{alices}: succeeded"))
        .await;
    assert!(detail.contains("Alias: core.run_local"), "{detail}");
    assert!(
        detail.contains(&format!("Execution {execution}")),
        "{detail}"
    );

    // Bob cannot see Alice's job, by number or in his list.
    b.say(&format!("/as bob !st2job {alices}")).await;
    b.line_containing(&format!("There is no job #{alices} that you can see"))
        .await;
    b.say("/as bob !st2jobs --status succeeded").await;
    let list = b.line_containing("Your jobs (succeeded)").await;
    assert!(!list.contains("run date"), "{list}");
    assert!(
        list.contains(&format!("#{bobs} succeeded `run uptime`")),
        "{list}"
    );
    b.say("/as bob !st2jobs --user console:alice").await;
    b.line_containing("`--user` is not an option here").await;
    // The audit is for admins only.
    b.say("/as bob !st2audit").await;
    b.line_containing("Access control does not allow").await;

    // Alice is an admin: the audit names everyone's jobs and where they ran.
    b.say("!st2audit --user bob").await;
    let list = b.line_containing("Jobs of bob").await;
    assert!(
        list.contains("bob (console:bob) in ops `run uptime`"),
        "{list}"
    );
    assert!(!list.contains("run date"), "{list}");
    b.say("!st2audit").await;
    let list = b.line_containing("Jobs, newest first").await;
    assert!(
        list.contains("run uptime") && list.contains("run date"),
        "{list}"
    );
    b.say(&format!("!st2auditjob {bobs}")).await;
    let detail = b.line_containing(&format!("Job #{bobs}:")).await;
    assert!(detail.contains("By: bob (console:bob) in ops"), "{detail}");

    // `!st2last` is one's own newest job: Bob's is the audit he was refused.
    b.say("/as bob !st2last").await;
    let last = b.line_containing("Job #").await;
    assert!(last.contains("refused — `!st2audit`"), "{last}");
    b.say("/as carol !st2last").await;
    b.line_containing("You have no job").await;
}

#[actix_rt::test]
async fn logs_page_stackstorms_output_for_the_owner_only() {
    let mut b = TestBridge::start_with(jobs_options()).await;
    b.wait_ready(200).await;
    b.emulator.set_long_job_tick(Duration::from_millis(5));
    // 2 s of steps at 5 per second: ten lines of output.
    b.say("!st2 start long job 2").await;
    let ack = b.line_containing("Long job of 2 s started").await;
    assert!(
        !ack.contains("job #"),
        "an alias's own ack is kept as written: {ack}"
    );
    let id = b.emulator.executions()[0].id.clone();
    b.line_containing(&format!("execution: {id}")).await;
    b.say("!st2last").await;
    let job = job_number(&b.line_containing("Job #").await.replace("Job #", "job #"));
    b.say(&format!("!st2logs {job}")).await;
    let logs = b
        .line_containing(&format!("Output of job #{job} (succeeded)"))
        .await;
    assert!(logs.contains("step 1 of 10\nstep 2 of 10"), "{logs}");
    assert!(logs.contains("step 10 of 10"), "{logs}");
    b.say(&format!("/as bob !st2logs {job}")).await;
    b.line_containing(&format!("There is no job #{job} that you can see"))
        .await;
    b.say(&format!("!st2auditlogs {job}")).await;
    b.line_containing("step 10 of 10").await;
    b.say("!st2logs 999").await;
    b.line_containing("There is no job #999").await;
    b.say("!st2logs x").await;
    b.line_containing("`x` is not a job number").await;
}

#[actix_rt::test]
async fn a_running_job_is_followed_and_cancelled_by_its_owner_or_an_admin() {
    let mut b = TestBridge::start_with(jobs_options()).await;
    b.wait_ready(200).await;
    b.say("/as bob !st2 start long job 60").await;
    b.line_containing("Long job of 60 s started").await;
    let execution = b.emulator.executions()[0].id.clone();
    b.say("/as bob !st2last").await;
    let job = job_number(&b.line_containing("Job #").await.replace("Job #", "job #"));

    // Bob follows it: its lines arrive while it runs.
    b.say(&format!("/as bob !st2tail {job}")).await;
    b.line_containing(&format!("Following the output of job #{job}"))
        .await;
    b.line_containing("step 2 of 300").await;

    // Carol may not cancel it; Bob may.
    b.say(&format!("/as carol !st2cancel {job}")).await;
    b.line_containing(&format!("There is no job #{job} that you can see"))
        .await;
    b.say(&format!("/as bob !st2cancel {job}")).await;
    b.line_containing(&format!("Asked StackStorm to cancel job #{job}"))
        .await;
    // StackStorm cancels it and announces the result; the tail ends with it.
    b.line_containing(&format!("execution: {execution}")).await;
    b.line_containing(&format!("Job #{job} finished: canceled"))
        .await;
    b.say("/as bob !st2jobs --status canceled").await;
    let list = b.line_containing("Your jobs (canceled)").await;
    assert!(list.contains(&format!("#{job} canceled")), "{list}");
    // Once finished there is nothing to cancel (StackStorm's 200 with a faultstring is
    // never needed: the bridge knows).
    b.say(&format!("/as bob !st2cancel {job}")).await;
    b.line_containing("has already finished (canceled)").await;

    // An admin may cancel anyone's job.
    b.say("/as bob !st2 start long job 60").await;
    b.line_containing("Long job of 60 s started").await;
    b.say("/as bob !st2last").await;
    let second = job_number(&b.line_containing("Job #").await.replace("Job #", "job #"));
    b.say(&format!("!st2cancel {second}")).await;
    b.line_containing(&format!("Asked StackStorm to cancel job #{second}"))
        .await;
}

#[actix_rt::test]
async fn jobs_survive_a_restart_and_unfinished_ones_are_reconciled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, "5a".repeat(32)).expect("key file");
    let options = || {
        let mut o = jobs_options();
        o.extra_toml.push_str(&format!(
            "[store]\nbackend = \"sqlite\"\npath = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("state.db").display(),
            key.display()
        ));
        o
    };
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    b.emulator.set_long_job_tick(Duration::from_millis(20));
    // Held until the bridge is stopped: however slow the machine, the job is running when
    // it is listed and when the bridge stops.
    b.emulator.hold_long_jobs(true);
    b.say("!st2 start long job 1").await;
    b.line_containing("Long job of 1 s started").await;
    let id = b.emulator.executions()[0].id.clone();
    let mut status: String;
    let running = eventually!(WAIT, {
        status = st2_execution(&b, &id).await["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        status == "running"
    });
    assert!(running, "StackStorm has it {status}");
    b.say("!st2jobs").await;
    let line = b.line_containing("`start long job 1`").await;
    assert!(line.contains("running"), "{line}");

    // Stopped before the job ends; StackStorm finishes it meanwhile.
    b.app.stop().await;
    let TestBridge { emulator, .. } = b;
    emulator.hold_long_jobs(false);
    let announced = eventually!(WAIT, !emulator.announcements().is_empty());
    assert!(announced, "StackStorm finished the job and announced it");
    let mut b = TestBridge::start_with_emulator(emulator, options()).await;
    b.wait_ready(200).await;
    // The result owed is still delivered, and the job is no longer running.
    b.line_containing(&format!("execution: {id}")).await;
    b.say("!st2jobs").await;
    let line = b.line_containing("`start long job 1`").await;
    assert!(line.contains("succeeded"), "{line}");
}

/// StackStorm's account of an execution (`GET /api/v1/executions/{id}`).
async fn st2_execution(b: &TestBridge, id: &str) -> serde_json::Value {
    let (status, execution) = crate::fidelity::st2_request(
        &b.emulator,
        "GET",
        &format!("/api/v1/executions/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{execution}");
    execution
}

#[actix_rt::test]
async fn took_is_how_long_stackstorm_ran_it_however_late_the_job_is_looked_at() {
    // No `st2.web_url` in the tests' configuration: links are the execution's own.
    let mut b = TestBridge::start_with(jobs_options()).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    let job = job_number(&b.line_containing("Started `run date`").await);
    let id = b.emulator.executions()[0].id.clone();
    b.line_containing(&format!("execution: {id}")).await;
    let ran = st2_execution(&b, &id).await;
    let elapsed = ran["elapsed_seconds"]
        .as_f64()
        .expect("a finished execution");
    let ended = Instant::now();
    // Nobody looks at the job for a while after it ended (a wall-clock condition: the
    // scenario is the time passing, not a synchronisation).
    assert!(eventually!(
        WAIT,
        ended.elapsed() >= Duration::from_millis(2_500)
    ));
    b.say(&format!("!st2job {job}")).await;
    let detail = b.line_containing(&format!("Job #{job}: succeeded")).await;
    assert!(
        detail.contains(&format!("took {} s", elapsed.floor() as i64)),
        "StackStorm ran it for {elapsed} s: {detail}"
    );
    assert!(
        detail.contains(&format!(
            "Execution {id}: https://st2.test/#/history/{id}/general"
        )),
        "StackStorm's own link, without st2.web_url: {detail}"
    );
    b.say("!st2jobs").await;
    let list = b.line_containing("Your jobs").await;
    assert!(
        list.contains(&format!("took {} s", elapsed.floor() as i64)),
        "{list}"
    );
}

#[actix_rt::test]
async fn a_delivered_result_ends_its_job_without_anyone_looking() {
    let mut b = TestBridge::start_with(jobs_options()).await;
    b.wait_ready(200).await;
    b.say("!st2 run false").await;
    let failed = job_number(&b.line_containing("Started `run false`").await);
    let id = b.emulator.executions()[0].id.clone();
    b.line_containing(&format!("execution: {id}")).await;
    b.say("!st2 start long job 60").await;
    b.line_containing("Long job of 60 s started").await;
    // `--limit 1` looks up only the newest job (the one still running); the failed one is
    // found failed all the same, because its result told its job.
    let mut list;
    let found = eventually!(WAIT, {
        b.say("!st2jobs --limit 1 --status failed").await;
        list = b.line_containing("jobs").await;
        list.contains("run false")
    });
    assert!(found, "{list}");
    assert!(
        list.contains(&format!("#{failed} failed `run false`")),
        "{list}"
    );
    assert!(!list.contains("long job"), "--limit 1: {list}");
}

#[actix_rt::test]
async fn commands_that_never_ran_are_in_the_audit() {
    let mut o = jobs_options();
    o.extra_toml.push_str(
        "[confirm]\nttl_secs = 3\n[[confirm.rules]]\ntexts = [\"run uptime\", \"run whoami\"]\n",
    );
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    // No alias matches; the access rules refuse a built-in.
    b.say("/as bob !st2 frobnicate the widgets").await;
    b.line_containing("No StackStorm command matches").await;
    b.say("/as bob !st2audit").await;
    b.line_containing("Access control does not allow").await;
    // A held command aborted by its sender, another left to expire.
    b.say("/as bob !st2 run uptime").await;
    let ask = b.line_containing("needs your confirmation").await;
    let code = ask
        .split("`!st2abort ")
        .nth(1)
        .and_then(|rest| rest.split(['`', ' ']).next())
        .unwrap_or_else(|| panic!("no abort code in {ask}"))
        .to_owned();
    b.say(&format!("/as bob !st2abort {code}")).await;
    b.line_containing("aborted").await;
    b.say("/as bob !st2 run whoami").await;
    b.line_containing("needs your confirmation").await;
    b.line_containing("was not confirmed within").await;
    assert!(b.emulator.executions().is_empty(), "nothing ran");

    b.say("!st2audit --user bob").await;
    let list = b.line_containing("Jobs of bob").await;
    for (status, text) in [
        ("refused", "frobnicate the widgets"),
        ("refused", "!st2audit"),
        ("canceled", "run uptime"),
        ("canceled", "run whoami"),
    ] {
        assert!(
            list.contains(&format!("{status} bob (console:bob) in ops `{text}`")),
            "{status} {text}: {list}"
        );
    }
    let audit_job = list
        .lines()
        .find(|l| l.contains("`!st2audit`"))
        .map(|l| job_number(&l.replace("- #", "job #")))
        .expect("the refused audit");
    b.say(&format!("!st2auditjob {audit_job}")).await;
    let detail = b
        .line_containing(&format!("Job #{audit_job}: refused"))
        .await;
    assert!(detail.contains("Built-in: audit"), "{detail}");
    b.say("!st2audit --user bob --status canceled").await;
    let list = b.line_containing("Jobs of bob (canceled)").await;
    assert!(
        list.contains("`run uptime`") && list.contains("`run whoami`"),
        "{list}"
    );
    // Bob sees his own, too.
    b.say("/as bob !st2jobs --status refused").await;
    let own = b.line_containing("Your jobs (refused)").await;
    assert!(own.contains("frobnicate the widgets"), "{own}");
}

#[actix_rt::test]
async fn replies_reword_stackstorm_results_by_their_status() {
    let mut o = jobs_options();
    o.extra_toml.push_str(
        r#"
[replies.success]
messages = ["All good ({{status}}, {{alias}}): {{default}}"]
[replies.failure]
messages = ["It broke ({{status}}): {{default}}"]
"#,
    );
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    b.line_containing("Started `run date`").await;
    let ok = b.emulator.executions()[0].id.clone();
    let line = b.line_containing(&format!("execution: {ok}")).await;
    assert!(
        line.contains("All good (succeeded, core.run_local): ")
            && line.contains("status : succeeded"),
        "{line}"
    );
    b.say("!st2 run false").await;
    b.line_containing("Started `run false`").await;
    let bad = b.emulator.executions()[1].id.clone();
    let line = b.line_containing(&format!("execution: {bad}")).await;
    assert!(
        line.contains("It broke (failed): ") && line.contains("status : failed"),
        "{line}"
    );
}
