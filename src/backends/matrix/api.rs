//! The client-server API calls the connection makes (`/_matrix/client/v3`), each one an
//! async function with a typed error: the connection decides from the error whether to
//! retry, wait out a rate limit, log in again or give up on a message.
//!
//! Errors name the endpoint and Matrix's `errcode`, never the host, a token or a password.

use std::{collections::HashMap, rc::Rc, time::Duration};

use awc::http::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::wire::{self, SyncResponse};
use crate::backends::connection::ConnectionError;

/// Largest ordinary response read.
const MAX_BODY: usize = 1 << 20;
/// Largest `/sync` response read (a first sync of an account in many busy rooms is large).
const MAX_SYNC_BODY: usize = 64 << 20;

/// How a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No answer: connection refused, reset, timed out.
    #[error("{endpoint}: {detail}")]
    Network {
        /// The endpoint, e.g. `GET /sync`.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// The access token is unknown or missing (401 / `M_UNKNOWN_TOKEN`).
    #[error("{endpoint}: access token refused ({errcode})")]
    Unauthorized {
        /// The endpoint.
        endpoint: String,
        /// Matrix's error code.
        errcode: String,
    },
    /// 429: wait this long before the next call.
    #[error("{endpoint}: rate limited for {} ms", delay.as_millis())]
    RateLimited {
        /// The endpoint.
        endpoint: String,
        /// The server's requested delay.
        delay: Duration,
    },
    /// 5xx or 408: worth retrying later.
    #[error("{endpoint}: HTTP {status} {errcode}")]
    Server {
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// Matrix's error code, if any.
        errcode: String,
    },
    /// Any other refusal (403 not in the room, 404 unknown alias, …): retrying will not help.
    #[error("{endpoint}: HTTP {status} {errcode} {message}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// Matrix's error code.
        errcode: String,
        /// Matrix's error message.
        message: String,
    },
    /// A success answer that is not what the API documents.
    #[error("{endpoint}: unexpected response: {detail}")]
    BadResponse {
        /// The endpoint.
        endpoint: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl From<ApiError> for ConnectionError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Network { endpoint, detail } => ConnectionError::Network {
                during: endpoint,
                detail,
            },
            ApiError::Unauthorized { endpoint, errcode } => ConnectionError::Http {
                request: endpoint,
                status: 401,
                code: Some(errcode),
                message: Some("access token refused".into()),
            },
            ApiError::RateLimited { endpoint, delay } => ConnectionError::Http {
                request: endpoint,
                status: 429,
                code: None,
                message: Some(format!("rate limited for {} ms", delay.as_millis())),
            },
            ApiError::Server {
                endpoint,
                status,
                errcode,
            } => ConnectionError::Http {
                request: endpoint,
                status,
                code: Some(errcode).filter(|c| !c.is_empty()),
                message: None,
            },
            ApiError::Refused {
                endpoint,
                status,
                errcode,
                message,
            } => ConnectionError::Http {
                request: endpoint,
                status,
                code: Some(errcode).filter(|c| !c.is_empty()),
                message: Some(message).filter(|m| !m.is_empty()),
            },
            ApiError::BadResponse { endpoint, detail } => {
                ConnectionError::Protocol(format!("{endpoint}: unexpected response: {detail}"))
            }
        }
    }
}

/// The result of a password login.
pub struct Login {
    /// The new access token.
    pub access_token: SecretString,
    /// The full user id.
    pub user_id: String,
    /// The device logged in as.
    pub device_id: Option<String>,
}

/// A homeserver's client API, shared by the connection's requests.
#[derive(Clone)]
pub struct Api {
    client: awc::Client,
    base: Rc<str>,
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn str_field(v: &Value, key: &str, endpoint: &str) -> Result<String, ApiError> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::BadResponse {
            endpoint: endpoint.to_owned(),
            detail: format!("no `{key}`"),
        })
}

