//! The contract's cases, written once against [`Contract`] and run for every platform.
//!
//! Each case is what a user would notice: where the bot answers, in what order, whether a
//! long reply arrives whole, whether anything is lost or posted twice across an outage.
//! A case a platform cannot do is reported as skipped with the adapter's reason, never as a
//! pass. [`run_all`] runs the cases in turn on one server and bridge, catches a failing
//! case so the others still run, prints a report, and fails the test if any case failed.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;
use stormbridge::emulator::ExecutionRecord;

use super::harness::{
    announce_room, count, find, wait_for, whisper, Contract, Posted, RateLimit, Support, Unit,
    Where,
};

/// How a case ended, when it did not panic.
#[derive(Debug)]
pub enum Done {
    Passed,
    /// Passed, with a figure worth reporting.
    PassedNoting(String),
    /// Passed; a part of it the platform cannot do was not run (why).
    PassedWithout(&'static str),
    /// Not run at all: the platform cannot do it (why).
    Skipped(&'static str),
}

/// Runs every case on `p`, prints the report, and panics if any case failed. The cases
/// run in this order (the two outage cases last: they take the server away).
pub async fn run_all<P: Contract>(p: &mut P) {
    // StackStorm at its least convenient: a command's result is announced on the stream
    // before the answer to the request that ran it, so every case's "ack before result"
    // is the bridge's doing (what err-stackstorm gets wrong).
    p.bridge().emulator.set_announce_before_response(true);
    let report = [
        (
            "1. a room command is acknowledged, then answered, in its room and thread",
            attempt(room_command(p)).await,
        ),
        (
            "2. a direct-chat command is answered in the direct chat",
            attempt(direct_command(p)).await,
        ),
        (
            "5. a leading mention of the bot is stripped",
            attempt(mention_is_stripped(p)).await,
        ),
        (
            "4. a whisper reaches the user privately",
            attempt(whisper_is_private(p)).await,
        ),
        (
            "3. a reply over the size limit arrives split, complete, in order",
            attempt(long_reply_is_split(p)).await,
        ),
        (
            "6. the bot's own and other bots' messages are not commands",
            attempt(bots_are_not_obeyed(p)).await,
        ),
        (
            "8. the platform's rate limit is honoured",
            attempt(rate_limit_is_honoured(p)).await,
        ),
        (
            "9. /ready and /actors say the connection is down while the server is away",
            attempt(state_shows_the_outage(p)).await,
        ),
        (
            "7. replies held while the server is away (announced, or of a command under way) \
             arrive after it, each once",
            attempt(held_replies_arrive_once(p)).await,
        ),
    ];
    let mut text = format!("contract report for {}:\n", P::PLATFORM);
    let mut failed = Vec::new();
    for (name, outcome) in &report {
        let line = match outcome {
            Ok(Done::Passed) => "passed".to_owned(),
            Ok(Done::PassedNoting(note)) => format!("passed ({note})"),
            Ok(Done::PassedWithout(why)) => format!("passed (not all of it: {why})"),
            Ok(Done::Skipped(why)) => format!("SKIPPED: {why}"),
            Err(e) => {
                failed.push(*name);
                format!("FAILED: {}", e.lines().next().unwrap_or_default())
            }
        };
        text.push_str(&format!("  {name}: {line}\n"));
    }
    eprintln!("{text}");
    assert!(
        failed.is_empty(),
        "{} breaks the contract in {failed:#?}\n{text}",
        P::PLATFORM
    );
}

/// Runs one case; a failed assertion (a panic) becomes its message, so the next case runs.
async fn attempt(case: impl std::future::Future<Output = Done>) -> Result<Done, String> {
    AssertUnwindSafe(case)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".into())
        })
}

/// The execution StackStorm accepted after the first `before`, once it has it.
async fn execution_after<P: Contract>(p: &P, before: usize) -> ExecutionRecord {
    let ran = eventually!(p.patience(), {
        p.bridge().emulator.executions().len() > before
    });
    assert!(
        ran,
        "{}: the command never reached StackStorm (executions: {:#?})",
        P::PLATFORM,
        p.bridge().emulator.executions()
    );
    p.bridge().emulator.executions().swap_remove(before)
}

