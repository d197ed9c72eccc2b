//! Webex (`backend = "webex"`) against the fake Webex (`webex/fake.rs`): the bridge puts its
//! webhooks right on start (stale ones of its own replaced, other ones kept), refuses every
//! delivery that is not signed with the webhook secret before anything runs, stops on a
//! refused token, re-enables a webhook Webex disabled, and answers inquiries with Adaptive
//! Card buttons pressed by the person who presses. The common behaviour (rooms, direct
//! rooms, threads, mentions, splitting, whispers, rate limits, outages) is the contract's
//! (`contract/webex.rs`).

pub mod fake;

use serde_json::{json, Value};
use stormbridge::{backends::webex::signature, emulator::InquirySpec};

use crate::support::{
    captured_logs, free_port, held_code, with_prod_confirmation, with_test_aliases, Options,
    TestBridge, WAIT,
};
use fake::{FakeWebex, BOT_TOKEN};

/// The webhook secret the tests configure.
pub const SECRET: &str = "wx-hook-s3cret-9c2b";
/// The bridge's webhooks' name for connection `wx`.
pub const HOOK_NAME: &str = "stormbridge wx";

/// A bridge with connection `wx` on `fake`, its HTTP server on a port of its own so that
/// `public_url` (where Webex delivers) is known before it starts; the bridge and that URL.
pub async fn bridge(fake: &FakeWebex, opts: Options, extra: &str) -> (TestBridge, String) {
    bridge_at(fake, free_port(), opts, extra).await
}

/// [`bridge`] on loopback port `port`.
pub async fn bridge_at(
    fake: &FakeWebex,
    port: u16,
    mut opts: Options,
    extra: &str,
) -> (TestBridge, String) {
    let public = format!("http://127.0.0.1:{port}");
    opts.http_toml = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    opts.extra_toml = fake.chat_toml(&public, SECRET, extra);
    let b = TestBridge::start_with(opts).await;
    (b, public)
}

fn target(public: &str) -> String {
    format!("{public}/webex/events/wx")
}

/// The bridge's webhooks, as the fake holds them.
fn own_hooks(fake: &FakeWebex) -> Vec<Value> {
    fake.webhooks()
        .into_iter()
        .filter(|w| w["name"] == HOOK_NAME)
        .collect()
}

fn hooks_right(fake: &FakeWebex, public: &str) -> bool {
    let mine = own_hooks(fake);
    let mut resources: Vec<&str> = mine.iter().filter_map(|w| w["resource"].as_str()).collect();
    resources.sort_unstable();
    resources == ["attachmentActions", "messages"]
        && mine.iter().all(|w| {
            w["targetUrl"] == target(public).as_str()
                && w["secret"] == SECRET
                && w["status"] == "active"
                && w["event"] == "created"
        })
}

/// The execution whose command is `cmd`, once StackStorm has it.
async fn execution_of(b: &TestBridge, cmd: &str) -> stormbridge::emulator::ExecutionRecord {
    let ran = eventually!(
        WAIT,
        b.emulator
            .executions()
            .iter()
            .any(|e| e.parameters.get("cmd").map(String::as_str) == Some(cmd))
    );
    assert!(ran, "{cmd:?} never ran: {:#?}", b.emulator.executions());
    b.emulator
        .executions()
        .into_iter()
        .find(|e| e.parameters.get("cmd").map(String::as_str) == Some(cmd))
        .expect("the execution")
}

/// The bot's messages containing `needle`, once there is one.
async fn bot_message(fake: &FakeWebex, needle: &str) -> Value {
    let seen = eventually!(
        WAIT,
        fake.bot_messages()
            .iter()
            .any(|m| m["text"].as_str().unwrap_or_default().contains(needle))
    );
    assert!(
        seen,
        "no bot message with {needle:?}: {:#?}",
        fake.bot_messages()
    );
    fake.bot_messages()
        .into_iter()
        .find(|m| m["text"].as_str().unwrap_or_default().contains(needle))
        .expect("the message")
}

