//! The console as a [`Platform`]: typed lines in, printed lines out. Its link is opened
//! once: at the end of input the bridge stops (`exit_on_eof`) or keeps printing results.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{future::LocalBoxFuture, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};

use super::{
    config::ConsoleSettings,
    escape_line,
    wire::{output_lines, ConsoleLines, InputLine},
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{ConnectionError, Effects, Link, Platform, Sending},
    domain::{
        chunk::{split_message, LengthUnit},
        message::{ChatUser, InboundMessage, Room, RoomKind, Target},
    },
};

/// Longest input line accepted (bytes, without the line ending); longer lines are skipped
/// with a warning, not buffered, and the next line is read as usual.
const MAX_INPUT_LINE: usize = 64 * 1024;

/// Where the console reads and writes.
pub struct ConsoleIo {
    /// Lines typed by the user.
    pub input: Box<dyn AsyncRead + Unpin>,
    /// Lines written by the bot.
    pub output: Box<dyn AsyncWrite + Unpin>,
    /// `output` is a terminal: multi-line messages are printed as lines.
    pub terminal: bool,
}

impl ConsoleIo {
    /// Standard input and output.
    pub fn stdio() -> Self {
        use std::io::IsTerminal;
        Self {
            input: Box::new(stdin_on_own_thread()),
            output: Box::new(tokio::io::stdout()),
            terminal: std::io::stdout().is_terminal(),
        }
    }
}

