//! The Matrix connection actor: log in, join, long-poll `/sync`, send replies in order.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use secrecy::SecretString;

use super::{
    api::{Api, ApiError},
    config::{parse_user_id, MatrixSettings},
    state::{self, SyncState},
    wire::{self, Mapping, RoomInfo, SyncResponse},
};
use crate::{
    actors::messages::{Deliver, Inbound},
    actors::status::{ActorState, Reconnect, StatusReporter},
    backends::connection::outbox::{Dest, Next, Outbox, Outcome, MAX_RATE_WAIT},
    backends::connection::ConnectionError,
    domain::{
        backoff::Backoff,
        chunk::{split_message, LengthUnit},
        message::InboundMessage,
    },
};

/// One message waiting to be sent.
#[derive(Debug, Clone)]
struct Outgoing {
    dest: Dest,
    thread: Option<String>,
    reply_to: Option<String>,
    text: String,
    /// Kept across retries so the server never posts the message twice.
    txn_id: String,
    /// A direct chat that refused the message was already replaced once.
    reopened_dm: bool,
}

/// The logged-in account.
#[derive(Debug, Clone)]
struct Account {
    user_id: String,
    /// Names a message may start with to address the bot.
    names: Vec<String>,
}

/// Everything `connect` learns before the first sync.
struct Connected {
    token: SecretString,
    account: Account,
    device_id: Option<String>,
    direct: HashMap<String, Vec<String>>,
    joined: Vec<(String, String)>,
}

/// A room a send resolved on the way, to cache: (alias or user, room id).
type Learned = Option<(String, String)>;

/// The Matrix connection.
pub struct MatrixConnection {
    name: String,
    settings: MatrixSettings,
    base: String,
    tls: Arc<rustls::ClientConfig>,
    dispatcher: Recipient<Inbound>,
    status: StatusReporter,
    /// When to connect again after a failure.
    reconnect: Reconnect,
    api: Option<Api>,
    /// The access token in use: configured, or from the last login (reused after a
    /// reconnect; a refused one is dropped and the bot logs in again).
    token: Option<SecretString>,
    account: Option<Account>,
    device_id: Option<String>,
    since: Option<String>,
    state_file: Option<PathBuf>,
    /// The position read from `state_file` (checked against the account at login).
    stored: Option<SyncState>,
    /// The last attempt to write `state_file` failed (and was logged).
    state_save_failing: bool,
    /// A write of `state_file` is under way.
    state_writing: bool,
    /// Messages synced but not yet covered by a saved position.
    unsaved: Vec<InboundMessage>,
    /// Messages that run when the write under way ends.
    in_write: Vec<InboundMessage>,
    /// Set once a sync succeeded on this connection.
    synced: bool,
    rooms: HashMap<String, RoomInfo>,
    /// `m.direct`: user → their direct chats with the bot.
    direct: HashMap<String, Vec<String>>,
    /// Room ids of the configured `rooms`.
    configured: HashSet<String>,
    /// Alias → room id, for announcements addressed to an alias.
    aliases: HashMap<String, String>,
    last_error: Option<String>,
    outbox: Outbox<Outgoing>,
}

/// Why a connection could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MatrixSetupError {
    /// `homeserver` is not an http(s) URL.
    #[error("matrix homeserver `{0}` must be an http:// or https:// URL")]
    Url(String),
    /// Neither a password nor a token (validation normally catches this).
    #[error("matrix connection has no password or access token")]
    NoCredential,
    /// TLS settings failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The state file exists but cannot be used.
    #[error(transparent)]
    State(#[from] state::StateError),
}

