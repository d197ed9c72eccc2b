//! Answer buttons on Mattermost (interactive message buttons).
//!
//! Out: an [`OfferButtons`] becomes a post whose `props.attachments[0].actions` are buttons
//! (`type: "button"`, `name`, `style`, and `integration` = `{url, context}`), as
//! https://developers.mattermost.com/integrate/plugins/interactive-messages/ describes. The
//! `url` is the bridge's own HTTP server, `<actions_url>/mattermost/actions/<connection>`
//! (`actions_url` in the connection's settings: how Mattermost reaches the bridge; without
//! it no buttons are offered and the text form is posted instead).
//!
//! In: when someone presses a button, the Mattermost server POSTs to that `url` a JSON body
//! with the presser (`user_id`, `user_name`), `channel_id`, `channel_name`, `team_id`,
//! `post_id` and the button's `context`, and shows what the answer says: `update` replaces
//! the post (here: who answered what, the buttons gone), `ephemeral_text` is shown to the
//! presser only. Mattermost does not sign that request, so the `context` carries a token:
//! an HMAC-SHA256 of the connection's name and the answer the button gives. Mattermost
//! keeps a post's integrations on the server (clients never see them), so only Mattermost
//! can present a valid token; a request without one is refused (403) and reaches neither
//! the access rules nor StackStorm. With a persistent store (SQLite, Redis) the key is
//! derived from the store key and the connection's name (HKDF), never stored itself: a
//! command held for a decision survives a restart, and so do the buttons offered for it
//! (every process sharing a Redis store derives the same key). With the memory store the
//! key is drawn at random per process, since nothing offered survives a restart anyway:
//! older buttons are refused with a note to list the inquiries again.
//!
//! The answer to a press waits for the dispatcher's outcome (two StackStorm calls), well
//! within Mattermost's timeout for integration requests; past [`PRESS_TIMEOUT`] the presser
//! is told it is still being worked on and the outcome is posted in the channel.

use std::{collections::BTreeMap, time::Duration};

use actix::{Recipient, ResponseFuture};
use ring::hmac;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{api::Outgoing, config::MAX_POST_CHARS, platform::Mattermost};
use crate::{
    backends::{
        buttons::{
            ButtonAction, ButtonOutcome, ButtonPressed, OfferButtons, PressOrigin, UseButtonPresses,
        },
        connection::{outbox::Dest, Effects, Handles},
        webhook::{WebhookReply, WebhookRequest},
    },
    domain::message::{ChatUser, Room, RoomKind},
};

/// The path under the bridge's HTTP server where presses arrive (`/<connection>` follows).
pub const ACTIONS_PATH: &str = "/mattermost/actions";

/// Longest wait for a press's outcome before answering Mattermost anyway.
pub const PRESS_TIMEOUT: Duration = Duration::from_secs(20);

/// Presses awaiting their outcome, at most.
const MAX_PENDING: usize = 256;

/// Largest press body accepted (a press is well under 4 KiB).
pub const MAX_PRESS_BODY: usize = 64 * 1024;

/// A refusal of a press, as Mattermost shows it: an `error` and, for the presser, the same
/// words as `ephemeral_text`.
fn refused(status: u16, message: &str) -> WebhookReply {
    WebhookReply::new(
        status,
        json!({"error": {"message": message}, "ephemeral_text": message}),
    )
}

/// The connection's interactive state.
pub struct Interactions {
    presses: Option<Recipient<ButtonPressed>>,
    key: hmac::Key,
    pending: BTreeMap<u64, oneshot::Sender<WebhookReply>>,
    next_handle: u64,
}

impl Default for Interactions {
    fn default() -> Self {
        // A fresh random key, until a key derived from a persistent store replaces it
        // ([`Mattermost::with_button_key`]): tokens are unguessable and die with the process.
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // The OS random source failing is not recoverable in any useful way; a key from
            // a fresh UUID (itself from the OS source where it works) keeps buttons usable.
            hmac::Key::new(hmac::HMAC_SHA256, uuid::Uuid::new_v4().as_bytes())
        });
        Self {
            presses: None,
            key,
            pending: BTreeMap::new(),
            next_handle: 0,
        }
    }
}

fn token_input(connection: &str, answer: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(connection.len() + answer.len() + 1);
    input.extend_from_slice(connection.as_bytes());
    input.push(0);
    input.extend_from_slice(answer.as_bytes());
    input
}

impl Mattermost {
    /// Signs this connection's buttons with `key` (see the module's notes); `None` keeps
    /// the random key of a bridge without a persistent store.
    pub fn with_button_key(mut self, key: Option<hmac::Key>) -> Self {
        if let Some(key) = key {
            self.interactive.key = key;
        }
        self
    }

