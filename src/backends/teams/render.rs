//! Messages for Teams as Bot Framework activities: text, StackStorm's results as Adaptive
//! Cards, a workflow's own card (`extra.teams`), and answer buttons.
//!
//! - Text: `{"type": "message", "text": …, "textFormat": "markdown"}` (Teams renders a subset
//!   of Markdown, code blocks included:
//!   <https://learn.microsoft.com/microsoftteams/platform/bots/how-to/format-your-bot-messages>).
//! - Cards: an attachment of content type `application/vnd.microsoft.card.adaptive` whose
//!   `content` is the card
//!   (<https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-reference#adaptive-card>);
//!   schema version 1.4, which every Teams client shows.
//! - A StackStorm message without `extra.teams` is laid out as hubot showed results: the
//!   pretext (with the mention of the person it is for) above, the rest in a container
//!   coloured by outcome (`attention` for a failed, timed-out or abandoned execution,
//!   `emphasis` otherwise), in a monospaced block.
//! - `extra.teams`: an Adaptive Card (`{"type": "AdaptiveCard", …}`), or `{"card": <card>}`,
//!   or `{"attachments": [...]}` sent as given; the text goes first, the card with the
//!   last part of it.
//!
//! Every activity stays within [`MAX_ACTIVITY_BYTES`] of JSON (Teams refuses bigger ones):
//! text is split at `max_message_length` characters, and a part whose activity is still
//! too big (many escaped or four-byte characters) is split again, smaller.

use serde_json::{json, Value};

use super::wire::ANSWER_KEY;
use crate::{
    backends::buttons::Button,
    domain::{
        announcement::Layout,
        chunk::{split_message, LengthUnit},
    },
};

/// Largest activity sent, in bytes of JSON: Teams' limit is about 28 KB
/// (<https://learn.microsoft.com/microsoftteams/platform/bots/how-to/format-your-bot-messages>).
pub const MAX_ACTIVITY_BYTES: usize = 28_000;

/// The content type of an Adaptive Card attachment.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

/// Smallest part a too-big part is split into again.
const MIN_PART: usize = 64;

/// A message to send: its plain text, StackStorm's hints and layout when it came from
/// StackStorm.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// The whole message as plain text.
    pub text: &'a str,
    /// StackStorm's `extra`.
    pub extra: Option<&'a Value>,
    /// StackStorm's `{~}` layout (`None` for the bridge's own replies).
    pub layout: Option<&'a Layout>,
}

/// The size of `activity` as sent.
pub fn size(activity: &Value) -> usize {
    serde_json::to_vec(activity).map_or(usize::MAX, |b| b.len())
}

/// A text message.
pub fn text_activity(text: &str) -> Value {
    json!({"type": "message", "text": text, "textFormat": "markdown"})
}

/// A message of `attachments` (with `text` above them, when not empty).
fn with_attachments(text: &str, attachments: Vec<Value>) -> Value {
    let mut a = json!({"type": "message", "attachments": attachments});
    if !text.is_empty() {
        a["text"] = json!(text);
        a["textFormat"] = json!("markdown");
    }
    a
}

/// An Adaptive Card of `body` elements and `actions`, as an attachment.
pub fn card_attachment(body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut card = json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = json!(actions);
    }
    json!({"contentType": ADAPTIVE_CARD, "content": card})
}

/// A wrapped text block.
fn text_block(text: &str) -> Value {
    json!({"type": "TextBlock", "text": text, "wrap": true})
}

/// `text` split at `limit` characters into activities `build` makes, each within
/// [`MAX_ACTIVITY_BYTES`] (parts that are not are split again, smaller).
fn fitted(text: &str, limit: usize, build: &dyn Fn(&str) -> Value) -> Vec<Value> {
    let mut out = Vec::new();
    for part in split_message(text, limit, LengthUnit::Chars) {
        if part.trim().is_empty() {
            continue;
        }
        let activity = build(&part);
        if size(&activity) > MAX_ACTIVITY_BYTES && limit > MIN_PART {
            out.extend(fitted(&part, limit / 2, build));
        } else {
            out.push(activity);
        }
    }
    out
}

/// The attachments a workflow gave in `extra.teams`, if any.
pub fn workflow_attachments(extra: Option<&Value>) -> Option<Vec<Value>> {
    let teams = extra?.get("teams")?;
    let is_card = |v: &Value| v.get("type").and_then(Value::as_str) == Some("AdaptiveCard");
    if is_card(teams) {
        return Some(vec![
            json!({"contentType": ADAPTIVE_CARD, "content": teams}),
        ]);
    }
    if let Some(card) = teams.get("card").filter(|c| is_card(c)) {
        return Some(vec![json!({"contentType": ADAPTIVE_CARD, "content": card})]);
    }
    let given: Vec<Value> = teams
        .get("attachments")?
        .as_array()?
        .iter()
        .filter(|a| a.get("contentType").and_then(Value::as_str).is_some())
        .cloned()
        .collect();
    (!given.is_empty()).then_some(given)
}

