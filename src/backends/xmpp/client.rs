//! Opening an authenticated XMPP client stream: TCP, STARTTLS (unless plaintext was
//! explicitly configured for a loopback server), SASL PLAIN, resource binding, session.
//! Public so the integration tests' test user is the same client code.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use super::{
    config::{Jid, TlsMode},
    wire::{escape, Element, Frame, XmlCodec, NS_STREAMS},
};
use crate::backends::connection::{tcp, ConnectionError};

/// A byte stream, TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The framed stream.
pub type XmppStream = Framed<Box<dyn Io>, XmlCodec>;

/// What to log in with.
pub struct Login {
    /// `host`, `port` to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The account.
    pub jid: Jid,
    /// The password.
    pub password: SecretString,
    /// The resource to ask for.
    pub resource: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// TLS client configuration for STARTTLS.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Time allowed for each step.
    pub timeout: Duration,
}

/// A logged-in stream and the full JID the server bound.
pub struct Session {
    /// The stream, ready for stanzas.
    pub stream: XmppStream,
    /// The bound full JID.
    pub jid: Jid,
}

const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// The server refused or broke the log-in (tried again after the backoff).
fn refused(why: impl Into<String>) -> ConnectionError {
    ConnectionError::Protocol(why.into())
}

/// The next frame but a skipped stanza (over a reader limit; logged and passed over).
async fn next(stream: &mut XmppStream, timeout: Duration) -> Result<Frame, ConnectionError> {
    loop {
        match next_frame(stream, timeout).await? {
            Frame::Skipped(s) => tracing::warn!(
                element = ?s.name.chars().take(64).collect::<String>(),
                limit = s.limit.as_str(),
                bytes = s.bytes,
                "skipped a stanza over the reader's limit while logging in"
            ),
            frame => return Ok(frame),
        }
    }
}

async fn next_frame(stream: &mut XmppStream, timeout: Duration) -> Result<Frame, ConnectionError> {
    match tokio::time::timeout(timeout, stream.next()).await {
        Err(_) => Err(ConnectionError::Timeout("the server's answer".into())),
        Ok(None) => Err(ConnectionError::Closed(None)),
        Ok(Some(Err(e))) => Err(ConnectionError::network("reading from the server", e)),
        Ok(Some(Ok(Frame::Stanza(e))))
            if e.local_name() == "error"
                && (e.ns == NS_STREAMS || e.name.starts_with("stream")) =>
        {
            let condition = e
                .elements()
                .next()
                .map(|c| c.local_name().to_owned())
                .unwrap_or_default();
            Err(ConnectionError::Closed(Some(format!(
                "stream error from the server: {condition}"
            ))))
        }
        Ok(Some(Ok(f))) => Ok(f),
    }
}

async fn send(stream: &mut XmppStream, xml: String) -> Result<(), ConnectionError> {
    stream
        .send(xml)
        .await
        .map_err(|e| ConnectionError::network("writing to the server", e))
}

/// Opens (or restarts) the stream and returns the features.
async fn open(
    stream: &mut XmppStream,
    domain: &str,
    timeout: Duration,
) -> Result<Element, ConnectionError> {
    send(
        stream,
        format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams'>",
            escape(domain)
        ),
    )
    .await?;
    match next(stream, timeout).await? {
        Frame::StreamOpen(_) => {}
        other => return Err(refused(format!("expected a stream header, got {other:?}"))),
    }
    match next(stream, timeout).await? {
        Frame::Stanza(f) if f.local_name() == "features" => Ok(f),
        other => Err(refused(format!("expected stream features, got {other:?}"))),
    }
}

