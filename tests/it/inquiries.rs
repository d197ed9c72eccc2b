//! StackStorm inquiries: `!st2inquiries` lists the pending ones the user may answer,
//! `!st2answer <id> key=value …` answers one (checked against its schema first), and on
//! Slack the boolean and enum answers are buttons, answered as the person who presses.
//! Every test talks to the emulator over real HTTP; the emulator's inquiries API follows
//! st2's `controllers/v1/inquiries.py` and `services/inquiry.py`.

use serde_json::{json, Value};
use stormbridge::emulator::InquirySpec;

use crate::{
    slack::fake::{FakeSlack, TEAM},
    support::{with_test_aliases, Options, TestBridge, WAIT},
};

/// StackStorm users of the emulator besides the bridge's own `st2admin`.
const ALICE_ST2: (&str, &str) = ("alice-st2", "alice-pass-7Qz");
const BOB_KEY: (&str, &str) = ("bobkey0123456789abcdef", "bob-st2");

pub(crate) const ALICE: &str = "U0ALICE";
pub(crate) const BOB: &str = "U0BOB";

/// A schema with an enum, a number with a default, and free text.
fn deploy_schema() -> Value {
    json!({"title": "Deploy to production?", "type": "object", "properties": {
        "env": {"type": "string", "enum": ["staging", "prod"], "required": true,
                "description": "Where to deploy"},
        "count": {"type": "integer", "default": 1, "description": "How many hosts at once"},
        "note": {"type": "string", "description": "Why"},
    }})
}

fn ask(b: &TestBridge, users: &[&str], schema: Option<Value>) -> String {
    b.emulator.ask(InquirySpec {
        schema,
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        ..InquirySpec::default()
    })
}

async fn started(opts: Options) -> TestBridge {
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b
}

#[actix_rt::test]
async fn the_listing_shows_only_inquiries_the_user_may_answer_and_how_to_answer() {
    let mut b = started(with_test_aliases()).await;
    let anyone = ask(&b, &[], None);
    let mine = ask(&b, &["st2admin"], Some(deploy_schema()));
    let others = ask(&b, &["bob"], None);

    b.say("!st2inquiries").await;
    let listing = b.line_containing("Pending StackStorm inquiries").await;
    assert!(
        listing.contains(&anyone) && listing.contains(&mine),
        "{listing}"
    );
    // The bridge answers as st2admin here, and StackStorm lets only bob answer that one.
    assert!(!listing.contains(&others), "{listing}");
    assert!(
        listing.contains("1 more is for other StackStorm users"),
        "{listing}"
    );
    // Who asked, the fields with types and descriptions, and the typed form.
    assert!(
        listing.contains("from `core.ask` (run by stanley)"),
        "{listing}"
    );
    assert!(
        listing
            .contains("`continue` (boolean, required): Would you like to continue the workflow?"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Answer: `!st2answer {anyone} continue=yes`")),
        "{listing}"
    );
    assert!(listing.contains("Deploy to production?"), "{listing}");
    assert!(
        listing.contains("`env` (string, required, one of `staging`, `prod`): Where to deploy"),
        "{listing}"
    );
    assert!(
        listing.contains("`count` (integer, default 1): How many hosts at once"),
        "{listing}"
    );
    assert!(
        !listing.contains("press a button"),
        "no buttons on the console"
    );

    // Once answered, an inquiry is no longer pending.
    b.say(&format!("!st2answer {anyone} yes")).await;
    b.line_containing("StackStorm accepted it").await;
    b.say("!st2inquiries").await;
    let listing = b.line_containing("Pending StackStorm inquiries").await;
    assert!(
        !listing.contains(&anyone) && listing.contains(&mine),
        "{listing}"
    );

    // The help says the inquiry commands exist.
    b.say("!st2help").await;
    let help = b.line_containing("Showing").await;
    assert!(
        help.contains("`!st2inquiries`") && help.contains("`!st2answer <id> key=value …`"),
        "{help}"
    );
}

#[actix_rt::test]
async fn answers_are_checked_against_the_schema_and_bad_ones_never_reach_stackstorm() {
    let mut b = started(with_test_aliases()).await;
    let id = ask(&b, &[], Some(deploy_schema()));

    for (typed, expected) in [
        (
            "env=dev",
            "`env` must be one of `staging` or `prod`, not `dev`",
        ),
        (
            "env=prod count=many",
            "`count` must be a whole number, not `many`",
        ),
        (
            "env=prod colour=red",
            "`colour` is not a field of this inquiry",
        ),
        ("count=2", "`env` is required"),
        ("", "no answer given; answer with `env=staging`"),
        ("env=\"prod", "never closed"),
    ] {
        b.say(&format!("!st2answer {id} {typed}")).await;
        let reply = b.line_containing(expected).await;
        assert!(
            reply.contains(&format!("Sorry, I couldn't answer inquiry `{id}`"))
                && reply.contains("Nothing was sent to StackStorm"),
            "{typed}: {reply}"
        );
        assert_eq!(b.emulator.inquiry_response(&id), None, "{typed}");
    }
    b.say("!st2answer ../executions continue=yes").await;
    b.line_containing("usage: !st2answer <inquiry id> key=value")
        .await;

    b.say(&format!(
        "!st2answer {id} env=prod count=3 note=\u{201C}two words\u{201D}"
    ))
    .await;
    let reply = b.line_containing("StackStorm accepted it").await;
    assert!(
        reply.contains(&format!("Inquiry `{id}` answered by Alice"))
            && reply.contains("env=prod count=3 note=\"two words\""),
        "{reply}"
    );
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"env": "prod", "count": 3, "note": "two words"}))
    );

    // StackStorm's own refusals, in plain words.
    b.say(&format!("!st2answer {id} env=staging")).await;
    b.line_containing("it has already been answered").await;
    b.say("!st2answer 5f0e1d2c3b4a596877665544 continue=yes")
        .await;
    b.line_containing("StackStorm has no inquiry `5f0e1d2c3b4a596877665544`")
        .await;
}

