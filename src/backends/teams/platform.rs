//! Teams as a [`Platform`]: there is no socket to keep open. The "link" is the bridge's
//! ability to speak both ways: an app token from the token endpoint and the Bot Connector's
//! signing keys from its OpenID metadata. Activities arrive as signed requests on the
//! connection's HTTP route ([`WebhookRequest`]), checked ([`super::jwt`]) before anything
//! is read from them; replies go to the `serviceUrl` of a checked activity.
//!
//! The keys are read again every `check_interval_secs` (which also tells whether Microsoft's
//! endpoints answer: a failed check fails the link, and the connection reconnects with
//! backoff), and at once when a request names a key the bridge does not have — at most once
//! a minute ([`FORCED_REFRESH_GAP`]), so that made-up key ids cannot make the bridge hammer
//! the metadata endpoint. Such a request waits for the refresh, and is then answered.

use std::{
    collections::{HashMap, VecDeque},
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::ResponseFuture;
use futures_util::{future::LocalBoxFuture, StreamExt};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{
    api::{self, Api, Call, Endpoints, Tokens},
    config::{http_url_ok, TeamsSettings},
    interactive::Interactions,
    jwt::{self, KeySet, Refusal},
    render::{self, Outbound},
    wire::{self, Activity, Incoming},
};
use crate::{
    actors::messages::Deliver,
    backends::{
        buttons::OfferReceipt,
        connection::{outbox::Outcome, ConnectionError, Effects, Handles, Link, Platform, Sending},
        webhook::{WebhookReply, WebhookRequest},
    },
    domain::message::Target,
};

/// Least time between two key refreshes that unknown key ids ask for.
pub const FORCED_REFRESH_GAP: Duration = Duration::from_secs(60);

/// Longest a request waits for the keys that may check it.
const KEY_WAIT: Duration = Duration::from_secs(20);

/// Requests waiting for a key refresh, at most; more are answered 503 at once.
const MAX_PARKED: usize = 16;

/// Conversations and people remembered (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 10_000;

/// A map that keeps the `cap` most recently added keys.
pub(super) struct Recent<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    cap: usize,
}

impl<V> Recent<V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Inserts `value` under `key`; whether that changed anything.
    fn insert(&mut self, key: String, value: V) -> bool
    where
        V: PartialEq,
    {
        if self.map.get(&key) == Some(&value) {
            return false;
        }
        if !self.map.contains_key(&key) {
            self.order.push_back(key.clone());
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
        self.map.insert(key, value);
        true
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    /// Every entry, oldest first.
    fn entries(&self) -> Vec<(String, V)>
    where
        V: Clone,
    {
        self.order
            .iter()
            .filter_map(|k| Some((k.clone(), self.map.get(k)?.clone())))
            .collect()
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key)
    }
}

/// A person the bot heard from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Person {
    /// Their Teams id (`29:…`), a member of a new one-to-one chat.
    teams_id: String,
    /// The `serviceUrl` of their last checked activity.
    service_url: String,
    /// Their tenant.
    tenant_id: String,
    /// Their one-to-one chat with the bot, once known.
    direct: Option<String>,
}

/// Where a queued activity goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A conversation (a channel, group chat or one-to-one chat), in a channel's reply
    /// chain when `thread` is set.
    Room { id: String, thread: Option<String> },
    /// A person's one-to-one chat with the bot (opened when needed).
    User(String),
    /// Replaces the bot's activity `activity_id` in a conversation.
    Update {
        room: String,
        thread: Option<String>,
        activity_id: String,
    },
}

/// One activity waiting to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where.
    pub dest: Dest,
    /// The activity.
    pub activity: Value,
    /// For a card of buttons: whom to tell the posted activity's id, so that the card can
    /// be updated when its buttons are spent without a press.
    pub posted: Option<OfferReceipt>,
}

/// The platform's own happenings.
pub enum Event {
    /// Time to read the keys again.
    Check,
    /// The periodic check ended.
    Checked(Result<KeySet, ConnectionError>),
    /// The refresh an unknown key id asked for ended.
    Keys(Result<KeySet, ConnectionError>),
    /// A person's one-to-one chat, opened while sending.
    DirectConversation { user: String, conversation: String },
    /// The state file was written (or not).
    Saved(Result<(), String>),
}

