//! Webex REST shapes (<https://developer.webex.com/docs/api/v1/>): webhook deliveries,
//! messages, people, webhooks and attachment actions, typed; how a message becomes an
//! [`InboundMessage`]; the plan that brings the bot's webhooks to what the bridge needs;
//! and how a reply is split. Pure functions, unit- and property-tested without a server.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{
    chunk::{split_message, LengthUnit},
    message::{ChatUser, InboundMessage, Room, RoomKind},
};

/// A webhook delivery's body ("Handling Requests from Webex",
/// <https://developer.webex.com/docs/webhooks>): the webhook's own fields and, in `data`, the
/// resource that changed — for messages and attachment actions only their ids, never their
/// content.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The webhook's id.
    #[serde(default)]
    pub id: String,
    /// The webhook's name.
    #[serde(default)]
    pub name: String,
    /// `messages`, `attachmentActions`, …
    #[serde(default)]
    pub resource: String,
    /// `created`, `deleted`, …
    #[serde(default)]
    pub event: String,
    /// The resource's ids.
    #[serde(default)]
    pub data: DeliveryData,
}

/// `data` of a delivery (the fields the bridge reads; others are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryData {
    /// The message's (or the attachment action's) id.
    #[serde(default)]
    pub id: String,
    /// The room.
    #[serde(default)]
    pub room_id: String,
    /// `direct` or `group` (messages).
    #[serde(default)]
    pub room_type: String,
    /// The author (or the person who pressed).
    #[serde(default)]
    pub person_id: String,
    /// The author's email (messages).
    #[serde(default)]
    pub person_email: String,
    /// The message a card was on (attachment actions).
    #[serde(default)]
    pub message_id: String,
}

/// What a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// `messages` / `created`: a message to fetch.
    Message,
    /// `attachmentActions` / `created`: a card's button was pressed.
    Action,
    /// Anything else (the bridge registers nothing else, but says nothing about it).
    Other,
}

impl Delivery {
    /// Reads a delivery's body; `None` for anything that is not one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// What it is about.
    pub fn hook(&self) -> Hook {
        match (self.resource.as_str(), self.event.as_str()) {
            (MESSAGES, CREATED) => Hook::Message,
            (ATTACHMENT_ACTIONS, CREATED) => Hook::Action,
            _ => Hook::Other,
        }
    }
}

/// A message, as `GET /messages/{id}` answers
/// (<https://developer.webex.com/docs/api/v1/messages/get-message-details>).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// The message it is a reply to (a thread's first message), if any.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// The room.
    #[serde(default)]
    pub room_id: String,
    /// `direct` (1:1) or `group`.
    #[serde(default)]
    pub room_type: String,
    /// Plain text.
    #[serde(default)]
    pub text: Option<String>,
    /// Markdown, when the author formatted it.
    #[serde(default)]
    pub markdown: Option<String>,
    /// HTML as the clients render it (mentions are `<spark-mention>` elements).
    #[serde(default)]
    pub html: Option<String>,
    /// The author.
    #[serde(default)]
    pub person_id: String,
    /// The author's email.
    #[serde(default)]
    pub person_email: String,
    /// People mentioned.
    #[serde(default)]
    pub mentioned_people: Vec<String>,
}

impl Message {
    /// Reads `GET /messages/{id}`'s answer; `None` for anything else.
    pub fn parse(body: &Value) -> Option<Self> {
        Self::deserialize(body).ok()
    }
}

/// A person, as `GET /people/me` and `GET /people/{id}` answer
/// (<https://developer.webex.com/docs/api/v1/people/get-my-own-details>).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Their id.
    #[serde(default)]
    pub id: String,
    /// Their email addresses.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Full name.
    #[serde(default)]
    pub display_name: String,
    /// Nickname.
    #[serde(default)]
    pub nick_name: String,
    /// First name.
    #[serde(default)]
    pub first_name: String,
}

impl Person {
    /// The name to show, as for a message's author: the first email, else the display
    /// name, else the id.
    pub fn shown_name(&self) -> String {
        self.emails
            .first()
            .into_iter()
            .chain([&self.display_name, &self.nick_name])
            .find(|n| !n.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| self.id.clone())
    }
}

