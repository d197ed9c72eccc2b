//! What sits between a client and st2's services: st2's stock nginx site
//! ([`Framing::Nginx`], `conf/nginx/st2.conf`) or nothing ([`Framing::Direct`],
//! st2auth, st2api and st2stream on ports 9100–9102).
//!
//! Every request passes through [`handle`] (an actix `wrap_fn` middleware):
//!
//! * When the service behind the path is down ([`super::Emulator::set_api_service`]
//!   and friends), the request never reaches a handler: [`service_down`] answers.
//! * Otherwise the handler answers; `/api` and `/auth` answers are held back by the
//!   response delay ([`super::Emulator::set_response_delay`]); st2's `X-Request-ID`
//!   is added; and in `Nginx` mode the answer is framed as nginx relays it.
//!
//! **Framing in `Nginx` mode.** st2.conf proxies every location with nginx's
//! default HTTP/1.0 to the upstream, `proxy_set_header Connection ''`,
//! `chunked_transfer_encoding off` and `proxy_buffering off`. A body without a
//! length (st2stream's event stream always; any answer nginx compresses) therefore
//! reaches the client with no `Content-Length`, no `Transfer-Encoding` and
//! `Connection: close`: it ends only when the connection closes. The emulator sends
//! **every** proxied answer that way, the JSON ones included. That is the worst
//! case, not the common one: checked against nginx 1.22 with st2.conf's locations,
//! st2api's JSON keeps its `Content-Length` (and the connection stays open) unless
//! `gzip on` — which st2.conf suggests in a comment — compresses it, which nginx
//! does only for clients that send `Accept-Encoding: gzip`, for statuses 200, 403
//! and 404, and from `gzip_min_length` up. Stripping the length everywhere makes
//! every client path face a close-delimited body. As nginx does, the proxied
//! answers also lose `X-Accel-Buffering` (nginx consumes `X-Accel-*` headers) and
//! gain `Server: nginx` and the `add_header`s of st2.conf's `server` block.
//!
//! **nginx's own answers** (`error_page 502 = @apiError` / `@authError` /
//! `@streamError` when the upstream refuses the connection) are framed as nginx
//! frames a `return`: with `Content-Length`, and the connection kept alive. As
//! nginx 1.22 does with st2.conf, they carry **two** `Content-Type` headers: first
//! the `default_type` of the distributions' `nginx.conf`
//! (`application/octet-stream`), then the one st2.conf's `add_header` appends
//! (`application/json`, or `text/event-stream` for the stream). A client that
//! reads the first one sees `application/octet-stream`. One difference remains, in
//! the letter only: nginx writes `Connection: keep-alive` on them, and actix-web
//! cannot (its HTTP/1.1 encoder drops a `Connection` header and writes none for a
//! kept connection), so the emulator's carry no `Connection` header, which in
//! HTTP/1.1 means the same.
//!
//! `tests/it/nginx.rs` checks all of the above against real nginx, configured with
//! st2.conf's locations, in front of the emulator in `Direct` mode: the stream, a
//! JSON answer (the stripped `Content-Length`, and so the closed connection, is the
//! only difference there) and the `@streamError` and `@apiError` pages.
//!
//! **`Direct` mode** has no nginx: answers are actix-web's own (JSON with
//! `Content-Length`, the stream chunked), and a request for a service that is down
//! gets no answer at all: the connection is shut down as soon as the request has
//! been read (a client sees the connection close, or reset, with no response), the
//! nearest a single port can come to a refused connection on the service's own
//! port. Off unix, where the emulator cannot reach the socket, nginx's answers are
//! given instead.

use std::future::Future;
use std::sync::Arc;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Service as ActixService, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::state::{Service, Shared};
use super::stream::PeerSocket;
use super::Framing;

/// st2.conf's `@apiError` body, byte for byte.
pub(crate) const API_DOWN: &str =
    r#"{ "faultstring": "Nginx is unable to reach st2api. Make sure service is running." }"#;

/// st2.conf's `@authError` body, byte for byte.
pub(crate) const AUTH_DOWN: &str =
    r#"{ "faultstring": "Nginx is unable to reach st2auth. Make sure service is running." }"#;

/// st2.conf's `@streamError` body (`return 200 "retry: 1000\n\n"`; nginx turns the
/// `\n` escapes of a quoted string into newlines).
pub(crate) const STREAM_DOWN: &str = "retry: 1000\n\n";

/// The `default_type` of Debian's and Red Hat's `nginx.conf`, which nginx gives a
/// `return` body before st2.conf's `add_header Content-Type` appends its own.
const NGINX_DEFAULT_TYPE: &str = "application/octet-stream";

/// Marks an answer that nginx itself made (not proxied from a service).
struct NginxAnswer;

