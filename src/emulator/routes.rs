//! The HTTP routes of the emulator, behind nginx-style prefixes: `/auth/v1/...`,
//! `/api/v1/...`, `/stream/v1/...`. Status codes, validation order and faultstrings
//! follow st2 (see `shared/design/st2-protocol.md` §1, §2, §4).

use std::sync::Arc;

use actix_web::{http::header, http::StatusCode, web, HttpRequest, HttpResponse};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use serde_json::{json, value::RawValue, Map, Value};

use super::aliases::{self, Alias, AliasSet, HelpError};
use super::jinja::{self, Extras, JinjaError, Var, ALIAS_API, EXECUTION_API};
use super::jsonschema;
use super::matching::{self, MatchError, ParseError};
use super::registry;
use super::state::{CancelResult, NewExecution, Principal, Shared};
use super::util::{object_id, py_repr, py_str_repr, stable_object_id};

/// Request bodies above this size get 413 (nginx's default `client_max_body_size`).
pub(crate) const MAX_BODY: usize = 1024 * 1024;

type Data = web::Data<Arc<Shared>>;

/// Register every route. actix-web tries routes in this order, a path with a `{name}` part
/// by a regular expression, so the two every chat command takes (running an alias, reading
/// the execution after its result) come first; no two routes match the same request.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/aliasexecution", web::post().to(alias_execution))
        .route("/api/v1/executions/{id}", web::get().to(get_execution))
        .route("/auth/v1/tokens", web::post().to(create_token))
        .route("/auth/v1/tokens/validate", web::post().to(validate_token))
        .route("/api/v1/actionalias", web::get().to(list_aliases))
        .route("/api/v1/actionalias/help", web::get().to(alias_help))
        .route("/api/v1/actionalias/match", web::post().to(match_alias))
        .route("/api/v1/actionalias/{ref_or_id}", web::get().to(get_alias))
        .route(
            "/api/v1/aliasexecution/match_and_execute",
            web::post().to(match_and_execute),
        )
        .route("/api/v1/actions/{ref_or_id}", web::get().to(get_action))
        .route(
            "/api/v1/actions/views/parameters/{ref_or_id}",
            web::get().to(action_parameters_view),
        )
        .route("/api/v1/user", web::get().to(current_user))
        .route("/api/v1/inquiries", web::get().to(list_inquiries))
        .route("/api/v1/inquiries/{id}", web::get().to(get_inquiry))
        .route("/api/v1/inquiries/{id}", web::put().to(respond_inquiry))
        .route(
            "/api/v1/executions/{id}/output",
            web::get().to(execution_output),
        )
        .route(
            "/api/v1/executions/{id}",
            web::delete().to(cancel_execution),
        )
        .route("/stream/v1/stream", web::get().to(super::stream::stream));
}

/// An st2 error reply: `{"faultstring": ...}` with a status. Handlers return
/// `Result<HttpResponse, Fault>` so every check can use `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    status: u16,
    message: String,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl actix_web::ResponseError for Fault {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(json!({ "faultstring": self.message }))
    }
}

/// A fault with st2's `faultstring`.
pub(crate) fn fault(status: u16, msg: impl Into<String>) -> Fault {
    Fault {
        status,
        message: msg.into(),
    }
}

fn internal_error() -> Fault {
    fault(500, "Internal Server Error")
}

/// Unknown paths.
pub(crate) async fn not_found() -> Result<HttpResponse, Fault> {
    Err(fault(404, "The resource could not be found."))
}

type Reply = Result<HttpResponse, Fault>;

/// The `auth-token` cookie a successful answer to a token-authenticated request carries.
fn auth_cookie(principal: Option<&Principal>) -> Option<String> {
    let (token, expiry) = principal.and_then(|p| p.token.as_ref())?;
    let max_age = (*expiry - chrono::Utc::now()).num_seconds().max(0);
    Some(format!(
        "auth-token={token}; Max-Age={max_age}; Path=/; HttpOnly"
    ))
}

fn json_response(
    status: u16,
    body: &impl serde::Serialize,
    principal: Option<&Principal>,
) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut b = HttpResponse::build(code);
    if let Some(cookie) = auth_cookie(principal) {
        b.insert_header((header::SET_COOKIE, cookie));
    }
    b.json(body)
}

/// The query string as ordered pairs; `None` when it cannot be decoded.
pub(crate) fn query_pairs(req: &HttpRequest) -> Option<Vec<(String, String)>> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()
        .map(web::Query::into_inner)
}

fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<Result<&'a str, ()>> {
    req.headers()
        .get(name)
        .map(|v| v.to_str().map_err(|_| ()))
        .filter(|r| !matches!(r, Ok("")))
}

fn cookie_token(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == "auth-token")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Authenticate as st2's router does: the first credential present wins, in the
/// order header `X-Auth-Token`, header `St2-Api-Key`, query `x-auth-token`, query
/// `st2-api-key`, cookie `auth-token`; a bad one is a 401 (no fallback to the next).
pub(crate) fn authenticate(shared: &Shared, req: &HttpRequest) -> Result<Principal, Fault> {
    let unauthorized = |msg: String| {
        tracing::debug!(path = %req.path(), reason = %msg, "st2 emulator: 401");
        fault(401, msg)
    };
    if let Some(v) = header_str(req, "X-Auth-Token") {
        return match v {
            Ok(t) => shared.validate_token(t).map_err(unauthorized),
            Err(()) => Err(unauthorized("Unauthorized".into())),
        };
    }
    if let Some(v) = header_str(req, "St2-Api-Key") {
        return match v {
            Ok(k) => shared.validate_api_key(k).map_err(unauthorized),
            Err(()) => Err(unauthorized("Unauthorized".into())),
        };
    }
    let query = query_pairs(req).unwrap_or_default();
    let in_query = |mut p: Principal| {
        p.location = "query";
        p
    };
    if let Some(t) = last(&query, "x-auth-token").filter(|t| !t.is_empty()) {
        return shared.validate_token(t).map(in_query).map_err(unauthorized);
    }
    if let Some(k) = last(&query, "st2-api-key").filter(|k| !k.is_empty()) {
        return shared
            .validate_api_key(k)
            .map(in_query)
            .map_err(unauthorized);
    }
    if let Some(t) = cookie_token(req) {
        return shared.validate_token(&t).map_err(unauthorized);
    }
    Err(unauthorized(
        "Unauthorized - One of Token or API key required.".into(),
    ))
}