    /// The URL Mattermost posts presses to, when buttons are on.
    fn actions_url(&self) -> Option<String> {
        let base = self
            .settings
            .actions_url
            .as_deref()?
            .trim()
            .trim_end_matches('/');
        let name: String = url::form_urlencoded::byte_serialize(self.name.as_bytes()).collect();
        Some(format!("{base}{ACTIONS_PATH}/{name}"))
    }

    fn sign(&self, answer: &str) -> String {
        let tag = hmac::sign(&self.interactive.key, &token_input(&self.name, answer));
        crate::backends::hex::encode(tag.as_ref())
    }

    /// Whether `token` is this connection's for `answer` (compared in constant time).
    fn token_ok(&self, answer: &str, token: &str) -> bool {
        let Some(tag) = crate::backends::hex::decode(token) else {
            return false;
        };
        hmac::verify(
            &self.interactive.key,
            &token_input(&self.name, answer),
            &tag,
        )
        .is_ok()
    }

    /// The post's `props` with the buttons, or `None` when they cannot be offered.
    fn offer_props(&self, offer: &OfferButtons) -> Option<Value> {
        let url = self.actions_url()?;
        self.interactive.presses.as_ref()?;
        let actions: Vec<Value> = offer
            .buttons
            .iter()
            .enumerate()
            .map(|(n, b)| {
                let answer = b.action.encode();
                let style = if b.action.is_affirmative() {
                    "primary"
                } else {
                    "default"
                };
                json!({
                    // Mattermost wants action ids of letters and digits.
                    "id": format!("answer{n}"),
                    "type": "button",
                    "name": b.label,
                    "style": style,
                    "integration": {"url": url, "context": {"answer": answer, "token": self.sign(&answer)}},
                })
            })
            .collect();
        if actions.is_empty() {
            return None;
        }
        Some(json!({"attachments": [{"fallback": offer.fallback, "actions": actions}]}))
    }

    fn push_text(&self, dest: Dest, root_id: Option<String>, text: &str, fx: &mut Effects<Self>) {
        for post in self.posts(dest, root_id, text, None) {
            fx.queue(post);
        }
    }

    /// Checks a press and hands it to the dispatcher; the answer for Mattermost follows its
    /// outcome.
    fn on_action(
        &mut self,
        request: &Value,
    ) -> Result<oneshot::Receiver<WebhookReply>, WebhookReply> {
        let text = |p: &str| {
            request
                .pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (Some(answer_text), Some(token)) = (text("/context/answer"), text("/context/token"))
        else {
            return Err(refused(400, "This is not one of the bridge's buttons."));
        };
        if !self.token_ok(&answer_text, &token) {
            tracing::warn!(connection = %self.name, "a Mattermost button press with an invalid token refused");
            return Err(refused(
                403,
                "This button is no longer valid (the bridge may have restarted). List the inquiries again.",
            ));
        }
        let Some(answer) = ButtonAction::decode(&answer_text) else {
            return Err(refused(400, "This button does not name an answer."));
        };
        let (Some(user_id), Some(channel)) = (text("/user_id"), text("/channel_id")) else {
            return Err(refused(400, "The press names no user or channel."));
        };
        let Some(presses) = self.interactive.presses.clone() else {
            return Err(refused(
                503,
                "The bridge is starting; try again in a moment.",
            ));
        };
        let state = &mut self.interactive;
        while state.pending.len() >= MAX_PENDING {
            state.pending.pop_first();
        }
        state.next_handle += 1;
        let handle = state.next_handle;
        let (tx, rx) = oneshot::channel();
        state.pending.insert(handle, tx);
        // A direct channel's name is the two user ids joined by `__`.
        let kind = match text("/channel_name") {
            Some(n) if n.contains("__") => RoomKind::Direct,
            _ => RoomKind::Group,
        };
        tracing::debug!(connection = %self.name, user = %user_id, action = %answer.describe(), "Mattermost answer button pressed");
        presses.do_send(ButtonPressed {
            user: ChatUser {
                connection: self.name.clone(),
                name: text("/user_name").unwrap_or_else(|| user_id.clone()),
                id: user_id,
            },
            room: Room {
                connection: self.name.clone(),
                id: channel,
                kind,
                thread: None,
            },
            room_name: text("/channel_name").filter(|_| kind == RoomKind::Group),
            org: text("/team_id").or_else(|| self.team_id.clone()),
            action: answer,
            origin: PressOrigin {
                message_id: text("/post_id"),
                handle,
            },
        });
        Ok(rx)
    }
}

impl Handles<UseButtonPresses> for Mattermost {
    type Reply = ();

    fn handle(&mut self, msg: UseButtonPresses, _fx: &mut Effects<Self>) {
        self.interactive.presses = Some(msg.0);
    }
}

impl Handles<OfferButtons> for Mattermost {
    type Reply = ();

