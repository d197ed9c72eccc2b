//! IRCv3 capabilities and channel history: which capabilities the bot asks for, and which
//! channel messages are new to the connection.
//!
//! Some servers send a channel's recent messages again to everyone who joins it, with the
//! times they were said (InspIRCd's `chanhistory` module and channel mode `+H`; others have
//! the like). A bot that took every one of them for a command would run old commands again
//! at every rejoin. With the `server-time` capability (IRCv3; every message then carries
//! its time in a `time` tag) the bot tells them apart: a channel message is new when it is
//! later than the newest the connection handed on in that channel (or, with none, than the
//! moment its first link joined). The same rule catches up what was said while no link
//! listened — a lost link, a takeover by another bridge process (the point is passed on
//! through [`Position`]) — as far as the server's history reaches and no further back than
//! `max_command_age_secs`. Servers without `server-time` (ngircd) replay nothing, and every
//! message there is live. Pure; the platform uses it in `platform.rs`.
//!
//! References: IRCv3 capability negotiation (`CAP LS 302`, multi-line listings ending
//! without the `*` marker), <https://ircv3.net/specs/extensions/capability-negotiation>;
//! `server-time` (`time=YYYY-MM-DDThh:mm:ss.sssZ`, UTC, milliseconds),
//! <https://ircv3.net/specs/extensions/server-time>; `message-tags` (the `msgid` tag that
//! names a message the same way in a replay), <https://ircv3.net/specs/extensions/message-ids>.

use std::collections::BTreeSet;

use crate::backends::connection::position::Position;

/// The optional capabilities the bot asks for when the server offers them.
pub const OPTIONAL_CAPS: &[&str] = &["server-time", "message-tags"];

/// The SASL capability.
pub const SASL: &str = "sasl";

/// A server's capability listing (`CAP * LS [*] :…`), which may take several lines.
#[derive(Debug, Default)]
pub struct CapListing {
    offered: BTreeSet<String>,
}

impl CapListing {
    /// One line of the listing: `more` when it carries the `*` marker (more lines follow).
    /// Returns the whole listing after its last line (and starts over).
    pub fn line(&mut self, more: bool, caps: &str) -> Option<BTreeSet<String>> {
        for cap in caps.split_whitespace() {
            // `CAP LS 302` adds values (`sasl=PLAIN,EXTERNAL`); the name is before `=`.
            let name = cap.split_once('=').map_or(cap, |(name, _)| name);
            self.offered.insert(name.to_owned());
        }
        (!more).then(|| std::mem::take(&mut self.offered))
    }
}

/// What the capability negotiation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `CAP REQ` with these capabilities.
    Caps(Vec<String>),
    /// Nothing wanted is offered: `CAP END`.
    Nothing,
    /// SASL is configured and the server does not offer it.
    NoSasl,
}

/// What to ask for from the capabilities `offered`; `sasl` when the connection is
/// configured to authenticate with SASL.
pub fn request(offered: &BTreeSet<String>, sasl: bool) -> Request {
    if sasl && !offered.contains(SASL) {
        return Request::NoSasl;
    }
    let mut caps: Vec<String> = OPTIONAL_CAPS
        .iter()
        .filter(|c| offered.contains(**c))
        .map(|c| (*c).to_owned())
        .collect();
    if sasl {
        caps.push(SASL.to_owned());
    }
    if caps.is_empty() {
        Request::Nothing
    } else {
        Request::Caps(caps)
    }
}

/// The time of a `time` tag (`2026-12-05T01:40:00.123Z`) in milliseconds since the epoch.
pub fn server_time_ms(tag: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(tag).ok()?;
    u64::try_from(at.timestamp_millis()).ok()
}

/// The key of `channel` in a [`Position`]: IRC compares channel names without case
/// (RFC 1459 case mapping), so `#Ops` and `#ops` have one point.
pub fn channel_key(channel: &str) -> String {
    channel.chars().map(super::text::fold).collect()
}

/// What a channel message of time `ts` is to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Said after everything the connection heard there: hand it on.
    New,
    /// Said no later than the newest message the connection heard there, or before its
    /// first link joined: a replay.
    Before,
    /// New, but said before `floor` (`max_command_age_secs` ago): too old to run.
    TooOld,
}

/// Whether a message of `channel_key` said at `ts` is new, against `position` and `floor`.
pub fn judge(position: &Position, channel_key: &str, ts: u64, floor: u64) -> Heard {
    match position.since(channel_key, 0) {
        Some(point) if ts <= point => Heard::Before,
        _ if ts < floor => Heard::TooOld,
        _ => Heard::New,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[&str]) -> BTreeSet<String> {
        caps.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn a_listing_over_several_lines_is_whole_after_its_last() {
        let mut l = CapListing::default();
        assert_eq!(l.line(true, "multi-prefix sasl=PLAIN,EXTERNAL"), None);
        let all = l.line(false, "server-time message-tags").unwrap();
        assert_eq!(
            all,
            set(&["message-tags", "multi-prefix", "sasl", "server-time"])
        );
        // A later listing (`CAP LS` again) starts over.
        assert_eq!(l.line(false, "batch").unwrap(), set(&["batch"]));
    }

    #[test]
    fn only_offered_capabilities_are_asked_for_and_sasl_is_required_when_configured() {
        assert_eq!(
            request(&set(&["server-time", "multi-prefix", "sasl"]), false),
            Request::Caps(vec!["server-time".into()])
        );
        assert_eq!(
            request(&set(&["server-time", "message-tags", "sasl"]), true),
            Request::Caps(vec![
                "server-time".into(),
                "message-tags".into(),
                "sasl".into()
            ])
        );
        assert_eq!(request(&set(&["multi-prefix"]), false), Request::Nothing);
        assert_eq!(request(&set(&["server-time"]), true), Request::NoSasl);
    }

    #[test]
    fn server_times_are_milliseconds_since_the_epoch() {
        assert_eq!(
            server_time_ms("2011-10-19T16:40:51.620Z"),
            Some(1_319_042_451_620)
        );
        assert_eq!(server_time_ms("yesterday"), None);
        assert_eq!(server_time_ms("1969-12-31T23:59:59.000Z"), None);
    }

    #[test]
    fn channel_keys_ignore_case_as_irc_does() {
        assert_eq!(channel_key("#Ops[1]"), channel_key("#ops{1}"));
    }

    #[test]
    fn a_message_is_new_after_the_point_of_its_channel_or_the_first_join() {
        let mut p = Position::default();
        // Nothing known: everything is new (unless too old).
        assert_eq!(judge(&p, "#ops", 5, 0), Heard::New);
        p.listening(1_000);
        assert_eq!(judge(&p, "#ops", 999, 0), Heard::Before);
        assert_eq!(judge(&p, "#ops", 1_000, 0), Heard::Before);
        assert_eq!(judge(&p, "#ops", 1_001, 0), Heard::New);
        p.note("#ops", 2_000);
        assert_eq!(judge(&p, "#ops", 1_500, 0), Heard::Before);
        assert_eq!(judge(&p, "#ops", 2_001, 0), Heard::New);
        // Another channel still counts from the first join.
        assert_eq!(judge(&p, "#dev", 1_500, 0), Heard::New);
        // New but older than the floor.
        assert_eq!(judge(&p, "#ops", 2_500, 3_000), Heard::TooOld);
    }
}
