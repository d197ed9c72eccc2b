//! Checking that a request really comes from the Bot Connector service, as
//! <https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication>
//! ("Authenticate requests from the Bot Connector service to your bot") lists it:
//!
//! 1. the token comes in the `Authorization` header with the `Bearer` scheme;
//! 2. it is a JWT ([`jsonwebtoken`] reads it);
//! 3. its issuer is `https://api.botframework.com` ([`ISSUER`]);
//! 4. its audience is the bot's Microsoft App ID;
//! 5. it is within its validity period, with five minutes of clock skew ([`MAX_SKEW_SECS`]);
//! 6. it is signed, with an algorithm the OpenID metadata names (RS256), by a key of the
//!    metadata's `jwks_uri` document ([`KeySet`]); a key that lists `endorsements` must
//!    endorse the activity's `channelId`;
//! 7. its `serviceUrl` claim equals the activity's `serviceUrl`.
//!
//! A request without a token, or with one that is not the Bot Connector's (malformed, badly
//! signed, of another issuer or audience, expired) is refused 401; a genuine token that does
//! not fit the activity it came with (another `serviceUrl`, a channel its key does not
//! endorse) is refused 403, as the page asks. Nothing here does I/O: the keys are fetched by
//! the connection (`api.rs`) and handed in.

use std::collections::HashMap;

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// The Bot Connector's issuer.
pub const ISSUER: &str = "https://api.botframework.com";

/// Clock skew allowed on `exp` and `nbf`, in seconds ("industry-standard clock-skew is 5
/// minutes").
pub const MAX_SKEW_SECS: u64 = 300;

/// The one signing algorithm the Bot Connector's metadata lists
/// (`id_token_signing_alg_values_supported`).
pub const ALGORITHM: &str = "RS256";

/// Why a request was refused; its status is 401 or 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization: Bearer …` header.
    #[error("no bearer token")]
    Missing,
    /// Not a JWT the bridge can read, or not RS256 with a key id.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed by a key the bridge does not have (after refreshing its keys, if it might).
    #[error("token signed by an unknown key {0:?}")]
    UnknownKey(String),
    /// Not the Bot Connector's token: bad signature, issuer, audience or validity.
    #[error("token refused: {0}")]
    Invalid(String),
    /// A genuine token that does not fit this activity.
    #[error("token does not fit the activity: {0}")]
    Forbidden(String),
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Forbidden(_) => 403,
            _ => 401,
        }
    }
}

/// The token out of an `Authorization` header value (`Bearer <token>`, the scheme in any
/// case).
pub fn bearer(header: &str) -> Result<&str, Refusal> {
    let header = header.trim();
    let (scheme, token) = header.split_once(' ').ok_or(Refusal::Missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Refusal::Missing);
    }
    Ok(token)
}

/// The id of the key a token names (`kid`), read from its header before anything is
/// trusted; only RS256 tokens are read further.
pub fn key_id(token: &str) -> Result<String, Refusal> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if header.alg != Algorithm::RS256 {
        return Err(Refusal::Malformed(format!(
            "algorithm {:?}, not {ALGORITHM}",
            header.alg
        )));
    }
    header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Refusal::Malformed("no key id (kid)".into()))
}

/// The Bot Connector's OpenID metadata, as far as the bridge reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct OpenIdMetadata {
    /// Where the signing keys are.
    pub jwks_uri: String,
    /// The signing algorithms used; RS256 must be among them.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

impl OpenIdMetadata {
    /// Reads the metadata document; the keys' address must be http(s) and RS256 listed.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let m: OpenIdMetadata =
            serde_json::from_slice(body).map_err(|e| format!("OpenID metadata: {e}"))?;
        if !super::config::http_url_ok(&m.jwks_uri) {
            return Err("OpenID metadata: jwks_uri is not an http(s) URL".into());
        }
        if !m.id_token_signing_alg_values_supported.is_empty()
            && !m
                .id_token_signing_alg_values_supported
                .iter()
                .any(|a| a == ALGORITHM)
        {
            return Err(format!(
                "OpenID metadata: {ALGORITHM} is not a signing algorithm"
            ));
        }
        Ok(m)
    }
}

/// One signing key.
#[derive(Clone)]
struct SigningKey {
    key: DecodingKey,
    /// The channels this key endorses, when it says (`endorsements`).
    endorsements: Option<Vec<String>>,
}

/// The keys from the metadata's `jwks_uri`, by key id.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, SigningKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeySet").field("kids", &ids).finish()
    }
}

