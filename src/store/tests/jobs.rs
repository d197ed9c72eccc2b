//! Jobs on every backend, then what only SQLite promises (restarts).

use serde_json::json;

use super::*;
use crate::domain::message::RoomKind;
use crate::store::jobs::{MAX_JOB_LIST, MAX_JOB_OUTPUT, MEMORY_MAX_JOBS, OUTPUT_DROPPED_MARKER};

fn new_job(who: &UserKey, text: &str) -> NewJob {
    NewJob {
        user: who.clone(),
        user_name: "Alice".into(),
        connection: "slack".into(),
        room_id: "C1".into(),
        room_name: Some("#ops".into()),
        room_kind: RoomKind::Group,
        thread: Some("1700.1".into()),
        text: text.into(),
        kind: JobKind::Alias {
            alias_ref: "ops.deploy".into(),
        },
        parameters: json!({"service": "web", "password": "********"})
            .as_object()
            .unwrap()
            .clone(),
        status: JobStatus::Requested,
        decided_by: None,
    }
}

fn ids(jobs: &[JobRecord]) -> Vec<u64> {
    jobs.iter().map(|j| j.id).collect()
}

fn executions(list: &[&str]) -> Vec<String> {
    list.iter().map(|e| e.to_string()).collect()
}

fn records_round_trip_with_increasing_ids(f: &Fixture) {
    let jobs = f.store.jobs();
    let alice = user("U1");
    let first = jobs.record(new_job(&alice, "deploy web"), at(0)).unwrap();
    let local = NewJob {
        kind: JobKind::Local {
            command: "uptime".into(),
        },
        room_kind: RoomKind::Direct,
        room_name: None,
        thread: None,
        parameters: serde_json::Map::new(),
        ..new_job(&alice, "uptime")
    };
    let second = jobs.record(local.clone(), at(1)).unwrap();
    let builtin = NewJob {
        kind: JobKind::Builtin {
            command: "help".into(),
        },
        status: JobStatus::Refused,
        decided_by: Some("Bob".into()),
        ..new_job(&alice, "help")
    };
    let third = jobs.record(builtin, at(2)).unwrap();
    assert_eq!((first, second, third), (1, 2, 3));

    let job = jobs.get(first).unwrap().unwrap();
    let expected = new_job(&alice, "deploy web");
    assert_eq!(job.id, 1);
    assert_eq!(job.user, alice);
    assert_eq!(job.user_name, expected.user_name);
    assert_eq!(job.connection, "slack");
    assert_eq!(job.room_id, "C1");
    assert_eq!(job.room_name.as_deref(), Some("#ops"));
    assert_eq!(job.room_kind, RoomKind::Group);
    assert_eq!(job.thread.as_deref(), Some("1700.1"));
    assert_eq!(job.text, "deploy web");
    assert_eq!(job.kind, expected.kind);
    assert_eq!(job.parameters, expected.parameters);
    assert!(job.execution_ids.is_empty());
    assert_eq!(job.status, JobStatus::Requested);
    assert_eq!((job.created_at, job.updated_at), (at(0), at(0)));
    assert_eq!(job.finished_at, None);
    assert_eq!(job.decided_by, None);
    assert_eq!(job.output, "");

    let job = jobs.get(second).unwrap().unwrap();
    assert_eq!(job.kind, local.kind);
    assert_eq!(job.room_kind, RoomKind::Direct);
    assert_eq!((job.room_name, job.thread), (None, None));
    // Recorded as refused: finished on the spot.
    let job = jobs.get(third).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Refused);
    assert_eq!(job.finished_at, Some(at(2)));
    assert_eq!(job.decided_by.as_deref(), Some("Bob"));

    assert!(jobs.get(99).unwrap().is_none());
    assert_eq!(jobs.count().unwrap(), 3);
    // Handles share the store (the memory backend too).
    assert_eq!(
        f.store.jobs().get(first).unwrap().unwrap().text,
        "deploy web"
    );
    assert!(jobs.set_decided_by(first, "Carol", at(3)).unwrap());
    let job = f.store.jobs().get(first).unwrap().unwrap();
    assert_eq!(job.decided_by.as_deref(), Some("Carol"));
    assert_eq!(job.updated_at, at(3));
    assert!(!jobs.set_decided_by(99, "Carol", at(3)).unwrap());
}

