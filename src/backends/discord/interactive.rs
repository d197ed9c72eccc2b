//! Answer buttons on Discord.
//!
//! Out: an [`OfferButtons`] becomes a message with `components`: action rows (type 1) of
//! up to five buttons (type 2, style 1 primary / 2 secondary, `label` up to 80 characters,
//! `custom_id` up to 100) — https://discord.com/developers/docs/interactions/message-components.
//! A button's `custom_id` is [`CUSTOM_ID_PREFIX`] and the typed answer
//! ([`ButtonAction::encode`]); an answer too long for 100 characters means no buttons,
//! and the text form is sent instead.
//!
//! In: a press arrives on the gateway as `INTERACTION_CREATE`, an interaction of type 3
//! (`MESSAGE_COMPONENT`) with `data.custom_id`, `data.component_type` 2, the presser in
//! `member.user` (in a guild) or `user` (in a DM), `channel_id`, `guild_id`, `message`, and
//! an `id` and `token` to answer with
//! (https://discord.com/developers/docs/interactions/receiving-and-responding). Discord
//! wants an answer within 3 seconds, and the answer to an inquiry takes two StackStorm
//! calls, so the bridge answers at once with type 6 (`DEFERRED_UPDATE_MESSAGE`: the press
//! is acknowledged, the message will be edited later) on
//! `POST /interactions/{id}/{token}/callback`, then, once the dispatcher reports:
//! accepted → `PATCH /webhooks/{application_id}/{token}/messages/@original` (the message
//! now says who answered what, its buttons removed); refused → a follow-up only the presser
//! sees, `POST /webhooks/{application_id}/{token}` with `flags` 64 (`EPHEMERAL`). The
//! interaction token is valid for 15 minutes; it authenticates these calls by itself (no
//! bot token), and it is never logged.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use actix::Recipient;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use twilight_model::{
    application::interaction::{Interaction, InteractionData, InteractionType},
    channel::message::component::ComponentType,
};

use super::{api::Outgoing, config::MAX_MESSAGE_CHARS, platform::Discord};
use crate::{
    backends::{
        buttons::{
            ButtonAction, ButtonOutcome, ButtonPressed, OfferButtons, PressOrigin, UseButtonPresses,
        },
        connection::{outbox::Dest, Effects, Handles},
        rest::{api_error, post_json},
    },
    domain::message::{ChatUser, Room, RoomKind},
};

/// `custom_id` prefix of the bridge's answer buttons.
pub(super) const CUSTOM_ID_PREFIX: &str = "sb:";

/// Discord's limits (message components reference).
const MAX_CUSTOM_ID: usize = 100;
const MAX_LABEL: usize = 80;
const BUTTONS_PER_ROW: usize = 5;

/// Component type `BUTTON` (outgoing components stay JSON).
const BUTTON: u64 = 2;
/// Callback type `DEFERRED_UPDATE_MESSAGE`; message flag `EPHEMERAL`.
const DEFERRED_UPDATE_MESSAGE: u64 = 6;
const EPHEMERAL: u64 = 1 << 6;

/// Presses whose outcome is awaited, at most (the oldest is forgotten first).
const MAX_PENDING: usize = 256;

/// How long an interaction token can answer (Discord: 15 minutes).
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A press waiting for its outcome.
struct Pending {
    application_id: String,
    token: SecretString,
    at: Instant,
}

/// The connection's interactive state.
#[derive(Default)]
pub struct Interactions {
    presses: Option<Recipient<ButtonPressed>>,
    pending: BTreeMap<u64, Pending>,
    next_handle: u64,
}

/// The components for `offer`, or `None` when a button cannot carry its answer.
fn offer_components(offer: &OfferButtons) -> Option<Value> {
    let buttons: Option<Vec<Value>> = offer
        .buttons
        .iter()
        .map(|b| {
            let custom_id = format!("{CUSTOM_ID_PREFIX}{}", b.action.encode());
            if custom_id.chars().count() > MAX_CUSTOM_ID {
                return None;
            }
            let label: String = b.label.chars().take(MAX_LABEL).collect();
            // Yes is the affirmative choice; everything else is secondary.
            let style = if b.action.is_affirmative() { 1 } else { 2 };
            Some(json!({"type": BUTTON, "style": style, "label": label, "custom_id": custom_id}))
        })
        .collect();
    let buttons = buttons.filter(|b| !b.is_empty())?;
    let rows: Vec<Value> = buttons
        .chunks(BUTTONS_PER_ROW)
        .map(|row| json!({"type": 1, "components": row}))
        .collect();
    Some(Value::Array(rows))
}