/// Read the body, at most [`MAX_BODY`] bytes.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Bytes, Fault> {
    let too_large = || fault(413, "Request Entity Too Large");
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > MAX_BODY as u64 {
            return Err(too_large());
        }
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| fault(400, format!("Failed to read request body: {e}")))?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Read and parse a JSON body; an empty body counts as `{}` (as st2's router does).
async fn read_json(req: &HttpRequest, payload: web::Payload) -> Result<Value, Fault> {
    let bytes = read_body(req, payload).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| fault(400, format!("Failed to parse request body: {e}")))
}

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Obj,
}

struct Prop {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn prop(name: &'static str, ty: Ty, required: bool) -> Prop {
    Prop { name, ty, required }
}

const ALIAS_EXECUTION: &[Prop] = &[
    prop("name", Ty::Str, true),
    prop("format", Ty::Str, true),
    prop("command", Ty::Str, true),
    prop("user", Ty::Str, false),
    prop("source_channel", Ty::Str, true),
    prop("source_context", Ty::Obj, false),
    prop("notification_channel", Ty::Str, false),
    prop("notification_route", Ty::Str, false),
];

const MATCH_AND_EXECUTE: &[Prop] = &[
    prop("command", Ty::Str, true),
    prop("user", Ty::Str, false),
    prop("source_channel", Ty::Str, true),
    prop("notification_channel", Ty::Str, false),
    prop("notification_route", Ty::Str, false),
];

const MATCH: &[Prop] = &[prop("command", Ty::Str, true)];

/// jsonschema's first error for an object schema with `additionalProperties: false`,
/// in the order jsonschema finds them (property types and required ones, then
/// unexpected properties).
///
/// Unexpected properties are listed sorted: jsonschema collects them in a Python
/// `set` (`extras = set(find_additional_properties(...))`), whose order for strings
/// changes from one st2 process to the next (hash randomisation), so no order is
/// st2's; sorted is one that tests can rely on.
fn validate_object(v: &Value, props: &[Prop]) -> Result<(), Fault> {
    validate_props(v, props, false)
}

/// Like [`validate_object`] for a body schema that allows other properties.
fn validate_required(v: &Value, props: &[Prop]) -> Result<(), Fault> {
    validate_props(v, props, true)
}

fn validate_props(v: &Value, props: &[Prop], others_allowed: bool) -> Result<(), Fault> {
    let Value::Object(m) = v else {
        return Err(fault(
            400,
            format!("{} is not of type 'object'", py_repr(v)),
        ));
    };
    for p in props {
        match (m.get(p.name), p.ty) {
            (Some(Value::String(_)), Ty::Str) | (Some(Value::Object(_)), Ty::Obj) => {}
            (Some(other), ty) => {
                let t = match ty {
                    Ty::Str => "string",
                    Ty::Obj => "object",
                };
                return Err(fault(
                    400,
                    format!("{} is not of type '{t}'", py_repr(other)),
                ));
            }
            (None, _) if p.required => {
                return Err(fault(400, format!("'{}' is a required property", p.name)));
            }
            (None, _) => {}
        }
    }
    if others_allowed {
        return Ok(());
    }
    let mut unexpected: Vec<&String> = m
        .keys()
        .filter(|k| !props.iter().any(|p| p.name == k.as_str()))
        .collect();
    unexpected.sort();
    let extras: Vec<String> = unexpected.into_iter().map(|k| py_str_repr(k)).collect();
    if !extras.is_empty() {
        let verb = if extras.len() == 1 { "was" } else { "were" };
        return Err(fault(
            400,
            format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                extras.join(", ")
            ),
        ));
    }
    Ok(())
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn int_param(query: &[(String, String)], name: &str) -> Result<Option<i64>, Fault> {
    let Some(raw) = last(query, name) else {
        return Ok(None);
    };
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fault(
            400,
            format!("Parameter \"{name}\" is not of type integer"),
        ));
    }
    raw.parse::<i64>()
        .map(Some)
        .map_err(|_| fault(400, format!("Parameter \"{name}\" is not of type integer")))
}

// ----- auth ----------------------------------------------------------------------

fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

fn not_an_object(v: &Value) -> Fault {
    fault(400, format!("{} is not of type 'object'", py_repr(v)))
}

/// `POST /auth/v1/tokens`. Body validation comes first (400), then the Basic
/// credentials (401), then the TTL cap (400), as in st2.
async fn create_token(req: HttpRequest, payload: web::Payload, shared: Data) -> Reply {
    let body = read_json(&req, payload).await?;
    let Value::Object(m) = &body else {
        return Err(not_an_object(&body));
    };
    let ttl: Option<u64> = match m.get("ttl") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => match n.as_u64() {
            Some(t) if t >= 1 => Some(t),
            _ => return Err(fault(400, format!("{n} is less than the minimum of 1"))),
        },
        Some(other) => {
            return Err(fault(
                400,
                format!("{} is not of type 'integer', 'null'", py_repr(other)),
            ))
        }
    };
    let Some((user, password)) = basic_credentials(&req) else {
        tracing::debug!("st2 emulator: token request without usable Basic credentials");
        return Err(fault(401, "Invalid or missing credentials"));
    };
    if !shared.check_password(&user, &password) {
        tracing::debug!(user = %user, "st2 emulator: token request with a wrong password");
        return Err(fault(401, "Invalid or missing credentials"));
    }
    let max = shared.settings.token_ttl_max;
    let ttl = match ttl {
        Some(t) if t > max => {
            return Err(fault(
                400,
                format!("TTL specified {t} is greater than max allowed {max}."),
            ))
        }
        Some(t) => t,
        None => max,
    };
    let (token, expiry) = shared.issue_token(&user, ttl);
    tracing::debug!(user = %user, ttl, "st2 emulator: token issued");
    Ok(HttpResponse::Created()
        .insert_header(("X-API-URL", shared.api_base.as_str()))
        .json(json!({
            "user": user,
            "token": token,
            "expiry": super::util::isotime(expiry),
            "id": object_id(),
            "metadata": {},
        })))
}

/// `POST /auth/v1/tokens/validate` (itself authenticated).
async fn validate_token(req: HttpRequest, payload: web::Payload, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let body = read_json(&req, payload).await?;
    if !body.is_object() {
        return Err(not_an_object(&body));
    }
    match body.get("token") {
        None | Some(Value::Null) => Err(fault(400, "Token is not provided.")),
        Some(Value::String(t)) if t.is_empty() => Err(fault(400, "Token is not provided.")),
        Some(Value::String(t)) => Ok(json_response(
            200,
            &json!({"valid": shared.token_is_valid(t)}),
            Some(&principal),
        )),
        Some(other) => Err(fault(
            400,
            format!("{} is not of type 'string'", py_repr(other)),
        )),
    }
}

