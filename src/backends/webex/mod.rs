//! The Webex backend (`backend = "webex"`): a bot account's access token
//! (`Authorization: Bearer …`) on the REST API (`api_url`, by default
//! `https://webexapis.com/v1`), events as webhooks Webex POSTs to the bridge.
//!
//! Connecting: `GET /people/me` gives the bot's person id, names and email (a 401 stops the
//! connection: the token was refused). Then the bridge makes the bot's webhooks what it needs
//! (`GET /webhooks`, "Webhooks": <https://developer.webex.com/docs/api/v1/webhooks>): one for
//! `messages`/`created` and one for `attachmentActions`/`created`, named
//! `stormbridge <connection>`, with `targetUrl` = `<public_url>/webex/events/<connection>`
//! and the configured `webhook_secret`. A missing one is created (`POST /webhooks`), one with
//! another target or secret, or disabled by Webex after failed deliveries, is updated
//! (`PUT /webhooks/{id}`), one with a filter is deleted and created anew, duplicates are
//! deleted; webhooks of any other name are left alone. The operator creates nothing by hand.
//! The same check runs every `check_interval_secs`; a check that cannot reach Webex loses the
//! link (reconnect with backoff: `/ready` and `/actors` say so), as does a send that cannot.
//!
//! Events: every delivery to the connection's route must carry `X-Spark-Signature`, the hex
//! HMAC-SHA1 of the raw body under the webhook secret (`signature.rs`); anything else is
//! answered 401 and goes no further. A delivery is answered at once (200); its `data` only
//! names the message, so the bridge fetches it (`GET /messages/{id}`: text, html, author,
//! room, `roomType`, `parentId`), and hands on each room's messages in the order Webex
//! delivered them. The bot's own messages and other bots' (`…@webex.bot`) are not commands.
//! In group rooms Webex delivers a bot only the messages that mention it; a leading mention
//! (a `<spark-mention>` of the bot in the `html`, shown in the text as its name) sets
//! `mentioned` and is stripped, like other platforms' mentions. A group room's title
//! (`GET /rooms/{id}`, once per room) is its name.
//!
//! Identity: a user is the author's person id (their email as the name shown), a room the
//! `roomId` (`roomType` `direct` is a 1:1 room), the thread the `parentId` of a reply (Webex
//! threads have one level). Access rules and `!st2whoami` name them `<connection>:<person
//! id>` and `<connection>:<room id>`.
//!
//! Output: `POST /messages` with `roomId` and `markdown`, `parentId` for a reply in a thread
//! (a command said in a thread, or with `reply_in_thread` every command), split at 7439
//! bytes; whispers go to the person's 1:1 room with the bot (`toPersonId`, or `toPersonEmail`
//! for a StackStorm user named by email). 429s (and 423s) are waited out as `Retry-After`
//! says, holding the whole connection (Webex limits the bot, not a room); each room is paced
//! on its own besides.
//!
//! Answer buttons for StackStorm inquiries: an Adaptive Card whose `Action.Submit` buttons
//! carry the answer; a press arrives as an `attachmentActions` webhook (see
//! `interactive.rs`).
//!
//! Files: `config.rs` (settings), `signature.rs` (the webhook signature), `wire.rs` (shapes,
//! the message mapping, the webhook plan, splitting), `api.rs` (REST calls), `platform.rs`
//! (the [`Platform`](crate::backends::connection::Platform)), `interactive.rs` (buttons).

pub mod api;
pub mod config;
mod interactive;
mod platform;
pub mod signature;
pub mod wire;

use std::time::Duration;

use actix::Actor;

use crate::{
    backends::{
        connection::{Connection, DestinationPace, Pace, QueuePolicy},
        registry::{self, PlatformSpec, SetupError, Start, Started},
        webhook::HttpRoute,
    },
    config::PlatformSettings,
    domain::mention::Addressee,
};

pub use config::WebexSettings;
pub use platform::{Webex, WebexSetupError};

/// A Webex connection: the shared connection actor running [`Webex`].
pub type WebexConnection = crate::backends::connection::Connection<Webex>;