/// The least of an interaction: enough to acknowledge one whose full shape the bridge
/// cannot read.
#[derive(Debug, serde::Deserialize)]
pub(super) struct BareInteraction {
    id: String,
    token: String,
}

impl Discord {
    /// Acknowledges an interaction the bridge could not read (and does nothing else).
    pub(super) fn acknowledge(&mut self, bare: &BareInteraction, fx: &mut Effects<Self>) {
        if bare.id.is_empty() || bare.token.is_empty() {
            return;
        }
        let token = SecretString::from(bare.token.clone());
        self.defer(&bare.id, &token, fx);
    }

    /// An `INTERACTION_CREATE` dispatch, read as twilight's [`Interaction`].
    pub(super) fn interaction(&mut self, d: &Interaction, fx: &mut Effects<Self>) {
        let Some(InteractionData::MessageComponent(data)) = &d.data else {
            return;
        };
        if d.kind != InteractionType::MessageComponent
            || data.component_type != ComponentType::Button
        {
            return;
        }
        // `channel_id` is deprecated in favour of `channel`; either will do.
        #[allow(deprecated)]
        let channel = d.channel.as_ref().map(|c| c.id).or(d.channel_id);
        let Some(channel) = channel.filter(|_| !d.token.is_empty()) else {
            tracing::debug!(connection = %self.name, "an interaction without token or channel; ignored");
            return;
        };
        let token = SecretString::from(d.token.clone());
        fx.activity();
        // Acknowledged first, whatever it is: Discord shows "interaction failed" otherwise.
        self.defer(&d.id.to_string(), &token, fx);
        let answer = data
            .custom_id
            .strip_prefix(CUSTOM_ID_PREFIX)
            .and_then(ButtonAction::decode);
        let Some(answer) = answer else {
            tracing::debug!(connection = %self.name, "a press of a button that is not the bridge's; ignored");
            return;
        };
        // The presser: `member.user` in a guild, `user` in a DM.
        let Some(presser) = d.author() else {
            return;
        };
        let Some(presses) = self.interactive.presses.clone() else {
            tracing::warn!(connection = %self.name, "a button press before the dispatcher was wired; ignored");
            return;
        };
        let user_id = presser.id.to_string();
        let name = presser
            .global_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(Some(presser.name.as_str()).filter(|n| !n.is_empty()))
            .map_or_else(|| user_id.clone(), str::to_owned);
        let guild = d.guild_id.map(|g| g.to_string());
        let handle = self.remember(d.application_id.to_string(), token);
        let message = d.message.as_ref();
        presses.do_send(ButtonPressed {
            user: ChatUser {
                connection: self.name.clone(),
                id: user_id,
                name,
            },
            room: Room {
                connection: self.name.clone(),
                id: channel.to_string(),
                kind: if guild.is_some() {
                    RoomKind::Group
                } else {
                    RoomKind::Direct
                },
                thread: message
                    .and_then(|m| m.reference.as_ref())
                    .and_then(|r| r.message_id)
                    .map(|id| id.to_string()),
            },
            room_name: None,
            org: guild,
            action: answer,
            origin: PressOrigin {
                message_id: message.map(|m| m.id.to_string()),
                handle,
            },
        });
    }

    /// Keeps an interaction's token for its outcome; returns the handle.
    fn remember(&mut self, application_id: String, token: SecretString) -> u64 {
        let state = &mut self.interactive;
        let now = Instant::now();
        state
            .pending
            .retain(|_, p| now.duration_since(p.at) < TOKEN_LIFETIME);
        while state.pending.len() >= MAX_PENDING {
            state.pending.pop_first();
        }
        state.next_handle += 1;
        state.pending.insert(
            state.next_handle,
            Pending {
                application_id,
                token,
                at: now,
            },
        );
        state.next_handle
    }

