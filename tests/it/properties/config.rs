//! The configuration file (`stormbridge::config::load_from_str`).
//!
//! * **Any TOML-ish text** — the shipped example and the test suites' configurations for
//!   every backend, with TOML syntax spliced in, cut, doubled — loads or is refused without
//!   panicking, in bounded time; every problem names a key (non-empty, and either a section
//!   of the file, a dotted path into one, or `config` for text that is not TOML at all) and
//!   says why.
//! * **Any well-formed TOML with wrong values** — the same configurations with keys deleted,
//!   values retyped, emptied, oversized, unknown keys added — is refused with problems that
//!   name keys the same way, or accepted.

use proptest::prelude::*;
use serde_json::Value;
use stormbridge::config::{load_from_str, ConfigError};

use super::{apply_json, check, json_edit, mutated_text, timed};

const BASE: &str = r#"
[st2]
api_url = "https://st2.example.com/api/v1"
web_url = "https://st2.example.com"
route_key = "stormbridge"
stream_idle_refresh = 150
[st2.credentials]
api_key = "0123456789abcdef"

[auth]
mode = "standalone"

[http]
listen = "127.0.0.1:3141"

[log]
level = "info"

[results]
grace = 30

[access]
default = "deny"
admins = ["console:ops-lead"]
[access.groups]
operators = ["console:ops-lead", "slack:U0ALICE"]
[[access.rules]]
builtins = ["help", "whoami"]
action = "allow"
[[access.rules]]
packs = ["core", "ops"]
users = ["@operators"]
rooms = ["console:ops", "direct"]
action = "allow"
"#;

const CHATS: &[&str] = &[
    "[[chat]]\nname = \"console\"\nbackend = \"console\"\nuser_id = \"ops-lead\"\nroom = \"ops\"\n",
    "[[chat]]\nname = \"irc\"\nbackend = \"irc\"\nserver = \"127.0.0.1\"\nport = 6667\nnick = \"stormbridge\"\nchannels = [\"#ops\"]\n",
    "[[chat]]\nname = \"xmpp\"\nbackend = \"xmpp\"\njid = \"stormbot@localhost\"\npassword = \"pw\"\nserver = \"127.0.0.1:5222\"\ntls = \"plaintext\"\nrooms = [\"ops@conference.localhost\"]\nnick = \"stormbot\"\n",
    "[[chat]]\nname = \"mx\"\nbackend = \"matrix\"\nhomeserver = \"https://matrix.example.org\"\naccess_token = \"syt_x\"\nrooms = [\"#ops:example.org\"]\nmsgtype = \"text\"\n",
    "[[chat]]\nname = \"mm\"\nbackend = \"mattermost\"\nurl = \"https://mm.example.com\"\ntoken = \"tok\"\nteam = \"ops-team\"\n",
    "[[chat]]\nname = \"slack\"\nbackend = \"slack\"\nmode = \"socket\"\napp_token = \"xapp-1\"\nbot_token = \"xoxb-1\"\nchannels = [\"C0OPS\"]\n",
    "[[chat]]\nname = \"slackev\"\nbackend = \"slack\"\nmode = \"events\"\nbot_token = \"xoxb-1\"\nsigning_secret = \"s3cret\"\n",
    "[[chat]]\nname = \"dc\"\nbackend = \"discord\"\ntoken = \"Bot x\"\n",
];

fn seeds() -> Vec<String> {
    let mut out: Vec<String> = CHATS.iter().map(|c| format!("{BASE}{c}")).collect();
    out.push(include_str!("../../../config/example.toml").to_owned());
    out.push(format!("{BASE}{}", CHATS.concat()));
    out
}

const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "[st2]",
    "[[chat]]",
    "[access.groups]",
    "=",
    " = ",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "#",
    "\n",
    "\r\n",
    "\\",
    "\\u0000",
    "\\uD800",
    ",",
    ".",
    "{",
    "}",
    "{}",
    "[]",
    "inf",
    "nan",
    "-0",
    "0x1F",
    "1979-05-27T07:32:00Z",
    "99999999999999999999",
    "true",
    "api_url",
    "backend",
    "name",
    "mode",
    "listen",
    "\u{feff}",
    "\u{0}",
];

