//! The login page: `GET /login/{link}` shows the form, `POST /login/{link}` (a plain form
//! post, or JSON from the page's script) hands the credentials to the `SessionManager`.
//!
//! Everything the page needs is served from here (`/login-assets/…`): no CDN, no external
//! or inline script, so the CSP can forbid both. Responses are never cached, never framed
//! and never send a referrer to another origin, because the URL itself is the secret (the
//! policy is `same-origin`, not `no-referrer`: with `no-referrer` a browser sends the page's
//! own posts with `Origin: null`, which any other site can send too, and the origin check
//! below could not tell them apart).
//!
//! Abuse is bounded: a post must come from the page itself (`Origin`/`Referer`/
//! `Sec-Fetch-Site`, see [`super::same_origin`]) or gets 403; page views and posts are each
//! limited per client address (429 with `Retry-After`; the address is the peer's, or the
//! client's behind a trusted proxy, see [`super::forwarded`]); a body must arrive whole
//! within [`super::server::BODY_TIMEOUT`] (408) and be at most [`MAX_BODY_BYTES`] (413).

use std::time::Duration;

use actix_web::{
    http::{header, ConnectionType, StatusCode},
    web, HttpRequest, HttpResponse,
};
use handlebars::Handlebars;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::{
    body::{read_limited, BodyError},
    same_origin, HttpState,
};
use crate::actors::session_manager::{LinkStatus, LoginCredentials, LoginOutcome, SubmitLogin};

/// Largest login request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const PAGE: &str = include_str!("../../static/login/page.hbs");
const CSS: &str = include_str!("../../static/login/login.css");
const JS: &str = include_str!("../../static/login/login.js");

/// `Content-Security-Policy` of every login response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The compiled page template (HTML-escaped, unlike the chat templates).
pub struct LoginPages(Handlebars<'static>);

impl LoginPages {
    /// Compiles the embedded page.
    pub fn new() -> Result<Self, handlebars::TemplateError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(false);
        hb.register_template_string("page", PAGE)?;
        Ok(Self(hb))
    }

    fn render(&self, data: &serde_json::Value) -> String {
        self.0.render("page", data).unwrap_or_else(|_| {
            "<!doctype html><title>stormbridge</title><p>Something went wrong.</p>".into()
        })
    }
}

fn secure(builder: &mut actix_web::HttpResponseBuilder) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

fn page(state: &HttpState, status: StatusCode, data: serde_json::Value) -> HttpResponse {
    secure(&mut HttpResponse::build(status))
        .content_type("text/html; charset=utf-8")
        .body(state.login_pages.render(&data))
}

/// `GET /login-assets/login.css` and `login.js`.
pub async fn asset(path: web::Path<String>) -> HttpResponse {
    let (body, kind) = match path.as_str() {
        "login.css" => (CSS, "text/css; charset=utf-8"),
        "login.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// The words of each outcome: status, title, message, and whether the link is finished.
fn describe(outcome: &LoginOutcome) -> (StatusCode, &'static str, String, bool) {
    match outcome {
        LoginOutcome::Linked { st2_user } => (
            StatusCode::OK,
            "Your account is linked",
            format!("Your chat account now runs commands as StackStorm user {st2_user}. You can close this page and go back to chat."),
            true,
        ),
        LoginOutcome::WrongWord { attempts_left } => (
            StatusCode::FORBIDDEN,
            "Wrong shared word",
            if *attempts_left == 0 {
                "That is not the word you typed after session_start, and this link has no attempts left. Start a new session in chat.".into()
            } else {
                format!("That is not the word you typed after session_start. {attempts_left} attempt(s) left on this link.")
            },
            *attempts_left == 0,
        ),
        LoginOutcome::WrongCredentials { detail } => (
            StatusCode::UNAUTHORIZED,
            "StackStorm did not accept your credentials",
            format!("{detail} Check them and try again."),
            false,
        ),
        LoginOutcome::Expired => (
            StatusCode::GONE,
            "This link has expired",
            "Login links work for a short time only. Send session_start to the bot in a direct message to get a new one.".into(),
            true,
        ),
        LoginOutcome::Used => (
            StatusCode::GONE,
            "This link was already used",
            "Each login link works once. If that was not you, end the session in chat with session_end and start a new one.".into(),
            true,
        ),
        LoginOutcome::Unknown => (
            StatusCode::NOT_FOUND,
            "Unknown link",
            "This login link does not exist. Send session_start to the bot in a direct message to get a new one.".into(),
            true,
        ),
        LoginOutcome::TooManyAttempts => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "There were too many login attempts. Wait a while, or start a new session in chat.".into(),
            true,
        ),
        LoginOutcome::RateLimited { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            format!(
                "There were too many login requests from your address. Try again in {} minute(s).",
                retry_secs(*retry_after).div_ceil(60)
            ),
            false,
        ),
        LoginOutcome::Unavailable(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "StackStorm is not available",
            format!("{reason} Please try again in a moment."),
            false,
        ),
    }
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After`).
fn retry_secs(after: Duration) -> u64 {
    (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1)
}

/// Adds `Retry-After` to a rate-limited answer.
fn with_retry_after(mut response: HttpResponse, outcome: &LoginOutcome) -> HttpResponse {
    if let LoginOutcome::RateLimited { retry_after } = outcome {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(retry_secs(*retry_after)),
        );
    }
    response
}

const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /login/{link}`.
pub async fn show(
    state: web::Data<HttpState>,
    req: HttpRequest,
    link: web::Path<String>,
) -> HttpResponse {
    let Some(sessions) = state.sessions.as_ref() else {
        return HttpResponse::NotFound().finish();
    };
    let status = LinkStatus {
        link_id: SecretString::from(link.into_inner()),
        client: super::client_address(&req, &state.trusted_proxies),
    };
    match sessions.send(status).timeout(ASK_TIMEOUT).await {
        Ok(Ok((user, expires_in))) => page(
            &state,
            StatusCode::OK,
            json!({
                "title": "Link your StackStorm account",
                "form": true,
                "user": user,
                "action": "",
                "expires": format!("in {} minute(s)", expires_in.as_secs().div_ceil(60)),
            }),
        ),
        Ok(Err(outcome)) => {
            let (status, title, message, _) = describe(&outcome);
            let response = page(
                &state,
                status,
                json!({"title": title, "message": message, "error": true, "kind": "error"}),
            );
            with_retry_after(response, &outcome)
        }
        Err(_) => page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"title": "Try again", "message": "The bridge is busy; reload this page in a moment.", "error": true, "kind": "error"}),
        ),
    }
}

