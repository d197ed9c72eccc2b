//! Framing: CR LF lines in, parsed with `irc-proto`; raw lines out.
//!
//! `irc_proto::IrcCodec` buffers without limit and fails the whole stream on one line of
//! bad UTF-8, so the framing is done here: lines are capped (message tags make them longer
//! than 512 bytes, so the cap is generous), decoded lossily, and a line that does not parse
//! is handed up as [`Incoming::Unparsed`] instead of ending the connection.

use bytes::{Buf, BufMut, BytesMut};
use irc_proto::Message;
use tokio_util::codec::{Decoder, Encoder};

/// Longest line accepted from the server (8191 bytes of tags + 512).
pub const MAX_INBOUND_LINE: usize = 8191 + 512;

/// One line from the server.
#[derive(Debug)]
pub enum Incoming {
    /// A parsed message.
    Message(Box<Message>),
    /// A line that was too long or did not parse; logged and skipped.
    Unparsed(String),
}

/// The line codec.
#[derive(Debug, Default)]
pub struct IrcLines {
    discarding: bool,
}

impl Decoder for IrcLines {
    type Item = Incoming;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, Self::Error> {
        loop {
            let Some(end) = src.iter().position(|b| *b == b'\n') else {
                if src.len() > MAX_INBOUND_LINE {
                    src.clear();
                    if !self.discarding {
                        self.discarding = true;
                        return Ok(Some(Incoming::Unparsed("line too long".into())));
                    }
                }
                return Ok(None);
            };
            let line = src.split_to(end + 1);
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            let text = String::from_utf8_lossy(&line[..end]);
            let text = text.trim_end_matches('\r');
            if text.is_empty() {
                continue;
            }
            // The limit counts the line's bytes as they arrived (its CRs included), as the
            // check above does while the line is still incomplete: a line reads the same
            // however it is split across reads.
            if end > MAX_INBOUND_LINE || text.len() > MAX_INBOUND_LINE {
                return Ok(Some(Incoming::Unparsed("line too long".into())));
            }
            return Ok(Some(match text.parse::<Message>() {
                Ok(m) => Incoming::Message(Box::new(m)),
                Err(e) => Incoming::Unparsed(e.to_string()),
            }));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, Self::Error> {
        let out = self.decode(buf)?;
        if out.is_none() {
            buf.advance(buf.len());
        }
        Ok(out)
    }
}

impl Encoder<String> for IrcLines {
    type Error = std::io::Error;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), Self::Error> {
        // A line never carries CR or LF: that would inject a second command.
        let line = line.split(['\r', '\n']).next().unwrap_or_default();
        dst.reserve(line.len() + 2);
        dst.put_slice(line.as_bytes());
        dst.put_slice(b"\r\n");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lines_and_survives_bad_input() {
        let mut c = IrcLines::default();
        let mut buf = BytesMut::from(&b":a!b@c PRIVMSG #x :hi \xff\r\nPING :srv\r\n\r\n"[..]);
        let Some(Incoming::Message(m)) = c.decode(&mut buf).unwrap() else {
            panic!("message")
        };
        assert_eq!(m.source_nickname(), Some("a"));
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Incoming::Message(_))
        ));
        assert!(c.decode(&mut buf).unwrap().is_none());

        let mut buf = BytesMut::from(vec![b'x'; MAX_INBOUND_LINE + 10].as_slice());
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Incoming::Unparsed(_))
        ));
        buf.extend_from_slice(b"tail of the long line\r\nPING :x\r\n");
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Incoming::Message(_))
        ));

        let mut out = BytesMut::new();
        c.encode("PRIVMSG #x :a\r\nQUIT".into(), &mut out).unwrap();
        assert_eq!(&out[..], b"PRIVMSG #x :a\r\n");
    }
}
