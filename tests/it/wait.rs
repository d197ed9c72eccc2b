//! `eventually!`: the only way these tests wait — on a condition, bounded. Also used by
//! `benches/drill.rs`, which includes this file by path.

/// Evaluates `$cond` (which may `.await`) every 20 ms until it is true or `$limit` passes;
/// yields whether it became true. The only way these tests wait: on a condition, bounded.
macro_rules! eventually {
    ($limit:expr, $cond:expr) => {{
        let deadline = std::time::Instant::now() + $limit;
        loop {
            if $cond {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}