/// The form fields (form-encoded or JSON). The secret ones are read straight into
/// [`SecretString`]s, which are wiped when dropped, instead of plain `String`s.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    shared_word: Option<SecretString>,
    #[serde(default)]
    method: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    user_token: Option<SecretString>,
    #[serde(default)]
    api_key: Option<SecretString>,
}

/// `secret` trimmed, or `None` when it is missing or blank.
fn given(secret: Option<SecretString>, trim: bool) -> Option<SecretString> {
    let secret = secret?;
    let text = secret.expose_secret();
    let kept = if trim { text.trim() } else { text };
    match kept.len() {
        0 => None,
        n if n == text.len() => Some(secret),
        _ => Some(SecretString::from(kept.to_owned())),
    }
}

fn credentials(form: LoginForm) -> Result<(SecretString, LoginCredentials), &'static str> {
    let Some(word) = given(form.shared_word, false) else {
        return Err("Please enter the shared word.");
    };
    let creds = match form.method.as_str() {
        "password" | "" if !form.username.is_empty() => match given(form.password, false) {
            Some(password) => LoginCredentials::Password {
                username: form.username,
                password,
            },
            None => return Err("Please enter your StackStorm password."),
        },
        "password" | "" => return Err("Please enter your StackStorm username and password."),
        "token" => match given(form.user_token, true) {
            Some(token) => LoginCredentials::Token(token),
            None => return Err("Please enter your StackStorm token."),
        },
        "api_key" => match given(form.api_key, true) {
            Some(key) => LoginCredentials::ApiKey(key),
            None => return Err("Please enter your StackStorm API key."),
        },
        _ => return Err("Please choose how to sign in."),
    };
    Ok((word, creds))
}