impl MatrixConnection {
    /// A connection named `name`; it connects when started.
    pub fn new(
        name: String,
        settings: MatrixSettings,
        dispatcher: Recipient<Inbound>,
        status: StatusReporter,
        backoff: Backoff,
    ) -> Result<Self, MatrixSetupError> {
        let base = settings
            .base_url()
            .ok_or_else(|| MatrixSetupError::Url(settings.homeserver.clone()))?;
        if settings.password.is_none() && settings.access_token.is_none() {
            return Err(MatrixSetupError::NoCredential);
        }
        let tls = crate::tls::client_config(settings.verify_cert, settings.tls_ca_file.as_deref())?;
        let state_file = settings.state_file.clone();
        let stored = match &state_file {
            Some(path) => state::load(path)?,
            None => None,
        };
        let outbox = Outbox::new(
            name.clone(),
            "matrix",
            settings.queue_size,
            Duration::from_millis(settings.send_interval_ms),
        );
        Ok(Self {
            name,
            base,
            tls,
            dispatcher,
            reconnect: Reconnect::new(status.name(), backoff),
            status,
            api: None,
            token: settings.access_token.clone(),
            account: None,
            device_id: settings.device_id.clone(),
            since: None,
            state_file,
            stored,
            state_save_failing: false,
            state_writing: false,
            unsaved: Vec::new(),
            in_write: Vec::new(),
            synced: false,
            rooms: HashMap::new(),
            direct: HashMap::new(),
            configured: HashSet::new(),
            aliases: HashMap::new(),
            last_error: None,
            outbox,
            settings,
        })
    }

