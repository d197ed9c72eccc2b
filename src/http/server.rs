//! Building and binding the HTTP server.
//!
//! No client can hold a connection and a handler open for long: the request head must
//! arrive within [`HEAD_TIMEOUT`] (actix answers 408 and closes), a request body within
//! [`BODY_TIMEOUT`] of its head (the body stream then ends in an error; the login page
//! answers 408, and a connection whose body was not read is closed), and an idle
//! keep-alive connection is closed after actix's default 5 s.

use std::{
    future::Future,
    io,
    net::{SocketAddr, TcpListener},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{
    dev::{Payload, ServerHandle, Service},
    error::PayloadError,
    web, App, HttpMessage, HttpServer,
};
use bytes::Bytes;
use futures_util::Stream;
use tracing_actix_web::TracingLogger;

use super::{configure, HttpState};

/// Time allowed for a request's head (request line and headers) to arrive.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed for a request's whole body to arrive, counted from its head. Bodies here are
/// small (a login form is at most 16 KiB, a Slack event a few KiB).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a client to close after the bridge closed its side.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A running server.
pub struct RunningServer {
    /// The bound address (useful when the configured port was 0).
    pub addr: SocketAddr,
    /// Stops the server.
    pub handle: ServerHandle,
}

/// Binds `listen` and starts serving on the current actix system, over TLS when `tls` is set.
pub fn start(
    listen: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    state: HttpState,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap_fn(|mut req, srv| {
                let body = req.take_payload();
                req.set_payload(with_deadline(body, BODY_TIMEOUT));
                srv.call(req)
            })
            .wrap(TracingLogger::<super::redact::RedactingRootSpan>::new())
            .app_data(web::Data::new(state.clone()))
            .configure(configure)
    })
    .workers(1)
    .client_request_timeout(HEAD_TIMEOUT)
    .client_disconnect_timeout(DISCONNECT_TIMEOUT)
    .disable_signals();
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(RunningServer { addr, handle })
}

/// `body`, which ends with a timeout error when it is not all there within `limit`.
/// A request without a body is left as it is.
fn with_deadline(body: Payload, limit: Duration) -> Payload {
    if matches!(body, Payload::None) {
        return body;
    }
    Payload::from(Box::pin(DeadlineBody {
        inner: Some(body),
        deadline: Box::pin(tokio::time::sleep(limit)),
    })
        as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>)
}

/// Whether a body read failed because the body was too slow (see [`BODY_TIMEOUT`]).
pub fn is_body_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}

/// A request body with a deadline.
struct DeadlineBody {
    /// `None` once the deadline has passed (the body is dropped then).
    inner: Option<Payload>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for DeadlineBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = Pin::new(inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.inner = None;
                Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{stream, StreamExt};

    use super::*;

    /// A body of `chunks`, then nothing more ever (a client that stopped sending).
    fn stalled(chunks: &[&'static [u8]]) -> Payload {
        let data: Vec<Result<Bytes, PayloadError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Payload::from(Box::pin(stream::iter(data).chain(stream::pending()))
            as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>)
    }

    #[actix_rt::test]
    async fn a_body_that_stops_arriving_ends_in_a_timeout_error() {
        let mut body = with_deadline(stalled(&[b"shared_word=a"]), Duration::from_millis(200));
        let first = body.next().await.expect("a chunk").expect("data");
        assert_eq!(&first[..], b"shared_word=a");
        let started = std::time::Instant::now();
        let second = body.next().await.expect("an error, not the end");
        assert!(
            matches!(&second, Err(e) if is_body_timeout(e)),
            "{second:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(body.next().await.is_none());
    }

    #[actix_rt::test]
    async fn a_whole_body_passes_unchanged() {
        let whole: Vec<Result<Bytes, PayloadError>> = vec![Ok(Bytes::from_static(b"abc"))];
        let whole = Payload::from(Box::pin(stream::iter(whole))
            as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>);
        let mut body = with_deadline(whole, Duration::from_secs(5));
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"abc");
        assert!(body.next().await.is_none());
        assert!(matches!(
            with_deadline(Payload::None, Duration::from_secs(1)),
            Payload::None
        ));
    }
}