/// What `state_file` keeps: where to reply, per conversation and per person.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Remembered {
    /// Room id → `serviceUrl`.
    #[serde(default)]
    conversations: Vec<(String, String)>,
    /// User key → the person.
    #[serde(default)]
    people: Vec<(String, Person)>,
}

/// The state file's progress.
#[derive(Debug, Default)]
struct Persisted {
    /// What was remembered changed since the last write began.
    dirty: bool,
    /// A write is under way.
    writing: bool,
    /// The last write failed (logged once per failing stretch).
    failing: bool,
}

/// What connecting learnt: the signing keys (the app token is in the shared cache).
pub struct Hello {
    keys: KeySet,
}

impl Hello {
    /// With these keys (tests).
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }
}

/// A request waiting for the keys.
struct Parked {
    request: WebhookRequest,
    reply: oneshot::Sender<WebhookReply>,
}

/// What to do with a request now.
enum Step {
    Reply(WebhookReply),
    Park,
}

/// A Teams connection's state.
pub struct Teams {
    pub(super) name: String,
    pub(super) settings: TeamsSettings,
    tls: Arc<rustls::ClientConfig>,
    http: Option<awc::Client>,
    endpoints: Rc<Endpoints>,
    tokens: Rc<Tokens>,
    keys: KeySet,
    refreshing: bool,
    last_forced: Option<Instant>,
    parked: Vec<Parked>,
    /// The `serviceUrl` of each conversation (room id) heard from.
    conversations: Recent<String>,
    people: Recent<Person>,
    /// The bot's own Teams id (`28:<app id>`), from the activities' `recipient`.
    bot_id: Option<String>,
    pub(super) interactive: Interactions,
    persisted: Persisted,
}

/// Why a connection could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TeamsSetupError {
    /// No password (validation normally catches this).
    #[error("teams connection has no app_password")]
    NoPassword,
    /// TLS settings failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// `state_file` cannot be read.
    #[error(transparent)]
    State(#[from] crate::backends::state_file::StateError),
}

impl Teams {
    /// The platform for connection `name`.
    pub fn new(name: String, settings: TeamsSettings) -> Result<Self, TeamsSetupError> {
        let app_password = settings
            .app_password
            .clone()
            .ok_or(TeamsSetupError::NoPassword)?;
        // Microsoft's endpoints are public services: web PKI roots, always verified.
        let tls = crate::tls::client_config(true, None)?;
        let endpoints = Rc::new(Endpoints {
            app_id: settings.app_id.trim().to_owned(),
            app_password,
            token_url: settings.token_endpoint(),
            metadata_url: settings.openid_metadata_url.trim().to_owned(),
        });
        let mut conversations = Recent::new(MAX_REMEMBERED);
        let mut people = Recent::new(MAX_REMEMBERED);
        if let Some(path) = &settings.state_file {
            let stored: Remembered =
                crate::backends::state_file::load("teams", path)?.unwrap_or_default();
            for (room, url) in stored.conversations {
                conversations.insert(room, url);
            }
            for (user, person) in stored.people {
                people.insert(user, person);
            }
        }
        Ok(Self {
            name,
            settings,
            tls,
            http: None,
            endpoints,
            tokens: Rc::new(Tokens::default()),
            keys: KeySet::default(),
            refreshing: false,
            last_forced: None,
            parked: Vec::new(),
            conversations,
            people,
            bot_id: None,
            interactive: Interactions::default(),
            persisted: Persisted::default(),
        })
    }

