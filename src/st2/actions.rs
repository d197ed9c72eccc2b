//! StackStorm's action metadata, read for one thing: which parameters are secret, so the
//! bridge can mask their values in what it posts to chat ([`crate::redact`]).
//!
//! - `GET /api/v1/actions/views/parameters/{ref_or_id}`
//!   (`st2api/controllers/v1/action_views.py` `ParametersViewController._get_one`): the
//!   action's parameters merged with its runner's (`get_params_view(merged_only=True)`,
//!   `st2common/models/utils/action_param_utils.py`; for a key both set, the action's
//!   value wins, except `immutable`), as `{"parameters": {name: spec}}`. This is the view
//!   the bridge reads, because many secret parameters come from the runner, not the
//!   action: `core.remote`'s `password`, `private_key` and `passphrase`, the shell
//!   runners' `sudo_password`, `core.http`'s `password` (`contrib/runners/*/runner.yaml`).
//!   An unknown ref is a 404 `Database lookup for ref="<ref>" resulted in exception.
//!   Referenced action "<ref>" doesnt exist`; then RBAC `action_view` on the action
//!   (403 `User "<u>" doesn't have required permission "action_view" on resource
//!   "action:<pack>:<name>"`).
//! - `GET /api/v1/actions/{ref_or_id}` (`st2api/controllers/v1/actions.py`
//!   `ActionsController.get_one`, also `action_view`) serves only the action's own
//!   `parameters` (`ActionAPI`, `st2common/models/api/action.py`), so it is not used here.
//!
//! A parameter is secret as st2's `get_secret_parameters` (`st2common/util/secrets.py`)
//! decides: its spec's `secret` is truthy (Python truthiness), or — for an `object` or
//! `array` parameter — a property or the items are, recursively. st2 masks such values
//! (`********`) in the parameters its API serves, but never in an action's *result*.

use http::{Method, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{client::St2Client, credential::Credential, error::St2Error};

/// What a ref may contain in the URL as is; everything else is percent-encoded.
const REF_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_');

/// Longest action ref asked about (st2's refs are `pack.name`, far shorter).
const MAX_REF_LEN: usize = 512;

/// Deepest nesting of `properties`/`items` followed (deeper specs count as not secret).
const MAX_SPEC_DEPTH: usize = 32;

/// `GET /api/v1/actions/views/parameters/{ref_or_id}`: the merged parameter specs.
/// Anything but an object under `parameters` reads as no parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ActionParametersView {
    /// Parameter name → its spec (JSON-schema-like: `type`, `description`, `required`,
    /// `default`, `secret`, `immutable`, `properties`, `items`, …), as st2 sent it.
    #[serde(default, deserialize_with = "object_or_empty")]
    pub parameters: Map<String, Value>,
}

