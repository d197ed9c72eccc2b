//! Defaults that several backends share, so one policy has one number.

/// Outbound messages a connection keeps while it is down or rate-limited; beyond this the
/// oldest are dropped (and counted).
pub fn queue_size() -> usize {
    1000
}

/// Least gap between two messages on the REST platforms (Mattermost, Discord, Matrix), in
/// milliseconds: below their documented limits, so a burst is paced rather than refused.
pub fn send_interval_ms() -> u64 {
    100
}

/// For settings that are on unless turned off (certificate verification).
pub fn enabled() -> bool {
    true
}

/// Sends allowed at once on the REST platforms before `send_interval_ms` applies: below
/// their documented allowances (Mattermost's default burst is 100, Synapse's `rc_message`
/// burst 10), so a burst of replies goes out at once rather than 100 ms apart.
pub const SEND_BURST: u32 = 10;

/// Sends under way at once to different destinations on the REST platforms (one
/// destination's messages always go one at a time, in order).
pub const MAX_IN_FLIGHT: usize = 16;
