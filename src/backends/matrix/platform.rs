//! Matrix as a [`Platform`]: log in, join, read the `/sync` long poll as the link's frames,
//! save the sync position before a batch's commands run, send replies over REST.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use futures_util::{future::LocalBoxFuture, stream::LocalBoxStream, StreamExt};
use secrecy::SecretString;

use super::{
    api::{Api, ApiError},
    config::{parse_user_id, AutoJoin, MatrixSettings, MsgType},
    state::{self, SyncState},
    wire::{self, Mapping, RoomInfo, SyncResponse},
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{
        outbox::{Dest, Outcome, MAX_RATE_WAIT},
        ConnectionError, Effects, Link, Platform, Sending,
    },
    domain::{
        chunk::{split_message, LengthUnit},
        message::InboundMessage,
    },
};

/// One message waiting to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    dest: Dest,
    thread: Option<String>,
    reply_to: Option<String>,
    text: String,
    /// Kept across retries so the server never posts the message twice.
    txn_id: String,
}

/// The logged-in account.
#[derive(Debug, Clone)]
struct Account {
    user_id: String,
    /// Names a message may start with to address the bot.
    names: Vec<String>,
}

/// Everything connecting learns before the first sync.
pub struct Connected {
    token: SecretString,
    account: Account,
    device_id: Option<String>,
    direct: HashMap<String, Vec<String>>,
    joined: Vec<(String, String)>,
    since: Option<String>,
}

/// A frame of the sync "transport".
pub enum SyncFrame {
    /// A batch; `history` when it was asked without a position (read for state only).
    Batch {
        batch: Box<SyncResponse>,
        history: bool,
    },
    /// The server refused the token mid-sync.
    Refused(ApiError),
}

/// The platform's own happenings.
pub enum Event {
    /// The state file write ended.
    Saved {
        state: SyncState,
        result: Result<(), SaveError>,
    },
    /// A send resolved a room on the way: (alias or user, room id).
    Learned {
        dest: Dest,
        key: String,
        room_id: String,
    },
    /// A send found the token refused.
    TokenRefused(ConnectionError),
}