impl Api {
    /// Calls go to `base` (`https://hs.example.org`) with `client`.
    pub fn new(client: awc::Client, base: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').into(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
        timeout: Option<Duration>,
        limit: usize,
    ) -> Result<Value, ApiError> {
        let endpoint = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut req = self
            .client
            .request(method, format!("{}/_matrix/client/v3{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token.expose_secret());
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let sent = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| ApiError::Network {
            endpoint: endpoint.clone(),
            detail: e.to_string(),
        })?;
        let bytes = resp
            .body()
            .limit(limit)
            .await
            .map_err(|e| ApiError::Network {
                endpoint: endpoint.clone(),
                detail: e.to_string(),
            })?;
        let status = resp.status();
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| ApiError::BadResponse {
                endpoint,
                detail: e.to_string(),
            });
        }
        let (errcode, message) = wire::error_code(&bytes);
        Err(if status == StatusCode::TOO_MANY_REQUESTS {
            let header = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok());
            ApiError::RateLimited {
                endpoint,
                delay: wire::retry_delay(&bytes, header),
            }
        } else if status == StatusCode::UNAUTHORIZED
            || errcode == "M_UNKNOWN_TOKEN"
            || errcode == "M_MISSING_TOKEN"
        {
            ApiError::Unauthorized { endpoint, errcode }
        } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            ApiError::Server {
                endpoint,
                status: status.as_u16(),
                errcode,
            }
        } else {
            ApiError::Refused {
                endpoint,
                status: status.as_u16(),
                errcode,
                message,
            }
        })
    }

    /// `POST /login` with a password, as `device_id` when given.
    pub async fn login(
        &self,
        user: &str,
        password: &SecretString,
        device_id: Option<&str>,
    ) -> Result<Login, ApiError> {
        let mut body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password.expose_secret(),
            "initial_device_display_name": "stormbridge",
        });
        if let Some(device) = device_id {
            body["device_id"] = json!(device);
        }
        let v = self
            .call(Method::POST, "/login", None, Some(&body), None, MAX_BODY)
            .await?;
        Ok(Login {
            access_token: str_field(&v, "access_token", "POST /login")?.into(),
            user_id: str_field(&v, "user_id", "POST /login")?,
            device_id: v
                .get("device_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// `GET /account/whoami`: the token's user id.
    pub async fn whoami(&self, token: &SecretString) -> Result<String, ApiError> {
        let v = self
            .call(
                Method::GET,
                "/account/whoami",
                Some(token),
                None,
                None,
                MAX_BODY,
            )
            .await?;
        str_field(&v, "user_id", "GET /account/whoami")
    }

    /// The user's display name, if set.
    pub async fn displayname(&self, token: &SecretString, user_id: &str) -> Option<String> {
        let path = format!("/profile/{}/displayname", encode(user_id));
        let v = self
            .call(Method::GET, &path, Some(token), None, None, MAX_BODY)
            .await
            .ok()?;
        v.get("displayname")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    }

    /// The account's `m.direct` map (empty when it has none yet).
    pub async fn direct_map(
        &self,
        token: &SecretString,
        user_id: &str,
    ) -> Result<HashMap<String, Vec<String>>, ApiError> {
        let path = format!("/user/{}/account_data/m.direct", encode(user_id));
        match self
            .call(Method::GET, &path, Some(token), None, None, MAX_BODY)
            .await
        {
            Ok(v) => Ok(wire::parse_direct(&v)),
            Err(ApiError::Refused { status: 404, .. }) => Ok(HashMap::new()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the account's `m.direct` map.
    pub async fn put_direct_map(
        &self,
        token: &SecretString,
        user_id: &str,
        map: &HashMap<String, Vec<String>>,
    ) -> Result<(), ApiError> {
        let path = format!("/user/{}/account_data/m.direct", encode(user_id));
        let body = serde_json::to_value(map).unwrap_or_else(|_| json!({}));
        self.call(Method::PUT, &path, Some(token), Some(&body), None, MAX_BODY)
            .await
            .map(drop)
    }

    /// `POST /join/{room id or alias}`: the room's id.
    pub async fn join(&self, token: &SecretString, room: &str) -> Result<String, ApiError> {
        let path = format!("/join/{}", encode(room));
        let v = self
            .call(
                Method::POST,
                &path,
                Some(token),
                Some(&json!({})),
                None,
                MAX_BODY,
            )
            .await?;
        str_field(&v, "room_id", "POST /join")
    }

    /// `GET /directory/room/{alias}`: the alias's room id.
    pub async fn resolve_alias(
        &self,
        token: &SecretString,
        alias: &str,
    ) -> Result<String, ApiError> {
        let path = format!("/directory/room/{}", encode(alias));
        let v = self
            .call(Method::GET, &path, Some(token), None, None, MAX_BODY)
            .await?;
        str_field(&v, "room_id", "GET /directory/room")
    }

    /// `GET /sync`, held open by the server for up to `timeout` when nothing happens.
    pub async fn sync(
        &self,
        token: &SecretString,
        filter: &str,
        since: Option<&str>,
        full_state: bool,
        timeout: Duration,
    ) -> Result<SyncResponse, ApiError> {
        let mut path = format!(
            "/sync?timeout={}&filter={}",
            timeout.as_millis(),
            encode(filter)
        );
        if let Some(since) = since {
            path.push_str("&since=");
            path.push_str(&encode(since));
        }
        if full_state {
            path.push_str("&full_state=true");
        }
        // The server holds the request for `timeout`; allow it that plus a slow answer.
        let limit = timeout + Duration::from_secs(30);
        let v = self
            .call(
                Method::GET,
                &path,
                Some(token),
                None,
                Some(limit),
                MAX_SYNC_BODY,
            )
            .await?;
        serde_json::from_value(v).map_err(|e| ApiError::BadResponse {
            endpoint: "GET /sync".into(),
            detail: e.to_string(),
        })
    }

    /// `PUT /rooms/{room}/send/m.room.message/{txn}`. The transaction id makes a retry of
    /// the same message idempotent: the server answers with the first event instead of
    /// posting it twice.
    pub async fn send(
        &self,
        token: &SecretString,
        room_id: &str,
        txn_id: &str,
        content: &Value,
    ) -> Result<String, ApiError> {
        let path = format!(
            "/rooms/{}/send/m.room.message/{}",
            encode(room_id),
            encode(txn_id)
        );
        let v = self
            .call(
                Method::PUT,
                &path,
                Some(token),
                Some(content),
                None,
                MAX_BODY,
            )
            .await?;
        str_field(&v, "event_id", "PUT /rooms/send")
    }

    /// Opens a direct chat with `user` (a private room, `is_direct`, the user invited).
    pub async fn create_direct_room(
        &self,
        token: &SecretString,
        user: &str,
    ) -> Result<String, ApiError> {
        let body = json!({"is_direct": true, "invite": [user], "preset": "trusted_private_chat"});
        let v = self
            .call(
                Method::POST,
                "/createRoom",
                Some(token),
                Some(&body),
                None,
                MAX_BODY,
            )
            .await?;
        str_field(&v, "room_id", "POST /createRoom")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("!abc:example.org"), "%21abc%3Aexample%2Eorg");
        assert_eq!(encode("#ops:x"), "%23ops%3Ax");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn errors_name_the_endpoint_and_code() {
        let e = ApiError::Refused {
            endpoint: "POST /join".into(),
            status: 403,
            errcode: "M_FORBIDDEN".into(),
            message: "You are not invited".into(),
        };
        assert_eq!(
            e.to_string(),
            "POST /join: HTTP 403 M_FORBIDDEN You are not invited"
        );
        let e = ApiError::RateLimited {
            endpoint: "PUT /rooms/send".into(),
            delay: Duration::from_millis(1500),
        };
        assert_eq!(e.to_string(), "PUT /rooms/send: rate limited for 1500 ms");
    }
}
