//! Turning a message for Slack into `chat.postMessage` bodies.
//!
//! StackStorm's `extra` conventions (as hubot-stackstorm's Slack adapter applied them):
//! `extra.slack.attachments` or `extra.slack.blocks` are sent as given, with the text as the
//! notification fallback; other `extra.slack` keys are legacy attachment fields merged into
//! one attachment around the text; `extra.color` colours that attachment.
//! `thread_response` is a routing hint, never sent to Slack.
//!
//! A StackStorm message without `extra.slack` is laid out as hubot showed it
//! (`src/lib/messaging_handler/slack.js`): the text after `{~}` (all of it without one) in
//! an attachment coloured by outcome — `extra.color`, else the failure colour when the
//! message reports a failed execution, else the success colour — and the pretext, with the
//! mention of the person it is for, above it as the message text (where Slack notifies).

use serde_json::{json, Map, Value};

use super::config::ResultStyle;
use crate::domain::{
    announcement::Layout,
    chunk::{split_message, LengthUnit},
};

/// Keys of `extra.slack` that steer the bridge and are not Slack fields.
const ROUTING_KEYS: &[&str] = &["thread_response"];

/// A message to post: its plain text, StackStorm's hints and layout when it came from
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

/// The bodies to post, in order, for `message` in `channel` (and `thread_ts`).
pub fn post_bodies(
    channel: &str,
    thread_ts: Option<&str>,
    message: Outbound<'_>,
    style: &ResultStyle,
    limit: usize,
) -> Vec<Value> {
    let Outbound {
        text,
        extra,
        layout,
    } = message;
    let slack: Map<String, Value> = extra
        .and_then(|e| e.get("slack"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !ROUTING_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let color = extra
        .and_then(|e| e.get("color"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let base = |part: &str| {
        let mut body = Map::new();
        body.insert("channel".into(), json!(channel));
        body.insert("text".into(), json!(part));
        if let Some(ts) = thread_ts {
            body.insert("thread_ts".into(), json!(ts));
        }
        body
    };
    let parts = split_message(text, limit, LengthUnit::Chars);
    let verbatim = slack.contains_key("attachments") || slack.contains_key("blocks");
    if verbatim {
        // Text parts first; the structured content goes with the last part.
        let last = parts.len().saturating_sub(1);
        return parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let mut body = base(part);
                if i == last {
                    for (k, v) in &slack {
                        if k == "text" && !part.is_empty() {
                            continue;
                        }
                        if k == "channel" || k == "thread_ts" {
                            continue;
                        }
                        body.insert(k.clone(), v.clone());
                    }
                    if let (Some(c), Some(Value::Array(atts))) =
                        (color.as_ref(), body.get_mut("attachments"))
                    {
                        for a in atts.iter_mut().filter_map(Value::as_object_mut) {
                            a.entry("color").or_insert_with(|| json!(c));
                        }
                    }
                }
                Value::Object(body)
            })
            .collect();
    }
    if let Some(layout) = layout.filter(|l| style.attachments && !l.body.trim().is_empty()) {
        let color = color.unwrap_or_else(|| {
            if layout.failed {
                style.failure_color.clone()
            } else {
                style.success_color.clone()
            }
        });
        return split_message(&layout.body, limit, LengthUnit::Chars)
            .iter()
            .enumerate()
            .map(|(i, part)| {
                // hubot: colour and mrkdwn first, legacy `extra.slack` fields over them,
                // then the text.
                let mut attachment = Map::new();
                attachment.insert("color".into(), json!(color));
                attachment.insert("mrkdwn_in".into(), json!(["text", "pretext"]));
                attachment.extend(slack.clone());
                attachment.insert("text".into(), json!(part));
                attachment.insert("fallback".into(), json!(part));
                let mut body = base(if i == 0 { &layout.pretext } else { "" });
                if body.get("text").and_then(Value::as_str) == Some("") {
                    body.remove("text");
                }
                body.insert("attachments".into(), json!([attachment]));
                Value::Object(body)
            })
            .collect();
    }
    if slack.is_empty() && color.is_none() {
        return parts.iter().map(|p| Value::Object(base(p))).collect();
    }
    parts
        .iter()
        .map(|part| {
            let mut attachment = slack.clone();
            attachment.insert("text".into(), json!(part));
            attachment.entry("fallback").or_insert_with(|| json!(part));
            attachment
                .entry("mrkdwn_in")
                .or_insert_with(|| json!(["text", "pretext"]));
            if let Some(c) = &color {
                attachment.entry("color").or_insert_with(|| json!(c));
            }
            let mut body = base("");
            body.insert("attachments".into(), json!([attachment]));
            Value::Object(body)
        })
        .collect()
}

/// Whether `extra.slack.thread_response` asks for the reply in a thread.
pub fn wants_thread(extra: Option<&Value>) -> bool {
    extra
        .and_then(|e| e.pointer("/slack/thread_response"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain<'a>(text: &'a str, extra: Option<&'a Value>) -> Outbound<'a> {
        Outbound {
            text,
            extra,
            layout: None,
        }
    }

    fn style() -> ResultStyle {
        ResultStyle::default()
    }

    #[test]
    fn a_result_is_a_coloured_attachment_with_the_pretext_above_it() {
        let message = "<@U1>: Ran it{~}status : failed\nboom";
        let mut layout = Layout::of("Ran it{~}status : failed\nboom");
        layout.pretext = format!("<@U1>: {}", layout.pretext);
        let out = |extra| Outbound {
            text: message,
            extra,
            layout: Some(&layout),
        };
        let bodies = post_bodies("C1", Some("1.2"), out(None), &style(), 4000);
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["text"], "<@U1>: Ran it");
        assert_eq!(bodies[0]["thread_ts"], "1.2");
        let att = &bodies[0]["attachments"][0];
        assert_eq!(att["color"], "danger");
        assert_eq!(att["text"], "status : failed\nboom");
        // extra.color and legacy fields win, as in hubot.
        let extra = json!({"color": "#00ff00", "slack": {"title": "T"}});
        let bodies = post_bodies("C1", None, out(Some(&extra)), &style(), 4000);
        let att = &bodies[0]["attachments"][0];
        assert_eq!(
            (att["color"].as_str(), att["title"].as_str()),
            (Some("#00ff00"), Some("T"))
        );
        // A success is grey; without a pretext there is no top-level text.
        let ok = Layout::of("status : succeeded");
        let bodies = post_bodies(
            "C1",
            None,
            Outbound {
                text: "status : succeeded",
                extra: None,
                layout: Some(&ok),
            },
            &style(),
            4000,
        );
        assert_eq!(bodies[0]["attachments"][0]["color"], "#dfdfdf");
        assert!(bodies[0].get("text").is_none());
        // Turned off, or all pretext: plain text.
        let off = ResultStyle {
            attachments: false,
            ..style()
        };
        let bodies = post_bodies("C1", None, out(None), &off, 4000);
        assert!(bodies[0].get("attachments").is_none());
        assert_eq!(bodies[0]["text"], message);
    }

    #[test]
    fn a_long_result_is_split_and_only_the_first_part_carries_the_pretext() {
        let body = format!("{}\n{}", "a".repeat(150), "b".repeat(150));
        let mut layout = Layout::of(&body);
        layout.pretext = "<@U1>:".into();
        let bodies = post_bodies(
            "C1",
            None,
            Outbound {
                text: &body,
                extra: None,
                layout: Some(&layout),
            },
            &style(),
            200,
        );
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0]["text"], "<@U1>:");
        assert!(bodies[1].get("text").is_none());
        assert_eq!(bodies[1]["attachments"][0]["text"], "b".repeat(150));
    }

    #[test]
    fn plain_text_is_split_at_the_limit_in_its_thread() {
        let text = "a".repeat(150) + "\n" + &"b".repeat(150);
        let bodies = post_bodies("C1", Some("1.2"), plain(&text, None), &style(), 200);
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0]["text"], "a".repeat(150));
        assert_eq!(bodies[1]["text"], "b".repeat(150));
        assert!(bodies
            .iter()
            .all(|b| b["thread_ts"] == "1.2" && b["channel"] == "C1"));
    }

    #[test]
    fn legacy_fields_and_colour_make_one_attachment() {
        let extra = json!({"color": "#ff0000",
                           "slack": {"title": "Result", "thread_response": true}});
        let bodies = post_bodies("C1", None, plain("done", Some(&extra)), &style(), 4000);
        assert_eq!(bodies.len(), 1);
        let att = &bodies[0]["attachments"][0];
        assert_eq!(att["text"], "done");
        assert_eq!(att["color"], "#ff0000");
        assert_eq!(att["title"], "Result");
        assert!(att.get("thread_response").is_none());
        assert!(bodies[0].get("thread_ts").is_none());
        assert!(wants_thread(Some(&extra)));
    }

    #[test]
    fn blocks_and_attachments_are_sent_as_given() {
        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]);
        let extra = json!({"slack": {"blocks": blocks}});
        let bodies = post_bodies("C1", None, plain("hi", Some(&extra)), &style(), 4000);
        assert_eq!(bodies[0]["blocks"], blocks);
        assert_eq!(bodies[0]["text"], "hi");
        let extra = json!({"color": "good", "slack": {"attachments": [{"text": "x"}]}});
        let bodies = post_bodies("C1", None, plain("hi", Some(&extra)), &style(), 4000);
        assert_eq!(bodies[0]["attachments"][0]["color"], "good");
    }
}
