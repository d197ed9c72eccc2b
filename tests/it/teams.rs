//! The Teams backend against a fake of Microsoft's side (tests/it/teams/fake.rs): activities
//! in over the bridge's messaging endpoint, each one's token checked; executions at the st2
//! emulator; replies back to the Bot Connector at the activity's `serviceUrl`.

/// The fake Bot Connector, token endpoint and OpenID metadata (also used by the contract
/// and property tests).
pub(crate) mod fake;

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use serde_json::{json, Value};
use stormbridge::emulator::InquirySpec;

use self::fake::{
    connector_claims, FakeTeams, Place, Sent, SigningKey, ALICE_AAD, ALICE_DM, APP_PASSWORD, BOB,
    BOB_AAD, BOB_DM, CHANNEL, KEY_1, KEY_2,
};
use crate::support::{
    captured_logs, held_code, with_prod_confirmation, with_test_aliases, Options, TestBridge, WAIT,
};

async fn bridge_with(teams: &FakeTeams, mut opts: Options, extra: &str) -> TestBridge {
    opts.extra_toml = teams.chat_toml(extra);
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    assert_eq!(b.actor("chat:teams").await["state"], "up");
    b
}

async fn started() -> (FakeTeams, TestBridge) {
    let teams = FakeTeams::start().await;
    let b = bridge_with(&teams, with_test_aliases(), "max_message_length = 300").await;
    (teams, b)
}

/// A listener that counts the connections made to it: a `serviceUrl` nobody may send to.
fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (url, hits)
}

