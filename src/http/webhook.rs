//! `POST <path>` for the paths chat connections declared ([`HttpRoute`]): Slack's Events API,
//! Mattermost's button presses, and any platform that is told about things over HTTP.
//!
//! This layer only finds the route, reads the body within the route's limit and the
//! server's body timeout, and relays the connection's answer; checking who sent the request
//! is the connection's (each platform signs differently).

use std::{collections::HashMap, sync::Arc};

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{
    body::{read_limited, BodyError},
    relay, HttpState,
};
use crate::backends::webhook::{Headers, HttpRoute, WebhookRequest};

/// The declared routes, by path, each with its connection's name.
pub type Routes = Arc<HashMap<String, ConnectionRoute>>;

/// A path a chat connection serves.
pub struct ConnectionRoute {
    /// The connection's name.
    pub connection: String,
    /// What the connection declared.
    pub route: HttpRoute,
}

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
    // published its address, else the platform (or a load balancer) tries again.
    let elsewhere = !route.gate.is_open(std::time::Instant::now());
    let holder = match elsewhere {
        true if relay::was_relayed(&req) => return relay::elsewhere(connection),
        true => match state.holders.url(connection) {
            Some(url) => Some(url),
            None => return relay::elsewhere(connection),
        },
        false => None,
    };
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
    if let Some(holder) = holder {
        return relay::pass_on(&req, body, &holder, connection).await;
    }
    let headers = Headers(
        req.headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
    );
    match route.handler.send(WebhookRequest { headers, body }).await {
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