/// A StackStorm result as cards: the pretext above the first part, every part of the body
/// in a container coloured by outcome.
fn result_cards(layout: &Layout, limit: usize) -> Vec<Value> {
    let style = if layout.failed {
        "attention"
    } else {
        "emphasis"
    };
    let card = |pretext: Option<&str>, part: &str| {
        let mut body = Vec::new();
        if let Some(p) = pretext.filter(|p| !p.is_empty()) {
            body.push(text_block(p));
        }
        body.push(json!({"type": "Container", "style": style, "items": [
            {"type": "TextBlock", "text": part, "wrap": true, "fontType": "Monospace"}]}));
        with_attachments("", vec![card_attachment(body, Vec::new())])
    };
    let pretext_len = layout.pretext.chars().count();
    if layout.body.trim().is_empty() {
        return fitted(&layout.pretext, limit, &text_activity);
    }
    if pretext_len == 0 || pretext_len + 1 > limit / 2 {
        // No pretext, or one too long to share a card: it goes on its own first.
        let mut out = fitted(&layout.pretext, limit, &text_activity);
        out.extend(fitted(&layout.body, limit, &|part| card(None, part)));
        return out;
    }
    let mut parts = fitted(&layout.body, limit - pretext_len - 1, &|part| {
        card(None, part)
    });
    if let Some(first) = parts.first_mut() {
        let part = first
            .pointer("/attachments/0/content/body/0/items/0/text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let with_pretext = card(Some(&layout.pretext), &part);
        if size(&with_pretext) <= MAX_ACTIVITY_BYTES {
            *first = with_pretext;
        } else {
            parts.insert(0, text_activity(&layout.pretext));
        }
    }
    parts
}

/// The activities for `message`, in order: `cards` turns StackStorm's results into cards,
/// `limit` is the longest text part in characters.
pub fn activities(message: Outbound<'_>, cards: bool, limit: usize) -> Vec<Value> {
    if let Some(attachments) = workflow_attachments(message.extra) {
        let alone = with_attachments("", attachments.clone());
        if size(&alone) <= MAX_ACTIVITY_BYTES {
            let mut out = fitted(message.text, limit, &text_activity);
            match out.last_mut() {
                Some(last) => {
                    let text = last["text"].as_str().unwrap_or_default().to_owned();
                    let joined = with_attachments(&text, attachments);
                    if size(&joined) <= MAX_ACTIVITY_BYTES {
                        *last = joined;
                    } else {
                        out.push(alone);
                    }
                }
                None => out.push(alone),
            }
            return out;
        }
        tracing::warn!(
            bytes = size(&alone),
            "extra.teams is larger than Teams takes in one message; sending the text instead"
        );
    }
    match message.layout {
        Some(layout) if cards => result_cards(layout, limit),
        _ => fitted(message.text, limit, &text_activity),
    }
}

/// A card with `text` and one `Action.Submit` per button, or `None` when it would be too
/// big for one activity.
pub fn button_card(text: &str, buttons: &[Button]) -> Option<Value> {
    if buttons.is_empty() {
        return None;
    }
    let actions = buttons
        .iter()
        .map(|b| {
            let style = if b.action.is_affirmative() {
                "positive"
            } else {
                "default"
            };
            json!({"type": "Action.Submit", "title": b.label, "style": style,
                   "data": {ANSWER_KEY: b.action.encode()}})
        })
        .collect();
    let activity = with_attachments("", vec![card_attachment(vec![text_block(text)], actions)]);
    (size(&activity) <= MAX_ACTIVITY_BYTES).then_some(activity)
}

/// What replaces an answered button card: the outcome, and no buttons.
pub fn answered_card(text: &str) -> Value {
    let mut short: String = text.chars().take(super::config::MAX_TEXT_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    with_attachments(
        "",
        vec![card_attachment(vec![text_block(&short)], Vec::new())],
    )
}

/// Everything a person reads in `activity`: its text and the text of its cards' blocks,
/// one per line (for logs and tests).
pub fn readable_text(activity: &Value) -> String {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.get("type").and_then(Value::as_str) == Some("TextBlock") {
                    if let Some(t) = m.get("text").and_then(Value::as_str) {
                        out.push(t.to_owned());
                    }
                }
                for (k, x) in m {
                    if k != "text" {
                        collect(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(t) = activity.get("text").and_then(Value::as_str) {
        out.push(t.to_owned());
    }
    if let Some(a) = activity.get("attachments") {
        collect(a, &mut out);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::buttons::{ButtonAction, InquiryAnswer};

    fn plain(text: &str) -> Outbound<'_> {
        Outbound {
            text,
            extra: None,
            layout: None,
        }
    }

    #[test]
    fn text_is_split_at_the_limit_and_every_activity_fits() {
        let text = "word ".repeat(400);
        let parts = activities(plain(&text), true, 300);
        assert!(parts.len() >= 6, "{}", parts.len());
        for p in &parts {
            assert_eq!(p["type"], "message");
            assert!(p["text"].as_str().unwrap().chars().count() <= 300);
        }
        // Four-byte characters and escaped control characters: split again to fit.
        let wide = "\u{1F600}\u{0001}".repeat(6000);
        let parts = activities(plain(&wide), true, 6500);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| size(p) <= MAX_ACTIVITY_BYTES));
        let joined: String = parts.iter().map(|p| p["text"].as_str().unwrap()).collect();
        assert_eq!(joined, wide);
        assert!(activities(plain("  "), true, 300).is_empty());
    }

    #[test]
    fn results_are_cards_coloured_by_outcome_with_the_pretext_on_top() {
        let layout = Layout::of("Alice: here you go{~}status : failed\nresult: 1");
        let msg = Outbound {
            text: "unused",
            extra: None,
            layout: Some(&layout),
        };
        let parts = activities(msg, true, 300);
        assert_eq!(parts.len(), 1);
        let card = &parts[0]["attachments"][0];
        assert_eq!(card["contentType"], ADAPTIVE_CARD);
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["text"], "Alice: here you go");
        assert_eq!(card["content"]["body"][1]["style"], "attention");
        assert_eq!(
            readable_text(&parts[0]),
            "Alice: here you go\nstatus : failed\nresult: 1"
        );
        // Turned off: plain text.
        let parts = activities(msg, false, 300);
        assert_eq!(parts[0]["text"], "unused");
        // A long body: every card within the limit, the pretext only on the first.
        let long = Layout::of(&format!("hi{{~}}{}", "line of output\n".repeat(100)));
        let msg = Outbound {
            text: "",
            extra: None,
            layout: Some(&long),
        };
        let parts = activities(msg, true, 300);
        assert!(parts.len() > 3);
        assert!(parts
            .iter()
            .all(|p| readable_text(p).chars().count() <= 300));
        assert!(readable_text(&parts[0]).starts_with("hi\n"));
        assert!(!readable_text(&parts[1]).starts_with("hi\n"));
    }

    #[test]
    fn a_workflows_card_goes_with_the_last_part_of_the_text() {
        let card = json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "custom"}]});
        for extra in [
            json!({"teams": card}),
            json!({"teams": {"card": card}}),
            json!({"teams": {"attachments": [{"contentType": ADAPTIVE_CARD, "content": card}]}}),
        ] {
            let msg = Outbound {
                text: "deployed",
                extra: Some(&extra),
                layout: None,
            };
            let parts = activities(msg, true, 300);
            assert_eq!(parts.len(), 1, "{extra}");
            assert_eq!(parts[0]["text"], "deployed");
            assert_eq!(parts[0]["attachments"][0]["content"], card);
        }
        let extra = json!({"teams": {"other": 1}});
        assert_eq!(workflow_attachments(Some(&extra)), None);
        let huge = json!({"teams": {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "x".repeat(40_000)}]}});
        let msg = Outbound {
            text: "fallback",
            extra: Some(&huge),
            layout: None,
        };
        let parts = activities(msg, true, 300);
        assert_eq!(parts, vec![text_activity("fallback")]);
    }

    #[test]
    fn answer_buttons_are_submit_actions_carrying_the_answer() {
        let answer = InquiryAnswer {
            inquiry_id: "i1".into(),
            field: "continue".into(),
            value: json!(true),
        };
        let buttons = vec![
            Button {
                label: "Yes".into(),
                action: ButtonAction::Answer(answer.clone()),
            },
            Button {
                label: "No".into(),
                action: ButtonAction::Answer(InquiryAnswer {
                    value: json!(false),
                    ..answer.clone()
                }),
            },
        ];
        let a = button_card("Continue?", &buttons).unwrap();
        let actions = &a["attachments"][0]["content"]["actions"];
        assert_eq!(actions[0]["type"], "Action.Submit");
        assert_eq!(actions[0]["style"], "positive");
        assert_eq!(
            InquiryAnswer::decode(actions[0]["data"][ANSWER_KEY].as_str().unwrap()),
            Some(answer)
        );
        assert_eq!(actions[1]["title"], "No");
        assert!(button_card("x", &[]).is_none());
        assert!(button_card(&"y".repeat(30_000), &buttons).is_none());
        let done = answered_card("alice answered continue=true");
        assert!(done["attachments"][0]["content"].get("actions").is_none());
    }
}