impl KeySet {
    /// Reads a JWK Set (RFC 7517) with the Bot Connector's `endorsements` on each key. Keys
    /// the bridge cannot use (not RSA, for encryption, without `kid`, `n` or `e`) are
    /// skipped; a document without any usable key is an error.
    pub fn from_jwks(body: &[u8]) -> Result<Self, String> {
        let doc: Value = serde_json::from_slice(body).map_err(|e| format!("JWK set: {e}"))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWK set: no `keys` list")?;
        let text = |k: &Value, name: &str| {
            k.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mut keys = HashMap::new();
        for k in list {
            let usable = text(k, "kty").as_deref() == Some("RSA")
                && text(k, "use").is_none_or(|u| u == "sig");
            let (Some(kid), Some(n), Some(e)) = (text(k, "kid"), text(k, "n"), text(k, "e")) else {
                continue;
            };
            if !usable {
                continue;
            }
            let Ok(key) = DecodingKey::from_rsa_components(&n, &e) else {
                continue;
            };
            let endorsements = k.get("endorsements").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
            keys.insert(kid, SigningKey { key, endorsements });
        }
        if keys.is_empty() {
            return Err("JWK set: no usable RSA signing key".into());
        }
        Ok(Self { keys })
    }

    /// Whether the set has key `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// How many keys it has.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The claims the bridge reads.
#[derive(Debug, Deserialize)]
struct Claims {
    /// The service URL the token was issued for (`serviceurl` in the tokens the Bot Connector
    /// sends; the page writes `serviceUrl`: both are read).
    #[serde(default, alias = "serviceUrl")]
    serviceurl: Option<String>,
}

/// A token that passed steps 1–6 and waits for the activity it came with (step 7 and the
/// endorsement).
#[derive(Debug)]
pub struct Verified {
    service_url: Option<String>,
    endorsements: Option<Vec<String>>,
}

impl Verified {
    /// Whether the token fits the activity: the same `serviceUrl`, and a channel the key
    /// endorses (where it lists endorsements).
    pub fn admits(&self, service_url: &str, channel_id: &str) -> Result<(), Refusal> {
        match self.service_url.as_deref() {
            Some(claim) if claim == service_url => {}
            Some(_) => {
                return Err(Refusal::Forbidden(
                    "its serviceUrl claim is not the activity's serviceUrl".into(),
                ))
            }
            None => return Err(Refusal::Forbidden("it has no serviceUrl claim".into())),
        }
        if let Some(endorsed) = &self.endorsements {
            if !endorsed.iter().any(|c| c == channel_id) {
                return Err(Refusal::Forbidden(format!(
                    "its key does not endorse channel {channel_id:?}"
                )));
            }
        }
        Ok(())
    }
}

/// Checks `token` (whose key id is `kid`, from [`key_id`]) against `keys` and the bot's
/// `app_id`, at the current time.
pub fn verify(token: &str, kid: &str, keys: &KeySet, app_id: &str) -> Result<Verified, Refusal> {
    let key = keys
        .keys
        .get(kid)
        .ok_or_else(|| Refusal::UnknownKey(kid.to_owned()))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = MAX_SKEW_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[app_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
        let why = match e.kind() {
            ErrorKind::InvalidSignature => "bad signature".to_owned(),
            ErrorKind::ExpiredSignature => "expired".to_owned(),
            ErrorKind::ImmatureSignature => "not valid yet (nbf)".to_owned(),
            ErrorKind::InvalidIssuer => format!("issuer is not {ISSUER}"),
            ErrorKind::InvalidAudience => "audience is not the bot's app id".to_owned(),
            ErrorKind::InvalidAlgorithm => format!("algorithm is not {ALGORITHM}"),
            ErrorKind::MissingRequiredClaim(c) => format!("no `{c}` claim"),
            _ => e.to_string(),
        };
        Refusal::Invalid(why)
    })?;
    Ok(Verified {
        service_url: data.claims.serviceurl,
        endorsements: key.endorsements.clone(),
    })
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! The fixed test key pairs of `tests/fixtures/teams/` and a signer like the Bot
    //! Connector's, for the unit tests.

    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{json, Value};

    pub const KEY_1: &str = include_str!("../../../tests/fixtures/teams/connector-key-1.pem");
    pub const KEY_2: &str = include_str!("../../../tests/fixtures/teams/connector-key-2.pem");

    /// The DER inside a PEM text.
    pub fn der(pem: &str) -> Vec<u8> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("PEM body")
    }

