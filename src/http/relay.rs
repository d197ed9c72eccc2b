//! Passing a request on to the bridge process that runs its chat connection.
//!
//! When several bridge processes share a Redis store, each chat connection runs in the one
//! process holding its lease. A platform's webhook, a button press or a trigger API call
//! may reach any of them (a load balancer picks one); a process that does not run the
//! request's connection passes it on, as it came, to the `[store] advertise_url` the holder
//! published in its lease, and answers with the holder's answer. The holder checks the
//! request (signatures, tokens) as if it had come straight to it.
//!
//! A request passed on carries [`RELAYED`]: a process receiving one for a connection it
//! does not run (the lease moved meanwhile) answers 503 rather than pass it on again, so a
//! request never travels in circles.

use std::time::Duration;

use actix_web::{
    http::{header, StatusCode},
    HttpRequest, HttpResponse,
};
use bytes::Bytes;
use serde_json::json;

/// The header a request passed on carries.
pub const RELAYED: &str = "x-stormbridge-relayed";

/// How long the holder may take to answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Largest answer relayed back (platform answers are small acknowledgements).
const MAX_ANSWER: usize = 1 << 20;

/// Headers that belong to one hop (RFC 9110 §7.6.1) or that the client sets again for the
/// new request, never copied.
const NOT_COPIED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Whether `req` was passed on by another bridge process already.
pub fn was_relayed(req: &HttpRequest) -> bool {
    req.headers().contains_key(RELAYED)
}

/// 503 with `Retry-After: 1`: the connection runs elsewhere and the request cannot be
/// passed on (no address published, or it was passed on once already).
pub fn elsewhere(connection: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "1"))
        .json(json!({"error": {"message": format!(
            "another bridge process runs connection {connection}; try again"
        )}}))
}

/// Sends `req` (its method, path, query and headers) with `body` to the same path under
/// `holder` (an advertised URL) and answers with the holder's status, content type and
/// body. `Err(Unreachable)`: the holder did not answer (it is likely gone, and the lease
/// moving); the caller holds the request for the next holder or answers [`elsewhere`].
pub async fn pass_on(
    req: &HttpRequest,
    body: Bytes,
    holder: &str,
    connection: &str,
) -> Result<HttpResponse, Unreachable> {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let url = format!("{holder}{path}");
    // One client per relayed request: rare (only while a load balancer picks a process that
    // does not run the connection), and an awc client cannot be shared between the HTTP
    // server's threads.
    let client = awc::Client::builder()
        .timeout(TIMEOUT)
        .disable_redirects()
        .finish();
    let mut outgoing = client.request(req.method().clone(), &url);
    for (name, value) in req.headers() {
        if copied(name.as_str()) {
            outgoing = outgoing.append_header((name.clone(), value.clone()));
        }
    }
    outgoing = outgoing.insert_header((RELAYED, "1"));
    let answer = match outgoing.send_body(body).await {
        Ok(mut answer) => match answer.body().limit(MAX_ANSWER).await {
            Ok(bytes) => Ok((answer.status(), answer.headers().clone(), bytes)),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok((status, headers, bytes)) => {
            let status =
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = HttpResponse::build(status);
            for name in [
                header::CONTENT_TYPE,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
            ] {
                if let Some(value) = headers.get(&name) {
                    response.insert_header((name, value.clone()));
                }
            }
            Ok(response.body(bytes))
        }
        Err(e) => {
            tracing::warn!(connection = %connection, error = %e, "could not pass a request on to the bridge process running its connection");
            Err(Unreachable)
        }
    }
}

/// The process a request was to be passed on to did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable;

/// Whether a header is copied when a request is passed on or held (not one of one hop's,
/// nor the mark of a request passed on).
pub fn copied(name: &str) -> bool {
    !NOT_COPIED.contains(&name) && name != RELAYED
}

/// `POST /internal/v1/notice`: a chat notice another bridge process sealed for a
/// connection this one runs (see `actors::notice_relay`). Only with a Redis store.
#[derive(Clone)]
pub struct NoticeInbox(std::sync::Arc<InboxInner>);

struct InboxInner {
    key: std::sync::Arc<crate::store::crypto::StoreKey>,
    dispatcher: actix::Recipient<crate::actors::session_manager::NotifyUser>,
    gates: std::sync::Arc<std::collections::HashMap<String, crate::lease::Gate>>,
    /// Notices taken lately, by id, with when: each is delivered once.
    taken: parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Largest sealed notice read (a notice is a chat message of a few hundred bytes).
const MAX_NOTICE: usize = 64 * 1024;

impl NoticeInbox {
    /// An inbox opening notices with `key`, delivering those for `gates`' open connections
    /// through `dispatcher`.
    pub fn new(
        key: std::sync::Arc<crate::store::crypto::StoreKey>,
        dispatcher: actix::Recipient<crate::actors::session_manager::NotifyUser>,
        gates: std::sync::Arc<std::collections::HashMap<String, crate::lease::Gate>>,
    ) -> Self {
        Self(std::sync::Arc::new(InboxInner {
            key,
            dispatcher,
            gates,
            taken: Default::default(),
        }))
    }
}

/// Serves `POST /internal/v1/notice`: 202 for a notice taken (or taken before), 403 for one
/// not sealed with this store's key or too old, 503 when this process does not run the
/// notice's connection (any more), 404 without a Redis store.
pub async fn take_notice(
    req: HttpRequest,
    payload: actix_web::web::Payload,
    state: actix_web::web::Data<super::HttpState>,
) -> HttpResponse {
    use crate::actors::notice_relay::{SealedNotice, NOTICE_MAX_AGE};
    let Some(inbox) = state.notices.as_ref() else {
        return HttpResponse::NotFound().finish();
    };
    let body = match super::body::read_limited(&req, payload, MAX_NOTICE).await {
        Ok(body) => body,
        Err(_) => return HttpResponse::BadRequest().json(json!({"error": "no readable notice"})),
    };
    let Ok(sealed) = std::str::from_utf8(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "no readable notice"}));
    };
    let notice = match SealedNotice::open(&inbox.0.key, sealed, chrono::Utc::now().timestamp()) {
        Ok(notice) => notice,
        Err(why) => {
            tracing::warn!(reason = %why, "refused a chat notice said to come from another bridge process");
            return HttpResponse::Forbidden().json(json!({"error": why.to_string()}));
        }
    };
    let now = std::time::Instant::now();
    let runs_here = inbox
        .0
        .gates
        .get(&notice.connection)
        .is_some_and(|gate| gate.is_open(now));
    if !runs_here {
        return elsewhere(&notice.connection);
    }
    {
        let mut taken = inbox.0.taken.lock();
        taken.retain(|_, at| now.duration_since(*at) <= NOTICE_MAX_AGE * 2);
        if taken.insert(notice.id.clone(), now).is_some() {
            return HttpResponse::Accepted().json(json!({"status": "taken before"}));
        }
    }
    inbox.0.dispatcher.do_send(notice.into_notify());
    HttpResponse::Accepted().json(json!({"status": "taken"}))
}
