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
    HttpState,
};
use crate::backends::webhook::{Headers, HttpRoute, WebhookRequest};

/// The declared routes, by path.
pub type Routes = Arc<HashMap<String, HttpRoute>>;

/// Serves every request no fixed route took: a declared path, or 404.
pub async fn serve(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let Some(route) = state.webhooks.get(req.path()) else {
        return HttpResponse::NotFound().finish();
    };
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", "POST"))
            .finish();
    }
    if !route.gate.is_open(std::time::Instant::now()) {
        // Another bridge process runs this connection: the platform (or a load balancer)
        // tries again and reaches it there.
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({"error": {"message": "another bridge process runs this connection; try again"}}));
    }
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