/// Why the sync position was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Writing the state file failed.
    #[error(transparent)]
    File(#[from] state::StateError),
    /// The blocking writer did not finish (it panicked, or the runtime is stopping).
    #[error("the state writer failed: {0}")]
    Writer(#[from] tokio::task::JoinError),
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

/// A Matrix connection's state.
pub struct Matrix {
    name: String,
    settings: MatrixSettings,
    base: String,
    tls: Arc<rustls::ClientConfig>,
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
    /// Set once a sync succeeded on this link.
    synced: bool,
    rooms: HashMap<String, RoomInfo>,
    /// `m.direct`: user → their direct chats with the bot.
    direct: HashMap<String, Vec<String>>,
    /// Room ids of the configured `rooms`.
    configured: HashSet<String>,
    /// Alias → room id, for announcements addressed to an alias.
    aliases: HashMap<String, String>,
}

impl Matrix {
    /// The platform for connection `name`.
    pub fn new(name: String, settings: MatrixSettings) -> Result<Self, MatrixSetupError> {
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
        Ok(Self {
            name,
            base,
            tls,
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
            settings,
        })
    }

    fn api(&mut self) -> Api {
        let (tls, base) = (self.tls.clone(), &self.base);
        self.api
            .get_or_insert_with(|| {
                Api::new(
                    crate::backends::rest::http_client(tls, crate::backends::rest::USER_AGENT),
                    base,
                )
            })
            .clone()
    }

    /// Saves the position (and device) to the state file on a blocking-pool thread (the
    /// write is fsynced), then hands over the messages the position covers. One write at a
    /// time: messages synced meanwhile wait for the next write, so they run in order.
    /// Without a state file they go at once. A failed write is logged and the messages run
    /// anyway: a restart may then replay them, which beats losing them now.
    fn save_state(&mut self, fx: &mut Effects<Self>) {
        let (Some(path), Some(account)) = (self.state_file.clone(), self.account.as_ref()) else {
            return dispatch(std::mem::take(&mut self.unsaved), fx);
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
            return dispatch(std::mem::take(&mut self.unsaved), fx);
        }
        self.state_writing = true;
        self.in_write = std::mem::take(&mut self.unsaved);
        let written = state.clone();
        fx.spawn(async move {
            let result =
                match actix_web::rt::task::spawn_blocking(move || state::save(&path, &written))
                    .await
                {
                    Ok(written) => written.map_err(SaveError::from),
                    Err(e) => Err(SaveError::from(e)),
                };
            Event::Saved { state, result }
        });
    }

    fn saved(&mut self, state: SyncState, result: Result<(), SaveError>, fx: &mut Effects<Self>) {
        self.state_writing = false;
        match result {
            Ok(()) => {
                if std::mem::take(&mut self.state_save_failing) {
                    tracing::info!(connection = %self.name, "the matrix sync position is saved again");
                }
                self.stored = Some(state);
            }
            // Once per failing stretch: this runs after every sync batch.
            Err(e) if !self.state_save_failing => {
                self.state_save_failing = true;
                tracing::warn!(connection = %self.name, error = %e, "cannot save the matrix sync position; a restart may replay or skip messages")
            }
            Err(e) => {
                tracing::debug!(connection = %self.name, error = %e, "still cannot save the matrix sync position")
            }
        }
        dispatch(std::mem::take(&mut self.in_write), fx);
        self.save_state(fx);
    }

    fn batch(&mut self, batch: SyncResponse, history: bool, fx: &mut Effects<Self>) {
        let Some(account) = self.account.clone() else {
            return;
        };
        if let Some(direct) = wire::direct_rooms(&batch.account_data) {
            self.direct = direct;
        }
        for (room_id, invited) in &batch.rooms.invite {
            self.consider_invite(room_id, invited, &account, fx);
        }
        for (room_id, left) in &batch.rooms.leave {
            self.rooms.remove(room_id);
            if self.configured.contains(room_id) && wire::removed_by_other(left, &account.user_id) {
                tracing::info!(connection = %self.name, room = %room_id, "removed from a configured matrix room; rejoining");
                self.join(room_id.clone(), None, fx);
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
                || self.settings.auto_join == AutoJoin::All
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
            fx.activity();
        }
        if !batch.next_batch.is_empty() {
            self.since = Some(batch.next_batch);
        }
        // The messages run once the position after them is saved (at most once: a crash
        // can lose a command, never run it twice).
        self.unsaved.extend(inbound);
        self.save_state(fx);
    }

    fn consider_invite(
        &mut self,
        room_id: &str,
        invited: &wire::InvitedRoom,
        account: &Account,
        fx: &mut Effects<Self>,
    ) {
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
            fx,
        );
    }

    /// Joins `room`; for an accepted direct invitation, records the room in `m.direct` so
    /// it is known as a direct chat after a restart too.
    fn join(&mut self, room: String, direct_with: Option<String>, fx: &mut Effects<Self>) {
        let (Some(token), Some(account)) = (self.token.clone(), self.account.clone()) else {
            return;
        };
        let api = self.api();
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
        fx.detach(async move {
            match api.join(&token, &room).await {
                Ok(room_id) => {
                    tracing::debug!(connection = %name, room = %room_id, "joined matrix room");
                    if direct_with.is_some() {
                        if let Err(e) = api.put_direct_map(&token, &account.user_id, &direct).await
                        {
                            tracing::warn!(connection = %name, error = %e, "cannot record the direct chat in m.direct");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(connection = %name, room = %room, error = %e, "cannot join matrix room")
                }
            }
        });
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

    /// Forgets a refused token when the bot can log in again.
    fn token_refused(&mut self) {
        if self.settings.password.is_some() {
            self.token = None;
        }
    }
}

fn dispatch(messages: Vec<InboundMessage>, fx: &mut Effects<Matrix>) {
    for message in messages {
        fx.inbound(message);
    }
}

/// The `/sync` long poll as a stream of batches: each request starts when the previous
/// batch has been handled; a 429 waits and asks again; a refused token ends the stream.
fn sync_stream(
    api: Api,
    token: SecretString,
    since: Option<String>,
    timeout: Duration,
) -> LocalBoxStream<'static, Result<SyncFrame, ConnectionError>> {
    struct Poll {
        api: Api,
        token: SecretString,
        since: Option<String>,
        first: bool,
        over: bool,
    }
    let start = Poll {
        api,
        token,
        since,
        first: true,
        over: false,
    };
    futures_util::stream::unfold(start, move |mut poll| async move {
        if poll.over {
            return None;
        }
        loop {
            // A first-ever sync (no position) returns recent history: it is read only for
            // the position and room state, at once rather than after a long poll.
            let history = poll.since.is_none();
            let wait = if poll.first || history {
                Duration::ZERO
            } else {
                timeout
            };
            let answer = poll
                .api
                .sync(
                    &poll.token,
                    &wire::sync_filter(),
                    poll.since.as_deref(),
                    poll.first,
                    wait,
                )
                .await;
            let item = match answer {
                Ok(batch) => {
                    poll.first = false;
                    if !batch.next_batch.is_empty() {
                        poll.since = Some(batch.next_batch.clone());
                    }
                    Ok(SyncFrame::Batch {
                        batch: Box::new(batch),
                        history,
                    })
                }
                Err(ApiError::RateLimited { delay, .. }) => {
                    tokio::time::sleep(delay.min(MAX_RATE_WAIT)).await;
                    continue;
                }
                Err(e @ ApiError::Unauthorized { .. }) => {
                    poll.over = true;
                    Ok(SyncFrame::Refused(e))
                }
                Err(e) => {
                    poll.over = true;
                    Err(e.into())
                }
            };
            return Some((item, poll));
        }
    })
    .boxed_local()
}

impl Platform for Matrix {
    const KIND: &'static str = "matrix";
    type Frame = SyncFrame;
    type Write = ();
    type Item = Outgoing;
    type Event = Event;
    type Hello = Connected;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let api = self.api();
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
        let since = self.since.clone();
        let stored = self.stored.clone();
        let rooms = self.settings.rooms.clone();
        let name = self.name.clone();
        let timeout = Duration::from_secs(self.settings.sync_timeout_secs.max(1));
        Box::pin(async move {
            // A token from an earlier login is tried first; if the server forgot it, log in.
            let known = match configured_token {
                Some(token) => match api.whoami(&token).await {
                    Ok(user_id) => Some((token, user_id)),
                    Err(ApiError::Unauthorized { .. }) if password.is_some() => None,
                    Err(e) => return Err(e.into()),
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
                    return Err(ConnectionError::Unauthorized(
                        "matrix: no password or access token".into(),
                    ))
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
            // Carry on from the position kept for this account, if any.
            let since = since.or_else(|| {
                stored
                    .filter(|s| s.user_id == user_id)
                    .and_then(|s| s.since)
            });
            let frames = sync_stream(api, token.clone(), since.clone(), timeout);
            Ok(Link {
                frames,
                sink: None,
                hello: Connected {
                    token,
                    account: Account { user_id, names },
                    device_id,
                    direct,
                    joined,
                    since,
                },
            })
        })
    }

    fn connect_failed(&mut self, error: &ConnectionError) {
        if matches!(error, ConnectionError::Http { status: 401, .. }) {
            self.token_refused();
        }
    }

    fn opened(&mut self, c: Connected, fx: &mut Effects<Self>) {
        tracing::debug!(connection = %self.name, user = %c.account.user_id, "matrix login ok; syncing");
        self.since = c.since;
        self.token = Some(c.token);
        self.device_id = c.device_id;
        self.direct = c.direct;
        for (entry, id) in c.joined {
            if entry.starts_with('#') {
                self.aliases.insert(entry, id.clone());
            }
            self.configured.insert(id);
        }
        self.account = Some(c.account);
        self.save_state(fx);
    }

    fn frame(&mut self, frame: SyncFrame, fx: &mut Effects<Self>) {
        match frame {
            SyncFrame::Batch { batch, history } => {
                self.batch(*batch, history, fx);
                if !self.synced {
                    self.synced = true;
                    fx.ready();
                }
            }
            SyncFrame::Refused(e) => {
                self.token_refused();
                fx.fail(e.into());
            }
        }
    }

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Saved { state, result } => self.saved(state, result, fx),
            Event::Learned { dest, key, room_id } => self.remember_room(&dest, key, room_id),
            Event::TokenRefused(error) => {
                // The message waits first in the queue until the bot has logged in again.
                self.token_refused();
                fx.fail(error);
            }
        }
    }

    fn closed(&mut self) {
        self.synced = false;
    }

    /// The sync position: another bridge process syncs from there and gets what came
    /// meanwhile. And the device: it logs in as the same one, so that a result part it
    /// posts again has the transaction id the server already knows from that device (and
    /// the old holder's token, should it still be alive, is ended by that login).
    fn resume_state(&self) -> Option<serde_json::Value> {
        let mut state = serde_json::json!({ "since": self.since.as_ref()? });
        if let Some(device) = &self.device_id {
            state["device_id"] = serde_json::json!(device);
        }
        Some(state)
    }

    fn resume_from(&mut self, state: serde_json::Value) {
        let text = |key: &str| state.get(key).and_then(serde_json::Value::as_str);
        if let Some(since) = text("since") {
            self.since = Some(since.to_owned());
        }
        // A configured `device_id` stays the one used.
        if let (None, Some(device)) = (&self.device_id, text("device_id")) {
            self.device_id = Some(device.to_owned());
        }
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Outgoing> {
        let (dest, thread) = Dest::of(delivery.target);
        // In a thread, the fallback reply points at the command (or the thread's root).
        let reply_to = thread.as_ref().and(delivery.reply_to);
        let receipt = delivery.receipt;
        split_message(
            &delivery.text,
            self.settings.max_message_bytes,
            LengthUnit::Bytes,
        )
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .enumerate()
        .map(|(part, text)| Outgoing {
            dest: dest.clone(),
            thread: thread.clone(),
            reply_to: reply_to.clone(),
            text,
            // A result's parts have transaction ids every bridge process derives alike: the
            // server answers a repeated one from the same device with the event it made the
            // first time (client-server API, "Transaction identifiers"), so a holder that
            // takes over and posts a result its predecessor posted but had not recorded
            // posts nothing new. (Every holder logs in as the same device: see
            // `resume_state`.)
            txn_id: match &receipt {
                Some(receipt) => receipt.part_key(part),
                None => uuid::Uuid::new_v4().simple().to_string(),
            },
        })
        .collect()
    }

    fn lane(&self, item: &Outgoing) -> String {
        item.dest.lane()
    }

    fn send(&mut self, item: &Outgoing) -> Sending<Self> {
        let (Some(token), Some(account)) = (self.token.clone(), self.account.clone()) else {
            return Sending::NotNow;
        };
        let api = self.api();
        let known = self.known_room(&item.dest);
        let direct = self.direct.clone();
        let msgtype = self.settings.msgtype;
        let name = self.name.clone();
        let item = item.clone();
        Sending::Call(Box::pin(async move {
            let mut result = send(
                &api,
                &token,
                &account,
                &item,
                known.clone(),
                &direct,
                msgtype,
            )
            .await;
            if let (
                Err(e @ (ApiError::Refused { .. } | ApiError::BadResponse { .. })),
                Dest::User(user),
                Some(_),
            ) = (&result, &item.dest, &known)
            {
                // The user left that direct chat: open a new one, once.
                tracing::info!(connection = %name, user = %user, error = %e, "direct chat refused the message; opening a new one");
                result = send(&api, &token, &account, &item, None, &direct, msgtype).await;
            }
            match result {
                Ok(learned) => (
                    Outcome::Sent { pause: None },
                    learned.map(|(key, room_id)| Event::Learned {
                        dest: item.dest,
                        key,
                        room_id,
                    }),
                ),
                Err(ApiError::RateLimited { delay, .. }) => (Outcome::RateLimited(delay), None),
                Err(e @ (ApiError::Network { .. } | ApiError::Server { .. })) => {
                    (Outcome::Retry(e.into()), None)
                }
                Err(e @ ApiError::Unauthorized { .. }) => {
                    let error = ConnectionError::from(e);
                    (
                        Outcome::Retry(error.clone()),
                        Some(Event::TokenRefused(error)),
                    )
                }
                Err(e @ (ApiError::Refused { .. } | ApiError::BadResponse { .. })) => {
                    (Outcome::Rejected(e.into()), None)
                }
            }
        }))
    }
}

/// Resolves the destination (opening a direct chat when `known` is `None` for a user) and
/// sends one message; returns the room resolved on the way, if any, to cache.
async fn send(
    api: &Api,
    token: &SecretString,
    account: &Account,
    item: &Outgoing,
    known: Option<String>,
    direct: &HashMap<String, Vec<String>>,
    msgtype: MsgType,
) -> Result<Option<(String, String)>, ApiError> {
    let (room_id, learned) = match (known, &item.dest) {
        (Some(room), _) => (room, None),
        (None, Dest::Room(alias)) => {
            let id = api.resolve_alias(token, alias).await?;
            (id.clone(), Some((alias.clone(), id)))
        }
        (None, Dest::User(user)) => {
            let id = api.create_direct_room(token, user).await?;
            let mut direct = direct.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Matrix {
        let settings: MatrixSettings = serde_json::from_value(serde_json::json!({
            "homeserver": "https://matrix.example.org",
            "user": "@bot:example.org",
            "password": "pa55",
        }))
        .expect("settings");
        Matrix::new("mx".into(), settings).expect("platform")
    }

    #[test]
    fn another_process_syncs_from_where_the_last_one_stood() {
        let mut p = platform();
        assert_eq!(p.resume_state(), None, "no position before the first sync");
        p.since = Some("s72594_4483_1934".into());
        let mut next = platform();
        next.resume_from(p.resume_state().expect("a position"));
        assert_eq!(next.since.as_deref(), Some("s72594_4483_1934"));
        next.resume_from(serde_json::json!({"since": 7}));
        assert_eq!(
            next.since.as_deref(),
            Some("s72594_4483_1934"),
            "not a position"
        );
    }

    #[test]
    fn another_process_logs_in_as_the_same_device_unless_one_is_configured() {
        let mut p = platform();
        p.since = Some("s1".into());
        p.device_id = Some("STORMBRIDGE1".into());
        let mut next = platform();
        next.resume_from(p.resume_state().expect("a position"));
        assert_eq!(next.device_id.as_deref(), Some("STORMBRIDGE1"));
        let mut configured = platform();
        configured.device_id = Some("MINE".into());
        configured.resume_from(p.resume_state().expect("a position"));
        assert_eq!(configured.device_id.as_deref(), Some("MINE"));
    }

    #[actix_rt::test]
    async fn a_result_has_the_same_transaction_ids_in_every_process_and_a_reply_fresh_ones() {
        use crate::actors::messages::test_support::owed_result;
        let long = "x".repeat(70_000);
        // Two processes (the holder that died, the one that took over) render one result.
        let (mut a, mut b) = (platform(), platform());
        let first = a.render(owed_result("req-1", "!r:example.org", &long));
        let again = b.render(owed_result("req-1", "!r:example.org", &long));
        assert!(first.len() >= 2, "split in parts");
        let txns = |items: &[Outgoing]| items.iter().map(|i| i.txn_id.clone()).collect::<Vec<_>>();
        assert_eq!(txns(&first), txns(&again));
        assert_ne!(first[0].txn_id, first[1].txn_id);
        let other = a.render(owed_result("req-2", "!r:example.org", &long));
        assert_ne!(txns(&other), txns(&first));
        let mut reply = owed_result("req-1", "!r:example.org", "hello");
        reply.receipt = None;
        let (r1, r2) = (a.render(reply.clone()), a.render(reply));
        assert_ne!(r1[0].txn_id, r2[0].txn_id);
    }
}
