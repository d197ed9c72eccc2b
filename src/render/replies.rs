//! Replies in the team's own words (`[replies]`): per outcome — the acknowledgement, a
//! success (a local command's or a StackStorm execution's result), a failure, an unknown
//! command, a refusal by the access rules —
//! a list of handlebars messages picked at random, a style (plain text, a card where the
//! platform has attachments, or no reply at all) and a colour.
//!
//! A message sees the same data as the built-in template it stands in for (`ack.hbs`,
//! `error.hbs`, `no_match.hbs`, `denied.hbs`, `local_result.hbs`), and `{{default}}`: what
//! the built-in template says. Every message is compiled when the configuration is loaded,
//! so a typo stops the bridge at start with the key that holds it, not a user's command.

use std::collections::BTreeMap;

use handlebars::Handlebars;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::announcement::Layout;

/// The outcomes a reply can be configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// StackStorm accepted the command (`ack.hbs`).
    Ack,
    /// A local command succeeded (`local_result.hbs`), or a StackStorm execution did (its
    /// announced result is `{{default}}`).
    Success,
    /// The command failed or was not run: StackStorm refused it, a local command or a
    /// StackStorm execution failed (`error.hbs`, `local_result.hbs`, the announced result).
    Failure,
    /// No alias matches (`no_match.hbs`).
    Unknown,
    /// The access rules refused it (`denied.hbs`).
    Unauthorised,
}

impl Outcome {
    /// Every outcome, with its `[replies]` key.
    pub const ALL: [(Outcome, &'static str); 5] = [
        (Outcome::Ack, "ack"),
        (Outcome::Success, "success"),
        (Outcome::Failure, "failure"),
        (Outcome::Unknown, "unknown"),
        (Outcome::Unauthorised, "unauthorised"),
    ];
}

/// How a reply is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Plain text (the default).
    #[default]
    Text,
    /// An attachment-like card with the colour, where the platform has them (Slack,
    /// Mattermost, Rocket.Chat); plain text elsewhere.
    Card,
    /// No reply.
    Off,
}

/// One outcome's `[replies.<outcome>]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeConfig {
    /// `text`, `card` or `off`.
    #[serde(default)]
    pub style: Style,
    /// Handlebars messages; one is picked at random. Empty: the built-in template.
    #[serde(default)]
    pub messages: Vec<String>,
    /// The card's colour: `#rrggbb`, or `good`, `warning`, `danger`.
    #[serde(default)]
    pub color: Option<String>,
}

/// `[replies]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepliesConfig {
    /// `[replies.ack]`.
    #[serde(default)]
    pub ack: OutcomeConfig,
    /// `[replies.success]`.
    #[serde(default)]
    pub success: OutcomeConfig,
    /// `[replies.failure]`.
    #[serde(default)]
    pub failure: OutcomeConfig,
    /// `[replies.unknown]`.
    #[serde(default)]
    pub unknown: OutcomeConfig,
    /// `[replies.unauthorised]`.
    #[serde(default)]
    pub unauthorised: OutcomeConfig,
}

impl RepliesConfig {
    fn get(&self, outcome: Outcome) -> &OutcomeConfig {
        match outcome {
            Outcome::Ack => &self.ack,
            Outcome::Success => &self.success,
            Outcome::Failure => &self.failure,
            Outcome::Unknown => &self.unknown,
            Outcome::Unauthorised => &self.unauthorised,
        }
    }
}

/// A problem in `[replies]`, with the key that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyProblem {
    /// `replies.ack.messages[1]`, `replies.failure.color`.
    pub key: String,
    /// Why.
    pub reason: String,
}

struct Compiled {
    style: Style,
    messages: usize,
    color: Option<String>,
}

/// The compiled `[replies]`.
pub struct Replies {
    by_outcome: BTreeMap<Outcome, Compiled>,
    templates: Handlebars<'static>,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("outcomes", &self.by_outcome.len())
            .finish_non_exhaustive()
    }
}

impl Default for Replies {
    /// The built-in words, as plain text.
    fn default() -> Self {
        Self::new(&RepliesConfig::default()).unwrap_or_else(|_| Self {
            by_outcome: BTreeMap::new(),
            templates: Handlebars::new(),
        })
    }
}

/// What to send for a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct StyledReply {
    /// The text.
    pub text: String,
    /// A card's layout (`None`: plain text).
    pub layout: Option<Layout>,
    /// `{"color": …}` for a card with a colour.
    pub extra: Option<Value>,
}

fn valid_color(color: &str) -> bool {
    matches!(color, "good" | "warning" | "danger")
        || (color.len() == 7
            && color.starts_with('#')
            && color[1..].chars().all(|c| c.is_ascii_hexdigit()))
}

fn name(outcome: Outcome, index: usize) -> String {
    format!("{outcome:?}.{index}")
}