/// A failed STARTTLS handshake in plain words; `domain` is the name the certificate must carry.
fn tls_failure(e: &std::io::Error, domain: &str) -> String {
    use rustls::{CertificateError as C, Error as E};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
        return format!("TLS handshake failed: {e}");
    };
    let why = match err {
        E::InvalidCertificate(C::UnknownIssuer) => "the server's certificate is not trusted: \
            no known CA signed it (for a private CA, set `tls_ca_file`)"
            .to_owned(),
        E::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => format!(
            "the server's certificate is not valid for `{domain}`, the JID's domain \
             (it names {})",
            if presented.is_empty() {
                "no host".to_owned()
            } else {
                presented
                    .iter()
                    .map(|n| {
                        // rustls gives the names as `DnsName("host")`.
                        n.strip_prefix("DnsName(\"")
                            .and_then(|n| n.strip_suffix("\")"))
                            .unwrap_or(n)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        E::InvalidCertificate(C::NotValidForName) => {
            format!("the server's certificate is not valid for `{domain}`, the JID's domain")
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired".to_owned()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "the server's certificate is not valid yet".to_owned()
        }
        E::InvalidCertificate(C::Revoked) => "the server's certificate is revoked".to_owned(),
        E::InvalidCertificate(other) => format!("the server's certificate was refused: {other}"),
        other => other.to_string(),
    };
    format!("TLS handshake failed: {why}")
}

/// The SASL PLAIN initial response, base64 of `\0user\0password`.
fn plain(user: &str, password: &str) -> zeroize::Zeroizing<String> {
    use base64::Engine as _;
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(user.len() + password.len() + 2));
    raw.push(0);
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*raw))
}

/// Connects and logs in.
pub async fn connect(login: &Login) -> Result<Session, ConnectionError> {
    let (host, port, timeout) = (&login.host, login.port, login.timeout);
    let tcp = tcp::connect(host, port, timeout).await?;
    let domain = login.jid.domain.clone();
    let mut stream: XmppStream = Framed::new(Box::new(tcp), XmlCodec::default());
    let mut features = open(&mut stream, &domain, timeout).await?;
    if login.tls == TlsMode::Starttls {
        if features.child_ns("starttls", NS_TLS).is_none() {
            return Err(refused("the server does not offer STARTTLS (required; `tls = \"plaintext\"` is only for loopback test servers)"));
        }
        send(&mut stream, format!("<starttls xmlns='{NS_TLS}'/>")).await?;
        match next(&mut stream, timeout).await? {
            Frame::Stanza(e) if e.local_name() == "proceed" => {}
            other => return Err(refused(format!("STARTTLS refused: {other:?}"))),
        }
        let config = login
            .tls_config
            .clone()
            .ok_or_else(|| refused("no TLS configuration for STARTTLS"))?;
        // RFC 6120 §13.7.2.1: the JID's domain (not the `server` host) is the reference
        // identity, for SNI and for verifying the certificate.
        let name = rustls_pki_types::ServerName::try_from(domain.clone())
            .map_err(|e| refused(format!("`{domain}` is not a TLS server name: {e}")))?;
        let tcp = stream.into_inner();
        let tls = tokio::time::timeout(
            timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| ConnectionError::Timeout("the TLS handshake".into()))?
        .map_err(|e| refused(tls_failure(&e, &domain)))?;
        // A new stream over TLS: a new codec (nothing was sent after `<proceed/>`).
        stream = Framed::new(Box::new(tls), XmlCodec::default());
        features = open(&mut stream, &domain, timeout).await?;
    }
    let offers_plain = features
        .child_ns("mechanisms", NS_SASL)
        .is_some_and(|m| m.elements().any(|e| e.text().trim() == "PLAIN"));
    if !offers_plain {
        return Err(refused("the server does not offer SASL PLAIN"));
    }
    let auth = plain(&login.jid.local, login.password.expose_secret());
    send(
        &mut stream,
        format!(
            "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
            auth.as_str()
        ),
    )
    .await?;
    drop(auth);
    match next(&mut stream, timeout).await? {
        Frame::Stanza(e) if e.local_name() == "success" => {}
        Frame::Stanza(e) if e.local_name() == "failure" => {
            let why = e
                .elements()
                .next()
                .map(|c| c.local_name().to_owned())
                .unwrap_or_default();
            return Err(refused(format!("authentication failed: {why}")));
        }
        other => {
            return Err(refused(format!(
                "unexpected answer to authentication: {other:?}"
            )))
        }
    }
    let features = open(&mut stream, &domain, timeout).await?;
    if features.child_ns("bind", NS_BIND).is_none() {
        return Err(refused("the server does not offer resource binding"));
    }
    send(
        &mut stream,
        format!(
            "<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
            escape(&login.resource)
        ),
    )
    .await?;
    let bound = loop {
        match next(&mut stream, timeout).await? {
            Frame::Stanza(e) if e.local_name() == "iq" && e.attr("id") == Some("bind1") => {
                if e.attr("type") != Some("result") {
                    return Err(refused("the server refused resource binding"));
                }
                let jid = e
                    .child("bind")
                    .and_then(|b| b.child("jid"))
                    .map(Element::text)
                    .and_then(|t| Jid::parse(t.trim()))
                    .ok_or_else(|| refused("the server bound no JID"))?;
                break jid;
            }
            Frame::Stanza(_) => {}
            other => return Err(refused(format!("unexpected {other:?} while binding"))),
        }
    };
    let session = features.child_ns("session", NS_SESSION);
    if session.is_some_and(|s| s.child("optional").is_none()) {
        send(
            &mut stream,
            format!("<iq type='set' id='sess1'><session xmlns='{NS_SESSION}'/></iq>"),
        )
        .await?;
        loop {
            match next(&mut stream, timeout).await? {
                Frame::Stanza(e) if e.local_name() == "iq" && e.attr("id") == Some("sess1") => {
                    if e.attr("type") != Some("result") {
                        return Err(refused("the server refused the session"));
                    }
                    break;
                }
                Frame::Stanza(_) => {}
                other => {
                    return Err(refused(format!(
                        "unexpected {other:?} while starting the session"
                    )))
                }
            }
        }
    }
    Ok(Session { stream, jid: bound })
}

