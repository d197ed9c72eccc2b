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
