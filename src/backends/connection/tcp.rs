//! The TCP transport the line- and stream-based platforms share (IRC, XMPP): connect with
//! a deadline and no Nagle delay, and wrap in TLS when asked.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

use super::error::ConnectionError;

/// A byte stream to the server, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

/// Connects to `host:port` within `timeout`.
pub async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, ConnectionError> {
    let during = || format!("connecting to {host}:{port}");
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| ConnectionError::Timeout(during()))?
        .map_err(|e| ConnectionError::network(during(), e))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// A TLS session over `stream` with the server named `name` (its certificate must name it),
/// within `timeout`.
pub async fn tls<S: Stream + 'static>(
    stream: S,
    name: &str,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, ConnectionError> {
    let server = rustls_pki_types::ServerName::try_from(name.to_owned()).map_err(|e| {
        ConnectionError::Protocol(format!("`{name}` is not a TLS server name: {e}"))
    })?;
    let during = || format!("the TLS handshake with {name}");
    tokio::time::timeout(
        timeout,
        tokio_rustls::TlsConnector::from(config).connect(server, stream),
    )
    .await
    .map_err(|_| ConnectionError::Timeout(during()))?
    .map_err(|e| ConnectionError::network(during(), e))
}