    /// Writes what is remembered to `state_file` (off the actor thread), unless a write is
    /// under way: then once it ends.
    fn save(&mut self, fx: &mut Effects<Self>) {
        let Some(path) = self.settings.state_file.clone() else {
            return;
        };
        if self.persisted.writing || !self.persisted.dirty {
            return;
        }
        self.persisted.dirty = false;
        self.persisted.writing = true;
        let state = Remembered {
            conversations: self.conversations.entries(),
            people: self.people.entries(),
        };
        fx.spawn(async move {
            let result = actix_web::rt::task::spawn_blocking(move || {
                crate::backends::state_file::save("teams", &path, &state)
            })
            .await
            .map_err(|e| format!("the state writer failed: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
            Event::Saved(result)
        });
    }

    fn saved(&mut self, result: Result<(), String>, fx: &mut Effects<Self>) {
        self.persisted.writing = false;
        match result {
            Ok(()) if std::mem::take(&mut self.persisted.failing) => {
                tracing::info!(connection = %self.name, "the Teams state file is written again")
            }
            Ok(()) => {}
            Err(e) if !self.persisted.failing => {
                self.persisted.failing = true;
                tracing::warn!(connection = %self.name, error = %e, "cannot write the Teams state file; after a restart, replies wait until each conversation speaks again")
            }
            Err(e) => {
                tracing::debug!(connection = %self.name, error = %e, "still cannot write the Teams state file")
            }
        }
        self.save(fx);
    }

    fn api(&mut self) -> Api {
        let client = crate::backends::rest::lazy_client(
            &mut self.http,
            &self.tls,
            crate::backends::rest::USER_AGENT,
        );
        Api {
            client,
            endpoints: self.endpoints.clone(),
        }
    }

    fn refuse(&self, refusal: &Refusal) -> WebhookReply {
        tracing::warn!(connection = %self.name, reason = ?refusal.to_string(), status = refusal.status(), "Teams request refused");
        let (code, message) = match refusal.status() {
            403 => ("Forbidden", "the token does not authorize this activity"),
            _ => (
                "Unauthorized",
                "a request must carry a valid Bot Connector token",
            ),
        };
        WebhookReply::new(
            refusal.status(),
            json!({"error": {"code": code, "message": message}}),
        )
    }

    /// Checks a request and, when it passes, takes its activity in.
    fn receive(
        &mut self,
        request: &WebhookRequest,
        may_wait: bool,
        fx: &mut Effects<Self>,
    ) -> Step {
        let token = match jwt::bearer(request.headers.get("authorization")) {
            Ok(t) => t,
            Err(r) => return Step::Reply(self.refuse(&r)),
        };
        let kid = match jwt::key_id(token) {
            Ok(k) => k,
            Err(r) => return Step::Reply(self.refuse(&r)),
        };
        if !self.keys.contains(&kid) {
            let may_refresh = self.refreshing
                || self
                    .last_forced
                    .is_none_or(|t| t.elapsed() >= FORCED_REFRESH_GAP);
            if may_wait && may_refresh && self.parked.len() < MAX_PARKED {
                return Step::Park;
            }
            return Step::Reply(self.refuse(&Refusal::UnknownKey(kid)));
        }
        let verified = match jwt::verify(token, &kid, &self.keys, &self.endpoints.app_id) {
            Ok(v) => v,
            Err(r) => return Step::Reply(self.refuse(&r)),
        };
        let Some(activity) = Activity::parse(&request.body) else {
            return Step::Reply(WebhookReply::new(
                400,
                json!({"error": {"code": "BadArgument", "message": "the body is not an activity"}}),
            ));
        };
        if let Err(r) = verified.admits(&activity.service_url, &activity.channel_id) {
            return Step::Reply(self.refuse(&r));
        }
        self.accept(activity, fx);
        Step::Reply(WebhookReply::ok())
    }

    /// A checked activity: its conversation and sender are remembered (replies may go to
    /// its `serviceUrl` from now on), and a message or press handed on.
    fn accept(&mut self, activity: Activity, fx: &mut Effects<Self>) {
        fx.activity();
        if !activity.recipient.id.trim().is_empty() {
            self.bot_id = Some(activity.recipient.id.clone());
        }
        let service_url = activity.service_url.trim();
        let (room, _) = wire::split_conversation(activity.conversation_id.trim());
        if http_url_ok(service_url) && !room.is_empty() {
            let mut changed = self
                .conversations
                .insert(room.to_owned(), service_url.to_owned());
            if let (false, Some(user)) = (activity.from_a_bot(), activity.user_key()) {
                let known_direct = self.people.get(user).and_then(|p| p.direct.clone());
                let direct = activity
                    .is_personal()
                    .then(|| room.to_owned())
                    .or(known_direct);
                if !activity.from.id.trim().is_empty() {
                    changed |= self.people.insert(
                        user.to_owned(),
                        Person {
                            teams_id: activity.from.id.clone(),
                            service_url: service_url.to_owned(),
                            tenant_id: activity.tenant_id.clone(),
                            direct,
                        },
                    );
                }
            }
            if changed {
                self.persisted.dirty = true;
                self.save(fx);
            }
        }
        match wire::classify(&activity, &self.name) {
            Ok(Incoming::Message(m)) => fx.inbound(m),
            Ok(Incoming::Press(p)) => self.press(p),
            Err(skip) => {
                tracing::debug!(connection = %self.name, kind = ?activity.kind, ?skip, "Teams activity not a command")
            }
        }
    }

    fn spawn_refresh(&mut self, fx: &mut Effects<Self>) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        self.last_forced = Some(Instant::now());
        tracing::info!(connection = %self.name, "a Teams request names an unknown signing key; reading the keys again");
        let api = self.api();
        fx.spawn(async move { Event::Keys(api.fetch_keys().await) });
    }

    fn use_keys(&mut self, keys: KeySet, fx: &mut Effects<Self>) {
        fx.detail("signing_keys", json!(keys.len()));
        self.keys = keys;
    }

    /// The call that sends `item`, or why it cannot be sent.
    fn call(&self, item: &Outgoing) -> Result<Call, ConnectionError> {
        let unknown = |what: &str| {
            ConnectionError::Protocol(format!(
                "no serviceUrl for {what}: the bot has not heard from it since it started \
                 (`state_file` keeps them across restarts)"
            ))
        };
        let activity = item.activity.clone();
        match &item.dest {
            Dest::Room { id, thread } => {
                let service_url = self
                    .conversations
                    .get(id)
                    .ok_or_else(|| unknown("the conversation"))?;
                Ok(Call::Post {
                    service_url: service_url.clone(),
                    conversation: wire::join_conversation(id, thread.as_deref()),
                    reply_to: thread.clone(),
                    activity,
                })
            }
            Dest::Update {
                room,
                thread,
                activity_id,
            } => {
                let service_url = self
                    .conversations
                    .get(room)
                    .ok_or_else(|| unknown("the conversation"))?;
                Ok(Call::Update {
                    service_url: service_url.clone(),
                    conversation: wire::join_conversation(room, thread.as_deref()),
                    activity_id: activity_id.clone(),
                    activity,
                })
            }
            Dest::User(user) => {
                let person = self.people.get(user).ok_or_else(|| unknown("the user"))?;
                Ok(match &person.direct {
                    Some(conversation) => Call::Post {
                        service_url: self
                            .conversations
                            .get(conversation)
                            .unwrap_or(&person.service_url)
                            .clone(),
                        conversation: conversation.clone(),
                        reply_to: None,
                        activity,
                    },
                    None => Call::Direct {
                        service_url: person.service_url.clone(),
                        bot_id: self
                            .bot_id
                            .clone()
                            .unwrap_or_else(|| format!("28:{}", self.endpoints.app_id)),
                        member: person.teams_id.clone(),
                        tenant_id: person.tenant_id.clone(),
                        activity,
                    },
                })
            }
        }
    }

    /// `text` (and StackStorm's hints) to `dest`, as queue items.
    pub(super) fn items(&self, dest: Dest, message: Outbound<'_>) -> Vec<Outgoing> {
        render::activities(
            message,
            self.settings.result_cards,
            self.settings.max_message_length,
        )
        .into_iter()
        .map(|activity| Outgoing {
            dest: dest.clone(),
            activity,
            posted: None,
        })
        .collect()
    }

    /// Where a delivery to `target` goes.
    pub(super) fn dest(target: Target) -> Dest {
        match target {
            Target::Room { id, thread, .. } => {
                let (room, in_id) = wire::split_conversation(&id);
                Dest::Room {
                    id: room.to_owned(),
                    thread: thread.or_else(|| in_id.map(str::to_owned)),
                }
            }
            Target::User { id } => Dest::User(id),
        }
    }
}

impl Platform for Teams {
    const KIND: &'static str = "teams";
    type Frame = ();
    type Write = ();
    type Item = Outgoing;
    type Event = Event;
    type Hello = Hello;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let api = self.api();
        let tokens = self.tokens.clone();
        Box::pin(async move {
            tokens.get(&api).await?;
            let keys = api.fetch_keys().await?;
            Ok(Link {
                frames: futures_util::stream::pending().boxed_local(),
                sink: None,
                hello: Hello { keys },
            })
        })
    }