#[actix_rt::test]
async fn forged_activities_are_refused_and_run_nothing_while_a_signed_one_is_answered_in_its_reply_chain(
) {
    let (teams, b) = started().await;
    let bridge = b.app.http_addr;
    let (elsewhere, hits) = trap();

    // Unsigned.
    let mut forged = teams.alice(Place::Channel, "!st2 run echo forged-unsigned");
    forged["serviceUrl"] = json!(elsewhere);
    let (status, body) = teams.post(bridge, None, forged.to_string()).await;
    assert_eq!(status, 401, "{body}");
    // Signed by someone else's key under the Bot Connector's key id.
    let mut forged = teams.alice(Place::Channel, "!st2 run echo forged-key");
    forged["serviceUrl"] = json!(elsewhere);
    let impostor = SigningKey::new(KEY_2, "key-1").sign(&connector_claims(&elsewhere));
    let (status, _) = teams
        .post(bridge, Some(&impostor), forged.to_string())
        .await;
    assert_eq!(status, 401);
    // A genuine token for another bot (audience), or another issuer, or expired.
    let genuine = SigningKey::new(KEY_1, "key-1");
    for (key, value) in [
        ("aud", json!("99999999-0000-4000-8000-000000000000")),
        (
            "iss",
            json!("https://sts.windows.net/72f988bf-0000-4000-8000-0000000000e1/"),
        ),
        ("exp", json!(fake::unix_now() - 3600)),
    ] {
        let mut claims = connector_claims(&elsewhere);
        claims[key] = value;
        let (status, _) = teams
            .post(bridge, Some(&genuine.sign(&claims)), forged.to_string())
            .await;
        assert_eq!(status, 401, "{key}");
    }
    // A genuine token replayed with an activity for another serviceUrl.
    let good_token = genuine.sign(&connector_claims(&teams.service_url()));
    let (status, _) = teams
        .post(bridge, Some(&good_token), forged.to_string())
        .await;
    assert_eq!(status, 403);

    // The real thing, in a new post of the channel: answered in that post's reply chain.
    let said = teams
        .deliver_ok(bridge, teams.alice(Place::Channel, "!st2 run echo signed"))
        .await;
    let ran = eventually!(WAIT, !b.emulator.executions().is_empty());
    assert!(ran, "the signed command never ran");
    let e = b.emulator.executions()[0].clone();
    assert_eq!(
        e.parameters.get("cmd").map(String::as_str),
        Some("echo signed")
    );
    assert_eq!(e.request["user"], ALICE_AAD);
    assert_eq!(e.request["source_channel"], CHANNEL);
    let result = teams.sent_containing(&format!("execution: {}", e.id)).await;
    assert_eq!(result.conversation, format!("{CHANNEL};messageid={said}"));
    assert_eq!(result.reply_to.as_deref(), Some(said.as_str()));
    // StackStorm's result is an Adaptive Card.
    assert_eq!(
        result.body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    // Nothing else ran, and nothing went to the forged activities' serviceUrl.
    assert_eq!(b.emulator.executions().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let logs = captured_logs();
    assert!(!logs.contains(APP_PASSWORD), "the app password was logged");
    assert!(!logs.contains(&good_token), "a token was logged");
}

#[actix_rt::test]
async fn a_rolled_key_is_fetched_when_a_token_names_it_and_made_up_key_ids_are_not_chased() {
    let (teams, b) = started().await;
    let bridge = b.app.http_addr;
    let before = teams.keys_requests();
    // Microsoft publishes a new key and signs with it.
    teams.roll_key(KEY_2, "key-2");
    teams
        .deliver_ok(
            bridge,
            teams.alice(Place::Direct, "!st2 run echo after-roll"),
        )
        .await;
    let e = teams.sent_containing("echo after-roll").await;
    assert_eq!(e.conversation, ALICE_DM);
    assert!(teams.keys_requests() > before);
    // A key id nobody published, right after: refused at once, the keys not read again
    // for it (within the minute).
    let after_roll = teams.keys_requests();
    let activity = teams.alice(Place::Direct, "!st2 run echo made-up-key");
    let token = SigningKey::new(KEY_2, "key-made-up").sign(&connector_claims(&teams.service_url()));
    let (status, _) = teams.post(bridge, Some(&token), activity.to_string()).await;
    assert_eq!(status, 401);
    // (The periodic check may read them meanwhile; the refusal did not wait for it.)
    assert!(teams.keys_requests() <= after_roll + 2);
    assert!(b
        .emulator
        .executions()
        .iter()
        .all(|e| e.parameters.get("cmd").map(String::as_str) != Some("echo made-up-key")));
}

#[actix_rt::test]
async fn a_whisper_opens_the_one_to_one_chat_of_someone_heard_in_a_channel() {
    let (teams, b) = started().await;
    let bridge = b.app.http_addr;
    let bob = teams.message(
        &format!("{CHANNEL};messageid=42"),
        (BOB, BOB_AAD, "Bob Example"),
        "<at>stormbridge</at> st2 run echo from-bob",
    );
    teams.deliver_ok(bridge, bob).await;
    teams.sent_containing("echo from-bob").await;
    b.emulator.announce(
        "stormbridge",
        json!({"message": "for bob only", "channel": format!("teams:{CHANNEL}"), "user": BOB_AAD, "whisper": true}),
    );
    let whisper = teams.sent_containing("for bob only").await;
    assert_eq!(whisper.conversation, BOB_DM);
    let created = teams.created();
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(created[0]["members"][0]["id"], BOB);
    assert_eq!(created[0]["channelData"]["tenant"]["id"], fake::TENANT);
    // The chat is remembered: a second whisper goes straight there.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "again for bob", "channel": format!("teams:{CHANNEL}"), "user": BOB_AAD, "whisper": true}),
    );
    teams.sent_containing("again for bob").await;
    assert_eq!(teams.created().len(), 1);
    // Someone the bot never heard from cannot be reached (no serviceUrl to send to).
    b.emulator.announce(
        "stormbridge",
        json!({"message": "for a stranger", "channel": format!("teams:{CHANNEL}"), "user": "someone-else", "whisper": true}),
    );
    b.emulator.announce(
        "stormbridge",
        json!({"message": "fence", "channel": format!("teams:{CHANNEL}")}),
    );
    teams.sent_containing("fence").await;
    assert!(teams.sent().iter().all(|s| !s.text().contains("stranger")));
    assert_eq!(b.actor("chat:teams").await["state"], "up");
}

#[actix_rt::test]
async fn a_refused_app_token_is_replaced_once_and_the_reply_still_arrives() {
    let (teams, b) = started().await;
    let bridge = b.app.http_addr;
    teams
        .deliver_ok(bridge, teams.alice(Place::Direct, "!st2 run echo first"))
        .await;
    teams.sent_containing("echo first").await;
    // The acknowledgement and the result go out on one app token: it is cached until it
    // expires, not fetched per reply.
    let both = eventually!(WAIT, teams.sent().len() >= 2);
    assert!(both, "{:#?}", teams.sent());
    let tokens = teams.token_requests();
    assert_eq!(tokens, 1);
    teams.expire_tokens();
    teams
        .deliver_ok(bridge, teams.alice(Place::Direct, "!st2 run echo second"))
        .await;
    teams.sent_containing("echo second").await;
    assert!(teams.calls().iter().any(|c| c.status == 401
        && c.method == "POST"
        && c.path.starts_with("/v3/conversations/")));
    assert!(teams.token_requests() > tokens);
    assert_eq!(b.actor("chat:teams").await["state"], "up");
}

#[actix_rt::test]
async fn credentials_the_token_endpoint_refuses_stop_the_connection_with_its_reason() {
    let teams = FakeTeams::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = teams
        .chat_toml("")
        .replace(APP_PASSWORD, "a-wrong-secret-value");
    let b = TestBridge::start_with(opts).await;
    let mut actor;
    let down = eventually!(WAIT, {
        actor = b.actor("chat:teams").await;
        actor["state"] == "down"
    });
    assert!(down, "{actor}");
    let error = actor["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("invalid_client") && error.contains("AADSTS7000215"),
        "{error}"
    );
    assert!(!error.contains("a-wrong-secret-value"));
    let (status, _) = b.get("/ready").await;
    assert_eq!(status, 503);
    // One refusal is enough: the connection stopped instead of trying again.
    assert_eq!(teams.token_requests(), 1);
    assert!(!captured_logs().contains("a-wrong-secret-value"));
}

#[actix_rt::test]
async fn an_answer_button_answers_as_the_presser_and_replaces_the_card() {
    let teams = FakeTeams::start().await;
    let mut opts = with_test_aliases();
    opts.access_toml = format!(
        "[access]\ndefault = \"allow\"\n[[access.rules]]\nbuiltins = [\"answer\"]\n\
         users = [\"teams:{BOB_AAD}\"]\naction = \"deny\"\n"
    );
    let b = bridge_with(&teams, opts, "").await;
    let bridge = b.app.http_addr;
    let id = b.emulator.ask(InquirySpec {
        schema: Some(json!({"type": "object", "properties": {
            "approve": {"type": "string", "enum": ["ship", "hold"], "required": true,
                        "description": "Ship the release?"}}})),
        ..InquirySpec::default()
    });
    let said = teams
        .deliver_ok(bridge, teams.alice(Place::Channel, "!st2inquiries"))
        .await;
    let mut offered;
    let found = eventually!(WAIT, {
        offered = teams
            .sent()
            .into_iter()
            .find(|s| s.body["attachments"][0]["content"]["actions"].is_array());
        offered.is_some()
    });
    assert!(found, "no card with buttons: {:#?}", teams.sent());
    let card = offered.expect("the card");
    assert!(card.text().contains(&id), "{card:?}");
    assert_eq!(card.reply_to.as_deref(), Some(said.as_str()));
    let actions = card.body["attachments"][0]["content"]["actions"].clone();
    assert_eq!(actions[0]["type"], "Action.Submit");
    assert_eq!(actions[0]["title"], "ship");
    // A press is a message activity whose `value` is the action's `data`, replying to the
    // card (https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-actions#actionsubmit).
    let press = |who: (&str, &str, &str), action: &Value| {
        let mut a = teams.message(&format!("{CHANNEL};messageid={said}"), who, "");
        a.as_object_mut().map(|m| m.remove("text"));
        a["replyToId"] = json!(card.id);
        a["value"] = action["data"].clone();
        a
    };
    // Bob may not answer: he is told in his one-to-one chat; the card stays.
    teams
        .deliver_ok(bridge, press((BOB, BOB_AAD, "Bob"), &actions[0]))
        .await;
    let told = teams
        .sent_containing("Access control does not allow you")
        .await;
    assert_eq!(told.conversation, BOB_DM);
    assert_eq!(b.emulator.inquiry_response(&id), None);
    // Alice presses "hold": answered as her, and the card now says so, without buttons.
    teams
        .deliver_ok(
            bridge,
            press((fake::ALICE, ALICE_AAD, "Alice Example"), &actions[1]),
        )
        .await;
    let answered = eventually!(WAIT, b.emulator.inquiry_response(&id).is_some());
    assert!(answered);
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"approve": "hold"}))
    );
    let replaced = eventually!(WAIT, {
        let now = teams.sent().into_iter().find(|s| s.id == card.id);
        now.is_some_and(|s| s.text().contains("approve=hold"))
    });
    assert!(replaced, "{:#?}", teams.sent());
    let now = teams
        .sent()
        .into_iter()
        .find(|s| s.id == card.id)
        .expect("the card");
    assert!(now.body["attachments"][0]["content"]
        .get("actions")
        .is_none());
}