#[actix_rt::test]
async fn someone_elses_inquiry_is_refused_by_stackstorm_and_by_access_control() {
    let mut opts = with_test_aliases();
    opts.access_toml = "[access]\ndefault = \"allow\"\nadmins = [\"console:alice\"]\n\
        [[access.rules]]\ntexts = [\"answer * reason=*\"]\naction = \"deny\"\n"
        .into();
    let mut b = started(opts).await;

    // StackStorm lets only bob answer: the bridge's account is refused (403).
    let bobs = ask(&b, &["bob"], None);
    b.say(&format!("!st2answer {bobs} continue=yes")).await;
    let reply = b
        .line_containing("StackStorm does not allow you to answer it")
        .await;
    assert!(reply.contains(&bobs), "{reply}");
    assert_eq!(b.emulator.inquiry_response(&bobs), None);

    // Access control governs `answer` like any built-in (here: no answers with a reason).
    let open = ask(
        &b,
        &[],
        Some(
            json!({"type": "object", "properties": {"reason": {"type": "string", "required": true}}}),
        ),
    );
    b.say(&format!("!st2answer {open} reason=because")).await;
    b.line_containing("Access control does not allow you to run `!st2answer")
        .await;
    assert_eq!(b.emulator.inquiry_response(&open), None);
}

/// Client-side mode on the console: alice is linked to `alice-st2`.
async fn link_console_alice(b: &mut TestBridge) {
    b.say("/dm st2session_start sesame").await;
    let line = b.line_containing("https://bridge.test/login/").await;
    let link = link_id(&line);
    let (status, body) = post_login(b, &link, &password_form("sesame")).await;
    assert_eq!(status, 200, "{body}");
    b.line_containing("now linked").await;
}

