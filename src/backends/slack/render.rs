//! Turning a message for Slack into `chat.postMessage` bodies.
//!
//! StackStorm's `extra` conventions (as hubot-stackstorm's Slack adapter applied them):
//! `extra.slack.attachments` or `extra.slack.blocks` are sent as given, with the text as the
//! notification fallback; other `extra.slack` keys are legacy attachment fields merged into
//! one attachment around the text; `extra.color` colours that attachment.
//! `thread_response` is a routing hint, never sent to Slack.

use serde_json::{json, Map, Value};

use crate::domain::chunk::{split_message, LengthUnit};

/// Keys of `extra.slack` that steer the bridge and are not Slack fields.
const ROUTING_KEYS: &[&str] = &["thread_response"];

/// The bodies to post, in order, for `text` with `extra` in `channel` (and `thread_ts`).
pub fn post_bodies(
    channel: &str,
    thread_ts: Option<&str>,
    text: &str,
    extra: Option<&Value>,
    limit: usize,
) -> Vec<Value> {
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

    #[test]
    fn plain_text_is_split_at_the_limit_in_its_thread() {
        let text = "a".repeat(150) + "\n" + &"b".repeat(150);
        let bodies = post_bodies("C1", Some("1.2"), &text, None, 200);
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
        let bodies = post_bodies("C1", None, "done", Some(&extra), 4000);
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
        let bodies = post_bodies("C1", None, "hi", Some(&extra), 4000);
        assert_eq!(bodies[0]["blocks"], blocks);
        assert_eq!(bodies[0]["text"], "hi");
        let extra = json!({"color": "good", "slack": {"attachments": [{"text": "x"}]}});
        let bodies = post_bodies("C1", None, "hi", Some(&extra), 4000);
        assert_eq!(bodies[0]["attachments"][0]["color"], "good");
    }
}