    /// A JWK for the key in `pem`, with `endorsements`.
    pub fn jwk(pem: &str, kid: &str, endorsements: &[&str]) -> Value {
        let pair = ring::signature::RsaKeyPair::from_der(&der(pem)).expect("RSA key");
        let public = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"kty": "RSA", "use": "sig", "kid": kid, "n": b64(&public.n), "e": b64(&public.e),
               "endorsements": endorsements})
    }

    /// A token signed with `pem` under key id `kid`, with `claims`.
    pub fn sign(pem: &str, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&der(pem))).expect("signs")
    }

    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    }

    /// The claims of a Bot Connector token for `app_id` and `service_url`, valid now.
    pub fn claims(app_id: &str, service_url: &str) -> Value {
        let now = now();
        json!({"serviceurl": service_url, "nbf": now - 10, "exp": now + 3600,
               "iss": super::ISSUER, "aud": app_id})
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{test_keys::*, *};

    const APP: &str = "00000000-0000-0000-0000-0000000000a1";
    const SERVICE: &str = "https://smba.trafficmanager.net/emea/";

    fn keys(list: &[(&str, &str)]) -> KeySet {
        let keys: Vec<Value> = list
            .iter()
            .map(|(pem, kid)| jwk(pem, kid, &["msteams", "skype"]))
            .collect();
        KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn check(token: &str, keys: &KeySet) -> Result<(), Refusal> {
        let kid = key_id(token)?;
        verify(token, &kid, keys, APP)?.admits(SERVICE, "msteams")
    }

    #[test]
    fn a_bot_connector_token_passes() {
        let set = keys(&[(KEY_1, "k1")]);
        let token = sign(KEY_1, "k1", &claims(APP, SERVICE));
        assert_eq!(check(&token, &set), Ok(()));
        // Within the five minutes of skew on both ends.
        let mut c = claims(APP, SERVICE);
        c["exp"] = json!(now() - 200);
        c["nbf"] = json!(now() + 200);
        assert_eq!(check(&sign(KEY_1, "k1", &c), &set), Ok(()));
        // The page's spelling of the claim is read too.
        let mut c = claims(APP, SERVICE);
        c.as_object_mut().unwrap().remove("serviceurl");
        c["serviceUrl"] = json!(SERVICE);
        assert_eq!(check(&sign(KEY_1, "k1", &c), &set), Ok(()));
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let set = keys(&[(KEY_1, "k1")]);
        // Signed with another key under the known key's id.
        let forged = sign(KEY_2, "k1", &claims(APP, SERVICE));
        assert!(matches!(check(&forged, &set), Err(Refusal::Invalid(w)) if w == "bad signature"));
        // A genuine token whose payload was changed.
        let token = sign(KEY_1, "k1", &claims(APP, SERVICE));
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = sign(KEY_1, "k1", &claims("another-app", SERVICE));
        parts[1] = other.split('.').nth(1).unwrap();
        let spliced = parts.join(".");
        assert!(matches!(check(&spliced, &set), Err(Refusal::Invalid(_))));
        // Unsigned tokens ("alg": "none") and HMAC ones never get as far as a key.
        let none = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                br#"{"alg":"none","kid":"k1"}"#
            ),
            token.split('.').nth(1).unwrap()
        );
        assert!(matches!(check(&none, &set), Err(Refusal::Malformed(_))));
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                kid: Some("k1".into()),
                ..jsonwebtoken::Header::new(Algorithm::HS256)
            },
            &claims(APP, SERVICE),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(matches!(check(&hs, &set), Err(Refusal::Malformed(_))));
        for junk in ["", "abc", "a.b.c", "...."] {
            assert!(
                matches!(check(junk, &set), Err(Refusal::Malformed(_))),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_wrong_audience_or_issuer_is_refused() {
        let set = keys(&[(KEY_1, "k1")]);
        let other_app = sign(
            KEY_1,
            "k1",
            &claims("11111111-0000-0000-0000-000000000000", SERVICE),
        );
        assert!(
            matches!(check(&other_app, &set), Err(Refusal::Invalid(w)) if w.contains("audience"))
        );
        let mut c = claims(APP, SERVICE);
        c["iss"] = json!("https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/");
        let other_issuer = sign(KEY_1, "k1", &c);
        assert!(
            matches!(check(&other_issuer, &set), Err(Refusal::Invalid(w)) if w.contains("issuer"))
        );
        for missing in ["iss", "aud", "exp"] {
            let mut c = claims(APP, SERVICE);
            c.as_object_mut().unwrap().remove(missing);
            let token = sign(KEY_1, "k1", &c);
            assert!(
                matches!(check(&token, &set), Err(Refusal::Invalid(_))),
                "{missing}"
            );
        }
    }

    #[test]
    fn an_expired_or_future_token_is_refused() {
        let set = keys(&[(KEY_1, "k1")]);
        let mut c = claims(APP, SERVICE);
        c["exp"] = json!(now() - MAX_SKEW_SECS as i64 - 60);
        assert!(
            matches!(check(&sign(KEY_1, "k1", &c), &set), Err(Refusal::Invalid(w)) if w == "expired")
        );
        let mut c = claims(APP, SERVICE);
        c["nbf"] = json!(now() + MAX_SKEW_SECS as i64 + 60);
        assert!(
            matches!(check(&sign(KEY_1, "k1", &c), &set), Err(Refusal::Invalid(w)) if w.contains("nbf"))
        );
    }

    #[test]
    fn a_service_url_mismatch_or_unendorsed_channel_is_forbidden() {
        let set = keys(&[(KEY_1, "k1")]);
        let token = sign(KEY_1, "k1", &claims(APP, "https://attacker.example/"));
        let refusal = check(&token, &set).unwrap_err();
        assert!(matches!(refusal, Refusal::Forbidden(_)));
        assert_eq!(refusal.status(), 403);
        let mut c = claims(APP, SERVICE);
        c.as_object_mut().unwrap().remove("serviceurl");
        assert!(matches!(
            check(&sign(KEY_1, "k1", &c), &set),
            Err(Refusal::Forbidden(_))
        ));
        let token = sign(KEY_1, "k1", &claims(APP, SERVICE));
        let verified = verify(&token, "k1", &set, APP).unwrap();
        assert!(matches!(
            verified.admits(SERVICE, "webchat"),
            Err(Refusal::Forbidden(_))
        ));
    }

    #[test]
    fn an_unknown_key_is_accepted_once_the_refreshed_set_has_it() {
        let old = keys(&[(KEY_1, "k1")]);
        let token = sign(KEY_2, "k2", &claims(APP, SERVICE));
        let kid = key_id(&token).unwrap();
        assert_eq!(kid, "k2");
        let refusal = verify(&token, &kid, &old, APP).unwrap_err();
        assert_eq!(refusal, Refusal::UnknownKey("k2".into()));
        assert_eq!(refusal.status(), 401);
        let refreshed = keys(&[(KEY_1, "k1"), (KEY_2, "k2")]);
        assert_eq!(check(&token, &refreshed), Ok(()));
    }

    #[test]
    fn headers_documents_and_keys_are_read_strictly() {
        assert_eq!(bearer("Bearer abc"), Ok("abc"));
        assert_eq!(bearer("bearer  abc "), Ok("abc"));
        for bad in ["", "Bearer", "Bearer ", "Basic abc", "abc"] {
            assert_eq!(bearer(bad), Err(Refusal::Missing), "{bad:?}");
        }
        let meta = br#"{"issuer":"https://api.botframework.com","authorization_endpoint":"https://invalid.botframework.com","jwks_uri":"https://login.botframework.com/v1/.well-known/keys","id_token_signing_alg_values_supported":["RS256"],"token_endpoint_auth_methods_supported":["private_key_jwt"]}"#;
        let m = OpenIdMetadata::parse(meta).unwrap();
        assert_eq!(
            m.jwks_uri,
            "https://login.botframework.com/v1/.well-known/keys"
        );
        assert!(OpenIdMetadata::parse(br#"{"jwks_uri":"file:///etc/passwd"}"#).is_err());
        assert!(OpenIdMetadata::parse(
            br#"{"jwks_uri":"https://x/k","id_token_signing_alg_values_supported":["HS256"]}"#
        )
        .is_err());
        assert!(KeySet::from_jwks(br#"{"keys": []}"#).is_err());
        assert!(KeySet::from_jwks(br#"{"keys": [{"kty": "EC", "kid": "e"}]}"#).is_err());
        let mixed = json!({"keys": [
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": "a", "y": "b"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
            jwk(KEY_1, "k1", &["msteams"]),
        ]});
        let set = KeySet::from_jwks(mixed.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains("k1") && !set.contains("enc"));
    }
}