// ----- aliases ---------------------------------------------------------------------

fn sort_key(v: &Value) -> (String, String) {
    let get = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    (get("pack"), get("name"))
}

fn query_or_400(req: &HttpRequest) -> Result<Vec<(String, String)>, Fault> {
    query_pairs(req).ok_or_else(|| fault(400, "Failed to parse the query string"))
}

/// st2's `validate_limit_query_param` (`st2api/controllers/resource.py`): `-1` means
/// everything (returned as 0) and, with RBAC on, needs an admin, as does a limit above
/// `api.max_page_size` (100): both are 403 `AccessDeniedError`s.
fn validate_limit(shared: &Shared, principal: &Principal, limit: i64) -> Result<i64, Fault> {
    let admin = shared.settings.is_admin(&principal.user);
    if limit == -1 {
        if !admin {
            return Err(fault(
                403,
                "Administrator access required to be able to specify limit=-1 and retrieve all the records",
            ));
        }
        return Ok(0);
    }
    if limit <= -2 {
        return Err(fault(
            400,
            format!("Limit, \"{limit}\" specified, must be a positive number."),
        ));
    }
    if limit == 0 {
        return Err(fault(
            400,
            "Limit, \"0\" specified, must be a positive number or -1 for full result set.",
        ));
    }
    if limit > MAX_PAGE_SIZE && !admin {
        return Err(fault(
            403,
            format!("Limit \"{limit}\" specified, maximum value is \"{MAX_PAGE_SIZE}\""),
        ));
    }
    Ok(limit)
}

/// st2's `api.max_page_size` default.
const MAX_PAGE_SIZE: i64 = 100;

/// A page of a list with st2's `X-Total-Count` and (for a positive limit) `X-Limit`.
fn list_page(items: Vec<Value>, total: usize, limit: i64, principal: &Principal) -> HttpResponse {
    let mut resp = json_response(200, &Value::Array(items), Some(principal));
    let headers = resp.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&total.to_string()) {
        headers.insert(header::HeaderName::from_static("x-total-count"), v);
    }
    if limit > 0 {
        if let Ok(v) = header::HeaderValue::from_str(&limit.to_string()) {
            headers.insert(header::HeaderName::from_static("x-limit"), v);
        }
    }
    resp
}

/// `GET /api/v1/actionalias`: the raw items, verbatim, sorted by pack then name, a page
/// at a time (`limit` default 100, `offset`).
async fn list_aliases(req: HttpRequest, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    // `x-permissions: action_alias_list` (`openapi.yaml.j2`, `/api/v1/actionalias` GET),
    // checked by the router right after authentication, before the parameters
    // (`st2common/router.py:444-461`), so every page and every `limit` is refused alike;
    // st2-rbac-backend's `ActionAliasPermissionsResolver` asks `_user_has_list_permission`
    // (`resolvers.py:463`): a system role or a grant of exactly `action_alias_list`.
    if !shared
        .settings
        .has_global_permission(&principal.user, "action_alias_list")
    {
        return Err(permission_denied(&principal.user, "action_alias_list"));
    }
    if let Some(body) = shared.alias_list_body() {
        return Ok(HttpResponse::Ok()
            .insert_header((actix_web::http::header::CONTENT_TYPE, "application/json"))
            .body(body));
    }
    let query = query_or_400(&req)?;
    let limit = int_param(&query, "limit")?.unwrap_or(100);
    let offset = int_param(&query, "offset")?.unwrap_or(0);
    if offset >= 1 << 31 {
        return Err(fault(
            400,
            format!("Offset \"{offset}\" specified is more than 32-bit int"),
        ));
    }
    let limit = validate_limit(&shared, &principal, limit)?;
    let offset = usize::try_from(offset.max(0)).unwrap_or(0);
    let name = last(&query, "name");
    let pack = last(&query, "pack");
    let set = shared.aliases();
    let mut items: Vec<&Value> = set
        .raw
        .iter()
        .filter(|v| name.is_none_or(|n| v.get("name").and_then(Value::as_str) == Some(n)))
        .filter(|v| pack.is_none_or(|p| v.get("pack").and_then(Value::as_str) == Some(p)))
        .collect();
    items.sort_by_cached_key(|v| sort_key(v));
    let total = items.len();
    let take = if limit == 0 {
        usize::MAX
    } else {
        usize::try_from(limit).unwrap_or(usize::MAX)
    };
    let page: Vec<Value> = items.into_iter().skip(offset).take(take).cloned().collect();
    Ok(list_page(page, total, limit, &principal))
}

/// `GET /api/v1/actionalias/{ref_or_id}`.
async fn get_alias(req: HttpRequest, path: web::Path<String>, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let key = path.into_inner();
    let set = shared.aliases();
    match set.db.iter().find(|a| a.id == key || a.reference == key) {
        Some(a) => Ok(json_response(200, &a.raw, Some(&principal))),
        None => Err(fault(
            404,
            format!("Resource with a ref or id \"{key}\" not found"),
        )),
    }
}

/// `GET /api/v1/actionalias/help` (`generate_helpstring_result`).
async fn alias_help(req: HttpRequest, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let query = query_or_400(&req)?;
    let limit = int_param(&query, "limit")?.unwrap_or(100);
    let offset = int_param(&query, "offset")?.unwrap_or(0);
    let filter = last(&query, "filter").filter(|f| !f.is_empty());
    let pack = last(&query, "pack").filter(|p| !p.is_empty());
    let set = shared.aliases();
    let (available, entries) = aliases::help(&set.sorted(), filter, pack, limit, offset)
        .map_err(|e| {
            match e {
                HelpError::BadFilter(m) => tracing::debug!(error = %m, "st2 emulator: help filter is not a regex"),
                HelpError::NoDescription(a) => tracing::debug!(alias = %a, "st2 emulator: help met an alias without description (AttributeError)"),
            }
            internal_error()
        })?;
    let helpstrings: Vec<Value> = entries
        .iter()
        .map(|e| json!({"pack": e.pack, "display": e.display, "description": e.description}))
        .collect();
    Ok(json_response(
        200,
        &json!({"available": available, "helpstrings": helpstrings}),
        Some(&principal),
    ))
}

fn match_fault(e: MatchError) -> Fault {
    match e {
        MatchError::Ambiguous(m) => fault(400, m),
        MatchError::Internal(m) => {
            tracing::debug!(error = %m, "st2 emulator: matching raised (an alias format does not compile)");
            internal_error()
        }
    }
}