impl ActionParametersView {
    /// The names of the secret parameters, in StackStorm's order (see the module text).
    pub fn secret_parameters(&self) -> Vec<String> {
        self.parameters
            .iter()
            .filter(|(_, spec)| spec_is_secret(spec, 0))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn object_or_empty<'de, D>(d: D) -> Result<Map<String, Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

/// Whether a parameter spec is secret, or holds a secret (`get_secret_parameters`).
fn spec_is_secret(spec: &Value, depth: usize) -> bool {
    let Some(spec) = spec.as_object() else {
        return false;
    };
    if spec
        .get("secret")
        .is_some_and(super::result_message::json_truthy)
    {
        return true;
    }
    if depth >= MAX_SPEC_DEPTH {
        return false;
    }
    match spec.get("type").and_then(Value::as_str) {
        Some("object") => spec
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|props| props.values().any(|p| spec_is_secret(p, depth + 1))),
        Some("array") => spec
            .get("items")
            .is_some_and(|items| spec_is_secret(items, depth + 1)),
        _ => false,
    }
}

/// The values to mask for the `secret` parameters of one execution: each secret
/// parameter's value as text — a string as is, a number as written, and every string
/// and number inside an object or array (st2 masks a nested secret's whole parameter
/// tree when the parameter itself is secret; for a parameter that only *holds* a secret
/// somewhere inside, all its leaves are taken, erring on the side of masking). Booleans
/// and nulls are left out: masking every `true` would protect nothing.
pub fn secret_parameter_values(parameters: &Map<String, Value>, secret: &[String]) -> Vec<String> {
    fn leaves(v: &Value, depth: usize, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(items) if depth < MAX_SPEC_DEPTH => {
                items.iter().for_each(|i| leaves(i, depth + 1, out));
            }
            Value::Object(m) if depth < MAX_SPEC_DEPTH => {
                m.values().for_each(|i| leaves(i, depth + 1, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for name in secret {
        if let Some(v) = parameters.get(name) {
            leaves(v, 0, &mut out);
        }
    }
    out
}

impl St2Client {
    /// The names of the parameters of `action_ref` (`pack.name`, or an action id) that
    /// StackStorm marks `secret: true`, runner parameters included:
    /// `GET /api/v1/actions/views/parameters/{ref_or_id}` (see the module text). Needs
    /// RBAC `action_view` on the action. An unknown action is StackStorm's 404.
    pub async fn action_secret_parameters(
        &self,
        cred: &Credential,
        action_ref: &str,
    ) -> Result<Vec<String>, St2Error> {
        if action_ref.is_empty() || action_ref.len() > MAX_REF_LEN {
            let shown: String = action_ref.chars().take(40).collect();
            return Err(St2Error::api(
                400,
                format!("`{shown}` is not an action reference"),
            ));
        }
        let url = format!(
            "{}/actions/views/parameters/{}",
            self.api_url(),
            utf8_percent_encode(action_ref, REF_SAFE)
        );
        let req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
        let body = self
            .exchange("actions_parameters_view", req, StatusCode::OK)
            .await?;
        serde_json::from_slice::<ActionParametersView>(&body)
            .map(|view| view.secret_parameters())
            .map_err(|e| St2Error::Decode(format!("action parameters: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(v: Value) -> ActionParametersView {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn secret_parameters_are_found_as_st2_finds_them() {
        let v = view(json!({"parameters": {
            "cmd": {"type": "string", "required": true},
            "password": {"type": "string", "secret": true},
            "sudo_password": {"type": "string", "secret": "yes"},
            "not_secret": {"type": "string", "secret": false},
            "empty_string": {"type": "string", "secret": ""},
            "config": {"type": "object", "properties": {
                "host": {"type": "string"},
                "auth": {"type": "object", "properties": {"key": {"type": "string", "secret": true}}}
            }},
            "tokens": {"type": "array", "items": {"type": "string", "secret": 1}},
            "plain_list": {"type": "array", "items": {"type": "string"}},
            "odd": "not a spec",
            "odd2": {"type": ["string"], "secret": null}
        }}));
        assert_eq!(
            v.secret_parameters(),
            ["password", "sudo_password", "config", "tokens"]
        );
    }

    #[test]
    fn odd_answers_read_as_no_parameters() {
        for body in [
            json!({}),
            json!({"parameters": null}),
            json!({"parameters": [1]}),
        ] {
            assert!(view(body).secret_parameters().is_empty());
        }
        let deep = (0..100).fold(
            json!({"type": "string", "secret": true}),
            |inner, _| json!({"type": "array", "items": inner}),
        );
        assert!(view(json!({"parameters": {"deep": deep}}))
            .secret_parameters()
            .is_empty());
    }

    #[test]
    fn values_of_secret_parameters() {
        let params = json!({"user": "bob", "password": "hunter2", "pin": 1234,
                            "flag": true, "nested": {"a": ["x1", {"b": "y2"}], "c": null}});
        let params = params.as_object().cloned().unwrap_or_default();
        let names = ["password", "pin", "flag", "nested", "missing"].map(String::from);
        assert_eq!(
            secret_parameter_values(&params, &names),
            ["hunter2", "1234", "x1", "y2"]
        );
    }
}

/// The client against the emulator (StackStorm's API as `src/emulator` models it).
#[cfg(all(test, feature = "emulator"))]
mod emulator_tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use crate::emulator::{Emulator, EmulatorConfig};
    use crate::metrics::Metrics;
    use crate::st2::client::{St2Client, St2Endpoints, DEFAULT_ALIAS_LIST_BYTES};
    use crate::st2::{Credential, CredentialKind, St2Error};

    #[actix_web::test]
    async fn secret_parameters_of_actions_and_runners() {
        let em = match Emulator::start(EmulatorConfig {
            background_interval: None,
            ..EmulatorConfig::default()
        })
        .await
        {
            Ok(em) => em,
            Err(e) => panic!("emulator did not start: {e}"),
        };
        let tls = match crate::tls::client_config(true, None) {
            Ok(t) => t,
            Err(e) => panic!("tls: {e}"),
        };
        let client = St2Client::new(
            &St2Endpoints {
                api_url: em.api_url(),
                auth_url: em.auth_url(),
                stream_url: em.stream_url(),
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
                stream_keepalive: None,
                alias_list_max_bytes: DEFAULT_ALIAS_LIST_BYTES,
            },
            tls,
            Metrics::new(),
        );
        let token = em.issue_token("st2admin", "Ch@ngeMe").unwrap_or_default();
        let cred = Credential::new(CredentialKind::Token, SecretString::from(token), 0);
        let secret = client
            .action_secret_parameters(&cred, "ops.set_password")
            .await;
        assert_eq!(secret, Ok(vec!["password".to_string()]));
        // Runner parameters count: `core.remote`'s come from `remote-shell-cmd`.
        let mut remote = client
            .action_secret_parameters(&cred, "core.remote")
            .await
            .unwrap_or_default();
        remote.sort();
        assert_eq!(
            remote,
            ["passphrase", "password", "private_key", "sudo_password"]
        );
        assert_eq!(
            client.action_secret_parameters(&cred, "ops.deploy").await,
            Ok(Vec::new())
        );
        match client.action_secret_parameters(&cred, "ops.nothing").await {
            Err(St2Error::Api {
                status: 404,
                faultstring,
                ..
            }) => {
                assert!(faultstring.contains("ops.nothing"), "{faultstring}");
            }
            other => panic!("unexpected: {other:?}"),
        }
        // Odd refs are encoded, never spliced into the path.
        assert!(matches!(
            client.action_secret_parameters(&cred, "a/../../x y").await,
            Err(St2Error::Api { status: 404, .. })
        ));
        assert!(matches!(
            client.action_secret_parameters(&cred, "").await,
            Err(St2Error::Api { status: 400, .. })
        ));
    }
}