    fn client(&self) -> awc::Client {
        crate::backends::rest::http_client(self.tls.clone(), crate::backends::rest::USER_AGENT)
    }

    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        if !self.synced && self.last_error.is_some() {
            // Already failing; the restart is under way.
            return;
        }
        tracing::warn!(connection = %self.name, error = %error, "matrix connection failed; reconnecting");
        self.last_error = Some(error);
        self.synced = false;
        ctx.stop();
    }

    /// The position stored for `user_id`, if the state file holds one for that account.
    fn stored_for(&self, user_id: &str) -> Option<&SyncState> {
        self.stored.as_ref().filter(|s| s.user_id == user_id)
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(api) = self.api.clone() else {
            return;
        };
        let configured_token = self.token.clone();
        let password = self.settings.password.clone();
        let user = self.settings.user.clone().unwrap_or_default();
        // The device id: configured, else the one kept for this user from an earlier login.
        let device = self.device_id.clone().or_else(|| {
            self.stored
                .as_ref()
                .filter(|s| parse_user_id(&user).is_none_or(|_| s.user_id == user))
                .and_then(|s| s.device_id.clone())
        });
        let rooms = self.settings.rooms.clone();
        let name = self.name.clone();
        let fut = async move {
            // A token from an earlier login is tried first; if the server forgot it, log in.
            let known = match configured_token {
                Some(token) => match api.whoami(&token).await {
                    Ok(user_id) => Some((token, user_id)),
                    Err(ApiError::Unauthorized { .. }) if password.is_some() => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            let (token, user_id, device_id) = match (known, password) {
                (Some((token, user_id)), _) => (token, user_id, device),
                (None, Some(password)) => {
                    let login = api.login(&user, &password, device.as_deref()).await?;
                    (login.access_token, login.user_id, login.device_id)
                }
                (None, None) => {
                    return Err(ApiError::Unauthorized {
                        endpoint: "login".into(),
                        errcode: "no password or access token".into(),
                    })
                }
            };
            let display = api.displayname(&token, &user_id).await;
            let direct = api.direct_map(&token, &user_id).await?;
            let mut joined = Vec::new();
            for room in rooms {
                match api.join(&token, &room).await {
                    Ok(id) => joined.push((room, id)),
                    Err(e) => {
                        tracing::warn!(connection = %name, room = %room, error = %e, "cannot join matrix room")
                    }
                }
            }
            let localpart = parse_user_id(&user_id)
                .map(|(l, _)| l.to_owned())
                .unwrap_or_default();
            let names = [display, Some(localpart)].into_iter().flatten().collect();
            Ok(Connected {
                token,
                account: Account { user_id, names },
                device_id,
                direct,
                joined,
            })
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(c) => {
                tracing::debug!(connection = %act.name, user = %c.account.user_id, "matrix login ok; syncing");
                if act.since.is_none() {
                    act.since = act
                        .stored_for(&c.account.user_id)
                        .and_then(|s| s.since.clone());
                }
                act.token = Some(c.token);
                act.device_id = c.device_id;
                act.direct = c.direct;
                for (entry, id) in c.joined {
                    if entry.starts_with('#') {
                        act.aliases.insert(entry, id.clone());
                    }
                    act.configured.insert(id);
                }
                act.account = Some(c.account);
                act.save_state(ctx);
                act.sync(ctx, true);
            }
            Err(ApiError::Unauthorized { endpoint, errcode }) => {
                if act.settings.password.is_some() {
                    act.token = None;
                }
                act.fail(format!("{endpoint}: access token refused ({errcode})"), ctx);
            }
            Err(e) => act.fail(e.to_string(), ctx),
        }));
    }

    /// Saves the position (and device) to the state file on a blocking-pool thread (the
    /// write is fsynced), then dispatches the messages the position covers. One write at a
    /// time: messages synced meanwhile wait for the next write, so they run in order. Without
    /// a state file they are dispatched at once. A failed write is logged and the messages
    /// run anyway: a restart may then replay them, which beats losing them now.
    fn save_state(&mut self, ctx: &mut Context<Self>) {
        let (Some(path), Some(account)) = (self.state_file.clone(), self.account.as_ref()) else {
            let messages = std::mem::take(&mut self.unsaved);
            self.dispatch(messages);
            return;
        };
        if self.state_writing {
            return;
        }
        let state = SyncState {
            user_id: account.user_id.clone(),
            device_id: self.device_id.clone(),
            since: self.since.clone(),
        };
        if self.stored.as_ref() == Some(&state) {
            let messages = std::mem::take(&mut self.unsaved);
            self.dispatch(messages);
            return;
        }
        self.state_writing = true;
        self.in_write = std::mem::take(&mut self.unsaved);
        let written = state.clone();
        let write = actix_web::rt::task::spawn_blocking(move || state::save(&path, &written));
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| {
            act.state_writing = false;
            match result {
                Ok(Ok(())) => {
                    if std::mem::take(&mut act.state_save_failing) {
                        tracing::info!(connection = %act.name, "the matrix sync position is saved again");
                    }
                    act.stored = Some(state);
                }
                // Once per failing stretch: this runs after every sync batch.
                Ok(Err(e)) if !act.state_save_failing => {
                    act.state_save_failing = true;
                    tracing::warn!(connection = %act.name, error = %e, "cannot save the matrix sync position; a restart may replay or skip messages")
                }
                Ok(Err(e)) => {
                    tracing::debug!(connection = %act.name, error = %e, "still cannot save the matrix sync position")
                }
                Err(e) => {
                    tracing::warn!(connection = %act.name, error = %e, "the matrix state writer failed")
                }
            }
            let messages = std::mem::take(&mut act.in_write);
            act.dispatch(messages);
            act.save_state(ctx);
        }));
    }

    /// One `/sync` round; the next starts when this one's events are handled.
    fn sync(&mut self, ctx: &mut Context<Self>, first: bool) {
        let (Some(api), Some(token)) = (self.api.clone(), self.token.clone()) else {
            return;
        };
        let since = self.since.clone();
        // A first-ever sync (no position) returns recent history: it is read only for the
        // position and room state, at once rather than after a long poll.
        let timeout = if first || since.is_none() {
            Duration::ZERO
        } else {
            Duration::from_secs(self.settings.sync_timeout_secs.max(1))
        };
        let history = since.is_none();
        let fut = async move {
            api.sync(
                &token,
                &wire::sync_filter(),
                since.as_deref(),
                first,
                timeout,
            )
            .await
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| match result {
            Ok(batch) => {
                act.handle_sync(batch, history, ctx);
                if !act.synced {
                    act.synced = true;
                    act.last_error = None;
                    act.reconnect.connected();
                    act.status.state(ActorState::Up, None);
                    tracing::info!(connection = %act.name, queued = act.outbox.waiting(), "matrix connected");
                    act.pump(ctx);
                }
                act.sync(ctx, false);
            }
            Err(ApiError::RateLimited { delay, .. }) => {
                ctx.run_later(delay.min(MAX_RATE_WAIT), move |act, ctx| act.sync(ctx, first));
            }
            Err(ApiError::Unauthorized { endpoint, errcode }) => {
                if act.settings.password.is_some() {
                    act.token = None;
                }
                act.fail(format!("{endpoint}: access token refused ({errcode})"), ctx);
            }
            Err(e) => act.fail(e.to_string(), ctx),
        }));
    }

    fn handle_sync(&mut self, batch: SyncResponse, history: bool, ctx: &mut Context<Self>) {
        let Some(account) = self.account.clone() else {
            return;
        };
        if let Some(direct) = wire::direct_rooms(&batch.account_data) {
            self.direct = direct;
        }
        for (room_id, invited) in &batch.rooms.invite {
            self.consider_invite(room_id, invited, &account, ctx);
        }
        for (room_id, left) in &batch.rooms.leave {
            self.rooms.remove(room_id);
            if self.configured.contains(room_id) && wire::removed_by_other(left, &account.user_id) {
                tracing::info!(connection = %self.name, room = %room_id, "removed from a configured matrix room; rejoining");
                self.join(room_id.clone(), None, ctx);
            }
        }
        let direct_rooms: HashSet<&str> =
            self.direct.values().flatten().map(String::as_str).collect();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut inbound = Vec::new();
        for (room_id, joined) in &batch.rooms.join {
            let names = self.rooms.entry(room_id.clone()).or_default();
            names.apply(joined.state.events.iter().chain(&joined.timeline.events));
            if history {
                continue;
            }
            let watched = self.settings.rooms.is_empty()
                || self.settings.auto_join == super::config::AutoJoin::All
                || self.configured.contains(room_id)
                || direct_rooms.contains(room_id.as_str());
            let direct =
                direct_rooms.contains(room_id.as_str()) && !self.configured.contains(room_id);
            let mapping = Mapping {
                connection: &self.name,
                bot_user_id: &account.user_id,
                bot_names: &account.names,
                ignore_users: &self.settings.ignore_users,
                direct,
                room_name: names.display(),
                member_names: &names.member_names,
                reply_in_thread: self.settings.reply_in_thread,
                now_ms,
                max_age_ms: self.settings.max_command_age_secs.saturating_mul(1000),
            };
            // After a (re)join the timeline also holds what was said before the bot came
            // in; that is history, not commands for it.
            let after_join = wire::after_own_join(&joined.timeline.events, &account.user_id);
            for event in after_join {
                match wire::message_to_inbound(room_id, event, &mapping) {
                    Ok(msg) if watched => inbound.push(msg),
                    Ok(_) => {
                        tracing::debug!(connection = %self.name, room = %room_id, "ignored a message in a room not in `rooms`")
                    }
                    Err(wire::Skip::NotAMessage) => {}
                    Err(skip) => {
                        tracing::debug!(connection = %self.name, room = %room_id, ?skip, "ignored a matrix message")
                    }
                }
            }
        }
        if !inbound.is_empty() {
            self.status.activity();
        }
        if !batch.next_batch.is_empty() {
            self.since = Some(batch.next_batch);
        }
        // The messages run once the position after them is saved (at most once: a crash
        // can lose a command, never run it twice).
        self.unsaved.extend(inbound);
        self.save_state(ctx);
    }

    /// Hands messages to the dispatcher.
    fn dispatch(&mut self, messages: Vec<InboundMessage>) {
        for msg in messages {
            self.dispatcher.do_send(Inbound(msg));
        }
    }

    fn consider_invite(
        &mut self,
        room_id: &str,
        invited: &wire::InvitedRoom,
        account: &Account,
        ctx: &mut Context<Self>,
    ) {
        use super::config::AutoJoin;
        let Some((inviter, is_direct)) = wire::invitation(invited, &account.user_id) else {
            return;
        };
        let accept = match self.settings.auto_join {
            AutoJoin::All => true,
            AutoJoin::Direct => is_direct,
            AutoJoin::None => false,
        };
        if !accept {
            tracing::info!(connection = %self.name, room = %room_id, inviter = %inviter, is_direct, "not joining a matrix room I was invited to (auto_join)");
            return;
        }
        tracing::info!(connection = %self.name, room = %room_id, inviter = %inviter, is_direct, "accepting a matrix invitation");
        self.join(
            room_id.to_owned(),
            is_direct.then_some(inviter).filter(|i| !i.is_empty()),
            ctx,
        );
    }

    /// Joins `room`; for an accepted direct invitation, records the room in `m.direct` so
    /// it is known as a direct chat after a restart too.
    fn join(&mut self, room: String, direct_with: Option<String>, ctx: &mut Context<Self>) {
        let (Some(api), Some(token), Some(account)) =
            (self.api.clone(), self.token.clone(), self.account.clone())
        else {
            return;
        };
        // Known as a direct chat at once: its first messages may arrive before the join
        // answers.
        if let Some(user) = &direct_with {
            let rooms = self.direct.entry(user.clone()).or_default();
            if !rooms.contains(&room) {
                rooms.push(room.clone());
            }
        }
        let direct = self.direct.clone();
        let name = self.name.clone();
        let fut = async move {
            let room_id = api.join(&token, &room).await.map_err(|e| (room, e))?;
            if direct_with.is_some() {
                if let Err(e) = api.put_direct_map(&token, &account.user_id, &direct).await {
                    tracing::warn!(connection = %name, error = %e, "cannot record the direct chat in m.direct");
                }
            }
            Ok::<_, (String, ApiError)>(room_id)
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, _ctx| match result {
            Ok(room_id) => {
                tracing::debug!(connection = %act.name, room = %room_id, "joined matrix room");
            }
            Err((room, e)) => {
                tracing::warn!(connection = %act.name, room = %room, error = %e, "cannot join matrix room")
            }
        }));
    }

    fn schedule_pump(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(delay, |act, ctx| act.pump(ctx));
    }

    /// The room a message goes to, when it is known without asking the server.
    fn known_room(&self, dest: &Dest) -> Option<String> {
        match dest {
            Dest::Room(id) if id.starts_with('#') => self.aliases.get(id).cloned(),
            Dest::Room(id) => Some(id.clone()),
            Dest::User(user) => self
                .direct
                .get(user)
                .and_then(|rooms| rooms.iter().rev().find(|r| self.rooms.contains_key(*r)))
                .cloned(),
        }
    }

    /// Sends the next queued message unless one is in flight, the connection is down or a
    /// rate limit is in force.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.synced {
            return;
        }
        let (Some(api), Some(token), Some(account)) =
            (self.api.clone(), self.token.clone(), self.account.clone())
        else {
            return;
        };
        let item = match self.outbox.next(Instant::now()) {
            Next::Send(item) => item,
            Next::Wait(delay) => return self.schedule_pump(delay, ctx),
            Next::Idle => return,
        };
        let known = self.known_room(&item.dest);
        let direct = self.direct.clone();
        let msgtype = self.settings.msgtype;
        let fut = async move {
            let result = send(&api, &token, &account, &item, known, direct, msgtype).await;
            (item, result)
        };
        ctx.spawn(fut.into_actor(self).map(|(item, result), act, ctx| {
            let next = act.settle(item, result, ctx);
            act.outbox.report(&mut act.status);
            if let Some(delay) = next {
                act.schedule_pump(delay, ctx);
            }
        }));
    }

    /// Hands a send's result to the outbox after the Matrix-only parts: caching the room
    /// resolved on the way, logging in again when the token was refused, and retrying a
    /// message its direct chat refused in a new direct chat, once (the user may have left
    /// the old one). Returns when to pump next; none when the connection fails instead.
    fn settle(
        &mut self,
        item: Outgoing,
        result: Result<Learned, ApiError>,
        ctx: &mut Context<Self>,
    ) -> Option<Duration> {
        let outcome = match result {
            Ok(learned) => {
                if let Some((key, room_id)) = learned {
                    self.remember_room(&item.dest, key, room_id);
                }
                self.status.activity();
                Outcome::Sent { pause: None }
            }
            Err(ApiError::RateLimited { delay, .. }) => Outcome::RateLimited(delay),
            Err(e @ (ApiError::Network { .. } | ApiError::Server { .. })) => {
                Outcome::Retry(ConnectionError::Protocol(e.to_string()))
            }
            Err(e @ ApiError::Unauthorized { .. }) => {
                // Sent first once the connection has logged in again.
                self.outbox.put_back(item);
                if self.settings.password.is_some() {
                    self.token = None;
                }
                self.fail(e.to_string(), ctx);
                return None;
            }
            Err(e @ (ApiError::Refused { .. } | ApiError::BadResponse { .. })) => {
                match &item.dest {
                    Dest::User(user) if !item.reopened_dm => {
                        // The user left that direct chat: open a new one, once.
                        tracing::info!(connection = %self.name, user = %user, error = %e, "direct chat refused the message; opening a new one");
                        if let Some(rooms) = self.direct.get_mut(user) {
                            rooms.clear();
                        }
                        return Some(self.outbox.put_back(Outgoing {
                            reopened_dm: true,
                            ..item
                        }));
                    }
                    _ => Outcome::Rejected(ConnectionError::Protocol(e.to_string())),
                }
            }
        };
        Some(self.outbox.finish(item, outcome, Instant::now()))
    }

    /// Caches the room a send resolved: a user's (new) direct chat, or an alias's room id.
    fn remember_room(&mut self, dest: &Dest, key: String, room_id: String) {
        match dest {
            Dest::User(user) => {
                let rooms = self.direct.entry(user.clone()).or_default();
                rooms.retain(|r| r != &room_id);
                rooms.push(room_id.clone());
                self.rooms.entry(room_id).or_default();
            }
            Dest::Room(_) => {
                self.aliases.insert(key, room_id);
            }
        }
    }
}