/// Standard input, read on a thread of its own. `tokio::io::stdin` reads on one of the
/// runtime's blocking threads, and dropping the runtime waits for that read: a bridge stopped
/// by a signal would hang until the next line was typed. A detached thread does not hold
/// the process up.
fn stdin_on_own_thread() -> impl AsyncRead + Unpin {
    use std::io::Read;
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(16);
    let spawned = std::thread::Builder::new()
        .name("console-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 8192];
            loop {
                let read = match stdin.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => Ok(bytes::Bytes::copy_from_slice(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = read.is_err();
                if sender.blocking_send(read).is_err() || failed {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the thread that reads standard input");
    }
    let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    tokio_util::io::StreamReader::new(Box::pin(chunks))
}

/// What the console reads.
pub enum Typed {
    /// A line (or a line skipped, and why).
    Line(InputLine),
    /// The end of input (or a failed input).
    End,
}

/// The console's state.
pub struct Console {
    name: String,
    settings: ConsoleSettings,
    bot_name: String,
    io: Option<ConsoleIo>,
    /// The output is a terminal (see [`ConsoleIo::terminal`]).
    terminal: bool,
    next_message_id: AtomicU64,
}

impl Console {
    /// The console connection `name`, reading and writing `io`.
    pub fn new(name: String, settings: ConsoleSettings, bot_name: String, io: ConsoleIo) -> Self {
        Self {
            name,
            settings,
            bot_name,
            terminal: io.terminal,
            io: Some(io),
            next_message_id: AtomicU64::new(1),
        }
    }

    /// Tells the operator, and the log, that an input line was skipped, and why.
    fn skipped(&self, why: &str, prefix: &str, fx: &mut Effects<Self>) {
        tracing::warn!(
            connection = %self.name,
            reason = why,
            prefix = %prefix,
            "console input line skipped"
        );
        // `prefix` is escaped already: shown as it is, not escaped twice.
        let line = escape_line(&format!(
            "{} input line ignored ({why}); it began: ",
            self.prefix()
        ));
        fx.write(format!("{line}{prefix}"));
    }

    fn prefix(&self) -> String {
        format!("[{}]", self.bot_name)
    }

    fn to_inbound(&self, line: &str) -> Option<InboundMessage> {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            return None;
        }
        // `/as <id> TEXT`: another person at the same console (trying an approval, which
        // must come from someone else, takes two).
        let (user, line) = match line
            .strip_prefix("/as ")
            .and_then(|rest| rest.trim_start().split_once(' '))
            .filter(|(id, _)| !id.is_empty())
        {
            Some((id, rest)) => (
                ChatUser {
                    connection: self.name.clone(),
                    id: id.to_owned(),
                    name: id.to_owned(),
                },
                rest.trim_start(),
            ),
            None => (
                ChatUser {
                    connection: self.name.clone(),
                    id: self.settings.user_id.clone(),
                    name: self.settings.user_name.clone(),
                },
                line,
            ),
        };
        let (room, text, room_name) = match line.strip_prefix("/dm ") {
            Some(text) => (
                Room {
                    connection: self.name.clone(),
                    id: user.id.clone(),
                    kind: RoomKind::Direct,
                    thread: None,
                },
                text,
                None,
            ),
            None => (
                Room {
                    connection: self.name.clone(),
                    id: self.settings.room.clone(),
                    kind: RoomKind::Group,
                    thread: None,
                },
                line,
                Some(self.settings.room.clone()),
            ),
        };
        let mention = format!("@{}", self.bot_name);
        let (mentioned, text) = match text.trim_start().strip_prefix(&mention) {
            Some(rest) if rest.is_empty() || rest.starts_with([' ', ':', ',']) => {
                (true, rest.trim_start_matches([':', ',']).trim_start())
            }
            _ => (false, text),
        };
        let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
        Some(InboundMessage {
            user,
            room,
            text: text.to_owned(),
            message_id: Some(format!("console-{id}")),
            mentioned,
            room_name,
            org: None,
        })
    }
}

impl Platform for Console {
    const KIND: &'static str = "console";
    type Frame = Typed;
    type Write = String;
    type Item = String;
    type Event = ();
    type Hello = ();

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let Some(io) = self.io.take() else {
            // Standard input and output cannot be opened twice: a console whose output
            // failed stays down.
            return Box::pin(async {
                Err(ConnectionError::Fatal(
                    "the console's input and output are gone".into(),
                ))
            });
        };
        let lines = FramedRead::new(io.input, ConsoleLines::new(MAX_INPUT_LINE)).map(|line| {
            Ok(match line {
                Ok(line) => Typed::Line(line),
                // The input itself failed: it ends after this, as at end of input.
                Err(e) => {
                    tracing::warn!(error = %e, "console input failed");
                    Typed::End
                }
            })
        });
        // After the end of input the link stays open: results are still printed.
        let frames = lines
            .chain(futures_util::stream::once(async { Ok(Typed::End) }))
            .chain(futures_util::stream::pending());
        let sink =
            SinkExt::<String>::sink_map_err(FramedWrite::new(io.output, LinesCodec::new()), |e| {
                ConnectionError::network("writing to the console", e)
            });
        Box::pin(async move {
            Ok(Link {
                frames: frames.boxed_local(),
                sink: Some(Box::pin(sink)),
                hello: (),
            })
        })
    }

    fn opened(&mut self, _hello: (), fx: &mut Effects<Self>) {
        fx.ready();
    }

    fn frame(&mut self, typed: Typed, fx: &mut Effects<Self>) {
        fx.activity();
        match typed {
            Typed::Line(InputLine::Text(line)) => {
                if let Some(msg) = self.to_inbound(&line) {
                    fx.inbound(msg);
                }
            }
            Typed::Line(InputLine::TooLong { prefix }) => {
                self.skipped(&format!("longer than {MAX_INPUT_LINE} bytes"), &prefix, fx);
            }
            Typed::Line(InputLine::NotUtf8 { prefix }) => {
                self.skipped("not valid UTF-8", &prefix, fx);
            }
            Typed::End if self.settings.exit_on_eof => {
                tracing::info!("console input closed; stopping");
                actix_rt::System::current().stop();
            }
            Typed::End => tracing::info!("console input closed; results will still be printed"),
        }
    }

    fn render(&mut self, msg: Deliver) -> Vec<String> {
        let place = match &msg.target {
            Target::Room {
                kind: RoomKind::Direct,
                id,
                ..
            } => format!("@{id} (dm)"),
            Target::User { id } => format!("@{id} (dm)"),
            Target::Room {
                id,
                thread: Some(thread),
                ..
            } => format!("#{id} (thread {thread})"),
            Target::Room { id, .. } => format!("#{id}"),
        };
        let head = format!("{} {place}:", self.prefix());
        split_message(
            &msg.text,
            self.settings.max_message_length,
            LengthUnit::Chars,
        )
        .iter()
        .flat_map(|part| output_lines(&head, part, self.terminal))
        .collect()
    }

    fn send(&mut self, line: &String) -> Sending<Self> {
        Sending::Write(vec![line.clone()])
    }
}

#[cfg(test)]
mod tests {
    //! The console's lines in and out, without a terminal.
    use super::*;

    fn console(max_message_length: usize) -> Console {
        let settings: ConsoleSettings = serde_json::from_value(serde_json::json!({
            "user_id": "ops",
            "user_name": "Ops Person",
            "room": "lobby",
            "max_message_length": max_message_length,
        }))
        .unwrap();
        let io = ConsoleIo {
            input: Box::new(tokio::io::empty()),
            output: Box::new(tokio::io::sink()),
            terminal: false,
        };
        Console::new("console".into(), settings, "stormbot".into(), io)
    }

    fn typed(p: &mut Console, line: &str) -> Effects<Console> {
        let mut fx = Effects::default();
        p.frame(Typed::Line(InputLine::Text(line.into())), &mut fx);
        fx
    }

    fn one(fx: &Effects<Console>) -> &InboundMessage {
        match fx.messages() {
            [m] => m,
            other => panic!("one message, not {other:?}"),
        }
    }

    #[test]
    fn the_console_is_ready_once_open() {
        let mut p = console(0);
        let mut fx = Effects::default();
        p.opened((), &mut fx);
        assert!(fx.is_ready());
    }

    #[test]
    fn lines_become_messages_in_the_room_in_a_dm_or_from_another_person() {
        let mut p = console(0);
        let fx = typed(&mut p, "!st2 run date\r");
        let m = one(&fx);
        assert_eq!(m.text, "!st2 run date", "the line ending is not part of it");
        assert_eq!(
            (m.user.id.as_str(), m.user.name.as_str()),
            ("ops", "Ops Person")
        );
        assert_eq!(
            (m.room.id.as_str(), m.room.kind),
            ("lobby", RoomKind::Group)
        );
        assert_eq!(m.room_name.as_deref(), Some("lobby"));
        assert!(!m.mentioned);
        let first_id = m.message_id.clone();

        let fx = typed(&mut p, "/dm @stormbot: run date");
        let m = one(&fx);
        assert_eq!((m.room.id.as_str(), m.room.kind), ("ops", RoomKind::Direct));
        assert_eq!(m.text, "run date", "the mention is stripped");
        assert!(m.mentioned);
        assert_ne!(m.message_id, first_id, "every line has its own id");

        let fx = typed(&mut p, "/as bob !st2 approve abcde");
        let m = one(&fx);
        assert_eq!((m.user.id.as_str(), m.user.name.as_str()), ("bob", "bob"));
        assert_eq!(m.text, "!st2 approve abcde");

        // Blank lines are nothing; `@stormbotty` is not a mention of `@stormbot`.
        assert!(typed(&mut p, "   ").messages().is_empty());
        assert!(!one(&typed(&mut p, "@stormbotty hi")).mentioned);
    }

    #[test]
    fn a_skipped_line_is_explained_on_the_console() {
        let mut p = console(0);
        let mut fx = Effects::default();
        p.frame(
            Typed::Line(InputLine::TooLong {
                prefix: "aaaa".into(),
            }),
            &mut fx,
        );
        assert!(fx.messages().is_empty());
        let [line] = fx.written() else {
            panic!("one line: {:?}", fx.written());
        };
        assert!(
            line.starts_with("[stormbot] input line ignored (longer than"),
            "{line}"
        );
        assert!(line.ends_with("it began: aaaa"), "{line}");
    }

    #[test]
    fn deliveries_print_where_they_go_split_at_the_limit() {
        let mut p = console(10);
        let deliver = |target: Target, text: &str| Deliver {
            target,
            text: text.into(),
            extra: None,
            reply_to: None,
            layout: None,
            receipt: None,
        };
        let room = Target::Room {
            id: "lobby".into(),
            kind: RoomKind::Group,
            thread: None,
        };
        let lines = p.render(deliver(room, "hello world, twice"));
        let parts: Vec<&str> = lines
            .iter()
            .map(|l| l.strip_prefix("[stormbot] #lobby: ").expect(l))
            .collect();
        assert!(parts.len() > 1, "{lines:?}");
        assert!(parts.iter().all(|p| p.chars().count() <= 10), "{lines:?}");
        assert_eq!(
            parts.concat(),
            "hello world, twice",
            "nothing lost, in order"
        );
        let thread = Target::Room {
            id: "lobby".into(),
            kind: RoomKind::Group,
            thread: Some("t1".into()),
        };
        assert_eq!(
            p.render(deliver(thread, "a\nb")),
            ["[stormbot] #lobby (thread t1): a\\nb"],
            "one escaped line when not a terminal"
        );
        let dm = Target::User { id: "ops".into() };
        let lines = p.render(deliver(dm, "psst"));
        assert_eq!(lines, ["[stormbot] @ops (dm): psst"]);
        assert!(matches!(p.send(&lines[0]), Sending::Write(w) if w == lines));
    }
}
