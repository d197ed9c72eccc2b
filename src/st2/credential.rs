//! A StackStorm credential as sent on each request. Never printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// How the credential is presented to StackStorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A token: `X-Auth-Token` header.
    Token,
    /// An API key: `St2-Api-Key` header.
    ApiKey,
}

/// A credential plus the generation it belongs to, so a 401 can say *which* credential was
/// rejected and concurrent rejections cause one re-login, not one each.
#[derive(Clone)]
pub struct Credential {
    kind: CredentialKind,
    secret: SecretString,
    generation: u64,
}

impl Credential {
    /// A credential of `kind`; `generation` increases with every renewal.
    pub fn new(kind: CredentialKind, secret: SecretString, generation: u64) -> Self {
        Self {
            kind,
            secret,
            generation,
        }
    }

    /// Token or API key.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// Which renewal this is.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The header name and value to send. The value is secret: never log it.
    pub fn header(&self) -> (&'static str, &str) {
        let name = match self.kind {
            CredentialKind::Token => "X-Auth-Token",
            CredentialKind::ApiKey => "St2-Api-Key",
        };
        (name, self.secret.expose_secret())
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("secret", &"[redacted]")
            .field("generation", &self.generation)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let c = Credential::new(CredentialKind::Token, SecretString::from("s3cr3t-token"), 1);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(c.header(), ("X-Auth-Token", "s3cr3t-token"));
    }
}
