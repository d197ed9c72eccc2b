//! The Mattermost backend (`backend = "mattermost"`): API v4 with a bot access token.
//!
//! Events come from the websocket `/api/v4/websocket`: the connection authenticates with an
//! `authentication_challenge` action carrying the token, waits for the `OK` reply to that
//! action's `seq`, and then reads `posted` events, whose `data.post` is the post as a JSON
//! string. The server numbers its events with `seq` and names the connection in `hello`
//! (`connection_id`); a reconnect passes `?connection_id=…&sequence_number=…` so that a
//! server with reliable websockets replays what was missed (a new `connection_id` in `hello`
//! means it could not, and `seq` starts again at 0). A gap in `seq` means events were lost:
//! the connection starts afresh rather than carry on silently. A token refused by
//! `GET /users/me` (401) stops the connection (`down`); every other failure (closed socket,
//! refused challenge, silence longer than two ping periods) opens a new link after a capped,
//! jittered backoff. Configured `channels`
//! are joined after connecting (names resolve in `team`) and rejoined after a
//! `user_removed` of the bot.
//!
//! Identity: the user is the post's `user_id`, the room the `channel_id` (`channel_type`
//! `D` is a direct conversation), the thread the post's `root_id`, and the organisation the
//! event's `team_id` (or, for direct messages, the configured team's id). A leading
//! `@<bot username>` sets `mentioned` and is stripped. The bot's own posts and posts from
//! other bots, webhooks and the system (`props.from_bot`, `props.from_webhook`, a `type`)
//! are ignored.
//!
//! Output: `POST /api/v4/posts` with `root_id` for thread replies; a message to a user
//! opens (and caches) the direct channel with `POST /api/v4/channels/direct`. Messages are
//! split at 16383 characters and `extra.mattermost` becomes `props.attachments`. Posts go
//! through a bounded queue, one at a time, held while the websocket is down, paused on 429
//! (`Retry-After`, else `X-Ratelimit-Reset`) and when `X-Ratelimit-Remaining` reaches 0.
//!
//! Answer buttons for StackStorm inquiries: with `actions_url` set (the bridge's HTTP server
//! as Mattermost reaches it), boolean and `enum` answers are interactive message buttons
//! whose presses Mattermost POSTs to `/mattermost/actions/<connection>` (see
//! `interactive.rs`).
//!
//! Files: `config.rs` (settings), `wire.rs` (frames and posts, typed), `api.rs` (REST calls),
//! `platform.rs` (the [`Platform`](crate::backends::connection::Platform)),
//! `interactive.rs` (buttons).

pub mod api;
pub mod config;
mod interactive;
mod platform;
pub mod wire;

use std::time::Duration;

use actix::Actor;

use crate::{
    backends::{
        connection::{Connection, Pace, QueuePolicy},
        registry::{self, PlatformSpec, SetupError, Start, Started},
        webhook::HttpRoute,
    },
    config::PlatformSettings,
};

pub use config::MattermostSettings;
pub use interactive::{ACTIONS_PATH, MAX_PRESS_BODY};
pub use platform::{endpoints, Mattermost, MattermostSetupError};

/// A Mattermost connection: the shared connection actor running [`Mattermost`].
pub type MattermostConnection = crate::backends::connection::Connection<Mattermost>;

/// Mattermost in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "mattermost",
    renamed_keys: &[],
    only_one: false,
    mention: crate::backends::mention::mattermost,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<MattermostSettings>(settings)?;
    let name = start.wiring.name.clone();
    let gate = start.wiring.gate.clone();
    let platform = Mattermost::new(name.clone(), s.clone())
        .map_err(SetupError::new)?
        .with_button_key(start.button_key.clone());
    let queue = queue_policy(s);
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    let addr = Connection::new(platform, wiring, queue).start();
    // Answer buttons for StackStorm inquiries: presses arrive over HTTP.
    crate::backends::buttons::connect(&name, &addr, start.presses, start.buttons);
    Ok(Started {
        deliver: addr.clone().recipient(),
        routes: vec![HttpRoute {
            path: format!("{ACTIONS_PATH}/{name}"),
            max_body: MAX_PRESS_BODY,
            gate,
            handler: addr.recipient(),
        }],
    })
}

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(s: &MattermostSettings) -> QueuePolicy {
    // Mattermost limits requests per user (`RateLimitSettings`: 10 per second, bursts of
    // 100 by default), not per channel: one pace for the connection, channels sent to
    // concurrently, `X-Ratelimit-*` and 429s holding everything.
    QueuePolicy {
        capacity: s.queue_size,
        pace: Pace {
            burst: 100,
            interval: Duration::from_millis(s.send_interval_ms),
        },
        per_destination: None,
        max_in_flight: crate::backends::defaults::MAX_IN_FLIGHT,
        limits_per_destination: false,
    }
}