/// The bot, as the connection knows it from `GET /people/me`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Me {
    /// Its person id.
    pub id: String,
    /// The same person in the short form mentions may carry: the last segment of the id
    /// decoded (`ciscospark://us/PEOPLE/<uuid>`), when it decodes.
    pub short_id: Option<String>,
    /// Its names as people type them after `@` (display name, nickname, first name).
    pub names: Vec<String>,
    /// Its first email address (`…@webex.bot`).
    pub email: String,
}

impl Me {
    /// The bot from its `Person`.
    pub fn from_person(p: &Person) -> Self {
        let mut names: Vec<String> = Vec::new();
        for n in [&p.display_name, &p.nick_name, &p.first_name] {
            let n = n.trim();
            if !n.is_empty() && !names.iter().any(|x| x == n) {
                names.push(n.to_owned());
            }
        }
        Self {
            id: p.id.clone(),
            short_id: short_id(&p.id),
            names,
            email: p.emails.first().cloned().unwrap_or_default(),
        }
    }

    /// Whether `id` names the bot (in either form).
    pub fn is(&self, id: &str) -> bool {
        !id.is_empty() && (id == self.id || self.short_id.as_deref() == Some(id))
    }
}

/// What a Webex id says when decoded: ids are base64 of `ciscospark://<region>/<KIND>/<uuid>`.
fn decoded(id: &str) -> Option<String> {
    let id = id.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(id)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id))
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// `Y2lzY29zcGFyazovL3VzL1BFT1BMRS9…` → the uuid after the last `/` of what it decodes to.
fn short_id(id: &str) -> Option<String> {
    let text = decoded(id)?;
    let last = text.rsplit('/').next()?;
    (!last.is_empty() && text.contains('/')).then(|| last.to_owned())
}

/// Whether `id` is a Webex person id (one that decodes to `ciscospark://…/PEOPLE/…`).
pub fn is_person_id(id: &str) -> bool {
    decoded(id).is_some_and(|t| t.starts_with("ciscospark://") && t.contains("/PEOPLE/"))
}

/// Webex bots' addresses: `…@webex.bot`, and the `…@sparkbot.io` of bots made before the
/// rename ("Bots", <https://developer.webex.com/docs/bots>).
pub fn is_bot_email(email: &str) -> bool {
    let e = email.trim().to_ascii_lowercase();
    e.ends_with("@webex.bot") || e.ends_with("@sparkbot.io")
}

/// What the connection knows when it maps a message.
pub struct Mapping<'a> {
    /// The `[[chat]]` name.
    pub connection: &'a str,
    /// The bot.
    pub me: &'a Me,
    /// Start a thread under a command that is not in one.
    pub reply_in_thread: bool,
}

/// Why a message was not turned into a chat message (for debug logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// No id, author or room.
    Malformed,
    /// The bridge's own message.
    Own,
    /// Another bot's message.
    Bot,
    /// Nothing to read.
    Empty,
}

/// Maps a fetched message to a chat message: the author's person id as the user (their
/// email as the name), the room and its kind, the thread (`parentId`, or with
/// `reply_in_thread` the message itself), and the text with a leading mention of the bot
/// stripped.
pub fn message_to_inbound(msg: &Message, m: &Mapping<'_>) -> Result<InboundMessage, Skip> {
    if msg.id.trim().is_empty() || msg.room_id.trim().is_empty() || msg.person_id.trim().is_empty()
    {
        return Err(Skip::Malformed);
    }
    if m.me.is(&msg.person_id) || (!m.me.email.is_empty() && msg.person_email == m.me.email) {
        return Err(Skip::Own);
    }
    if is_bot_email(&msg.person_email) {
        return Err(Skip::Bot);
    }
    // The plain text is what people typed; markdown only when there is no plain text.
    let text = msg
        .text
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .or(msg.markdown.as_deref())
        .unwrap_or_default();
    let (mentioned, text) = strip_mention(text, msg.html.as_deref(), m.me);
    if text.trim().is_empty() && !mentioned {
        return Err(Skip::Empty);
    }
    let kind = match msg.room_type.as_str() {
        "direct" => RoomKind::Direct,
        _ => RoomKind::Group,
    };
    let thread = match msg.parent_id.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(parent) => Some(parent.to_owned()),
        None if m.reply_in_thread => Some(msg.id.clone()),
        None => None,
    };
    let name = Some(msg.person_email.trim())
        .filter(|e| !e.is_empty())
        .unwrap_or(&msg.person_id)
        .to_owned();
    Ok(InboundMessage {
        user: ChatUser {
            connection: m.connection.to_owned(),
            id: msg.person_id.clone(),
            name,
        },
        room: Room {
            connection: m.connection.to_owned(),
            id: msg.room_id.clone(),
            kind,
            thread,
        },
        text: text.to_owned(),
        message_id: Some(msg.id.clone()),
        mentioned,
        room_name: None,
        org: None,
    })
}

