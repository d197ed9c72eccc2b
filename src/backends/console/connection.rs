//! The console connection actor.

use std::sync::atomic::{AtomicU64, Ordering};

use actix::{io::WriteHandler, prelude::*};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::{
    escape_line,
    input::{ConsoleLines, InputLine},
    output::output_lines,
};
use crate::{
    actors::messages::{Deliver, Inbound},
    actors::status::{ActorState, StatusReporter},
    config::ConsoleSettings,
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
            input: Box::new(tokio::io::stdin()),
            output: Box::new(tokio::io::stdout()),
            terminal: std::io::stdout().is_terminal(),
        }
    }
}

type Writer = actix::io::FramedWrite<String, Box<dyn AsyncWrite + Unpin>, LinesCodec>;

/// The console connection.
pub struct ConsoleConnection {
    name: String,
    settings: ConsoleSettings,
    bot_name: String,
    dispatcher: Recipient<Inbound>,
    io: Option<ConsoleIo>,
    writer: Option<Writer>,
    /// The output is a terminal (see [`ConsoleIo::terminal`]).
    terminal: bool,
    status: StatusReporter,
    next_message_id: AtomicU64,
}

impl ConsoleConnection {
    /// A console connection named `name`.
    pub fn new(
        name: String,
        settings: ConsoleSettings,
        bot_name: String,
        dispatcher: Recipient<Inbound>,
        io: ConsoleIo,
        status: StatusReporter,
    ) -> Self {
        Self {
            name,
            settings,
            bot_name,
            dispatcher,
            terminal: io.terminal,
            io: Some(io),
            writer: None,
            status,
            next_message_id: AtomicU64::new(1),
        }
    }

    /// Tells the operator, and the log, that an input line was skipped, and why.
    fn skipped(&mut self, why: &str, prefix: &str) {
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
        if let Some(writer) = self.writer.as_mut() {
            writer.write(format!("{line}{prefix}"));
        }
    }

    fn prefix(&self) -> String {
        format!("[{}]", self.bot_name)
    }

    fn to_inbound(&self, line: &str) -> Option<InboundMessage> {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            return None;
        }
        let user = ChatUser {
            connection: self.name.clone(),
            id: self.settings.user_id.clone(),
            name: self.settings.user_name.clone(),
        };
        let (room, text, room_name) = match line.strip_prefix("/dm ") {
            Some(text) => (
                Room {
                    connection: self.name.clone(),
                    id: self.settings.user_id.clone(),
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

impl Actor for ConsoleConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(io) = self.io.take() else {
            self.status
                .state(ActorState::Down, Some("console input already used".into()));
            return;
        };
        ctx.add_stream(FramedRead::new(io.input, ConsoleLines::new(MAX_INPUT_LINE)));
        self.writer = Some(actix::io::FramedWrite::new(
            io.output,
            LinesCodec::new(),
            ctx,
        ));
        self.status.state(ActorState::Up, None);
    }
}

impl WriteHandler<LinesCodecError> for ConsoleConnection {
    fn error(&mut self, err: LinesCodecError, _ctx: &mut Self::Context) -> Running {
        tracing::error!(error = %err, "console output failed");
        self.status
            .state(ActorState::Down, Some(format!("output failed: {err}")));
        Running::Continue
    }
}

impl StreamHandler<Result<InputLine, std::io::Error>> for ConsoleConnection {
    fn handle(&mut self, item: Result<InputLine, std::io::Error>, _ctx: &mut Self::Context) {
        self.status.activity();
        match item {
            Ok(InputLine::Text(line)) => {
                if let Some(msg) = self.to_inbound(&line) {
                    self.dispatcher.do_send(Inbound(msg));
                }
            }
            Ok(InputLine::TooLong { prefix }) => {
                self.skipped(&format!("longer than {MAX_INPUT_LINE} bytes"), &prefix);
            }
            Ok(InputLine::NotUtf8 { prefix }) => {
                self.skipped("not valid UTF-8", &prefix);
            }
            // The input itself failed: the stream ends after this (as at end of input).
            Err(e) => {
                tracing::warn!(error = %e, "console input failed");
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        if self.settings.exit_on_eof {
            tracing::info!("console input closed; stopping");
            System::current().stop();
        } else {
            tracing::info!("console input closed; results will still be printed");
        }
    }
}

impl Handler<Deliver> for ConsoleConnection {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
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
        let prefix = self.prefix();
        for part in split_message(
            &msg.text,
            self.settings.max_message_length,
            LengthUnit::Chars,
        ) {
            for line in output_lines(&format!("{prefix} {place}:"), &part, self.terminal) {
                if let Some(writer) = self.writer.as_mut() {
                    writer.write(line);
                }
            }
        }
        self.status.activity();
    }
}