/// Where webhook deliveries for connection `name` arrive (the connection name as one URL
/// path segment).
pub fn events_path(name: &str) -> String {
    format!("/webex/events/{}", api::encode(name))
}

/// The name of the bridge's webhooks for connection `name`: webhooks of this name are the
/// bridge's to create, update and delete.
pub fn webhook_name(name: &str) -> String {
    format!("stormbridge {name}")
}

/// Largest webhook delivery accepted (a delivery carries ids, well under 4 KiB).
pub const MAX_DELIVERY_BODY: usize = 256 * 1024;

/// Webex in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "webex",
    renamed_keys: &[],
    only_one: false,
    mention,
    parse: config::parse,
    start,
};

/// Webex: `<@personId:…>` for a person id and `<@personEmail:…>` for an email, which the
/// clients show as the person's name and which notify them ("Formatting Messages",
/// <https://developer.webex.com/docs/basics>); else the name as text.
pub fn mention(who: &Addressee) -> Option<String> {
    let id = who.id.trim();
    if wire::is_person_id(id) {
        return Some(format!("<@personId:{id}>"));
    }
    if id.contains('@') && !id.contains(['<', '>', '|', ' ']) {
        return Some(format!("<@personEmail:{id}>"));
    }
    let name = who.name.as_deref().unwrap_or(id);
    (!name.trim().is_empty()).then(|| name.to_owned())
}

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<WebexSettings>(settings)?;
    let name = start.wiring.name.clone();
    let gate = start.wiring.gate.clone();
    let platform = Webex::new(name.clone(), s.clone()).map_err(SetupError::new)?;
    let queue = queue_policy(s);
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    let addr = Connection::new(platform, wiring, queue).start();
    // Answer buttons for StackStorm inquiries (presses come back as the presser).
    crate::backends::buttons::connect(&name, &addr, start.presses, start.buttons);
    Ok(Started {
        deliver: addr.clone().recipient(),
        routes: vec![HttpRoute {
            path: events_path(&name),
            max_body: MAX_DELIVERY_BODY,
            gate,
            handler: addr.recipient(),
        }],
    })
}

/// How this platform's connection queues and paces its messages.
pub fn queue_policy(s: &WebexSettings) -> QueuePolicy {
    // Webex publishes no fixed figures: its limits vary by resource and load, and a request
    // over them is answered 429 with `Retry-After` ("Rate Limiting",
    // https://developer.webex.com/docs/basics), counted for the bot as a whole. So a 429
    // holds the whole connection for as long as it says; each room gets a burst of 3 and
    // then one message per `send_interval_ms` (1 s by default), and the bot as a whole no
    // more than 10 at once and 10 a second, so a burst of replies is paced rather than
    // refused.
    QueuePolicy {
        capacity: s.queue_size,
        pace: Pace {
            burst: crate::backends::defaults::SEND_BURST,
            interval: Duration::from_millis(100),
        },
        per_destination: Some(DestinationPace::Bucket(Pace {
            burst: 3,
            interval: Duration::from_millis(s.send_interval_ms),
        })),
        max_in_flight: crate::backends::defaults::MAX_IN_FLIGHT,
        limits_per_destination: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_notify_by_person_id_or_email() {
        let who = |id: &str, name: Option<&str>| Addressee {
            id: id.into(),
            name: name.map(str::to_owned),
        };
        let alice = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ";
        assert_eq!(
            mention(&who(alice, Some("alice@example.com"))).as_deref(),
            Some("<@personId:Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ>")
        );
        assert_eq!(
            mention(&who("bob@example.com", None)).as_deref(),
            Some("<@personEmail:bob@example.com>")
        );
        assert_eq!(mention(&who("bob", None)).as_deref(), Some("bob"));
        assert_eq!(mention(&who("", None)), None);
    }

    #[test]
    fn the_route_is_one_path_segment() {
        assert_eq!(events_path("wx"), "/webex/events/wx");
        assert_eq!(events_path("ops room/1"), "/webex/events/ops%20room%2F1");
    }
}
