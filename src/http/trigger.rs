//! `POST /api/v1/trigger`: an alerting system runs a chat command with a trigger token.
//!
//! A token is made in chat (`!st2token create <command text>`, in a direct chat) and is
//! bound to its user, the room and the command; it is stored hashed
//! (`store::trigger_tokens`). The call runs the command as that user in that room, with the
//! access rules checked now, as a typed command would be: a refusal is said in the room
//! too, so it is visible where the command would have run.
//!
//! The request carries `Authorization: Bearer <token>`. The body is optional: words added
//! to the end of the command, as `text/plain`, a JSON object `{"text": "…"}` or a form field
//! `text` (at most [`MAX_EXTRA_CHARS`] characters, no control characters). Answers, each
//! with a JSON body:
//!
//! * 202 `{"status": "accepted", "held": false}` — it runs (`held`: it waits for a
//!   confirmation or an approval in the room);
//! * 400 — the body cannot be used; 415 — a content type other than those three;
//! * 401 — no token, or not a valid one (unknown, revoked, wrong): the same answer for each,
//!   so nothing is learnt about which tokens exist;
//! * 403 — the access rules do not allow the token's user to run it (now);
//! * 404 — the command matches no single command any more, or its chat connection is gone;
//! * 429 with `Retry-After` — more than [`CALLS_PER_MINUTE`] calls of one token in a minute,
//!   or [`super::post::MAX_FAILURES`] failed tokens from one address in ten minutes;
//! * 503 — the bridge is not ready (the alias list is not loaded yet).

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::Recipient;
use actix_web::{
    http::{
        header::{self, HeaderValue},
        StatusCode,
    },
    web, HttpRequest, HttpResponse,
};
use serde_json::{json, Value};

use super::{
    body::{read_limited, BodyError},
    limiter::WindowLimiter,
    post::{closing, presented_token, FAILURE_WINDOW, MAX_FAILURES},
    relay, HttpState,
};
use crate::{
    actors::{
        dispatcher::triggers::{Trigger, TriggerOutcome},
        lease_keeper::HolderDirectory,
    },
    store::TriggerTokenStore,
};

/// Calls one token may make per minute.
pub const CALLS_PER_MINUTE: u32 = 30;
/// Longest text a call may add to the command.
pub const MAX_EXTRA_CHARS: usize = 1_000;
/// Largest body read.
const MAX_BODY_BYTES: usize = 8 * 1024;
/// Time allowed for the dispatcher to take the command.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint's state.
#[derive(Clone)]
pub struct TriggerEndpoint(Arc<Inner>);

struct Inner {
    tokens: TriggerTokenStore,
    dispatcher: Recipient<Trigger>,
    /// Each chat connection's gate: a token's command runs where its connection runs.
    gates: Arc<std::collections::HashMap<String, crate::lease::Gate>>,
    /// Where the other processes run the connections this one does not.
    holders: HolderDirectory,
    failures: WindowLimiter<IpAddr>,
    calls: WindowLimiter<String>,
}

impl TriggerEndpoint {
    /// Tokens checked against `tokens`; commands handed to `dispatcher` when this process
    /// runs the token's connection (its gate in `gates` is open, or it has none), else
    /// passed on to the process `holders` names for it.
    pub fn new(
        tokens: TriggerTokenStore,
        dispatcher: Recipient<Trigger>,
        gates: Arc<std::collections::HashMap<String, crate::lease::Gate>>,
        holders: HolderDirectory,
    ) -> Self {
        Self(Arc::new(Inner {
            tokens,
            dispatcher,
            gates,
            holders,
            failures: WindowLimiter::new(MAX_FAILURES, FAILURE_WINDOW),
            calls: WindowLimiter::new(CALLS_PER_MINUTE, Duration::from_secs(60)),
        }))
    }
}

fn answer(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    answer(status, json!({ "error": message }))
}

