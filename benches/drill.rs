//! The stream-cut drill as a report: `cargo bench --bench drill [-- CUTS]`.
//!
//! Three people send commands (room and direct chats) to a bridge on the in-process
//! StackStorm emulator in its default mode (close-delimited stream as behind st2's nginx,
//! busy message bus), while the stream is cut CUTS times (default 100) at random moments,
//! a third of them in the middle of an event. It prints commands sent, results delivered,
//! lost and duplicated, how many results came from the API instead of the stream, and the
//! time until the last result arrived. The integration test
//! `drills::a_hundred_stream_cuts_under_load_lose_and_repeat_nothing` asserts the same.

use std::time::{Duration, Instant};

#[macro_use]
#[path = "../tests/it/wait.rs"]
mod wait;

#[path = "../tests/it/crowd.rs"]
#[allow(dead_code)]
mod crowd;

fn main() {
    let cuts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut crowd = crowd::Crowd::start(crowd::CrowdOptions::default()).await;
        let started = Instant::now();
        crowd.cut_under_load(cuts).await;
        let cutting = started.elapsed();
        let tally = crowd.settle(Duration::from_secs(60)).await;
        let reconciled = crowd
            .metric("stormbridge_results_delivered_total{source=\"reconciliation\"}")
            .await;
        let streamed = crowd
            .metric("stormbridge_results_delivered_total{source=\"stream\"}")
            .await;
        let gaps = crowd.metric("stormbridge_stream_gaps_total").await;
        let dropped = crowd.metric("stormbridge_results_duplicates_total").await;
        println!(
            "stream-cut drill: {cuts} cuts in {:.1} s",
            cutting.as_secs_f64()
        );
        println!("  {tally}");
        println!(
            "  results from the stream: {streamed}, from the API after a gap: {reconciled}; \
             stream connections: {gaps}; second copies dropped: {dropped}"
        );
        if tally.lost > 0 || tally.duplicated > 0 || tally.misrouted > 0 {
            eprintln!("FAILED: lost {:?}", tally.lost_ids);
            std::process::exit(1);
        }
    });
}