    fn opened(&mut self, hello: Hello, fx: &mut Effects<Self>) {
        tracing::info!(connection = %self.name, keys = hello.keys.len(), "Teams app token and Bot Connector keys loaded");
        self.use_keys(hello.keys, fx);
        fx.ready();
        fx.after(
            Duration::from_secs(self.settings.check_interval_secs.max(1)),
            Event::Check,
        );
    }

    fn frame(&mut self, _frame: (), _fx: &mut Effects<Self>) {}

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Check => {
                let api = self.api();
                let tokens = self.tokens.clone();
                fx.spawn(async move {
                    let checked = match tokens.get(&api).await {
                        Ok(_) => api.fetch_keys().await,
                        Err(e) => Err(e),
                    };
                    Event::Checked(checked)
                });
            }
            Event::Checked(Ok(keys)) => {
                self.use_keys(keys, fx);
                fx.after(
                    Duration::from_secs(self.settings.check_interval_secs.max(1)),
                    Event::Check,
                );
            }
            Event::Checked(Err(e)) if e.is_fatal() => fx.halt(e),
            Event::Checked(Err(e)) => fx.fail(e),
            Event::Keys(result) => {
                self.refreshing = false;
                match result {
                    Ok(keys) => self.use_keys(keys, fx),
                    Err(e) => {
                        tracing::warn!(connection = %self.name, error = %e, "cannot read the Bot Connector's signing keys");
                    }
                }
                for parked in std::mem::take(&mut self.parked) {
                    // Not waiting a second time: a key still unknown is refused.
                    let reply = match self.receive(&parked.request, false, fx) {
                        Step::Reply(r) => r,
                        Step::Park => self.refuse(&Refusal::UnknownKey(String::new())),
                    };
                    let _ = parked.reply.send(reply);
                }
            }
            Event::DirectConversation { user, conversation } => {
                let Some(url) = self.people.get(&user).map(|p| p.service_url.clone()) else {
                    return;
                };
                self.conversations.insert(conversation.clone(), url);
                if let Some(p) = self.people.get_mut(&user) {
                    p.direct = Some(conversation);
                }
                self.persisted.dirty = true;
                self.save(fx);
            }
            Event::Saved(result) => self.saved(result, fx),
        }
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Outgoing> {
        let message = Outbound {
            text: &delivery.text,
            extra: delivery.extra.as_ref(),
            layout: delivery.layout.as_ref(),
        };
        self.items(Self::dest(delivery.target.clone()), message)
    }

    fn lane(&self, item: &Outgoing) -> String {
        // Teams limits each conversation; a channel's reply chains share the channel's lane,
        // so everything said in a channel keeps its order.
        match &item.dest {
            Dest::Room { id, .. } | Dest::Update { room: id, .. } => format!("room:{id}"),
            Dest::User(u) => format!("user:{u}"),
        }
    }

    fn send(&mut self, item: &Outgoing) -> Sending<Self> {
        let call = match self.call(item) {
            Ok(call) => call,
            Err(e) => {
                tracing::warn!(connection = %self.name, error = %e, "Teams message dropped");
                return Sending::Call(Box::pin(async move { (Outcome::Rejected(e), None) }));
            }
        };
        let api = self.api();
        let tokens = self.tokens.clone();
        let user = match &item.dest {
            Dest::User(u) => Some(u.clone()),
            _ => None,
        };
        let posted = item.posted.clone();
        Sending::Call(Box::pin(async move {
            let done = api::send(api, tokens, call).await;
            if let (Some(receipt), Some(id)) = (posted, done.activity_id) {
                receipt.posted(id);
            }
            let event = done
                .opened
                .zip(user)
                .map(|(conversation, user)| Event::DirectConversation { user, conversation });
            (done.outcome, event)
        }))
    }
}