fn too_many(wait: Duration, message: &str) -> HttpResponse {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// The words a body adds to the command.
fn extra_text(req: &HttpRequest, body: &[u8]) -> Result<String, (StatusCode, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let bad = |why: &str| (StatusCode::BAD_REQUEST, why.to_owned());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = match content_type.as_str() {
        "text/plain" | "" => std::str::from_utf8(body)
            .map_err(|_| bad("the body is not UTF-8 text"))?
            .to_owned(),
        "application/json" => {
            let value: Value =
                serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
            match value.get("text") {
                Some(Value::String(t)) => t.clone(),
                None | Some(Value::Null) => String::new(),
                Some(_) => return Err(bad("`text` must be a string")),
            }
        }
        "application/x-www-form-urlencoded" => {
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|_| bad("the body is not a form"))?;
            fields
                .into_iter()
                .find(|(k, _)| k == "text")
                .map(|(_, v)| v)
                .unwrap_or_default()
        }
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type `{other}` is not accepted: send text/plain, application/json or a form"),
            ))
        }
    };
    if text.chars().count() > MAX_EXTRA_CHARS {
        return Err(bad(&format!(
            "the text is longer than {MAX_EXTRA_CHARS} characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(bad("the text holds control characters"));
    }
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `POST /api/v1/trigger`.
pub async fn trigger(
    state: web::Data<HttpState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let on = &state.trigger.0;
    let client = super::client_address(&req, &state.trusted_proxies);
    let now = Instant::now();
    if let Some(wait) = client.and_then(|ip| on.failures.refused_for(&ip.to_canonical(), now)) {
        return closing(too_many(
            wait,
            "too many requests with a missing or wrong token from this address; try again later",
        ));
    }
    let unauthorised = |why: &str| {
        let failures = client.map(|ip| on.failures.count(ip.to_canonical(), now));
        tracing::warn!(client = ?client, failures, "trigger refused: {why}");
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "a valid trigger token is required: send `Authorization: Bearer <token>` with a token from `!st2token create`",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"stormbridge trigger\""),
        );
        closing(response)
    };
    let Some(presented) = presented_token(&req) else {
        return unauthorised("no token");
    };
    let Ok(presented) = String::from_utf8(presented.to_vec()) else {
        return unauthorised("a token that is not text");
    };
    let presented = zeroize::Zeroizing::new(presented);
    let tokens = on.tokens.clone();
    let checked = web::block(move || tokens.verify(&presented, chrono::Utc::now())).await;
    let token = match checked {
        Ok(Ok(token)) => token,
        Ok(Err(crate::store::trigger_tokens::TokenRejected::Store(e))) => {
            tracing::error!(error = %e, "trigger: the token store failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the token store failed");
        }
        // The reason (unknown id, revoked, wrong secret) names ids only, never secrets.
        Ok(Err(rejected)) => return unauthorised(&rejected.to_string()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the token store failed"),
    };
    if let Some(wait) = on.calls.refused_for(&token.id, now) {
        return closing(too_many(
            wait,
            &format!("trigger token {} was called more than {CALLS_PER_MINUTE} times in a minute; try again later", token.id),
        ));
    }
    let elsewhere = on
        .gates
        .get(&token.connection)
        .is_some_and(|gate| !gate.is_open(now));
    // The command's room is another bridge process's now: the call goes on to it (which
    // checks the token again and counts the call), or, where it published no address or
    // this call was passed on already, a retry must reach it.
    let holder = match elsewhere {
        true if relay::was_relayed(&req) => return relay::elsewhere(&token.connection),
        true => match on.holders.url(&token.connection) {
            Some(url) => Some(url),
            None => return relay::elsewhere(&token.connection),
        },
        false => {
            on.calls.count(token.id.clone(), now);
            None
        }
    };
    let body = match read_limited(&req, payload, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return closing(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ))
        }
        Err(BodyError::TooSlow) => {
            return closing(error(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            ))
        }
        Err(BodyError::Incomplete) => {
            return closing(error(StatusCode::BAD_REQUEST, "the body is incomplete"))
        }
    };
    if let Some(holder) = holder {
        return relay::pass_on(&req, body.freeze(), &holder, &token.connection)
            .await
            .unwrap_or_else(|relay::Unreachable| relay::elsewhere(&token.connection));
    }
    let extra = match extra_text(&req, &body) {
        Ok(text) => text,
        Err((status, why)) => return error(status, &why),
    };
    let id = token.id.clone();
    let handed = on.dispatcher.send(Trigger { token, extra });
    let outcome = match actix_rt::time::timeout(HAND_OVER_TIMEOUT, handed).await {
        Ok(Ok(outcome)) => outcome,
        _ => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the bridge did not take the command; try again",
            )
        }
    };
    match outcome {
        TriggerOutcome::Accepted { held } => answer(
            StatusCode::ACCEPTED,
            json!({"status": "accepted", "token": id, "held": held}),
        ),
        TriggerOutcome::Denied => error(
            StatusCode::FORBIDDEN,
            "the access rules do not allow this token's user to run its command (the room was told)",
        ),
        TriggerOutcome::NoMatch => error(
            StatusCode::NOT_FOUND,
            "the token's command matches no single command any more (the room was told)",
        ),
        TriggerOutcome::NoConnection => error(
            StatusCode::NOT_FOUND,
            "the token's chat connection is not configured any more",
        ),
        TriggerOutcome::NotReady => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the bridge is starting (its command list is not loaded yet); try again shortly",
        ),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn extra(content_type: Option<&str>, body: &str) -> Result<String, (StatusCode, String)> {
        let mut req = TestRequest::post();
        if let Some(ct) = content_type {
            req = req.insert_header((header::CONTENT_TYPE, ct));
        }
        extra_text(&req.to_http_request(), body.as_bytes())
    }

    #[test]
    fn the_body_adds_words_in_any_of_three_shapes() {
        assert_eq!(extra(None, "").unwrap(), "");
        assert_eq!(extra(None, " host=web1 \n").unwrap(), "host=web1");
        assert_eq!(
            extra(Some("application/json"), r#"{"text": "on web2"}"#).unwrap(),
            "on web2"
        );
        assert_eq!(extra(Some("application/json"), "{}").unwrap(), "");
        assert_eq!(
            extra(Some("application/x-www-form-urlencoded"), "text=on+web3").unwrap(),
            "on web3"
        );
    }

    #[test]
    fn unusable_bodies_are_refused_plainly() {
        assert_eq!(
            extra(Some("application/json"), "nope").unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            extra(Some("application/json"), r#"{"text": 5}"#)
                .unwrap_err()
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            extra(Some("image/png"), "x").unwrap_err().0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert!(extra(None, "a\u{1b}[2J").is_err());
        assert!(extra(None, &"x".repeat(MAX_EXTRA_CHARS + 1)).is_err());
    }
}
