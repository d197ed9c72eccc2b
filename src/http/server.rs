//! Building and binding the HTTP server.

use std::net::{SocketAddr, TcpListener};

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use super::{configure, HttpState};

/// A running server.
pub struct RunningServer {
    /// The bound address (useful when the configured port was 0).
    pub addr: SocketAddr,
    /// Stops the server.
    pub handle: ServerHandle,
}

/// Binds `listen` and starts serving on the current actix system, over TLS when `tls` is set.
pub fn start(
    listen: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    state: HttpState,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::<super::redact::RedactingRootSpan>::new())
            .app_data(web::Data::new(state.clone()))
            .configure(configure)
    })
    .workers(1)
    .disable_signals();
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(RunningServer { addr, handle })
}
