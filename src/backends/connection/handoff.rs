//! What the bridge processes sharing a connection (one at a time, by its lease) pass to
//! each other: where the link stood, so the next holder resumes it, and which chat messages
//! were already taken, so a message the platform delivers again after a takeover runs once.
//!
//! The connection skeleton knows only this trait; the shared store (Redis) implements it,
//! glued in by the app. Every call blocks (a network round trip): the connection actor
//! makes them on tokio's blocking pool.

/// Why a call to the shared state failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The shared store refused or could not be reached.
    #[error("the shared store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The call did not finish (its thread panicked or the runtime is shutting down).
    #[error("the call to the shared store did not finish: {0}")]
    Unfinished(#[from] tokio::task::JoinError),
}

impl HandoffError {
    /// The store's own error.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Box::new(error))
    }
}

/// Shared state of leased connections.
pub trait Handoff: Send + Sync + 'static {
    /// The resume state the last holder of `connection` saved, if any (JSON).
    fn load_resume(&self, connection: &str) -> Result<Option<String>, HandoffError>;

    /// Saves `connection`'s resume state (JSON), replacing the previous one.
    fn save_resume(&self, connection: &str, state: &str) -> Result<(), HandoffError>;

    /// Takes chat messages `ids` of `connection` for this process: for each, whether it is
    /// the first to take it (and so runs it).
    fn first_to_take(&self, connection: &str, ids: &[String]) -> Result<Vec<bool>, HandoffError>;
}

/// Runs `call` on tokio's blocking pool (never on an actor's thread); a call that did not
/// finish is an error like any other.
pub(crate) async fn off_thread<T: Send + 'static>(
    handoff: std::sync::Arc<dyn Handoff>,
    call: impl FnOnce(&dyn Handoff) -> Result<T, HandoffError> + Send + 'static,
) -> Result<T, HandoffError> {
    tokio::task::spawn_blocking(move || call(&*handoff)).await?
}