/// `POST /api/v1/actionalias/match`.
async fn match_alias(req: HttpRequest, payload: web::Payload, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let body = read_json(&req, payload).await?;
    validate_object(&body, MATCH)?;
    let command = str_field(&body, "command").unwrap_or_default();
    let set = shared.aliases();
    let m = matching::get_matching_alias(&set, &command).map_err(match_fault)?;
    Ok(json_response(
        200,
        &json!({
            "actionalias": m.alias.raw,
            "display": m.display,
            "representation": m.representation,
        }),
        Some(&principal),
    ))
}

// ----- alias executions ------------------------------------------------------------

/// One `_post` call of st2's alias execution controller.
struct PostArgs<'a> {
    name: &'a str,
    format: &'a str,
    command: &'a str,
    user: Option<String>,
    source_channel: String,
    source_context: Option<Value>,
    route: Option<String>,
    match_multiple: bool,
}

/// `ActionAliasExecutionController._post` and `_schedule_execution`.
async fn post_alias_execution(
    shared: &Arc<Shared>,
    set: &AliasSet,
    principal: &Principal,
    request: &Value,
    a: PostArgs<'_>,
) -> Result<Vec<AliasExecutionResult>, Fault> {
    // ActionAlias.get_by_name: the first alias with that name in DB order, any pack.
    let Some(alias) = set.get_by_name(a.name) else {
        return Err(fault(
            404,
            format!(
                "Unable to find the ActionAliasDB instance. {{'name': {}}}",
                py_str_repr(a.name)
            ),
        ));
    };
    if !alias.enabled {
        return Err(fault(
            400,
            format!("Action alias with name \"{}\" is disabled.", a.name),
        ));
    }
    if !alias.format_strings().iter().any(|f| f == a.format) {
        return Err(fault(
            400,
            format!(
                "Format string \"{}\" is not available on the alias \"{}\"",
                a.format, alias.name
            ),
        ));
    }
    let params_list = match matching::extract_parameters(a.format, a.command, a.match_multiple) {
        Ok(p) => p,
        Err(ParseError::Regex(e)) => {
            tracing::debug!(error = %e, "st2 emulator: alias format does not compile");
            return Err(internal_error());
        }
        Err(e) => return Err(fault(400, e.to_string())),
    };
    let immutable = immutable_parameters(&alias, principal, &a, &params_list)?;
    let mut results = Vec::new();
    let mut ids = Vec::new();
    let mut failure = None;
    for mut parameters in params_list {
        for (k, v) in &immutable {
            parameters.insert(k.clone(), v.clone());
        }
        let parameters = match schedule_checks(shared, principal, &alias, parameters) {
            Ok(p) => p,
            Err(f) => {
                failure = Some(f);
                break;
            }
        };
        let (id, execution) = shared.create_execution(NewExecution {
            alias: alias.clone(),
            parameters,
            principal: principal.clone(),
            request: request.clone(),
            user: a.user.clone(),
            source_channel: a.source_channel.clone(),
            source_context: a.source_context.clone(),
            route: a.route.clone(),
        });
        ids.push(id);
        match acknowledgement(&alias, execution) {
            Ok(r) => results.push(r),
            Err(f) => {
                failure = Some(f);
                break;
            }
        }
    }
    // Executions already created run whatever happens to the request.
    if shared.announce_before_response() {
        tokio::time::sleep(shared.settings.execution_delay).await;
        for id in &ids {
            shared.complete_execution(id);
        }
    } else {
        for id in &ids {
            shared.schedule_completion(id);
        }
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(results),
    }
}

/// What `_schedule_execution` checks before creating the execution: the action exists
/// (404), the requester may run it (RBAC `action_execute`, 403), the parameters cast and
/// validate (400; `registry.rs`).
fn schedule_checks(
    shared: &Shared,
    principal: &Principal,
    alias: &Alias,
    parameters: Map<String, Value>,
) -> Result<Map<String, Value>, Fault> {
    let Some(action) = shared.settings.registry.get(&alias.action_ref) else {
        let r = registry::not_found(&alias.action_ref);
        return Err(fault(r.status, r.message));
    };
    let s = &shared.settings;
    if !s.is_admin(&principal.user)
        && s.denied_actions
            .iter()
            .any(|(u, r)| *u == principal.user && *r == action.reference)
    {
        return Err(fault(
            403,
            format!(
                "User \"{}\" doesn't have required permission \"action_execute\" on resource \"{}\"",
                principal.user,
                action.uid()
            ),
        ));
    }
    registry::prepare(action, parameters).map_err(|r| fault(r.status, r.message))
}

/// The 201 item: `{execution, actionalias, message?, extra?}`, `ack.format` and
/// `ack.extra` rendered with `{execution, actionalias}` (API objects) under
/// `StrictUndefined`; an undefined value becomes st2's "Cannot render" text, any other
/// template error is uncaught (500).
fn acknowledgement(alias: &Alias, execution: Box<RawValue>) -> Result<AliasExecutionResult, Fault> {
    let mut result = AliasExecutionResult {
        execution,
        actionalias: alias.raw.clone(),
        message: None,
        extra: None,
    };
    let Some(ack) = alias.ack.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(result);
    };
    let execution: Value = serde_json::from_str(result.execution.get()).unwrap_or(Value::Null);
    let vars = [
        Var::api("execution", execution, EXECUTION_API),
        Var::api("actionalias", alias.raw.clone(), ALIAS_API),
    ];
    let other = |e: JinjaError| {
        tracing::debug!(error = %e, "st2 emulator: ack template failed");
        internal_error()
    };
    if let Some(fmt) = ack.get("format") {
        let mut mapping = Map::new();
        mapping.insert("alias".into(), fmt.clone());
        let message = match jinja::render_values(&mapping, &vars, Extras::default(), true) {
            Ok(m) => m.get("alias").cloned().unwrap_or(Value::Null),
            Err(JinjaError::Undefined(e)) => Value::String(format!(
                "Cannot render \"format\" in field \"ack\" for alias. {e}"
            )),
            Err(e) => return Err(other(e)),
        };
        result.message = Some(message);
    }
    if let Some(extra) = ack.get("extra") {
        let rendered = match extra {
            Value::Object(m) => match jinja::render_values(m, &vars, Extras::default(), true) {
                Ok(r) => Value::Object(r),
                Err(JinjaError::Undefined(e)) => Value::String(format!(
                    "Cannot render \"extra\" in field \"ack\" for alias. {e}"
                )),
                Err(e) => return Err(other(e)),
            },
            other => other.clone(),
        };
        result.extra = Some(rendered);
    }
    Ok(result)
}

