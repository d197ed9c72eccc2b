//! Resuming a Rocket.Chat link where the last one stood (another bridge process's, after a
//! takeover, or this process's own, after a lost link): which messages were posted
//! meanwhile. Pure functions, unit-tested without a server.
//!
//! The realtime API replays nothing to a new subscription (a `stream-room-messages`
//! subscriber gets what is posted from then on:
//! https://developer.rocket.chat/apidocs/stream-room-messages-realtime), so the holder
//! keeps a [`Position`]: since when its links have listened, and per room the `ts` of the
//! newest message it handed on. A new link subscribes, then asks the REST API what was
//! posted since: the rooms changed since the oldest of those points
//! (`GET /api/v1/rooms.get?updatedSince=`, https://developer.rocket.chat/apidocs/get-rooms),
//! and for each room whose last message is not older than its point, the messages updated
//! since (`GET /api/v1/chat.syncMessages?roomId=&lastUpdate=`,
//! https://developer.rocket.chat/apidocs/sync-messages). What was posted from the point on
//! ([`missed`]) goes through the same mapping and filters as the stream's messages, oldest
//! first, before the live ones that came meanwhile.
//!
//! Points are inclusive: the message at a room's point is fetched again. A message posted in
//! the same millisecond as the last one handed on is not lost, nor one the last holder
//! noted but died before recording as taken; one that was taken is skipped by the shared
//! store's record of taken messages (and this process's own memory of seen ids).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

pub use crate::backends::connection::position::{Position, MAX_CATCH_UP_MS};

/// A date of the Rocket.Chat API in milliseconds since the epoch: `{"$date": ms}` on the
/// realtime API (EJSON), an ISO 8601 string on the REST API (the `ts` of
/// https://developer.rocket.chat/apidocs/sync-messages' example).
pub fn date_ms(v: &Value) -> Option<u64> {
    match v {
        Value::Object(o) => o.get("$date").and_then(Value::as_u64),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp_millis()).ok()),
        _ => None,
    }
}

/// `ms` as the REST API takes a date ("the date as an ISO string": `2019-04-16T18:30:46.669Z`).
pub fn iso(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The REST API's date parameter for "from `since` on": `updatedSince` and `lastUpdate` are
/// exclusive (`_updatedAt` after it), so one millisecond earlier.
pub fn from_on(since: u64) -> String {
    iso(since.saturating_sub(1))
}

/// A room the bot is in, from `rooms.get`'s `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// `_id`.
    pub id: String,
    /// `t`: `c`, `p`, `d`, `l`.
    pub kind: String,
    /// `name` (none for a direct room).
    pub name: Option<String>,
    /// `lm`, when the room's last message was posted.
    pub last_message: Option<u64>,
}

