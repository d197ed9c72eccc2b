//! The alias cache: the single writer of the alias snapshot every command is matched against.
//!
//! Aliases are loaded at start, every `alias_refresh_interval`, and (debounced) whenever the
//! stream announces an alias change. Compiling thousands of regexes happens on a blocking
//! thread, then the new [`AliasIndex`] is swapped in whole: readers load an `Arc` and never
//! wait, and a failed refresh keeps serving the last good list.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::{
    status::{ActorState, StatusReporter},
    token_renewer::{with_bridge_credential, BridgeCallError, CredentialWorked, TokenRenewer},
};
use crate::{
    alias::{index::AliasIndex, model::parse_alias_list_bytes},
    domain::backoff::Backoff,
    metrics::Metrics,
    st2::client::{LocalClient, St2ClientFactory},
};

/// Shared read side of the cache. Cloning is cheap; `load` never blocks.
#[derive(Clone)]
pub struct AliasSnapshot {
    index: Arc<ArcSwap<AliasIndex>>,
    /// False until the first successful load: an empty index before it means "not known
    /// yet", not "StackStorm has no aliases".
    loaded: Arc<AtomicBool>,
}

impl Default for AliasSnapshot {
    fn default() -> Self {
        Self {
            index: Arc::new(ArcSwap::from_pointee(AliasIndex::default())),
            loaded: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl AliasSnapshot {
    /// The current index.
    pub fn load(&self) -> Arc<AliasIndex> {
        self.index.load_full()
    }

    /// Whether aliases have been loaded from StackStorm at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn store(&self, index: AliasIndex) {
        self.index.store(Arc::new(index));
        self.loaded.store(true, Ordering::Release);
    }
}

/// Asks for a reload.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct RefreshAliases {
    /// Why, for the log.
    pub reason: &'static str,
}

/// Reload now and answer once the load is over: the number of aliases, or why the list
/// could not be loaded (the previous list stays).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct ReloadAliases {
    /// Why, for the log.
    pub reason: &'static str,
}

/// Stream events arrive in bursts when a pack is registered; wait this long for the burst to end.
const STREAM_DEBOUNCE: Duration = Duration::from_millis(250);

/// The cache actor.
pub struct AliasCache {
    client: LocalClient,
    metrics: Metrics,
    renewer: Addr<TokenRenewer>,
    snapshot: AliasSnapshot,
    refresh_interval: Option<Duration>,
    backoff: Backoff,
    status: StatusReporter,
    loading: bool,
    reload_after_load: bool,
    debounce: Option<SpawnHandle>,
    retry: Option<SpawnHandle>,
    loaded_once: bool,
    /// Callers of [`ReloadAliases`] waiting for the load that will start next.
    waiting: Vec<tokio::sync::oneshot::Sender<Result<usize, String>>>,
    /// Callers waiting for the load under way.
    answering: Vec<tokio::sync::oneshot::Sender<Result<usize, String>>>,
}

