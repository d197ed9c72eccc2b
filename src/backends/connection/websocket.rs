//! The websocket transport the event-pushing platforms share (Mattermost, Discord, Slack's
//! Socket Mode): open a socket with awc, and treat the control frames alike (a ping is
//! answered with a pong, a close ends the link with its code and reason).

use awc::{
    error::WsProtocolError,
    ws::{CloseReason, Frame, Message},
};
use futures_util::{stream::LocalBoxStream, SinkExt, StreamExt};

use super::{
    error::ConnectionError,
    platform::{Effects, FrameSink, Platform},
};

/// A websocket's two halves, ready for a [`super::Link`].
pub struct Socket {
    /// Frames from the server.
    pub frames: LocalBoxStream<'static, Result<Frame, ConnectionError>>,
    /// Messages to the server.
    pub sink: FrameSink<Message>,
}

/// Opens a websocket to `url` (which may carry a query; it is never logged) accepting
/// frames up to `max_frame` bytes.
pub async fn open(
    client: &awc::Client,
    url: &str,
    max_frame: usize,
) -> Result<Socket, ConnectionError> {
    let (_response, framed) = client
        .ws(url)
        .max_frame_size(max_frame)
        .connect()
        .await
        .map_err(|e| ConnectionError::network("opening the websocket", e))?;
    let (sink, stream) = framed.split();
    let sink = sink
        .sink_map_err(|e: WsProtocolError| ConnectionError::network("writing to the websocket", e));
    let frames =
        stream.map(|r| r.map_err(|e| ConnectionError::network("reading the websocket", e)));
    Ok(Socket {
        frames: frames.boxed_local(),
        sink: Box::pin(sink),
    })
}

/// What a platform makes of a websocket frame.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame, for the platform's protocol.
    Text(String),
    /// The server closed the socket: the link ends (unless the platform halts for the code).
    Close(Option<CloseReason>),
    /// Handled here (a ping) or of no interest (binary, pong, a text frame not in UTF-8).
    Nothing,
}

/// Sorts a frame: answers a ping with a pong, turns a close into [`Incoming::Close`].
pub fn incoming<P: Platform<Write = Message>>(frame: Frame, fx: &mut Effects<P>) -> Incoming {
    match frame {
        Frame::Text(bytes) => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Incoming::Text(text),
            Err(_) => {
                tracing::debug!("ignored a websocket text frame that is not UTF-8");
                Incoming::Nothing
            }
        },
        Frame::Ping(payload) => {
            fx.write(Message::Pong(payload));
            Incoming::Nothing
        }
        Frame::Close(reason) => Incoming::Close(reason),
        _ => Incoming::Nothing,
    }
}

/// The error for a close frame: its code and description, as the server gave them.
pub fn closed(reason: Option<CloseReason>) -> ConnectionError {
    ConnectionError::Closed(reason.map(|r| {
        let code: u16 = r.code.into();
        format!("{code} {}", r.description.unwrap_or_default())
            .trim()
            .to_owned()
    }))
}
