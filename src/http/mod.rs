//! The HTTP surface for operators: `/health`, `/ready`, `/actors`, `/metrics`.
//! The whole route table is in [`configure`].

pub mod health;
pub mod login;
pub mod metrics;
pub mod redact;
pub mod server;
pub mod slack;
pub mod tls;

use actix::Addr;
use actix_web::web;

use std::{collections::HashMap, sync::Arc};

use crate::{
    actors::{session_manager::SessionManager, supervisor::Supervisor},
    metrics::Metrics,
};

/// Shared state of the HTTP handlers (`Send` handles only; no awc client lives here).
#[derive(Clone)]
pub struct HttpState {
    /// The status registry.
    pub supervisor: Addr<Supervisor>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// The session manager, in client-side mode (the login page answers 404 otherwise).
    pub sessions: Option<Addr<SessionManager>>,
    /// The login page template.
    pub login_pages: Arc<login::LoginPages>,
    /// Slack connections in Events API mode, by connection name.
    pub slack_events: Arc<HashMap<String, crate::backends::slack::EventsEndpoint>>,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready))
        .route("/actors", web::get().to(health::actors))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/login-assets/{file}", web::get().to(login::asset))
        .service(
            web::resource("/login/{link}")
                .app_data(login::payload_config())
                .route(web::get().to(login::show))
                .route(web::post().to(login::submit)),
        )
        .service(
            web::resource("/slack/events/{connection}")
                .app_data(slack::payload_config())
                .route(web::post().to(slack::events)),
        );
}