/// A `<message>` stanza.
pub fn message_xml(to: &str, kind: &str, body: &str, id: &str) -> String {
    format!(
        "<message to='{}' type='{kind}' id='{}'><body>{}</body></message>",
        escape(to),
        escape(id),
        escape(body)
    )
}

/// A `<message>` that is part of a result, with the part's key as its id and as its
/// origin-id (XEP-0359, which the server keeps with the message, in a room's history
/// too): a later holder of the connection finds it there by the key.
pub fn keyed_message_xml(to: &str, kind: &str, body: &str, key: &str) -> String {
    format!(
        "<message to='{}' type='{kind}' id='{key}'><body>{}</body><origin-id xmlns='{}' id='{key}'/></message>",
        escape(to),
        escape(body),
        super::history::NS_SID,
        key = escape(key),
    )
}

/// A MUC join presence without history.
pub fn join_xml(room: &str, nick: &str) -> String {
    format!(
        "<presence to='{}/{}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>",
        escape(room),
        escape(nick)
    )
}

/// A MUC join presence asking for the room's history since `since` (an XEP-0082 DateTime;
/// XEP-0045 §7.2.15).
pub fn join_since_xml(room: &str, nick: &str, since: &str) -> String {
    format!(
        "<presence to='{}/{}'><x xmlns='http://jabber.org/protocol/muc'><history since='{}'/></x></presence>",
        escape(room),
        escape(nick),
        escape(since)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_plain_is_nul_user_nul_password() {
        assert_eq!(plain("bot", "pw").as_str(), "AGJvdABwdw==");
    }

    #[test]
    fn certificate_failures_are_in_plain_words() {
        use rustls::{CertificateError as C, Error as E};
        let io = |e: E| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let unknown = tls_failure(&io(E::InvalidCertificate(C::UnknownIssuer)), "example.com");
        assert!(unknown.contains("not trusted"), "{unknown}");
        assert!(unknown.contains("tls_ca_file"), "{unknown}");
        let name = tls_failure(
            &io(E::InvalidCertificate(C::NotValidForNameContext {
                expected: rustls_pki_types::ServerName::try_from("example.com")
                    .expect("name")
                    .to_owned(),
                presented: vec![
                    "DnsName(\"other.example\")".into(),
                    "IpAddress(1.2.3.4)".into(),
                ],
            })),
            "example.com",
        );
        assert!(name.contains("not valid for `example.com`"), "{name}");
        assert!(
            name.ends_with("(it names other.example, IpAddress(1.2.3.4))"),
            "{name}"
        );
        let other = tls_failure(
            &std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"),
            "example.com",
        );
        assert_eq!(other, "TLS handshake failed: reset");
    }

    #[test]
    fn stanzas_are_escaped() {
        assert_eq!(
            message_xml("a@b", "chat", "<x> & 'y'", "1"),
            "<message to='a@b' type='chat' id='1'><body>&lt;x&gt; &amp; &apos;y&apos;</body></message>"
        );
        assert!(join_xml("ops@conference.localhost", "bot")
            .starts_with("<presence to='ops@conference.localhost/bot'>"));
    }
}