impl AliasCache {
    /// A cache writing into `snapshot`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        st2: St2ClientFactory,
        metrics: Metrics,
        renewer: Addr<TokenRenewer>,
        snapshot: AliasSnapshot,
        refresh_interval: Option<Duration>,
        backoff: Backoff,
        status: StatusReporter,
    ) -> Self {
        Self {
            client: LocalClient::new(st2),
            metrics,
            renewer,
            snapshot,
            refresh_interval,
            backoff,
            status,
            loading: false,
            reload_after_load: false,
            debounce: None,
            retry: None,
            loaded_once: false,
            waiting: Vec::new(),
            answering: Vec::new(),
        }
    }

    fn reload(&mut self, reason: &'static str, ctx: &mut Context<Self>) {
        if self.loading {
            self.reload_after_load = true;
            return;
        }
        if let Some(h) = self.retry.take() {
            ctx.cancel_future(h);
        }
        self.loading = true;
        self.answering = std::mem::take(&mut self.waiting);
        tracing::debug!(reason, "loading aliases");
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let previous = self.snapshot.load();
        let fut = async move {
            let (raw, generation) = with_bridge_credential(&renewer, |credential| {
                let client = client.clone();
                async move { client.list_aliases(&credential).await }
            })
            .await?;
            renewer.do_send(CredentialWorked { generation });
            // Decoding and compiling thousands of formats is CPU work: keep it off the arbiter.
            // A body that is no list at all (`null`, a 200 with a faultstring) is an error:
            // the last good list stays.
            let built = actix_web::rt::task::spawn_blocking(move || {
                let mut aliases = Vec::new();
                let mut problems = Vec::new();
                for page in raw {
                    let (a, p) = parse_alias_list_bytes(&page)?;
                    // Each item in its `Arc` (the index's form) right away: a page's structs
                    // are the only ones ever held twice.
                    aliases.extend(a.into_iter().map(Arc::new));
                    problems.extend(p);
                }
                let (index, warnings) = AliasIndex::rebuild(aliases, Some(&previous));
                problems.extend(warnings);
                Ok::<_, LoadError>((index, problems))
            })
            .await
            .map_err(|e| LoadError::Build(e.to_string()))??;
            Ok::<_, LoadError>(built)
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.loading = false;
            let answer = match &result {
                Ok((index, _)) => Ok(index.len()),
                Err(e) => Err(e.to_string()),
            };
            for waiter in std::mem::take(&mut act.answering) {
                let _ = waiter.send(answer.clone());
            }
            match result {
                Ok((index, problems)) => {
                    for p in problems.iter().take(20) {
                        tracing::warn!(problem = %p, "skipped part of the alias list");
                    }
                    if problems.len() > 20 {
                        tracing::warn!(more = problems.len() - 20, "more alias problems not shown");
                    }
                    // Once per load, not per command: the dispatcher refuses these quietly.
                    for c in index.name_collisions() {
                        tracing::warn!(
                            alias = %c.name,
                            packs = %c.packs.join(", "),
                            "alias name defined in several packs; StackStorm runs an alias by name alone (disabled ones included), so commands for it are refused until all but one are renamed"
                        );
                    }
                    let mut notes = Vec::new();
                    if !problems.is_empty() {
                        notes.push(format!("{} alias entries or formats skipped", problems.len()));
                    }
                    let collisions = index.name_collisions().len();
                    if collisions > 0 {
                        notes.push(format!("{collisions} alias names shared by several packs"));
                    }
                    let count = index.len();
                    act.snapshot.store(index);
                    act.metrics.set_aliases(count);
                    act.backoff.reset();
                    act.loaded_once = true;
                    let state_error =
                        (!notes.is_empty()).then(|| format!("{} (see log)", notes.join("; ")));
                    act.status.state(ActorState::Up, state_error);
                    tracing::info!(count, reason, "aliases loaded");
                }
                Err(e) => {
                    let delay = act.backoff.next_delay();
                    // Say what happens to the list: a refused call keeps it as well as a
                    // malformed answer does (whose text already says so).
                    let why = match &e {
                        LoadError::List(_) => e.to_string(),
                        _ if act.loaded_once => format!("{e}; keeping the aliases loaded before"),
                        _ => e.to_string(),
                    };
                    tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "loading aliases failed");
                    let state = if act.loaded_once { ActorState::Degraded } else { ActorState::Down };
                    act.status.state(state, Some(why));
                    act.retry = Some(ctx.run_later(delay, |act, ctx| {
                        act.retry = None;
                        act.reload("retry", ctx);
                    }));
                }
            }
            if std::mem::take(&mut act.reload_after_load) {
                act.reload("changed while loading", ctx);
            }
        }));
    }
}

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Call(#[from] BridgeCallError),
    #[error("building the alias index failed: {0}")]
    Build(String),
    #[error("{0}; keeping the aliases loaded before")]
    List(#[from] crate::alias::AliasListError),
}

impl Actor for AliasCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.reload("start", ctx);
        if let Some(every) = self.refresh_interval {
            ctx.run_interval(every, |act, ctx| act.reload("periodic", ctx));
        }
    }
}

impl Supervised for AliasCache {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.loading = false;
        self.status.restarted(None);
    }
}

impl Handler<ReloadAliases> for AliasCache {
    type Result = ResponseFuture<Result<usize, String>>;

    fn handle(&mut self, msg: ReloadAliases, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A load already under way may have read the list before the change that prompted
        // this request: wait for the next one.
        self.waiting.push(tx);
        self.reload(msg.reason, ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the alias cache restarted".to_owned()))
        })
    }
}

impl Handler<RefreshAliases> for AliasCache {
    type Result = ();

    fn handle(&mut self, msg: RefreshAliases, ctx: &mut Self::Context) {
        if msg.reason == "stream" {
            if let Some(h) = self.debounce.take() {
                ctx.cancel_future(h);
            }
            self.debounce = Some(ctx.run_later(STREAM_DEBOUNCE, |act, ctx| {
                act.debounce = None;
                act.reload("alias changed on the stream", ctx);
            }));
        } else {
            self.reload(msg.reason, ctx);
        }
    }
}
