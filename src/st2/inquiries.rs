//! StackStorm's inquiries API, and who a credential belongs to.
//!
//! - `GET /api/v1/inquiries`: the pending inquiries (`st2api/controllers/v1/inquiries.py`
//!   `get_all`). It takes `limit` (default 20; with RBAC on a non-admin may ask for at most
//!   `api.max_page_size`, 100 by default) and answers `X-Total-Count`, but it has no
//!   `offset`: the controller calls `_get_all` with fixed filters, and st2's OpenAPI spec
//!   declares no such parameter, so a second page repeats the first. The bridge still asks
//!   page by page (a StackStorm that honours `offset` gets read whole) and stops at the
//!   first page that brings nothing new.
//! - `GET /api/v1/inquiries/{id}`: one inquiry; 400 when it is not an inquiry, timed out or
//!   already answered (`inquiry_service.check_inquiry`), 404 when unknown.
//! - `PUT /api/v1/inquiries/{id}` with `{"id", "response"}`: 403 when the requester fails
//!   `users`/`roles` (`check_permission`), 400 when the response fails the schema, 200 with
//!   `{"id", "response"}` when accepted.
//! - `GET /api/v1/user` (`controllers/v1/user.py`): the credential's username and, with
//!   RBAC on, its roles. A StackStorm without it (404) leaves the caller to other sources.

use std::collections::HashSet;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{client::St2Client, credential::Credential, error::St2Error};
use crate::inquiry::{is_inquiry_id, Inquiry};

/// Inquiries asked for per page: st2's default `api.max_page_size`, the most a non-admin
/// may ask for with RBAC on.
const INQUIRY_PAGE: usize = 100;

/// Pages read at most (see the module text: StackStorm answers the same page again).
const MAX_INQUIRY_PAGES: usize = 20;

/// The pending inquiries StackStorm listed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InquiryList {
    /// The inquiries read, in StackStorm's order, each once.
    pub inquiries: Vec<Inquiry>,
    /// `X-Total-Count`: how many are pending in all, when StackStorm said.
    pub total: Option<usize>,
}

/// `GET /api/v1/user`, reduced to what deciding who may answer needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct St2User {
    /// The StackStorm username.
    #[serde(default)]
    pub username: String,
    /// RBAC details.
    #[serde(default)]
    pub rbac: St2UserRbac,
}

/// The `rbac` part of `GET /api/v1/user`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct St2UserRbac {
    /// `rbac.enable` in st2.conf.
    #[serde(default)]
    pub enabled: bool,
    /// The user's role names (empty with RBAC off).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether the user is an administrator.
    #[serde(default)]
    pub is_admin: bool,
}

fn not_an_id(id: &str) -> St2Error {
    let shown: String = id.chars().take(40).collect();
    St2Error::api(400, format!("`{shown}` is not an inquiry id"))
}

impl St2Client {
    /// `GET /api/v1/inquiries`, page by page until a page brings nothing new (StackStorm
    /// ignores `offset`; see the module text).
    pub async fn list_inquiries(&self, cred: &Credential) -> Result<InquiryList, St2Error> {
        let mut list = InquiryList::default();
        let mut seen = HashSet::new();
        let mut offset = 0usize;
        for _ in 0..MAX_INQUIRY_PAGES {
            let url = format!(
                "{}/inquiries?limit={INQUIRY_PAGE}&offset={offset}",
                self.api_url()
            );
            let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
            let (headers, body) = self
                .exchange_with_headers("inquiries_list", req, StatusCode::OK)
                .await?;
            list.total = headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok())
                .or(list.total);
            let items: Vec<Value> = serde_json::from_slice(&body)
                .map_err(|e| St2Error::Decode(format!("inquiry list: {e}")))?;
            let page_len = items.len();
            let before = list.inquiries.len();
            for item in items {
                match serde_json::from_value::<Inquiry>(item) {
                    Ok(inquiry) => {
                        if seen.insert(inquiry.id.clone()) {
                            list.inquiries.push(inquiry);
                        }
                    }
                    // One odd item must not hide the others.
                    Err(e) => tracing::debug!(error = %e, "skipping an unreadable inquiry"),
                }
            }
            offset += INQUIRY_PAGE;
            let done = list.inquiries.len() == before
                || page_len < INQUIRY_PAGE
                || list.total.is_some_and(|t| list.inquiries.len() >= t);
            if done {
                break;
            }
        }
        Ok(list)
    }

    /// `GET /api/v1/inquiries/{id}`.
    pub async fn get_inquiry(&self, cred: &Credential, id: &str) -> Result<Inquiry, St2Error> {
        if !is_inquiry_id(id) {
            return Err(not_an_id(id));
        }
        let url = format!("{}/inquiries/{id}", self.api_url());
        let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
        let body = self.exchange("inquiries_get", req, StatusCode::OK).await?;
        serde_json::from_slice(&body).map_err(|e| St2Error::Decode(format!("inquiry: {e}")))
    }

    /// `PUT /api/v1/inquiries/{id}` with `response`: StackStorm's answer (`{"id",
    /// "response"}`) once accepted.
    pub async fn respond_inquiry(
        &self,
        cred: &Credential,
        id: &str,
        response: &Map<String, Value>,
    ) -> Result<Value, St2Error> {
        if !is_inquiry_id(id) {
            return Err(not_an_id(id));
        }
        let url = format!("{}/inquiries/{id}", self.api_url());
        let body = serde_json::to_vec(&json!({"id": id, "response": response}))
            .map_err(|e| St2Error::Decode(format!("cannot encode a response: {e}")))?;
        let req = Self::request(Method::PUT, &url, Some(cred.header()), Some(body))?;
        let answer = self.exchange("inquiries_put", req, StatusCode::OK).await?;
        // The answer only echoes the response; an unreadable one still means "accepted".
        Ok(serde_json::from_slice(&answer).unwrap_or(Value::Null))
    }

    /// `GET /api/v1/user`: who `cred` is; `None` when this StackStorm has no such endpoint.
    pub async fn current_user(&self, cred: &Credential) -> Result<Option<St2User>, St2Error> {
        let url = format!("{}/user", self.api_url());
        let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
        match self.exchange("user_get", req, StatusCode::OK).await {
            Ok(body) => serde_json::from_slice::<St2User>(&body)
                .map(|u| Some(u).filter(|u| !u.username.is_empty()))
                .map_err(|e| St2Error::Decode(format!("user: {e}"))),
            Err(St2Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