fn executions_since<P: Contract>(p: &P, before: usize) -> Vec<String> {
    p.bridge().emulator.executions()[before..]
        .iter()
        .map(|e| e.parameters.get("cmd").cloned().unwrap_or_default())
        .collect()
}

/// The acknowledgement of `e`: "Started …" naming the execution or the command's word.
fn ack_index(msgs: &[Posted], place: &Where, e: &ExecutionRecord, word: &str) -> Option<usize> {
    msgs.iter().position(|m| {
        &m.place == place
            && m.text.contains("Started")
            && (m.text.contains(&e.id) || m.text.contains(word))
    })
}

/// Waits until `e` was acknowledged and answered in `place`, and checks that the
/// acknowledgement came first and that nothing about it went anywhere else.
async fn answered_in<P: Contract>(p: &mut P, e: &ExecutionRecord, word: &str, place: &Where) {
    let result = format!("execution: {}", e.id);
    let msgs = wait_for(
        p,
        &format!("the ack and the result of {word:?} in {place:?}"),
        |m| ack_index(m, place, e, word).is_some() && find(m, place, &[result.as_str()]).is_some(),
    )
    .await;
    let ack = ack_index(&msgs, place, e, word).unwrap_or_default();
    let res = find(&msgs, place, &[result.as_str()]).unwrap_or_default();
    assert!(
        ack < res,
        "{}: the result of {word:?} came before its ack: {msgs:#?}",
        P::PLATFORM
    );
    let astray: Vec<&Posted> = msgs
        .iter()
        .filter(|m| m.text.contains(&e.id) && &m.place != place)
        .collect();
    assert!(
        astray.is_empty(),
        "{}: messages about {word:?} outside {place:?}: {astray:#?}",
        P::PLATFORM
    );
}

/// Announces `tag` to the room and waits for it: everything queued before it has been
/// sent by then (the queue keeps order), so counts taken afterwards are final.
async fn fence<P: Contract>(p: &mut P, tag: &str) -> Vec<Posted> {
    announce_room(p, tag);
    wait_for(p, &format!("the fence {tag:?}"), |m| {
        find(m, &Where::Room, &[tag]).is_some()
    })
    .await
}

/// Case 1.
async fn room_command<P: Contract>(p: &mut P) -> Done {
    let before = p.bridge().emulator.executions().len();
    let said = p.say("!st2 run echo c1-room").await;
    let e = execution_after(p, before).await;
    assert_eq!(
        e.parameters.get("cmd").map(String::as_str),
        Some("echo c1-room"),
        "{}",
        P::PLATFORM
    );
    let place = p.answer_place(said.as_deref());
    answered_in(p, &e, "c1-room", &place).await;

    if let Support::No(why) = p.threads() {
        return Done::PassedWithout(why);
    }
    let thread = p.start_thread().await;
    let before = p.bridge().emulator.executions().len();
    p.say_in_thread(&thread, "!st2 run echo c1-thread").await;
    let e = execution_after(p, before).await;
    answered_in(p, &e, "c1-thread", &Where::Thread(thread)).await;
    Done::Passed
}

/// Case 2.
async fn direct_command<P: Contract>(p: &mut P) -> Done {
    let before = p.bridge().emulator.executions().len();
    p.say_direct("!st2 run echo c2-direct").await;
    let e = execution_after(p, before).await;
    assert_eq!(
        e.parameters.get("cmd").map(String::as_str),
        Some("echo c2-direct")
    );
    answered_in(p, &e, "c2-direct", &Where::Direct).await;
    Done::Passed
}

/// Case 5.
async fn mention_is_stripped<P: Contract>(p: &mut P) -> Done {
    let before = p.bridge().emulator.executions().len();
    let text = format!("{} st2 run echo c5-mention", p.mention());
    let said = p.say(&text).await;
    let e = execution_after(p, before).await;
    assert_eq!(
        e.parameters.get("cmd").map(String::as_str),
        Some("echo c5-mention"),
        "{}: {text:?} ran as {:?}",
        P::PLATFORM,
        e.request["command"]
    );
    let place = p.answer_place(said.as_deref());
    answered_in(p, &e, "c5-mention", &place).await;
    Done::Passed
}