#[actix_rt::test]
async fn on_start_stale_webhooks_of_the_bridge_are_replaced_and_foreign_ones_kept() {
    let fake = FakeWebex::start().await;
    let port = free_port();
    let right = target(&format!("http://127.0.0.1:{port}"));
    // What an earlier bridge (another address, an older secret) and someone else left.
    let stale_target = fake.add_webhook(
        HOOK_NAME,
        "messages",
        "https://old-bridge.example.com/webex/events/wx",
        SECRET,
    );
    let stale_secret = fake.add_webhook(HOOK_NAME, "attachmentActions", &right, "old-secret");
    let duplicate = fake.add_webhook(HOOK_NAME, "attachmentActions", "https://x/z", "older");
    let foreign: Vec<Value> = vec![
        fake.add_webhook(
            "pagerbot",
            "messages",
            "https://pager.example.com/hook",
            "theirs",
        ),
        fake.add_webhook(
            "pagerbot",
            "rooms",
            "https://pager.example.com/rooms",
            "theirs",
        ),
    ]
    .into_iter()
    .map(|id| {
        fake.webhooks()
            .into_iter()
            .find(|w| w["id"] == id.as_str())
            .expect("the foreign webhook")
    })
    .collect();

    let (b, public) = bridge_at(&fake, port, with_test_aliases(), "").await;
    b.wait_ready(200).await;
    assert!(
        hooks_right(&fake, &public),
        "the bridge's webhooks: {:#?}",
        own_hooks(&fake)
    );
    // Updated in place where that could be done, the duplicate gone, nothing else touched.
    let ids: Vec<String> = own_hooks(&fake)
        .iter()
        .map(|w| w["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        ids.contains(&stale_target) && ids.contains(&stale_secret),
        "{ids:?}"
    );
    assert!(!ids.contains(&duplicate), "{ids:?}");
    for w in &foreign {
        assert!(fake.webhooks().contains(w), "changed or gone: {w}");
    }
    assert_eq!(fake.webhooks().len(), 4);

    // And Webex now delivers to the bridge: a command said to the bot runs and is answered.
    fake.post(
        &fake.alice_id,
        &fake.ops,
        "!st2 run echo wx-hooks",
        None,
        true,
    )
    .await;
    let e = execution_of(&b, "echo wx-hooks").await;
    bot_message(&fake, &format!("execution: {}", e.id)).await;
    assert!(
        fake.delivered()
            .iter()
            .all(|d| d.target_url == target(&public) && d.status == 200),
        "{:#?}",
        fake.delivered()
    );

    // A webhook Webex disabled (its deliveries kept failing) is enabled again by the next
    // check, and one deleted by hand is made again.
    fake.disable_webhook(&stale_target);
    let again = eventually!(WAIT, hooks_right(&fake, &public));
    assert!(again, "not re-enabled: {:#?}", own_hooks(&fake));
    fake.remove_webhook(&stale_secret);
    let again = eventually!(WAIT, hooks_right(&fake, &public));
    assert!(again, "not made again: {:#?}", own_hooks(&fake));
    assert_eq!(fake.webhooks().len(), 4);
}

#[actix_rt::test]
async fn a_delivery_with_a_wrong_or_missing_signature_is_refused_and_runs_nothing() {
    let fake = FakeWebex::start().await;
    let (b, public) = bridge(&fake, with_test_aliases(), "").await;
    b.wait_ready(200).await;
    // A real message in the room, which Webex did not deliver (no mention): a forger names it.
    let msg = fake
        .post(
            &fake.alice_id,
            &fake.ops,
            "!st2 run echo forged",
            None,
            false,
        )
        .await;
    let hook = own_hooks(&fake)
        .into_iter()
        .find(|w| w["resource"] == "messages")
        .expect("the messages webhook");
    let body = json!({"id": hook["id"], "name": HOOK_NAME, "targetUrl": hook["targetUrl"],
        "resource": "messages", "event": "created", "orgId": "T1JHL2Zha2U", "createdBy": fake.bot_id,
        "appId": "QVBQTElDQVRJT04vZmFrZQ", "ownedBy": "creator", "status": "active",
        "actorId": fake.alice_id,
        "data": {"id": msg, "roomId": fake.ops, "roomType": "group", "personId": fake.alice_id,
                 "personEmail": "alice@example.com", "created": "2024-01-01T00:00:00.000Z"}})
    .to_string();
    let url = target(&public);
    let post = |sig: Option<String>, body: String| {
        let mut req = b
            .http
            .post(url.as_str())
            .insert_header(("Content-Type", "application/json"));
        if let Some(s) = sig {
            req = req.insert_header((signature::HEADER, s));
        }
        async move {
            req.send_body(body)
                .await
                .expect("a delivery")
                .status()
                .as_u16()
        }
    };
    let right = signature::sign(SECRET.as_bytes(), body.as_bytes());
    let refused = [
        (None, body.clone()),
        (Some(String::new()), body.clone()),
        (
            Some(signature::sign(b"not-the-secret", body.as_bytes())),
            body.clone(),
        ),
        (Some(right.to_uppercase()), body.clone()),
        (Some(format!("sha1={right}")), body.clone()),
        // The right signature of another body.
        (Some(right.clone()), body.replace("\"group\"", "\"direct\"")),
    ];
    for (sig, text) in refused {
        assert_eq!(post(sig.clone(), text).await, 401, "{sig:?}");
    }
    // Signed as Webex signs it, the same delivery runs the command: the refused ones would
    // have run it first, had they gone anywhere.
    assert_eq!(post(Some(right), body.clone()).await, 200);
    execution_of(&b, "echo forged").await;
    let fetches = fake
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path == format!("/messages/{msg}"))
        .count();
    assert_eq!(fetches, 1, "only the signed delivery was looked at");
    assert_eq!(
        b.emulator
            .executions()
            .iter()
            .filter(|e| e.parameters.get("cmd").map(String::as_str) == Some("echo forged"))
            .count(),
        1
    );
    let logs = captured_logs();
    assert!(
        !logs.contains(SECRET) && !logs.contains(BOT_TOKEN),
        "a secret was logged"
    );
}

