//! `GET /metrics` in the Prometheus/OpenMetrics text format.

use actix_web::{web, HttpResponse};

use super::HttpState;

/// Renders the registry.
pub async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