/// Resolves the destination (opening a direct chat if needed) and sends one message;
/// returns the room resolved on the way, if any, for the actor to cache.
async fn send(
    api: &Api,
    token: &SecretString,
    account: &Account,
    item: &Outgoing,
    known: Option<String>,
    mut direct: HashMap<String, Vec<String>>,
    msgtype: super::config::MsgType,
) -> Result<Learned, ApiError> {
    let (room_id, learned) = match (known, &item.dest) {
        (Some(room), _) => (room, None),
        (None, Dest::Room(alias)) => {
            let id = api.resolve_alias(token, alias).await?;
            (id.clone(), Some((alias.clone(), id)))
        }
        (None, Dest::User(user)) => {
            let id = api.create_direct_room(token, user).await?;
            let rooms = direct.entry(user.clone()).or_default();
            rooms.push(id.clone());
            if let Err(e) = api.put_direct_map(token, &account.user_id, &direct).await {
                tracing::warn!(error = %e, "cannot record the direct chat in m.direct");
            }
            (id.clone(), Some((user.clone(), id)))
        }
    };
    let content = wire::message_content(
        &item.text,
        msgtype,
        item.thread.as_deref(),
        item.reply_to.as_deref(),
    );
    api.send(token, &room_id, &item.txn_id, &content).await?;
    Ok(learned)
}