impl Replies {
    /// Compiles `config`; every problem is reported.
    pub fn new(config: &RepliesConfig) -> Result<Self, Vec<ReplyProblem>> {
        let mut templates = Handlebars::new();
        templates.register_escape_fn(handlebars::no_escape);
        let mut problems = Vec::new();
        let mut by_outcome = BTreeMap::new();
        for (outcome, key) in Outcome::ALL {
            let c = config.get(outcome);
            for (i, message) in c.messages.iter().enumerate() {
                if message.trim().is_empty() {
                    problems.push(ReplyProblem {
                        key: format!("replies.{key}.messages[{i}]"),
                        reason: "is empty (use style = \"off\" for no reply)".to_owned(),
                    });
                    continue;
                }
                if let Err(e) = templates.register_template_string(&name(outcome, i), message) {
                    problems.push(ReplyProblem {
                        key: format!("replies.{key}.messages[{i}]"),
                        reason: format!("is not a valid handlebars template: {e}"),
                    });
                }
            }
            if let Some(color) = &c.color {
                if !valid_color(color) {
                    problems.push(ReplyProblem {
                        key: format!("replies.{key}.color"),
                        reason: format!(
                            "`{color}` is not a colour: use #rrggbb, good, warning or danger"
                        ),
                    });
                }
            }
            by_outcome.insert(
                outcome,
                Compiled {
                    style: c.style,
                    messages: c.messages.len(),
                    color: c.color.clone(),
                },
            );
        }
        if problems.is_empty() {
            Ok(Self {
                by_outcome,
                templates,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether `[replies]` changes anything for `outcome` (its own messages, a card, or
    /// off): without, a StackStorm result is posted exactly as StackStorm wrote it.
    pub fn rewords(&self, outcome: Outcome) -> bool {
        self.by_outcome
            .get(&outcome)
            .is_some_and(|c| c.messages > 0 || c.style != Style::Text)
    }

    /// The reply for `outcome`: `default` is what the built-in template said, `data` what
    /// it was rendered with. `None`: the outcome's style is `off`.
    pub fn styled(&self, outcome: Outcome, default: String, data: &Value) -> Option<StyledReply> {
        let Some(c) = self.by_outcome.get(&outcome) else {
            return Some(StyledReply {
                text: default,
                layout: None,
                extra: None,
            });
        };
        if c.style == Style::Off {
            return None;
        }
        let text = if c.messages == 0 {
            default
        } else {
            let mut data = data.clone();
            if let Value::Object(map) = &mut data {
                map.insert("default".to_owned(), json!(default));
            }
            let pick = fastrand::usize(..c.messages);
            match self.templates.render(&name(outcome, pick), &data) {
                Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
                Ok(_) => default,
                Err(e) => {
                    tracing::warn!(outcome = ?outcome, error = %e, "a configured reply failed; using the built-in one");
                    default
                }
            }
        };
        let (layout, extra) = match c.style {
            Style::Card => (
                Some(Layout {
                    pretext: String::new(),
                    body: text.clone(),
                    failed: matches!(
                        outcome,
                        Outcome::Failure | Outcome::Unknown | Outcome::Unauthorised
                    ),
                }),
                c.color.as_ref().map(|color| json!({ "color": color })),
            ),
            _ => (None, None),
        };
        Some(StyledReply {
            text,
            layout,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(toml_text: &str) -> Result<Replies, Vec<ReplyProblem>> {
        let config: RepliesConfig = toml::from_str(toml_text).expect("toml");
        Replies::new(&config)
    }

    #[test]
    fn without_configuration_the_built_in_words_are_plain_text() {
        let r = Replies::default();
        let reply = r
            .styled(Outcome::Ack, "Started.".into(), &json!({}))
            .expect("a reply");
        assert_eq!(reply.text, "Started.");
        assert_eq!(reply.layout, None);
    }

    #[test]
    fn messages_are_picked_from_the_list_and_see_the_templates_data() {
        let r = replies(
            r#"
            [ack]
            messages = ["On it, {{command}}!", "Roger: {{default}}"]
            "#,
        )
        .expect("valid");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let reply = r
                .styled(
                    Outcome::Ack,
                    "Started.".into(),
                    &json!({"command": "run date"}),
                )
                .expect("a reply");
            seen.insert(reply.text);
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            vec!["On it, run date!".to_owned(), "Roger: Started.".to_owned()]
        );
    }

    #[test]
    fn a_card_carries_its_colour_and_off_says_nothing() {
        let r = replies(
            r##"
            [unauthorised]
            style = "card"
            color = "#aa0000"
            [unknown]
            style = "off"
            "##,
        )
        .expect("valid");
        let reply = r
            .styled(Outcome::Unauthorised, "No.".into(), &json!({}))
            .expect("a reply");
        assert_eq!(reply.extra, Some(json!({"color": "#aa0000"})));
        assert_eq!(reply.layout.as_ref().map(|l| l.body.as_str()), Some("No."));
        assert!(reply.layout.is_some_and(|l| l.failed));
        assert_eq!(r.styled(Outcome::Unknown, "?".into(), &json!({})), None);
    }

    #[test]
    fn mistakes_are_reported_with_their_keys() {
        let problems = replies(
            r#"
            [ack]
            messages = ["{{#if}}", ""]
            [failure]
            color = "red"
            "#,
        )
        .expect_err("invalid");
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "replies.ack.messages[0]",
                "replies.ack.messages[1]",
                "replies.failure.color"
            ]
        );
        assert!(toml::from_str::<RepliesConfig>("[ack]\nstyle = \"loud\"").is_err());
        assert!(toml::from_str::<RepliesConfig>("[ack]\ncolour = \"good\"").is_err());
    }
}
