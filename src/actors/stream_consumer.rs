//! The StackStorm event stream: where command results come from.
//!
//! One SSE connection to `GET {stream_url}/stream` filtered to the configured routes'
//! `st2.announcement__<route>` events and `st2.actionalias__*`. st2 sends a bare newline on
//! connect and after every heartbeat period without events, so *any* bytes count as a sign
//! of life; total silence longer than `stream_read_timeout` means a dead connection (a
//! half-open TCP connection never errors on its own). On any failure the actor stops and
//! `actix::Supervisor` restarts it; `started()` then waits a capped, jittered backoff and
//! asks the `TokenRenewer` for a credential, so a reconnect after a 401 uses a fresh one.
//! A malformed event is logged and skipped: it never ends the connection.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use super::{
    alias_cache::RefreshAliases,
    supervisor::{ActorState, Reconnect, StatusReporter},
    token_renewer::{current_credential, CredentialRejected, TokenRenewer},
};
use crate::{
    domain::{
        announcement::{self, Announcement},
        backoff::Backoff,
    },
    metrics::Metrics,
    st2::{
        client::{LocalClient, St2ClientFactory},
        sse::SseParser,
        St2Error,
    },
};

/// An announcement decoded from the stream, for the dispatcher.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AnnouncementReceived(pub Announcement);

/// Largest single event accepted (st2 results can be big; chat cannot show more anyway).
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

const ANNOUNCEMENT_PREFIX: &str = "st2.announcement__";
const ALIAS_EVENT_PREFIX: &str = "st2.actionalias__";

/// Settings of the stream consumer.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Routes whose announcements are delivered.
    pub routes: Vec<String>,
    /// Silence longer than this reconnects.
    pub read_timeout: Duration,
}

impl StreamSettings {
    /// The `events=` filter: every route's announcements plus alias changes.
    pub fn events_filter(&self) -> String {
        let mut events: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("{ANNOUNCEMENT_PREFIX}{r}"))
            .collect();
        events.push(format!("{ALIAS_EVENT_PREFIX}*"));
        events.join(",")
    }
}

/// The stream actor.
pub struct StreamConsumer {
    settings: StreamSettings,
    client: LocalClient,
    metrics: Metrics,
    renewer: Addr<TokenRenewer>,
    announcements: Recipient<AnnouncementReceived>,
    alias_changes: Recipient<RefreshAliases>,
    /// When to connect again after a failure.
    reconnect: Reconnect,
    status: StatusReporter,
    parser: SseParser,
    connected: bool,
    last_bytes: Instant,
    last_error: Option<String>,
}

impl StreamConsumer {
    /// A consumer; it connects when started.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: StreamSettings,
        st2: St2ClientFactory,
        metrics: Metrics,
        renewer: Addr<TokenRenewer>,
        announcements: Recipient<AnnouncementReceived>,
        alias_changes: Recipient<RefreshAliases>,
        backoff: Backoff,
        status: StatusReporter,
    ) -> Self {
        Self {
            settings,
            client: LocalClient::new(st2),
            metrics,
            renewer,
            announcements,
            alias_changes,
            reconnect: Reconnect::new(status.name(), backoff),
            status,
            parser: SseParser::new(MAX_EVENT_BYTES),
            connected: false,
            last_bytes: Instant::now(),
            last_error: None,
        }
    }

    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        tracing::warn!(error = %error, "StackStorm stream failed; reconnecting");
        self.last_error = Some(error);
        ctx.stop();
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let events = self.settings.events_filter();
        let fut = async move {
            let credential = current_credential(&renewer)
                .await
                .map_err(|e| e.to_string())?;
            match client.open_stream(&credential, &events).await {
                Ok(response) => Ok(response),
                Err(St2Error::Unauthorized(fault)) => {
                    // Renew now so the next attempt (after the backoff) has a fresh token.
                    renewer.do_send(CredentialRejected {
                        generation: credential.generation(),
                    });
                    Err(format!("stream refused the credential: {fault}"))
                }
                Err(e) => Err(e.to_string()),
            }
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(response) => {
                act.connected = true;
                act.last_bytes = Instant::now();
                act.parser = SseParser::new(MAX_EVENT_BYTES);
                act.status.state(ActorState::Up, None);
                tracing::info!("StackStorm stream connected");
                ctx.add_stream(response);
            }
            Err(error) => act.fail(error, ctx),
        }));
    }

    fn handle_event(&mut self, name: &str, data: &str) {
        if let Some(route) = name.strip_prefix(ANNOUNCEMENT_PREFIX) {
            match announcement::decode(route, data) {
                Ok(a) => {
                    tracing::debug!(route, "announcement received");
                    self.announcements.do_send(AnnouncementReceived(a));
                }
                Err(e) => {
                    self.metrics.announcement_dropped();
                    tracing::warn!(route, error = %e, "skipped a malformed announcement");
                }
            }
        } else if name.starts_with(ALIAS_EVENT_PREFIX) {
            self.alias_changes
                .do_send(RefreshAliases { reason: "stream" });
        } else {
            tracing::debug!(event = name, "ignored stream event");
        }
    }
}

impl Actor for StreamConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.connected = false;
        let check_every = (self.settings.read_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        ctx.run_interval(check_every, |act, ctx| {
            if act.connected && act.last_bytes.elapsed() > act.settings.read_timeout {
                let silent = act.last_bytes.elapsed().as_secs();
                act.fail(
                    format!("no data or heartbeat for {silent} s (read timeout)"),
                    ctx,
                );
            }
        });
        ctx.run_later(self.reconnect.delay(), |act, ctx| act.connect(ctx));
    }
}

impl Supervised for StreamConsumer {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.reconnect.restarting();
        self.metrics.stream_reconnect();
        self.status.restarted(self.last_error.take());
    }
}

impl StreamHandler<Result<Bytes, awc::error::PayloadError>> for StreamConsumer {
    fn handle(&mut self, item: Result<Bytes, awc::error::PayloadError>, ctx: &mut Self::Context) {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                self.fail(format!("stream read error: {e}"), ctx);
                return;
            }
        };
        self.last_bytes = Instant::now();
        if self.reconnect.failures() > 0 {
            self.reconnect.connected();
        }
        self.status.activity();
        for event in self.parser.feed(&chunk) {
            match event {
                Ok(event) => self.handle_event(&event.event, &event.data),
                Err(e) => {
                    self.metrics.announcement_dropped();
                    tracing::warn!(error = %e, "skipped part of the stream");
                }
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.fail("StackStorm closed the stream".into(), ctx);
    }
}
