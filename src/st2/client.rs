//! The StackStorm HTTP client (hyper).
//!
//! Why hyper and not awc, the project's usual client: StackStorm's stock nginx site
//! (`conf/nginx/st2.conf`) proxies with HTTP/1.0 and `chunked_transfer_encoding off`, so the
//! event stream — and, with nginx's `gzip on`, every other answer — arrives with neither a
//! `Content-Length` nor chunked framing: the body ends when the connection closes. actix-http's
//! client decoder reads such an HTTP/1.1 body as empty (actix/actix-web#2287, closed
//! unfixed), which made the bridge see every stream end at once and never deliver a result.
//! hyper reads close-delimited, chunked and sized bodies alike.
//!
//! The client is `Send` and cheap to clone (it shares its connection pool). Actors still
//! build their own on first use ([`LocalClient`]), so each pool's connection tasks run on the
//! arbiter that uses them.

use std::{
    fmt::Write as _,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyDataStream, BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{
    credential::Credential,
    error::St2Error,
    models::{
        AliasExecutionRequest, AliasExecutionResponse, AliasExecutionResult, ExecutionState,
        TokenGrant,
    },
};
use crate::{config::St2Settings, metrics::Metrics};

/// Largest API response body read (the alias list of a big install is a few MiB).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Aliases asked for per page when paging: st2's default `api.max_page_size`, the most a
/// non-admin may ask for with RBAC on (st2api `controllers/resource.py`).
const ALIAS_PAGE: usize = 100;

/// Aliases asked for per page when the whole list is too large to read as one answer and
/// StackStorm lets the bridge's account ask for more than [`ALIAS_PAGE`] (an admin).
const BIG_ALIAS_PAGE: usize = 1_000;

/// The alias-list default of [`St2Endpoints::alias_list_max_bytes`].
pub const DEFAULT_ALIAS_LIST_BYTES: usize = 16 * 1024 * 1024;

/// Pages read at most (1,000,000 aliases): a server that never reports the end cannot
/// keep the cache loading forever.
const MAX_ALIAS_PAGES: usize = 10_000;

/// Largest error body read from a refused stream request.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How long an idle pooled API connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// API requests one client has in flight at most; more wait for a turn. hyper's pool opens
/// a connection for every request that finds none idle and keeps them all idle afterwards, so
/// without a bound a burst of commands (2,000 said at once in the `memory_process` bench)
/// opened as many connections, each with its buffers (~46 KB a command at the peak, 20 MB
/// still held by the pool after the burst), and had StackStorm accept them all at once.
const MAX_IN_FLIGHT: usize = 32;

const USER_AGENT: &str = concat!("stormbridge/", env!("CARGO_PKG_VERSION"));

/// st2's request id header (`st2common/constants/api.py` `REQUEST_ID_HEADER`).
const REQUEST_ID_HEADER: &str = "x-request-id";

/// A header's value as text, when it is text.
fn header_text(value: Option<&http::HeaderValue>) -> Option<String> {
    value.and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// TCP keepalive for the event stream: a connection whose peer vanished (host down, a NAT
/// or firewall that forgot it) is reported dead after `idle + interval × retries`, however
/// long StackStorm itself stays silent (a busy bus silences a filtered stream for minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dead.
    pub retries: u32,
}

impl Keepalive {
    /// Probes every third of `idle`, three of them: a dead peer is noticed about
    /// `2 × idle` after the last traffic.
    pub fn from_idle(idle: Duration) -> Self {
        Self {
            idle,
            interval: (idle / 3).max(Duration::from_secs(1)),
            retries: 3,
        }
    }
}

/// Base URLs and limits, shared by the clients of one bridge.
#[derive(Debug, Clone)]
pub struct St2Endpoints {
    /// API base, no trailing slash.
    pub api_url: String,
    /// Auth base, no trailing slash.
    pub auth_url: String,
    /// Stream base, no trailing slash.
    pub stream_url: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// TCP keepalive on the event stream's connection, when on.
    pub stream_keepalive: Option<Keepalive>,
    /// The largest alias list read as one answer; a larger one is read page by page.
    pub alias_list_max_bytes: usize,
}

impl From<&St2Settings> for St2Endpoints {
    fn from(s: &St2Settings) -> Self {
        Self {
            api_url: s.api_url.clone(),
            auth_url: s.auth_url.clone(),
            stream_url: s.stream_url.clone(),
            connect_timeout: s.connect_timeout,
            request_timeout: s.request_timeout,
            stream_keepalive: s.stream_keepalive.map(Keepalive::from_idle),
            alias_list_max_bytes: s.alias_list_max_bytes,
        }
    }
}

/// Everything needed to build a StackStorm client; `Send`, so it can be handed to actors.
#[derive(Clone)]
pub struct St2ClientFactory {
    endpoints: St2Endpoints,
    tls: Arc<rustls::ClientConfig>,
    metrics: Metrics,
}

impl St2ClientFactory {
    /// A factory for clients of these endpoints.
    pub fn new(endpoints: St2Endpoints, tls: Arc<rustls::ClientConfig>, metrics: Metrics) -> Self {
        Self {
            endpoints,
            tls,
            metrics,
        }
    }

    /// A client (its connections live on the runtime of the thread that uses it).
    pub fn build(&self) -> St2Client {
        St2Client::new(&self.endpoints, self.tls.clone(), self.metrics.clone())
    }
}

/// An actor's StackStorm client, built on first use on the actor's own thread, so its pooled
/// connections are driven by that actor's arbiter.
pub struct LocalClient {
    factory: St2ClientFactory,
    client: Option<St2Client>,
}

impl LocalClient {
    /// A client to be built from `factory` when first needed.
    pub fn new(factory: St2ClientFactory) -> Self {
        Self {
            factory,
            client: None,
        }
    }

    /// The client (cheap to clone: it shares its connection pool).
    pub fn get(&mut self) -> St2Client {
        self.client
            .get_or_insert_with(|| self.factory.build())
            .clone()
    }
}

type Https = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A StackStorm API client.
#[derive(Clone)]
pub struct St2Client {
    /// Pooled connections for API and auth calls.
    http: Https,
    /// Unpooled connections with TCP keepalive, for the event stream.
    stream_http: Https,
    endpoints: Arc<St2Endpoints>,
    metrics: Metrics,
    /// Aliases per page once the whole alias list cannot be read at once (StackStorm
    /// refused it, or it was larger than `alias_list_max_bytes`); 0 until then.
    alias_page: Arc<std::sync::atomic::AtomicUsize>,
    /// Turns for API requests ([`MAX_IN_FLIGHT`]), shared by the clones, as the pool is.
    turns: Arc<tokio::sync::Semaphore>,
}

/// The body of an open event stream: chunks of SSE bytes as they arrive, however the server
/// frames them; an `Err` ends the stream.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

fn connector(
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    keepalive: Option<Keepalive>,
) -> HttpsConnector<HttpConnector> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    if let Some(k) = keepalive {
        tcp.set_keepalive(Some(k.idle));
        tcp.set_keepalive_interval(Some(k.interval));
        tcp.set_keepalive_retries(Some(k.retries));
    }
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp)
}

