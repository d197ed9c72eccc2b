//! The HTTP surface for operators: `/health`, `/ready`, `/actors`, `/metrics`.
//! The whole route table is in [`configure`].

pub mod health;
pub mod metrics;
pub mod server;

use actix::Addr;
use actix_web::web;

use crate::{actors::supervisor::Supervisor, metrics::Metrics};

/// Shared state of the HTTP handlers (`Send` handles only; no awc client lives here).
#[derive(Clone)]
pub struct HttpState {
    /// The status registry.
    pub supervisor: Addr<Supervisor>,
    /// The metrics registry.
    pub metrics: Metrics,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready))
        .route("/actors", web::get().to(health::actors))
        .route("/metrics", web::get().to(metrics::metrics));
}