#[actix_rt::test]
async fn whoami_names_the_ids_access_rules_use() {
    let (teams, b) = started().await;
    teams
        .deliver_ok(b.app.http_addr, teams.alice(Place::Direct, "!st2whoami"))
        .await;
    let reply = teams.sent_containing("Access rules match you").await;
    let text = reply.text();
    assert!(
        text.contains(&format!("`teams:{ALICE_AAD}`"))
            && text.contains(&format!("`teams:{ALICE_DM}`")),
        "{text}"
    );
}

/// Alice's `deploy web to prod` in the channel: the activity's id, and the card that holds
/// it for her confirmation.
async fn held_deploy(teams: &FakeTeams, b: &TestBridge) -> (String, Sent) {
    let said = teams
        .deliver_ok(
            b.app.http_addr,
            teams.alice(Place::Channel, "!st2 deploy web to prod"),
        )
        .await;
    (said, teams.sent_containing("needs your confirmation").await)
}

#[actix_rt::test]
async fn a_held_command_is_confirmed_with_its_card_by_its_sender_only() {
    let teams = FakeTeams::start().await;
    let b = bridge_with(&teams, with_prod_confirmation(), "").await;
    let bridge = b.app.http_addr;
    let (said, card) = held_deploy(&teams, &b).await;
    assert_eq!(card.reply_to.as_deref(), Some(said.as_str()));
    let actions = card.body["attachments"][0]["content"]["actions"].clone();
    let titles: Vec<&str> = actions
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["title"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(titles, ["Confirm", "Abort"], "{card:?}");
    assert_eq!(actions[0]["type"], "Action.Submit");
    assert!(b.emulator.executions().is_empty());
    let press = |who: (&str, &str, &str), action: &Value| {
        let mut a = teams.message(&format!("{CHANNEL};messageid={said}"), who, "");
        a.as_object_mut().map(|m| m.remove("text"));
        a["replyToId"] = json!(card.id);
        a["value"] = action["data"].clone();
        a
    };
    // Bob presses Confirm: only Alice may confirm her command; he is told in his chat.
    teams
        .deliver_ok(bridge, press((BOB, BOB_AAD, "Bob"), &actions[0]))
        .await;
    let told = teams
        .sent_containing("only the person who sent it can confirm it")
        .await;
    assert_eq!(told.conversation, BOB_DM, "{told:?}");
    assert!(b.emulator.executions().is_empty());
    // Alice confirms: it runs once, as her, and the card loses its buttons.
    teams
        .deliver_ok(
            bridge,
            press((fake::ALICE, ALICE_AAD, "Alice Example"), &actions[0]),
        )
        .await;
    let ran = eventually!(WAIT, b.emulator.executions().len() == 1);
    assert!(ran, "the confirmed command never reached StackStorm");
    assert_eq!(b.emulator.executions()[0].request["user"], ALICE_AAD);
    let spent = eventually!(WAIT, {
        teams
            .sent()
            .into_iter()
            .find(|s| s.id == card.id)
            .is_some_and(|s| s.body["attachments"][0]["content"].get("actions").is_none())
    });
    assert!(spent, "{:#?}", teams.sent());
}

#[actix_rt::test]
async fn a_typed_confirmation_takes_the_actions_off_the_card() {
    let teams = FakeTeams::start().await;
    let b = bridge_with(&teams, with_prod_confirmation(), "").await;
    let bridge = b.app.http_addr;
    let (said, card) = held_deploy(&teams, &b).await;
    assert!(
        card.body["attachments"][0]["content"]["actions"].is_array(),
        "{card:?}"
    );
    let code = held_code(&card.text(), "!st2confirm");

    // Typed in the same reply chain, not pressed: the card must not keep buttons that now
    // do nothing.
    let chain = format!("{CHANNEL};messageid={said}");
    teams
        .deliver_ok(
            bridge,
            teams.alice(Place::Thread(&said), &format!("!st2confirm {code}")),
        )
        .await;
    let ran = eventually!(WAIT, b.emulator.executions().len() == 1);
    assert!(ran, "the confirmed command never reached StackStorm");
    let mut now;
    let spent = eventually!(WAIT, {
        now = teams.sent().into_iter().find(|s| s.id == card.id);
        now.as_ref()
            .is_some_and(|s| s.body["attachments"][0]["content"].get("actions").is_none())
    });
    assert!(spent, "the card kept its actions: {:#?}", teams.sent());
    let now = now.expect("the card");
    assert!(now.text().contains("confirmed"), "{now:?}");
    assert_eq!(now.conversation, chain);
    assert_eq!(b.emulator.executions().len(), 1);
}