impl RoomInfo {
    /// One entry of `rooms.get`'s `update`; `None` without an id.
    pub fn of(room: &Value) -> Option<Self> {
        let text = |k: &str| {
            room.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        Some(Self {
            id: text("_id")?,
            kind: text("t").unwrap_or_default(),
            name: text("name"),
            last_message: room.get("lm").and_then(date_ms),
        })
    }
}

/// The rooms to fetch, each with the point it is fetched from: not livechat rooms (the
/// bridge does not serve them), not a room whose last message is older than its point.
pub fn rooms_to_fetch(position: &Position, rooms: &[RoomInfo], floor: u64) -> Vec<(RoomInfo, u64)> {
    rooms
        .iter()
        .filter(|room| room.kind != "l")
        .filter_map(|room| {
            let since = position.since(&room.id, floor)?;
            let newer = room.last_message.is_none_or(|lm| lm >= since);
            newer.then(|| (room.clone(), since))
        })
        .collect()
}

/// The messages fetched for rooms (`chat.syncMessages`' `result.updated`) that were posted
/// at or after their room's point, oldest first, each with its `ts`, as the `fields` of a
/// `stream-room-messages` event (the message, then the room's type and name), so that they
/// are mapped as the stream's are. Messages only updated since (an older message edited,
/// or its thread answered) are not new.
pub fn missed(fetched: Vec<(Value, u64, &RoomInfo)>) -> Vec<(u64, Value)> {
    let mut out: Vec<(u64, String, Value)> = fetched
        .into_iter()
        .filter_map(|(message, since, room)| {
            let ts = message.get("ts").and_then(date_ms)?;
            if ts < since {
                return None;
            }
            let id = message.get("_id")?.as_str()?.to_owned();
            let mut meta = json!({"roomParticipant": true, "roomType": room.kind});
            if let Some(name) = &room.name {
                meta["roomName"] = json!(name);
            }
            Some((ts, id, json!({"args": [message, meta]})))
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out.dedup_by(|a, b| a.1 == b.1);
    out.into_iter()
        .map(|(ts, _, fields)| (ts, fields))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_both_apis_read_as_milliseconds() {
        assert_eq!(
            date_ms(&json!({"$date": 1_675_949_759_484u64})),
            Some(1_675_949_759_484)
        );
        assert_eq!(
            date_ms(&json!("2021-09-24T19:19:47.911Z")),
            Some(1_632_511_187_911)
        );
        assert_eq!(iso(1_632_511_187_911), "2021-09-24T19:19:47.911Z");
        // The REST API's "since" is exclusive: asked one millisecond earlier.
        assert_eq!(from_on(1_632_511_187_911), "2021-09-24T19:19:47.910Z");
        assert_eq!(date_ms(&json!("yesterday")), None);
        assert_eq!(date_ms(&json!(5)), None);
        assert_eq!(date_ms(&json!({"$date": "soon"})), None);
    }

    fn room(id: &str, kind: &str, lm: Option<u64>) -> RoomInfo {
        RoomInfo {
            id: id.into(),
            kind: kind.into(),
            name: (kind != "d").then(|| id.to_lowercase()),
            last_message: lm,
        }
    }

    #[test]
    fn only_rooms_with_messages_from_their_point_on_are_fetched() {
        let mut p = Position::default();
        p.listening(150);
        p.note("GENERAL", 100);
        p.note("OPS", 200);
        let rooms = [
            room("GENERAL", "c", Some(160)),
            // Its last message is the one handed on last: fetched again (the same
            // millisecond may hold another).
            room("OPS", "p", Some(200)),
            room("OLD", "p", Some(140)),
            room("DM", "d", Some(250)),
            room("QUIET", "c", Some(149)),
            room("LIVE", "l", Some(300)),
            room("NOLM", "c", None),
        ];
        let ids: Vec<(String, u64)> = rooms_to_fetch(&p, &rooms, 0)
            .into_iter()
            .map(|(r, since)| (r.id, since))
            .collect();
        assert_eq!(
            ids,
            [
                ("GENERAL".into(), 100),
                ("OPS".into(), 200),
                ("DM".into(), 150),
                ("NOLM".into(), 150)
            ]
        );
        // The floor lifts every point.
        let floored: Vec<u64> = rooms_to_fetch(&p, &rooms, 180)
            .into_iter()
            .map(|(_, since)| since)
            .collect();
        assert_eq!(floored, [200, 180, 180]);
        assert!(rooms_to_fetch(&Position::default(), &rooms, 0).is_empty());
        assert_eq!(
            RoomInfo::of(
                &json!({"_id": "GENERAL", "t": "c", "name": "general", "lm": "2024-07-11T11:32:11.220Z"})
            ),
            Some(RoomInfo {
                id: "GENERAL".into(),
                kind: "c".into(),
                name: Some("general".into()),
                last_message: Some(1_720_697_531_220),
            })
        );
        assert_eq!(RoomInfo::of(&json!({"t": "c"})), None);
        assert_eq!(RoomInfo::of(&json!({"_id": " ", "t": "c"})), None);
    }

    #[test]
    fn what_was_posted_from_the_point_on_comes_oldest_first_as_stream_events() {
        let general = room("GENERAL", "c", None);
        let dm = room("DM", "d", None);
        let m = |id: &str, ts: &str| json!({"_id": id, "rid": "x", "msg": id, "ts": ts});
        let point = 1_704_067_201_000; // 2024-01-01T00:00:01.000Z
        let fetched = vec![
            // chat.syncMessages answers newest first.
            (m("g3", "2024-01-01T00:00:03.000Z"), point, &general),
            (m("g2", "2024-01-01T00:00:02.000Z"), point, &general),
            // At the point: the last one handed on, or one posted in the same millisecond.
            (m("g1", "2024-01-01T00:00:01.000Z"), point, &general),
            // Posted before the point, updated since (a thread reply, an edit): not new.
            (m("g0", "2024-01-01T00:00:00.999Z"), point, &general),
            (m("d1", "2024-01-01T00:00:02.500Z"), point - 1_000, &dm),
            // Fetched twice (two rounds of the same room): once.
            (m("d1", "2024-01-01T00:00:02.500Z"), point - 1_000, &dm),
            (json!({"_id": "nots"}), 0, &dm),
            (json!({"ts": "2024-01-01T00:00:04.000Z"}), 0, &dm),
        ];
        let got = missed(fetched);
        let ids: Vec<&str> = got
            .iter()
            .map(|(_, f)| f["args"][0]["_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["g1", "g2", "d1", "g3"]);
        assert_eq!(got[1].0, 1_704_067_202_000);
        assert_eq!(
            got[0].1["args"][1],
            json!({"roomParticipant": true, "roomType": "c", "roomName": "general"})
        );
        assert_eq!(
            got[2].1["args"][1],
            json!({"roomParticipant": true, "roomType": "d"})
        );
        assert!(missed(Vec::new()).is_empty());
    }
}