/// Strips a leading mention of the bot from `text`; returns whether there was one.
///
/// A mention is a `<spark-mention data-object-type="person" data-object-id="…">name
/// </spark-mention>` element in the message's `html`, shown in `text` as the name the author
/// left (the bot's display name, or part of it). The mention counts when it is the first
/// thing in the message and names the bot; without `html`, a leading name of the bot's
/// counts.
pub fn strip_mention<'a>(text: &'a str, html: Option<&str>, me: &Me) -> (bool, &'a str) {
    let trimmed = text.trim_start();
    let shown = html.and_then(|h| leading_mention(h, me));
    let names = shown.iter().chain(me.names.iter());
    for name in names {
        if let Some(rest) = strip_name(trimmed, name) {
            return (true, rest);
        }
    }
    (false, text)
}

/// `name` at the start of `text` (any case), as a whole word: what follows it.
fn strip_name<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let head = text.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let after = &text[name.len()..];
    if after.is_empty() || after.starts_with(|c: char| c.is_whitespace() || c == ':' || c == ',') {
        Some(after.trim_start_matches([':', ',']).trim_start())
    } else {
        None
    }
}

/// The text of the `<spark-mention>` that starts `html` (after any opening block tags),
/// when it mentions the bot.
fn leading_mention(html: &str, me: &Me) -> Option<String> {
    let mut rest = html.trim_start();
    // Skip opening block tags (`<p>`, `<div>`) before the first text.
    while !rest.starts_with("<spark-mention") {
        let after = rest.strip_prefix('<')?;
        let end = after.find('>')?;
        let name = after[..end]
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        if !matches!(name.to_ascii_lowercase().as_str(), "p" | "div" | "span") {
            return None;
        }
        rest = after[end + 1..].trim_start();
    }
    let open_end = rest.find('>')?;
    let open = &rest[..open_end];
    let attr = |key: &str| -> Option<&str> {
        let at = open.find(&format!("{key}=\""))? + key.len() + 2;
        let value = &open[at..];
        Some(&value[..value.find('"')?])
    };
    if attr("data-object-type") != Some("person") || !me.is(attr("data-object-id")?) {
        return None;
    }
    let inner = &rest[open_end + 1..];
    let inner = &inner[..inner.find("</spark-mention>")?];
    Some(unescape_html(inner))
}

/// The few entities Webex's html uses.
fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A reply as message parts within `limit` bytes (Webex counts bytes); blank parts are
/// dropped.
pub fn parts(text: &str, limit: usize) -> Vec<String> {
    split_message(text, limit, LengthUnit::Bytes)
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect()
}

/// The longest prefix of `text` within `limit` bytes, cut on a character boundary.
pub fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How long a `Retry-After` header (on a 429, or a 423 Locked) says to wait: whole or
/// fractional seconds, or an HTTP date (`now_unix` for the latter), capped at an hour;
/// `None` when there is no usable header ("REST API Basics", "Rate Limiting":
/// <https://developer.webex.com/docs/basics>).
pub fn retry_after(value: Option<&str>, now_unix: i64) -> Option<std::time::Duration> {
    let value = value?.trim();
    let secs = match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => s,
        Ok(_) => return None,
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value)
                .ok()?
                .timestamp();
            at.saturating_sub(now_unix).max(0) as f64
        }
    };
    Some(std::time::Duration::from_secs_f64(secs.min(3600.0)))
}

// ----- The bot's webhooks ------------------------------------------------------------------

