//! Jobs in SQLite, against issue 17's budgets: recording a job, setting its execution and
//! finishing it add under 1 ms to a command's local handling, and 100,000 jobs of
//! realistic size take under 50 MB on disk.
//!
//! First fills a fresh SQLite store with 100,000 jobs the way the bridge writes them
//! (three transactions each: record, set the execution, finish) and prints the latency of
//! those three steps per command (p50, p99, max, over all 100,000 as the file grows) and
//! the file's size. Then criterion measures the same three steps on that full file, and
//! on the memory backend for comparison. Last, for information: a user's list, an
//! audit list by status and a purge of the older half, on the full file.
//!
//! The jobs: 500 users in 50 rooms, alias commands of the benches' generated shapes
//! (`<pack> <verb> <noun><tag> <name> <count> env=…`, three parameters, one StackStorm
//! execution id), a thread on every third; every twentieth is a local command that
//! captured 1 KiB of output instead. 90% succeed, the rest fail or time out.
//!
//! Run: `cargo bench --bench jobs`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::Criterion;
use serde_json::json;
use stormbridge::domain::message::RoomKind;
use stormbridge::store::{
    JobKind, JobQuery, JobStatus, JobStore, NewJob, SessionStore, StoreKey, UserKey,
};

const JOBS: usize = 100_000;

/// Job `i` as the bridge would record it.
fn realistic_job(i: usize) -> NewJob {
    let user = i % 500;
    let room = i % 50;
    let (text, kind, parameters) = if i.is_multiple_of(20) {
        (
            "!st2local df -h /var".to_owned(),
            JobKind::Local {
                command: "df".into(),
            },
            json!({"path": "/var"}),
        )
    } else {
        let pack = common::pick(common::PACKS, i);
        let verb = common::pick(common::VERBS, i / 7);
        let noun = common::pick(common::NOUNS, i / 13);
        let env = ["prod", "staging", "dev"][i % 3];
        (
            format!(
                "!st2 {pack} {verb} {noun}{} web-frontend-{} 3 env={env}",
                i % 97,
                i % 40
            ),
            JobKind::Alias {
                alias_ref: format!("{pack}.{verb}_{noun}_{}", i % 97),
            },
            json!({"name": format!("web-frontend-{}", i % 40), "count": 3, "env": env}),
        )
    };
    NewJob {
        user: UserKey::new("slack-main", &format!("U0{user:08X}")),
        user_name: format!("User Number{user}"),
        connection: "slack-main".into(),
        room_id: format!("C0{room:08X}"),
        room_name: Some(format!("#ops-team-{room}")),
        room_kind: RoomKind::Group,
        thread: i.is_multiple_of(3).then(|| format!("1700000000.{i:06}")),
        text,
        kind,
        parameters: parameters.as_object().cloned().unwrap_or_default(),
        status: JobStatus::Requested,
        decided_by: None,
    }
}

fn final_status(i: usize) -> JobStatus {
    match i % 50 {
        0..=44 => JobStatus::Succeeded,
        45..=48 => JobStatus::Failed,
        _ => JobStatus::TimedOut,
    }
}

/// About 1 KiB of `df -h` output.
fn local_output() -> String {
    let mut out = String::from("Filesystem      Size  Used Avail Use% Mounted on\n");
    for n in 0..20 {
        out.push_str(&format!(
            "/dev/nvme0n1p{n:<3} 100G   42G   58G  42% /var/lib/{n}\n"
        ));
    }
    out
}

/// The three writes the bridge makes for one command.
fn run_command(jobs: &JobStore, i: usize, output: &str, now: DateTime<Utc>) {
    let id = jobs.record(realistic_job(i), now).expect("recorded");
    if i.is_multiple_of(20) {
        jobs.append_output(id, output, now).expect("output");
        jobs.set_status(id, final_status(i), now).expect("finished");
    } else {
        let execution = format!("{:024x}", 0x65f0_0000_0000_0000_0000_0000u128 + i as u128);
        jobs.set_executions(id, std::slice::from_ref(&execution), now)
            .expect("execution set");
        jobs.set_status_by_execution(&execution, final_status(i), now)
            .expect("finished");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo test --benches` runs benches once without `--bench`: keep that quick.
    let full = std::env::args().any(|a| a == "--bench");
    let jobs_count = if full { JOBS } else { 1_000 };

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("jobs.db");
    let key = StoreKey::generate().expect("key");
    let store = SessionStore::open_sqlite(&path, &key).expect("store opens");
    let jobs = store.jobs();
    let output = local_output();
    let start = Utc::now() - TimeDelta::days(30);

    let mut took = Vec::with_capacity(jobs_count);
    let filling = Instant::now();
    for i in 0..jobs_count {
        let now = start + TimeDelta::seconds(i as i64 * 20);
        let t = Instant::now();
        run_command(&jobs, i, &output, now);
        took.push(t.elapsed());
    }
    let filled_in = filling.elapsed();
    took.sort_unstable();
    println!(
        "sqlite, record + set execution + finish, over {jobs_count} commands as the file grows: \
         p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (budget: under 1 ms); {jobs_count} in {:.1} s",
        percentile(&took, 0.50).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        filled_in.as_secs_f64(),
    );
    assert_eq!(jobs.count().expect("count"), jobs_count);
    drop(jobs);
    drop(store);
    // Closing the last connection checkpoints the WAL into the file and removes it.
    let size = std::fs::metadata(&path).expect("file").len();
    let wal = std::fs::metadata(dir.path().join("jobs.db-wal")).map_or(0, |m| m.len());
    println!(
        "sqlite file after {jobs_count} jobs: {:.1} MB ({} bytes per job; WAL left: {wal} bytes) \
         (budget for 100,000: under 50 MB)",
        size as f64 / 1e6,
        size / jobs_count as u64,
    );

    let mut c = Criterion::default().configure_from_args();
    let store = SessionStore::open_sqlite(&path, &key).expect("store reopens");
    let jobs = store.jobs();
    let mut i = jobs_count;
    c.bench_function(
        &format!("jobs/sqlite/record+execution+finish ({jobs_count} in the file)"),
        |b| {
            b.iter(|| {
                i += 1;
                run_command(black_box(&jobs), i, &output, Utc::now());
            })
        },
    );
    let memory = SessionStore::memory().jobs();
    let mut i = 0;
    c.bench_function("jobs/memory/record+execution+finish", |b| {
        b.iter(|| {
            i += 1;
            run_command(black_box(&memory), i, &output, Utc::now());
        })
    });
    c.final_summary();

    let user_list = JobQuery {
        user: Some(realistic_job(7).user),
        ..JobQuery::default()
    };
    let failed_list = JobQuery {
        status: Some(JobStatus::TimedOut),
        ..JobQuery::default()
    };
    let t = Instant::now();
    let listed = jobs.list(&user_list).expect("list").len();
    let user_list_took = t.elapsed();
    let t = Instant::now();
    let audited = jobs.list(&failed_list).expect("list").len();
    let audit_took = t.elapsed();
    let t = Instant::now();
    let purged = jobs.purge(start + TimeDelta::days(15)).expect("purge");
    println!(
        "on the full file: a user's 10 newest ({listed}) {:.2} ms; everyone's 10 newest timed \
         out ({audited}) {:.2} ms; purge of {purged} jobs {:.0} ms",
        user_list_took.as_secs_f64() * 1e3,
        audit_took.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3,
    );
}
