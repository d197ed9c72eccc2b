//! Matrix against the contract: a real Synapse that rate-limits every sender (2 messages a
//! second after a burst of 4), the bridge connected to it through a [`Relay`] (the outage,
//! and the count of Synapse's 429s), alice and another bot as client-server API users.

use std::time::Duration;

use serde_json::json;

use super::{
    cases,
    harness::{Contract, Posted, RateLimit, Support, Unit, Where},
    relay::Relay,
};
use crate::{
    matrix::{MxUser, Synapse, BOT, BOT_PASSWORD, SLOW},
    support::{with_test_aliases, TestBridge},
};

pub struct MatrixContract {
    server: Synapse,
    relay: Relay,
    alice: MxUser,
    otherbot: Option<MxUser>,
    b: TestBridge,
    room: String,
    /// Direct chats between alice and the bot (the one alice opened, and any the bot opens).
    dms: Vec<String>,
    seen: Vec<Posted>,
    /// How many of alice's timeline events were looked at.
    scanned: usize,
}

impl MatrixContract {
    async fn start() -> Self {
        let server = Synapse::start(2.0, 4, &["alice", "otherbot"]).await;
        let relay = Relay::start(server.port).await;
        let mut alice = MxUser::login(&server, "alice").await;
        let room = alice.create_room("ops").await;
        let mut opts = with_test_aliases();
        opts.extra_toml = format!(
            "[[chat]]\nname = \"matrix\"\nbackend = \"matrix\"\nhomeserver = \"http://127.0.0.1:{}\"\n\
             user = \"stormbridge\"\npassword = \"{BOT_PASSWORD}\"\nrooms = [\"#ops:localhost\"]\n\
             sync_timeout_secs = 5\nmax_message_bytes = 300\nignore_users = [\"@otherbot:localhost\"]\n",
            relay.port
        );
        let b = TestBridge::start_with(opts).await;
        alice.sees_join(&room, BOT).await;
        b.wait_ready(200).await;
        let dm = alice.create_dm(BOT).await;
        alice.sees_join(&dm, BOT).await;
        Self {
            server,
            relay,
            alice,
            otherbot: None,
            b,
            room,
            dms: vec![dm],
            seen: Vec::new(),
            scanned: 0,
        }
    }

    /// One sync round for alice (up to 200 ms when nothing is new); the bot's new messages
    /// are sorted by place, and invitations (a direct chat the bot opened) accepted.
    async fn sync(&mut self) {
        self.alice.sync(200).await;
        for invite in std::mem::take(&mut self.alice.invites) {
            self.alice.join(&invite).await;
            self.dms.push(invite);
        }
        for (room, e) in &self.alice.seen[self.scanned..] {
            if e["type"] != "m.room.message" || e["sender"] != BOT {
                continue;
            }
            let text = e["content"]["body"].as_str().unwrap_or_default().to_owned();
            let relation = &e["content"]["m.relates_to"];
            let place = if *room == self.room {
                match relation["event_id"].as_str() {
                    Some(root) if relation["rel_type"] == "m.thread" => {
                        Where::Thread(root.to_owned())
                    }
                    _ => Where::Room,
                }
            } else if self.dms.contains(room) {
                Where::Direct
            } else {
                Where::Elsewhere(room.clone())
            };
            self.seen.push(Posted { place, text });
        }
        self.scanned = self.alice.seen.len();
    }
}

impl Contract for MatrixContract {
    const PLATFORM: &'static str = "matrix";

    fn bridge(&self) -> &TestBridge {
        &self.b
    }

    fn connection(&self) -> &str {
        "matrix"
    }

    fn room(&self) -> String {
        self.room.clone()
    }

    fn user_id(&self) -> String {
        "@alice:localhost".into()
    }

    fn mention(&self) -> String {
        "stormbridge:".into()
    }

    fn limit(&self) -> (usize, Unit) {
        (300, Unit::Bytes)
    }

    fn patience(&self) -> Duration {
        SLOW
    }

    async fn say(&mut self, text: &str) -> Option<String> {
        let room = self.room.clone();
        Some(self.alice.say(&room, text).await)
    }

    async fn say_direct(&mut self, text: &str) {
        let dm = self.dms[0].clone();
        self.alice.say(&dm, text).await;
    }

    fn threads(&self) -> Support {
        Support::Yes
    }

    async fn start_thread(&mut self) -> String {
        let room = self.room.clone();
        self.alice.say(&room, "a thread about the deploy").await
    }

    async fn say_in_thread(&mut self, thread: &str, text: &str) {
        let room = self.room.clone();
        self.alice
            .send_content(
                &room,
                json!({"msgtype": "m.text", "body": text,
                       "m.relates_to": {"rel_type": "m.thread", "event_id": thread}}),
            )
            .await;
    }

    fn other_bots(&self) -> Support {
        Support::Yes
    }

    /// `@otherbot` (in `ignore_users`) says it in the room; the bridge reads the room's
    /// timeline in order, so it has it before anything alice says next.
    async fn other_bot_says(&mut self, text: &str) {
        if self.otherbot.is_none() {
            let otherbot = MxUser::login(&self.server, "otherbot").await;
            otherbot.join(&self.room).await;
            self.otherbot = Some(otherbot);
        }
        let room = self.room.clone();
        if let Some(otherbot) = self.otherbot.as_mut() {
            otherbot.say(&room, text).await;
        }
    }

    // `own_account_says`: the default. Synapse returns the bot's own messages in its sync,
    // so the bridge reads its own post as it reads anyone's.

    async fn bot_messages(&mut self) -> Vec<Posted> {
        self.sync().await;
        self.seen.clone()
    }

    fn outage(&self) -> Support {
        Support::Yes
    }

    async fn go_away(&mut self) {
        self.relay.go_down();
    }

    async fn come_back(&mut self) {
        self.relay.come_up();
    }

    fn rate_limit(&self) -> RateLimit {
        RateLimit::Server
    }

    fn rate_limited(&self) -> usize {
        self.relay.answers_429()
    }
}

#[actix_rt::test]
async fn matrix_keeps_the_contract() {
    let mut p = MatrixContract::start().await;
    cases::run_all(&mut p).await;
}
