//! Buttons on Slack: inquiry answers and decisions on held commands.
//!
//! Out: an [`OfferButtons`] becomes a `chat.postMessage` with Block Kit blocks — a `section`
//! with the question and an `actions` block of `button` elements
//! (https://api.slack.com/reference/block-kit/block-elements#button: `text` plain_text up
//! to 75 characters, `action_id` unique in its block and up to 255, `value` up to 2000,
//! `style` `primary`/`danger`). Each button's `value` is the typed answer
//! ([`ButtonAction::encode`]); its `action_id` starts with [`ACTION_PREFIX`].
//!
//! In: a press arrives over Socket Mode as an `interactive` envelope, or in Events API
//! mode as a signed POST to the Request URL (a form whose `payload` field holds the JSON;
//! https://api.slack.com/interactivity/handling), either way a `block_actions` payload (https://api.slack.com/apis/socket-mode, "Interactivity";
//! https://api.slack.com/reference/interaction-payloads/block-actions-payload): `user`
//! (who pressed), `container` (`channel_id`, `message_ts`, `thread_ts`), `channel`,
//! `team`, `message` and `actions` (`action_id`, `value`, `action_ts`). The envelope is
//! acknowledged at once like every other (connection.rs); the press goes to the dispatcher
//! as [`ButtonPressed`] with the presser as the user.
//!
//! The outcome: accepted, the message is updated in place (`chat.update` with the
//! channel and the message's `ts`) so the whole channel sees who answered what and the
//! buttons are gone; refused, only the presser is told, with `chat.postEphemeral` (a
//! direct message when Slack refuses that), like any ephemeral whisper.
//!
//! In Events API mode the app's Interactivity Request URL must be the bridge's
//! `/slack/events/<connection>` too (the same path takes both, told apart by the body).

use actix::Recipient;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    api::{Dest, Outgoing},
    platform::{Event, Slack},
    wire::ApiEnvelope,
};
use crate::{
    backends::{
        buttons::{
            ButtonAction, ButtonOutcome, ButtonPressed, OfferButtons, PressOrigin, UseButtonPresses,
        },
        connection::{Effects, Handles},
    },
    domain::{
        chunk::{split_message, LengthUnit},
        message::{ChatUser, Room, RoomKind, Target},
    },
};

/// `action_id` prefix of the bridge's answer buttons; other apps' actions are ignored.
pub(super) const ACTION_PREFIX: &str = "stormbridge.answer.";

/// Slack's limits (Block Kit reference): a button's `value`, a section's text.
const MAX_VALUE_CHARS: usize = 2000;
const MAX_SECTION_CHARS: usize = 3000;

/// The connection's interactive state.
#[derive(Default)]
pub struct Interactions {
    /// Where presses go; `None` until the dispatcher is wired (no buttons before that).
    presses: Option<Recipient<ButtonPressed>>,
}

/// The parts of a `block_actions` payload the bridge reads.
#[derive(Debug, Deserialize)]
struct BlockActions {
    #[serde(rename = "type")]
    kind: String,
    user: PayloadUser,
    #[serde(default)]
    team: Option<IdOnly>,
    #[serde(default)]
    channel: Option<PayloadChannel>,
    #[serde(default)]
    container: Option<Container>,
    #[serde(default)]
    message: Option<PayloadMessage>,
    #[serde(default)]
    actions: Vec<PayloadAction>,
}

#[derive(Debug, Deserialize)]
struct PayloadUser {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Debug, Deserialize)]
struct PayloadChannel {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PayloadMessage {
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PayloadAction {
    #[serde(default)]
    action_id: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    action_ts: Option<String>,
}

/// The blocks for `offer`, or `None` when a button cannot carry its answer.
fn offer_blocks(offer: &OfferButtons) -> Option<Value> {
    let elements: Option<Vec<Value>> = offer
        .buttons
        .iter()
        .enumerate()
        .map(|(n, b)| {
            let value = b.action.encode();
            if value.is_empty() || value.chars().count() > MAX_VALUE_CHARS {
                return None;
            }
            let mut element = json!({
                "type": "button",
                "action_id": format!("{ACTION_PREFIX}{n}"),
                "text": {"type": "plain_text", "text": b.label, "emoji": true},
                "value": value,
            });
            // Yes is the affirmative choice; everything else keeps the default look.
            if b.action.is_affirmative() {
                element["style"] = json!("primary");
            }
            Some(element)
        })
        .collect();
    let elements = elements.filter(|e| !e.is_empty())?;
    Some(json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(&offer.text, MAX_SECTION_CHARS)}},
        {"type": "actions", "block_id": "stormbridge_answer", "elements": elements},
    ]))
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

