//! The console against the contract: the bridge's own standard input and output (in-memory
//! pipes here), with one person typing in one room or, with `/dm `, to the bot.

use std::time::Duration;

use super::{
    cases,
    harness::{Contract, Posted, RateLimit, Support, Unit, Where},
};
use crate::support::{with_test_aliases, TestBridge};

/// The console's test settings (`support.rs`): user `alice`, room `ops`, bot `stormbridge`.
const HEAD: &str = "[stormbridge] ";

pub struct ConsoleContract {
    b: TestBridge,
    seen: Vec<Posted>,
}

impl ConsoleContract {
    async fn start() -> Self {
        let mut opts = with_test_aliases();
        opts.console_toml = "max_message_length = 300".into();
        let b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        Self {
            b,
            seen: Vec::new(),
        }
    }
}

/// Where a printed line says the bot spoke, and what it said.
fn posted(line: &str) -> Posted {
    let rest = line.strip_prefix(HEAD).unwrap_or(line);
    let (place, text) = if let Some(text) = rest.strip_prefix("#ops: ") {
        (Where::Room, text)
    } else if let Some(text) = rest.strip_prefix("@alice (dm): ") {
        (Where::Direct, text)
    } else if let Some((thread, text)) = rest
        .strip_prefix("#ops (thread ")
        .and_then(|r| r.split_once("): "))
    {
        (Where::Thread(thread.to_owned()), text)
    } else {
        (Where::Elsewhere(line.to_owned()), rest)
    };
    Posted {
        place,
        text: text.to_owned(),
    }
}

impl Contract for ConsoleContract {
    const PLATFORM: &'static str = "console";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "console"
    }

    fn room(&self) -> String {
        "ops".into()
    }

    fn user_id(&self) -> String {
        "alice".into()
    }

    fn mention(&self) -> String {
        "@stormbridge".into()
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Chars)
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        self.b.say(text).await;
        None
    }

    async fn say_direct(&mut self, text: &str) {
        self.b.say(&format!("/dm {text}")).await;
    }

    fn threads(&self) -> Support {
        Support::No("the console has one room and no threads: a line goes to the room or, with `/dm `, to the bot")
    }

    fn other_bots(&self) -> Support {
        Support::No(
            "one person types at the console: there are no other bots, and the bot's own output \
             is never read back as input",
        )
    }

    async fn bot_messages(&mut self) -> Vec<Posted> {
        while let Some(line) = self.b.next_line_within(Duration::from_millis(20)).await {
            self.seen.push(posted(&line));
        }
        self.seen.clone()
    }

    fn outage(&self) -> Support {
        Support::No(
            "the console is the bridge's own standard input and output: there is no server to \
             take away",
        )
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Pacing(
            "a terminal has no rate limit, and the console's queue does not pace; what is \
             checked is that a burst is printed whole, in order, once",
        )
    }
}

#[actix_rt::test]
async fn the_console_keeps_the_contract() {
    let mut p = ConsoleContract::start().await;
    cases::run_all(&mut p).await;
}