fn clientside() -> Options {
    let mut o = with_test_aliases();
    o.emulator
        .users
        .push((ALICE_ST2.0.into(), ALICE_ST2.1.into()));
    o.emulator
        .api_keys
        .push((BOB_KEY.0.into(), BOB_KEY.1.into()));
    o.extra_toml = "[auth]\nmode = \"clientside\"\npublic_url = \"https://bridge.test\"\n".into();
    o
}

fn link_id(text: &str) -> String {
    text.split("https://bridge.test/login/")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '>').next())
        .expect("a login link")
        .to_owned()
}

fn password_form(word: &str) -> Vec<(&'static str, String)> {
    vec![
        ("shared_word", word.to_owned()),
        ("method", "password".into()),
        ("username", ALICE_ST2.0.into()),
        ("password", ALICE_ST2.1.into()),
    ]
}

fn api_key_form(word: &str) -> Vec<(&'static str, String)> {
    vec![
        ("shared_word", word.to_owned()),
        ("method", "api_key".into()),
        ("api_key", BOB_KEY.0.into()),
    ]
}

async fn post_login(b: &TestBridge, link: &str, form: &[(&str, String)]) -> (u16, Value) {
    let mut resp = b
        .http
        .post(format!("http://{}/login/{link}", b.app.http_addr))
        .insert_header(("Accept", "application/json"))
        .send_form(&form)
        .await
        .expect("post the login form");
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(json!({})))
}

#[actix_rt::test]
async fn in_clientside_mode_the_listing_and_the_answer_are_the_users_own() {
    let mut b = started(clientside()).await;
    let for_alice = ask(&b, &[ALICE_ST2.0], None);
    let for_bob = ask(&b, &[BOB_KEY.1], None);

    // No session: nothing can be asked of StackStorm as alice.
    b.say("!st2inquiries").await;
    b.line_containing("no StackStorm session").await;

    link_console_alice(&mut b).await;
    b.say("!st2inquiries").await;
    let listing = b.line_containing("Pending StackStorm inquiries").await;
    assert!(
        listing.contains(&for_alice) && !listing.contains(&for_bob),
        "{listing}"
    );

    b.say(&format!("!st2answer {for_bob} continue=yes")).await;
    b.line_containing("StackStorm does not allow you to answer it")
        .await;
    assert_eq!(b.emulator.inquiry_response(&for_bob), None);

    // Only alice-st2 may answer this one: accepted means it ran as her, not as st2admin.
    b.say(&format!("!st2answer {for_alice} continue=no")).await;
    b.line_containing("StackStorm accepted it").await;
    assert_eq!(
        b.emulator.inquiry_response(&for_alice),
        Some(json!({"continue": false}))
    );
}

// ----- Slack buttons --------------------------------------------------------------------

pub(crate) async fn slack_bridge(mut opts: Options, slack: &FakeSlack) -> TestBridge {
    opts.extra_toml.push_str(&slack.socket_toml());
    let b = started(opts).await;
    assert_eq!(b.actor("chat:slack").await["state"], "up");
    b
}

/// Lists the inquiries in `channel` as `user` and returns the button message for `id`
/// (its body and `ts`).
async fn buttons_for(slack: &FakeSlack, channel: &str, user: &str, id: &str) -> (Value, String) {
    slack
        .push(slack.message_event(channel, user, "!st2inquiries", None))
        .await;
    slack.post_containing("Pending StackStorm inquiries").await;
    slack
        .post_and_ts_containing(&format!("Inquiry `{id}`"))
        .await
}

