//! The composition root: starts the actors in dependency order, wires them together and
//! starts the HTTP server. Used by `stormbridge run`, `stormbridge demo` and the tests.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use actix::prelude::*;

use crate::{
    actors::{
        acl_gate::{AclGate, ReplacePolicy},
        alias_cache::{AliasCache, AliasSnapshot},
        dispatcher::{Dispatcher, DispatcherSettings, UseSessions},
        job_keeper::{JobKeeper, JobSettings},
        lease_keeper::LeaseKeeper,
        messages::{Halt, RegisterConnection},
        notice_relay::NoticeRelay,
        result_tracker::{ConnectionsRegistered, ResultTracker, TrackerSettings},
        session_manager::{NotifyUser, SessionManager, SessionSettings},
        status::{Health, HealthReport, StatusRegistry, StatusReporter},
        stream_consumer::{StreamConsumer, StreamSettings},
        token_renewer::{RenewerSettings, TokenRenewer},
    },
    backends::{
        connection::{Gate, HandoffError, Wiring},
        console::ConsoleIo,
        registry::{Start, REGISTRY},
    },
    config::{AuthMode, Settings, StoreSettings},
    domain::{backoff::Backoff, command::Prefixes, result_ledger::LedgerSettings},
    http::{self, HttpState},
    metrics::Metrics,
    render::{TemplateError, Templates},
    st2::client::{St2ClientFactory, St2Endpoints},
    store::SessionStore,
    tls::TlsError,
};