fn ids_are_never_reused_after_a_purge(f: &Fixture) {
    let jobs = f.store.jobs();
    for i in 0..3 {
        let id = jobs.record(new_job(&user("U1"), "x"), at(i)).unwrap();
        jobs.set_status(id, JobStatus::Succeeded, at(i)).unwrap();
    }
    assert_eq!(jobs.purge(at(100)).unwrap(), 3);
    assert_eq!(jobs.count().unwrap(), 0);
    assert_eq!(jobs.record(new_job(&user("U1"), "x"), at(101)).unwrap(), 4);
}

fn executions_combine_into_the_job_status(f: &Fixture) {
    let jobs = f.store.jobs();
    let id = jobs.record(new_job(&user("U1"), "multi"), at(0)).unwrap();
    assert!(jobs
        .set_executions(id, &executions(&["e1", "e2", "e3", "e2"]), at(1))
        .unwrap());
    let job = jobs.get(id).unwrap().unwrap();
    assert_eq!(
        job.execution_ids,
        executions(&["e1", "e2", "e3"]),
        "duplicates dropped"
    );
    assert_eq!(job.updated_at, at(1));
    for e in ["e1", "e2", "e3"] {
        assert_eq!(jobs.by_execution(e).unwrap().unwrap().id, id);
    }
    assert!(jobs.by_execution("nope").unwrap().is_none());
    assert_eq!(
        jobs.set_status_by_execution("nope", JobStatus::Failed, at(2))
            .unwrap(),
        None
    );

    let status = |jobs: &JobStore| jobs.get(id).unwrap().unwrap().status;
    assert_eq!(
        jobs.set_status_by_execution("e1", JobStatus::Succeeded, at(2))
            .unwrap(),
        Some(id)
    );
    assert_eq!(status(&jobs), JobStatus::Running, "two still unfinished");
    jobs.set_status_by_execution("e2", JobStatus::Failed, at(3))
        .unwrap();
    assert_eq!(status(&jobs), JobStatus::Running, "one still unfinished");
    assert!(jobs.get(id).unwrap().unwrap().finished_at.is_none());
    // An execution never goes back to unfinished either.
    jobs.set_status_by_execution("e2", JobStatus::Running, at(4))
        .unwrap();
    jobs.set_status_by_execution("e3", JobStatus::Canceled, at(5))
        .unwrap();
    let job = jobs.get(id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed, "the worst of the three");
    assert_eq!(job.finished_at, Some(at(5)));
    assert_eq!(job.updated_at, at(5));

    // Timed out beats canceled beats succeeded.
    let other = jobs.record(new_job(&user("U1"), "multi"), at(10)).unwrap();
    jobs.set_executions(other, &executions(&["f1", "f2", "f3"]), at(10))
        .unwrap();
    jobs.set_status_by_execution("f1", JobStatus::Canceled, at(11))
        .unwrap();
    jobs.set_status_by_execution("f2", JobStatus::Succeeded, at(11))
        .unwrap();
    jobs.set_status_by_execution("f3", JobStatus::TimedOut, at(12))
        .unwrap();
    assert_eq!(status_of(&jobs, other), JobStatus::TimedOut);

    // An execution already on another job is refused, and nothing changes.
    let third = jobs.record(new_job(&user("U1"), "x"), at(20)).unwrap();
    let err = jobs
        .set_executions(third, &executions(&["g1", "e1"]), at(20))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    assert!(jobs.get(third).unwrap().unwrap().execution_ids.is_empty());
    assert!(jobs.by_execution("g1").unwrap().is_none());
    assert_eq!(jobs.by_execution("e1").unwrap().unwrap().id, id);
    assert!(!jobs
        .set_executions(99, &executions(&["h1"]), at(20))
        .unwrap());

    // Replacing the list: a kept id keeps its status, a dropped one is forgotten.
    jobs.set_executions(third, &executions(&["g1", "g2"]), at(21))
        .unwrap();
    jobs.set_status_by_execution("g1", JobStatus::Succeeded, at(22))
        .unwrap();
    jobs.set_executions(third, &executions(&["g1", "g3"]), at(23))
        .unwrap();
    assert!(jobs.by_execution("g2").unwrap().is_none());
    jobs.set_status_by_execution("g3", JobStatus::Succeeded, at(24))
        .unwrap();
    assert_eq!(status_of(&jobs, third), JobStatus::Succeeded);
}

