//! StackStorm inquiries, the pure part: the inquiry as StackStorm serves it, its response
//! schema read as a list of fields, a chat answer (`key=value key2="two words"`) parsed and
//! checked against that schema, the answers that can be offered as buttons, and whether a
//! StackStorm user may answer at all.
//!
//! An inquiry is an execution of `core.ask` (runner `inquirer`) paused in `pending`; its
//! result holds `schema`, `users`, `roles`, `route` and `ttl`. `GET /api/v1/inquiries` lists
//! them as `InquiryResponseAPI` objects (`st2common/models/api/inquiry.py`), and
//! `PUT /api/v1/inquiries/{id}` with `{"id", "response"}` answers one
//! (`st2api/controllers/v1/inquiries.py`): StackStorm checks that it is still pending, that
//! the requester passes `users` and `roles` (`st2common/services/inquiry.py`
//! `check_permission`), and validates the response against the schema (with defaults
//! filled in). The bridge checks the same things first where it can, so that a typo is
//! explained by field name in chat and never reaches StackStorm.
//!
//! No I/O here: the StackStorm calls are in `crate::st2::inquiries`, the chat commands in
//! the dispatcher.

pub mod access;
pub mod answer;
pub mod buttons;
pub mod schema;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use access::{may_answer, MayAnswer, St2Identity};
pub use answer::{parse_answer, validate_response, AnswerError};
pub use buttons::{button_offer, ButtonChoice, ButtonOffer};
pub use schema::{Field, FieldType, ResponseSchema};

/// One pending inquiry, as `GET /api/v1/inquiries` serves it. StackStorm fills missing
/// fields with `null` (`InquiryResponseAPI.from_model` reads them with `dict.get`), so every
/// field but `id` tolerates `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inquiry {
    /// The inquiry's id, which is also its execution's id.
    pub id: String,
    /// The route notification rules use.
    #[serde(default, deserialize_with = "null_as_default")]
    pub route: String,
    /// Minutes before StackStorm times it out.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// StackStorm users allowed to answer (empty: anyone).
    #[serde(default, deserialize_with = "string_list")]
    pub users: Vec<String>,
    /// RBAC roles allowed to answer (empty: anyone).
    #[serde(default, deserialize_with = "string_list")]
    pub roles: Vec<String>,
    /// The JSON schema a response must satisfy.
    #[serde(default)]
    pub schema: Value,
}

impl Inquiry {
    /// The inquiry's response schema, read as fields.
    pub fn response_schema(&self) -> ResponseSchema {
        ResponseSchema::from_json(&self.schema)
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A list of names: `null` is empty, and entries that are not strings are skipped (a
/// malformed entry must not hide the whole inquiry).
fn string_list<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let items = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    Ok(items
        .into_iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect())
}

/// Whether `id` can be an inquiry id in a URL path: StackStorm's ids are 24 hex digits
/// (MongoDB ObjectIds); anything outside ASCII letters and digits never is one, and must
/// not reach a URL.
pub fn is_inquiry_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_and_odd_entries_do_not_hide_an_inquiry() {
        let inquiry: Inquiry = serde_json::from_value(json!({
            "id": "5f0e", "route": null, "ttl": null, "users": ["alice", 3, null],
            "roles": null, "schema": {"type": "object"}
        }))
        .unwrap();
        assert_eq!(inquiry.users, vec!["alice"]);
        assert!(inquiry.roles.is_empty());
        assert_eq!(inquiry.route, "");
        assert_eq!(inquiry.ttl, None);
    }

    #[test]
    fn only_plain_ids_are_ids() {
        assert!(is_inquiry_id("5f0e1d2c3b4a596877665544"));
        for bad in ["", "../executions", "a b", "id?x=1", &"a".repeat(65)] {
            assert!(!is_inquiry_id(bad), "{bad}");
        }
    }
}