#[actix_rt::test]
async fn a_refused_token_stops_the_connection_without_retrying() {
    let fake = FakeWebex::start().await;
    fake.refuse_token(true);
    let (b, _public) = bridge(&fake, with_test_aliases(), "").await;
    let mut actor;
    let down = eventually!(WAIT, {
        actor = b.actor("chat:wx").await;
        actor["state"] == "down"
    });
    assert!(down, "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("credentials refused")),
        "{actor}"
    );
    assert_eq!(b.get("/ready").await.0, 503);
    let logins = fake
        .calls()
        .iter()
        .filter(|c| c.path == "/people/me")
        .count();
    assert_eq!(logins, 1, "a refused token is not tried again");
    assert!(own_hooks(&fake).is_empty());
}

#[actix_rt::test]
async fn inquiry_buttons_are_cards_answered_as_the_presser() {
    let fake = FakeWebex::start().await;
    let mut opts = with_test_aliases();
    opts.access_toml = format!(
        "[access]\ndefault = \"allow\"\n[[access.rules]]\nbuiltins = [\"answer\"]\n\
         users = [\"wx:{}\"]\naction = \"deny\"\n",
        fake.bob_id
    );
    let (b, _public) = bridge(&fake, opts, "").await;
    b.wait_ready(200).await;
    let id = b.emulator.ask(InquirySpec {
        schema: Some(json!({"type": "object", "properties": {
            "approve": {"type": "string", "enum": ["ship", "hold"], "required": true,
                        "description": "Ship the release?"}}})),
        ..InquirySpec::default()
    });

    fake.post(&fake.alice_id, &fake.ops, "!st2inquiries", None, true)
        .await;
    let card = bot_message(&fake, &format!("Inquiry `{id}`")).await;
    let content = &card["attachments"][0]["content"];
    assert_eq!(
        card["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(
        content["body"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Ship the release?"),
        "{card}"
    );
    assert_eq!(content["actions"][0]["type"], "Action.Submit");
    assert_eq!(content["actions"][0]["title"], "ship");
    assert_eq!(content["actions"][1]["title"], "hold");
    let card_id = card["id"].as_str().unwrap_or_default().to_owned();

    // Bob may not answer: he alone is told, in his 1:1 room with the bot.
    fake.press(&fake.bob_id, &card_id, 0).await;
    told_privately(&fake, &fake.bob_id, "Access control does not allow you").await;
    assert_eq!(b.emulator.inquiry_response(&id), None);

    // Alice presses "hold": answered as her, said under the card for the room.
    fake.press(&fake.alice_id, &card_id, 1).await;
    let answered = eventually!(WAIT, b.emulator.inquiry_response(&id).is_some());
    assert!(answered, "never answered");
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"approve": "hold"}))
    );
    let said = bot_message(&fake, &format!("Inquiry `{id}` answered by")).await;
    assert_eq!(said["roomId"], fake.ops.as_str(), "{said}");
    assert_eq!(said["parentId"], card_id.as_str(), "{said}");
    assert!(
        said["text"]
            .as_str()
            .unwrap_or_default()
            .contains("approve=hold"),
        "{said}"
    );
}

