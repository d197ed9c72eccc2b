//! The Microsoft Teams backend (`backend = "teams"`): a Bot Framework bot.
//!
//! Teams talks to a bot over HTTP both ways
//! (<https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-concepts>):
//!
//! - **In**: the Bot Connector service POSTs every activity (a message, a card's button
//!   press, a conversation update) to the bot's messaging endpoint, here
//!   `POST /api/teams/<connection>/messages` on the bridge's HTTP server ([`messages_path`]).
//!   Each carries `Authorization: Bearer <JWT>`; the bridge checks it as
//!   <https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication>
//!   asks (RS256 against the keys of the Bot Connector's OpenID metadata, issuer
//!   `https://api.botframework.com`, audience the bot's app id, five minutes of clock skew,
//!   the `serviceUrl` claim equal to the activity's) before it reads anything from the
//!   activity: anything else is answered 401 or 403 and nothing runs (`jwt.rs`). A checked
//!   activity is answered 200 at once.
//! - **Out**: replies go to the checked activity's `serviceUrl` — the only addresses the
//!   bridge ever sends to, remembered per conversation and per person — with an app token
//!   from the client-credentials grant of the bot's (single-tenant) app registration:
//!   `POST {serviceUrl}/v3/conversations/{id}/activities/{replyToId}` in a channel's reply
//!   chain, `…/activities` for a new message; a whisper opens the person's one-to-one chat
//!   with `POST {serviceUrl}/v3/conversations` first (`api.rs`).
//!
//! The connection is `up` once it has an app token and the signing keys; it checks both
//! again every `check_interval_secs`, and a failure marks it down and reconnects with
//! backoff. Credentials the token endpoint refuses stop it (`down`, with the endpoint's
//! reason).
//!
//! Identity: a user is `teams:<Microsoft Entra object id>`, a room `teams:<conversation id>`
//! (`19:…@thread.tacv2` for a channel, `19:…@thread.v2` for a group chat, `a:…` for a
//! one-to-one chat), a channel's reply chain the thread, the tenant the organisation
//! (`wire.rs`).
//!
//! Output: text as Markdown, StackStorm's results as Adaptive Cards, `extra.teams` as the
//! workflow's own card, answer buttons for inquiries as `Action.Submit` (`render.rs`,
//! `interactive.rs`); each activity within Teams' 28 KB.
//!
//! Files: `config.rs` (settings), `jwt.rs` (request authentication), `wire.rs` (activities
//! in), `render.rs` (activities out), `api.rs` (token, keys and Bot Connector calls),
//! `platform.rs` (the [`Platform`](crate::backends::connection::Platform)), `interactive.rs`
//! (buttons).

pub mod api;
pub mod config;
mod interactive;
pub mod jwt;
mod platform;
pub mod render;
pub mod wire;

use std::time::Duration;

use actix::Actor;

use crate::{
    backends::{
        connection::{Connection, DestinationPace, Pace, QueuePolicy, Window},
        registry::{self, PlatformSpec, SetupError, Start, Started},
        webhook::HttpRoute,
    },
    config::PlatformSettings,
};

pub use config::TeamsSettings;
pub use platform::{Dest, Event, Hello, Outgoing, Teams, TeamsSetupError, FORCED_REFRESH_GAP};
pub use render::MAX_ACTIVITY_BYTES;

/// A Teams connection: the shared connection actor running [`Teams`].
pub type TeamsConnection = Connection<Teams>;

/// Largest activity accepted on the messaging endpoint.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// The messaging endpoint of connection `name` (the bot's "messaging endpoint" in its
/// Azure Bot resource is `https://<bridge>/api/teams/<name>/messages`).
pub fn messages_path(name: &str) -> String {
    format!("/api/teams/{name}/messages")
}