/// Case 4.
async fn whisper_is_private<P: Contract>(p: &mut P) -> Done {
    whisper(p, "c4-whisper: for your eyes only");
    wait_for(p, "the whisper in the direct chat", |m| {
        find(m, &Where::Direct, &["c4-whisper"]).is_some()
    })
    .await;
    let msgs = fence(p, "c4-fence").await;
    let seen: Vec<&Posted> = msgs
        .iter()
        .filter(|m| m.text.contains("c4-whisper"))
        .collect();
    assert!(
        seen.len() == 1 && seen[0].place == Where::Direct,
        "{}: the whisper should reach the direct chat once and nowhere else: {seen:#?}",
        P::PLATFORM
    );
    Done::Passed
}

/// A message over 4 × `limit` in `unit`, of unique multi-byte words: a first line of
/// 1.5 × `limit` (so a part ends inside a line) and then lines of a third of `limit`.
fn long_message(limit: usize, unit: Unit) -> String {
    let mut n = 0;
    let mut line_of = |size: usize| {
        let mut line = String::new();
        while unit.measure(&line) < size {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&format!("c3w{n:04}é"));
            n += 1;
        }
        line
    };
    let mut text = line_of(limit * 3 / 2);
    while unit.measure(&text) < limit * 4 {
        text.push('\n');
        text.push_str(&line_of(limit / 3));
    }
    text
}

