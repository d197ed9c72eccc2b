//! Webex as a [`Platform`]: there is no transport to read, so the link is the log-in (`GET
//! /people/me`) and the bot's webhooks put right; events arrive as signed requests on the
//! connection's HTTP route ([`WebhookRequest`]), messages go out over REST.

use std::{
    collections::{HashMap, VecDeque},
    rc::Rc,
    sync::Arc,
    time::Duration,
};

use futures_util::{future::LocalBoxFuture, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{
    api::{Api, Outgoing},
    config::WebexSettings,
    interactive::Interactions,
    signature,
    wire::{self, Delivery, DeliveryData, Hook, Mapping, Me, Message, Person, Step, Wanted},
};
use crate::{
    actors::messages::Deliver,
    backends::{
        connection::{
            outbox::Dest, ConnectionError, Effects, Handles, Link, Platform, Seen, Sending,
        },
        webhook::{WebhookReply, WebhookRequest},
    },
    domain::message::{InboundMessage, RoomKind},
};

/// Remembered message and press ids, to drop a delivery Webex makes twice.
const SEEN_CAPACITY: usize = 1024;

/// Messages of one room waiting for earlier ones to be fetched, at most.
const MAX_WAITING_PER_ROOM: usize = 256;

/// Names remembered (room titles, pressers' names) before the cache starts afresh.
const MAX_NAMES: usize = 10_000;

/// Why a connection could not be created.
#[derive(Debug, thiserror::Error)]
pub enum WebexSetupError {
    /// No token or webhook secret (validation normally catches this).
    #[error("webex connection has no {0}")]
    Missing(&'static str),
    /// TLS settings failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// What a fetched message brings: the message, and its room's title when it was looked up.
type Fetched = Result<(Message, Option<String>), ConnectionError>;

/// The platform's own happenings.
pub enum Event {
    /// Time to check the webhooks again.
    Check,
    /// A check of link `epoch` ended.
    Checked {
        epoch: u64,
        result: Result<Vec<Step>, ConnectionError>,
    },
    /// The message a delivery named, fetched (`seq`: its place in its room's order).
    Fetched {
        room: String,
        seq: u64,
        result: Box<Fetched>,
    },
    /// A send of link `epoch` could not reach Webex.
    Unreachable { epoch: u64, error: ConnectionError },
    /// A card press, fetched.
    Pressed(Box<super::interactive::Press>),
    /// A held command's card was posted as message `message_id`.
    CardPosted { message_id: String },
}

/// What connecting learnt: the bot, and what was done to its webhooks.
pub struct Hello {
    me: Person,
    steps: Vec<Step>,
}

/// A Webex connection's state.
pub struct Webex {
    pub(super) name: String,
    pub(super) settings: WebexSettings,
    token: Rc<str>,
    api_base: Rc<str>,
    secret: SecretString,
    /// Where the bridge's webhooks deliver.
    target_url: String,
    /// The bridge's webhooks' name.
    webhook_name: String,
    tls: Arc<rustls::ClientConfig>,
    http: Option<awc::Client>,
    pub(super) me: Option<Me>,
    /// The current link's number: results of an older link's calls are ignored.
    pub(super) epoch: u64,
    seen: Seen,
    pub(super) room_names: HashMap<String, String>,
    /// People's names as seen on their messages (for presses).
    pub(super) people: HashMap<String, String>,
    /// Per room, messages in delivery order, with their fetched content once there.
    waiting: HashMap<String, VecDeque<(u64, Option<Fetched>)>>,
    next_seq: u64,
    pub(super) interactive: Interactions,
}

impl Webex {
    /// The platform for connection `name`.
    pub fn new(name: String, settings: WebexSettings) -> Result<Self, WebexSetupError> {
        let token = settings
            .token
            .clone()
            .ok_or(WebexSetupError::Missing("token"))?;
        let secret = settings
            .webhook_secret
            .clone()
            .ok_or(WebexSetupError::Missing("webhook_secret"))?;
        let tls = crate::tls::client_config(settings.verify_cert, None)?;
        let target_url = format!(
            "{}{}",
            settings.public_url.trim_end_matches('/'),
            super::events_path(&name)
        );
        Ok(Self {
            webhook_name: super::webhook_name(&name),
            name,
            token: token.expose_secret().into(),
            api_base: settings.api_url.trim_end_matches('/').into(),
            settings,
            secret,
            target_url,
            tls,
            http: None,
            me: None,
            epoch: 0,
            seen: Seen::new(SEEN_CAPACITY),
            room_names: HashMap::new(),
            people: HashMap::new(),
            waiting: HashMap::new(),
            next_seq: 0,
            interactive: Interactions::default(),
        })
    }

    pub(super) fn api(&mut self) -> Api {
        let client = crate::backends::rest::lazy_client(
            &mut self.http,
            &self.tls,
            crate::backends::rest::USER_AGENT,
        );
        Api {
            client,
            base: self.api_base.clone(),
            token: self.token.clone(),
        }
    }

    /// The webhooks the bridge needs, owned, for a background call.
    fn wanted(&self) -> (String, String, String) {
        (
            self.webhook_name.clone(),
            self.target_url.clone(),
            self.secret.expose_secret().to_owned(),
        )
    }

    /// True the first time `key` is seen (among the last [`SEEN_CAPACITY`]).
    pub(super) fn first_sighting(&mut self, key: String) -> bool {
        self.seen.insert(&key)
    }

    /// Remembers a name, starting afresh when the cache is full.
    pub(super) fn remember(map: &mut HashMap<String, String>, key: String, value: String) {
        if map.len() >= MAX_NAMES && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, value);
    }

    /// A message of `text` as queue items, split at the limit.
    pub(super) fn items(&self, dest: Dest, parent_id: Option<String>, text: &str) -> Vec<Outgoing> {
        // A person's 1:1 room has no thread to answer in.
        let parent_id = parent_id.filter(|_| matches!(dest, Dest::Room(_)));
        wire::parts(text, self.settings.message_limit())
            .into_iter()
            .map(|markdown| Outgoing {
                dest: dest.clone(),
                parent_id: parent_id.clone(),
                markdown,
                card: None,
                posted: None,
                delete: None,
            })
            .collect()
    }

    fn log_steps(&self, steps: &[Step]) {
        for step in steps {
            match step {
                Step::Create { resource, event } => {
                    tracing::info!(connection = %self.name, resource = %resource, event = %event, target = %self.target_url, "Webex webhook created")
                }
                Step::Update { id } => {
                    tracing::info!(connection = %self.name, webhook = %id, target = %self.target_url, "Webex webhook updated (target, secret or status)")
                }
                Step::Delete { id } => {
                    tracing::info!(connection = %self.name, webhook = %id, "stale Webex webhook deleted")
                }
            }
        }
    }

    /// Checks the webhooks in the background.
    fn check(&mut self, fx: &mut Effects<Self>) {
        let api = self.api();
        let (name, target, secret) = self.wanted();
        let epoch = self.epoch;
        fx.spawn(async move {
            let wanted = Wanted {
                name: &name,
                target_url: &target,
                secret: &secret,
            };
            Event::Checked {
                epoch,
                result: api.reconcile(&wanted).await,
            }
        });
    }

    /// A `messages` delivery: the message is fetched, and handed on in its room's order.
    fn on_message(&mut self, data: DeliveryData, me: &Me, fx: &mut Effects<Self>) {
        if data.id.trim().is_empty() {
            return;
        }
        // The bridge's own posts and other bots' need no fetching.
        if me.is(&data.person_id) || wire::is_bot_email(&data.person_email) {
            tracing::debug!(connection = %self.name, "Webex message by a bot skipped");
            return;
        }
        if !self.first_sighting(format!("msg:{}", data.id)) {
            return;
        }
        let room = data.room_id.clone();
        let seq = self.next_seq;
        self.next_seq += 1;
        let queue = self.waiting.entry(room.clone()).or_default();
        if queue.len() >= MAX_WAITING_PER_ROOM {
            queue.pop_front();
            tracing::warn!(connection = %self.name, room = %room, "too many Webex messages waiting to be read; the oldest skipped");
        }
        queue.push_back((seq, None));
        let title_wanted = data.room_type != "direct" && !self.room_names.contains_key(&room);
        let api = self.api();
        fx.spawn(async move {
            let result = match api.message(&data.id).await {
                Ok(msg) => {
                    let title = if title_wanted && msg.room_type != "direct" {
                        api.room_title(&msg.room_id).await.unwrap_or_else(|e| {
                            tracing::debug!(error = %e, "no Webex room title");
                            None
                        })
                    } else {
                        None
                    };
                    Ok((msg, title))
                }
                Err(e) => Err(e),
            };
            Event::Fetched {
                room,
                seq,
                result: Box::new(result),
            }
        });
    }

    /// A message fetched: it, and any after it in its room that were waiting for it, go on.
    fn fetched(&mut self, room: String, seq: u64, result: Fetched, fx: &mut Effects<Self>) {
        let Some(queue) = self.waiting.get_mut(&room) else {
            return;
        };
        let Some(slot) = queue.iter_mut().find(|(s, _)| *s == seq) else {
            return;
        };
        slot.1 = Some(result);
        let mut ready = Vec::new();
        while queue.front().is_some_and(|(_, r)| r.is_some()) {
            if let Some((_, Some(result))) = queue.pop_front() {
                ready.push(result);
            }
        }
        if queue.is_empty() {
            self.waiting.remove(&room);
        }
        for result in ready {
            self.hand_on(result, fx);
        }
    }

    fn hand_on(&mut self, result: Fetched, fx: &mut Effects<Self>) {
        let (msg, title) = match result {
            Ok(fetched) => fetched,
            Err(e) => {
                tracing::warn!(connection = %self.name, error = %e, "cannot read a Webex message; it is skipped");
                return;
            }
        };
        let Some(me) = self.me.as_ref() else {
            return;
        };
        let mapping = Mapping {
            connection: &self.name,
            me,
            reply_in_thread: self.settings.reply_in_thread,
        };
        let msg = match wire::message_to_inbound(&msg, &mapping) {
            Ok(msg) => msg,
            Err(skip) => {
                tracing::debug!(connection = %self.name, ?skip, "Webex message skipped");
                return;
            }
        };
        if let Some(title) = title {
            Self::remember(&mut self.room_names, msg.room.id.clone(), title);
        }
        Self::remember(&mut self.people, msg.user.id.clone(), msg.user.name.clone());
        let room_name = match msg.room.kind {
            RoomKind::Group => self.room_names.get(&msg.room.id).cloned(),
            RoomKind::Direct => None,
        };
        fx.inbound(InboundMessage { room_name, ..msg });
    }
}

impl Platform for Webex {
    const KIND: &'static str = "webex";
    /// No transport: events come over HTTP.
    type Frame = ();
    type Write = ();
    type Item = Outgoing;
    type Event = Event;
    type Hello = Hello;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let api = self.api();
        let (name, target, secret) = self.wanted();
        Box::pin(async move {
            let me = api.me().await?;
            let wanted = Wanted {
                name: &name,
                target_url: &target,
                secret: &secret,
            };
            let steps = api.reconcile(&wanted).await?;
            Ok(Link {
                frames: futures_util::stream::pending().boxed_local(),
                sink: None,
                hello: Hello { me, steps },
            })
        })
    }

    fn opened(&mut self, hello: Hello, fx: &mut Effects<Self>) {
        let me = Me::from_person(&hello.me);
        tracing::info!(connection = %self.name, bot = %me.id, "Webex login ok");
        self.log_steps(&hello.steps);
        self.me = Some(me);
        fx.detail("webhook_target", json!(self.target_url));
        fx.ready();
        fx.after(
            Duration::from_secs(self.settings.check_interval_secs.max(1)),
            Event::Check,
        );
    }

    fn frame(&mut self, _frame: (), _fx: &mut Effects<Self>) {}

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Check => self.check(fx),
            Event::Checked { epoch, .. } | Event::Unreachable { epoch, .. }
                if epoch != self.epoch => {}
            Event::Checked { result, .. } => match result {
                Ok(steps) => {
                    self.log_steps(&steps);
                    fx.after(
                        Duration::from_secs(self.settings.check_interval_secs.max(1)),
                        Event::Check,
                    );
                }
                Err(e) if e.is_fatal() => fx.halt(e),
                // Webex is there, only busy: look again at the next check.
                Err(
                    e @ ConnectionError::Http {
                        status: 423 | 429, ..
                    },
                ) => {
                    tracing::debug!(connection = %self.name, error = %e, "Webex webhook check put off");
                    fx.after(
                        Duration::from_secs(self.settings.check_interval_secs.max(1)),
                        Event::Check,
                    );
                }
                Err(e) => fx.fail(e),
            },
            Event::Unreachable { error, .. } => fx.fail(error),
            Event::Fetched { room, seq, result } => self.fetched(room, seq, *result, fx),
            Event::Pressed(press) => self.pressed(*press, fx),
            Event::CardPosted { message_id } => self.interactive.card_posted(message_id),
        }
    }

    fn closed(&mut self) {
        self.epoch += 1;
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Outgoing> {
        let (dest, parent_id) = Dest::of(delivery.target);
        self.items(dest, parent_id, &delivery.text)
    }

    fn lane(&self, item: &Outgoing) -> String {
        item.dest.lane()
    }

    fn send(&mut self, item: &Outgoing) -> Sending<Self> {
        if self.me.is_none() {
            return Sending::NotNow;
        }
        let api = self.api();
        let item = item.clone();
        let epoch = self.epoch;
        Sending::Call(Box::pin(async move {
            let (outcome, unreachable, posted_id) = api.send(&item).await;
            let event = match (&outcome, unreachable) {
                (crate::backends::connection::outbox::Outcome::Retry(error), true) => {
                    Some(Event::Unreachable {
                        epoch,
                        error: error.clone(),
                    })
                }
                _ => None,
            };
            // A held command's card: the dispatcher names it when the command is decided
            // without a press, and the connection knows it is one to take down.
            let posted = item.posted.zip(posted_id).map(|(receipt, id)| {
                receipt.posted(id.clone());
                Event::CardPosted { message_id: id }
            });
            (outcome, event.or(posted))
        }))
    }
}