/// The button labelled `label` in a posted message.
pub(crate) fn button(post: &Value, label: &str) -> Value {
    post["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["type"] == "button" && e["text"]["text"] == label)
        .unwrap_or_else(|| panic!("no button {label:?} in {post:#}"))
}

pub(crate) async fn ephemeral_to(slack: &FakeSlack, user: &str, needle: &str) -> Value {
    let found = eventually!(
        WAIT,
        slack
            .calls("chat.postEphemeral")
            .iter()
            .any(|c| c.body["user"] == user
                && c.body["text"].as_str().unwrap_or_default().contains(needle))
    );
    assert!(
        found,
        "no ephemeral to {user} with {needle:?}; calls: {:#?}",
        slack.calls("chat.postEphemeral")
    );
    slack
        .calls("chat.postEphemeral")
        .into_iter()
        .find(|c| c.body["user"] == user)
        .map(|c| c.body)
        .unwrap_or_default()
}

#[actix_rt::test]
async fn a_slack_button_answers_as_the_presser_and_a_presser_who_may_not_is_refused() {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    // Bob may list but not answer (access control judges the presser, not the lister).
    opts.access_toml = format!(
        "[access]\ndefault = \"allow\"\nadmins = [\"console:alice\"]\n[[access.rules]]\n\
         builtins = [\"answer\"]\nusers = [\"slack:{BOB}\"]\naction = \"deny\"\n"
    );
    let mut b = slack_bridge(opts, &slack).await;
    let id = ask(&b, &[], None);

    let (offer, ts) = buttons_for(&slack, "C0OPS", ALICE, &id).await;
    assert_eq!(offer["channel"], "C0OPS");
    let listing = slack.post_containing("Pending StackStorm inquiries").await;
    assert!(
        listing["text"]
            .as_str()
            .unwrap_or_default()
            .contains("press a button"),
        "{listing}"
    );
    let yes = button(&offer, "Yes");
    let no = button(&offer, "No");
    assert_eq!(yes["style"], "primary");
    assert!(
        offer["text"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("!st2answer {id}")),
        "the notification text says how to answer by typing: {offer}"
    );

    // Bob presses Yes: refused by access control, told privately, nothing answered.
    let env = slack
        .push_interactive(slack.block_actions("C0OPS", BOB, &ts, None, &yes))
        .await;
    let refusal = ephemeral_to(&slack, BOB, "Access control does not allow you").await;
    assert_eq!(refusal["channel"], "C0OPS");
    assert!(
        slack.acks().contains(&env),
        "the interactive envelope is acknowledged"
    );
    assert_eq!(b.emulator.inquiry_response(&id), None);
    assert!(slack.updates().is_empty());
    // The refused press is in the audit, as the same answer typed would be.
    b.say(&format!("!st2audit --user slack:{BOB}")).await;
    let audit = b.line_containing("Jobs of").await;
    assert!(
        audit.contains(" refused ")
            && audit.contains(&format!("`!st2answer {id}"))
            && audit.contains("(button)`"),
        "{audit}"
    );

    // Alice presses No: answered, and the message now says who answered what.
    slack
        .push_interactive(slack.block_actions("C0OPS", ALICE, &ts, None, &no))
        .await;
    let answered = eventually!(WAIT, b.emulator.inquiry_response(&id).is_some());
    assert!(answered, "the press never reached StackStorm");
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"continue": false}))
    );
    let updated = eventually!(WAIT, !slack.updates().is_empty());
    assert!(updated, "the button message was not updated");
    let update = &slack.updates()[0];
    assert_eq!(update["channel"], "C0OPS");
    assert_eq!(update["ts"], ts.as_str());
    let text = update["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("Inquiry `{id}` answered by u0alice"))
            && text.contains("continue=false"),
        "{update}"
    );
    assert!(
        !update.to_string().contains("\"actions\""),
        "the spent buttons are gone: {update}"
    );

    // A second press on the spent message: StackStorm says it was answered, privately.
    slack
        .push_interactive(slack.block_actions("C0OPS", ALICE, &ts, None, &yes))
        .await;
    ephemeral_to(&slack, ALICE, "already been answered").await;
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"continue": false}))
    );
    let _ = TEAM;
}

