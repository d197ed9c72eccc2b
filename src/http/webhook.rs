//! `POST <path>` for the paths chat connections declared ([`HttpRoute`]): Slack's Events API,
//! Mattermost's button presses, and any platform that is told about things over HTTP.
//!
//! This layer only finds the route, reads the body within the route's limit and the
//! server's body timeout, and relays the connection's answer; checking who sent the request
//! is the connection's (each platform signs differently).

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{
    body::{read_limited, BodyError},
    relay, HttpState,
};
pub use crate::backends::webhook::{ConnectionRoute, Routes};
use crate::backends::webhook::{Headers, WebhookRequest};

/// Serves every request no fixed route took: a declared path, or 404.
pub async fn serve(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let Some(ConnectionRoute { connection, route }) = state.webhooks.get(req.path()) else {
        return HttpResponse::NotFound().finish();
    };
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", "POST"))
            .finish();
    }
    // Another bridge process runs this connection: the request goes on to it where it
    // published its address. When nobody can take it now (the holder is gone and the next
    // has not taken over yet), it is held in Redis for the next holder.
    let elsewhere = !route.gate.is_open(std::time::Instant::now());
    let body = match read_limited(&req, payload, route.max_body).await {
        Ok(body) => body.freeze(),
        Err(BodyError::TooLarge) => {
            return HttpResponse::PayloadTooLarge().json(json!({"error": "body too large"}))
        }
        Err(BodyError::TooSlow) => {
            return HttpResponse::RequestTimeout().json(json!({"error": "body too slow"}))
        }
        Err(BodyError::Incomplete) => {
            return HttpResponse::BadRequest().json(json!({"error": "incomplete body"}))
        }
    };
    if elsewhere {
        if !relay::was_relayed(&req) {
            if let Some(holder) = state.holders.url(connection) {
                if let Ok(answer) = relay::pass_on(&req, body.clone(), &holder, connection).await {
                    return answer;
                }
            }
        }
        return hold(&req, body, connection, &state).await;
    }
    let headers = Headers(text_headers(&req, |_| true));
    let kept = body.clone();
    let reply = route.handler.send(WebhookRequest { headers, body }).await;
    // Not ready for it (still logging in, restarting): with Redis, held like a request
    // nobody could take, and handed over once the connection is ready (neither Webex nor
    // Teams documents delivering a failed request again).
    let not_ready = reply.as_ref().map_or(true, |r| r.status >= 500);
    if not_ready && state.held.is_some() {
        return hold(&req, kept, connection, &state).await;
    }
    match reply {
        Ok(reply) => {
            let status =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut answer = HttpResponse::build(status);
            match reply.body {
                Value::Null => answer.finish(),
                body => answer.json(body),
            }
        }
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(json!({"error": {"message": "the chat connection is restarting; try again"}})),
    }
}

/// Keeps a request for `connection`'s next holder (the `held:` list in Redis): 200, as the
/// holder would have answered a delivery it takes. Without a Redis store, for a body over
/// `HELD_MAX_BODY`, or when too many wait already, 503 with `Retry-After: 1` as before (a
/// platform that retries tries again).
async fn hold(
    req: &HttpRequest,
    body: bytes::Bytes,
    connection: &str,
    state: &HttpState,
) -> HttpResponse {
    use base64::Engine as _;
    let Some(store) = state.held.clone() else {
        return relay::elsewhere(connection);
    };
    if body.len() > crate::store::leases::HELD_MAX_BODY {
        state.metrics.webhook_held(connection, "refused");
        tracing::warn!(connection = %connection, bytes = body.len(), "a request too large to hold for the connection's next holder is refused");
        return relay::elsewhere(connection);
    }
    let request = crate::store::leases::HeldRequest {
        path: req.path().to_owned(),
        headers: text_headers(req, relay::copied),
        body: base64::engine::general_purpose::STANDARD.encode(&body),
        at: chrono::Utc::now().timestamp(),
    };
    let name = connection.to_owned();
    let kept =
        actix_web::rt::task::spawn_blocking(move || store.hold_request(&name, &request)).await;
    match kept {
        Ok(Ok(true)) => {
            state.metrics.webhook_held(connection, "held");
            tracing::info!(connection = %connection, "no bridge process runs the connection now; the request is held for the next to take it over");
            HttpResponse::Ok().json(json!({}))
        }
        Ok(Ok(false)) => {
            state.metrics.webhook_held(connection, "refused");
            tracing::warn!(connection = %connection, max = crate::store::leases::HELD_MAX, "too many requests held for the connection's next holder; this one is refused");
            relay::elsewhere(connection)
        }
        Ok(Err(e)) => {
            state.metrics.webhook_held(connection, "refused");
            tracing::warn!(connection = %connection, error = %e, "could not hold a request for the connection's next holder");
            relay::elsewhere(connection)
        }
        Err(_) => {
            state.metrics.webhook_held(connection, "refused");
            relay::elsewhere(connection)
        }
    }
}

/// `req`'s headers whose names `keep` takes, as text (names in lower case; a value that is
/// not text is left out).
fn text_headers(req: &HttpRequest, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter(|(name, _)| keep(name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}