    /// `POST /interactions/{id}/{token}/callback` with type 6.
    fn defer(&mut self, id: &str, token: &SecretString, fx: &mut Effects<Self>) {
        let client = self.client();
        let url = format!(
            "{}/interactions/{id}/{}/callback",
            self.api_base,
            token.expose_secret()
        );
        let name = self.name.clone();
        fx.detach(
            async move {
                match post_json(client.post(&url), &json!({"type": DEFERRED_UPDATE_MESSAGE})).await
                {
                    Ok((status, _, body)) if !status.is_success() => {
                        tracing::warn!(connection = %name, error = %api_error(status, &body), "discord refused the interaction acknowledgement");
                    }
                    Err(e) => {
                        // The error text names the path, which holds the token.
                        let _ = e;
                        tracing::warn!(connection = %name, "the interaction acknowledgement failed");
                    }
                    Ok(_) => {}
                }
            },
        );
    }
}

impl Handles<UseButtonPresses> for Discord {
    type Reply = ();

    fn handle(&mut self, msg: UseButtonPresses, _fx: &mut Effects<Self>) {
        self.interactive.presses = Some(msg.0);
    }
}

impl Handles<OfferButtons> for Discord {
    type Reply = ();

    fn handle(&mut self, msg: OfferButtons, fx: &mut Effects<Self>) {
        let (dest, reply_to) = Dest::of(msg.target.clone());
        let components = self
            .interactive
            .presses
            .is_some()
            .then(|| offer_components(&msg))
            .flatten();
        let text = if components.is_some() {
            &msg.text
        } else {
            &msg.fallback
        };
        // The buttons go with the last part, whose id goes back to the dispatcher, which
        // updates it when the buttons are spent without a press.
        let mut items = self.messages(dest, reply_to, text, components);
        if let Some(last) = items.last_mut().filter(|i| i.components.is_some()) {
            last.posted = msg.posted;
        }
        for item in items {
            fx.queue(item);
        }
    }
}

impl Handles<ButtonOutcome> for Discord {
    type Reply = ();

    fn handle(&mut self, msg: ButtonOutcome, fx: &mut Effects<Self>) {
        // Handle 0 is no press (handles count from 1): the dispatcher spends an offer's
        // buttons after a typed decision or an expiry; the bot edits its own message.
        if let (0, true, Some(message_id)) = (
            msg.origin.handle,
            msg.accepted,
            msg.origin.message_id.clone(),
        ) {
            let api = self.api();
            let name = self.name.clone();
            let content: String = msg.text.chars().take(MAX_MESSAGE_CHARS).collect();
            let channel = msg.room.id;
            fx.detach(async move {
                let body = json!({"content": content, "components": [], "allowed_mentions": {"parse": []}});
                if let Err(e) = api.edit_message(&channel, &message_id, &body).await {
                    // The outcome was posted in the channel all the same; only stale
                    // buttons remain, and pressing them finds nothing waiting.
                    tracing::warn!(connection = %name, error = %e, "the spent buttons could not be taken off their message");
                }
            });
            return;
        }
        let pending = self.interactive.pending.remove(&msg.origin.handle);
        let Some(pending) = pending else {
            // The token expired (or the connection restarted): say it in the channel.
            let content = if msg.accepted {
                msg.text
            } else {
                format!("<@{}> {}", msg.user.id, msg.text)
            };
            fx.queue(Outgoing::new(
                Dest::Room(msg.room.id),
                msg.room.thread,
                content,
                None,
            ));
            return;
        };
        let client = self.client();
        let content: String = msg.text.chars().take(MAX_MESSAGE_CHARS).collect();
        let base = format!(
            "{}/webhooks/{}/{}",
            self.api_base,
            pending.application_id,
            pending.token.expose_secret()
        );
        let name = self.name.clone();
        let accepted = msg.accepted;
        let fut = async move {
            let sent = if accepted {
                // The buttons are spent: the message now says who answered what.
                post_json(
                    client.patch(format!("{base}/messages/@original")),
                    &json!({"content": content, "components": [], "allowed_mentions": {"parse": []}}),
                )
                .await
            } else {
                post_json(
                    client.post(&base),
                    &json!({"content": content, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}}),
                )
                .await
            };
            match sent {
                Ok((status, _, body)) if !status.is_success() => {
                    tracing::warn!(connection = %name, error = %api_error(status, &body), accepted, "discord refused the answer to a press");
                }
                Err(_) => {
                    tracing::warn!(connection = %name, accepted, "the answer to a press failed");
                }
                Ok(_) => {}
            }
        };
        fx.detach(fut);
    }
}