/// An error and its sources on one line (hyper's top-level messages alone say little).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

impl St2Client {
    /// Builds a client.
    pub fn new(endpoints: &St2Endpoints, tls: Arc<rustls::ClientConfig>, metrics: Metrics) -> Self {
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build(connector(tls.clone(), endpoints.connect_timeout, None));
        let stream_http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector(
                tls,
                endpoints.connect_timeout,
                endpoints.stream_keepalive,
            ));
        Self {
            http,
            stream_http,
            endpoints: Arc::new(endpoints.clone()),
            metrics,
            alias_page: Arc::default(),
            turns: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Waits for a turn to send an API request; the request holds it until its answer is
    /// read. (The semaphore is never closed; were it, requests would go without a turn.)
    async fn turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.turns.acquire().await.ok()
    }

    /// The API base URL, no trailing slash (for the calls in sibling modules).
    pub(crate) fn api_url(&self) -> &str {
        &self.endpoints.api_url
    }

    /// A request with the bridge's usual headers; `body` is sent as JSON.
    pub(crate) fn request(
        method: Method,
        url: &str,
        credential: Option<(&str, &str)>,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, St2Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::ACCEPT, "application/json");
        if let Some((name, value)) = credential {
            req = req.header(name, value);
        }
        let body = match body {
            Some(bytes) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        req.body(body)
            .map_err(|e| St2Error::Decode(format!("cannot build a request for {url}: {e}")))
    }