fn status_of(jobs: &JobStore, id: u64) -> JobStatus {
    jobs.get(id).unwrap().unwrap().status
}

fn finished_jobs_never_go_back(f: &Fixture) {
    let jobs = f.store.jobs();
    let id = jobs.record(new_job(&user("U1"), "x"), at(0)).unwrap();
    assert!(jobs.set_status(id, JobStatus::Running, at(1)).unwrap());
    assert!(
        !jobs.set_status(id, JobStatus::Running, at(2)).unwrap(),
        "no change"
    );
    assert!(jobs.set_status(id, JobStatus::TimedOut, at(3)).unwrap());
    for back in [JobStatus::Running, JobStatus::Requested] {
        assert!(!jobs.set_status(id, back, at(4)).unwrap());
    }
    let job = jobs.get(id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::TimedOut);
    assert_eq!(job.finished_at, Some(at(3)));
    assert_eq!(job.updated_at, at(3));
    // StackStorm's late word: finished to finished is allowed, finished_at stays.
    assert!(jobs.set_status(id, JobStatus::Succeeded, at(5)).unwrap());
    let job = jobs.get(id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.finished_at, Some(at(3)));
    assert!(!jobs.set_status(99, JobStatus::Failed, at(5)).unwrap());

    // An execution reporting "running" does not revive a job canceled meanwhile.
    let id = jobs.record(new_job(&user("U1"), "x"), at(10)).unwrap();
    jobs.set_executions(id, &executions(&["e1"]), at(10))
        .unwrap();
    jobs.set_status(id, JobStatus::Canceled, at(11)).unwrap();
    jobs.set_status_by_execution("e1", JobStatus::Running, at(12))
        .unwrap();
    assert_eq!(status_of(&jobs, id), JobStatus::Canceled);
    assert!(jobs.unfinished().unwrap().is_empty());
}

fn purge_keeps_unfinished_jobs(f: &Fixture) {
    let jobs = f.store.jobs();
    let old_running = jobs.record(new_job(&user("U1"), "a"), at(0)).unwrap();
    jobs.set_status(old_running, JobStatus::Running, at(0))
        .unwrap();
    let old_done = jobs.record(new_job(&user("U1"), "b"), at(0)).unwrap();
    jobs.set_executions(old_done, &executions(&["e1"]), at(0))
        .unwrap();
    jobs.set_status_by_execution("e1", JobStatus::Succeeded, at(10))
        .unwrap();
    let recent_done = jobs.record(new_job(&user("U1"), "c"), at(0)).unwrap();
    jobs.set_status(recent_done, JobStatus::Failed, at(60))
        .unwrap();
    let requested = jobs.record(new_job(&user("U1"), "d"), at(0)).unwrap();

    assert_eq!(
        jobs.purge(at(60)).unwrap(),
        1,
        "only the one finished before 60"
    );
    assert!(jobs.get(old_done).unwrap().is_none());
    assert!(jobs.by_execution("e1").unwrap().is_none());
    assert_eq!(jobs.count().unwrap(), 3);
    assert_eq!(jobs.purge(at(10_000)).unwrap(), 1);
    assert_eq!(
        ids(&jobs.unfinished().unwrap()),
        vec![old_running, requested]
    );
    assert_eq!(jobs.count().unwrap(), 2);
}

