//! Webex: the webhook signature (`stormbridge::backends::webex::signature`), the delivery and
//! message parsers and the message mapping (`stormbridge::backends::webex::wire`), and the
//! webhook plan.
//!
//! * **Signature**: a signature over any body verifies; a change of any one byte of the body
//!   or of the signature, or another secret, does not; any header value at all is refused or
//!   accepted without panicking, and accepted only when it is the signature.
//! * **Deliveries and messages**: any delivery body (mutated real ones from Webex's
//!   reference, damaged as text) reads or is refused without panicking; any fetched message
//!   maps to a chat message or a reason to skip it, and a chat message always has the
//!   message's non-blank author (never the bot, never another bot) as its user, the
//!   message's room as its room, and as its text the message's text or what follows a
//!   leading mention of the bot.
//! * **Webhook plan**: whatever webhooks the bot has, carrying out the plan leaves exactly
//!   one right webhook of the bridge's for each resource it needs, and every other webhook
//!   as it was.

use proptest::{prelude::*, sample::Index};
use serde_json::{json, Value};
use stormbridge::backends::webex::{
    signature::{sign, verify},
    wire::{self, Delivery, Mapping, Me, Message, Person, Step, Wanted, Webhook},
};

use super::{
    check, mutated_json, mutated_json_text, odd_string, sane, timed, with_identity_damage,
};

/// `ciscospark://us/PEOPLE/00000000-0000-4000-8000-000000000b07`.
const BOT: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS8wMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDBiMDc";
const ALICE: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ";

fn me() -> Me {
    Me::from_person(&Person {
        id: BOT.into(),
        emails: vec!["stormbot@webex.bot".into()],
        display_name: "StormBot".into(),
        nick_name: "Storm".into(),
        first_name: String::new(),
    })
}

// ---------------------------------------------------------------------------------------
// The signature
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Tamper {
    Nothing,
    BodyByte(Index, u8),
    SignatureByte(Index, u8),
    Secret(u8),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    let sig_byte = prop_oneof![
        proptest::sample::select(b"0123456789abcdefABCDEF+- x=".to_vec()),
        any::<u8>(),
    ];
    prop_oneof![
        1 => Just(Tamper::Nothing),
        2 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Tamper::BodyByte(i, x)),
        3 => (any::<Index>(), sig_byte).prop_map(|(i, b)| Tamper::SignatureByte(i, b)),
        1 => (1u8..=255).prop_map(Tamper::Secret),
    ]
}

/// A `messages`/`created` delivery as "Webhooks" shows one
/// (https://developer.webex.com/docs/webhooks).
fn delivery_seed() -> Value {
    json!({
        "id": "Y2lzY29zcGFyazovL3VzL1dFQkhPT0svZjRlNjA1NjA",
        "name": "stormbridge wx",
        "targetUrl": "https://bridge.example.com/webex/events/wx",
        "resource": "messages",
        "event": "created",
        "orgId": "OTZhYmMyYWEtM2RjYy0xMWU1LWExNTItZmUzNDgxOWNkYzlh",
        "createdBy": BOT,
        "appId": "Y2lzY29zcGFyazovL3VzL0FQUExJQ0FUSU9OL0MyNzlj",
        "ownedBy": "creator",
        "status": "active",
        "actorId": ALICE,
        "data": {
            "id": "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvbTE",
            "roomId": "Y2lzY29zcGFyazovL3VzL1JPT00vb3Bz",
            "roomType": "group",
            "personId": ALICE,
            "personEmail": "alice@example.com",
            "mentionedPeople": [BOT],
            "created": "2024-01-01T00:00:00.000Z"
        }
    })
}

fn action_seed() -> Value {
    let mut d = delivery_seed();
    d["resource"] = json!("attachmentActions");
    d["data"] = json!({"id": "Y2lzY29zcGFyazovL3VzL0FUVEFDSE1FTlRfQUNUSU9OL2Ex", "type": "submit",
        "messageId": "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvbTE", "personId": ALICE,
        "roomId": "Y2lzY29zcGFyazovL3VzL1JPT00vb3Bz", "created": "2024-01-01T00:00:00.000Z"});
    d
}