#[actix_rt::test]
async fn in_clientside_mode_a_slack_press_runs_with_the_pressers_own_stackstorm_account() {
    let slack = FakeSlack::start().await;
    let b = slack_bridge(clientside(), &slack).await;

    // Alice links her StackStorm account with a password, Bob with an API key, both in DMs.
    for (user, dm, word, form) in [
        (ALICE, "D0ALICE", "sesame", password_form("sesame")),
        (BOB, "D0BOB", "open up", api_key_form("open up")),
    ] {
        slack
            .push(slack.message_event(dm, user, &format!("st2session_start {word}"), None))
            .await;
        let found = eventually!(
            WAIT,
            slack.posts().iter().any(|p| p["channel"] == dm
                && p["text"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("https://bridge.test/login/"))
        );
        assert!(found, "no login link for {user}: {:#?}", slack.posts());
        let post = slack
            .posts()
            .into_iter()
            .rev()
            .find(|p| {
                p["channel"] == dm && p["text"].as_str().unwrap_or_default().contains("/login/")
            })
            .unwrap_or_default();
        let link = link_id(post["text"].as_str().unwrap_or_default());
        let (status, body) = post_login(&b, &link, &form).await;
        assert_eq!(status, 200, "{body}");
        let linked = eventually!(
            WAIT,
            slack.posts().iter().any(|p| p["channel"] == dm
                && p["text"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("now linked"))
        );
        assert!(linked, "{user} not linked");
    }

    // Only alice-st2 may answer; Bob sees the buttons (he lists in the same channel).
    let id = ask(
        &b,
        &[ALICE_ST2.0],
        Some(json!({"type": "object", "properties": {
        "approve": {"type": "string", "enum": ["ship", "hold"], "required": true}}})),
    );
    let (offer, ts) = buttons_for(&slack, "C0OPS", ALICE, &id).await;
    let ship = button(&offer, "ship");

    slack
        .push_interactive(slack.block_actions("C0OPS", BOB, &ts, None, &ship))
        .await;
    ephemeral_to(&slack, BOB, "StackStorm does not allow you to answer it").await;
    assert_eq!(b.emulator.inquiry_response(&id), None);

    slack
        .push_interactive(slack.block_actions("C0OPS", ALICE, &ts, None, &ship))
        .await;
    let answered = eventually!(WAIT, b.emulator.inquiry_response(&id).is_some());
    assert!(answered, "alice's press was not accepted");
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"approve": "ship"}))
    );
}

// ----- Discord buttons ------------------------------------------------------------------

/// The bot's message in `channel` containing `needle`, once it is there.
pub(crate) async fn discord_message(
    fake: &crate::fake_discord::FakeDiscord,
    channel: &str,
    needle: &str,
) -> Value {
    let found = eventually!(WAIT, !fake.bot_messages(channel, needle).is_empty());
    assert!(
        found,
        "no Discord message containing {needle:?}: {:#?}",
        fake.bot_messages(channel, "")
    );
    fake.bot_messages(channel, needle).remove(0).msg
}

