//! The HTTP surface for operators: `/health`, `/ready`, `/actors`, `/metrics`; the login
//! page; `POST /hubot/st2` / `POST /chatops/message` for workflows posting into chat
//! ([`post`]); `POST /api/v1/trigger` for alerting systems running a chat command with a
//! token ([`trigger`]); and the paths chat connections serve ([`webhook`]: Slack's Events API,
//! Mattermost's button presses). The whole route table is in [`configure`].

mod body;
pub mod forwarded;
pub mod health;
mod limiter;
pub mod login;
pub mod metrics;
pub mod post;
pub mod redact;
pub mod relay;
pub mod same_origin;
pub mod server;
pub mod tls;
pub mod trigger;
pub mod webhook;

use actix::Addr;
use actix_web::{web, HttpRequest};

use std::{net::IpAddr, sync::Arc};

use crate::{
    actors::{
        lease_keeper::HolderDirectory, session_manager::SessionManager, status::StatusRegistry,
    },
    metrics::Metrics,
};

/// Shared state of the HTTP handlers (`Send` handles only; no awc client lives here).
#[derive(Clone)]
pub struct HttpState {
    /// The status registry.
    pub status_registry: Addr<StatusRegistry>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// The session manager, in client-side mode (the login page answers 404 otherwise).
    pub sessions: Option<Addr<SessionManager>>,
    /// The login page template.
    pub login_pages: Arc<login::LoginPages>,
    /// The paths chat connections serve, by path.
    pub webhooks: webhook::Routes,
    /// `[http] trusted_proxies`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<forwarded::TrustedProxies>,
    /// The origin of `[auth] public_url`, where the login page is published.
    pub public_origin: Option<same_origin::Origin>,
    /// `POST /hubot/st2` and `/chatops/message`: off unless `[http] post_token` is set.
    pub post: post::PostEndpoints,
    /// `POST /api/v1/trigger`: commands run with trigger tokens.
    pub trigger: trigger::TriggerEndpoint,
    /// Which bridge process runs each connection this one does not, where it published an
    /// address: requests for them are passed on there ([`relay`]).
    pub holders: HolderDirectory,
    /// Chat notices other bridge processes pass on (only with a Redis store).
    pub notices: Option<relay::NoticeInbox>,
    /// Where a platform's request is kept for a connection's next holder when no process
    /// can take it now (only with a Redis store; [`webhook`]).
    pub held: Option<crate::store::leases::LeaseStore>,
}

/// The address a request comes from, for rate limits and logs: the peer's, or behind a
/// trusted proxy the client's it forwards for (see [`forwarded::client_address`]).
pub fn client_address(req: &HttpRequest, trusted: &forwarded::TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let lines = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    Some(forwarded::client_address(peer, lines, trusted))
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
                .route(web::get().to(login::show))
                .route(web::post().to(login::submit)),
        )
        // Both clients' servers took the paths with a trailing slash too.
        .service(
            web::resource(["/hubot/st2", "/hubot/st2/"])
                .route(web::post().to(post::hubot))
                .default_service(web::to(post::other_method)),
        )
        .service(
            web::resource(["/chatops/message", "/chatops/message/"])
                .route(web::post().to(post::chatops_message))
                .default_service(web::to(post::other_method)),
        )
        .route("/api/v1/trigger", web::post().to(trigger::trigger))
        .route(
            crate::actors::notice_relay::NOTICE_PATH,
            web::post().to(relay::take_notice),
        )
        // Chat connections' paths (each checks its own signatures), else 404.
        .default_service(web::to(webhook::serve));
}