/// One item of an alias execution's answer (`ActionAliasExecutionController._post`): the
/// execution, the alias, and the rendered `ack` message and extra when the alias has them.
#[derive(Debug, serde::Serialize)]
struct AliasExecutionResult {
    /// Serialised once, as it was created.
    execution: Box<RawValue>,
    actionalias: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<Value>,
}

/// st2's `inject_immutable_parameters`: render the alias's immutable parameters with
/// the action context (plus `st2kv`), refusing commands that set one of them.
fn immutable_parameters(
    alias: &Alias,
    principal: &Principal,
    a: &PostArgs<'_>,
    params_list: &[matching::Params],
) -> Result<Map<String, Value>, Fault> {
    let Some(imm) = alias
        .immutable_parameters
        .as_ref()
        .filter(|m| !m.is_empty())
    else {
        return Ok(Map::new());
    };
    let vars = [
        Var::dict(
            "action_alias_ref",
            json!({"id": alias.id, "name": alias.name}),
        ),
        Var::dict("api_user", json!(a.user)),
        Var::dict("user", json!(principal.user)),
        Var::dict("source_channel", json!(a.source_channel)),
    ];
    let extras = Extras {
        six: false,
        st2kv: true,
    };
    let rendered = jinja::render_values(imm, &vars, extras, true).map_err(|e| {
        tracing::debug!(error = %e, "st2 emulator: immutable parameters do not render");
        internal_error()
    })?;
    for params in params_list {
        let overridden: Vec<&str> = imm
            .keys()
            .filter(|k| params.contains_key(k.as_str()))
            .map(String::as_str)
            .collect();
        if !overridden.is_empty() {
            return Err(fault(
                400,
                format!(
                    "Immutable arguments cannot be overriden: {}",
                    overridden.join(",")
                ),
            ));
        }
    }
    Ok(rendered)
}

fn route_of(body: &Value) -> Option<String> {
    str_field(body, "notification_route")
        .filter(|r| !r.is_empty())
        .or_else(|| str_field(body, "notification_channel").filter(|r| !r.is_empty()))
}

fn injected_failure(shared: &Shared) -> Result<(), Fault> {
    match shared.take_fail_next() {
        Some((status, msg)) => {
            tracing::debug!(status, "st2 emulator: injected aliasexecution failure");
            Err(fault(status, msg))
        }
        None => Ok(()),
    }
}

/// `POST /api/v1/aliasexecution`: one execution, whatever `match_multiple` says.
async fn alias_execution(req: HttpRequest, payload: web::Payload, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let body = read_json(&req, payload).await?;
    validate_object(&body, ALIAS_EXECUTION)?;
    injected_failure(&shared)?;
    let name = str_field(&body, "name").unwrap_or_default();
    if name.is_empty() {
        return Err(fault(400, "Alias execution \"name\" is required"));
    }
    let format = str_field(&body, "format").unwrap_or_default();
    let command = str_field(&body, "command").unwrap_or_default();
    let set = shared.aliases();
    let args = PostArgs {
        name: &name,
        format: &format,
        command: &command,
        user: str_field(&body, "user"),
        source_channel: str_field(&body, "source_channel").unwrap_or_default(),
        source_context: body.get("source_context").cloned(),
        route: route_of(&body),
        match_multiple: false,
    };
    let mut results = post_alias_execution(shared.get_ref(), &set, &principal, &body, args).await?;
    if results.is_empty() {
        return Err(internal_error());
    }
    Ok(json_response(
        201,
        &results.swap_remove(0),
        Some(&principal),
    ))
}

/// `POST /api/v1/aliasexecution/match_and_execute`: matched as `/match` does, then one
/// execution per match when the matched format has `match_multiple`.
async fn match_and_execute(req: HttpRequest, payload: web::Payload, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let body = read_json(&req, payload).await?;
    validate_object(&body, MATCH_AND_EXECUTE)?;
    injected_failure(&shared)?;
    let command = str_field(&body, "command").unwrap_or_default();
    let set = shared.aliases();
    let matched = matching::get_matching_alias(&set, &command).map_err(match_fault)?;
    // `format_["match_multiple"]`: the pattern of a display-only format has no such
    // key (KeyError: 500).
    let Some(match_multiple) = matched.match_multiple else {
        tracing::debug!("st2 emulator: match_and_execute on a display-only format (KeyError)");
        return Err(internal_error());
    };
    let args = PostArgs {
        name: &matched.alias.name,
        format: &matched.representation,
        command: &command,
        user: str_field(&body, "user"),
        source_channel: str_field(&body, "source_channel").unwrap_or_default(),
        source_context: None,
        route: route_of(&body),
        match_multiple,
    };
    let results = post_alias_execution(shared.get_ref(), &set, &principal, &body, args).await?;
    /// The answer of `match_and_execute`.
    #[derive(serde::Serialize)]
    struct Results {
        results: Vec<AliasExecutionResult>,
    }
    Ok(json_response(201, &Results { results }, Some(&principal)))
}

// ----- user --------------------------------------------------------------------------