/// The `custom_id` of the button labelled `label` in a Discord message.
pub(crate) fn discord_button(msg: &Value, label: &str) -> String {
    msg["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == 2 && b["label"] == label)
        .and_then(|b| b["custom_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no button {label:?} in {msg:#}"))
}

#[actix_rt::test]
async fn a_discord_button_answers_as_the_presser_and_a_presser_who_may_not_is_refused() {
    use crate::fake_discord::{FakeDiscord, ALICE as DC_ALICE, BOB as DC_BOB, GENERAL};

    let fake = FakeDiscord::start().await;
    let mut opts = with_test_aliases();
    opts.access_toml = format!(
        "[access]\ndefault = \"allow\"\n[[access.rules]]\nbuiltins = [\"answer\"]\n\
         users = [\"dc:{DC_BOB}\"]\naction = \"deny\"\n"
    );
    opts.extra_toml = fake.chat_toml("");
    let b = started(opts).await;
    let id = ask(&b, &[], None);

    fake.post_as(DC_ALICE, GENERAL, "!st2inquiries");
    discord_message(&fake, GENERAL, "Pending StackStorm inquiries").await;
    let offer = discord_message(&fake, GENERAL, &format!("Inquiry `{id}`")).await;
    let yes = discord_button(&offer, "Yes");
    let no = discord_button(&offer, "No");

    // Bob presses Yes: acknowledged in time, refused by access control in a message only
    // he sees, nothing answered.
    let pressed = fake.press(DC_BOB, &offer, &yes);
    let refused = eventually!(
        WAIT,
        fake.followups().iter().any(|f| f.interaction == pressed)
    );
    assert!(refused, "no follow-up for bob's press");
    let followup = fake
        .followups()
        .into_iter()
        .find(|f| f.interaction == pressed)
        .expect("bob's follow-up");
    assert!(followup.ephemeral, "{:?}", followup.body);
    assert!(
        followup.body["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Access control does not allow you"),
        "{:?}",
        followup.body
    );
    let interaction = fake
        .interactions()
        .into_iter()
        .find(|i| i.id == pressed)
        .expect("the interaction");
    let (callback, at) = interaction.callback.expect("a callback");
    assert_eq!(
        callback["type"], 6,
        "deferred update: the message is edited later"
    );
    assert!(at.duration_since(interaction.at) < std::time::Duration::from_secs(3));
    assert_eq!(b.emulator.inquiry_response(&id), None);
    assert!(fake.edits().is_empty());

    // Alice presses No: answered as her, and the message says so, its buttons gone.
    fake.press(DC_ALICE, &offer, &no);
    let answered = eventually!(WAIT, b.emulator.inquiry_response(&id).is_some());
    assert!(answered, "alice's press never reached StackStorm");
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"continue": false}))
    );
    let edited = eventually!(WAIT, !fake.edits().is_empty());
    assert!(edited, "the button message was not edited");
    let updated = discord_message(&fake, GENERAL, "answered by alice").await;
    assert_eq!(updated["id"], offer["id"]);
    assert!(
        updated["content"]
            .as_str()
            .unwrap_or_default()
            .contains("continue=false"),
        "{updated}"
    );
    assert_eq!(updated["components"], json!([]));
}

// ----- Mattermost buttons ---------------------------------------------------------------