/// `POST /login/{link}`.
pub async fn submit(
    state: web::Data<HttpState>,
    req: HttpRequest,
    link: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let Some(sessions) = state.sessions.as_ref() else {
        return HttpResponse::NotFound().finish();
    };
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let reply = |status: StatusCode, title: &str, message: String, ok: bool, finished: bool| {
        if wants_json {
            secure(&mut HttpResponse::build(status))
                .json(json!({"ok": ok, "final": finished, "title": title, "message": message}))
        } else {
            page(
                &state,
                status,
                json!({"title": title, "message": message, "error": !ok, "kind": if ok { "success" } else { "error" }}),
            )
        }
    };
    let client = super::client_address(&req, &state.trusted_proxies);
    // Before anything else, and before the body is read: a post from another site's page
    // (login CSRF) is refused without touching the link or its attempt count.
    if let Err(refusal) = from_own_page(&req, &state) {
        tracing::warn!(
            client = ?client,
            reason = refusal.as_str(),
            "login form post from another origin refused"
        );
        return reply(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form can only be sent from its own page. Open your login link again and sign in there.".into(),
            false,
            false,
        );
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut body = match read_limited(&req, payload, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let (status, message) = match e {
                BodyError::TooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form is too large to be a login; please reload the page and try again.",
                ),
                BodyError::TooSlow => (
                    StatusCode::REQUEST_TIMEOUT,
                    "The form took too long to arrive; please reload the page and try again.",
                ),
                BodyError::Incomplete => (
                    StatusCode::BAD_REQUEST,
                    "The form could not be read; please reload the page and try again.",
                ),
            };
            let mut response = reply(status, "Incomplete form", message.into(), false, false);
            // The rest of the body is not read: the connection cannot carry another request.
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            return response;
        }
    };
    let form: Result<LoginForm, String> = if is_json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    };
    // The request body held the password in the clear: wipe it now that the form is read.
    zeroize::Zeroize::zeroize(body.as_mut());
    let Ok(form) = form else {
        return reply(
            StatusCode::BAD_REQUEST,
            "Incomplete form",
            "The form could not be read; please reload the page and try again.".into(),
            false,
            false,
        );
    };
    let (word, credentials) = match credentials(form) {
        Ok(v) => v,
        Err(message) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "Incomplete form",
                message.into(),
                false,
                false,
            )
        }
    };
    let submission = SubmitLogin {
        link_id: SecretString::from(link.into_inner()),
        word,
        credentials,
        client,
    };
    match sessions.send(submission).timeout(ASK_TIMEOUT).await {
        Ok(outcome) => {
            let (status, title, message, finished) = describe(&outcome);
            let response = reply(
                status,
                title,
                message,
                matches!(outcome, LoginOutcome::Linked { .. }),
                finished,
            );
            with_retry_after(response, &outcome)
        }
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            "The bridge did not answer in time; please try again.".into(),
            false,
            false,
        ),
    }
}

/// Whether a post comes from the login page itself (see [`same_origin::check_post`]).
fn from_own_page(req: &HttpRequest, state: &HttpState) -> Result<(), same_origin::Refusal> {
    let headers = req.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // An Origin or Referer that is not even text is not the page's own.
    let unreadable =
        |name: header::HeaderName| headers.get(name).is_some_and(|v| v.to_str().is_err());
    if unreadable(header::ORIGIN) {
        return Err(same_origin::Refusal::ForeignOrigin);
    }
    if unreadable(header::REFERER) {
        return Err(same_origin::Refusal::ForeignReferer);
    }
    let host = text(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
    let own = same_origin::OwnOrigin {
        public: state.public_origin.as_ref(),
        host,
        tls: req.app_config().secure(),
    };
    same_origin::check_post(
        text(header::ORIGIN),
        text(header::REFERER),
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        &own,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<(SecretString, LoginCredentials), &'static str> {
        let form: LoginForm = serde_urlencoded::from_str(body).expect("form");
        credentials(form)
    }

    #[test]
    fn each_method_reads_its_secret_and_trims_pasted_tokens_and_keys() {
        let (word, creds) =
            parse("shared_word=sesame&method=password&username=bob&password=+pw+").unwrap();
        assert_eq!(word.expose_secret(), "sesame");
        match creds {
            LoginCredentials::Password { username, password } => {
                assert_eq!(username, "bob");
                assert_eq!(
                    password.expose_secret(),
                    " pw ",
                    "a password is taken as typed"
                );
            }
            _ => panic!("read as another method"),
        }
        match parse("shared_word=w&method=token&user_token=+abc%0A")
            .unwrap()
            .1
        {
            LoginCredentials::Token(t) => assert_eq!(t.expose_secret(), "abc"),
            _ => panic!("read as another method"),
        }
        match parse("shared_word=w&method=api_key&api_key=k3y").unwrap().1 {
            LoginCredentials::ApiKey(k) => assert_eq!(k.expose_secret(), "k3y"),
            _ => panic!("read as another method"),
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_secs(Duration::from_secs(600)), 600);
        assert_eq!(retry_secs(Duration::ZERO), 1);
    }

    #[test]
    fn missing_or_blank_fields_are_named() {
        assert_eq!(
            parse("method=password").err(),
            Some("Please enter the shared word.")
        );
        assert_eq!(
            parse("shared_word=w&method=password&username=bob").err(),
            Some("Please enter your StackStorm password.")
        );
        assert_eq!(
            parse("shared_word=w&method=password").err(),
            Some("Please enter your StackStorm username and password.")
        );
        assert_eq!(
            parse("shared_word=w&method=token&user_token=+++").err(),
            Some("Please enter your StackStorm token.")
        );
        assert_eq!(
            parse("shared_word=w&method=api_key").err(),
            Some("Please enter your StackStorm API key.")
        );
        assert_eq!(
            parse("shared_word=w&method=magic").err(),
            Some("Please choose how to sign in.")
        );
    }
}
