//! Fault drills: several people run commands in rooms and direct chats while StackStorm's
//! stream is cut, its services go away, its API fails or slows down, tokens are revoked and
//! the bridge itself is killed. Every drill counts commands sent, results delivered, lost
//! and duplicated, and requires 0 lost and 0 duplicated (a command StackStorm refused gets a
//! clear error, which counts as answered). The emulator runs in its default mode: the
//! stream close-delimited as behind st2's nginx, on a busy message bus (no heartbeats).

use std::time::{Duration, Instant};

use crate::{
    bridge_process::{binary_config, bridge_ready, scrape, BridgeProcess, RECONCILED},
    crowd::{Crowd, CrowdOptions, Tally},
};

/// How long a drill waits for the last results once its faults are over.
const SETTLE: Duration = Duration::from_secs(30);

fn assert_clean(what: &str, t: &Tally) {
    assert_eq!(t.lost, 0, "{what}: lost {:?} — {t}", t.lost_ids);
    assert_eq!(t.duplicated, 0, "{what}: {t}");
    assert_eq!(t.misrouted, 0, "{what}: {t}");
    assert_eq!(t.given_up, 0, "{what}: {t}");
}

/// Sends command `n` from person `n % people`, every third one as a direct message.
async fn send(crowd: &mut Crowd, n: usize) {
    let people = 3;
    crowd.command(n % people, n, n % 3 == 2).await;
}

#[actix_rt::test]
async fn a_hundred_stream_cuts_under_load_lose_and_repeat_nothing() {
    let mut crowd = Crowd::start(CrowdOptions::default()).await;
    crowd.cut_under_load(100).await;
    let t = crowd.settle(SETTLE).await;
    eprintln!("100 stream cuts: {t}");
    assert_clean("100 stream cuts", &t);
    assert_eq!(t.delivered, t.sent, "{t}");
    assert!(crowd.metric("stormbridge_stream_gaps_total").await >= 50.0);
}

/// A burst of commands while StackStorm answers slowly: the bridge has StackStorm work on at
/// most 32 runs at once (the rest wait their turn, each with its own connection otherwise)
/// and every command still gets its result, once.
#[actix_rt::test]
async fn a_burst_of_commands_reaches_stackstorm_a_bounded_number_at_a_time() {
    let mut crowd = Crowd::start(CrowdOptions {
        people: 20,
        ..CrowdOptions::default()
    })
    .await;
    crowd
        .emulator
        .set_response_delay(Duration::from_millis(300));
    for n in 0..100 {
        crowd.command(n % 20, n, false).await;
    }
    let t = crowd.settle(SETTLE).await;
    assert_clean("a burst of 100 commands", &t);
    assert_eq!(t.delivered, t.sent, "{t}");
    let most = crowd.emulator.alias_runs_in_flight_max();
    assert!(
        (8..=32).contains(&most),
        "StackStorm answered {most} runs at once"
    );
}