#[actix_rt::test]
async fn a_mattermost_button_answers_as_the_presser_and_forged_presses_are_refused() {
    use crate::fake_mattermost::FakeMattermost;

    let fake = FakeMattermost::start().await;
    let port = crate::support::free_port();
    let mut opts = with_test_aliases();
    opts.http_toml = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    opts.access_toml = format!(
        "[access]\ndefault = \"allow\"\n[[access.rules]]\nbuiltins = [\"answer\"]\n\
         users = [\"mm:{}\"]\naction = \"deny\"\n",
        fake.bob_id
    );
    opts.extra_toml = fake.chat_toml(&format!("actions_url = \"http://127.0.0.1:{port}\""));
    let b = started(opts).await;
    let id = ask(
        &b,
        &[],
        Some(json!({"type": "object", "properties": {
            "approve": {"type": "string", "enum": ["ship", "hold"], "required": true,
                        "description": "Ship the release?"}}})),
    );

    fake.post_as(&fake.alice_id, &fake.town_square, "!st2inquiries", "");
    let listed = eventually!(
        WAIT,
        !fake
            .bot_posts_containing(&fake.town_square, "Pending StackStorm inquiries")
            .is_empty()
            && !fake
                .bot_posts_containing(&fake.town_square, &format!("Inquiry `{id}`"))
                .is_empty()
    );
    assert!(listed, "no listing and buttons: {:#?}", fake.bot_posts());
    let offer = fake
        .bot_posts_containing(&fake.town_square, &format!("Inquiry `{id}`"))
        .remove(0)
        .post;
    assert!(
        offer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Ship the release?"),
        "{offer}"
    );
    let actions = offer["props"]["attachments"][0]["actions"].clone();
    assert_eq!(actions[0]["name"], "ship");
    assert_eq!(actions[1]["name"], "hold");
    let url = actions[0]["integration"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        url,
        format!("http://127.0.0.1:{port}/mattermost/actions/mm")
    );
    let post_id = offer["id"].as_str().unwrap_or_default().to_owned();

    // Mattermost does not sign presses: one without the button's token (here forged by
    // someone who knows the URL and the answer) is refused before anything runs.
    let forged = json!({"user_id": fake.alice_id, "user_name": "alice",
        "channel_id": fake.town_square, "channel_name": "town-square", "team_id": "",
        "post_id": post_id, "trigger_id": "", "type": "button", "data_source": "",
        "context": {"answer": actions[0]["integration"]["context"]["answer"], "token": "00".repeat(32)}});
    let (status, _) = fake
        .post_action(&url, &forged, &fake.alice_id, &post_id)
        .await;
    assert_eq!(status, 403);
    let (status, _) = fake
        .post_action(
            &url,
            &json!({"user_id": fake.alice_id}),
            &fake.alice_id,
            &post_id,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(b.emulator.inquiry_response(&id), None);

    // Bob may not answer: only he is told, the buttons stay.
    let (status, answer) = fake.press(&fake.bob_id, &post_id, "answer0").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("update").is_none_or(Value::is_null), "{answer}");
    let told = answer["ephemeral_text"].as_str().unwrap_or_default();
    assert!(
        told.contains("Access control does not allow you"),
        "{answer}"
    );
    assert_eq!(fake.ephemerals()[0].0, fake.bob_id);
    assert_eq!(b.emulator.inquiry_response(&id), None);

    // Alice presses "hold": answered as her; the post now says who answered what.
    let (status, answer) = fake.press(&fake.alice_id, &post_id, "answer1").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        b.emulator.inquiry_response(&id),
        Some(json!({"approve": "hold"}))
    );
    let post = fake.post(&post_id).expect("the post");
    let message = post["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("Inquiry `{id}` answered by alice"))
            && message.contains("approve=hold"),
        "{post}"
    );
    assert_eq!(
        post["props"],
        json!({}),
        "the spent buttons are gone: {post}"
    );
}

// ----- StackStorm RBAC ------------------------------------------------------------------

/// StackStorm with RBAC on, the bridge's account (`st2admin`) no admin (only `root` is),
/// holding `roles` and the permission `grants` given, plus `action_alias_list` (without
/// it StackStorm refuses the bridge its alias list).
fn rbac(roles: &[&str], grants: &[&str]) -> Options {
    let mut o = with_test_aliases();
    o.emulator.rbac = true;
    o.emulator.admins = vec!["root".into()];
    o.emulator.roles = roles
        .iter()
        .map(|r| ("st2admin".to_owned(), (*r).to_owned()))
        .collect();
    o.emulator.grants = grants
        .iter()
        .chain(&["action_alias_list"])
        .map(|p| ("st2admin".to_owned(), (*p).to_owned()))
        .collect();
    o
}

fn ask_roles(b: &TestBridge, roles: &[&str]) -> String {
    b.emulator.ask(InquirySpec {
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ..InquirySpec::default()
    })
}

#[actix_rt::test]
async fn with_rbac_an_inquiry_for_a_role_the_bridge_account_holds_is_listed_and_answered() {
    let mut b = started(rbac(&["ops"], &["inquiry_list", "inquiry_respond"])).await;
    let for_ops = ask_roles(&b, &["ops"]);

    b.say("!st2inquiries").await;
    let listing = b.line_containing("Pending StackStorm inquiries").await;
    // The role comes from `GET /api/v1/user`: listed as answerable, with nothing left for
    // StackStorm alone to check and nothing hidden.
    assert!(listing.contains(&for_ops), "{listing}");
    assert!(
        !listing.contains("StackStorm checks for one of the roles"),
        "{listing}"
    );
    assert!(!listing.contains("other StackStorm users"), "{listing}");
    assert!(
        listing.contains(&format!("Answer: `!st2answer {for_ops} continue=yes`")),
        "{listing}"
    );

    b.say(&format!("!st2answer {for_ops} continue=yes")).await;
    let reply = b.line_containing(&format!("Inquiry `{for_ops}`")).await;
    assert!(reply.contains("StackStorm accepted it"), "{reply}");
    assert_eq!(
        b.emulator.inquiry_response(&for_ops),
        Some(json!({"continue": true}))
    );
}