#[actix_rt::test]
async fn a_message_webex_will_not_show_for_a_moment_is_read_again_and_runs_once() {
    let fake = FakeWebex::start().await;
    let (b, _public) = bridge(&fake, with_test_aliases(), "").await;
    b.wait_ready(200).await;
    // Webex names a message in its webhook and sends that webhook once: a read answered 429
    // must be tried again after Retry-After, or the command is lost.
    fake.refuse_reads(2);
    fake.post(
        &fake.alice_id,
        &fake.ops,
        "!st2 run echo patiently",
        None,
        true,
    )
    .await;
    execution_of(&b, "echo patiently").await;
    assert_eq!(fake.reads_limited(), 2, "{:#?}", fake.calls());
    let runs = b
        .emulator
        .executions()
        .iter()
        .filter(|e| e.parameters.get("cmd").map(String::as_str) == Some("echo patiently"))
        .count();
    assert_eq!(runs, 1, "ran once");
}

#[actix_rt::test]
async fn whoami_names_the_person_and_room_ids_access_rules_use() {
    let fake = FakeWebex::start().await;
    let (b, _public) = bridge(&fake, with_test_aliases(), "").await;
    b.wait_ready(200).await;
    fake.post(&fake.alice_id, &fake.ops, "!st2whoami", None, true)
        .await;
    let reply = bot_message(&fake, "Access rules match you").await;
    let text = reply["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("`wx:{}`", fake.alice_id))
            && text.contains(&format!("`wx:{}`", fake.ops)),
        "{text}"
    );
}