/// Checks what every refusal must be: problems, each naming a key and a reason.
fn names_keys(e: &ConfigError, text: &str) -> Result<(), TestCaseError> {
    prop_assert!(!e.problems.is_empty(), "an error without problems");
    for p in &e.problems {
        prop_assert!(
            !p.key.trim().is_empty(),
            "a problem without a key: {p:?}\n{text}"
        );
        prop_assert!(
            !p.reason.trim().is_empty(),
            "a problem without a reason: {p:?}"
        );
    }
    Ok(())
}

#[test]
fn any_toml_ish_text_loads_or_names_the_problem_keys() {
    check(
        "config::text",
        96,
        mutated_text(seeds(), TOKENS.to_vec(), 4),
        |text| {
            let loaded = timed("loading a configuration", || {
                load_from_str(&text, &stormbridge::backends::registry::REGISTRY)
            })?;
            if let Err(e) = loaded {
                names_keys(&e, &text)?;
            }
            Ok(())
        },
    );
}

/// A TOML document as JSON (for the JSON mutations), and back; TOML has no null.
fn to_json(text: &str) -> Value {
    let doc: toml::Value = toml::from_str(text).expect("seed is TOML");
    serde_json::to_value(doc).expect("TOML as JSON")
}

fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Null => Value::String(String::new()),
        Value::Array(a) => Value::Array(a.into_iter().map(drop_nulls).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, drop_nulls(v))).collect()),
        v => v,
    }
}

const KEYS: &[&str] = &[
    "st2",
    "api_url",
    "credentials",
    "password",
    "token",
    "api_key",
    "api_key_file",
    "auth",
    "mode",
    "public_url",
    "http",
    "listen",
    "tls_cert",
    "store",
    "backend",
    "path",
    "key_file",
    "log",
    "level",
    "format",
    "results",
    "grace",
    "max_pending",
    "access",
    "default",
    "rules",
    "groups",
    "admins",
    "action",
    "users",
    "rooms",
    "chat",
    "name",
    "bot",
    "prefix",
    "supervisor",
    "restart_backoff_initial_ms",
];

#[test]
fn wrong_values_are_refused_naming_their_keys() {
    let docs: Vec<Value> = seeds().iter().map(|s| to_json(s)).collect();
    let strategy = (
        proptest::sample::select(docs),
        proptest::collection::vec(json_edit(KEYS.to_vec()), 1..4),
    );
    check("config::values", 96, strategy, |(doc, edits)| {
        let mutated = drop_nulls(apply_json(&doc, &edits));
        let Ok(toml_doc) = toml::Value::try_from(&mutated) else {
            return Ok(());
        };
        let Ok(text) = toml::to_string(&toml_doc) else {
            return Ok(());
        };
        let loaded = timed("loading a configuration", || {
            load_from_str(&text, &stormbridge::backends::registry::REGISTRY)
        })?;
        if let Err(e) = loaded {
            names_keys(&e, &text)?;
            // Each key is the file's: `config` (the text as a whole), a top-level table of
            // the document, or a dotted path that starts with one.
            let sections: Vec<String> = mutated
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for p in &e.problems {
                let head = p.key.split(['.', '[']).next().unwrap_or_default();
                prop_assert!(
                    head == "config"
                        || sections.iter().any(|s| s == head || s == &p.key)
                        // A blank key (`"" = …`) is named by its quoted form and what it is.
                        || sections.iter().any(|s| {
                            s.trim().is_empty() && p.key == format!("{s:?} (a blank top-level key)")
                        })
                        || [
                            "st2",
                            "bot",
                            "auth",
                            "http",
                            "store",
                            "log",
                            "supervisor",
                            "results",
                            "chat",
                            "access"
                        ]
                        .contains(&head),
                    "problem key {:?} names nothing in the file: {p:?}\n{text}",
                    p.key
                );
            }
        }
        Ok(())
    });
}

#[test]
fn an_empty_top_level_key_is_named() {
    // Found by `config::values`: `"" = ""` at the top of an otherwise valid file was refused
    // with a problem whose key was "" (the unknown section's own, empty, name), so the
    // message named no key.
    let text = format!("\"\" = \"\"\n{BASE}{}", CHATS[0]);
    let e = load_from_str(&text, &stormbridge::backends::registry::REGISTRY)
        .expect_err("an unknown section is refused");
    for p in &e.problems {
        assert!(!p.key.trim().is_empty(), "a problem without a key: {p:?}");
    }
}