/// An activity from the Bot Connector: refused (401/403) unless its token checks out; one
/// signed by a key the bridge does not know waits for the keys to be read again (when they
/// may be); a checked one is answered 200 at once and handed on.
impl Handles<WebhookRequest> for Teams {
    type Reply = ResponseFuture<WebhookReply>;

    fn handle(&mut self, request: WebhookRequest, fx: &mut Effects<Self>) -> Self::Reply {
        match self.receive(&request, true, fx) {
            Step::Reply(reply) => Box::pin(async move { reply }),
            Step::Park => {
                let (tx, rx) = oneshot::channel();
                self.parked.push(Parked { request, reply: tx });
                self.spawn_refresh(fx);
                Box::pin(async move {
                    match tokio::time::timeout(KEY_WAIT, rx).await {
                        Ok(Ok(reply)) => reply,
                        _ => WebhookReply::new(
                            503,
                            json!({"error": {"code": "ServiceUnavailable", "message": "the signing keys could not be read; try again"}}),
                        ),
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{
        connection::End,
        teams::jwt::test_keys::{claims, jwk, sign, KEY_1, KEY_2},
        webhook::Headers,
    };
    use crate::domain::message::RoomKind;

    const APP: &str = "00000000-0000-0000-0000-0000000000a1";
    const SERVICE: &str = "https://smba.trafficmanager.net/emea/";

    fn settings() -> TeamsSettings {
        serde_json::from_value(json!({
            "app_id": APP, "tenant_id": "t1", "app_password": "pw",
            "max_message_length": 300, "check_interval_secs": 30,
        }))
        .unwrap()
    }

    fn keys(list: &[(&str, &str)]) -> KeySet {
        let keys: Vec<Value> = list.iter().map(|(p, k)| jwk(p, k, &["msteams"])).collect();
        KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn opened() -> (Teams, Effects<Teams>) {
        let mut p = Teams::new("teams".into(), settings()).unwrap();
        let mut fx = Effects::default();
        p.opened(Hello::new(keys(&[(KEY_1, "k1")])), &mut fx);
        (p, fx)
    }

    fn activity(conversation: &str, kind: &str, text: &str) -> Value {
        json!({
            "type": "message", "id": "1714557600000", "channelId": "msteams", "serviceUrl": SERVICE,
            "from": {"id": "29:1alice", "name": "Alice", "aadObjectId": "aad-alice"},
            "conversation": {"id": conversation, "conversationType": kind, "tenantId": "t1"},
            "recipient": {"id": format!("28:{APP}"), "name": "stormbridge"},
            "text": text,
        })
    }

    fn request(token: Option<&str>, body: &Value) -> WebhookRequest {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(t) = token {
            headers.push(("authorization".into(), format!("Bearer {t}")));
        }
        WebhookRequest {
            headers: Headers(headers),
            body: body.to_string().into(),
        }
    }

    fn status(step: &Step) -> u16 {
        match step {
            Step::Reply(r) => r.status,
            Step::Park => 0,
        }
    }

    #[test]
    fn opening_loads_the_keys_and_schedules_the_check() {
        let (_, fx) = opened();
        assert!(fx.is_ready());
        assert!(matches!(fx.timers(), [(d, Event::Check)] if *d == Duration::from_secs(30)));
    }

    #[test]
    fn a_signed_activity_is_handed_on_and_its_service_url_remembered() {
        let (mut p, _) = opened();
        let body = activity(
            "19:ops@thread.tacv2;messageid=17",
            "channel",
            "!st2 run date",
        );
        let token = sign(KEY_1, "k1", &claims(APP, SERVICE));
        let mut fx = Effects::default();
        assert_eq!(
            status(&p.receive(&request(Some(&token), &body), true, &mut fx)),
            200
        );
        let [m] = fx.messages() else {
            panic!("one message: {:?}", fx.messages())
        };
        assert_eq!(
            (m.room.id.as_str(), m.room.thread.as_deref()),
            ("19:ops@thread.tacv2", Some("17"))
        );
        assert_eq!(m.user.id, "aad-alice");
        // The answer goes into the reply chain, at the activity's serviceUrl.
        let items = p.render(Deliver {
            target: Target::reply_to(&m.room),
            text: "done".into(),
            extra: None,
            reply_to: None,
            layout: None,
            receipt: None,
        });
        let Ok(Call::Post {
            service_url,
            conversation,
            reply_to,
            ..
        }) = p.call(&items[0])
        else {
            panic!("a post")
        };
        assert_eq!(service_url, SERVICE);
        assert_eq!(conversation, "19:ops@thread.tacv2;messageid=17");
        assert_eq!(reply_to.as_deref(), Some("17"));
        assert_eq!(p.lane(&items[0]), "room:19:ops@thread.tacv2");
    }

    /// A restart with `state_file`: what the last run heard is where replies go, before
    /// anyone speaks again; a file that is not the state stops the start with its name.
    #[test]
    fn service_urls_survive_a_restart_through_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teams.json");
        let mut s = settings();
        s.state_file = Some(path.clone());
        let mut first = Teams::new("teams".into(), s.clone()).unwrap();
        first.opened(Hello::new(keys(&[(KEY_1, "k1")])), &mut Effects::default());
        let body = activity("a:1direct", "personal", "!st2 run date");
        let token = sign(KEY_1, "k1", &claims(APP, SERVICE));
        let mut fx = Effects::default();
        assert_eq!(
            status(&first.receive(&request(Some(&token), &body), true, &mut fx)),
            200
        );
        assert!(first.persisted.writing, "a new conversation is written");
        // The write the first run started (its future is not run here).
        let state = Remembered {
            conversations: first.conversations.entries(),
            people: first.people.entries(),
        };
        crate::backends::state_file::save("teams", &path, &state).unwrap();

        let second = Teams::new("teams".into(), s.clone()).unwrap();
        let room = second.items(
            Dest::Room {
                id: "a:1direct".into(),
                thread: None,
            },
            Outbound {
                text: "a result",
                extra: None,
                layout: None,
            },
        );
        assert!(
            matches!(second.call(&room[0]), Ok(Call::Post { service_url, .. }) if service_url == SERVICE)
        );
        let whisper = second.items(
            Dest::User("aad-alice".into()),
            Outbound {
                text: "psst",
                extra: None,
                layout: None,
            },
        );
        assert!(
            matches!(second.call(&whisper[0]), Ok(Call::Post { service_url, .. }) if service_url == SERVICE)
        );
        // Nothing new heard: nothing to write.
        assert!(!second.persisted.dirty && !second.persisted.writing);

        std::fs::write(&path, b"{not json").unwrap();
        let e = Teams::new("teams".into(), s)
            .err()
            .expect("a corrupt state file");
        assert!(e.to_string().contains("teams.json"), "{e}");
    }

    #[test]
    fn forged_and_unsigned_activities_run_nothing() {
        let (mut p, _) = opened();
        let body = activity("a:1dm", "personal", "!st2 run date");
        let mut fx = Effects::default();
        assert_eq!(
            status(&p.receive(&request(None, &body), true, &mut fx)),
            401
        );
        let forged = sign(KEY_2, "k1", &claims(APP, SERVICE));
        assert_eq!(
            status(&p.receive(&request(Some(&forged), &body), true, &mut fx)),
            401
        );
        let elsewhere = sign(KEY_1, "k1", &claims(APP, "https://evil.example/"));
        assert_eq!(
            status(&p.receive(&request(Some(&elsewhere), &body), true, &mut fx)),
            403
        );
        assert!(fx.messages().is_empty());
        // Nothing was learnt from them either: no reply can go to their serviceUrl.
        let item = Outgoing {
            dest: Dest::Room {
                id: "a:1dm".into(),
                thread: None,
            },
            activity: json!({}),
            posted: None,
        };
        assert!(p.call(&item).is_err());
    }

    #[actix_rt::test]
    async fn an_unknown_key_waits_for_one_refresh_and_is_then_answered() {
        let (mut p, _) = opened();
        let body = activity("a:1dm", "personal", "!st2 run date");
        let token = sign(KEY_2, "k2", &claims(APP, SERVICE));
        let mut fx = Effects::default();
        let mut waiting = p.handle(request(Some(&token), &body), &mut fx);
        assert!(p.refreshing);
        assert_eq!(p.parked.len(), 1);
        // The refreshed keys have it: the request is checked and answered.
        let mut fx = Effects::default();
        p.event(
            Event::Keys(Ok(keys(&[(KEY_1, "k1"), (KEY_2, "k2")]))),
            &mut fx,
        );
        assert_eq!(fx.messages().len(), 1);
        let reply = futures_util::FutureExt::now_or_never(&mut waiting).expect("answered");
        assert_eq!(reply.status, 200);
        // Another unknown key within the minute: refused at once, no refresh.
        let other = sign(KEY_1, "k9", &claims(APP, SERVICE));
        let mut fx = Effects::default();
        assert_eq!(
            status(&p.receive(&request(Some(&other), &body), true, &mut fx)),
            401
        );
        assert!(!p.refreshing);
        // After a refresh that fails, what waited is refused (its key is still unknown) and
        // runs nothing.
        p.last_forced = None;
        let mut fx = Effects::default();
        let mut waiting = p.handle(request(Some(&other), &body), &mut fx);
        p.event(
            Event::Keys(Err(ConnectionError::Timeout("GET /keys".into()))),
            &mut fx,
        );
        let reply = futures_util::FutureExt::now_or_never(&mut waiting).expect("answered");
        assert_eq!(reply.status, 401);
        assert!(fx.messages().is_empty());
    }

    #[test]
    fn a_failed_check_fails_the_link_and_refused_credentials_halt_it() {
        let (mut p, _) = opened();
        let mut fx = Effects::default();
        p.event(
            Event::Checked(Err(ConnectionError::network("GET /keys", "refused"))),
            &mut fx,
        );
        assert!(matches!(fx.ending(), Some(End::Fail(_))));
        let mut fx = Effects::default();
        p.event(
            Event::Checked(Err(ConnectionError::Unauthorized("invalid_client".into()))),
            &mut fx,
        );
        assert!(matches!(fx.ending(), Some(End::Halt(_))));
        let mut fx = Effects::default();
        p.event(Event::Checked(Ok(keys(&[(KEY_2, "k2")]))), &mut fx);
        assert!(fx.ending().is_none());
        assert!(p.keys.contains("k2") && !p.keys.contains("k1"));
        assert!(matches!(fx.timers(), [(_, Event::Check)]));
    }

    #[test]
    fn whispers_open_a_one_to_one_chat_once() {
        let (mut p, _) = opened();
        let body = activity(
            "19:ops@thread.tacv2;messageid=17",
            "channel",
            "!st2 run date",
        );
        let token = sign(KEY_1, "k1", &claims(APP, SERVICE));
        p.receive(&request(Some(&token), &body), true, &mut Effects::default());
        let items = p.render(Deliver {
            target: Target::User {
                id: "aad-alice".into(),
            },
            text: "psst".into(),
            extra: None,
            reply_to: None,
            layout: None,
            receipt: None,
        });
        let Ok(Call::Direct {
            member,
            tenant_id,
            bot_id,
            ..
        }) = p.call(&items[0])
        else {
            panic!("a new one-to-one chat")
        };
        assert_eq!((member.as_str(), tenant_id.as_str()), ("29:1alice", "t1"));
        assert_eq!(bot_id, format!("28:{APP}"));
        p.event(
            Event::DirectConversation {
                user: "aad-alice".into(),
                conversation: "a:1dm".into(),
            },
            &mut Effects::default(),
        );
        assert!(
            matches!(p.call(&items[0]), Ok(Call::Post { conversation, .. }) if conversation == "a:1dm")
        );
        // Someone never heard from cannot be reached.
        let stranger = Outgoing {
            dest: Dest::User("aad-bob".into()),
            activity: json!({}),
            posted: None,
        };
        assert!(p.call(&stranger).is_err());
    }

    #[test]
    fn a_direct_message_is_direct_and_remembers_the_chat() {
        let (mut p, _) = opened();
        let body = activity("a:1dm", "personal", "!st2 run date");
        let token = sign(KEY_1, "k1", &claims(APP, SERVICE));
        let mut fx = Effects::default();
        p.receive(&request(Some(&token), &body), true, &mut fx);
        assert_eq!(fx.messages()[0].room.kind, RoomKind::Direct);
        assert_eq!(
            p.people.get("aad-alice").and_then(|x| x.direct.as_deref()),
            Some("a:1dm")
        );
    }

    #[test]
    fn remembered_maps_are_bounded() {
        let mut r = Recent::new(2);
        r.insert("a".into(), 1);
        r.insert("b".into(), 2);
        r.insert("a".into(), 3);
        r.insert("c".into(), 4);
        assert_eq!(
            (r.get("a"), r.get("b"), r.get("c")),
            (None, Some(&2), Some(&4))
        );
    }
}
