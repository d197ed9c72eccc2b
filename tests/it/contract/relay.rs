//! A loopback TCP relay between the bridge and a real server (ngircd, prosody, Synapse): the
//! contract's way to make a real server unavailable to the bridge — every open connection
//! cut, every new one refused — while the test users stay connected to the server itself,
//! and to bring it back. A real server restart would also drop the test users (IRC keeps no
//! history: a user who is not back yet misses what the bot says) and costs seconds per
//! restart (Synapse); the relay does neither.
//!
//! It also counts the HTTP 429 answers it carries from the server to the bridge, so a test
//! can tell that a real server's rate limit was met, and it can swallow what the bridge
//! sends (a link dying under the bridge: what it writes never reaches the server), or what
//! the server sends (the server had the bridge's lines, but its answers never come).

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
    task::JoinHandle,
};

/// What an HTTP/1.1 429 answer starts with.
const STATUS_429: &[u8] = b"HTTP/1.1 429 ";

#[derive(Default)]
struct Shared {
    down: Cell<bool>,
    /// What the bridge sends is dropped (and kept here) instead of reaching the server.
    swallowing: Cell<bool>,
    swallowed: RefCell<Vec<u8>>,
    /// What the server sends is dropped instead of reaching the bridge.
    deaf: Cell<bool>,
    links: RefCell<Vec<JoinHandle<()>>>,
    answers_429: Cell<usize>,
}

/// A relay from a random loopback port to `127.0.0.1:<target>`; stops when dropped.
pub struct Relay {
    /// The port the bridge connects to.
    pub port: u16,
    shared: Rc<Shared>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Relays connections to `127.0.0.1:<target>`, from now on.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the relay binds a loopback port");
        let port = listener.local_addr().expect("relay address").port();
        let shared = Rc::new(Shared::default());
        let accepting = shared.clone();
        let accept = actix_rt::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if accepting.down.get() {
                    // Refused: closed at once, before a byte is exchanged.
                    drop(client);
                    continue;
                }
                let counts = accepting.clone();
                let link = actix_rt::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, Tap::Swallow(&counts)),
                        pump(server_read, client_write, Tap::Server(&counts)),
                    );
                });
                let mut links = accepting.links.borrow_mut();
                links.retain(|l| !l.is_finished());
                links.push(link);
            }
        });
        Self {
            port,
            shared,
            accept,
        }
    }

    /// The server becomes unreachable: every open connection is cut, new ones are closed
    /// as soon as they are accepted.
    pub fn go_down(&self) {
        self.shared.down.set(true);
        for link in self.shared.links.borrow_mut().drain(..) {
            link.abort();
        }
    }

    /// The server is reachable again.
    pub fn come_up(&self) {
        self.shared.down.set(false);
    }

    /// From now on (`on`), what the bridge sends is dropped instead of relayed, as on a
    /// link that died without either end knowing yet; the server's side still flows.
    pub fn swallow(&self, on: bool) {
        self.shared.swallowing.set(on);
    }

    /// From now on (`on`), what the server sends is dropped instead of relayed: the server
    /// had what the bridge wrote, but its answers never come.
    pub fn deafen(&self, on: bool) {
        self.shared.deaf.set(on);
    }

    /// What was swallowed so far, as text.
    pub fn swallowed(&self) -> String {
        String::from_utf8_lossy(&self.shared.swallowed.borrow()).into_owned()
    }

    /// HTTP 429 answers relayed from the server so far.
    pub fn answers_429(&self) -> usize {
        self.shared.answers_429.get()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.shared.links.borrow_mut().drain(..) {
            link.abort();
        }
    }
}

/// What a pump does besides copying.
enum Tap<'a> {
    /// Counts 429 status lines; drops what it reads while the relay is deaf (the server's
    /// side).
    Server(&'a Shared),
    /// Drops what it reads while the relay swallows (the bridge's side).
    Swallow(&'a Shared),
}

/// Copies `from` to `to` until either ends, with its tap.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, tap: Tap<'_>) {
    let mut buf = vec![0u8; 16 * 1024];
    // The end of the previous read, so a status line split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Tap::Swallow(shared) = &tap {
            if shared.swallowing.get() {
                shared.swallowed.borrow_mut().extend_from_slice(&buf[..n]);
                continue;
            }
        }
        if let Tap::Server(shared) = &tap {
            if shared.deaf.get() {
                continue;
            }
            let count = &shared.answers_429;
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(&buf[..n]);
            let found = window
                .windows(STATUS_429.len())
                .filter(|w| *w == STATUS_429)
                .count();
            count.set(count.get() + found);
            let keep = window.len().min(STATUS_429.len() - 1);
            tail = window[window.len() - keep..].to_vec();
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
