//! How each platform writes a mention that notifies someone ([`MentionFn`]s), for results
//! addressed to the person who ran the command (see `crate::domain::mention`).

use crate::domain::mention::Addressee;

/// Slack: `<@U…>` for a user id ("Formatting text for app surfaces", Mentioning users:
/// https://api.slack.com/reference/surfaces/formatting#mentioning-users). An announcement
/// naming a user by name (`bot.st2_user = "name"`, or a workflow's `user`) gets hubot's
/// `@name`, which Slack shows as text.
pub fn slack(who: &Addressee) -> Option<String> {
    if is_slack_user_id(&who.id) {
        Some(format!("<@{}>", who.id))
    } else {
        at_name(who)
    }
}

/// Discord: `<@id>` for a user's snowflake (Message Formatting:
/// https://discord.com/developers/docs/reference#message-formatting), else `@name`.
pub fn discord(who: &Addressee) -> Option<String> {
    if !who.id.is_empty() && who.id.len() <= 20 && who.id.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!("<@{}>", who.id))
    } else {
        at_name(who)
    }
}

/// Mattermost: `@username` (https://docs.mattermost.com/collaborate/mention-people.html);
/// its user ids notify nobody, so without a name there is no mention.
pub fn mattermost(who: &Addressee) -> Option<String> {
    who.name
        .as_deref()
        .filter(|n| is_plain_name(n))
        .map(|n| format!("@{n}"))
}

/// Matrix, XMPP rooms, IRC and the console: the name people see, which clients highlight
/// (Matrix's `.m.rule.contains_display_name` push rule; an XMPP or IRC client's own nick).
pub fn by_name(who: &Addressee) -> Option<String> {
    let name = who.name.as_deref().unwrap_or(&who.id);
    (!name.trim().is_empty()).then(|| name.to_owned())
}

fn at_name(who: &Addressee) -> Option<String> {
    let name = who.name.as_deref().unwrap_or(&who.id);
    is_plain_name(name).then(|| format!("@{name}"))
}

/// Slack user ids: `U…` or `W…` (Enterprise Grid), upper-case letters and digits.
fn is_slack_user_id(id: &str) -> bool {
    id.len() >= 3
        && id.starts_with(['U', 'W'])
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Words that, after `@`, notify a whole channel on Slack, Mattermost or Discord.
const CHANNEL_WIDE: &[&str] = &["all", "channel", "here", "everyone"];

/// A name that can follow `@` without breaking the message (no spaces, no markup) and
/// without notifying a whole channel.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !CHANNEL_WIDE.contains(&name.to_ascii_lowercase().as_str())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: &str, name: Option<&str>) -> Addressee {
        Addressee {
            id: id.into(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn each_platform_writes_its_own_mention() {
        assert_eq!(
            slack(&who("U024BE7LH", Some("bob"))).as_deref(),
            Some("<@U024BE7LH>")
        );
        assert_eq!(slack(&who("bob", None)).as_deref(), Some("@bob"));
        assert_eq!(slack(&who("<!channel>", None)), None);
        assert_eq!(
            discord(&who("80351110224678912", Some("Nelly"))).as_deref(),
            Some("<@80351110224678912>")
        );
        assert_eq!(discord(&who("nelly", None)).as_deref(), Some("@nelly"));
        assert_eq!(
            mattermost(&who("8x3ktzq5ejg1ir4ogn8inc9n1o", Some("alice"))).as_deref(),
            Some("@alice")
        );
        assert_eq!(mattermost(&who("8x3ktzq5ejg1ir4ogn8inc9n1o", None)), None);
        assert_eq!(
            by_name(&who("@alice:example.org", Some("Alice A"))).as_deref(),
            Some("Alice A")
        );
        assert_eq!(by_name(&who("nick", None)).as_deref(), Some("nick"));
        assert_eq!(by_name(&who(" ", None)), None);
    }

    #[test]
    fn no_mention_can_ping_a_whole_channel() {
        for name in ["here", "All", "channel", "everyone"] {
            assert_eq!(mattermost(&who("id", Some(name))), None, "{name}");
            assert_eq!(discord(&who(name, None)), None, "{name}");
            assert_eq!(slack(&who(name, None)), None, "{name}");
        }
        assert_eq!(slack(&who("x y", Some("<!here>"))), None);
    }
}
