//! What the bridge processes sharing a connection (one at a time, by its lease) pass to
//! each other: where the link stood, so the next holder resumes it, and which chat messages
//! were already taken, so a message the platform delivers again after a takeover runs once.
//!
//! The connection skeleton knows only this trait; the shared store (Redis) implements it,
//! glued in by the app. Every call blocks (a network round trip): the connection actor
//! makes them on tokio's blocking pool.

/// Shared state of leased connections.
pub trait Handoff: Send + Sync + 'static {
    /// The resume state the last holder of `connection` saved, if any (JSON).
    fn load_resume(&self, connection: &str) -> Result<Option<String>, String>;

    /// Saves `connection`'s resume state (JSON), replacing the previous one.
    fn save_resume(&self, connection: &str, state: &str) -> Result<(), String>;

    /// Takes chat messages `ids` of `connection` for this process: for each, whether it is
    /// the first to take it (and so runs it).
    fn first_to_take(&self, connection: &str, ids: &[String]) -> Result<Vec<bool>, String>;
}

/// Runs `call` on tokio's blocking pool (never on an actor's thread); a call that did not
/// finish is an error like any other.
pub(crate) async fn off_thread<T: Send + 'static>(
    handoff: std::sync::Arc<dyn Handoff>,
    call: impl FnOnce(&dyn Handoff) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || call(&*handoff))
        .await
        .map_err(|e| e.to_string())?
}