const DELIVERY_KEYS: &[&str] = &[
    "id",
    "name",
    "resource",
    "event",
    "data",
    "roomId",
    "roomType",
    "personId",
    "personEmail",
    "messageId",
    "mentionedPeople",
];

#[test]
fn a_signature_verifies_its_own_body_and_nothing_else() {
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        mutated_json_text(vec![delivery_seed(), action_seed()], DELIVERY_KEYS.to_vec())
            .prop_map(String::into_bytes),
    ];
    let strategy = (
        proptest::collection::vec(any::<u8>(), 1..48),
        body,
        tamper(),
    );
    check(
        "webex::signature",
        512,
        strategy,
        |(secret, body, tamper)| {
            let sig = sign(&secret, &body);
            prop_assert!(verify(&secret, &body, &sig), "own signature refused");
            match tamper {
                Tamper::Nothing => {}
                Tamper::BodyByte(i, x) => {
                    let mut b = body.clone();
                    if b.is_empty() {
                        b.push(x);
                    } else {
                        let i = i.index(b.len());
                        b[i] ^= x;
                    }
                    prop_assert!(!verify(&secret, &b, &sig));
                }
                Tamper::SignatureByte(i, byte) => {
                    let mut s = sig.clone().into_bytes();
                    let i = i.index(s.len());
                    s[i] = if s[i] == byte { byte ^ 1 } else { byte };
                    let s = String::from_utf8_lossy(&s);
                    // Surrounding blanks are not part of a header value.
                    if s.trim() != sig {
                        prop_assert!(
                            !verify(&secret, &body, &s),
                            "{s:?} accepted in place of {sig:?}"
                        );
                    }
                }
                Tamper::Secret(x) => {
                    let mut other = secret.clone();
                    other[0] ^= x;
                    prop_assert!(!verify(&other, &body, &sig));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn any_signature_header_is_refused_without_panicking() {
    let sig = prop_oneof![
        odd_string(),
        "[0-9a-fA-F+ -]{0,50}",
        "sha1=[0-9a-f]{40}",
        Just(String::new()),
    ];
    let strategy = (sig, proptest::collection::vec(any::<u8>(), 0..64));
    check("webex::signature_garbage", 512, strategy, |(sig, body)| {
        let ok = timed("verifying", || verify(b"s3cret", &body, &sig))?;
        prop_assert!(!ok || sig.trim() == sign(b"s3cret", &body));
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// Deliveries and messages
// ---------------------------------------------------------------------------------------

#[test]
fn any_delivery_body_reads_or_is_refused() {
    let texts = mutated_json_text(vec![delivery_seed(), action_seed()], DELIVERY_KEYS.to_vec());
    check("webex::deliveries", 256, texts, |text| {
        if let Some(d) = timed("reading a delivery", || Delivery::parse(text.as_bytes()))? {
            // What it is about follows from resource and event alone.
            let expected = match (d.resource.as_str(), d.event.as_str()) {
                ("messages", "created") => wire::Hook::Message,
                ("attachmentActions", "created") => wire::Hook::Action,
                _ => wire::Hook::Other,
            };
            prop_assert_eq!(d.hook(), expected);
        }
        Ok(())
    });
}

/// A message as "Get Message Details" documents it
/// (https://developer.webex.com/docs/api/v1/messages/get-message-details).
fn message_seed() -> Value {
    json!({
        "id": "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvbTE",
        "roomId": "Y2lzY29zcGFyazovL3VzL1JPT00vb3Bz",
        "roomType": "group",
        "text": "StormBot !st2 run date",
        "markdown": "<@personId:Y2lz|StormBot> !st2 run date",
        "html": format!("<p><spark-mention data-object-type=\"person\" data-object-id=\"{BOT}\">StormBot</spark-mention> !st2 run date</p>"),
        "personId": ALICE,
        "personEmail": "alice@example.com",
        "mentionedPeople": [BOT],
        "created": "2024-01-01T00:00:00.000Z",
        "updated": "2024-01-01T00:00:01.000Z"
    })
}

fn message_seeds() -> Vec<Value> {
    let mut direct = message_seed();
    direct["roomType"] = json!("direct");
    direct["text"] = json!("!st2 run uptime");
    direct["html"] = json!("<p>!st2 run uptime</p>");
    direct["parentId"] = json!("Y2lzY29zcGFyazovL3VzL01FU1NBR0UvcGFyZW50");
    let mut short = message_seed();
    short["text"] = json!("Storm: st2 help");
    short["html"] = json!("<spark-mention data-object-type=\"person\" data-object-id=\"00000000-0000-4000-8000-000000000b07\">Storm</spark-mention>: st2 help");
    let mut own = message_seed();
    own["personId"] = json!(BOT);
    let mut bot = message_seed();
    bot["personEmail"] = json!("other@webex.bot");
    vec![message_seed(), direct, short, own, bot]
}

const MESSAGE_KEYS: &[&str] = &[
    "id",
    "roomId",
    "roomType",
    "text",
    "markdown",
    "html",
    "personId",
    "personEmail",
    "parentId",
    "mentionedPeople",
];

#[test]
fn fetched_messages_map_to_sane_chat_messages() {
    let docs = with_identity_damage(
        mutated_json(message_seeds(), MESSAGE_KEYS.to_vec(), 5),
        vec!["/personId", "/roomId", "/id", "/personEmail"],
    );
    let me = me();
    check(
        "webex::messages",
        256,
        (docs, any::<bool>()),
        |(doc, reply_in_thread)| {
            let Some(msg) = timed("reading a message", || Message::parse(&doc))? else {
                return Ok(());
            };
            let mapping = Mapping {
                connection: "wx",
                me: &me,
                reply_in_thread,
            };
            let Ok(out) = timed("mapping a message", || {
                wire::message_to_inbound(&msg, &mapping)
            })?
            else {
                return Ok(());
            };
            sane(&out, "wx")?;
            prop_assert_eq!(&out.user.id, &msg.person_id);
            prop_assert!(!me.is(&out.user.id), "the bot's own message: {out:?}");
            prop_assert!(!wire::is_bot_email(&msg.person_email), "a bot's: {out:?}");
            prop_assert_eq!(&out.room.id, &msg.room_id);
            prop_assert!(!out.room.id.trim().is_empty());
            let source = msg
                .text
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .or(msg.markdown.as_deref())
                .unwrap_or_default();
            if out.mentioned {
                prop_assert!(source.ends_with(&out.text), "{source:?} → {:?}", out.text);
            } else {
                prop_assert_eq!(out.text.as_str(), source);
            }
            Ok(())
        },
    );
}

#[test]
fn mention_stripping_leaves_a_suffix() {
    let me = me();
    let strategy = (
        prop_oneof![
            odd_string(),
            "(StormBot|Storm|stormbot)[ :,]{0,3}[a-z !]{0,20}",
        ],
        proptest::option::of(prop_oneof![
            odd_string(),
            Just(format!("<p><spark-mention data-object-type=\"person\" data-object-id=\"{BOT}\">StormBot</spark-mention> x</p>")),
            "<(p|div)><spark-mention data-object-type=\"person\" data-object-id=\"[A-Za-z0-9]{0,8}\">[A-Za-z]{0,10}</spark-mention>",
        ]),
    );
    check("webex::mention", 256, strategy, |(text, html)| {
        let (mentioned, rest) = timed("stripping", || {
            wire::strip_mention(&text, html.as_deref(), &me)
        })?;
        prop_assert!(text.ends_with(rest));
        if !mentioned {
            prop_assert_eq!(rest, text.as_str());
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// The webhook plan
// ---------------------------------------------------------------------------------------

const NAME: &str = "stormbridge wx";
const TARGET: &str = "https://bridge.example.com/webex/events/wx";
const SECRET: &str = "s3cret";

fn webhook() -> impl Strategy<Value = Webhook> {
    (
        prop_oneof![3 => Just(NAME.to_owned()), 1 => Just("pagerbot".to_owned()), 1 => odd_string()],
        proptest::sample::select(vec!["messages", "attachmentActions", "rooms", "memberships"]),
        proptest::sample::select(vec!["created", "deleted", "updated"]),
        prop_oneof![2 => Just(TARGET.to_owned()), 1 => Just("https://old/x".to_owned())],
        proptest::option::of(prop_oneof![Just(SECRET.to_owned()), Just("old".to_owned())]),
        proptest::option::of(prop_oneof![Just("active".to_owned()), Just("inactive".to_owned())]),
        proptest::option::weighted(0.2, Just("roomId=R".to_owned())),
    )
        .prop_map(|(name, resource, event, target_url, secret, status, filter)| Webhook {
            id: String::new(),
            name,
            target_url,
            resource: resource.to_owned(),
            event: event.to_owned(),
            filter,
            secret,
            status,
        })
}

/// What Webex does with each step (as the fake does).
fn carry_out(mut hooks: Vec<Webhook>, steps: &[Step], wanted: &Wanted<'_>) -> Vec<Webhook> {
    let mut next = hooks.len();
    for step in steps {
        match step {
            Step::Create { resource, event } => {
                next += 1;
                hooks.push(Webhook {
                    id: format!("new{next}"),
                    name: wanted.name.to_owned(),
                    target_url: wanted.target_url.to_owned(),
                    resource: (*resource).to_owned(),
                    event: (*event).to_owned(),
                    filter: None,
                    secret: Some(wanted.secret.to_owned()),
                    status: Some("active".into()),
                });
            }
            Step::Update { id } => {
                if let Some(w) = hooks.iter_mut().find(|w| &w.id == id) {
                    w.name = wanted.name.to_owned();
                    w.target_url = wanted.target_url.to_owned();
                    w.secret = Some(wanted.secret.to_owned());
                    w.status = Some("active".into());
                }
            }
            Step::Delete { id } => hooks.retain(|w| &w.id != id),
        }
    }
    hooks
}

#[test]
fn any_webhooks_end_up_right_and_foreign_ones_untouched() {
    let wanted = Wanted {
        name: NAME,
        target_url: TARGET,
        secret: SECRET,
    };
    check(
        "webex::plan",
        256,
        proptest::collection::vec(webhook(), 0..8),
        |mut hooks| {
            for (i, w) in hooks.iter_mut().enumerate() {
                w.id = format!("w{i}");
            }
            let steps = timed("planning", || wire::plan(&hooks, &wanted))?;
            let after = carry_out(hooks.clone(), &steps, &wanted);
            for (resource, event) in wire::WANTED {
                let mine: Vec<&Webhook> = after
                    .iter()
                    .filter(|w| w.name == NAME && w.resource == resource && w.event == event)
                    .collect();
                prop_assert_eq!(mine.len(), 1, "{:?} after {:?}", after, steps);
                let w = mine[0];
                prop_assert_eq!(w.target_url.as_str(), TARGET);
                prop_assert_eq!(w.secret.as_deref(), Some(SECRET));
                prop_assert!(w.status.as_deref().is_none_or(|s| s == "active"));
                prop_assert!(w.filter.as_deref().is_none_or(str::is_empty));
            }
            // Everything not of the bridge's (name, resource, event) is as it was.
            let managed = |w: &Webhook| {
                w.name == NAME
                    && wire::WANTED
                        .iter()
                        .any(|(r, e)| w.resource == *r && w.event == *e)
            };
            let before: Vec<&Webhook> = hooks.iter().filter(|w| !managed(w)).collect();
            let kept: Vec<&Webhook> = after.iter().filter(|w| !managed(w)).collect();
            prop_assert_eq!(before, kept);
            // A second look finds nothing to do.
            prop_assert_eq!(wire::plan(&after, &wanted), vec![]);
            Ok(())
        },
    );
}