fn purge_works_through_many_jobs(f: &Fixture) {
    // More than one SQLite purge batch, with unfinished jobs in between.
    let jobs = f.store.jobs();
    for i in 0..1_200 {
        let id = jobs.record(new_job(&user("U1"), "x"), at(0)).unwrap();
        if i % 3 != 0 {
            jobs.set_executions(id, &[format!("e{i}")], at(0)).unwrap();
            jobs.set_status_by_execution(&format!("e{i}"), JobStatus::Succeeded, at(1))
                .unwrap();
        }
    }
    assert_eq!(jobs.purge(at(2)).unwrap(), 800);
    assert_eq!(jobs.count().unwrap(), 400);
    assert_eq!(jobs.unfinished().unwrap().len(), 400);
    assert!(jobs.by_execution("e1").unwrap().is_none());
    assert!(jobs.by_execution("e1199").unwrap().is_none());
    assert_eq!(jobs.purge(at(2)).unwrap(), 0);
}

fn lists_filter_page_and_keep_users_apart(f: &Fixture) {
    let jobs = f.store.jobs();
    let (alice, bob) = (user("U1"), user("U2"));
    let mut alices = Vec::new();
    for i in 0..6 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        let id = jobs
            .record(new_job(who, &format!("cmd {i}")), at(i))
            .unwrap();
        if i % 2 == 0 {
            alices.push(id);
        }
        if i % 3 == 0 {
            jobs.set_status(id, JobStatus::Failed, at(i)).unwrap();
        }
    }
    // ids 1..=6: alice 1, 3, 5; bob 2, 4, 6; failed 1, 4.
    let query = |user: Option<&UserKey>, status, limit, before_id| JobQuery {
        user: user.cloned(),
        status,
        limit,
        before_id,
    };
    let mine = jobs.list(&query(Some(&alice), None, 10, None)).unwrap();
    assert_eq!(ids(&mine), vec![5, 3, 1], "newest first");
    assert!(mine.iter().all(|j| j.user == alice), "only alice's own");
    assert_eq!(
        ids(&jobs.list(&query(None, None, 10, None)).unwrap()),
        vec![6, 5, 4, 3, 2, 1]
    );
    let failed = query(None, Some(JobStatus::Failed), 10, None);
    assert_eq!(ids(&jobs.list(&failed).unwrap()), vec![4, 1]);
    let bobs_failed = query(Some(&bob), Some(JobStatus::Failed), 10, None);
    assert_eq!(ids(&jobs.list(&bobs_failed).unwrap()), vec![4]);
    let alices_requested = query(Some(&alice), Some(JobStatus::Requested), 10, None);
    assert_eq!(ids(&jobs.list(&alices_requested).unwrap()), vec![5, 3]);
    // Paging.
    assert_eq!(
        ids(&jobs.list(&query(None, None, 2, None)).unwrap()),
        vec![6, 5]
    );
    assert_eq!(
        ids(&jobs.list(&query(None, None, 2, Some(5))).unwrap()),
        vec![4, 3]
    );
    assert_eq!(
        ids(&jobs.list(&query(Some(&alice), None, 10, Some(3))).unwrap()),
        vec![1]
    );
    assert!(jobs
        .list(&query(None, None, 10, Some(1)))
        .unwrap()
        .is_empty());
    // The limit is clamped to 1..=100.
    assert_eq!(jobs.list(&query(None, None, 0, None)).unwrap().len(), 1);
    for i in 0..120 {
        jobs.record(new_job(&bob, "more"), at(100 + i)).unwrap();
    }
    assert_eq!(
        jobs.list(&query(None, None, 1_000, None)).unwrap().len(),
        MAX_JOB_LIST
    );
    assert_eq!(jobs.list(&JobQuery::default()).unwrap().len(), 10);

    assert_eq!(jobs.last_for(&alice).unwrap().unwrap().id, 5);
    assert_eq!(jobs.last_for(&bob).unwrap().unwrap().id, 126);
    assert!(jobs.last_for(&user("U3")).unwrap().is_none());
    assert_eq!(alices, vec![1, 3, 5]);
}

