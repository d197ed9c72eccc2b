//! The corpus: texts that must be masked (with the secret that must not survive) and
//! ordinary chat and ops text that must pass unchanged.

use super::{RedactConfig, Redactor, DEFAULT_MASK};

/// `(text, secret)`: the text is changed, the mask appears, and `secret` is gone.
const TRUE_POSITIVES: &[(&str, &str)] = &[
    // Private keys.
    (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1x2y3z\nabcDEF==\n-----END RSA PRIVATE KEY-----\ndone",
        "MIIEowIBAAKCAQEA1x2y3z",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAA",
    ),
    (
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49 (cut by a length limit",
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49",
    ),
    (
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk\n-----END EC PRIVATE KEY-----",
        "MHcCAQEEIBkg4LVWM9nuwNSk",
    ),
    (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF0pgpSecretMaterial\n-----END PGP PRIVATE KEY BLOCK-----",
        "lQOYBF0pgpSecretMaterial",
    ),
    // Authorization and bearer tokens.
    ("> Authorization: Bearer abc123", "abc123"),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNzd29yZA=="),
    ("headers: {\"authorization\": \"Token 9f8e7d6c5b4a\"}", "9f8e7d6c5b4a"),
    ("sent with Bearer 0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    ("bearer AbCdEfGhIjKlMnOpQrStUv", "AbCdEfGhIjKlMnOpQrStUv"),
    // Cloud and platform tokens.
    ("access key AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
    ("session ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "export AWS_SECRET_ACCESS_KEY=\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("cloned with ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("gho_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "gho_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    (
        "GH=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",
    ),
    ("bot token xoxb-1234567890-0987654321-AbCdEfGhIjKl", "xoxb-1234567890-0987654321-AbCdEfGhIjKl"),
    ("xoxp-2222222222-3333333333-444444444444-abcdef0123", "xoxp-2222222222-3333333333-444444444444-abcdef0123"),
    ("app token xapp-1-A0123456789-0123456789012-abcdef", "xapp-1-A0123456789-0123456789012-abcdef"),
    (
        "posting to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX now",
        "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ),
    ("maps key AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    (
        "id_token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    ),
    // StackStorm's own credentials, labelled.
    ("St2-Api-Key: ZjM5ZTc1YjQ4OGE0NGYx", "ZjM5ZTc1YjQ4OGE0NGYx"),
    ("X-Auth-Token: 5e86421776544f4da9a38327e0c8ad4b", "5e86421776544f4da9a38327e0c8ad4b"),
    ("st2 login ok, ST2_AUTH_TOKEN=abcd1234ef", "abcd1234ef"),
    ("GET /api/v1/executions?api_key=Yzk5ZmFmMzA&limit=5", "Yzk5ZmFmMzA"),
    // Generic labelled secrets.
    ("password=hunter2", "hunter2"),
    ("passwd: correct-horse", "correct-horse"),
    ("DB_PASSWORD=s3cr3t!", "s3cr3t!"),
    ("secret=\"two words inside\"", "two words inside"),
    ("token='abc def 123'", "abc def 123"),
    ("{\"user\": \"bob\", \"password\": \"p@ss \\\"w0rd\\\"\"}", "p@ss"),
    ("{'username': 'bob', 'password': 'hunter2'}", "hunter2"),
    ("result: {\\\"token\\\": \\\"tok-987654\\\"}", "tok-987654"),
    ("client_secret: 8f7e6d5c4b3a", "8f7e6d5c4b3a"),
    ("mysql -u root --password Sup3rS3cret -e 'select 1'", "Sup3rS3cret"),
    ("config => {:api_key => \"k-123456\"}", "k-123456"),
    // Credentials in URLs.
    ("cloning https://bob:s3cr3tpw@git.example.com/org/repo.git", "s3cr3tpw"),
    ("DATABASE_URL postgres://app:pg-pass-99@db:5432/app", "pg-pass-99"),
];

/// Texts that must come back unchanged (and borrowed).
const FALSE_POSITIVES: &[&str] = &[
    "deploy web1 to prod",
    "Deploying web to prod... (execution 5f1d2a3b4c5d6e7f8a9b0c1d)",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b merged",
    "request id 0f8fad5b-d9cb-469f-a165-70867728950e",
    "started 2024-05-01T10:00:00Z, finished 2024-05-01 10:00:05.123+00:00",
    "password reset instructions sent",
    "the token was rotated",
    "Bearer of bad news: the build failed",
    "the bearer token is in the vault",
    "base64 of hello is aGVsbG8gd29ybGQ= and that is fine",
    "see https://st2.example.com:443/#/history/5f1d2a3b4c5d6e7f8a9b0c1d/general",
    "ssh://git@github.com/org/repo.git and mailto:ops@example.com",
    "env=prod count=3 region=eu-west-1 token_count=3 max_tokens=4096",
    "password_policy=strict secret_name=db-creds",
    "**bold** _italic_ `code` ~~strike~~ [link](https://example.com)",
    "<@U123ABC> asked in <#C024BE91L|ops>: <https://example.com|docs>",
    "run core.local cmd=date on web1 via linux.date",
    "parameters: {\"password\": {\"type\": \"string\", \"secret\": true}}",
    "secret: true",
    "password: ********",
    "password=[redacted]",
    "set password for {{user}} to {{password}}",
    "export TOKEN=${TOKEN}",
    "Reset your password: https://example.com/reset",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "AKIA is the prefix of AWS key ids; AKIASHORT is not one",
    "xAKIAIOSFODNN7EXAMPLEx is glued to other letters",
    "ghp_ tokens and xoxb- tokens are revoked on sight",
    "eyJhbGciOi is only a header",
    "tokens: 5 remaining, passwords: 2 expired",
    "the password is required and the token is optional",
    "--password-file /etc/secret.txt",
    "http://localhost:8080/api and host:port pairs like db:5432",
    "Status: succeeded (1s elapsed)\nstdout: ok\nstderr: ",
    "日本語のメッセージ — ünïcødé — emoji 🔑 ok",
    "",
];

fn redactor() -> Redactor {
    match Redactor::new(&RedactConfig::default()) {
        Ok(r) => r,
        Err(p) => panic!("the default configuration is refused: {p:?}"),
    }
}

#[test]
fn true_positives_are_masked() {
    assert!(TRUE_POSITIVES.len() >= 25);
    let r = redactor();
    for (text, secret) in TRUE_POSITIVES {
        assert!(text.contains(secret), "bad case: {text:?} lacks {secret:?}");
        let out = r.redact(text, &[]);
        assert!(
            out.contains(DEFAULT_MASK),
            "not masked: {text:?} -> {out:?}"
        );
        assert!(
            !out.contains(secret),
            "{secret:?} survived: {text:?} -> {out:?}"
        );
    }
}

#[test]
fn false_positives_pass_unchanged() {
    assert!(FALSE_POSITIVES.len() >= 25);
    let r = redactor();
    for text in FALSE_POSITIVES {
        let out = r.redact(text, &[]);
        assert!(
            matches!(out, std::borrow::Cow::Borrowed(_)),
            "changed: {text:?} -> {out:?}"
        );
    }
}

/// What is kept around a secret: the key, header, scheme, user and host.
#[test]
fn only_the_secret_is_replaced() {
    let r = redactor();
    for (text, want) in [
        ("password=hunter2 next", "password=[redacted] next"),
        (
            "Authorization: Bearer abc123",
            "Authorization: Bearer [redacted]",
        ),
        ("\"token\": \"a b\"", "\"token\": \"[redacted]\""),
        (
            "https://bob:pw@host/x?api_key=k1k2&env=prod",
            "https://bob:[redacted]@host/x?api_key=[redacted]&env=prod",
        ),
        ("a\n-----BEGIN PRIVATE KEY-----\nxyz", "a\n[redacted]"),
        (
            "k: -----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY----- ok",
            "k: [redacted] ok",
        ),
        ("St2-Api-Key: abcdef", "St2-Api-Key: [redacted]"),
        ("--token tok1234 --verbose", "--token [redacted] --verbose"),
        ("key AKIAIOSFODNN7EXAMPLE.", "key [redacted]."),
        (
            r#"{"password": "p@ss \"w0rd\"", "user": "bob"}"#,
            r#"{"password": "[redacted]", "user": "bob"}"#,
        ),
        (
            r#"{\"token\": \"tok-987654\", \"n\": 1}"#,
            r#"{\"token\": \"[redacted]\", \"n\": 1}"#,
        ),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "Authorization: Bearer [redacted]",
        ),
    ] {
        assert_eq!(r.redact(text, &[]), want, "{text:?}");
    }
}