/// What keys derived for signing a connection's buttons are for (the connection's name
/// follows the NUL).
const BUTTON_KEY_PURPOSE: &[u8] = b"stormbridge button tokens v1\0";

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS settings for StackStorm were unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Message templates did not load.
    #[error(transparent)]
    Templates(#[from] TemplateError),
    /// The session store could not be opened (wrong key, unreadable file, newer schema).
    #[error("session store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The HTTP server's TLS files were unusable.
    #[error("HTTPS: {0}")]
    HttpTls(#[from] crate::http::tls::ServerTlsError),
    /// The login page template did not compile.
    #[error("login page: {0}")]
    LoginPage(String),
    /// A chat connection could not be set up.
    #[error("chat connection `{0}`: {1}")]
    Chat(String, String),
    /// The HTTP server could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Things the caller provides instead of the defaults.
#[derive(Default)]
pub struct AppOptions {
    /// The console's input and output; standard input/output when `None`.
    pub console_io: Option<ConsoleIo>,
    /// Input and output of further console connections, by connection name (tests drive
    /// several users at once this way); a console connection with neither uses
    /// `console_io`, then standard input/output.
    pub consoles: std::collections::HashMap<String, ConsoleIo>,
}

/// A running bridge.
pub struct RunningApp {
    /// Where the HTTP server listens.
    pub http_addr: SocketAddr,
    /// The metrics registry (also served on `/metrics`).
    pub metrics: Metrics,
    status_registry: Addr<StatusRegistry>,
    http: actix_web::dev::ServerHandle,
    /// `actix::Supervisor` restarts an actor only while someone holds its address; nothing
    /// else sends to the stream consumer, so the running app keeps it.
    stream_consumer: Addr<StreamConsumer>,
    /// Told to stop with the rest ([`RunningApp::stop`]).
    tracker: Addr<ResultTracker>,
    acl_gate: Addr<AclGate>,
    alias_cache: Addr<AliasCache>,
    /// The keeper of the connections' leases (a shared store only).
    lease_keeper: Option<Addr<LeaseKeeper>>,
    /// Hands requests held while no process ran a connection to it (Redis store only).
    _held_drainer: Option<Addr<crate::actors::held_requests::HeldRequestDrainer>>,
}

impl RunningApp {
    /// Gives this process's chat connections up to another bridge process sharing the
    /// store (a clean stop: SIGTERM, SIGINT), so it takes them over at once instead of when
    /// the leases expire. Nothing to do for one process.
    pub async fn release_leases(&self) {
        if let Some(keeper) = &self.lease_keeper {
            let _ = keeper
                .send(crate::actors::lease_keeper::ReleaseLeases)
                .await;
        }
    }

    /// The current health snapshot.
    pub async fn health(&self) -> Option<HealthReport> {
        self.status_registry.send(Health).await.ok()
    }

    /// Loads the alias list from StackStorm now (what SIGHUP and `!st2reload` do): the number
    /// of aliases, or why the list could not be loaded (the previous one stays).
    pub async fn reload_aliases(&self) -> Result<usize, String> {
        self.alias_cache
            .send(crate::actors::alias_cache::ReloadAliases { reason: "SIGHUP" })
            .await
            .unwrap_or_else(|_| Err("the alias cache is not running".to_owned()))
    }

    /// Re-reads the configuration file and swaps in its access rules (what SIGHUP does).
    /// An invalid file changes nothing: the old rules stay and the problems are returned.
    /// Only `[access]` is applied; other changes need a restart.
    pub async fn reload_access(
        &self,
        path: &std::path::Path,
    ) -> Result<usize, crate::config::ConfigError> {
        let settings = crate::config::load(path, &REGISTRY)?;
        let rules = settings.access.rule_count();
        self.acl_gate
            .send(ReplacePolicy(settings.access.clone()))
            .await
            .map_err(|_| {
                crate::config::ConfigError::single("access", "the access gate is not running")
            })?;
        Ok(rules)
    }

    /// Stops the bridge's work as a stopped process would: the HTTP server closes, the
    /// StackStorm stream is closed and not opened again, and no result is looked up or
    /// posted any more (what is owed stays owed in the store, for the next process). The
    /// actors themselves end with the actix system, so that several bridges — a test's
    /// restarts — can share one.
    pub async fn stop(&self) {
        self.http.stop(true).await;
        let _ = self.stream_consumer.send(Halt).await;
        let _ = self.tracker.send(Halt).await;
    }
}

/// How long a start waits for a Redis that does not answer yet. Kubernetes starts the bridge
/// and the chart's bundled Redis together: without the wait the bridge stops, and comes back
/// only after a restart's back-off. Less than the chart's liveness allowance (5 s + 3 × 10 s),
/// since nothing answers the probe meanwhile.
const REDIS_START_WAIT: Duration = Duration::from_secs(30);

/// Opens the Redis store, trying again (0.25 s, doubling to 4 s between tries) while Redis
/// cannot be reached, for up to [`REDIS_START_WAIT`]; refused credentials or another key stop
/// the start at once.
async fn open_redis_waiting(
    options: &crate::store::RedisOptions,
    key: &crate::store::StoreKey,
) -> Result<SessionStore, crate::store::StoreError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match SessionStore::open_redis(options, key) {
            Err(crate::store::StoreError::RedisUnreachable { what })
                if started.elapsed() + pause < REDIS_START_WAIT =>
            {
                tracing::warn!(error = %what, retry_in_ms = pause.as_millis() as u64, "Redis does not answer yet; waiting for it (up to {} s)", REDIS_START_WAIT.as_secs());
                actix_rt::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            opened => return opened,
        }
    }
}

/// Starts the bridge on the current actix system.
pub async fn start(settings: Settings, options: AppOptions) -> Result<RunningApp, StartError> {
    let settings = Arc::new(settings);
    let metrics = Metrics::new();
    let templates = Arc::new(Templates::load(settings.bot.templates_dir.as_deref())?);
    let tls = crate::tls::client_config(settings.st2.verify_cert, settings.st2.ca_file.as_deref())?;
    let endpoints = St2Endpoints::from(&settings.st2);
    let st2 = St2ClientFactory::new(endpoints, tls, metrics.clone());
    let backoff = Backoff::new(
        settings.supervisor.restart_backoff_initial,
        settings.supervisor.restart_backoff_max,
    );

    let store = Arc::new(match &settings.store {
        StoreSettings::Memory => SessionStore::memory(),
        StoreSettings::Sqlite {
            path,
            key,
            key_source,
        } => {
            let store = SessionStore::open_sqlite(path, key)?;
            tracing::info!(path = %path.display(), key = %key_source, "session store opened");
            store
        }
        StoreSettings::Redis {
            options,
            key,
            key_source,
            ..
        } => {
            let store = open_redis_waiting(options, key).await?;
            tracing::info!(url = %options.url, prefix = %options.prefix, key = %key_source, "Redis store opened");
            store
        }
    });
    // With a shared store, the chat connections are leased among the bridge processes.
    let leases = match &settings.store {
        StoreSettings::Redis { lease_ttl, .. } => store.leases().map(|l| (l, *lease_ttl)),
        _ => None,
    };
    let http_tls = settings
        .http
        .tls
        .as_ref()
        .map(crate::http::tls::server_config)
        .transpose()?;
    let login_pages = Arc::new(
        crate::http::login::LoginPages::new().map_err(|e| StartError::LoginPage(e.to_string()))?,
    );

    let status_registry = StatusRegistry::new(metrics.clone()).start();
    let registry = status_registry.clone().recipient();
    let reporter =
        |name: &str, required: bool| StatusReporter::new(name, registry.clone(), required);

    let renewer = {
        let s = RenewerSettings {
            credential: settings.st2.credentials.clone(),
            token_ttl: settings.st2.token_ttl,
            renew_before: settings.st2.token_renew_before,
            backoff: backoff.clone(),
        };
        let (st2, status) = (st2.clone(), reporter("token_renewer", true));
        actix::Supervisor::start(move |_| TokenRenewer::new(s, st2, status))
    };

    let gate = AclGate::new(
        settings.access.clone(),
        metrics.clone(),
        reporter("acl_gate", false),
    )
    .start();

    let snapshot = AliasSnapshot::default();
    let alias_cache = {
        let (st2, metrics, renewer, snapshot, backoff) = (
            st2.clone(),
            metrics.clone(),
            renewer.clone(),
            snapshot.clone(),
            backoff.clone(),
        );
        let interval = settings.st2.alias_refresh_interval;
        let status = reporter("alias_cache", true);
        actix::Supervisor::start(move |_| {
            AliasCache::new(st2, metrics, renewer, snapshot, interval, backoff, status)
        })
    };

    for deprecation in &settings.deprecations {
        tracing::warn!("{deprecation}");
    }
    for warning in settings.st2.route_warnings() {
        tracing::warn!("{warning}");
    }
    let connection_order: Vec<String> = settings.chat.iter().map(|c| c.name.clone()).collect();
    let command_prefix = format!("{}{}", settings.bot.prefix, settings.bot.plugin_prefix);
    // Every message the bridge sends passes through this (and the dispatcher tells it the
    // secret values of the commands it runs, for as long as their results may take).
    let mask = Arc::new(crate::redact::SecretMask::new(
        settings.redact.clone(),
        settings.results.pending_ttl,
    ));

    // Store writes and result rendering get a thread of their own, so they never hold up
    // the dispatcher or the chat connections. The job keeper and the result tracker share
    // it: both mostly wait on the store and on StackStorm, and each thread costs the
    // allocator's pages of its own (about 0.1 MiB of an idle process's memory).
    let store_thread = actix::Arbiter::new();
    let jobs = {
        let s = JobSettings {
            web_url: settings.st2.web_url.clone(),
            prefix: command_prefix.clone(),
            retention: settings.jobs.retention,
            tail_interval: settings.jobs.tail_interval,
            tail_limit: settings.jobs.tail_limit,
            replies: settings.replies.clone(),
            mask: mask.clone(),
        };
        let (store, st2, renewer, templates, status) = (
            store.jobs(),
            st2.clone(),
            renewer.clone(),
            templates.clone(),
            reporter("job_keeper", false),
        );
        actix::Supervisor::start_in_arbiter(&store_thread.handle(), move |_| {
            JobKeeper::new(s, store, st2, renewer, templates, status)
        })
    };
    let tracker = {
        let s = TrackerSettings {
            ledger: LedgerSettings {
                max_entries: settings.results.max_pending,
                pending_ttl: settings.results.pending_ttl,
                retention: settings.results.retention,
                grace: settings.results.grace,
                first_check: settings.results.first_check,
                max_check_interval: settings.results.max_check_interval,
            },
            connection_order: connection_order.clone(),
            mention_user: settings.results.mention_user,
            leased: leases.is_some(),
            replies: settings.replies.clone(),
        };
        let (results, st2, renewer, jobs, snapshot, templates, metrics, status) = (
            store.results(),
            st2.clone(),
            renewer.clone(),
            Some(jobs.clone().recipient()),
            snapshot.clone(),
            templates.clone(),
            metrics.clone(),
            reporter("result_tracker", false),
        );
        actix::Supervisor::start_in_arbiter(&store_thread.handle(), move |_| {
            ResultTracker::new(
                s, results, st2, renewer, jobs, snapshot, templates, metrics, status,
            )
        })
    };

    let dispatcher = {
        let s = DispatcherSettings {
            prefixes: Prefixes {
                bot: settings.bot.prefix.clone(),
                plugin: settings.bot.plugin_prefix.clone(),
            },
            route_key: settings.st2.route_key.clone(),
            web_url: settings.st2.web_url.clone(),
            help_page_size: settings.bot.help_page_size,
            help_max_page_size: settings.bot.help_max_page_size,
            st2_user: settings.bot.st2_user,
            confirm: settings.access.confirm_settings(),
            waiting_store: store.waiting(),
            mask: mask.clone(),
            jobs: Some(jobs.clone()),
            personal_aliases: store.personal_aliases(),
            trigger_tokens: store.trigger_tokens(),
            local: settings.local.clone(),
            replies: settings.replies.clone(),
            public_url: settings.auth.public_url.clone(),
            persistent_results: store.results().is_persistent(),
        };
        let (st2, metrics, templates, snapshot, renewer, gate, tracker, reload) = (
            st2.clone(),
            metrics.clone(),
            templates.clone(),
            snapshot.clone(),
            renewer.clone(),
            gate.clone(),
            tracker.clone(),
            alias_cache.clone().recipient(),
        );
        let status = reporter("dispatcher", false);
        actix::Supervisor::start(move |_| {
            Dispatcher::new(
                s, st2, metrics, templates, snapshot, renewer, gate, tracker, reload, status,
            )
        })
    };

    let stream_consumer = {
        let s = StreamSettings {
            routes: settings.st2.routes(),
            idle_refresh: settings.st2.stream_idle_refresh,
            greeting_timeout: settings.st2.request_timeout,
        };
        let (st2, metrics, renewer) = (st2.clone(), metrics.clone(), renewer.clone());
        let announcements = tracker.clone().recipient();
        let established = tracker.clone().recipient();
        let lost = tracker.clone().recipient();
        let alias_changes = alias_cache.clone().recipient();
        let status = reporter("stream_consumer", true);
        let backoff = backoff.clone();
        actix::Supervisor::start(move |_| {
            StreamConsumer::new(
                s,
                st2,
                metrics,
                renewer,
                announcements,
                established,
                lost,
                alias_changes,
                backoff,
                status,
            )
        })
    };

    // Each connection's gate: always open for one process, a lease with a shared store.
    let gates: std::collections::HashMap<String, Gate> = settings
        .chat
        .iter()
        .map(|chat| {
            let gate = if leases.is_some() {
                Gate::leased()
            } else {
                Gate::always()
            };
            (chat.name.clone(), gate)
        })
        .collect();
    let gates = Arc::new(gates);
    // Where the other processes run the connections this one does not (filled by the
    // lease keeper, read by the HTTP server to pass requests on, and by the notice relay).
    let holders = crate::actors::lease_keeper::HolderDirectory::default();
    // The session manager's notices (a login confirmed) reach the user's connection where
    // it runs: with a shared store, perhaps in another process.
    let (notices, notice_inbox): (Recipient<NotifyUser>, _) = match &settings.store {
        StoreSettings::Redis { key, .. } => (
            NoticeRelay::new(
                dispatcher.clone().recipient(),
                gates.clone(),
                holders.clone(),
                key.clone(),
            )
            .start()
            .recipient(),
            Some(http::relay::NoticeInbox::new(
                key.clone(),
                dispatcher.clone().recipient(),
                gates.clone(),
            )),
        ),
        _ => (dispatcher.clone().recipient(), None),
    };
    let sessions = match settings.auth.mode {
        AuthMode::Standalone => None,
        AuthMode::Clientside => {
            let s = SessionSettings {
                public_url: settings.auth.public_url.clone().unwrap_or_default(),
                link_ttl: settings.auth.link_ttl,
                session_ttl: settings.auth.session_ttl,
                user_token_ttl: settings.auth.user_token_ttl,
                warn_before: settings.auth.renew_warning,
                attempts_per_address: settings.auth.login_attempts_per_address,
                attempt_window: settings.auth.login_attempt_window,
            };
            // Word hashing (PBKDF2) and SQLite calls block; give them their own thread so
            // they never stall the dispatcher and the connections.
            let arbiter = actix::Arbiter::new();
            let (store, st2, renewer, notify, status) = (
                store.clone(),
                st2.clone(),
                renewer.clone(),
                notices.clone(),
                reporter("session_manager", false),
            );
            let manager = SessionManager::start_in_arbiter(&arbiter.handle(), move |_| {
                SessionManager::new(s, store, st2, renewer, notify, status)
            });
            dispatcher.do_send(UseSessions(manager.clone()));
            tracker.do_send(UseSessions(manager.clone()));
            jobs.do_send(UseSessions(manager.clone()));
            Some(manager)
        }
    };

    // The key of a persistent store: what signs buttons that must outlive this process.
    let store_key = match &settings.store {
        StoreSettings::Memory => None,
        StoreSettings::Sqlite { key, .. } | StoreSettings::Redis { key, .. } => Some(key),
    };
    let mut console_io = options.console_io;
    let mut consoles = options.consoles;
    let mut webhooks = std::collections::HashMap::new();
    for chat in &settings.chat {
        let kind = chat.backend.kind();
        let spec = REGISTRY
            .spec(kind)
            .ok_or_else(|| StartError::Chat(chat.name.clone(), format!("no platform `{kind}`")))?;
        // The console's input and output: the test's, else standard input and output.
        let console = (kind == "console").then(|| {
            consoles
                .remove(&chat.name)
                .or_else(|| console_io.take())
                .unwrap_or_else(ConsoleIo::stdio)
        });
        let start = Start {
            wiring: Wiring {
                name: chat.name.clone(),
                dispatcher: dispatcher.clone().recipient(),
                status: reporter(&format!("chat:{}", chat.name), true),
                backoff: backoff.clone(),
                mask: mask.clone(),
                gate: gates.get(&chat.name).cloned().unwrap_or_default(),
                handoff: leases.as_ref().map(|(l, _)| {
                    Arc::new(l.clone()) as Arc<dyn crate::backends::connection::Handoff>
                }),
            },
            bot_name: settings.bot.name.clone(),
            console,
            presses: dispatcher.clone().recipient(),
            buttons: dispatcher.clone().recipient(),
            button_key: store_key
                .and_then(|key| key.derive_hmac_key(&[BUTTON_KEY_PURPOSE, chat.name.as_bytes()])),
        };
        let started = REGISTRY
            .start(chat.backend.as_ref(), start)
            .map_err(|e| StartError::Chat(chat.name.clone(), e.to_string()))?;
        for route in started.routes {
            // Paths carry the connection's name, and names are unique: two connections
            // never share one.
            webhooks.insert(
                route.path.clone(),
                crate::backends::webhook::ConnectionRoute {
                    connection: chat.name.clone(),
                    route,
                },
            );
        }
        let (recipient, mention) = (started.deliver, spec.mention);
        tracker.do_send(RegisterConnection {
            name: chat.name.clone(),
            recipient: recipient.clone(),
            mention,
        });
        jobs.do_send(RegisterConnection {
            name: chat.name.clone(),
            recipient: recipient.clone(),
            mention,
        });
        dispatcher.do_send(RegisterConnection {
            name: chat.name.clone(),
            recipient,
            mention,
        });
    }
    tracker.do_send(ConnectionsRegistered);
    let advertise_url = match &settings.store {
        StoreSettings::Redis { advertise_url, .. } => advertise_url.clone(),
        _ => None,
    };
    // Started once every connection is: the first lease taken connects at once.
    // Requests that came while no process ran their connection: handled once this one does.
    let held = leases.as_ref().map(|(leases, _)| leases.clone());
    let webhooks: http::webhook::Routes = Arc::new(webhooks);
    let held_drainer = held.clone().map(|store| {
        crate::actors::held_requests::HeldRequestDrainer::new(
            store,
            webhooks.clone(),
            metrics.clone(),
        )
        .start()
    });
    let lease_keeper = leases.map(|(leases, ttl)| {
        let connections = settings
            .chat
            .iter()
            .filter_map(|chat| Some((chat.name.clone(), gates.get(&chat.name)?.clone())))
            .collect();
        LeaseKeeper::new(
            leases,
            ttl,
            connections,
            tracker.clone().recipient(),
            reporter("leases", false),
            advertise_url.as_deref(),
            holders.clone(),
            metrics.clone(),
        )
        .start()
    });

    let server = http::server::start(
        settings.http.listen,
        http_tls,
        HttpState {
            status_registry: status_registry.clone(),
            metrics: metrics.clone(),
            sessions,
            login_pages,
            webhooks,
            trusted_proxies: Arc::new(settings.http.trusted_proxies.clone()),
            public_origin: settings
                .auth
                .public_url
                .as_deref()
                .and_then(http::same_origin::Origin::of_url),
            post: http::post::PostEndpoints::new(
                settings.http.post_token.as_ref(),
                tracker.clone().recipient(),
            ),
            trigger: http::trigger::TriggerEndpoint::new(
                store.trigger_tokens(),
                dispatcher.clone().recipient(),
                gates.clone(),
                holders.clone(),
            ),
            holders,
            notices: notice_inbox,
            held,
        },
    )
    .map_err(|source| StartError::Listen {
        addr: settings.http.listen,
        source,
    })?;
    tracing::info!(http = %server.addr, "stormbridge started");
    Ok(RunningApp {
        http_addr: server.addr,
        metrics,
        lease_keeper,
        _held_drainer: held_drainer,
        status_registry,
        http: server.handle,
        stream_consumer,
        tracker,
        acl_gate: gate,
        alias_cache: alias_cache.clone(),
    })
}

/// The shared store passes a leased connection on from one process to the next.
impl crate::backends::connection::Handoff for crate::store::leases::LeaseStore {
    fn load_resume(&self, connection: &str) -> Result<Option<String>, HandoffError> {
        self.resume_state(connection).map_err(HandoffError::store)
    }

    fn save_resume(&self, connection: &str, state: &str) -> Result<(), HandoffError> {
        self.save_resume_state(connection, state)
            .map_err(HandoffError::store)
    }

    fn first_to_take(&self, connection: &str, ids: &[String]) -> Result<Vec<bool>, HandoffError> {
        self.take_messages(connection, ids)
            .map_err(HandoffError::store)
    }
}