/// The answer for a request whose service is down (see the module docs).
pub(crate) fn service_down(shared: &Shared, req: &HttpRequest, service: Service) -> HttpResponse {
    if service == Service::Stream {
        shared.count_stream_refused();
    }
    if shared.settings.framing == Framing::Direct {
        if let Some(peer) = req.conn_data::<PeerSocket>() {
            tracing::debug!(path = %req.path(), "st2 emulator: service down; closing the connection");
            let _ = peer.0.shutdown(std::net::Shutdown::Both);
            // Never reaches the client: the socket is shut down.
            let mut res = HttpResponse::ServiceUnavailable().finish();
            res.extensions_mut().insert(NginxAnswer);
            return res;
        }
    }
    tracing::debug!(path = %req.path(), "st2 emulator: service down; nginx's error page");
    let (status, reason, content_type, body) = match service {
        Service::Stream => (StatusCode::OK, "OK", "text/event-stream", STREAM_DOWN),
        Service::Auth => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Temporarily Unavailable",
            "application/json",
            AUTH_DOWN,
        ),
        Service::Api | Service::Other => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Temporarily Unavailable",
            "application/json",
            API_DOWN,
        ),
    };
    let mut res = HttpResponse::build(status)
        .insert_header((header::SERVER, "nginx"))
        .insert_header((header::CONTENT_TYPE, NGINX_DEFAULT_TYPE))
        .append_header((header::CONTENT_TYPE, content_type))
        .body(body);
    res.head_mut().reason = Some(reason);
    res.extensions_mut().insert(NginxAnswer);
    res
}

/// A body sent without a length: actix gives it no `Content-Length`, and with
/// chunking off, no framing at all (its h1 encoder's "eof" transfer encoding).
struct CloseDelimited(BoxBody);

impl MessageBody for CloseDelimited {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        match self.0.size() {
            BodySize::None => BodySize::None,
            BodySize::Sized(_) | BodySize::Stream => BodySize::Stream,
        }
    }

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_next(cx)
    }
}

/// st2.conf's `server`-level `add_header`s, which the proxied locations inherit
/// (they add none of their own). Without `always`, nginx adds a header to 2xx and
/// 3xx answers only.
const SERVER_HEADERS: &[(&str, &str, bool)] = &[
    ("front-end-https", "on", false),
    ("x-content-type-options", "nosniff", false),
    ("x-frame-options", "DENY", true),
    (
        "strict-transport-security",
        "max-age=3153600;includeSubDomains",
        false,
    ),
    ("x-xss-protection", "0", false),
];

/// Frame a proxied answer as st2.conf's nginx relays it.
fn nginx_framing(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    res.map_body(|head, body| {
        let headers = &mut head.headers;
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::TRANSFER_ENCODING);
        headers.remove("x-accel-buffering");
        headers.insert(header::SERVER, HeaderValue::from_static("nginx"));
        let success_or_redirect = status.is_success() || status.is_redirection();
        for (name, value, always) in SERVER_HEADERS {
            if *always || success_or_redirect {
                headers.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
        }
        head.no_chunking(true);
        head.set_connection_type(ConnectionType::Close);
        BoxBody::new(CloseDelimited(body))
    })
}

/// st2's `RequestIDMiddleware` (`st2common/middleware/request_id.py`): the request's
/// `X-Request-ID` when it has a non-empty one, else a new `uuid4`, on every answer. With
/// an override set, the id a proxy put on the request in its place.
fn add_request_id(res: &mut ServiceResponse<BoxBody>, proxy_id: Option<String>) {
    let sent = proxy_id
        .and_then(|id| HeaderValue::from_str(&id).ok())
        .or_else(|| {
            res.request()
                .headers()
                .get("x-request-id")
                .filter(|v| !v.is_empty())
                .cloned()
        });
    let id = sent.or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).ok());
    if let Some(v) = id {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
}

/// The emulator's middleware (see the module docs).
pub(crate) fn handle<S>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: ActixService<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    tracing::debug!(method = %req.method(), path = %req.path(), "st2 emulator: request");
    let shared: Option<Arc<Shared>> = req
        .app_data::<web::Data<Arc<Shared>>>()
        .map(|d| d.get_ref().clone());
    let service = Service::of(req.path());
    let down = shared.as_ref().is_some_and(|s| !s.service_up(service));
    // How many runs a client has StackStorm answer at once (until the answer is sent).
    let alias_run = (req.method() == actix_web::http::Method::POST
        && req.path().ends_with("/v1/aliasexecution"))
    .then(|| shared.as_ref().map(|s| s.alias_run_started()))
    .flatten();
    let call = if down { Err(req) } else { Ok(srv.call(req)) };
    async move {
        let _alias_run = alias_run;
        let fut = match call {
            Ok(fut) => fut,
            Err(req) => {
                let (http_req, _payload) = req.into_parts();
                let res = match &shared {
                    Some(s) => service_down(s, &http_req, service),
                    None => HttpResponse::InternalServerError().finish(),
                };
                return Ok(ServiceResponse::new(http_req, res));
            }
        };
        let mut res = fut.await?;
        let Some(shared) = shared else {
            return Ok(res);
        };
        if matches!(service, Service::Api | Service::Auth) {
            let delay = shared.response_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            shared.responses_released().await;
        }
        // nginx's own answer (st2stream went down under the handler) is not
        // proxied: no st2 header, nginx's framing.
        if res.response().extensions().contains::<NginxAnswer>() {
            return Ok(res);
        }
        add_request_id(&mut res, shared.request_id_override());
        Ok(match shared.settings.framing {
            Framing::Nginx => nginx_framing(res),
            Framing::Direct => res,
        })
    }
}