impl Slack {
    /// Where a message for `target` goes, and in which thread.
    fn offer_dest(&self, target: &Target) -> (Dest, Option<String>) {
        match target {
            Target::Room { id, thread, .. } => (Dest::Channel(id.clone()), thread.clone()),
            Target::User { id } => (Dest::User(id.clone()), None),
        }
    }

    fn enqueue_bodies(dest: Dest, bodies: Vec<Value>, fx: &mut Effects<Self>) {
        for body in bodies {
            fx.queue(Outgoing {
                dest: dest.clone(),
                body,
                posted: None,
                part: None,
            });
        }
    }

    /// Plain text to `dest`, split at the message limit.
    fn enqueue_text(&self, dest: Dest, thread: Option<&str>, text: &str, fx: &mut Effects<Self>) {
        let bodies = split_message(text, self.settings.max_message_length, LengthUnit::Chars)
            .into_iter()
            .map(|part| {
                let mut body = json!({"channel": "", "text": part});
                if let Some(ts) = thread {
                    body["thread_ts"] = json!(ts);
                }
                body
            })
            .collect();
        Self::enqueue_bodies(dest, bodies, fx);
    }

    /// An `interactive` envelope's payload (already acknowledged).
    pub(super) fn on_interactive(&mut self, payload: Value, fx: &mut Effects<Self>) {
        fx.activity();
        if payload.get("type").and_then(Value::as_str) != Some("block_actions") {
            return;
        }
        let actions: BlockActions = match serde_json::from_value(payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(connection = %self.name, error = %e, "unreadable block_actions payload");
                return;
            }
        };
        if actions.kind != "block_actions" || actions.user.id.trim().is_empty() {
            return;
        }
        let Some(presses) = self.interactive.presses.clone() else {
            tracing::warn!(connection = %self.name, "a button press before the dispatcher was wired; ignored");
            return;
        };
        let container = actions.container.as_ref();
        let Some(channel) = container
            .and_then(|c| c.channel_id.clone())
            .or_else(|| actions.channel.as_ref().map(|c| c.id.clone()))
        else {
            return;
        };
        let message_ts = container
            .and_then(|c| c.message_ts.clone())
            .or_else(|| actions.message.as_ref().and_then(|m| m.ts.clone()));
        let thread = container
            .and_then(|c| c.thread_ts.clone())
            .or_else(|| actions.message.as_ref().and_then(|m| m.thread_ts.clone()));
        let user = ChatUser {
            connection: self.name.clone(),
            id: actions.user.id.clone(),
            name: [&actions.user.username, &actions.user.name]
                .into_iter()
                .flatten()
                .find(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| actions.user.id.clone()),
        };
        let kind = if channel.starts_with('D') {
            RoomKind::Direct
        } else {
            RoomKind::Group
        };
        let org = actions
            .team
            .as_ref()
            .map(|t| t.id.clone())
            .or_else(|| actions.user.team_id.clone());
        let room_name = actions
            .channel
            .as_ref()
            .and_then(|c| c.name.clone())
            .or_else(|| self.room_names.get(&channel).cloned());
        for action in &actions.actions {
            if !action.action_id.starts_with(ACTION_PREFIX) {
                continue;
            }
            // Slack retries an envelope it thinks was not acknowledged: one press, one answer.
            if let Some(ts) = &action.action_ts {
                if !self.first_sighting(format!("press:{}:{ts}", user.id)) {
                    continue;
                }
            }
            let Some(answer) = action.value.as_deref().and_then(ButtonAction::decode) else {
                tracing::debug!(connection = %self.name, "a button press without a readable answer; ignored");
                continue;
            };
            tracing::debug!(connection = %self.name, user = %user.id, action = %answer.describe(), "Slack answer button pressed");
            presses.do_send(ButtonPressed {
                user: user.clone(),
                room: Room {
                    connection: self.name.clone(),
                    id: channel.clone(),
                    kind,
                    thread: thread.clone(),
                },
                room_name: room_name.clone(),
                org: org.clone(),
                action: answer,
                origin: PressOrigin {
                    message_id: message_ts.clone(),
                    handle: 0,
                },
            });
        }
    }
}

impl Handles<UseButtonPresses> for Slack {
    type Reply = ();

    fn handle(&mut self, msg: UseButtonPresses, _fx: &mut Effects<Self>) {
        self.interactive.presses = Some(msg.0);
    }
}