/// `resource` of message webhooks.
pub const MESSAGES: &str = "messages";
/// `resource` of card-press webhooks.
pub const ATTACHMENT_ACTIONS: &str = "attachmentActions";
/// The `event` the bridge listens for.
pub const CREATED: &str = "created";
/// The webhooks the bridge needs, as `(resource, event)`.
pub const WANTED: [(&str, &str); 2] = [(MESSAGES, CREATED), (ATTACHMENT_ACTIONS, CREATED)];

/// A webhook, as `GET /webhooks` lists it
/// (<https://developer.webex.com/docs/api/v1/webhooks/list-webhooks>).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Where it delivers.
    #[serde(default)]
    pub target_url: String,
    /// What it watches.
    #[serde(default)]
    pub resource: String,
    /// Which event.
    #[serde(default)]
    pub event: String,
    /// Its filter, if any.
    #[serde(default)]
    pub filter: Option<String>,
    /// Its secret, if it has one.
    #[serde(default)]
    pub secret: Option<String>,
    /// `active` or `inactive` (Webex disables a webhook whose deliveries keep failing).
    #[serde(default)]
    pub status: Option<String>,
}

/// What the bridge's webhooks must be.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Their name: webhooks of this name are the bridge's; all others are left alone.
    pub name: &'a str,
    /// `<public_url>/webex/events/<connection>`.
    pub target_url: &'a str,
    /// The configured webhook secret.
    pub secret: &'a str,
}

/// One change to the bot's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `POST /webhooks` for this resource and event.
    Create {
        resource: &'static str,
        event: &'static str,
    },
    /// `PUT /webhooks/{id}`: the right target and secret, active again.
    Update { id: String },
    /// `DELETE /webhooks/{id}`: a duplicate, or one that cannot be updated into shape (a
    /// filter cannot be changed).
    Delete { id: String },
}

impl Wanted<'_> {
    fn matches(&self, w: &Webhook) -> bool {
        w.target_url == self.target_url
            && w.secret.as_deref() == Some(self.secret)
            && w.status.as_deref().is_none_or(|s| s == "active")
            && w.filter.as_deref().is_none_or(str::is_empty)
    }
}

