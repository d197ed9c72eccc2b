//! The one way the fake platform servers (Mattermost, Discord, Slack) are hosted: an
//! actix-web server on a random loopback port, in a thread of its own with its own actix
//! system — so it serves the same whatever runtime the test runs on, and goes on serving
//! while the test's thread is busy — stopped when its handle is dropped.

use std::net::{SocketAddr, TcpListener};

use actix_web::{dev::ServerHandle, web, App, HttpServer};

/// A running fake server; stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl FakeServer {
    /// Serves the app that `configure` sets up (given the server's own address, for URLs
    /// that point back at it) on a random loopback port, with one worker. `name` names the
    /// thread and what failed.
    pub fn start<F>(name: &str, configure: F) -> Self
    where
        F: Fn(&mut web::ServiceConfig, SocketAddr) + Send + Clone + 'static,
    {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{name} binds: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name} has an address: {e}"));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let what = name.to_owned();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        let configure = configure.clone();
                        App::new().configure(move |cfg| configure(cfg, addr))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .unwrap_or_else(|e| panic!("{what} listens: {e}"))
                    .run();
                    let _ = ready_tx.send(server.handle());
                    let _ = server.await;
                });
            })
            .unwrap_or_else(|e| panic!("{name}'s thread starts: {e}"));
        let handle = ready_rx
            .recv()
            .unwrap_or_else(|e| panic!("{name} started: {e}"));
        Self { addr, handle }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}
