//! The Rocket.Chat backend against a fake Rocket.Chat server (tests/it/rocketchat/fake.rs:
//! the REST API and the realtime API).

/// The fake Rocket.Chat (also used by `contract::rocketchat`).
pub(crate) mod fake;

use std::time::Duration;

use serde_json::json;

use self::fake::{
    js_length, FakeRocketChat, Stored, ALICE, BOT, BOT_TOKEN, GENERAL, MAX_ALLOWED_SIZE, OPS,
    OTHER_BOT,
};
use crate::support::{captured_logs, with_test_aliases, TestBridge, WAIT};

async fn rc_bridge_with(extra: &str) -> (FakeRocketChat, TestBridge) {
    let fake = FakeRocketChat::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml(extra);
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    (fake, b)
}

async fn rc_bridge() -> (FakeRocketChat, TestBridge) {
    rc_bridge_with("").await
}

/// The first bot message in `rid` containing `needle`; panics after `WAIT`.
async fn bot_message(fake: &FakeRocketChat, rid: &str, needle: &str) -> Stored {
    let mut found;
    let ok = eventually!(WAIT, {
        found = fake.bot_messages_containing(rid, needle);
        !found.is_empty()
    });
    assert!(
        ok,
        "no bot message containing {needle:?} in {rid}; bot messages: {:#?}",
        fake.bot_messages()
            .iter()
            .map(|m| m.message.clone())
            .collect::<Vec<_>>()
    );
    found.remove(0)
}

async fn executions(b: &TestBridge, n: usize) -> Vec<stormbridge::emulator::ExecutionRecord> {
    let ok = eventually!(WAIT, b.emulator.executions().len() >= n);
    assert!(
        ok,
        "expected {n} executions, got {:?}",
        b.emulator.executions()
    );
    b.emulator.executions()
}

#[actix_rt::test]
async fn a_room_command_is_answered_in_the_room_and_a_thread_reply_in_its_thread() {
    let (fake, b) = rc_bridge().await;

    fake.post_as(ALICE, GENERAL, "!st2 run date", None);
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.alias_ref, "core.run_local");
    assert_eq!(
        e.request["user"], ALICE,
        "StackStorm gets the Rocket.Chat user id"
    );
    assert_eq!(e.request["source_channel"], GENERAL);
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "rc");
    assert_eq!(ctx["room"], GENERAL);
    assert_eq!(ctx["room_kind"], "group");
    assert!(ctx["thread"].is_null(), "{ctx}");
    let result = bot_message(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    assert!(
        result.str("msg").contains("succeeded"),
        "{:?}",
        result.message
    );
    assert_eq!(
        result.str("tmid"),
        "",
        "not threaded when the command was not"
    );
    // In a shared room the result is addressed to the person, with a mention that notifies.
    assert!(
        result.str("msg").starts_with("@alice"),
        "{:?}",
        result.message
    );

    // In a thread (and a private group): the result goes to the same thread (tmid).
    let root = fake.post_as(ALICE, OPS, "!st2 run hostname", None);
    executions(&b, 2).await;
    fake.post_as(ALICE, OPS, "@stormbot !st2 run uptime", Some(&root));
    let e3 = executions(&b, 3).await.remove(2);
    assert_eq!(e3.parameters.get("cmd").map(String::as_str), Some("uptime"));
    assert_eq!(e3.request["source_context"]["thread"], root.as_str());
    let result = bot_message(&fake, OPS, &format!("execution: {}", e3.id)).await;
    assert_eq!(result.str("tmid"), root, "{:?}", result.message);

    // The reply updated the thread's first message, which the stream sent again: that
    // command does not run a second time.
    fake.post_as(ALICE, GENERAL, "!st2 run whoami", None);
    executions(&b, 4).await;
    let e = executions(&b, 4).await.remove(3);
    bot_message(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .map(|e| e.parameters.get("cmd").cloned().unwrap_or_default())
        .collect();
    assert_eq!(cmds, ["date", "hostname", "uptime", "whoami"]);

    // The ids access rules use: the user id and the room id, and their names.
    fake.post_as(ALICE, GENERAL, "!st2whoami", None);
    let whoami = bot_message(&fake, GENERAL, "Access rules match you").await;
    for id in [
        format!("rc:{ALICE}"),
        "rc:name:alice".into(),
        format!("rc:{GENERAL}"),
        "rc:name:general".into(),
    ] {
        assert!(
            whoami.str("msg").contains(&id),
            "{id}: {:?}",
            whoami.message
        );
    }
}

#[actix_rt::test]
async fn direct_commands_are_answered_directly_and_whispers_open_the_room_once() {
    let (fake, b) = rc_bridge().await;
    let dm = fake.direct_room(ALICE, BOT);
    fake.post_as(ALICE, &dm, "st2 run date", None);
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.request["user"], ALICE);
    assert_eq!(e.request["source_channel"], dm.as_str());
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    let result = bot_message(&fake, &dm, &format!("execution: {}", e.id)).await;
    assert!(
        !result.str("msg").starts_with("@alice"),
        "no mention in a direct room"
    );
    assert!(
        fake.bot_messages_containing(GENERAL, &e.id).is_empty(),
        "nothing leaks into the room"
    );

    // Two whispers: the direct room is opened (by the user's name) once and kept.
    for n in 1..=2 {
        b.emulator.announce(
            "stormbridge",
            json!({"message": format!("whisper {n}"), "channel": format!("rc:{GENERAL}"), "user": ALICE, "whisper": true}),
        );
        bot_message(&fake, &dm, &format!("whisper {n}")).await;
    }
    assert_eq!(fake.requests("POST /api/v1/im.create"), 1);
    assert_eq!(fake.requests("GET /api/v1/users.info"), 1);
    assert!(fake.bot_messages_containing(GENERAL, "whisper").is_empty());
}