/// The steps that make the bot's webhooks, `existing`, what `wanted` says: for each needed
/// resource and event, one webhook of the bridge's name with the right target, secret and
/// no filter, active. A missing one is created; a wrong one updated (or, with a filter,
/// deleted and created anew); duplicates deleted. Webhooks of other names are never
/// touched. Deletions come first, so that a recreated webhook never doubles deliveries.
pub fn plan(existing: &[Webhook], wanted: &Wanted<'_>) -> Vec<Step> {
    let mut deletes = Vec::new();
    let mut rest = Vec::new();
    for (resource, event) in WANTED {
        let mut mine: Vec<&Webhook> = existing
            .iter()
            .filter(|w| w.name == wanted.name && w.resource == resource && w.event == event)
            .collect();
        // Keep one that is already right, else one that can be updated (no filter).
        mine.sort_by_key(|w| {
            (
                !wanted.matches(w),
                !w.filter.as_deref().is_none_or(str::is_empty),
            )
        });
        let mut mine = mine.into_iter();
        match mine.next() {
            None => rest.push(Step::Create { resource, event }),
            Some(w) if wanted.matches(w) => {}
            Some(w) if w.filter.as_deref().is_none_or(str::is_empty) => {
                rest.push(Step::Update { id: w.id.clone() })
            }
            Some(w) => {
                deletes.push(Step::Delete { id: w.id.clone() });
                rest.push(Step::Create { resource, event });
            }
        }
        deletes.extend(mine.map(|w| Step::Delete { id: w.id.clone() }));
    }
    deletes.extend(rest);
    deletes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> Me {
        Me::from_person(&Person {
            id: BOT.into(),
            emails: vec!["stormbot@webex.bot".into()],
            display_name: "StormBot".into(),
            nick_name: "StormBot".into(),
            first_name: String::new(),
        })
    }

    /// `ciscospark://us/PEOPLE/00000000-0000-4000-8000-000000000b07`, base64 as Webex writes ids.
    const BOT: &str =
        "Y2lzY29zcGFyazovL3VzL1BFT1BMRS8wMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDBiMDc";
    const ALICE: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ";

    /// A message as "Get Message Details" documents it, in a group room, mentioning the bot.
    fn group_message() -> Value {
        json!({
            "id": "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvbTE",
            "roomId": "Y2lzY29zcGFyazovL3VzL1JPT00vb3Bz",
            "roomType": "group",
            "text": "StormBot !st2 run date",
            "html": format!("<p><spark-mention data-object-type=\"person\" data-object-id=\"{BOT}\">StormBot</spark-mention> !st2 run date</p>"),
            "personId": ALICE,
            "personEmail": "alice@example.com",
            "mentionedPeople": [BOT],
            "created": "2024-01-01T00:00:00.000Z",
        })
    }

    fn map(v: &Value, reply_in_thread: bool) -> Result<InboundMessage, Skip> {
        let me = me();
        let m = Mapping {
            connection: "wx",
            me: &me,
            reply_in_thread,
        };
        message_to_inbound(&Message::parse(v).expect("a message"), &m)
    }

    #[test]
    fn a_group_message_becomes_a_command_without_the_mention() {
        let msg = map(&group_message(), false).unwrap();
        assert_eq!(msg.user.id, ALICE);
        assert_eq!(msg.user.name, "alice@example.com");
        assert_eq!(msg.user.connection, "wx");
        assert_eq!(msg.room.id, "Y2lzY29zcGFyazovL3VzL1JPT00vb3Bz");
        assert_eq!(msg.room.kind, RoomKind::Group);
        assert_eq!(msg.room.thread, None);
        assert!(msg.mentioned);
        assert_eq!(msg.text, "!st2 run date");
        assert_eq!(
            msg.message_id.as_deref(),
            Some("Y2lzY29zcGFyazovL3VzL01FU1NBR0UvbTE")
        );
    }

    #[test]
    fn threads_direct_rooms_and_reply_in_thread() {
        let mut v = group_message();
        v["parentId"] = json!("P1");
        assert_eq!(map(&v, false).unwrap().room.thread.as_deref(), Some("P1"));
        let v = group_message();
        assert_eq!(
            map(&v, true).unwrap().room.thread.as_deref(),
            Some("Y2lzY29zcGFyazovL3VzL01FU1NBR0UvbTE")
        );
        let v = json!({"id": "M2", "roomId": "D1", "roomType": "direct", "text": "!st2 run uptime",
            "personId": ALICE, "personEmail": "alice@example.com"});
        let msg = map(&v, false).unwrap();
        assert_eq!(msg.room.kind, RoomKind::Direct);
        assert!(!msg.mentioned);
        assert_eq!(msg.text, "!st2 run uptime");
    }

    #[test]
    fn a_shortened_mention_and_the_short_id_count() {
        // The author left only "Storm" of the name; the mention carries the uuid form.
        let v = json!({"id": "M3", "roomId": "R", "roomType": "group", "text": "Storm: st2 help",
            "html": "<spark-mention data-object-type=\"person\" data-object-id=\"00000000-0000-4000-8000-000000000b07\">Storm</spark-mention>: st2 help",
            "personId": ALICE, "personEmail": "alice@example.com"});
        let msg = map(&v, false).unwrap();
        assert!(msg.mentioned);
        assert_eq!(msg.text, "st2 help");
    }

    #[test]
    fn only_a_leading_mention_of_the_bot_is_stripped() {
        let me = me();
        // Someone else mentioned first.
        let html = "<p><spark-mention data-object-type=\"person\" data-object-id=\"OTHER\">Bob</spark-mention> StormBot run</p>";
        assert_eq!(
            strip_mention("Bob StormBot run", Some(html), &me),
            (false, "Bob StormBot run")
        );
        // A group mention is not the bot.
        let html = "<p><spark-mention data-object-type=\"groupMention\" data-group-type=\"all\">All</spark-mention> run</p>";
        assert_eq!(
            strip_mention("All run", Some(html), &me),
            (false, "All run")
        );
        // No html: the bot's name leading the text, as a whole word.
        assert_eq!(strip_mention("stormbot, run", None, &me), (true, "run"));
        assert_eq!(
            strip_mention("StormBots run", None, &me),
            (false, "StormBots run")
        );
        assert_eq!(
            strip_mention("run StormBot", None, &me),
            (false, "run StormBot")
        );
        assert_eq!(strip_mention("StormBot", None, &me), (true, ""));
        // A mention in the middle is not stripped.
        let html = format!("<p>hey <spark-mention data-object-type=\"person\" data-object-id=\"{BOT}\">StormBot</spark-mention></p>");
        assert_eq!(
            strip_mention("hey StormBot", Some(&html), &me),
            (false, "hey StormBot")
        );
    }

    #[test]
    fn the_bots_own_and_other_bots_messages_are_skipped() {
        let mut v = group_message();
        v["personId"] = json!(BOT);
        assert_eq!(map(&v, false), Err(Skip::Own));
        let mut v = group_message();
        v["personEmail"] = json!("stormbot@webex.bot");
        assert_eq!(map(&v, false), Err(Skip::Own));
        let mut v = group_message();
        v["personId"] = json!("OTHERBOT");
        v["personEmail"] = json!("other@webex.bot");
        assert_eq!(map(&v, false), Err(Skip::Bot));
        v["personEmail"] = json!("old@SparkBot.io");
        assert_eq!(map(&v, false), Err(Skip::Bot));
        for field in ["id", "roomId", "personId"] {
            let mut v = group_message();
            v[field] = json!(" ");
            assert_eq!(map(&v, false), Err(Skip::Malformed), "{field}");
        }
        let mut v = group_message();
        v["text"] = json!("");
        v.as_object_mut().map(|o| o.remove("html"));
        assert_eq!(map(&v, false), Err(Skip::Empty));
        // Markdown when there is no plain text.
        let v = json!({"id": "M", "roomId": "R", "roomType": "direct", "markdown": "**hi**",
            "personId": ALICE});
        assert_eq!(map(&v, false).unwrap().text, "**hi**");
        assert_eq!(map(&v, false).unwrap().user.name, ALICE);
    }

    #[test]
    fn deliveries_say_what_they_are_about() {
        let d = Delivery::parse(
            br#"{"id":"W","name":"n","resource":"messages","event":"created",
            "data":{"id":"M","roomId":"R","roomType":"group","personId":"P","personEmail":"p@x"}}"#,
        )
        .unwrap();
        assert_eq!(d.hook(), Hook::Message);
        assert_eq!(d.data.id, "M");
        let d = Delivery::parse(
            br#"{"resource":"attachmentActions","event":"created",
            "data":{"id":"A","type":"submit","messageId":"M","personId":"P","roomId":"R"}}"#,
        )
        .unwrap();
        assert_eq!(d.hook(), Hook::Action);
        assert_eq!(d.data.message_id, "M");
        let d = Delivery::parse(br#"{"resource":"messages","event":"deleted","data":{}}"#).unwrap();
        assert_eq!(d.hook(), Hook::Other);
        assert!(Delivery::parse(b"not json").is_none());
        assert!(Delivery::parse(br#"{"resource": 5}"#).is_none());
    }

    #[test]
    fn the_bots_ids_and_names_come_from_people_me() {
        let me = me();
        assert_eq!(
            me.short_id.as_deref(),
            Some("00000000-0000-4000-8000-000000000b07")
        );
        assert!(me.is(BOT) && me.is("00000000-0000-4000-8000-000000000b07"));
        assert!(!me.is("") && !me.is(ALICE));
        assert_eq!(me.names, ["StormBot"]);
        assert_eq!(Me::from_person(&Person::default()).short_id, None);
    }

    fn hook(id: &str, name: &str, resource: &str, target: &str, secret: &str) -> Webhook {
        Webhook {
            id: id.into(),
            name: name.into(),
            target_url: target.into(),
            resource: resource.into(),
            event: "created".into(),
            filter: None,
            secret: Some(secret.into()),
            status: Some("active".into()),
        }
    }

    const NAME: &str = "stormbridge wx";
    const TARGET: &str = "https://bridge.example.com/webex/events/wx";
    const WANTED_HOOKS: Wanted<'static> = Wanted {
        name: NAME,
        target_url: TARGET,
        secret: "s3cret",
    };

    #[test]
    fn nothing_yet_creates_both_webhooks() {
        assert_eq!(
            plan(&[], &WANTED_HOOKS),
            [
                Step::Create {
                    resource: MESSAGES,
                    event: CREATED
                },
                Step::Create {
                    resource: ATTACHMENT_ACTIONS,
                    event: CREATED
                }
            ]
        );
    }

    #[test]
    fn right_webhooks_are_left_as_they_are_and_foreign_ones_always() {
        let hooks = [
            hook("1", NAME, MESSAGES, TARGET, "s3cret"),
            hook("2", NAME, ATTACHMENT_ACTIONS, TARGET, "s3cret"),
            hook(
                "3",
                "someone else's",
                MESSAGES,
                "https://elsewhere/x",
                "other",
            ),
            hook("4", "someone else's", ATTACHMENT_ACTIONS, TARGET, "other"),
        ];
        assert_eq!(plan(&hooks, &WANTED_HOOKS), []);
    }

    #[test]
    fn stale_webhooks_are_updated_duplicates_deleted_filtered_ones_recreated() {
        let mut inactive = hook("2", NAME, ATTACHMENT_ACTIONS, TARGET, "s3cret");
        inactive.status = Some("inactive".into());
        let hooks = [
            hook(
                "1",
                NAME,
                MESSAGES,
                "https://old.example.com/webex/events/wx",
                "s3cret",
            ),
            inactive,
            hook("3", "foreign", MESSAGES, "https://old.example.com/x", "old"),
        ];
        assert_eq!(
            plan(&hooks, &WANTED_HOOKS),
            [
                Step::Update { id: "1".into() },
                Step::Update { id: "2".into() }
            ]
        );
        // A wrong secret (or none listed) is updated too.
        let mut no_secret = hook("5", NAME, MESSAGES, TARGET, "");
        no_secret.secret = None;
        let hooks = [
            no_secret,
            hook("6", NAME, ATTACHMENT_ACTIONS, TARGET, "old"),
        ];
        assert_eq!(
            plan(&hooks, &WANTED_HOOKS),
            [
                Step::Update { id: "5".into() },
                Step::Update { id: "6".into() }
            ]
        );
        // Duplicates: the right one stays, the others go; a filtered one is recreated.
        let mut filtered = hook("9", NAME, ATTACHMENT_ACTIONS, TARGET, "s3cret");
        filtered.filter = Some("roomId=R".into());
        let hooks = [
            hook("7", NAME, MESSAGES, "https://old/x", "s3cret"),
            hook("8", NAME, MESSAGES, TARGET, "s3cret"),
            filtered,
        ];
        assert_eq!(
            plan(&hooks, &WANTED_HOOKS),
            [
                Step::Delete { id: "7".into() },
                Step::Delete { id: "9".into() },
                Step::Create {
                    resource: ATTACHMENT_ACTIONS,
                    event: CREATED
                }
            ]
        );
    }

    #[test]
    fn replies_split_within_the_byte_limit() {
        let text = "é".repeat(5000); // 10,000 bytes
        let split = parts(&text, 7439);
        assert_eq!(split.len(), 2);
        assert!(split.iter().all(|p| p.len() <= 7439));
        assert_eq!(split.concat(), text);
        assert_eq!(parts(&"a".repeat(7439), 7439).len(), 1);
        assert_eq!(parts(&"a".repeat(7440), 7439).len(), 2);
        assert!(parts("  \n ", 7439).is_empty());
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("aé", 3), "aé");
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        use std::time::Duration;
        assert_eq!(retry_after(Some("7"), 0), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(Some(" 0.5 "), 0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(Some("99999"), 0),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            retry_after(Some("Mon, 01 Jan 2024 12:00:30 GMT"), 1_704_110_400),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(Some("Mon, 01 Jan 2024 12:00:30 GMT"), 1_704_200_000),
            Some(Duration::ZERO)
        );
        for bad in ["", "soon", "-1", "NaN", "inf"] {
            assert_eq!(retry_after(Some(bad), 0), None, "{bad}");
        }
        assert_eq!(retry_after(None, 0), None);
    }
}