fn output_is_capped(f: &Fixture) {
    let jobs = f.store.jobs();
    let id = jobs.record(new_job(&user("U1"), "uptime"), at(0)).unwrap();
    assert!(jobs.append_output(id, "line 1\n", at(1)).unwrap());
    assert!(jobs.append_output(id, "line 2\n", at(2)).unwrap());
    let job = jobs.get(id).unwrap().unwrap();
    assert_eq!(job.output, "line 1\nline 2\n");
    assert_eq!(job.updated_at, at(2));

    let chunk = format!("{}\n", "ü".repeat(1_000)); // 2,001 bytes
    for _ in 0..40 {
        jobs.append_output(id, &chunk, at(3)).unwrap();
    }
    jobs.append_output(id, "the end", at(4)).unwrap();
    let output = jobs.get(id).unwrap().unwrap().output;
    assert!(output.len() <= MAX_JOB_OUTPUT, "{}", output.len());
    assert!(output.len() > MAX_JOB_OUTPUT - 8, "{}", output.len());
    assert!(output.starts_with(OUTPUT_DROPPED_MARKER));
    assert!(!output.contains("line 1"));
    assert!(output.ends_with("ü\nthe end"));
    assert!(!jobs.append_output(99, "x", at(5)).unwrap());
}

fn unfinished_jobs_oldest_first(f: &Fixture) {
    let jobs = f.store.jobs();
    let a = jobs.record(new_job(&user("U1"), "a"), at(0)).unwrap();
    let b = jobs.record(new_job(&user("U2"), "b"), at(1)).unwrap();
    let c = jobs.record(new_job(&user("U1"), "c"), at(2)).unwrap();
    jobs.set_status(a, JobStatus::Running, at(3)).unwrap();
    jobs.set_status(b, JobStatus::Succeeded, at(3)).unwrap();
    assert_eq!(ids(&jobs.unfinished().unwrap()), vec![a, c]);
    // Reconciliation: StackStorm no longer knows them.
    for job in jobs.unfinished().unwrap() {
        jobs.set_status(job.id, JobStatus::Unknown, at(4)).unwrap();
    }
    assert!(jobs.unfinished().unwrap().is_empty());
}