#[actix_rt::test]
async fn bots_system_messages_and_edits_are_not_commands() {
    let (fake, b) = rc_bridge().await;
    let said = fake.post_as(ALICE, GENERAL, "hello all", None);
    fake.post_as(OTHER_BOT, GENERAL, "!st2 run date", None);
    fake.post_as(BOT, GENERAL, "!st2 run hostname", None);
    fake.system_message(GENERAL, "uj", ALICE);
    fake.edit(&said, "!st2 run whoami");
    fake.post_as(ALICE, GENERAL, "!st2 run uptime", None);
    let e = executions(&b, 1).await.remove(0);
    bot_message(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    let all = b.emulator.executions();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].parameters.get("cmd").map(String::as_str),
        Some("uptime")
    );
    assert_eq!(all[0].request["user"], ALICE);
}

#[actix_rt::test]
async fn a_long_reply_arrives_whole_in_parts_the_server_takes() {
    let (fake, b) = rc_bridge().await;
    // Lines with characters that JavaScript counts twice: more than three times the limit.
    let lines: Vec<String> = (0..400)
        .map(|i| format!("line {i:05} 🚀 {}", "x".repeat(40)))
        .collect();
    let long = lines.join("\n");
    assert!(js_length(&long) > 3 * MAX_ALLOWED_SIZE);
    b.emulator.announce(
        "stormbridge",
        json!({"message": long, "channel": format!("rc:{GENERAL}")}),
    );
    let ok = eventually!(WAIT, {
        fake.bot_messages_containing(GENERAL, "line 00399").len() == 1
    });
    assert!(ok, "the last part never arrived");
    let parts: Vec<String> = fake
        .bot_messages()
        .into_iter()
        .filter(|m| m.str("msg").contains("line 0"))
        .map(|m| m.str("msg").to_owned())
        .collect();
    assert!(parts.len() >= 4, "{} parts", parts.len());
    assert!(parts.iter().all(|p| js_length(p) <= MAX_ALLOWED_SIZE));
    let joined = parts.join("\n");
    let got: Vec<&str> = joined.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(got, lines, "every line once, in order");
}

#[actix_rt::test]
async fn a_used_up_window_holds_the_queue_until_its_reset() {
    let (fake, b) = rc_bridge().await;
    fake.exhaust_window_next(1, Duration::from_millis(1500));
    for n in 1..=2 {
        b.emulator.announce(
            "stormbridge",
            json!({"message": format!("window {n}"), "channel": format!("rc:{GENERAL}")}),
        );
    }
    let first = bot_message(&fake, GENERAL, "window 1").await;
    let second = bot_message(&fake, GENERAL, "window 2").await;
    let waited = second.at.duration_since(first.at);
    assert!(
        waited >= Duration::from_millis(1400),
        "sent {waited:?} after a window that reset in 1.5 s"
    );
    assert!(
        fake.rate_limited_at().is_empty(),
        "waited instead of earning a 429"
    );
}

