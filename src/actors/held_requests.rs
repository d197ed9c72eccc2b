//! Requests held for a connection's next holder, handled once this process runs it.
//!
//! With several bridge processes on Redis, a platform's request (a Webex or Teams delivery,
//! a Slack event, a button press) may reach a process that does not run its connection
//! while no process can take it: the holder is gone and the next has not taken over yet.
//! Neither Webex nor Teams documents delivering a failed request again, so the HTTP layer
//! holds such a request in Redis (`store::leases`, `held:<connection>`; `http::webhook`).
//! This actor hands each one to the connection once this process runs it: every
//! [`DRAIN_INTERVAL`], for each connection whose gate is open here, it reads the held
//! requests, oldest first, and gives each to the connection as if it had just come (the
//! connection checks its signature as for any request). A request is forgotten once the
//! connection answers it, unless the answer is a 5xx (the connection is not ready: tried
//! again next round); one older than [`HELD_MEMORY`], or one that does not open, is
//! forgotten unhandled.
//!
//! Redis calls block, so they run on tokio's blocking pool; one round at a time.

use std::time::Duration;

use actix::prelude::*;
use base64::Engine as _;

use crate::{
    backends::webhook::{Headers, Routes, WebhookRequest},
    metrics::Metrics,
    store::leases::{HeldRequest, LeaseStore, HELD_MEMORY},
};

/// How often held requests are looked for.
pub const DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Held requests read per connection and round.
const BATCH: usize = 50;

/// The drainer actor.
pub struct HeldRequestDrainer {
    store: LeaseStore,
    routes: Routes,
    metrics: Metrics,
    /// A round is under way.
    busy: bool,
    /// Redis could not be read in the last round (warned once per stretch).
    failing: bool,
}

impl HeldRequestDrainer {
    /// A drainer of the requests held for `routes`' connections in `store`, counted in
    /// `metrics`.
    pub fn new(store: LeaseStore, routes: Routes, metrics: Metrics) -> Self {
        Self {
            store,
            routes,
            metrics,
            busy: false,
            failing: false,
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let now = std::time::Instant::now();
        let mut connections: Vec<String> = self
            .routes
            .values()
            .filter(|r| r.route.gate.is_open(now))
            .map(|r| r.connection.clone())
            .collect();
        connections.sort();
        connections.dedup();
        if connections.is_empty() {
            return;
        }
        self.busy = true;
        let (store, routes, metrics) = (
            self.store.clone(),
            self.routes.clone(),
            self.metrics.clone(),
        );
        let round = async move {
            let mut unread = None;
            for connection in connections {
                if let Err(e) = drain(&store, &routes, &metrics, &connection).await {
                    unread = Some(e);
                }
            }
            unread
        };
        ctx.spawn(round.into_actor(self).map(|unread, act, _| {
            act.busy = false;
            match (unread, act.failing) {
                (Some(e), false) => {
                    tracing::warn!(error = %e, "could not read the requests held for the connections; trying again every second");
                    act.failing = true;
                }
                (None, true) => {
                    tracing::info!("the requests held for the connections can be read again");
                    act.failing = false;
                }
                _ => {}
            }
        }));
    }
}

/// Hands `connection`'s held requests to it, oldest first; stops at the first it is not
/// ready for. `Err`: Redis could not be read.
async fn drain(
    store: &LeaseStore,
    routes: &Routes,
    metrics: &Metrics,
    connection: &str,
) -> Result<(), String> {
    let reader = store.clone();
    let name = connection.to_owned();
    let held = match tokio::task::spawn_blocking(move || reader.held_requests(&name, BATCH)).await {
        Ok(Ok(held)) => held,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    };
    for (value, request) in held {
        let handled = match request {
            Ok(request) => match hand_over(routes, connection, request).await {
                Handed::NotReady => return Ok(()),
                Handed::Done => {
                    metrics.webhook_held(connection, "handled");
                    true
                }
                Handed::Dropped(why) => {
                    metrics.webhook_held(connection, "dropped");
                    tracing::warn!(connection = %connection, reason = why, "a request held for the connection is dropped");
                    true
                }
            },
            Err(e) => {
                metrics.webhook_held(connection, "dropped");
                tracing::warn!(connection = %connection, error = %e, "a request held for the connection does not open; dropped");
                true
            }
        };
        if handled {
            let forgetter = store.clone();
            let name = connection.to_owned();
            let forgot =
                tokio::task::spawn_blocking(move || forgetter.forget_held_request(&name, &value))
                    .await;
            if !matches!(forgot, Ok(Ok(()))) {
                // Left in place: handled again next round, and the platform's message id
                // (taken once, in Redis) keeps a command from running twice.
                return Ok(());
            }
        }
    }
    Ok(())
}

/// What became of one held request.
enum Handed {
    /// The connection answered it.
    Done,
    /// The connection answered 5xx, or could not be reached: try again later.
    NotReady,
    /// It cannot be handled (too old, no such route, a body that is not base64).
    Dropped(&'static str),
}

async fn hand_over(routes: &Routes, connection: &str, request: HeldRequest) -> Handed {
    let age = chrono::Utc::now().timestamp().saturating_sub(request.at);
    if u64::try_from(age).unwrap_or(0) > HELD_MEMORY.as_secs() {
        return Handed::Dropped("too old");
    }
    let Some(route) = routes
        .get(&request.path)
        .filter(|r| r.connection == connection)
    else {
        return Handed::Dropped("no such route");
    };
    let Ok(body) = base64::engine::general_purpose::STANDARD.decode(&request.body) else {
        return Handed::Dropped("a body that is not base64");
    };
    let request = WebhookRequest {
        headers: Headers(request.headers),
        body: body.into(),
    };
    match route.route.handler.send(request).await {
        Ok(reply) if reply.status >= 500 => Handed::NotReady,
        Ok(reply) => {
            tracing::info!(connection = %connection, status = reply.status, "handled a request held while nobody ran the connection");
            Handed::Done
        }
        Err(_) => Handed::NotReady,
    }
}

impl Actor for HeldRequestDrainer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(DRAIN_INTERVAL, |act, ctx| act.round(ctx));
    }
}
