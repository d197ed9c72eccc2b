//! `POST /mattermost/actions/{connection}`: presses of the answer buttons a Mattermost
//! connection posted (interactive message buttons; see `backends/mattermost/interactive.rs`).
//!
//! Mattermost does not sign these requests: the connection checks the token in the
//! button's `context` before anything else, and answers 403 without one. The answer
//! (`update` of the post, or `ephemeral_text` for the presser) is what Mattermost shows.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::HttpState;
use crate::backends::mattermost::ActionRequest;

/// Largest request body accepted (a press is well under 4 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The handler.
pub async fn actions(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let Some(connection) = state.mattermost_actions.get(path.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": {"message": "body is not JSON"}}));
    };
    match connection.send(ActionRequest(request)).await {
        Ok(answer) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(answer.status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
        )
        .json(answer.body),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(json!({"error": {"message": "the chat connection is restarting; try again"}})),
    }
}

/// Body size limit for the route.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY)
}