fn stackstorms_times_and_links_are_kept(f: &Fixture) {
    use crate::store::jobs::ExecutionReport;
    let jobs = f.store.jobs();
    let id = jobs.record(new_job(&user("U1"), "x"), at(0)).unwrap();
    jobs.set_executions(id, &executions(&["e1", "e2"]), at(0))
        .unwrap();
    let report = |status, from, to: Option<i64>, url: &str| ExecutionReport {
        status,
        started_at: Some(at(from)),
        ended_at: to.map(at),
        web_url: Some(url.to_owned()),
    };
    // Learnt an hour later: StackStorm's times, not the bridge's, say how long it ran.
    jobs.report_execution(
        "e2",
        &report(
            JobStatus::Succeeded,
            2,
            Some(5),
            "https://st2/#/history/e2/general",
        ),
        at(3600),
    )
    .unwrap();
    jobs.report_execution(
        "e1",
        &report(JobStatus::Running, 1, None, "https://st2/e1"),
        at(3600),
    )
    .unwrap();
    let job = jobs.get(id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(
        (job.run_started_at, job.run_ended_at),
        (Some(at(1)), Some(at(5)))
    );
    jobs.report_execution(
        "e1",
        &report(JobStatus::Failed, 1, Some(9), "https://st2/e1"),
        at(7200),
    )
    .unwrap();
    let job = jobs.get(id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        (job.run_started_at, job.run_ended_at),
        (Some(at(1)), Some(at(9)))
    );
    assert_eq!(job.finished_at, Some(at(7200)));
    assert_eq!(
        job.web_urls.get("e1").map(String::as_str),
        Some("https://st2/e1")
    );
    assert_eq!(job.web_urls.len(), 2);
    // A status alone keeps what was learnt.
    jobs.set_status_by_execution("e1", JobStatus::Failed, at(7300))
        .unwrap();
    assert_eq!(jobs.get(id).unwrap().unwrap().run_ended_at, Some(at(9)));
}

on_every_backend!(
    stackstorms_times_and_links_are_kept,
    records_round_trip_with_increasing_ids,
    ids_are_never_reused_after_a_purge,
    executions_combine_into_the_job_status,
    finished_jobs_never_go_back,
    purge_keeps_unfinished_jobs,
    purge_works_through_many_jobs,
    lists_filter_page_and_keep_users_apart,
    output_is_capped,
    unfinished_jobs_oldest_first,
);

#[test]
fn memory_keeps_a_bounded_number_of_jobs() {
    let jobs = SessionStore::memory().jobs();
    assert!(!jobs.is_persistent());
    let running = jobs.record(new_job(&user("U1"), "long"), at(0)).unwrap();
    for i in 1..MEMORY_MAX_JOBS {
        let id = jobs.record(new_job(&user("U1"), "x"), at(0)).unwrap();
        if i < 3 {
            jobs.set_executions(id, &[format!("e{i}")], at(0)).unwrap();
            jobs.set_status(id, JobStatus::Succeeded, at(0)).unwrap();
        }
    }
    assert_eq!(jobs.count().unwrap(), MEMORY_MAX_JOBS);
    let newest = jobs.record(new_job(&user("U1"), "x"), at(1)).unwrap();
    assert_eq!(jobs.count().unwrap(), MEMORY_MAX_JOBS);
    assert!(
        jobs.get(running).unwrap().is_some(),
        "running jobs are dropped last"
    );
    assert!(
        jobs.get(2).unwrap().is_none(),
        "the oldest finished one went"
    );
    assert!(jobs.by_execution("e1").unwrap().is_none());
    assert!(jobs.get(3).unwrap().is_some());
    assert!(jobs.get(newest).unwrap().is_some());
    // Only unfinished jobs left past the finished one: the oldest goes.
    jobs.record(new_job(&user("U1"), "x"), at(2)).unwrap();
    jobs.record(new_job(&user("U1"), "x"), at(2)).unwrap();
    assert!(jobs.get(running).unwrap().is_none());
    assert_eq!(jobs.count().unwrap(), MEMORY_MAX_JOBS);
}

#[test]
fn sqlite_jobs_and_their_ids_survive_reopen() {
    let tmp = TempStore::new();
    {
        let jobs = tmp.open().jobs();
        assert!(jobs.is_persistent());
        for i in 0..3 {
            jobs.record(new_job(&user("U1"), "x"), at(i)).unwrap();
        }
        jobs.set_executions(2, &executions(&["e1", "e2"]), at(3))
            .unwrap();
        jobs.set_status_by_execution("e1", JobStatus::Failed, at(4))
            .unwrap();
        jobs.set_status(3, JobStatus::Succeeded, at(5)).unwrap();
        jobs.append_output(1, "some output", at(5)).unwrap();
        // The newest job is purged: its id must still not come back.
        assert_eq!(jobs.purge(at(100)).unwrap(), 1);
    }
    let jobs = tmp.open().jobs();
    assert_eq!(jobs.count().unwrap(), 2);
    assert_eq!(jobs.get(1).unwrap().unwrap().output, "some output");
    assert_eq!(ids(&jobs.unfinished().unwrap()), vec![1, 2]);
    // The per-execution statuses were kept: e2 finishing finishes the job as failed.
    jobs.set_status_by_execution("e2", JobStatus::Succeeded, at(6))
        .unwrap();
    assert_eq!(status_of(&jobs, 2), JobStatus::Failed);
    assert_eq!(jobs.record(new_job(&user("U1"), "x"), at(7)).unwrap(), 4);
}

#[test]
fn sqlite_checkpoint_thread_closes_cleanly() {
    let tmp = TempStore::new();
    {
        let jobs = tmp.open().jobs();
        // 800 writes: the checkpoint thread was nudged a dozen times meanwhile.
        for i in 0..400 {
            let id = jobs.record(new_job(&user("U1"), "x"), at(i)).unwrap();
            jobs.set_status(id, JobStatus::Succeeded, at(i)).unwrap();
        }
    }
    // Dropping the store joined the thread; its connection closed last, which copied
    // the WAL into the file and removed it.
    assert!(!tmp.dir.path().join("sessions.db-wal").exists());
    assert_eq!(tmp.open().jobs().count().unwrap(), 400);
}