/// Teams in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "teams",
    renamed_keys: &[],
    only_one: false,
    mention: crate::backends::mention::by_name,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<TeamsSettings>(settings)?;
    let name = start.wiring.name.clone();
    let gate = start.wiring.gate.clone();
    let platform = Teams::new(name.clone(), s.clone()).map_err(SetupError::new)?;
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    let addr = Connection::new(platform, wiring, queue_policy(s)).start();
    // Answer buttons for StackStorm inquiries: presses arrive as activities.
    crate::backends::buttons::connect(&name, &addr, start.presses, start.buttons);
    Ok(Started {
        deliver: addr.clone().recipient(),
        routes: vec![HttpRoute {
            path: messages_path(&name),
            max_body: MAX_REQUEST_BODY,
            gate,
            handler: addr.recipient(),
        }],
    })
}

/// Teams' "per bot per thread" limits on sending to one conversation (a one-to-one chat, a
/// group chat or a channel): at most 7 in any second, 8 in any 2 s, 60 in any 30 s and 1800
/// in any hour, all at once ("Per bot per thread limit", "Send to conversation",
/// <https://learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit>). The page
/// says the figures may change; a 429 beyond them is still waited out.
pub const CONVERSATION_WINDOWS: &[Window] = &[
    Window::new(7, Duration::from_secs(1)),
    Window::new(8, Duration::from_secs(2)),
    Window::new(60, Duration::from_secs(30)),
    Window::new(1800, Duration::from_secs(3600)),
];

/// Least gap between two sends of the whole connection: Teams allows each app 50 requests
/// per second per tenant (same page; some revisions of it said 30), and one send per 20 ms
/// never puts more than 50 in any second, however the second is counted.
pub const APP_SEND_GAP: Duration = Duration::from_millis(20);

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(s: &TeamsSettings) -> QueuePolicy {
    // Each conversation is paced by Teams' own four windows (CONVERSATION_WINDOWS), so a
    // burst of replies goes as fast as they allow: ten in one conversation take 2 s, where a
    // single pace that kept to all four at any length (a burst of 7, then one per 2.1 s) took
    // 6.3 s. `send_interval_ms`, when set, brings that single pace back with its own gap
    // (for a tenant Microsoft holds to less, or a test server). Conversations are sent to
    // concurrently, the connection at most 50 a second; a 429 holds its conversation.
    let per_conversation = match s.send_interval_ms {
        None => DestinationPace::Windows(CONVERSATION_WINDOWS),
        Some(ms) => DestinationPace::Bucket(Pace {
            burst: 7,
            interval: Duration::from_millis(ms),
        }),
    };
    QueuePolicy {
        capacity: s.queue_size,
        pace: Pace::every(APP_SEND_GAP),
        per_destination: Some(per_conversation),
        max_in_flight: crate::backends::defaults::MAX_IN_FLIGHT,
        limits_per_destination: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(send_interval_ms: Option<u64>) -> TeamsSettings {
        serde_json::from_value(serde_json::json!({
            "app_id": "a", "tenant_id": "t", "app_password": "p",
            "send_interval_ms": send_interval_ms,
        }))
        .unwrap()
    }

    #[test]
    fn each_conversation_is_paced_by_the_documented_windows() {
        let q = queue_policy(&settings(None));
        assert_eq!(
            q.per_destination,
            Some(DestinationPace::Windows(CONVERSATION_WINDOWS))
        );
        let windows: Vec<(u32, u64)> = CONVERSATION_WINDOWS
            .iter()
            .map(|w| (w.count, w.period.as_secs()))
            .collect();
        assert_eq!(windows, [(7, 1), (8, 2), (60, 30), (1800, 3600)]);
        assert!(q.limits_per_destination, "a 429 holds its conversation");
        assert_eq!(
            q.pace,
            Pace::every(Duration::from_millis(20)),
            "50 a second"
        );
    }

    #[test]
    fn send_interval_ms_brings_back_the_single_pace() {
        let q = queue_policy(&settings(Some(2100)));
        assert_eq!(
            q.per_destination,
            Some(DestinationPace::Bucket(Pace {
                burst: 7,
                interval: Duration::from_millis(2100),
            }))
        );
    }
}
