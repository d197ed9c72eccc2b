//! The trigger API's tokens in chat: `!st2token create <command text>` (in a direct chat
//! only: the token is shown there once), `!st2token revoke <id>`, `!st2tokens` (admins:
//! `!st2tokens all`). The HTTP side is `crate::http::trigger`.

use serde_json::json;

use crate::{render::Templates, store::trigger_tokens::TriggerToken};

/// What `!st2token` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCommand {
    /// `create <command text>`.
    Create(String),
    /// `revoke <id>`.
    Revoke(String),
}

/// Reads `!st2token`'s arguments.
pub fn token_args(args: &str, prefix: &str) -> Result<TokenCommand, String> {
    let args = args.trim();
    let (verb, rest) = args
        .split_once(char::is_whitespace)
        .map(|(v, r)| (v, r.trim()))
        .unwrap_or((args, ""));
    let usage = || {
        format!(
            "Use `{prefix}token create <command text>` (in a direct chat with me) or `{prefix}token revoke <id>`; `{prefix}tokens` lists yours."
        )
    };
    match verb {
        "create" if !rest.is_empty() => {
            let text = rest
                .strip_prefix(prefix)
                .map(str::trim_start)
                .unwrap_or(rest);
            if text.is_empty() {
                return Err(usage());
            }
            Ok(TokenCommand::Create(text.to_owned()))
        }
        "revoke" if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(TokenCommand::Revoke(rest.to_lowercase()))
        }
        _ => Err(usage()),
    }
}

/// What a reply about tokens says.
#[derive(Debug)]
pub enum TokenReply<'a> {
    /// A token was made: shown with its whole text, once.
    Created {
        /// The token.
        token: &'a TriggerToken,
        /// Its whole text.
        secret: &'a str,
    },
    /// A token was revoked.
    Revoked(&'a TriggerToken),
    /// No token with this id that the asker may revoke.
    NotFound(&'a str),
    /// The asker's tokens (`all`: everyone's).
    List {
        /// The tokens.
        tokens: &'a [TriggerToken],
        /// Everyone's (an admin asked for all).
        all: bool,
    },
    /// Why a token command was not carried out.
    Invalid(&'a str),
    /// `create` outside a direct chat.
    DirectOnly,
}

fn view(t: &TriggerToken) -> serde_json::Value {
    json!({
        "id": t.id,
        "command": t.command,
        "user": t.user.0,
        "user_name": t.user_name,
        "room": t.room_name.clone().unwrap_or_else(|| t.room_id.clone()),
        "created": t.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        "last_used": t.last_used_at.map(|u| u.format("%Y-%m-%d %H:%M UTC").to_string()),
        "uses": t.uses,
    })
}

/// The reply's text. `prefix` is the command prefix, `trigger_url` where the API is.
pub fn reply(
    templates: &Templates,
    prefix: &str,
    trigger_url: &str,
    what: TokenReply<'_>,
) -> String {
    let data = match what {
        TokenReply::Created { token, secret } => {
            json!({"created": true, "token": view(token), "secret": secret})
        }
        TokenReply::Revoked(token) => json!({"revoked": true, "token": view(token)}),
        TokenReply::NotFound(id) => json!({"not_found": true, "reason": id}),
        TokenReply::List { tokens, all } => json!({
            "list": true,
            "all": all,
            "tokens": tokens.iter().map(view).collect::<Vec<_>>(),
        }),
        TokenReply::Invalid(reason) => json!({"invalid": true, "reason": reason}),
        TokenReply::DirectOnly => json!({"direct_only": true}),
    };
    let mut data = data;
    data["command_prefix"] = json!(prefix);
    data["trigger_url"] = json!(trigger_url);
    templates.render("trigger_tokens", &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_commands_are_read() {
        assert_eq!(
            token_args("create run date", "!st2").unwrap(),
            TokenCommand::Create("run date".into())
        );
        assert_eq!(
            token_args("create !st2 run date", "!st2").unwrap(),
            TokenCommand::Create("run date".into())
        );
        assert_eq!(
            token_args("revoke ABCD2345", "!st2").unwrap(),
            TokenCommand::Revoke("abcd2345".into())
        );
        assert!(token_args("create", "!st2").is_err());
        assert!(token_args("revoke a b", "!st2").is_err());
        assert!(token_args("", "!st2").unwrap_err().contains("token create"));
    }
}