#[actix_rt::test]
async fn with_rbac_and_no_inquiry_permissions_the_refusal_names_the_permission() {
    let mut b = started(rbac(&["ops"], &[])).await;
    let for_ops = ask_roles(&b, &["ops"]);

    b.say("!st2inquiries").await;
    let reply = b
        .line_containing("Sorry, I couldn't run `!st2inquiries`")
        .await;
    assert!(
        reply.contains("does not let your account list inquiries")
            && reply.contains("inquiry_list"),
        "{reply}"
    );
    assert!(!reply.contains(&for_ops), "{reply}");

    // Answering is refused too (StackStorm's 403 on reading the inquiry), nothing sent.
    b.say(&format!("!st2answer {for_ops} continue=yes")).await;
    let reply = b
        .line_containing(&format!("Sorry, I couldn't answer inquiry `{for_ops}`"))
        .await;
    assert!(
        reply.contains("does not let your account answer inquiries")
            && reply.contains("`inquiry_view`"),
        "{reply}"
    );
    assert_eq!(b.emulator.inquiry_response(&for_ops), None);
}

#[actix_rt::test]
async fn with_rbac_an_answer_refused_for_a_missing_permission_names_the_permission() {
    let mut b = started(rbac(&["ops"], &["inquiry_list"])).await;
    let for_ops = ask_roles(&b, &["ops"]);

    b.say(&format!("!st2answer {for_ops} continue=yes")).await;
    let reply = b
        .line_containing(&format!("Sorry, I couldn't answer inquiry `{for_ops}`"))
        .await;
    // StackStorm said `User "st2admin" doesn't have required permission "inquiry_view"`:
    // the user is owed the permission, not a hint about the inquiry's users and roles
    // (st2admin holds `ops`, the only role this inquiry names).
    assert!(reply.contains("inquiry_view"), "{reply}");
    assert!(!reply.contains("users and roles who may"), "{reply}");
    assert_eq!(b.emulator.inquiry_response(&for_ops), None);
}

#[actix_rt::test]
async fn with_rbac_an_inquiry_for_a_role_the_bridge_account_lacks_is_hidden_and_refused() {
    let mut b = started(rbac(&["dev"], &["inquiry_list", "inquiry_respond"])).await;
    let for_ops = ask_roles(&b, &["ops"]);
    let for_dev = ask_roles(&b, &["ops", "dev"]);

    b.say("!st2inquiries").await;
    let listing = b.line_containing("Pending StackStorm inquiries").await;
    // Any one of the roles will do; `ops` alone is not held, so that one is not offered.
    assert!(listing.contains(&for_dev), "{listing}");
    assert!(!listing.contains(&for_ops), "{listing}");
    assert!(
        listing.contains("1 more is for other StackStorm users"),
        "{listing}"
    );

    b.say(&format!("!st2answer {for_ops} continue=yes")).await;
    let reply = b
        .line_containing(&format!("Sorry, I couldn't answer inquiry `{for_ops}`"))
        .await;
    assert!(
        reply.contains("StackStorm does not allow you to answer it"),
        "{reply}"
    );
    assert_eq!(b.emulator.inquiry_response(&for_ops), None);

    // The one for a held role still goes through.
    b.say(&format!("!st2answer {for_dev} continue=no")).await;
    b.line_containing(&format!("Inquiry `{for_dev}` answered"))
        .await;
    assert_eq!(
        b.emulator.inquiry_response(&for_dev),
        Some(json!({"continue": false}))
    );
}