/// `GET /api/v1/user`: who the credential is (`UserController.get`,
/// `st2api/controllers/v1/user.py:24`; no `x-permissions`, `openapi.yaml.j2:221`).
/// `authentication` is the router's `auth_info` (`st2common/router.py:376-389`): method
/// `authentication token` or `API key`, the credential's location, and for a token its
/// expiry as `%Y-%m-%dT%H:%M:%SZ`. `rbac.roles` is empty with RBAC off (user.py:37-41);
/// `is_admin` is `user_is_admin` (user.py:52; true for everyone with RBAC off).
async fn current_user(req: HttpRequest, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let s = &shared.settings;
    let user = &principal.user;
    let roles = if s.rbac { s.roles_of(user) } else { Vec::new() };
    let method = match principal.kind {
        super::CredentialKind::Token => "authentication token",
        super::CredentialKind::ApiKey => "API key",
    };
    let mut authentication = Map::new();
    authentication.insert("method".into(), json!(method));
    authentication.insert("location".into(), json!(principal.location));
    if let Some((_, expiry)) = &principal.token {
        authentication.insert(
            "token_expire".into(),
            json!(expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
    }
    let body = json!({
        "username": user,
        "authentication": authentication,
        "rbac": {
            "enabled": s.rbac,
            "roles": roles,
            "is_admin": s.is_admin(user),
        },
    });
    Ok(json_response(200, &body, Some(&principal)))
}

// ----- actions ---------------------------------------------------------------------

/// RBAC `action_view` on an action (`assert_user_has_resource_db_permission`): true with
/// RBAC off; with it on, a system role that has it (`admin`, `system_admin`, `observer`
/// for a `view` permission) or a grant of `action_view` or `action_all` (the emulator's
/// grants are not per resource: st2-rbac-backend's `ActionPermissionsResolver` also
/// accepts them on the action's pack or the action itself).
fn may_view_action(shared: &Shared, user: &str) -> bool {
    let s = &shared.settings;
    s.has_global_permission(user, "action_view") || s.has_global_permission(user, "action_all")
}

/// `ResourceAccessDeniedError` for `action_view` on `action` (`st2common/exceptions/rbac.py`:
/// not a global permission type, so the resource's uid is named). 403.
fn action_view_denied(user: &str, action: &registry::Action) -> Fault {
    fault(
        403,
        format!(
            "User \"{user}\" doesn't have required permission \"action_view\" on resource \"{}\"",
            action.uid()
        ),
    )
}

/// `GET /api/v1/actions/{ref_or_id}` (`ActionsController.get_one`,
/// `st2api/controllers/v1/actions.py`, through `ContentPackResourceController._get_one`,
/// `st2api/controllers/resource.py`): by ref when the key has a `.`, else by id; unknown
/// is a 404 `Resource with a reference or id "<key>" not found` (`_get_by_ref_or_id`;
/// an id that is not an ObjectId is unknown too, `_get_by_id` catches the
/// `ValidationError`); then RBAC `action_view` (403); then the `ActionAPI` object, with
/// only the action's own `parameters`.
async fn get_action(req: HttpRequest, path: web::Path<String>, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let key = path.into_inner();
    let Some(action) = shared.settings.registry.get_by_ref_or_id(&key) else {
        return Err(fault(
            404,
            format!("Resource with a reference or id \"{key}\" not found"),
        ));
    };
    if !may_view_action(&shared, &principal.user) {
        return Err(action_view_denied(&principal.user, action));
    }
    Ok(json_response(200, &action.api_json(), Some(&principal)))
}

/// `GET /api/v1/actions/views/parameters/{ref_or_id}` (`ParametersViewController._get_one`,
/// `st2api/controllers/v1/action_views.py`): the action found by ref (key with a `.`) or
/// id, else a 404 from `LookupUtils` (`Database lookup for ref="<r>" resulted in
/// exception. Referenced action "<r>" doesnt exist`; for an id, the
/// `StackStormDBObjectNotFoundError` of `Action.get_by_id`, `st2common/models/db/__init__.py`
/// `get(..., raise_exception=True)`, or mongoengine's ObjectId `ValidationError`); then
/// RBAC `action_view` (403); then `{"parameters": <runner and action specs merged>}`
/// (`registry::Action::parameters_view`).
async fn action_parameters_view(req: HttpRequest, path: web::Path<String>, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let key = path.into_inner();
    let registry = &shared.settings.registry;
    let Some(action) = registry.get_by_ref_or_id(&key) else {
        let why = if key.contains('.') {
            format!("ref=\"{key}\" resulted in exception. Referenced action \"{key}\" doesnt exist")
        } else if key.len() == 24 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!(
                "id=\"{key}\" resulted in exception. Unable to find the ActionDB instance. {{'id': {}}}",
                py_str_repr(&key)
            )
        } else {
            format!(
                "id=\"{key}\" resulted in exception. {} is not a valid ObjectId, it must be a 12-byte input or a 24-character hex string",
                py_str_repr(&key)
            )
        };
        return Err(fault(404, format!("Database lookup for {why}")));
    };
    if !may_view_action(&shared, &principal.user) {
        return Err(action_view_denied(&principal.user, action));
    }
    Ok(json_response(
        200,
        &json!({"parameters": action.parameters_view()}),
        Some(&principal),
    ))
}

// ----- inquiries -------------------------------------------------------------------

/// `ResourceTypeAccessDeniedError` and, for the global permission types the inquiry ones
/// all are (`GLOBAL_PERMISSION_TYPES`, `st2common/rbac/types.py:437`),
/// `ResourceAccessDeniedError` (`st2common/exceptions/rbac.py:40-84`): both say just
/// `User "<name>" doesn't have required permission "<type>"`. 403.
fn permission_denied(user: &str, permission_type: &str) -> Fault {
    fault(
        403,
        format!("User \"{user}\" doesn't have required permission \"{permission_type}\""),
    )
}

/// `GET /api/v1/inquiries`: the pending inquiries (`limit` default 20, checked as for
/// every list).
async fn list_inquiries(req: HttpRequest, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    // `x-permissions: inquiry_list` (`openapi.yaml.j2:1465`), checked by the router right
    // after authentication, before the parameters (`st2common/router.py:445-461`).
    if !shared
        .settings
        .has_global_permission(&principal.user, "inquiry_list")
    {
        return Err(permission_denied(&principal.user, "inquiry_list"));
    }
    let query = query_or_400(&req)?;
    let limit = int_param(&query, "limit")?.unwrap_or(20);
    let limit = validate_limit(&shared, &principal, limit)?;
    let all = shared.pending_inquiries();
    let total = all.len();
    let take = if limit == 0 {
        usize::MAX
    } else {
        usize::try_from(limit).unwrap_or(usize::MAX)
    };
    let page: Vec<Value> = all.into_iter().take(take).collect();
    Ok(list_page(page, total, limit, &principal))
}

/// The inquiry behind an id as `InquiriesController` gets it: `_get_one_by_id` (404
/// unknown; then `assert_user_has_resource_db_permission` with `permission_type`, 403,
/// `st2api/controllers/v1/inquiries.py:219-245`), then `check_inquiry` (400 not an
/// inquiry, timed out or answered; inquiries.py:130 and 175).
fn checked_inquiry(
    shared: &Shared,
    principal: &Principal,
    id: &str,
    permission_type: &str,
) -> Result<Value, Fault> {
    let Some((runner, status, inquiry)) = shared.inquiry(id) else {
        return Err(fault(404, "The resource could not be found."));
    };
    if !shared
        .settings
        .has_inquiry_permission(&principal.user, permission_type)
    {
        return Err(permission_denied(&principal.user, permission_type));
    }
    if runner != "inquirer" {
        return Err(fault(
            400,
            format!("Action execution \"{id}\" is not an inquiry."),
        ));
    }
    if status == "timeout" {
        return Err(fault(
            400,
            format!("Inquiry \"{id}\" timed out and cannot be responded to."),
        ));
    }
    if status != "pending" {
        return Err(fault(
            400,
            format!("Inquiry \"{id}\" has already been responded to."),
        ));
    }
    Ok(inquiry)
}

/// `GET /api/v1/inquiries/{id}`.
async fn get_inquiry(req: HttpRequest, path: web::Path<String>, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    // `get_one`: `inquiry_view` (inquiries.py:114-117).
    let inquiry = checked_inquiry(&shared, &principal, &path.into_inner(), "inquiry_view")?;
    Ok(json_response(200, &inquiry, Some(&principal)))
}

const INQUIRY_RESPONSE: &[Prop] = &[prop("id", Ty::Str, true), prop("response", Ty::Obj, true)];

/// `PUT /api/v1/inquiries/{id}` with `{"id", "response"}`: checked, permission
/// (`users`, `roles`), validated against the inquiry's schema, then answered.
async fn respond_inquiry(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    shared: Data,
) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let body = read_json(&req, payload).await?;
    validate_required(&body, INQUIRY_RESPONSE)?;
    let id = path.into_inner();
    // `put`: `inquiry_respond` (inquiries.py:158-161).
    let inquiry = checked_inquiry(&shared, &principal, &id, "inquiry_respond")?;
    // inquiry_service.check_permission: roles (any, when listed) and users (when listed).
    let user = &principal.user;
    let list = |k: &str| -> Vec<String> {
        inquiry
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let roles = list("roles");
    let users = list("users");
    // `user_has_role` for each listed role (`st2common/services/inquiry.py:80-90`).
    let roles_ok = roles.is_empty() || roles.iter().any(|r| shared.settings.has_role(user, r));
    let users_ok = users.is_empty() || users.iter().any(|u| u == user);
    if !roles_ok || !users_ok {
        // The requester is a UserDB, printed with StormFoundationDB.__str__.
        return Err(fault(
            403,
            format!(
                "User \"UserDB(id={}, is_service=False, name=\"{user}\", nicknames={{}})\" does not have permission to respond to inquiry \"{id}\".",
                stable_object_id(&format!("user:{user}"))
            ),
        ));
    }
    let response = body.get("response").cloned().unwrap_or_else(|| json!({}));
    let schema = inquiry.get("schema").cloned().unwrap_or_else(|| json!({}));
    if let Err(e) = jsonschema::validate(&response, &schema) {
        return Err(fault(
            400,
            format!(
                "Response for inquiry \"{id}\" did not pass schema validation. {}",
                e.verbose()
            ),
        ));
    }
    if !shared.respond_inquiry(&id, &response) {
        return Err(internal_error());
    }
    Ok(json_response(
        200,
        &json!({"id": id, "response": response}),
        Some(&principal),
    ))
}

// ----- executions ------------------------------------------------------------------

fn no_such_execution(id: &str) -> Fault {
    fault(
        404,
        format!("Unable to identify resource with id \"{id}\"."),
    )
}

/// `GET /api/v1/executions/{id}` (`ActionExecutionsController.get_one`,
/// `st2api/controllers/v1/actionexecutions.py:752-806`): the `ActionExecutionAPI` object as
/// it is now — `status`, `start_timestamp`, `end_timestamp` once completed, `result` once
/// it has one, `action` (with `ref`), `log`, ... (`Exec::to_json` in `state.rs`); 404
/// `Unable to identify resource with id "<id>".` when unknown. `exclude_attributes` (a
/// comma-separated list, as st2's router reads an array query parameter) leaves those
/// attributes out; `get_one` checks each against the controller's
/// `valid_exclude_attributes` (`result`, `trigger_instance`, `status`) first and answers 400
/// `Invalid or unsupported exclude attribute specified: <name>` for another
/// (`ResourceController._validate_exclude_fields`, `st2api/controllers/resource.py`).
/// `include_attributes` (since st2 2.9.0) keeps only the named top-level attributes and `id`:
/// st2's router cuts the answer down to them (`Router._process_response`,
/// `st2common/router.py`, with the controller's `mandatory_include_fields_response`,
/// `["id"]`), after the database read only what was named plus the controller's
/// `mandatory_include_fields_retrieve` (`action.parameters`, `action.output_schema`,
/// `action.pack`, `action.uid`, `runner.runner_parameters`, `runner.output_key`,
/// `parameters`, `context`), so an `action.ref` asked for comes back as `action` with `ref`
/// and those. A name that is not a field of `ActionExecutionDB`
/// (`st2common/models/db/execution.py`; `elapsed_seconds` is computed, not stored) is a
/// 400 from mongoengine's `only()` (`Access._get_impl`, `st2common/models/db/__init__.py`),
/// before the execution is looked for; both filters at once pass the read and are a 400
/// from the router (a `ValueError`, which `ErrorHandlingMiddleware` answers with 400). Not
/// modelled: its RBAC check (`execution_view`, as [`check_execution`] does for the output),
/// `id=last`, `max_result_size`, `show_secrets`.
async fn get_execution(req: HttpRequest, path: web::Path<String>, shared: Data) -> Reply {
    const VALID_EXCLUDE: [&str; 3] = ["result", "trigger_instance", "status"];
    let principal = authenticate(&shared, &req)?;
    let id = path.into_inner();
    let pairs = query_pairs(&req).unwrap_or_default();
    let list = |key: &str| -> Vec<String> {
        last(&pairs, key)
            .map(|list| {
                list.split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let excluded = list("exclude_attributes");
    let included = list("include_attributes");
    if let Some(bad) = excluded
        .iter()
        .find(|f| !VALID_EXCLUDE.contains(&f.as_str()))
    {
        return Err(fault(
            400,
            format!("Invalid or unsupported exclude attribute specified: {bad}"),
        ));
    }
    if let Some(bad) = included
        .iter()
        .map(|f| f.split('.').next().unwrap_or_default())
        .find(|f| !EXECUTION_DB_FIELDS.contains(f))
    {
        return Err(fault(
            400,
            format!("Invalid or unsupported include attribute specified: Cannot resolve field \"{bad}\""),
        ));
    }
    // Only what the filter can keep is serialised: `id` and each name's first part.
    let top: Vec<&str> = std::iter::once("id")
        .chain(
            included
                .iter()
                .map(|f| f.split('.').next().unwrap_or_default()),
        )
        .collect();
    let found = if included.is_empty() {
        shared.execution_json(&id)
    } else {
        shared.execution_json_only(&id, &top)
    };
    let mut e = found.ok_or_else(|| no_such_execution(&id))?;
    if !excluded.is_empty() && !included.is_empty() {
        return Err(fault(
            400,
            "exclude_attributes and include_attributes arguments are mutually exclusive. You need to provide either one or another, but not both.",
        ));
    }
    if let Some(fields) = e.as_object_mut() {
        for name in excluded {
            fields.remove(&name);
        }
        if !included.is_empty() {
            keep_included(fields, &included);
        }
    }
    Ok(json_response(200, &e, Some(&principal)))
}

/// The fields of st2's `ActionExecutionDB` (`st2common/models/db/execution.py`, with `id`
/// from `StormFoundationDB`): what `include_attributes` may name.
const EXECUTION_DB_FIELDS: [&str; 22] = [
    "id",
    "trigger",
    "trigger_type",
    "trigger_instance",
    "rule",
    "action",
    "runner",
    "liveaction",
    "workflow_execution",
    "task_execution",
    "status",
    "start_timestamp",
    "end_timestamp",
    "parameters",
    "result",
    "result_size",
    "context",
    "parent",
    "children",
    "log",
    "delay",
    "web_url",
];

/// `include_attributes` on an execution: the named top-level attributes and `id` stay
/// (st2's router); a dotted name keeps only that part of its object, with the parts the
/// controller always reads (`mandatory_include_fields_retrieve`).
fn keep_included(fields: &mut serde_json::Map<String, Value>, included: &[String]) {
    const ALWAYS_READ: [&str; 6] = [
        "action.parameters",
        "action.output_schema",
        "action.pack",
        "action.uid",
        "runner.runner_parameters",
        "runner.output_key",
    ];
    let whole = |name: &str| included.iter().any(|f| f == name);
    fields.retain(|name, value| {
        if name == "id" || whole(name) {
            return true;
        }
        let prefix = format!("{name}.");
        if !included.iter().any(|f| f.starts_with(&prefix)) {
            return false;
        }
        let parts: Vec<&str> = included
            .iter()
            .map(String::as_str)
            .chain(ALWAYS_READ)
            .filter_map(|f| f.strip_prefix(prefix.as_str()))
            .map(|f| f.split('.').next().unwrap_or_default())
            .collect();
        if let Some(object) = value.as_object_mut() {
            object.retain(|key, _| parts.contains(&key.as_str()));
        }
        true
    });
}

/// The permission check of `_get_one_by_id` (`st2api/controllers/resource.py:321-331`),
/// which runs before the 404: `permission_type` on the execution (`Settings::execution_permission`),
/// a 403 `ResourceAccessDeniedError` naming the execution's uid, `execution:<id>`
/// (`st2common/exceptions/rbac.py:57-84`; `ActionExecutionDB.get_uid`,
/// `st2common/models/db/execution.py:103-106`); a 500 where st2's resolver fails on an
/// unknown id; then the 404 `Unable to identify resource with id "<id>".`.
fn check_execution(
    shared: &Shared,
    principal: &Principal,
    id: &str,
    permission_type: &str,
) -> Result<(), Fault> {
    let action_ref = shared.execution_action_ref(id);
    let user = &principal.user;
    match shared
        .settings
        .execution_permission(user, permission_type, action_ref.as_deref())
    {
        None => {
            tracing::debug!(execution = %id, "st2 emulator: RBAC resolver on an unknown execution (TypeError)");
            Err(internal_error())
        }
        Some(false) => Err(fault(
            403,
            format!(
                "User \"{user}\" doesn't have required permission \"{permission_type}\" on resource \"execution:{id}\""
            ),
        )),
        Some(true) if action_ref.is_none() => Err(no_such_execution(id)),
        Some(true) => Ok(()),
    }
}

/// `GET /api/v1/executions/{id}/output` (`ActionExecutionOutputController.get_one`,
/// `st2api/controllers/v1/actionexecutions.py:478-533`; `openapi.yaml.j2:1218-1251`, no
/// `x-permissions`): the execution is looked up with `execution_view`
/// ([`check_execution`]); the body is its output records' `data` joined, as
/// `text/plain` (webob adds `charset=UTF-8` to a text type), filtered by `output_type`
/// unless it is absent, empty or `all` — any other value is a filter, even one the
/// spec's `enum` lacks (st2's router does not check a query parameter's `enum`,
/// `st2common/router.py:459-624`), and matches nothing.
async fn execution_output(req: HttpRequest, path: web::Path<String>, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let query = query_or_400(&req)?;
    let id = path.into_inner();
    check_execution(&shared, &principal, &id, "execution_view")?;
    let output_type = last(&query, "output_type");
    let body = shared
        .execution_output(&id, output_type)
        .ok_or_else(|| no_such_execution(&id))?;
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CONTENT_TYPE, "text/plain; charset=UTF-8"));
    if let Some(cookie) = auth_cookie(Some(&principal)) {
        b.insert_header((header::SET_COOKIE, cookie));
    }
    Ok(b.body(body))
}

/// `DELETE /api/v1/executions/{id}` (`ActionExecutionsController.delete`,
/// `st2api/controllers/v1/actionexecutions.py:948-1015`): the execution is looked up with
/// `execution_stop` ([`check_execution`]: 403, or 404 for an unknown id); one already
/// `canceled` comes back as it is (200); one whose status is not in
/// `LIVEACTION_CANCELABLE_STATES` gets `abort(http_client.OK, "Action cannot be
/// canceled. State = <status>.")`: st2's `abort` raises webob's `HTTPOk`
/// (`st2common/router.py:77-78`), which `ErrorHandlingMiddleware` renders like every
/// error, `{"faultstring": <message>}` with the exception's status — 200
/// (`st2common/middleware/error_handling.py:63-65,100-114`); otherwise cancellation is
/// requested for the requester (`Shared::cancel_execution`) and the execution comes back
/// `canceling` or `canceled`.
async fn cancel_execution(req: HttpRequest, path: web::Path<String>, shared: Data) -> Reply {
    let principal = authenticate(&shared, &req)?;
    let id = path.into_inner();
    check_execution(&shared, &principal, &id, "execution_stop")?;
    match shared.cancel_execution(&id, &principal.user) {
        CancelResult::Unknown => Err(no_such_execution(&id)),
        CancelResult::AlreadyCanceled(e) | CancelResult::Requested(e) => {
            Ok(json_response(200, &e, Some(&principal)))
        }
        CancelResult::NotCancelable(status) => Err(fault(
            200,
            format!("Action cannot be canceled. State = {status}."),
        )),
    }
}