    /// `POST /auth/v1/tokens` with Basic credentials; `ttl` when given.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        ttl: Option<u64>,
    ) -> Result<TokenGrant, St2Error> {
        use base64::Engine as _;
        let url = format!("{}/tokens", self.endpoints.auth_url);
        let body = match ttl {
            Some(ttl) => serde_json::json!({ "ttl": ttl }),
            None => serde_json::json!({}),
        };
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose_secret()))
        );
        let req = Self::request(
            Method::POST,
            &url,
            Some((header::AUTHORIZATION.as_str(), &basic)),
            Some(json_bytes(&body)?),
        )?;
        let bytes = self
            .exchange("auth_tokens", req, StatusCode::CREATED)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| St2Error::Decode(format!("token response: {e}")))
    }

    /// Every alias, as the bodies' bytes (decoded item by item by the cache, off the actor
    /// thread): `GET /api/v1/actionalias?limit=-1` in one answer; when StackStorm refuses that
    /// (403: with RBAC on, only admins may ask for more than `api.max_page_size`, and the
    /// bridge's account should not be an admin), page by page with `limit` and `offset`
    /// until `X-Total-Count` is reached — and from then on straight away.
    pub async fn list_aliases(&self, cred: &Credential) -> Result<Vec<Bytes>, St2Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut page = self.alias_page.load(Relaxed);
        if page == 0 {
            let url = format!("{}/actionalias?limit=-1&offset=0", self.endpoints.api_url);
            let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
            let cap = self.endpoints.alias_list_max_bytes;
            match self
                .exchange_capped("actionalias_list", req, StatusCode::OK, cap)
                .await
            {
                Err(St2Error::Api { status: 403, .. }) => {
                    tracing::info!("StackStorm refuses the whole alias list at once (RBAC); reading it a page at a time");
                    page = ALIAS_PAGE;
                }
                Ok((_, true)) => {
                    // The rest of that answer was left unread: a huge list is never held
                    // whole, and its pages are read instead.
                    tracing::info!(
                        max_bytes = cap,
                        "the alias list is larger than st2.alias_list_max_bytes; reading it a page at a time"
                    );
                    page = BIG_ALIAS_PAGE;
                }
                Ok((body, false)) => return Ok(vec![body]),
                Err(e) => return Err(e),
            }
            self.alias_page.store(page, Relaxed);
        }
        let mut pages = Vec::new();
        let mut offset = 0usize;
        loop {
            let url = format!(
                "{}/actionalias?limit={page}&offset={offset}",
                self.endpoints.api_url
            );
            let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
            let (headers, body) = match self
                .exchange_with_headers("actionalias_page", req, StatusCode::OK)
                .await
            {
                // More than `api.max_page_size` a page is for admins only: pages of that size.
                Err(St2Error::Api { status: 403, .. }) if page > ALIAS_PAGE => {
                    page = ALIAS_PAGE;
                    self.alias_page.store(page, Relaxed);
                    pages.clear();
                    offset = 0;
                    continue;
                }
                answer => answer?,
            };
            let total = headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            // Without the header, a short page is the last one.
            let items = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&body)
                .map(|v| v.len())
                .unwrap_or(0);
            pages.push(body);
            offset += page;
            let done = match total {
                Some(total) => offset >= total,
                None => items < page,
            };
            if done || pages.len() >= MAX_ALIAS_PAGES {
                return Ok(pages);
            }
        }
    }

    /// `POST /auth/v1/tokens/validate`, authenticated with `bridge` (st2 requires a credential
    /// for this call): whether `token` is a valid, unexpired token.
    pub async fn validate_token(
        &self,
        bridge: &Credential,
        token: &SecretString,
    ) -> Result<bool, St2Error> {
        let url = format!("{}/tokens/validate", self.endpoints.auth_url);
        let body = serde_json::json!({ "token": token.expose_secret() });
        let req = Self::request(
            Method::POST,
            &url,
            Some(bridge.header()),
            Some(json_bytes(&body)?),
        )?;
        let bytes = self
            .exchange("auth_tokens_validate", req, StatusCode::OK)
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| St2Error::Decode(format!("token validation response: {e}")))?;
        Ok(answer.get("valid").and_then(serde_json::Value::as_bool) == Some(true))
    }

    /// A cheap authenticated call (`GET /api/v1/actionalias?limit=1`) proving that `cred` works.
    pub async fn list_aliases_probe(&self, cred: &Credential) -> Result<(), St2Error> {
        let url = format!("{}/actionalias?limit=1", self.endpoints.api_url);
        let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
        self.exchange("actionalias_probe", req, StatusCode::OK)
            .await
            .map(|_| ())
    }

    /// `POST /api/v1/aliasexecution`.
    pub async fn execute_alias(
        &self,
        cred: &Credential,
        request: &AliasExecutionRequest,
    ) -> Result<Vec<AliasExecutionResult>, St2Error> {
        let url = format!("{}/aliasexecution", self.endpoints.api_url);
        let mut req = Self::request(
            Method::POST,
            &url,
            Some(cred.header()),
            Some(json_bytes(request)?),
        )?;
        // st2's RequestIDMiddleware keeps the id a client sends: StackStorm's logs for this
        // command then carry the id the bridge logs.
        if let Ok(id) = http::HeaderValue::from_str(&request.source_context.request_id) {
            req.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
        let bytes = self
            .exchange("aliasexecution", req, StatusCode::CREATED)
            .await?;
        serde_json::from_slice::<AliasExecutionResponse>(&bytes)
            .map_err(|e| St2Error::Decode(format!("alias execution response: {e}")))?
            .into_results()
            .ok_or_else(|| {
                St2Error::Decode(
                    "alias execution response: neither `execution` nor `results`".into(),
                )
            })
    }

    /// `GET /api/v1/executions/{id}`: the execution as StackStorm serves it (key order kept,
    /// which the result templates depend on).
    pub async fn get_execution(
        &self,
        cred: &Credential,
        id: &str,
    ) -> Result<serde_json::Value, St2Error> {
        self.execution_with(cred, id, "").await
    }

    /// How an execution stands (status, times, `web_url`): [`St2Client::get_execution`]
    /// with only those attributes (`?include_attributes=`: since st2 2.9.0 its router cuts
    /// the answer down to them and `id`), so neither an output the bridge has just posted,
    /// which may be megabytes, nor the action, runner and context documents are read back
    /// (skipping them was a sixth of the bridge's instructions per command). An older st2
    /// answers the whole execution, which reads the same.
    pub async fn get_execution_state(
        &self,
        cred: &Credential,
        id: &str,
    ) -> Result<ExecutionState, St2Error> {
        self.execution_with(
            cred,
            id,
            "?include_attributes=status,start_timestamp,end_timestamp,web_url",
        )
        .await
    }

    async fn execution_with<T: serde::de::DeserializeOwned>(
        &self,
        cred: &Credential,
        id: &str,
        query: &str,
    ) -> Result<T, St2Error> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(St2Error::api(400, format!("`{id}` is not an execution id")));
        }
        let url = format!("{}/executions/{id}{query}", self.endpoints.api_url);
        let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
        let bytes = self.exchange("executions_get", req, StatusCode::OK).await?;
        serde_json::from_slice(&bytes).map_err(|e| St2Error::Decode(format!("execution: {e}")))
    }

    /// `GET /stream/v1/stream?events=…`: the open event stream. Only the response head is
    /// under the request timeout: the body may last for days. A 200 that is not an event
    /// stream (a proxy serving st2web's page for a wrong `stream_url`) is an error.
    pub async fn open_stream(
        &self,
        cred: &Credential,
        events: &str,
    ) -> Result<EventStream, St2Error> {
        let mut url = url::Url::parse(&format!("{}/stream", self.endpoints.stream_url))
            .map_err(|e| St2Error::Decode(format!("stream URL: {e}")))?;
        url.query_pairs_mut().append_pair("events", events);
        let req = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::ACCEPT, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .header(cred.header().0, cred.header().1)
            .body(Full::new(Bytes::new()))
            .map_err(|e| St2Error::Decode(format!("cannot build the stream request: {e}")))?;
        let started = Instant::now();
        let timeout = self.endpoints.request_timeout;
        let head = tokio::time::timeout(timeout, self.stream_http.request(req)).await;
        self.metrics.st2_request("stream_open", started.elapsed());
        let resp = match head {
            Err(_) => return Err(St2Error::Timeout(timeout)),
            Ok(Err(e)) => return Err(St2Error::Connect(describe(&e))),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if status != StatusCode::OK {
            let resp_headers = resp.headers().clone();
            let body = tokio::time::timeout(
                timeout,
                Limited::new(resp.into_body(), MAX_ERROR_BODY_BYTES).collect(),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
            let request_id = header_text(resp_headers.get(REQUEST_ID_HEADER));
            return Err(St2Error::from_response(
                status.as_u16(),
                &body,
                request_id.as_deref(),
            ));
        }
        // nginx's own error pages carry its `default_type` *and* st2.conf's added type:
        // any of the values will do.
        let content_types: Vec<&str> = resp
            .headers()
            .get_all(header::CONTENT_TYPE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !content_types
            .iter()
            .any(|t| t.trim_start().starts_with("text/event-stream"))
        {
            let content_type = content_types.join(", ");
            return Err(St2Error::Decode(format!(
                "the stream URL answered with content type {content_type:?} instead of an event stream; check st2.stream_url"
            )));
        }
        let body =
            BodyDataStream::new(resp.into_body()).map(|chunk| chunk.map_err(|e| describe(&e)));
        Ok(Box::pin(body))
    }

    /// Sends `req` and reads the whole answer, under the request timeout; an answer other
    /// than `expected` becomes the matching [`St2Error`].
    pub(crate) async fn exchange(
        &self,
        endpoint: &'static str,
        req: Request<Full<Bytes>>,
        expected: StatusCode,
    ) -> Result<Bytes, St2Error> {
        self.exchange_with_headers(endpoint, req, expected)
            .await
            .map(|(_, body)| body)
    }

    /// [`St2Client::exchange`] for a body that may be large: at most `cap` bytes of an
    /// `expected` answer are read (the rest is left unread and the connection dropped);
    /// the flag says whether the body went on beyond them. Error answers are read up to
    /// 64 KiB, for their `faultstring`.
    pub(crate) async fn exchange_capped(
        &self,
        endpoint: &'static str,
        req: Request<Full<Bytes>>,
        expected: StatusCode,
        cap: usize,
    ) -> Result<(Bytes, bool), St2Error> {
        let _turn = self.turn().await;
        let started = Instant::now();
        let timeout = self.endpoints.request_timeout;
        let result = tokio::time::timeout(timeout, async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| St2Error::Connect(describe(&e)))?;
            let status = resp.status();
            let (head, mut body) = resp.into_parts();
            if status != expected {
                let body = Limited::new(body, MAX_ERROR_BODY_BYTES)
                    .collect()
                    .await
                    .map(http_body_util::Collected::to_bytes)
                    .unwrap_or_default();
                let request_id = header_text(head.headers.get(REQUEST_ID_HEADER));
                return Err(St2Error::from_response(
                    status.as_u16(),
                    &body,
                    request_id.as_deref(),
                ));
            }
            let mut buf = bytes::BytesMut::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    St2Error::Decode(format!("reading response body: {}", describe(&e)))
                })?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if buf.len() + data.len() > cap {
                    buf.extend_from_slice(&data[..cap - buf.len()]);
                    return Ok((buf.freeze(), true));
                }
                buf.extend_from_slice(&data);
            }
            Ok((buf.freeze(), false))
        })
        .await
        .unwrap_or(Err(St2Error::Timeout(timeout)));
        self.metrics.st2_request(endpoint, started.elapsed());
        result
    }

    /// [`St2Client::exchange`], with the answer's headers.
    pub(crate) async fn exchange_with_headers(
        &self,
        endpoint: &'static str,
        req: Request<Full<Bytes>>,
        expected: StatusCode,
    ) -> Result<(http::HeaderMap, Bytes), St2Error> {
        let _turn = self.turn().await;
        let started = Instant::now();
        let timeout = self.endpoints.request_timeout;
        let result = tokio::time::timeout(timeout, async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| St2Error::Connect(describe(&e)))?;
            let status = resp.status();
            let (head, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| St2Error::Decode(format!("reading response body: {}", describe(&*e))))?
                .to_bytes();
            if status == expected {
                Ok((head.headers, body))
            } else {
                let request_id = header_text(head.headers.get(REQUEST_ID_HEADER));
                Err(St2Error::from_response(
                    status.as_u16(),
                    &body,
                    request_id.as_deref(),
                ))
            }
        })
        .await
        .unwrap_or(Err(St2Error::Timeout(timeout)));
        self.metrics.st2_request(endpoint, started.elapsed());
        result
    }
}

fn json_bytes<T: Serialize>(body: &T) -> Result<Vec<u8>, St2Error> {
    serde_json::to_vec(body).map_err(|e| St2Error::Decode(format!("cannot encode a request: {e}")))
}
