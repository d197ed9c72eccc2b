//! Personal StackStorm sessions (client-side mode): `!st2session_start <word>` (direct
//! messages only), `!st2session_end`, and for admins `!st2session_list` and
//! `!st2session_cancel <session id>`.
//!
//! Templates: `session_start`, `session_end`, `session_list`, `session_cancel`, and
//! `session_unavailable` (sessions are off, or the session service is not answering).

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::{domain::message::RoomKind, render::Templates};

/// How session dates are shown.
const DATE: &str = "%Y-%m-%d %H:%M UTC";

/// Any session command when the bridge runs every command as itself
/// (`auth.mode = "standalone"`).
pub fn off(templates: &Templates) -> String {
    templates.render("session_unavailable", &json!({"standalone": true}))
}

/// Any session command when the session service did not answer.
pub fn not_answering(templates: &Templates) -> String {
    templates.render("session_unavailable", &json!({"standalone": false}))
}

fn render_start(
    templates: &Templates,
    prefix: &str,
    in_room: bool,
    link: Option<&str>,
    refused: Option<&str>,
) -> String {
    templates.render(
        "session_start",
        &json!({
            "command_prefix": prefix,
            "in_room": in_room,
            "missing_word": !in_room && link.is_none() && refused.is_none(),
            "link": link,
            "refused": refused,
        }),
    )
}

/// The shared word of `{prefix}session_start {args}` said in a `room` of this kind, or the
/// reply refusing it: only in a direct message (anyone in a shared room would see the
/// word), and never without a word.
pub fn start_word<'a>(
    templates: &Templates,
    prefix: &str,
    room: RoomKind,
    args: &'a str,
) -> Result<&'a str, String> {
    if room != RoomKind::Direct {
        return Err(render_start(templates, prefix, true, None, None));
    }
    match args.trim() {
        "" => Err(render_start(templates, prefix, false, None, None)),
        word => Ok(word),
    }
}

/// The login link the session service issued.
pub fn started(templates: &Templates, prefix: &str, link: &str) -> String {
    render_start(templates, prefix, false, Some(link), None)
}

/// The session service's reason for not issuing a link.
pub fn start_refused(templates: &Templates, prefix: &str, reason: &str) -> String {
    render_start(templates, prefix, false, None, Some(reason))
}

/// `session_end`: `had_session` is whether there was one to end.
pub fn ended(templates: &Templates, prefix: &str, had_session: bool) -> String {
    templates.render(
        "session_end",
        &json!({"command_prefix": prefix, "ended": had_session}),
    )
}

/// One session in `session_list`: never a secret, hash or link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    /// Session id (what `session_cancel` takes).
    pub id: String,
    /// Owner, `<connection>:<user id>`.
    pub user: String,
    /// Credentials were stored (else the login link was not used yet).
    pub active: bool,
    /// When `session_start` created it.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// `session_list`.
pub fn list(templates: &Templates, sessions: &[ListedSession]) -> String {
    let items: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "user": s.user,
                "active": s.active,
                "created": s.created_at.format(DATE).to_string(),
                "expires": s.expires_at.format(DATE).to_string(),
            })
        })
        .collect();
    templates.render(
        "session_list",
        &json!({"sessions": items, "count": sessions.len()}),
    )
}

fn render_cancel(templates: &Templates, prefix: &str, id: Option<&str>, cancelled: bool) -> String {
    templates.render(
        "session_cancel",
        &json!({"command_prefix": prefix, "id": id, "cancelled": cancelled}),
    )
}

/// The session id of `{prefix}session_cancel {args}`, or the usage when there is none.
pub fn cancel_id<'a>(
    templates: &Templates,
    prefix: &str,
    args: &'a str,
) -> Result<&'a str, String> {
    match args.trim() {
        "" => Err(render_cancel(templates, prefix, None, false)),
        id => Ok(id),
    }
}