crate::platform_messages!(Discord: UseButtonPresses, OfferButtons, ButtonOutcome);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::buttons::{ButtonAction, InquiryAnswer};
    use crate::{backends::buttons::Button, domain::message::Target};

    fn offer(values: Vec<Value>) -> OfferButtons {
        OfferButtons {
            target: Target::User { id: "1".into() },
            text: "Inquiry `abc`: env?".into(),
            fallback: "Inquiry `abc`: env?\nAnswer with `!st2answer abc env=a`.".into(),
            posted: None,
            buttons: values
                .into_iter()
                .map(|v| Button {
                    label: crate::inquiry::schema::display_value(&v),
                    action: ButtonAction::Answer(InquiryAnswer {
                        inquiry_id: "5f0e1d2c3b4a596877665544".into(),
                        field: "env".into(),
                        value: v,
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn buttons_fill_rows_of_five_and_carry_their_answer() {
        let values = (0..7).map(|n| json!(format!("v{n}"))).collect();
        let rows = offer_components(&offer(values)).unwrap();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["components"].as_array().unwrap().len(), 5);
        let first = &rows[0]["components"][0];
        assert_eq!(
            (first["type"].as_u64(), first["style"].as_u64()),
            (Some(2), Some(2))
        );
        let id = first["custom_id"].as_str().unwrap();
        let answer = InquiryAnswer::decode(id.strip_prefix(CUSTOM_ID_PREFIX).unwrap()).unwrap();
        assert_eq!(answer.value, json!("v0"));
    }

    #[test]
    fn a_button_press_reads_as_twilights_interaction() {
        let user = json!({"id": "800", "username": "alice", "discriminator": "0", "global_name": null, "avatar": null});
        let mut d = json!({
            "id": "901", "application_id": "700", "type": 3, "version": 1, "token": "tok",
            "data": {"custom_id": "sb:x", "component_type": 2},
            "channel_id": "10", "channel": {"id": "10", "type": 0}, "guild_id": "1",
            "message": {"id": "902", "type": 0, "channel_id": "10", "content": "Inquiry",
                "author": {"id": "700", "username": "bot", "discriminator": "0", "avatar": null, "bot": true},
                "timestamp": "2026-01-01T00:00:00.000000+00:00", "edited_timestamp": null,
                "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
                "attachments": [], "embeds": [], "pinned": false},
            "member": {"user": user, "roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00",
                "deaf": false, "mute": false, "flags": 0, "permissions": "0"},
            "app_permissions": "0", "locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {}, "attachment_size_limit": 8388608,
        });
        let i: Interaction = serde_json::from_value(d.clone()).unwrap();
        assert_eq!(i.kind, InteractionType::MessageComponent);
        assert!(matches!(&i.data, Some(InteractionData::MessageComponent(c))
            if c.custom_id == "sb:x" && c.component_type == ComponentType::Button));
        assert_eq!(i.author().map(|u| u.name.as_str()), Some("alice"));
        assert_eq!(i.message.map(|m| m.id.get()), Some(902));
        // In a DM the presser is `user`.
        let o = d.as_object_mut().unwrap();
        o.remove("member");
        o.remove("guild_id");
        o.insert("user".into(), user);
        let i: Interaction = serde_json::from_value(d).unwrap();
        assert_eq!(i.author_id().map(|id| id.get()), Some(800));
        assert!(i.guild_id.is_none());
    }

    #[test]
    fn an_answer_over_100_characters_means_no_buttons() {
        assert!(offer_components(&offer(vec![json!("x".repeat(80))])).is_none());
        assert!(offer_components(&offer(vec![])).is_none());
    }
}