impl Handles<OfferButtons> for Slack {
    type Reply = ();

    fn handle(&mut self, msg: OfferButtons, fx: &mut Effects<Self>) {
        let (dest, thread) = self.offer_dest(&msg.target);
        let blocks = self
            .interactive
            .presses
            .is_some()
            .then(|| offer_blocks(&msg))
            .flatten();
        let Some(blocks) = blocks else {
            return self.enqueue_text(dest, thread.as_deref(), &msg.fallback, fx);
        };
        // `text` is what notifications and clients without blocks show.
        let mut body =
            json!({"channel": "", "text": cut(&msg.fallback, MAX_SECTION_CHARS), "blocks": blocks});
        if let Some(ts) = &thread {
            body["thread_ts"] = json!(ts);
        }
        // Its `ts` goes back to the dispatcher, which updates it when the buttons are
        // spent without a press.
        fx.queue(Outgoing {
            dest,
            body,
            posted: msg.posted,
            part: None,
        });
    }
}

impl Handles<ButtonOutcome> for Slack {
    type Reply = ();

    fn handle(&mut self, msg: ButtonOutcome, fx: &mut Effects<Self>) {
        let channel = msg.room.id.clone();
        if !msg.accepted {
            let dest = Dest::Ephemeral {
                channel,
                user: msg.user.id.clone(),
            };
            return self.enqueue_text(dest, msg.room.thread.as_deref(), &msg.text, fx);
        }
        let Some(ts) = msg.origin.message_id.clone() else {
            return self.enqueue_text(
                Dest::Channel(channel),
                msg.room.thread.as_deref(),
                &msg.text,
                fx,
            );
        };
        // The buttons are spent: the message now says who answered what.
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": cut(&msg.text, MAX_SECTION_CHARS),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(&msg.text, MAX_SECTION_CHARS)}}],
        });
        let api = self.api();
        let bot = self.settings.bot_token.clone();
        fx.spawn(async move {
            let update = api.call::<ApiEnvelope>("chat.update", &bot, &body).await;
            Event::Updated {
                failed: update.err().map(|e| e.describe()),
                outcome: Box::new(msg),
            }
        });
    }
}

impl Slack {
    /// The end of a `chat.update` for an accepted press: when it failed, the answer is
    /// still said where everyone sees it.
    pub(super) fn updated(
        &self,
        failed: Option<String>,
        msg: ButtonOutcome,
        fx: &mut Effects<Self>,
    ) {
        if let Some(error) = failed {
            tracing::warn!(connection = %self.name, error = %error, "chat.update failed; posting the answer instead");
            self.enqueue_text(
                Dest::Channel(msg.room.id.clone()),
                msg.room.thread.as_deref(),
                &msg.text,
                fx,
            );
        }
    }
}

crate::platform_messages!(Slack: UseButtonPresses, OfferButtons, ButtonOutcome);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::buttons::Button;
    use crate::backends::buttons::{ButtonAction, InquiryAnswer};

    fn offer(values: &[(&str, Value)]) -> OfferButtons {
        OfferButtons {
            target: Target::User { id: "U1".into() },
            text: "Inquiry `abc`: continue?".into(),
            fallback: "Inquiry `abc`: continue?\nAnswer with `!st2answer abc continue=yes`.".into(),
            posted: None,
            buttons: values
                .iter()
                .map(|(label, v)| Button {
                    label: (*label).into(),
                    action: ButtonAction::Answer(InquiryAnswer {
                        inquiry_id: "abc".into(),
                        field: "continue".into(),
                        value: v.clone(),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn buttons_carry_their_answer_and_yes_stands_out() {
        let blocks = offer_blocks(&offer(&[("Yes", json!(true)), ("No", json!(false))])).unwrap();
        assert_eq!(blocks[0]["type"], "section");
        let elements = blocks[1]["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[0]["action_id"], "stormbridge.answer.0");
        assert_eq!(elements[1]["action_id"], "stormbridge.answer.1");
        assert_eq!(elements[0]["style"], "primary");
        assert!(elements[1].get("style").is_none());
        let answer = InquiryAnswer::decode(elements[1]["value"].as_str().unwrap()).unwrap();
        assert_eq!(answer.value, json!(false));
    }

    #[test]
    fn a_value_over_slacks_limit_means_no_buttons() {
        let long = "x".repeat(MAX_VALUE_CHARS);
        assert!(offer_blocks(&offer(&[("long", json!(long))])).is_none());
        assert!(offer_blocks(&offer(&[])).is_none());
    }
}