/// `session_cancel <id>`: `existed` is whether there was such a session.
pub fn cancelled(templates: &Templates, prefix: &str, id: &str, existed: bool) -> String {
    render_cancel(templates, prefix, Some(id), existed)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::commands::test_support::templates;

    #[test]
    fn sessions_off_or_unanswered() {
        let t = templates();
        assert_eq!(
            off(&t),
            "Personal StackStorm sessions are off here: this bridge runs every command with its \
             own StackStorm identity (auth.mode = \"standalone\")."
        );
        assert_eq!(
            not_answering(&t),
            "The session service is not answering; please try again."
        );
    }

    #[test]
    fn start_is_for_direct_messages_only() {
        let t = templates();
        let refused = start_word(&t, "!st2", RoomKind::Group, "sesame").unwrap_err();
        assert_eq!(
            refused,
            "For your security, start a session in a direct message to me: the shared word would \
             be visible to everyone here. Send me `!st2session_start <word>` privately."
        );
        assert!(!refused.contains("sesame"));
    }

    #[test]
    fn start_needs_a_word() {
        let t = templates();
        assert_eq!(
            start_word(&t, "!st2", RoomKind::Direct, "  ").unwrap_err(),
            "Add a shared word: `!st2session_start <word>`. You will type the same word on the \
             login page, which proves the link reached you."
        );
        assert_eq!(
            start_word(&t, "!st2", RoomKind::Direct, " open sesame ").unwrap(),
            "open sesame"
        );
    }

    #[test]
    fn start_sends_the_link_or_the_refusal() {
        let t = templates();
        assert_eq!(
            started(&t, "!st2", "https://bridge.test/login/abc"),
            "Open this link to link your StackStorm account: https://bridge.test/login/abc\n\
             It works once, for a few minutes. On the page, enter the word you just typed, then \
             your StackStorm credentials."
        );
        assert_eq!(
            start_refused(
                &t,
                "!st2",
                "Wait 30 seconds before asking for another link."
            ),
            "Wait 30 seconds before asking for another link."
        );
    }

    #[test]
    fn end_says_whether_there_was_a_session() {
        let t = templates();
        assert_eq!(
            ended(&t, "!st2", true),
            "Your StackStorm session has ended. Commands you run now need a new session \
             (`!st2session_start <word>` in a direct message)."
        );
        assert_eq!(ended(&t, "!st2", false), "You had no StackStorm session.");
    }

    #[test]
    fn list_shows_one_line_per_session() {
        let t = templates();
        assert_eq!(list(&t, &[]), "No sessions.");
        let at = |h| Utc.with_ymd_and_hms(2024, 5, 1, h, 30, 0).unwrap();
        let sessions = [
            ListedSession {
                id: "s-1".into(),
                user: "console:alice".into(),
                active: true,
                created_at: at(9),
                expires_at: at(21),
            },
            ListedSession {
                id: "s-2".into(),
                user: "slack:U2".into(),
                active: false,
                created_at: at(10),
                expires_at: at(11),
            },
        ];
        assert_eq!(
            list(&t, &sessions),
            "2 session(s):\n\
             \x20   console:alice — Active — created 2024-05-01 09:30 UTC — expires 2024-05-01 21:30 UTC — id s-1\n\
             \x20   slack:U2 — Pending — created 2024-05-01 10:30 UTC — expires 2024-05-01 11:30 UTC — id s-2"
        );
    }

    #[test]
    fn cancel_needs_an_id_and_says_what_happened() {
        let t = templates();
        assert_eq!(
            cancel_id(&t, "!st2", " ").unwrap_err(),
            "usage: !st2session_cancel <session id> (see !st2session_list)"
        );
        assert_eq!(cancel_id(&t, "!st2", " s-1 ").unwrap(), "s-1");
        assert_eq!(cancelled(&t, "!st2", "s-1", true), "Session s-1 cancelled.");
        assert_eq!(
            cancelled(&t, "!st2", "s-9", false),
            "There is no session s-9."
        );
    }
}
