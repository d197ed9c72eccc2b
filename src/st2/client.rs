//! The StackStorm HTTP client (awc).
//!
//! awc clients are `!Send` (built on `Rc`), so every actor that talks to StackStorm builds its
//! own `St2Client` in `started()`; the TLS configuration underneath is shared.

use std::{
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::http::StatusCode;
use awc::{ClientRequest, ClientResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{
    credential::Credential,
    error::St2Error,
    models::{AliasExecutionRequest, AliasExecutionResponse, AliasExecutionResult, TokenGrant},
};
use crate::{config::St2Settings, metrics::Metrics};

/// Largest API response body read (the alias list of a big install is a few MiB).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

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
}

impl From<&St2Settings> for St2Endpoints {
    fn from(s: &St2Settings) -> Self {
        Self {
            api_url: s.api_url.clone(),
            auth_url: s.auth_url.clone(),
            stream_url: s.stream_url.clone(),
            connect_timeout: s.connect_timeout,
            request_timeout: s.request_timeout,
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

    /// A client for the current thread.
    pub fn build(&self) -> St2Client {
        St2Client::new(&self.endpoints, self.tls.clone(), self.metrics.clone())
    }
}

/// An actor's StackStorm client, built on first use on the actor's own thread (awc clients
/// are `!Send`, so they cannot be built before the actor is placed).
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

/// A StackStorm API client bound to the current thread.
#[derive(Clone)]
pub struct St2Client {
    http: awc::Client,
    endpoints: Rc<St2Endpoints>,
    metrics: Metrics,
}

/// The open stream response: a body of SSE bytes.
pub type StreamResponse = ClientResponse;

impl St2Client {
    /// Builds a client for this thread.
    pub fn new(endpoints: &St2Endpoints, tls: Arc<rustls::ClientConfig>, metrics: Metrics) -> Self {
        let connector = awc::Connector::new()
            .rustls_0_23(tls)
            .timeout(endpoints.connect_timeout);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(endpoints.request_timeout)
            .add_default_header((
                "User-Agent",
                concat!("stormbridge/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        Self {
            http,
            endpoints: Rc::new(endpoints.clone()),
            metrics,
        }
    }

    /// `POST /auth/v1/tokens` with Basic credentials; `ttl` when given.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        ttl: Option<u64>,
    ) -> Result<TokenGrant, St2Error> {
        let url = format!("{}/tokens", self.endpoints.auth_url);
        let body = match ttl {
            Some(ttl) => serde_json::json!({ "ttl": ttl }),
            None => serde_json::json!({}),
        };
        let req = self
            .http
            .post(url)
            .basic_auth(username, password.expose_secret());
        let bytes = self
            .send_json("auth_tokens", req, &body, StatusCode::CREATED)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| St2Error::Decode(format!("token response: {e}")))
    }

    /// `GET /api/v1/actionalias?limit=-1`: every alias, as raw JSON (decoded leniently by the cache).
    pub async fn list_aliases(&self, cred: &Credential) -> Result<serde_json::Value, St2Error> {
        let url = format!("{}/actionalias?limit=-1&offset=0", self.endpoints.api_url);
        let req = self.http.get(url).insert_header(cred.header());
        let bytes = self
            .send_empty("actionalias_list", req, StatusCode::OK)
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| St2Error::Decode(format!("alias list is not JSON: {e}")))
    }

    /// `POST /auth/v1/tokens/validate`, authenticated with `bridge` (st2 requires a credential
    /// for this call): whether `token` is a valid, unexpired token.
    pub async fn validate_token(
        &self,
        bridge: &Credential,
        token: &SecretString,
    ) -> Result<bool, St2Error> {
        let url = format!("{}/tokens/validate", self.endpoints.auth_url);
        let req = self.http.post(url).insert_header(bridge.header());
        let body = serde_json::json!({ "token": token.expose_secret() });
        let bytes = self
            .send_json("auth_tokens_validate", req, &body, StatusCode::OK)
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| St2Error::Decode(format!("token validation response: {e}")))?;
        Ok(answer.get("valid").and_then(serde_json::Value::as_bool) == Some(true))
    }

    /// A cheap authenticated call (`GET /api/v1/actionalias?limit=1`) proving that `cred` works.
    pub async fn list_aliases_probe(&self, cred: &Credential) -> Result<(), St2Error> {
        let url = format!("{}/actionalias?limit=1", self.endpoints.api_url);
        let req = self.http.get(url).insert_header(cred.header());
        self.send_empty("actionalias_probe", req, StatusCode::OK)
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
        let req = self.http.post(url).insert_header(cred.header());
        let bytes = self
            .send_json("aliasexecution", req, request, StatusCode::CREATED)
            .await?;
        serde_json::from_slice::<AliasExecutionResponse>(&bytes)
            .map(AliasExecutionResponse::into_results)
            .map_err(|e| St2Error::Decode(format!("alias execution response: {e}")))
    }

    /// `GET /api/v1/executions/{id}`.
    pub async fn get_execution(
        &self,
        cred: &Credential,
        id: &str,
    ) -> Result<serde_json::Value, St2Error> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(St2Error::Api {
                status: 400,
                faultstring: format!("`{id}` is not an execution id"),
            });
        }
        let url = format!("{}/executions/{id}", self.endpoints.api_url);
        let req = self.http.get(url).insert_header(cred.header());
        let bytes = self
            .send_empty("executions_get", req, StatusCode::OK)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| St2Error::Decode(format!("execution: {e}")))
    }

    /// `GET /stream/v1/stream?events=…`; the returned response's body is the event stream.
    /// Only the response head is under the request timeout: the body may last for days.
    pub async fn open_stream(
        &self,
        cred: &Credential,
        events: &str,
    ) -> Result<StreamResponse, St2Error> {
        let url = format!("{}/stream", self.endpoints.stream_url);
        let started = Instant::now();
        let result = self
            .http
            .get(url)
            .query(&[("events", events)])
            .map_err(|e| St2Error::Decode(e.to_string()))?
            .insert_header(cred.header())
            .insert_header(("Accept", "text/event-stream"))
            .insert_header(("Cache-Control", "no-cache"))
            .send()
            .await;
        self.metrics.st2_request("stream_open", started.elapsed());
        let mut resp = result.map_err(|e| self.send_error(e))?;
        if resp.status() == StatusCode::OK {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.body().limit(64 * 1024).await.unwrap_or_default();
        Err(St2Error::from_response(status, &body))
    }

    async fn send_json<T: Serialize>(
        &self,
        endpoint: &'static str,
        req: ClientRequest,
        body: &T,
        expected: StatusCode,
    ) -> Result<bytes::Bytes, St2Error> {
        let started = Instant::now();
        let timeout = self.endpoints.request_timeout;
        let result = actix_rt::time::timeout(timeout, async {
            let mut resp = req.send_json(body).await.map_err(|e| self.send_error(e))?;
            read_body(&mut resp, expected).await
        })
        .await
        .unwrap_or(Err(St2Error::Timeout(timeout)));
        self.metrics.st2_request(endpoint, started.elapsed());
        result
    }

    async fn send_empty(
        &self,
        endpoint: &'static str,
        req: ClientRequest,
        expected: StatusCode,
    ) -> Result<bytes::Bytes, St2Error> {
        let started = Instant::now();
        let timeout = self.endpoints.request_timeout;
        let result = actix_rt::time::timeout(timeout, async {
            let mut resp = req.send().await.map_err(|e| self.send_error(e))?;
            read_body(&mut resp, expected).await
        })
        .await
        .unwrap_or(Err(St2Error::Timeout(timeout)));
        self.metrics.st2_request(endpoint, started.elapsed());
        result
    }

    fn send_error(&self, e: awc::error::SendRequestError) -> St2Error {
        match e {
            awc::error::SendRequestError::Timeout => {
                St2Error::Timeout(self.endpoints.request_timeout)
            }
            other => St2Error::Connect(other.to_string()),
        }
    }
}

async fn read_body<S>(
    resp: &mut ClientResponse<S>,
    expected: StatusCode,
) -> Result<bytes::Bytes, St2Error>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = resp.status();
    let body = resp
        .body()
        .limit(MAX_BODY_BYTES)
        .await
        .map_err(|e| St2Error::Decode(format!("reading response body: {e}")))?;
    if status == expected {
        Ok(body)
    } else {
        Err(St2Error::from_response(status.as_u16(), &body))
    }
}