/// Case 3.
async fn long_reply_is_split<P: Contract>(p: &mut P) -> Done {
    let (limit, unit) = p.limit();
    let text = long_message(limit, unit);
    let start = p.bot_messages().await.len();
    announce_room(p, &text);
    let last = text
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    wait_for(p, "the last part of the long reply", |m| {
        m[start..].iter().any(|x| x.text.contains(&last))
    })
    .await;
    let msgs = fence(p, "c3-fence").await;
    let parts: Vec<&Posted> = msgs[start..]
        .iter()
        .filter(|m| m.text.contains("c3w"))
        .collect();
    assert!(
        parts.iter().all(|m| m.place == Where::Room),
        "{}: parts outside the room: {parts:#?}",
        P::PLATFORM
    );
    assert!(
        parts.len() >= 3,
        "{}: {} units in {} parts",
        P::PLATFORM,
        unit.measure(&text),
        parts.len()
    );
    for part in &parts {
        assert!(
            unit.measure(&part.text) <= limit,
            "{}: a part of {} {unit:?} (limit {limit}): {:?}",
            P::PLATFORM,
            unit.measure(&part.text),
            part.text
        );
    }
    // Splits fall on line breaks and spaces, which the split consumes: the words of the
    // parts, put together, are the words of the original, each once and in order.
    let joined = parts
        .iter()
        .map(|m| m.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let got: Vec<&str> = joined.split_whitespace().collect();
    let sent: Vec<&str> = text.split_whitespace().collect();
    assert!(
        got == sent,
        "{}: the parts do not add up to the reply (sent {} words, got {}; first difference at {:?})",
        P::PLATFORM,
        sent.len(),
        got.len(),
        got.iter().zip(&sent).position(|(a, b)| a != b)
    );
    Done::Passed
}

/// Case 6.
async fn bots_are_not_obeyed<P: Contract>(p: &mut P) -> Done {
    if let Support::No(why) = p.other_bots() {
        return Done::Skipped(why);
    }
    let before = p.bridge().emulator.executions().len();
    p.other_bot_says("!st2 run echo c6-other-bot").await;
    p.own_account_says("!st2 run echo c6-own-account").await;
    let said = p.say("!st2 run echo c6-marker").await;
    let e = execution_after(p, before).await;
    let place = p.answer_place(said.as_deref());
    answered_in(p, &e, "c6-marker", &place).await;
    assert_eq!(
        executions_since(p, before),
        ["echo c6-marker"],
        "{}: only the person's command runs",
        P::PLATFORM
    );
    Done::Passed
}

/// `n` numbered messages `<tag>-<i>` to the room, at once.
fn announce_burst<P: Contract>(p: &P, tag: &str, n: usize) {
    for i in 1..=n {
        announce_room(p, &format!("{tag}-{i:02}"));
    }
}

/// Checks that `<tag>-01` … `<tag>-<n>` each arrived once, in the room, in order.
fn each_once_in_order<P: Contract>(msgs: &[Posted], tag: &str, n: usize) {
    let got: Vec<&str> = msgs
        .iter()
        .filter(|m| m.text.contains(tag))
        .map(|m| m.text.as_str())
        .collect();
    let wanted: Vec<String> = (1..=n).map(|i| format!("{tag}-{i:02}")).collect();
    assert!(
        got.len() == n && got.iter().zip(&wanted).all(|(g, w)| g.contains(w.as_str())),
        "{}: wanted {wanted:?} once each, in order; got {got:#?}",
        P::PLATFORM
    );
    assert!(
        msgs.iter()
            .filter(|m| m.text.contains(tag))
            .all(|m| m.place == Where::Room),
        "{}: {tag} outside the room",
        P::PLATFORM
    );
}

/// Case 8.
async fn rate_limit_is_honoured<P: Contract>(p: &mut P) -> Done {
    const N: usize = 6;
    let name = format!("chat:{}", p.connection());
    let restarts = p.bridge().actor(&name).await["restarts"].as_u64();
    let limited = p.rate_limited();
    let kind = p.rate_limit();
    if kind == RateLimit::Window {
        p.arm_rate_window(Duration::from_secs(1)).await;
    }
    announce_burst(p, "c8-burst", N);
    let last = format!("c8-burst-{N:02}");
    wait_for(p, "the whole burst", |m| {
        find(m, &Where::Room, &[last.as_str()]).is_some()
    })
    .await;
    let msgs = fence(p, "c8-fence").await;
    each_once_in_order::<P>(&msgs, "c8-burst", N);
    let refused = p.rate_limited() - limited;
    match kind {
        RateLimit::Window => {
            assert_eq!(
                refused,
                1,
                "{}: the first send meets the closed window; a bridge that waits as the 429 \
                 says is not refused again",
                P::PLATFORM
            );
            Done::Passed
        }
        RateLimit::Server => {
            assert!(
                refused >= 1,
                "{}: the server never limited the bot; the case proves nothing",
                P::PLATFORM
            );
            // Waiting as each 429 says, a send is refused at most twice (the second time
            // only when the server's wait was rounded down); retrying on a backoff of one's
            // own instead collects several per message.
            assert!(
                refused <= 2 * (N + 1),
                "{}: {refused} 429s for {} messages: the bot did not wait as told",
                P::PLATFORM,
                N + 1
            );
            Done::PassedNoting(format!(
                "the server answered {refused} sends with a 429 on the way"
            ))
        }
        RateLimit::Pacing(why) => {
            let actor = p.bridge().actor(&name).await;
            assert_eq!(
                actor["restarts"].as_u64(),
                restarts,
                "{}: the burst cost the bot its connection: {actor}",
                P::PLATFORM
            );
            assert_eq!(actor["state"], "up", "{}: {actor}", P::PLATFORM);
            Done::PassedWithout(why)
        }
    }
}

/// Waits until the connection's `/actors` entry satisfies `ok`; panics with it otherwise.
async fn actor_until<P: Contract>(p: &P, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let name = format!("chat:{}", p.connection());
    let mut last;
    let seen = eventually!(p.patience(), {
        last = p.bridge().actor(&name).await;
        ok(&last)
    });
    assert!(seen, "{}: /actors never showed {what}: {last}", P::PLATFORM);
}

/// Waits until `/ready` answers `status` (bounded by the platform's patience); its body.
async fn ready_until<P: Contract>(p: &P, status: u16) -> String {
    let mut last;
    let seen = eventually!(p.patience(), {
        last = p.bridge().get("/ready").await;
        last.0 == status
    });
    assert!(
        seen,
        "{}: /ready never answered {status}; last {last:?}",
        P::PLATFORM
    );
    last.1
}

/// Case 9.
async fn state_shows_the_outage<P: Contract>(p: &mut P) -> Done {
    if let Support::No(why) = p.outage() {
        return Done::Skipped(why);
    }
    let name = format!("chat:{}", p.connection());
    let restarts = p.bridge().actor(&name).await["restarts"]
        .as_u64()
        .unwrap_or(0);
    p.go_away().await;
    let body = ready_until(p, 503).await;
    assert!(
        body.contains(&name),
        "{}: /ready does not say what it waits for: {body}",
        P::PLATFORM
    );
    actor_until(p, "the connection not up, with the error", |a| {
        a["state"] != "up" && a["last_error"].as_str().is_some_and(|e| !e.is_empty())
    })
    .await;
    p.come_back().await;
    ready_until(p, 200).await;
    actor_until(p, "the connection up again", |a| {
        a["state"] == "up" && a["restarts"].as_u64().unwrap_or(0) > restarts
    })
    .await;
    p.sees_bot_back().await;
    // And the user notices: the bot answers again.
    let before = p.bridge().emulator.executions().len();
    let said = p.say("!st2 run echo c9-back").await;
    let e = execution_after(p, before).await;
    let place = p.answer_place(said.as_deref());
    answered_in(p, &e, "c9-back", &place).await;
    Done::Passed
}

/// Case 7: replies announced while the server is away, and the ack and result of a
/// command that was under way when it went, are held and delivered after it, each once.
async fn held_replies_arrive_once<P: Contract>(p: &mut P) -> Done {
    if let Support::No(why) = p.outage() {
        return Done::Skipped(why);
    }
    const N: usize = 3;
    // A command the bridge has read when the server goes away, whose answer from StackStorm
    // (and so its ack) comes only once the bridge knows the server is away; its result
    // too: the execution ends only then. (Held until then, not delayed by a fixed time: a
    // bridge slow to notice the outage on a loaded machine would post the ack before it.)
    let emulator = &p.bridge().emulator;
    emulator.hold_responses(true);
    emulator.hold_completions(true);
    let before = emulator.executions().len();
    let said = p.say("!st2 run echo c7-in-flight").await;
    let in_flight = execution_after(p, before).await;
    p.go_away().await;
    ready_until(p, 503).await;
    actor_until(p, "the connection not up", |a| a["state"] != "up").await;
    p.bridge().emulator.hold_responses(false);
    p.bridge().emulator.hold_completions(false);
    announce_burst(p, "c7-held", N);
    whisper(p, "c7-held-whisper");
    // The bridge holds them (what /actors shows as queued) rather than dropping them: the
    // announcements, the whisper, and the in-flight command's ack and result (a platform
    // may need more than one message for one reply).
    actor_until(p, "the replies queued", |a| {
        a["queued"].as_u64() >= Some(N as u64 + 3)
    })
    .await;
    let msgs = p.bot_messages().await;
    assert!(
        count(&msgs, "c7-held") == 0 && count(&msgs, &in_flight.id) == 0,
        "{}: posted while the server was away? {msgs:#?}",
        P::PLATFORM
    );
    p.come_back().await;
    wait_for(p, "the held replies", |m| {
        find(m, &Where::Room, &[format!("c7-held-{N:02}").as_str()]).is_some()
            && find(m, &Where::Direct, &["c7-held-whisper"]).is_some()
    })
    .await;
    let place = p.answer_place(said.as_deref());
    answered_in(p, &in_flight, "c7-in-flight", &place).await;
    // A command after the outage is answered: the new link works both ways, and every
    // send of a held reply (a retry too) was made before its answer.
    p.sees_bot_back().await;
    let before = p.bridge().emulator.executions().len();
    let said = p.say("!st2 run echo c7-after").await;
    let e = execution_after(p, before).await;
    let place = p.answer_place(said.as_deref());
    answered_in(p, &e, "c7-after", &place).await;
    let msgs = fence(p, "c7-fence").await;
    each_once_in_order::<P>(
        &msgs
            .iter()
            .filter(|m| !m.text.contains("whisper"))
            .cloned()
            .collect::<Vec<_>>(),
        "c7-held",
        N,
    );
    let whispers: Vec<&Posted> = msgs
        .iter()
        .filter(|m| m.text.contains("c7-held-whisper"))
        .collect();
    assert!(
        whispers.len() == 1 && whispers[0].place == Where::Direct,
        "{}: the held whisper should arrive once, privately: {whispers:#?}",
        P::PLATFORM
    );
    let result = format!("execution: {}", in_flight.id);
    let acks = msgs
        .iter()
        .filter(|m| {
            m.text.contains("Started")
                && (m.text.contains(&in_flight.id) || m.text.contains("c7-in-flight"))
        })
        .count();
    assert!(
        acks == 1 && count(&msgs, &result) == 1,
        "{}: the in-flight command's ack ({acks}) and result ({}) should arrive once each",
        P::PLATFORM,
        count(&msgs, &result)
    );
    Done::Passed
}
