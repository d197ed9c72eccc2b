//! Liveness, readiness and the actor table.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::HttpState;
use crate::actors::status::{Health, HealthReport};

/// How long a handler waits for the registry before answering "not ready".
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(2);

async fn report(state: &HttpState) -> Option<HealthReport> {
    state
        .status_registry
        .send(Health)
        .timeout(REGISTRY_TIMEOUT)
        .await
        .ok()
}

/// `GET /health`: the process is alive and its actor system answers.
pub async fn health(state: web::Data<HttpState>) -> HttpResponse {
    match report(&state).await {
        Some(_) => HttpResponse::Ok().json(json!({"status": "ok"})),
        None => {
            HttpResponse::ServiceUnavailable().json(json!({"status": "actor system not answering"}))
        }
    }
}

/// `GET /ready`: 200 when StackStorm is reachable, the credential valid, the stream connected
/// and every chat connection up; 503 with the actors that are not, otherwise.
pub async fn ready(state: web::Data<HttpState>) -> HttpResponse {
    match report(&state).await {
        Some(r) if r.ready => HttpResponse::Ok().json(json!({"ready": true})),
        Some(r) => {
            let waiting: Vec<_> = r
                .actors
                .iter()
                .filter(|a| {
                    a.required_for_ready && a.state != crate::actors::status::ActorState::Up
                })
                .map(|a| json!({"name": a.name, "state": a.state, "last_error": a.last_error}))
                .collect();
            HttpResponse::ServiceUnavailable().json(json!({"ready": false, "waiting_for": waiting}))
        }
        None => HttpResponse::ServiceUnavailable()
            .json(json!({"ready": false, "waiting_for": "actor system"})),
    }
}

/// `GET /actors`: every actor's name, state, restarts, last error and last activity.
pub async fn actors(state: web::Data<HttpState>) -> HttpResponse {
    match report(&state).await {
        Some(r) => HttpResponse::Ok().json(r.actors),
        None => {
            HttpResponse::ServiceUnavailable().json(json!({"error": "actor system not answering"}))
        }
    }
}