#[actix_rt::test]
async fn a_ten_second_stream_outage_behind_nginx_loses_nothing() {
    let mut crowd = Crowd::start(CrowdOptions::default()).await;
    let mut n = 0;
    for _ in 0..6 {
        send(&mut crowd, n).await;
        n += 1;
    }
    crowd.emulator.set_stream_service(false);
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(10) {
        send(&mut crowd, n).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // nginx answered every reconnect with its `retry: 1000` page: none counted as a stream.
    assert!(crowd.emulator.stream_error_pages() > 3);
    // Results do not wait for the stream: while it is down they are fetched from the API.
    let during = crowd.settle(Duration::from_secs(15)).await;
    assert_eq!(
        during.delivered, during.sent,
        "before the stream is back: {during}"
    );
    crowd.emulator.set_stream_service(true);
    for _ in 0..6 {
        send(&mut crowd, n).await;
        n += 1;
    }
    let t = crowd.settle(SETTLE).await;
    eprintln!("10 s stream outage: {t}");
    assert_clean("stream outage", &t);
    assert_eq!(t.delivered, t.sent, "{t}");
    assert!(
        crowd
            .metric("stormbridge_results_delivered_total{source=\"reconciliation\"}")
            .await
            >= 1.0
    );
}

#[actix_rt::test]
async fn a_stackstorm_restart_loses_nothing() {
    let mut crowd = Crowd::start(CrowdOptions::default()).await;
    let mut n = 0;
    for _ in 0..9 {
        send(&mut crowd, n).await;
        n += 1;
    }
    // Executions finish while StackStorm's front door is closed: their announcements go
    // to nobody, as on a real restart.
    crowd.emulator.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    crowd.emulator.restart().await.expect("emulator restarts");
    crowd.wait_ready().await;
    for _ in 0..9 {
        send(&mut crowd, n).await;
        n += 1;
    }
    let t = crowd.settle(SETTLE).await;
    eprintln!("StackStorm restart: {t}");
    assert_clean("StackStorm restart", &t);
    assert_eq!(t.delivered + t.refused, t.sent, "{t}");
}

#[actix_rt::test]
async fn a_failing_then_slow_api_answers_every_command() {
    let mut crowd = Crowd::start(CrowdOptions::default()).await;
    let mut n = 0;
    for _ in 0..6 {
        send(&mut crowd, n).await;
        n += 1;
    }
    crowd.wait_acknowledged().await;
    crowd.emulator.set_api_service(false);
    for _ in 0..6 {
        send(&mut crowd, n).await;
        n += 1;
    }
    // A stream cut while the API is down: the results owed cannot be looked up yet.
    crowd.emulator.drop_streams();
    tokio::time::sleep(Duration::from_secs(2)).await;
    crowd.emulator.set_api_service(true);
    crowd
        .emulator
        .set_response_delay(Duration::from_millis(1500));
    for _ in 0..6 {
        send(&mut crowd, n).await;
        n += 1;
    }
    crowd.emulator.drop_streams();
    let t = crowd.settle(SETTLE).await;
    crowd.emulator.set_response_delay(Duration::ZERO);
    eprintln!("API 503 then slow: {t}");
    assert_clean("API 503 then slow", &t);
    assert_eq!(t.refused, 6, "the commands sent while st2api was down: {t}");
    assert_eq!(t.delivered, 12, "{t}");
}

#[actix_rt::test]
async fn revoked_tokens_are_renewed_and_nothing_is_lost() {
    let mut crowd = Crowd::start(CrowdOptions::default()).await;
    let logins = crowd.emulator.login_count();
    let mut n = 0;
    for round in 0..3 {
        for _ in 0..5 {
            send(&mut crowd, n).await;
            n += 1;
        }
        crowd.emulator.revoke_all_tokens();
        if round == 1 {
            crowd.emulator.drop_streams();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = crowd.settle(SETTLE).await;
    eprintln!("revoked tokens: {t}");
    assert_clean("revoked tokens", &t);
    assert_eq!(t.delivered, t.sent, "{t}");
    assert!(crowd.emulator.login_count() > logins);
}

#[actix_rt::test]
async fn a_busy_bus_silences_the_stream_without_loss_or_a_reconnect_loop() {
    // The bus is busy (an event every 200 ms, heartbeat 1 s): the filtered stream gets no
    // bytes at all. With the idle refresh off, the one connection must simply stay.
    let opts = CrowdOptions {
        idle_refresh: 0,
        ..CrowdOptions::default()
    };
    let mut crowd = Crowd::start(opts).await;
    let connects = crowd.emulator.stream_connects_total();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(6) {
        send(&mut crowd, n).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let t = crowd.settle(SETTLE).await;
    eprintln!("busy bus, no refresh: {t}");
    assert_clean("busy bus", &t);
    assert_eq!(t.delivered, t.sent);
    assert_eq!(
        crowd.emulator.stream_connects_total(),
        connects,
        "no reconnects"
    );
    assert!(
        crowd.emulator.background_events_total() > 20,
        "the bus was busy"
    );
}

#[actix_rt::test]
async fn a_silent_stream_is_replaced_before_it_is_dropped() {
    // Idle refresh 3 s on a bus busy enough to silence the stream: after each quiet spell
    // the bridge replaces the connection, make-before-break; bursts of commands land
    // around the switch, and nothing is lost or repeated.
    let mut crowd = Crowd::start(CrowdOptions::default()).await;
    let connects = crowd.emulator.stream_connects_total();
    let mut n = 0;
    for _ in 0..5 {
        for _ in 0..3 {
            send(&mut crowd, n).await;
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(2800..3400))).await;
    }
    let t = crowd.settle(SETTLE).await;
    eprintln!("silent stream replaced: {t}");
    assert_clean("idle refresh", &t);
    assert_eq!(t.delivered, t.sent);
    let refreshes = crowd.metric("stormbridge_stream_refreshes_total").await;
    assert!(
        refreshes >= 2.0,
        "the silent stream was replaced: {refreshes}"
    );
    let reconnects = crowd.emulator.stream_connects_total() - connects;
    assert!(
        reconnects <= 7,
        "one replacement per quiet spell, not a loop: {reconnects}"
    );
    assert_eq!(
        crowd.metric("stormbridge_stream_reconnects_total").await,
        0.0
    );
}

#[actix_rt::test]
async fn a_killed_and_restarted_bridge_with_a_store_owes_and_repeats_nothing() {
    use std::sync::Arc;
    crate::support::init_test_log();
    // Executions take 4 s, longer than a round of commands: every result of a round is
    // owed when the bridge is killed, and finishes while no bridge runs.
    let emulator = stormbridge::emulator::Emulator::start(stormbridge::emulator::EmulatorConfig {
        execution_delay: Duration::from_secs(4),
        ..CrowdOptions::default().emulator
    })
    .await
    .expect("emulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::support::free_port();
    let config = binary_config(dir.path(), &emulator, port, "");
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let mut sent = std::collections::BTreeMap::new();
    let tally = |sent: &std::collections::BTreeMap<usize, (usize, bool)>| {
        let lines: Vec<crate::crowd::Seen> = seen
            .lock()
            .iter()
            .map(|l| crate::crowd::Seen {
                console: "c1".into(),
                line: l.clone(),
            })
            .collect();
        Tally::of(sent, &lines)
    };
    let mut n = 0;
    for round in 0..3 {
        let mut bridge = BridgeProcess::start(&config, &seen);
        assert!(bridge_ready(port).await, "bridge {round} became ready");
        // The results owed from before the kill come first, so the next kill cannot land
        // while one is being written (a message cut off mid-write can be neither known
        // posted nor safely posted again).
        assert!(
            eventually!(Duration::from_secs(30), tally(&sent).unanswered() == 0),
            "bridge {round} posted what was owed: {}",
            tally(&sent)
        );
        for _ in 0..12 {
            let direct = n % 3 == 2;
            bridge.say(&if direct {
                format!("/dm st2 run echo drill-{n}")
            } else {
                format!("!st2 run echo drill-{n}")
            });
            sent.insert(n, (0usize, direct));
            n += 1;
            tokio::time::sleep(Duration::from_millis(fastrand::u64(10..80))).await;
        }
        // Killed (SIGKILL) as soon as StackStorm has accepted the last command, with every
        // result of the round on its way; those executions finish while no bridge listens.
        let last = format!("`run echo drill-{}`", n - 1);
        assert!(eventually!(
            Duration::from_secs(10),
            seen.lock().iter().any(|l| l.contains(&last))
        ));
        bridge.process.kill();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..400))).await;
    }
    // A last bridge collects what is owed, with the stream stalled: only StackStorm's API
    // can tell it the results it missed.
    emulator.stall_streams(true);
    // (It is never ready: a stalled stream is not a working one.)
    let _last = BridgeProcess::start(&config, &seen);
    eventually!(Duration::from_secs(30), tally(&sent).unanswered() == 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = tally(&sent);
    eprintln!("bridge killed three times: {t}");
    assert!(
        scrape(port, RECONCILED).await.unwrap_or(0.0) >= 1.0,
        "the restarted bridge posted what finished while none ran"
    );
    assert_eq!(t.duplicated, 0, "{t}");
    assert_eq!(t.misrouted, 0, "{t}");
    // Every command got its result.
    let about_lost: Vec<String> = seen
        .lock()
        .iter()
        .filter(|l| {
            t.lost_ids
                .iter()
                .any(|n| l.contains(&format!("drill-{n}`")) || l.contains(&format!("drill-{n} ")))
        })
        .cloned()
        .collect();
    assert_eq!(
        t.unanswered(),
        0,
        "lost {:?}: {t}; what was said of them: {about_lost:#?}",
        t.lost_ids
    );
    // Every kill came after the acknowledgements, and a command's execution id is kept
    // before its acknowledgement goes out: none is "outcome unknown".
    assert_eq!(t.given_up, 0, "{t}");
    assert_eq!(t.delivered, t.sent, "{t}");
}

#[actix_rt::test]
async fn a_result_queued_behind_a_rate_limit_at_a_kill_is_posted_by_the_next_start() {
    use std::sync::Arc;
    crate::support::init_test_log();
    let emulator = stormbridge::emulator::Emulator::start(CrowdOptions::default().emulator)
        .await
        .expect("emulator starts");
    let mm = crate::fake_mattermost::FakeMattermost::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::support::free_port();
    let config = binary_config(dir.path(), &emulator, port, &mm.chat_toml(""));
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let mut bridge = BridgeProcess::start(&config, &seen);
    assert!(bridge_ready(port).await, "the bridge became ready");
    // Mattermost answers the acknowledgement with a 429 and two minutes' Retry-After: the
    // result queues behind it, claimed by the bridge but not posted, when it is killed.
    mm.rate_limit_next_posts(1, 120);
    let town = mm.town_square.clone();
    mm.post_as(&mm.alice_id, &town, "!st2 run echo queued-at-the-kill", "");
    let stream = "stormbridge_results_delivered_total{source=\"stream\"}";
    assert!(
        eventually!(
            Duration::from_secs(20),
            scrape(port, stream).await.unwrap_or(0.0) >= 1.0
        ),
        "the result came on the stream"
    );
    let execution = emulator
        .executions()
        .into_iter()
        .find(|e| {
            e.parameters
                .get("cmd")
                .is_some_and(|c| c.contains("queued-at-the-kill"))
        })
        .expect("StackStorm ran the command");
    let result = format!("execution: {}", execution.id);
    assert!(
        mm.bot_posts_containing(&town, &result).is_empty(),
        "held by the rate limit"
    );
    bridge.process.kill();
    // The next start owes it (the store only counts a result posted once Mattermost has it)
    // and posts it, once.
    let _next = BridgeProcess::start(&config, &seen);
    assert!(bridge_ready(port).await, "the bridge restarted");
    assert!(
        eventually!(
            Duration::from_secs(30),
            !mm.bot_posts_containing(&town, &result).is_empty()
        ),
        "the result owed at the kill was posted after the restart"
    );
    assert!(scrape(port, RECONCILED).await.unwrap_or(0.0) >= 1.0);
    // Once nothing is owed, no second copy can come.
    assert!(
        eventually!(
            Duration::from_secs(10),
            scrape(port, "stormbridge_results_pending").await == Some(0.0)
        ),
        "nothing owed any more"
    );
    assert_eq!(
        mm.bot_posts_containing(&town, &result).len(),
        1,
        "posted once"
    );
}