/// A webhook delivery: refused (401) unless `X-Spark-Signature` is the body's signature
/// under the webhook secret; otherwise acknowledged at once and handled in the background.
impl Handles<WebhookRequest> for Webex {
    type Reply = WebhookReply;

    fn handle(&mut self, request: WebhookRequest, fx: &mut Effects<Self>) -> WebhookReply {
        if !signature::verify(
            self.secret.expose_secret().as_bytes(),
            &request.body,
            request.headers.get(signature::HEADER),
        ) {
            tracing::warn!(connection = %self.name, "Webex webhook delivery with a missing or bad signature refused");
            return WebhookReply::new(401, json!({"message": "invalid signature"}));
        }
        let Some(delivery) = Delivery::parse(&request.body) else {
            return WebhookReply::new(400, json!({"message": "not a webhook delivery"}));
        };
        let Some(me) = self.me.clone() else {
            // Not logged in yet: the bot's own messages could not be told apart.
            return WebhookReply::new(503, json!({"message": "starting; try again"}));
        };
        fx.activity();
        match delivery.hook() {
            Hook::Message => self.on_message(delivery.data, &me, fx),
            Hook::Action => self.on_press(delivery.data, &me, fx),
            Hook::Other => {
                tracing::debug!(connection = %self.name, resource = %delivery.resource, event = %delivery.event, "Webex delivery ignored");
            }
        }
        WebhookReply::ok()
    }
}