impl Actor for MatrixConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.synced = false;
        // A write in flight at the restart finishes on its own; its answer is not awaited,
        // and the messages it covered run now rather than never.
        self.state_writing = false;
        let covered = std::mem::take(&mut self.in_write);
        self.dispatch(covered);
        // A send cut off by the restart goes first again.
        self.outbox.restore();
        // From the start, so the queue's series read 0 instead of missing.
        self.outbox.report(&mut self.status);
        self.api = Some(Api::new(self.client(), &self.base));
        ctx.run_later(self.reconnect.delay(), |act, ctx| act.connect(ctx));
    }
}

impl Supervised for MatrixConnection {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.reconnect.restarting();
        self.synced = false;
        self.status.restarted(self.last_error.take());
    }
}

impl Handler<Deliver> for MatrixConnection {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let (dest, thread) = Dest::of(msg.target);
        // In a thread, the fallback reply points at the command (or the thread's root).
        let reply_to = thread.as_ref().and(msg.reply_to);
        for part in split_message(
            &msg.text,
            self.settings.max_message_bytes,
            LengthUnit::Bytes,
        ) {
            if part.trim().is_empty() {
                continue;
            }
            self.outbox.push(Outgoing {
                dest: dest.clone(),
                thread: thread.clone(),
                reply_to: reply_to.clone(),
                text: part,
                txn_id: uuid::Uuid::new_v4().simple().to_string(),
                reopened_dm: false,
            });
            if !self.synced {
                tracing::debug!(connection = %self.name, queued = self.outbox.waiting(), "reply queued while disconnected");
            }
            self.outbox.report(&mut self.status);
        }
        self.pump(ctx);
    }
}