    fn handle(&mut self, msg: OfferButtons, fx: &mut Effects<Self>) {
        let (dest, root_id) = Dest::of(msg.target.clone());
        let Some(props) = self.offer_props(&msg) else {
            return self.push_text(dest, root_id, &msg.fallback, fx);
        };
        let message: String = msg.text.chars().take(MAX_POST_CHARS).collect();
        // Its id goes back to the dispatcher, which updates it when the buttons are spent
        // without a press.
        fx.queue(Outgoing {
            dest,
            root_id,
            message,
            props: Some(props),
            posted: msg.posted,
            part: None,
        });
    }
}

/// A press as Mattermost POSTs it to the connection's route (unsigned: the token in the
/// button's `context` is checked first). The answer is what Mattermost shows.
impl Handles<WebhookRequest> for Mattermost {
    type Reply = ResponseFuture<WebhookReply>;

    fn handle(&mut self, msg: WebhookRequest, fx: &mut Effects<Self>) -> Self::Reply {
        let Ok(press) = serde_json::from_slice::<Value>(&msg.body) else {
            let refused = refused(400, "body is not JSON");
            return Box::pin(async move { refused });
        };
        match self.on_action(&press) {
            Err(refused) => Box::pin(async move { refused }),
            Ok(rx) => {
                fx.activity();
                Box::pin(async move {
                    match tokio::time::timeout(PRESS_TIMEOUT, rx).await {
                        Ok(Ok(response)) => response,
                        _ => WebhookReply::new(
                            200,
                            json!({"ephemeral_text": "StackStorm is taking a while; the outcome will be posted here."}),
                        ),
                    }
                })
            }
        }
    }
}

impl Handles<ButtonOutcome> for Mattermost {
    type Reply = ();

    fn handle(&mut self, msg: ButtonOutcome, fx: &mut Effects<Self>) {
        let response = if msg.accepted {
            // `props: {}` replaces the post's attachments: the spent buttons go.
            json!({"update": {"message": msg.text, "props": {}}})
        } else {
            json!({"ephemeral_text": msg.text})
        };
        // Handle 0 is no press (handles count from 1): the dispatcher spends an offer's
        // buttons after a typed decision or an expiry. The bot edits its post itself.
        if let (0, true, Some(post_id)) = (
            msg.origin.handle,
            msg.accepted,
            msg.origin.message_id.clone(),
        ) {
            return self.spend_offer(post_id, msg, fx);
        }
        let waiting = self.interactive.pending.remove(&msg.origin.handle);
        let delivered = waiting.is_some_and(|tx| tx.send(WebhookReply::new(200, response)).is_ok());
        if delivered {
            return;
        }
        // Mattermost stopped waiting: say it with a post (privately when refused).
        let dest = if msg.accepted {
            Dest::Room(msg.room.id.clone())
        } else {
            Dest::User(msg.user.id.clone())
        };
        self.push_text(dest, None, &msg.text, fx);
    }
}

impl Mattermost {
    /// Replaces the offer `post_id` with the outcome, its buttons gone (`props: {}`, as
    /// the answer to a press does).
    fn spend_offer(&mut self, post_id: String, msg: ButtonOutcome, fx: &mut Effects<Self>) {
        let api = self.api();
        let name = self.name.clone();
        let message: String = msg.text.chars().take(MAX_POST_CHARS).collect();
        fx.detach(async move {
            let body = json!({"message": message, "props": {}});
            if let Err(e) = api.patch_post(&post_id, &body).await {
                // The outcome was posted in the channel all the same; only stale buttons
                // remain, and pressing them finds nothing waiting.
                tracing::warn!(connection = %name, error = %e, "the spent buttons could not be taken off their post");
            }
        });
    }
}

crate::platform_messages!(Mattermost: UseButtonPresses, OfferButtons, WebhookRequest, ButtonOutcome);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hex_and_only_the_signed_answer_passes() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let tag = hmac::sign(&key, &token_input("mm", "{\"i\":\"a\"}"));
        let hex = crate::backends::hex::encode(tag.as_ref());
        assert_eq!(hex.len(), 64);
        assert_eq!(
            crate::backends::hex::decode(&hex).as_deref(),
            Some(tag.as_ref())
        );
        assert!(hmac::verify(
            &key,
            &token_input("mm", "{\"i\":\"a\"}"),
            &crate::backends::hex::decode(&hex).unwrap()
        )
        .is_ok());
        assert!(hmac::verify(
            &key,
            &token_input("mm", "{\"i\":\"b\"}"),
            &crate::backends::hex::decode(&hex).unwrap()
        )
        .is_err());
        assert!(hmac::verify(
            &key,
            &token_input("other", "{\"i\":\"a\"}"),
            &crate::backends::hex::decode(&hex).unwrap()
        )
        .is_err());
        for bad in ["", "0", "zz", "+f"] {
            assert!(crate::backends::hex::decode(bad).is_none(), "{bad}");
        }
    }
}