crate::platform_messages!(Webex: WebhookRequest);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::connection::End;
    use crate::backends::webhook::Headers;

    const BOT: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ib3Q";

    fn platform() -> Webex {
        let settings: WebexSettings = serde_json::from_value(json!({
            "token": "t0k3n",
            "webhook_secret": "s3cret",
            "public_url": "https://bridge.example.com",
            "api_url": "http://127.0.0.1:9",
        }))
        .unwrap();
        Webex::new("wx".into(), settings).unwrap()
    }

    fn opened(p: &mut Webex) -> Effects<Webex> {
        let mut fx = Effects::default();
        p.opened(
            Hello {
                me: Person {
                    id: BOT.into(),
                    emails: vec!["stormbot@webex.bot".into()],
                    display_name: "StormBot".into(),
                    ..Person::default()
                },
                steps: vec![],
            },
            &mut fx,
        );
        fx
    }

    fn delivery(body: &str, signature: Option<&str>) -> WebhookRequest {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(s) = signature {
            headers.push(("x-spark-signature".to_owned(), s.to_owned()));
        }
        WebhookRequest {
            headers: Headers(headers),
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    fn waiting(p: &Webex) -> usize {
        p.waiting.values().map(VecDeque::len).sum()
    }

    const MESSAGE_HOOK: &str = r#"{"id":"W1","name":"stormbridge wx","resource":"messages","event":"created",
        "data":{"id":"M1","roomId":"R1","roomType":"group","personId":"ALICE","personEmail":"alice@example.com"}}"#;

    #[test]
    fn the_link_is_up_once_logged_in_and_checks_are_scheduled() {
        let mut p = platform();
        assert_eq!(p.target_url, "https://bridge.example.com/webex/events/wx");
        let fx = opened(&mut p);
        assert!(fx.is_ready());
        assert!(matches!(
            fx.timers(),
            [(d, Event::Check)] if *d == Duration::from_secs(60)
        ));
    }

    #[test]
    fn a_delivery_without_the_right_signature_is_refused_and_does_nothing() {
        let mut p = platform();
        opened(&mut p);
        for sig in [
            None,
            Some(""),
            Some("00"),
            Some(signature::sign(b"other", MESSAGE_HOOK.as_bytes()).as_str()),
        ] {
            let mut fx = Effects::default();
            let reply = p.handle(delivery(MESSAGE_HOOK, sig), &mut fx);
            assert_eq!(reply.status, 401, "{sig:?}");
            assert!(p.waiting.is_empty() && fx.messages().is_empty(), "{sig:?}");
        }
        let sig = signature::sign(b"s3cret", MESSAGE_HOOK.as_bytes());
        let mut fx = Effects::default();
        let reply = p.handle(delivery(MESSAGE_HOOK, Some(&sig)), &mut fx);
        assert_eq!(reply.status, 200);
        assert_eq!(waiting(&p), 1, "the message is fetched");
        // Delivered twice: fetched once.
        let mut fx = Effects::default();
        assert_eq!(
            p.handle(delivery(MESSAGE_HOOK, Some(&sig)), &mut fx).status,
            200
        );
        assert_eq!(waiting(&p), 1);
    }

    #[test]
    fn deliveries_before_log_in_or_not_json_are_answered_without_work() {
        let mut p = platform();
        let sig = signature::sign(b"s3cret", MESSAGE_HOOK.as_bytes());
        let mut fx = Effects::default();
        assert_eq!(
            p.handle(delivery(MESSAGE_HOOK, Some(&sig)), &mut fx).status,
            503
        );
        opened(&mut p);
        let body = "not json";
        let sig = signature::sign(b"s3cret", body.as_bytes());
        assert_eq!(p.handle(delivery(body, Some(&sig)), &mut fx).status, 400);
        let own = MESSAGE_HOOK.replace("\"ALICE\"", &format!("\"{BOT}\""));
        let sig = signature::sign(b"s3cret", own.as_bytes());
        let mut fx = Effects::default();
        assert_eq!(p.handle(delivery(&own, Some(&sig)), &mut fx).status, 200);
        assert_eq!(waiting(&p), 0, "the bot's own message is not fetched");
    }

    fn message(id: &str, room: &str, text: &str) -> Message {
        Message::parse(
            &json!({"id": id, "roomId": room, "roomType": "group", "text": text,
            "personId": "ALICE", "personEmail": "alice@example.com"}),
        )
        .unwrap()
    }

    #[test]
    fn fetched_messages_go_on_in_delivery_order_per_room() {
        let mut p = platform();
        opened(&mut p);
        let mut fx = Effects::default();
        for id in ["M1", "M2", "M3"] {
            let room = if id == "M3" { "R2" } else { "R1" };
            let hook = MESSAGE_HOOK
                .replace("\"M1\"", &format!("\"{id}\""))
                .replace("\"R1\"", &format!("\"{room}\""));
            let sig = signature::sign(b"s3cret", hook.as_bytes());
            p.handle(delivery(&hook, Some(&sig)), &mut fx);
        }
        // M2 is fetched first: it waits for M1. M3 (another room) does not.
        let mut fx = Effects::default();
        p.event(
            Event::Fetched {
                room: "R1".into(),
                seq: 1,
                result: Box::new(Ok((
                    message("M2", "R1", "StormBot two"),
                    Some("Ops".into()),
                ))),
            },
            &mut fx,
        );
        assert!(fx.messages().is_empty());
        p.event(
            Event::Fetched {
                room: "R2".into(),
                seq: 2,
                result: Box::new(Ok((message("M3", "R2", "three"), None))),
            },
            &mut fx,
        );
        assert_eq!(fx.messages().len(), 1);
        p.event(
            Event::Fetched {
                room: "R1".into(),
                seq: 0,
                result: Box::new(Err(ConnectionError::Protocol("gone".into()))),
            },
            &mut fx,
        );
        let texts: Vec<&str> = fx.messages().iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["three", "two"]);
        assert_eq!(fx.messages()[1].room_name.as_deref(), Some("Ops"));
        assert!(fx.messages()[1].mentioned);
        assert!(p.waiting.is_empty());
    }

    #[test]
    fn a_failed_check_fails_the_link_a_refused_token_stops_it_stale_results_are_ignored() {
        let mut p = platform();
        opened(&mut p);
        let mut fx = Effects::default();
        p.event(
            Event::Checked {
                epoch: 0,
                result: Err(ConnectionError::network("GET /webhooks", "refused")),
            },
            &mut fx,
        );
        assert!(matches!(fx.ending(), Some(End::Fail(_))));
        let mut fx = Effects::default();
        p.event(
            Event::Checked {
                epoch: 0,
                result: Err(ConnectionError::Unauthorized("401".into())),
            },
            &mut fx,
        );
        assert!(matches!(fx.ending(), Some(End::Halt(_))));
        let mut fx = Effects::default();
        p.event(
            Event::Checked {
                epoch: 0,
                result: Err(ConnectionError::Http {
                    request: "GET /webhooks".into(),
                    status: 429,
                    code: None,
                    message: None,
                }),
            },
            &mut fx,
        );
        assert!(fx.ending().is_none(), "rate-limited is not lost");
        assert!(matches!(fx.timers(), [(_, Event::Check)]));
        p.closed();
        let mut fx = Effects::default();
        p.event(
            Event::Unreachable {
                epoch: 0,
                error: ConnectionError::network("POST /messages", "refused"),
            },
            &mut fx,
        );
        assert!(fx.ending().is_none(), "an older link's result");
        let mut fx = Effects::default();
        p.event(
            Event::Checked {
                epoch: 1,
                result: Ok(vec![]),
            },
            &mut fx,
        );
        assert!(fx.ending().is_none());
        assert!(matches!(fx.timers(), [(_, Event::Check)]));
    }

    #[test]
    fn replies_go_to_rooms_threads_and_people() {
        let mut p = platform();
        opened(&mut p);
        let items = p.render(Deliver {
            target: crate::domain::message::Target::Room {
                id: "R1".into(),
                kind: RoomKind::Group,
                thread: Some("P1".into()),
            },
            text: "x".repeat(8000),
            extra: None,
            reply_to: None,
            layout: None,
            receipt: None,
        });
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i.dest == Dest::Room("R1".into())
            && i.parent_id.as_deref() == Some("P1")
            && i.markdown.len() <= 7439));
        let items = p.render(Deliver {
            target: crate::domain::message::Target::User { id: "ALICE".into() },
            text: "psst".into(),
            extra: None,
            reply_to: None,
            layout: None,
            receipt: None,
        });
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].dest, Dest::User("ALICE".into()));
        assert_eq!(items[0].parent_id, None);
    }
}