/// Issue 15: the server drops the websocket mid-session; the bridge connects, logs in and
/// subscribes again, a command said afterwards is answered, and a result announced while it
/// was away arrives once.
#[actix_rt::test]
async fn a_dropped_websocket_reconnects_and_what_was_queued_arrives_once() {
    let (fake, b) = rc_bridge().await;
    let before = fake.handshakes();
    assert_eq!(before, (1, 1, 1), "connect, login, subscription");

    // The server's pings are answered, and the bridge pings when nothing is said.
    fake.server_ping("srv-1");
    assert!(
        eventually!(WAIT, fake.pongs() == ["srv-1"]),
        "{:?}",
        fake.pongs()
    );
    assert!(
        eventually!(WAIT, fake.client_pings() >= 1),
        "no keepalive ping"
    );

    fake.refuse_websockets(true);
    fake.drop_websockets();
    let down = eventually!(WAIT, b.actor("chat:rc").await["state"] == "reconnecting");
    assert!(down, "{}", b.actor("chat:rc").await);
    b.wait_ready(503).await;

    b.emulator.announce(
        "stormbridge",
        json!({"message": "queued while away", "channel": format!("rc:{GENERAL}")}),
    );
    // Two reconnect attempts in which the bridge could have (wrongly) sent it.
    let attempts = fake.ws_attempts();
    assert!(eventually!(WAIT, fake.ws_attempts() >= attempts + 2));
    assert!(
        fake.bot_messages_containing(GENERAL, "queued while away")
            .is_empty(),
        "held while disconnected"
    );

    fake.refuse_websockets(false);
    let held = bot_message(&fake, GENERAL, "queued while away").await;
    assert_eq!(held.str("rid"), GENERAL);
    b.wait_ready(200).await;
    let (connects, logins, subs) = fake.handshakes();
    assert!(
        connects > before.0 && logins > before.1 && subs > before.2,
        "connected, logged in and subscribed again: {:?}",
        fake.handshakes()
    );
    let actor = b.actor("chat:rc").await;
    assert!(actor["restarts"].as_u64().unwrap_or(0) >= 1, "{actor}");

    // The new link hears commands.
    fake.post_as(ALICE, GENERAL, "!st2 run date", None);
    let e = executions(&b, 1).await.remove(0);
    bot_message(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    assert_eq!(
        fake.bot_messages_containing(GENERAL, "queued while away")
            .len(),
        1,
        "delivered once"
    );
    assert!(
        !captured_logs().contains(BOT_TOKEN),
        "the token is never logged"
    );
}

/// Rocket.Chat replays nothing to a new subscription: after a lost link the bridge asks the
/// REST API what was posted meanwhile (`rooms.get`, `chat.syncMessages`), so a command said
/// while it was away runs, once, and one it had run already does not run again.
#[actix_rt::test]
async fn a_command_said_while_the_link_was_down_runs_once_when_it_is_back() {
    let (fake, b) = rc_bridge().await;
    fake.post_as(ALICE, GENERAL, "!st2 run echo rc-first", None);
    let first = executions(&b, 1).await.remove(0);
    bot_message(&fake, GENERAL, &format!("execution: {}", first.id)).await;

    fake.refuse_websockets(true);
    fake.drop_websockets();
    let down = eventually!(WAIT, b.actor("chat:rc").await["state"] == "reconnecting");
    assert!(down, "{}", b.actor("chat:rc").await);
    // In the room the bridge heard last, and in one it never ran anything from.
    fake.post_as(ALICE, GENERAL, "!st2 run echo rc-away-1", None);
    fake.post_as(ALICE, OPS, "!st2 run echo rc-away-2", None);
    let subs = fake.handshakes().2;
    fake.refuse_websockets(false);
    assert!(
        eventually!(WAIT, fake.handshakes().2 > subs),
        "subscribed again"
    );
    // And one once it is back.
    fake.post_as(ALICE, GENERAL, "!st2 run echo rc-back", None);

    let ran = |marker: &str| crate::support::runs_of(&b.emulator, marker).len();
    let all = [
        (GENERAL, "rc-first"),
        (GENERAL, "rc-away-1"),
        (OPS, "rc-away-2"),
        (GENERAL, "rc-back"),
    ];
    assert!(
        eventually!(WAIT, all.iter().all(|(_, m)| ran(m) >= 1)),
        "every command ran: {:?}",
        all.map(|(_, m)| (m, ran(m)))
    );
    for (rid, marker) in all {
        let e = crate::support::runs_of(&b.emulator, marker)
            .into_iter()
            .next()
            .expect("its execution");
        bot_message(&fake, rid, &format!("execution: {}", e.id)).await;
    }
    // A copy would have been handed on before `rc-back` (what the catch-up finds goes
    // first), and so have run by now: every command ran once, the one before the outage too.
    for (_, marker) in all {
        assert_eq!(ran(marker), 1, "{marker} ran once");
    }
    assert!(fake.requests("GET /api/v1/chat.syncMessages") >= 1);
}

#[actix_rt::test]
async fn a_refused_token_stops_the_connection() {
    // REST refuses it: no websocket is even tried.
    let fake = FakeRocketChat::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("").replace(BOT_TOKEN, "not-the-token");
    let b = TestBridge::start_with(opts).await;
    let down = eventually!(WAIT, b.actor("chat:rc").await["state"] == "down");
    let actor = b.actor("chat:rc").await;
    assert!(down, "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("credentials refused") && e.contains("401")),
        "{actor}"
    );
    assert_eq!(fake.ws_attempts(), 0);

    // The realtime API refuses it: down too, not a reconnect loop.
    let fake = FakeRocketChat::start().await;
    fake.refuse_realtime_login(true);
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    let down = eventually!(WAIT, b.actor("chat:rc").await["state"] == "down");
    let actor = b.actor("chat:rc").await;
    assert!(down, "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("realtime login")),
        "{actor}"
    );
    assert_eq!(fake.ws_attempts(), 1, "not tried again");
    assert!(!captured_logs().contains(BOT_TOKEN));
}

/// Issue 18: with a store that keeps what is owed (as replicas have), a result is posted
/// with an `_id` every bridge process derives alike (`chat.sendMessage`); an announcement,
/// owed to no one, keeps `chat.postMessage`.
#[actix_rt::test]
async fn a_result_is_posted_under_an_id_of_the_bridges_choosing() {
    let fake = FakeRocketChat::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("") + &crate::bridge_process::sqlite_store_toml(dir.path());
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    fake.post_as(ALICE, GENERAL, "!st2 run echo rc-keyed", None);
    let e = executions(&b, 1).await.remove(0);
    let result = bot_message(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    let id = result.str("_id");
    assert!(
        id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "the result's _id is {id:?}"
    );
    assert!(fake.requests("POST /api/v1/chat.sendMessage") >= 1);
    b.emulator.announce(
        "stormbridge",
        json!({"message": "an announcement", "channel": format!("rc:{GENERAL}")}),
    );
    let announced = bot_message(&fake, GENERAL, "an announcement").await;
    assert!(announced.str("_id").starts_with('M'), "the server's own id");
}

/// Issue 18: the holder that takes a connection over posts a result part its predecessor
/// had posted but not recorded: the server has that `_id` and posts nothing; the bridge,
/// refused, finds the message there and counts the part as posted instead of dropping it
/// as refused. A part refused for another reason stays refused.
#[actix_rt::test]
async fn a_result_part_posted_again_under_its_id_is_posted_once_and_counted_as_posted() {
    use stormbridge::backends::{
        connection::outbox::{Dest, Outcome},
        rocketchat::api::{Api, Outgoing},
    };
    let fake = FakeRocketChat::start().await;
    let api = Api {
        client: awc::Client::default(),
        base: format!("{}/api/v1", fake.url()).into(),
        user_id: BOT.into(),
        token: BOT_TOKEN.into(),
    };
    let part = |room: &str| Outgoing {
        dest: Dest::Room(room.into()),
        tmid: None,
        text: "the result, part 1".into(),
        attachments: None,
        key: Some("9f86d081884c7d659a2feaa0".into()),
    };
    let sent = |o: &Outcome| matches!(o, Outcome::Sent { .. });
    let (_, first) = api.send(&part(GENERAL), None).await;
    assert!(sent(&first), "{first:?}");
    // The next holder, after a takeover.
    let (_, again) = api.send(&part(GENERAL), None).await;
    assert!(sent(&again), "{again:?}");
    assert_eq!(
        fake.bot_messages_containing(GENERAL, "the result, part 1")
            .len(),
        1
    );
    assert_eq!(fake.not_posted_again(), ["9f86d081884c7d659a2feaa0"]);
    let (_, nowhere) = api.send(&part("NOSUCHROOM"), None).await;
    assert!(matches!(nowhere, Outcome::Rejected(_)), "{nowhere:?}");
}