#[actix_rt::test]
async fn an_approval_card_is_approved_by_another_lead_and_refused_to_the_sender() {
    let fake = FakeWebex::start().await;
    let mut opts = with_test_aliases();
    opts.access_toml = format!(
        "[access]\ndefault = \"allow\"\n[access.groups]\nleads = [\"wx:{}\", \"wx:{}\"]\n\
         [confirm]\n[[confirm.rules]]\ntexts = [\"deploy * to prod*\"]\napprovers = [\"@leads\"]\n",
        fake.alice_id, fake.bob_id
    );
    let (b, _public) = bridge(&fake, opts, "").await;
    b.wait_ready(200).await;
    let offer = deploy_to_prod(&fake, "waits for approval").await;
    let actions = offer["attachments"][0]["content"]["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let titles: Vec<&str> = actions
        .iter()
        .map(|a| a["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, ["Approve", "Deny"], "{offer}");
    assert!(actions.iter().all(|a| a["type"] == "Action.Submit"));
    let card = offer["id"].as_str().unwrap_or_default().to_owned();
    assert!(b.emulator.executions().is_empty());

    // The sender presses Approve: told (in the 1:1 room) why not, and nothing runs.
    fake.press(&fake.alice_id, &card, 0).await;
    told_privately(&fake, &fake.alice_id, "cannot approve your own command").await;
    assert!(b.emulator.executions().is_empty());

    // Bob approves: it runs once, as Alice, and the room is told who approved.
    fake.press(&fake.bob_id, &card, 0).await;
    let ran = eventually!(WAIT, b.emulator.executions().len() == 1);
    assert!(ran, "the approved command never reached StackStorm");
    assert_eq!(
        b.emulator.executions()[0].request["user"],
        fake.alice_id.as_str()
    );
    let said = bot_message(&fake, "approved by").await;
    assert_eq!(said["roomId"], fake.ops.as_str(), "{said}");

    // The card whose buttons are spent is taken down (Webex cannot edit a card), and
    // nothing else runs.
    let gone = eventually!(
        WAIT,
        fake.deleted_messages()
            .iter()
            .any(|m| m["id"] == card.as_str())
    );
    assert!(
        gone,
        "the spent card is still up: {:#?}",
        fake.bot_messages()
    );
    let approved = fake
        .bot_messages()
        .iter()
        .filter(|m| {
            m["text"]
                .as_str()
                .unwrap_or_default()
                .contains("approved by")
        })
        .count();
    assert_eq!(approved, 1, "{:#?}", fake.bot_messages());
    assert_eq!(b.emulator.executions().len(), 1);
}

/// Alice's `!st2 deploy web to prod` in the ops room; the bot's answer that says `held`.
async fn deploy_to_prod(fake: &FakeWebex, held: &str) -> Value {
    fake.post(
        &fake.alice_id,
        &fake.ops,
        "!st2 deploy web to prod",
        None,
        true,
    )
    .await;
    bot_message(fake, held).await
}

/// Waits until `person` is told `needle` in their 1:1 room with the bot.
async fn told_privately(fake: &FakeWebex, person: &str, needle: &str) {
    let room = fake.direct_room(person);
    let told = eventually!(
        WAIT,
        fake.bot_messages()
            .iter()
            .any(|m| m["roomId"] == room.as_str()
                && m["text"].as_str().unwrap_or_default().contains(needle))
    );
    assert!(told, "{needle:?} never told: {:#?}", fake.bot_messages());
}

/// Whether a bot message still shows buttons that decide the held command `code`.
fn live_buttons_for(message: &Value, code: &str) -> bool {
    message["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| {
            a["content"]["actions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .any(|action| action["data"].to_string().contains(code))
}

#[actix_rt::test]
async fn a_typed_confirmation_takes_the_card_with_its_spent_buttons_away() {
    let fake = FakeWebex::start().await;
    let (b, _public) = bridge(&fake, with_prod_confirmation(), "").await;
    b.wait_ready(200).await;
    let offer = deploy_to_prod(&fake, "needs your confirmation").await;
    let code = held_code(offer["text"].as_str().unwrap_or_default(), "!st2confirm");
    assert!(live_buttons_for(&offer, &code), "{offer}");
    let card = offer["id"].as_str().unwrap_or_default().to_owned();

    // Typed, not pressed: no buttons that now do nothing may stay in the room.
    fake.post(
        &fake.alice_id,
        &fake.ops,
        &format!("!st2confirm {code}"),
        None,
        true,
    )
    .await;
    let ran = eventually!(WAIT, b.emulator.executions().len() == 1);
    assert!(ran, "the confirmed command never reached StackStorm");
    let gone = eventually!(
        WAIT,
        !fake
            .bot_messages()
            .iter()
            .any(|m| m["id"] == card.as_str() || live_buttons_for(m, &code))
    );
    assert!(
        gone,
        "a card with live buttons remains: {:#?}",
        fake.bot_messages()
    );
    assert!(fake
        .deleted_messages()
        .iter()
        .any(|m| m["id"] == card.as_str()));
    // The room still reads what became of it.
    let said = bot_message(&fake, &format!("({code}) confirmed")).await;
    assert_eq!(said["roomId"], fake.ops.as_str(), "{said}");
    // Once: taking the card down says nothing more.
    let told = fake
        .bot_messages()
        .iter()
        .filter(|m| {
            m["text"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("({code}) confirmed"))
        })
        .count();
    assert_eq!(told, 1, "{:#?}", fake.bot_messages());
    assert_eq!(b.emulator.executions().len(), 1);
}
