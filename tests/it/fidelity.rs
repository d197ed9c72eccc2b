//! The bridge against StackStorm's real behaviour, as the emulator models it from st2's
//! source: RBAC installs (the alias list read a page at a time, refused or malformed lists
//! keeping the last good one), execution links, st2's own alias matcher (the emulator's
//! independent port, asked through `POST /api/v1/actionalias/match`), notify rules that do
//! not cover the bridge's route, st2's parameter casting and schema errors, `{% %}` blocks
//! in result formats, and display-only formats.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use stormbridge::alias::{parse_alias_list, AliasIndex, Selection};
use stormbridge::emulator::{Emulator, DEFAULT_WEBUI_BASE_URL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{settings_for, with_test_aliases, Options, TestBridge, WAIT};

// ----- talking to the emulator as a client would ------------------------------------------

/// One request to the emulator's API as the bridge's StackStorm user (`st2admin`, see
/// `support::config_toml`): status and JSON body. Speaks HTTP/1.1 over a plain socket so
/// st2's close-delimited answers (behind its nginx) are read whole.
pub(crate) async fn st2_request(
    emulator: &Emulator,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let token = emulator
        .issue_token("st2admin", "Ch@ngeMe")
        .expect("st2admin can log in");
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        addr = emulator.addr(),
        len = body.len(),
    );
    let exchange = async {
        let mut sock = tokio::net::TcpStream::connect(emulator.addr()).await?;
        sock.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        sock.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the emulator answers in time")
        .expect("the emulator answers");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, payload) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let payload = if chunked {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    let value = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    (status, value)
}

/// A chunked body's data.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// StackStorm's own matcher (`POST /api/v1/actionalias/match`): `Ok((alias ref,
/// representation))` or `Err((status, faultstring))`.
async fn st2_match(emulator: &Emulator, command: &str) -> Result<(String, String), (u16, String)> {
    let (status, body) = st2_request(
        emulator,
        "POST",
        "/api/v1/actionalias/match",
        Some(&json!({"command": command})),
    )
    .await;
    if status == 200 {
        let alias = &body["actionalias"];
        Ok((
            format!(
                "{}.{}",
                alias["pack"].as_str().unwrap_or(""),
                alias["name"].as_str().unwrap_or("")
            ),
            body["representation"].as_str().unwrap_or("").to_owned(),
        ))
    } else {
        Err((
            status,
            body["faultstring"].as_str().unwrap_or("").to_owned(),
        ))
    }
}

/// An alias of pack `fid` running `fid.any` (an action taking any parameters).
fn fid_alias(name: &str, formats: Value) -> Value {
    json!({
        "id": format!("fid{name}"), "name": name, "pack": "fid", "ref": format!("fid.{name}"),
        "uid": format!("action_alias:fid:{name}"), "enabled": true, "action_ref": "fid.any",
        "description": format!("{name} (fidelity test)"), "formats": formats,
    })
}

/// `fid.any`: no parameter specs of its own, on a runner without any, so st2's schema
/// check accepts whatever an alias extracts.
fn any_action() -> Value {
    json!({"pack": "fid", "name": "any", "runner_type": "noop", "parameters": {}})
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Parameters as StackStorm ran them, without the `None` of groups that took no part.
fn without_none(p: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    p.iter()
        .filter(|(_, v)| *v != "None")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

// ----- 3. the bridge's matcher agrees with StackStorm's ----------------------------------

/// What StackStorm does with a command.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `/match` answers this alias and representation; `aliasexecution` with it extracts
    /// these parameters.
    Runs(
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    ),
    /// `/match`: "matched no patterns".
    NoMatch,
}

/// Aliases whose formats are where a naive matcher and st2's differ, with cases from st2's
/// own tests (`st2common/tests/unit/test_action_alias_utils.py`,
/// `test_util_actionalias_matching.py`) and the quirks of `ActionAliasFormatParser`.
fn matcher_aliases() -> Vec<Value> {
    vec![
        fid_alias("say", json!(["say {{msg}}"])),
        fid_alias(
            "deploy",
            json!([{"display": "deploy <app> [to <env>]",
                    "representation": ["deploy {{app}} to {{env=staging}}"]}]),
        ),
        fid_alias("acl", json!(["acl {{a}} {{b}} {{c}} {{d=1}}"])),
        fid_alias(
            "spaces",
            json!(["s {{a}} more {{ b }} more {{ c=99 }} more {{ d = 99 }}"]),
        ),
        fid_alias(
            "things",
            json!([
                "{{ p0='http' }} g {{ p1=p }} a {{ url }} {{ p2={'a':'b'} }} {{ p3={{ e.i }} }}"
            ]),
        ),
        fid_alias("captain", json!(["{{ captain }} is my captain"])),
        fid_alias("ghost", json!(["{{choice}} cross the {{target}}"])),
        fid_alias("feel", json!(["How do I feel? I feel... {{status}}!"])),
        fid_alias(
            "five",
            json!([{"display": "Number 5 is {{status}}",
                    "representation": ["Number 5 is {{status=alive}}"]}]),
        ),
        fid_alias("start", json!(["(?:start|^begin) {{svc}}"])),
        fid_alias(
            "issue",
            json!([r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)"]),
        ),
        fid_alias("status", json!(["^status {{svc}}"])),
        fid_alias("ping", json!(["ping {{host}}."])),
        fid_alias("show", json!(["show {{x}} (details)"])),
        fid_alias("cafe", json!(["café {{order}}"])),
        fid_alias("tag", json!([r"tag (?P<t>\w+)"])),
        fid_alias("note", json!(["note {{text}}"])),
        fid_alias("reboot", json!(["reboot {{host}}", "reboot {{host}} now"])),
        fid_alias("uptime", json!([r"uptime(?: on (?P<host>\S+))?"])),
    ]
}

/// Commands a chat user can type on one line, and what StackStorm makes of them.
const MATCHER_CASES: &[(&str, Expect)] = &[
    // Trailing key=value pairs are cut with a *global* str.replace: the same text earlier
    // in the command goes too.
    (
        "say x=1 then x=1",
        Expect::Runs("fid.say", "say {{msg}}", &[("msg", "then"), ("x", "1")]),
    ),
    (
        "say hello world",
        Expect::Runs("fid.say", "say {{msg}}", &[("msg", "hello world")]),
    ),
    // {{k=default}}: the default when the optional group is empty.
    (
        "deploy web to",
        Expect::Runs(
            "fid.deploy",
            "deploy {{app}} to {{env=staging}}",
            &[("app", "web"), ("env", "staging")],
        ),
    ),
    (
        "deploy web to prod",
        Expect::Runs(
            "fid.deploy",
            "deploy {{app}} to {{env=staging}}",
            &[("app", "web"), ("env", "prod")],
        ),
    ),
    ("deploy web", Expect::NoMatch),
    (
        "acl \"a1 a2\" \"b1\" \"c1\"",
        Expect::Runs(
            "fid.acl",
            "acl {{a}} {{b}} {{c}} {{d=1}}",
            &[("a", "a1 a2"), ("b", "b1"), ("c", "c1"), ("d", "1")],
        ),
    ),
    (
        "s one more two more three more",
        Expect::Runs(
            "fid.spaces",
            "s {{a}} more {{ b }} more {{ c=99 }} more {{ d = 99 }}",
            &[("a", "one"), ("b", "two"), ("c", "three"), ("d", "99")],
        ),
    ),
    (
        "g a http://google.com {{ execution.id }} p4='testing' p5={'a':'c'}",
        Expect::Runs(
            "fid.things",
            "{{ p0='http' }} g {{ p1=p }} a {{ url }} {{ p2={'a':'b'} }} {{ p3={{ e.i }} }}",
            &[
                ("p0", "http"),
                ("p1", "p"),
                ("url", "http://google.com"),
                ("p2", "{{ execution.id }}"),
                ("p3", "{{ e.i }}"),
                ("p4", "testing"),
                ("p5", "{'a':'c'}"),
            ],
        ),
    ),
    (
        "Malcolm Reynolds is my captain weirdo=\"River Tam\"",
        Expect::Runs(
            "fid.captain",
            "{{ captain }} is my captain",
            &[("captain", "Malcolm Reynolds"), ("weirdo", "River Tam")],
        ),
    ),
    (
        "Don't cross the streams",
        Expect::Runs(
            "fid.ghost",
            "{{choice}} cross the {{target}}",
            &[("choice", "Don't"), ("target", "streams")],
        ),
    ),
    // Regex metacharacters are regex: `?` makes the `l` optional, `.` is any character.
    ("How do I feel? I feel... alive!", Expect::NoMatch),
    (
        "How do I feel I feel--- alive!",
        Expect::Runs(
            "fid.feel",
            "How do I feel? I feel... {{status}}!",
            &[("status", "alive")],
        ),
    ),
    (
        "Number 5 is",
        Expect::Runs(
            "fid.five",
            "Number 5 is {{status=alive}}",
            &[("status", "alive")],
        ),
    ),
    // An anchor in the second branch only: st2 adds no `^\s*`, so the format is searched
    // anywhere; `^begin` never matches the command st2 pads with a space.
    (
        "please start web",
        Expect::Runs("fid.start", "(?:start|^begin) {{svc}}", &[("svc", "web")]),
    ),
    ("begin web", Expect::NoMatch),
    (
        "foo ASDF-1234",
        Expect::Runs(
            "fid.issue",
            r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)",
            &[("issue_key", "ASDF-1234")],
        ),
    ),
    ("bar foo ASDF-1234", Expect::NoMatch),
    ("foo ASDF-1234 bar", Expect::NoMatch),
    // A bare `^` meets the space st2 pads the command with.
    ("status web", Expect::NoMatch),
    (
        "ping web1!",
        Expect::Runs("fid.ping", "ping {{host}}.", &[("host", "web1")]),
    ),
    (
        "show a details",
        Expect::Runs("fid.show", "show {{x}} (details)", &[("x", "a")]),
    ),
    ("show a (details)", Expect::NoMatch),
    (
        "café crème brûlée",
        Expect::Runs("fid.cafe", "café {{order}}", &[("order", "crème brûlée")]),
    ),
    (
        "tag naïve",
        Expect::Runs("fid.tag", r"tag (?P<t>\w+)", &[("t", "naïve")]),
    ),
    ("tag ünï-cödé", Expect::NoMatch),
    // A combining accent is no word character to Python (`str.isalnum`), unlike Rust's `\w`.
    ("tag cafe\u{301}", Expect::NoMatch),
    (
        "tag café",
        Expect::Runs("fid.tag", r"tag (?P<t>\w+)", &[("t", "café")]),
    ),
    (
        "reboot web",
        Expect::Runs("fid.reboot", "reboot {{host}}", &[("host", "web")]),
    ),
    // An optional group of the format's own: StackStorm passes `None` for a group that
    // took no part (the bridge leaves it out).
    (
        "uptime on web1",
        Expect::Runs(
            "fid.uptime",
            r"uptime(?: on (?P<host>\S+))?",
            &[("host", "web1")],
        ),
    ),
    (
        "uptime",
        Expect::Runs("fid.uptime", r"uptime(?: on (?P<host>\S+))?", &[]),
    ),
    ("uptime on", Expect::NoMatch),
];

/// Commands only some chat platforms can carry (several lines).
const MULTILINE_CASES: &[(&str, Expect)] = &[
    (
        "note line one\nline two",
        Expect::Runs(
            "fid.note",
            "note {{text}}",
            &[("text", "line one\nline two")],
        ),
    ),
    (
        "note first\nsecond key=v",
        Expect::Runs(
            "fid.note",
            "note {{text}}",
            &[("text", "first\nsecond"), ("key", "v")],
        ),
    ),
];

/// StackStorm's matcher (the emulator's port) gives what st2's Python gives, and so does
/// the bridge's own index, for every case.
async fn assert_matchers_agree(
    emulator: &Emulator,
    index: &AliasIndex,
    command: &str,
    expect: Expect,
) {
    let st2 = st2_match(emulator, command).await;
    let bridge = index.select(command);
    match expect {
        Expect::Runs(alias, format, want) => {
            assert_eq!(
                st2,
                Ok((alias.to_owned(), format.to_owned())),
                "StackStorm's /match for {command:?}"
            );
            let Selection::Matched(m) = bridge else {
                panic!("the bridge's matcher for {command:?}: {bridge:?}");
            };
            assert_eq!(
                (m.alias.reference.as_str(), m.representation.as_str()),
                (alias, format),
                "the bridge's choice for {command:?}"
            );
            assert_eq!(
                m.params,
                vec![params(want)],
                "the bridge's parameters for {command:?}"
            );
        }
        Expect::NoMatch => {
            assert_eq!(
                st2,
                Err((400, format!("Command '{command}' matched no patterns"))),
                "StackStorm's /match for {command:?}"
            );
            assert!(
                matches!(bridge, Selection::NoMatch { .. }),
                "the bridge's matcher for {command:?}: {bridge:?}"
            );
        }
    }
}

fn index_of(aliases: &[Value]) -> AliasIndex {
    let (list, problems) = parse_alias_list(&Value::Array(aliases.to_vec())).expect("a list");
    assert!(problems.is_empty(), "{problems:?}");
    AliasIndex::build(list).0
}

fn matcher_options() -> Options {
    let mut opts = Options::default();
    opts.emulator.aliases = matcher_aliases();
    opts.emulator.actions = vec![any_action()];
    opts
}

#[actix_rt::test]
async fn the_bridge_runs_the_alias_and_parameters_stackstorms_own_matcher_finds() {
    let mut b = TestBridge::start_with(matcher_options()).await;
    b.wait_ready(200).await;
    let index = index_of(&matcher_aliases());
    for &(command, expect) in MATCHER_CASES.iter().chain(MULTILINE_CASES) {
        assert_matchers_agree(&b.emulator, &index, command, expect).await;
    }
    // Through chat: what StackStorm ran is what its matcher found.
    for &(command, expect) in MATCHER_CASES {
        let before = b.emulator.executions().len();
        b.say(&format!("!st2 {command}")).await;
        match expect {
            Expect::Runs(alias, format, want) => {
                b.line_containing("Started").await;
                let executions = b.emulator.executions();
                assert_eq!(executions.len(), before + 1, "{command:?}");
                let e = &executions[before];
                assert_eq!(e.alias_ref, alias, "{command:?}");
                assert_eq!(e.request["format"], format, "{command:?}");
                assert_eq!(e.request["command"], command, "{command:?}");
                assert_eq!(without_none(&e.parameters), params(want), "{command:?}");
            }
            Expect::NoMatch => {
                let reply = b.line_containing("No StackStorm command matches").await;
                assert!(reply.contains(command), "{reply}");
                assert_eq!(b.emulator.executions().len(), before, "{command:?}");
            }
        }
    }
}

#[actix_rt::test]
async fn several_lines_from_a_platform_that_carries_them_match_as_stackstorm_matches_them() {
    let slack = crate::slack::fake::FakeSlack::start().await;
    let mut opts = matcher_options();
    opts.extra_toml = slack.socket_toml();
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    for (i, &(command, expect)) in MULTILINE_CASES.iter().enumerate() {
        let Expect::Runs(alias, format, want) = expect else {
            unreachable!("every multi-line case runs")
        };
        slack
            .push(slack.message_event("C0OPS", "U0ALICE", &format!("!st2 {command}"), None))
            .await;
        let ran = eventually!(WAIT, b.emulator.executions().len() > i);
        assert!(ran, "{command:?} did not run");
        let e = &b.emulator.executions()[i];
        assert_eq!(e.alias_ref, alias, "{command:?}");
        assert_eq!(e.request["format"], format, "{command:?}");
        assert_eq!(e.request["command"], command, "{command:?}");
        assert_eq!(e.parameters, params(want), "{command:?}");
    }
}

#[actix_rt::test]
async fn two_formats_of_one_alias_that_both_match_run_the_more_specific_one() {
    // StackStorm's /match gives up ("matched more than 1 pattern"); the bridge runs the
    // format with more literal text, and StackStorm, told that format, extracts exactly
    // what the bridge expects from it.
    let mut b = TestBridge::start_with(matcher_options()).await;
    b.wait_ready(200).await;
    let command = "reboot web now";
    assert_eq!(
        st2_match(&b.emulator, command).await,
        Err((
            400,
            format!("Command '{command}' matched more than 1 pattern")
        ))
    );
    let Selection::Matched(chosen) = index_of(&matcher_aliases()).select(command) else {
        panic!("the bridge chooses one format");
    };
    assert_eq!(chosen.representation, "reboot {{host}} now");
    b.say(&format!("!st2 {command}")).await;
    b.line_containing("Started").await;
    let e = &b.emulator.executions()[0];
    assert_eq!(e.alias_ref, "fid.reboot");
    assert_eq!(e.request["format"], "reboot {{host}} now");
    assert_eq!(e.parameters, params(&[("host", "web")]));
    assert_eq!(vec![e.parameters.clone()], chosen.params);
}

// ----- 1. RBAC: a bridge account that is not an admin ------------------------------------

/// `zbulk.probeNNN`, answering `probeNNN <cmd>`; pack `zbulk` sorts after the test packs,
/// so with [`with_test_aliases`] alias `i` is item `8 + i` of StackStorm's sorted list.
fn bulk_alias(i: usize) -> Value {
    let name = format!("probe{i:03}");
    json!({
        "id": format!("zbulk{name}"), "name": name, "pack": "zbulk", "ref": format!("zbulk.{name}"),
        "uid": format!("action_alias:zbulk:{name}"), "enabled": true, "action_ref": "core.local",
        "description": "bulk", "formats": [format!("{name} {{{{cmd}}}}")],
    })
}

/// RBAC on, and the bridge's StackStorm user (`st2admin`, see `support::config_toml`) is
/// not one of the admins; a custom role gives it `action_alias_list`, without which
/// StackStorm refuses it the alias list altogether.
fn rbac_options(bulk: usize) -> Options {
    let mut opts = with_test_aliases();
    opts.emulator.rbac = true;
    opts.emulator.admins = vec!["root".into()];
    opts.emulator.grants = vec![("st2admin".into(), "action_alias_list".into())];
    opts.emulator.aliases.extend((0..bulk).map(bulk_alias));
    opts
}

async fn runs(b: &mut TestBridge, alias: &str, command: &str) {
    let before = b.emulator.executions().len();
    b.say(&format!("!st2 {command}")).await;
    b.line_containing(&format!("Started `{command}`")).await;
    let executions = b.emulator.executions();
    assert_eq!(executions.len(), before + 1, "{command}");
    assert_eq!(executions[before].alias_ref, alias, "{command}");
}

#[actix_rt::test]
async fn with_rbac_a_bridge_that_is_no_admin_reads_the_alias_list_page_by_page() {
    let mut b = TestBridge::start_with(rbac_options(250)).await;
    b.wait_ready(200).await;
    let loaded = eventually!(WAIT, b.metric("stormbridge_aliases").await == 258.0);
    assert!(loaded, "aliases: {}", b.metric("stormbridge_aliases").await);
    // StackStorm refuses this user the whole list at once, and more than 100 per page.
    for query in ["limit=-1", "limit=101"] {
        let (status, body) = st2_request(
            &b.emulator,
            "GET",
            &format!("/api/v1/actionalias?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 403, "{query}: {body}");
    }
    // So the bridge read 258 aliases as three pages (offset 0, 100 and 200).
    let pages = b
        .metric(r#"stormbridge_st2_request_seconds_count{endpoint="actionalias_page"}"#)
        .await;
    assert!(pages >= 3.0, "alias pages read: {pages}");
    // Aliases from every page run.
    for i in [0, 150, 249] {
        let name = format!("probe{i:03}");
        runs(&mut b, &format!("zbulk.{name}"), &format!("{name} uptime")).await;
    }
    runs(&mut b, "core.run_local", "run date").await;
}

#[actix_rt::test]
async fn an_alias_list_too_large_to_read_at_once_is_read_a_thousand_a_page() {
    // 1,208 aliases are about 400 KiB as StackStorm sends them: more than this bridge
    // reads as one answer.
    let mut opts = with_test_aliases();
    opts.emulator.aliases.extend((0..1200).map(bulk_alias));
    opts.st2_toml = "alias_list_max_bytes = 65536\n".into();
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let loaded = eventually!(WAIT, b.metric("stormbridge_aliases").await == 1208.0);
    assert!(loaded, "aliases: {}", b.metric("stormbridge_aliases").await);
    // The whole list was asked for once, then two pages of a thousand were read.
    let pages = b
        .metric(r#"stormbridge_st2_request_seconds_count{endpoint="actionalias_page"}"#)
        .await;
    assert!((2.0..=3.0).contains(&pages), "alias pages read: {pages}");
    for i in [0, 999, 1199] {
        let name = format!("probe{i:03}");
        runs(&mut b, &format!("zbulk.{name}"), &format!("{name} uptime")).await;
    }
}

#[actix_rt::test]
async fn with_rbac_a_refused_or_malformed_alias_list_keeps_the_last_good_one() {
    let mut b = TestBridge::start_with(rbac_options(150)).await;
    b.wait_ready(200).await;
    let loaded = eventually!(WAIT, b.metric("stormbridge_aliases").await == 158.0);
    assert!(loaded, "aliases: {}", b.metric("stormbridge_aliases").await);

    let faultstring = r#"{"faultstring": "Internal Server Error"}"#;
    // (a broken answer, what /actors says about it)
    let cases = [
        (
            "null",
            "expected a JSON array of action aliases, got null; keeping the aliases loaded before",
        ),
        (
            faultstring,
            "with an error: Internal Server Error; keeping the aliases loaded before",
        ),
        (
            "403",
            r#"StackStorm answered 403: User "st2admin" doesn't have required permission "action_alias_list""#,
        ),
    ];
    for (broken, reason) in cases {
        if broken == "403" {
            // An st2 admin takes the permission out of the bridge account's role: StackStorm
            // refuses every page of the list from now on.
            b.emulator.revoke("st2admin", "action_alias_list");
        } else {
            b.emulator.set_alias_list_body(Some(broken));
        }
        // An alias change on the stream makes the bridge load the list again.
        b.emulator.send_raw_event("st2.actionalias__update", "{}");
        let reported = eventually!(WAIT, {
            let cache = b.actor("alias_cache").await;
            cache["state"] == "degraded"
                && cache["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(reason))
        });
        assert!(reported, "{broken}: {}", b.actor("alias_cache").await);
        assert_eq!(b.metric("stormbridge_aliases").await, 158.0, "{broken}");
        // Commands still run, on aliases of every page of the last good list.
        runs(&mut b, "zbulk.probe149", "probe149 uptime").await;
        runs(&mut b, "core.run_local", "run date").await;

        b.emulator.grant("st2admin", "action_alias_list");
        b.emulator.set_alias_list_body(None);
        b.emulator.send_raw_event("st2.actionalias__update", "{}");
        let back = eventually!(WAIT, b.actor("alias_cache").await["state"] == "up");
        assert!(back, "{broken}: {}", b.actor("alias_cache").await);
    }
}

// ----- 2. web_url -------------------------------------------------------------------------

#[actix_rt::test]
async fn without_a_configured_web_url_the_links_are_the_ones_stackstorm_builds() {
    let mut opts = with_test_aliases();
    // st2's default webui_base_url: https://<its own host name>.
    opts.emulator.web_url = None;
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    let ack = b.line_containing("Started").await;
    let id = b.emulator.executions()[0].id.clone();
    let link = format!("{DEFAULT_WEBUI_BASE_URL}/#/history/{id}/general");
    assert!(ack.contains(&link), "{ack}");
    let result = b.line_containing(&format!("execution: {id}")).await;
    assert!(result.contains(&format!("web_url: {link}")), "{result}");
}

#[actix_rt::test]
async fn a_configured_web_url_is_for_acks_and_results_stay_as_stackstorm_renders_them() {
    let mut opts = with_test_aliases();
    opts.emulator.web_url = None;
    let emulator = Emulator::start(opts.emulator.clone())
        .await
        .expect("emulator");
    let mut settings = settings_for(&emulator, &opts);
    settings.st2.web_url = Some("https://stackstorm.example.org".into());
    let mut b = TestBridge::start_with_settings(emulator, settings).await;
    b.wait_ready(200).await;
    // The result is settled from the API (the stream is away when it is announced).
    b.emulator.set_stream_service(false);
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 0));
    b.say("!st2 run date").await;
    let ack = b.line_containing("Started").await;
    let id = b.emulator.executions()[0].id.clone();
    assert!(
        ack.contains(&format!(
            "https://stackstorm.example.org/#/history/{id}/general"
        )),
        "{ack}"
    );
    assert!(eventually!(WAIT, !b.emulator.announcements().is_empty()));
    let announced = b.emulator.announcements()[0].1["payload"]["message"]
        .as_str()
        .expect("announced text")
        .to_owned();
    assert!(
        announced.contains(&format!(
            "web_url: {DEFAULT_WEBUI_BASE_URL}/#/history/{id}/general"
        )),
        "{announced}"
    );
    b.emulator.set_stream_service(true);
    let posted = b.line_containing(&format!("execution: {id}")).await;
    assert_posted(&posted, &announced);
}

/// A result posted in the room is StackStorm's text (after whatever the room adds in
/// front, such as a mention of the user who asked).
fn assert_posted(posted: &str, announced: &str) {
    assert!(
        posted.starts_with("[stormbridge] #ops: ") && posted.ends_with(announced),
        "posted {posted:?}\nStackStorm's text {announced:?}"
    );
}

// ----- 4. a route no notify rule covers ---------------------------------------------------

/// A bridge whose route no notify rule covers (only the chatops pack's own rules are
/// installed), on a quiet bus whose heartbeats keep the stream as it is: no announcement,
/// and no stream gap that would make the bridge look its commands up early.
async fn unannounced_bridge(results_toml: &str) -> TestBridge {
    let mut opts = with_test_aliases();
    opts.emulator.notify_rules = vec![
        ("hubot".into(), "chatops".into()),
        ("errbot".into(), "errbot".into()),
    ];
    opts.emulator.background_interval = None;
    opts.extra_toml = results_toml.into();
    let emulator = Emulator::start(opts.emulator.clone())
        .await
        .expect("emulator");
    let mut settings = settings_for(&emulator, &opts);
    settings.st2.stream_idle_refresh = None;
    let b = TestBridge::start_with_settings(emulator, settings).await;
    b.wait_ready(200).await;
    b
}

#[actix_rt::test]
async fn a_route_no_notify_rule_covers_still_gets_its_result_from_the_api() {
    let mut b = unannounced_bridge("[results]\ngrace = 1\nfirst_check = 2\n").await;
    let connects = b.emulator.stream_connects_total();
    b.say("!st2 run uname").await;
    b.line_containing("Started").await;
    let e = b.emulator.executions()[0].clone();
    assert_eq!(e.request["notification_route"], "stormbridge");
    let result = b.line_containing(&format!("execution: {}", e.id)).await;
    assert!(result.starts_with("[stormbridge] #ops: "), "{result}");
    assert!(
        result.contains("status : succeeded") && result.contains("stdout : Linux"),
        "{result}"
    );
    assert!(
        b.emulator.announcements().is_empty(),
        "StackStorm announced nothing: {:?}",
        b.emulator.announcements()
    );
    assert_eq!(
        b.emulator.stream_connects_total(),
        connects,
        "found by its first check, not after a stream gap"
    );
    assert_eq!(
        b.metric(r#"stormbridge_results_delivered_total{source="reconciliation"}"#)
            .await,
        1.0
    );
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_results_pending").await == 0.0
    ));
}

// ----- 5. StackStorm's parameter errors ---------------------------------------------------

#[actix_rt::test]
async fn stackstorms_parameter_errors_reach_the_user_in_its_own_words() {
    let mut opts = with_test_aliases();
    opts.emulator.actions.push(json!({
        "pack": "ops", "name": "scale", "runner_type": "python-script",
        "parameters": {"app": {"type": "string", "required": true}, "count": {"type": "integer"}}
    }));
    opts.emulator.aliases.extend([
        json!({"name": "scale", "pack": "ops", "ref": "ops.scale", "action_ref": "ops.scale",
               "enabled": true, "formats": ["scale {{app}}"]}),
        json!({"name": "haunt", "pack": "ops", "ref": "ops.haunt", "action_ref": "nopack.nothing",
               "enabled": true, "formats": ["haunt {{house}}"]}),
        json!({"name": "ship", "pack": "ops", "ref": "ops.ship", "action_ref": "ops.deploy",
               "enabled": true, "formats": ["ship {{app}}"],
               "immutable_parameters": {"env": "prod"}}),
    ]);
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let refusals = [
        (
            "scale web count=abc",
            "Failed to cast value \"abc\" (type: str) for parameter \"count\" of type \"integer\": invalid literal for int() with base 10: 'abc'",
        ),
        ("haunt mansion", "Action with ref \"nopack.nothing\" not found"),
        (
            "run date on web1 dir=/etc",
            "Override of immutable parameter(s) ['dir'] is unsupported.",
        ),
        // core.local's `sudo` spec has no type of its own (`immutable` only), so st2's
        // shallow merge leaves the value uncast and its schema check refuses it.
        ("run date sudo=true", "'true' is not of type 'boolean'"),
        ("ship web env=dev", "Immutable arguments cannot be overriden: env"),
        (
            "run date colour=red",
            "Additional properties are not allowed ('colour' was unexpected)",
        ),
    ];
    for (command, said) in refusals {
        b.say(&format!("!st2 {command}")).await;
        let reply = b.line_containing("Sorry").await;
        assert!(reply.contains(said), "{command}: {reply}");
        assert!(reply.contains(command), "{command}: {reply}");
        assert!(!reply.contains("faultstring"), "{reply}");
    }
    assert!(
        b.emulator.executions().is_empty(),
        "{:?}",
        b.emulator.executions()
    );
    // The same commands, right, run; StackStorm cast the count and set the immutable env.
    runs(&mut b, "ops.scale", "scale web count=3").await;
    runs(&mut b, "ops.ship", "ship web").await;
    let executions = b.emulator.executions();
    assert_eq!(
        executions[0].parameters,
        params(&[("app", "web"), ("count", "3")])
    );
    assert_eq!(
        executions[1].parameters,
        params(&[("app", "web"), ("env", "prod")])
    );
}

// ----- 6. `{% %}` blocks in result formats ------------------------------------------------

/// A result format with macros, loops, a namespace, conditions and a raw block, rendered
/// with st2's Jinja settings (`trim_blocks`, `lstrip_blocks`). Checked against Jinja2 3.1.6:
/// for `hostname` on three hosts it gives "Ran `hostname`:\n1/3 db1: db1,\n2/3 web1:
/// web1,\n3/3 web2: web2\nall 3 hosts succeeded\n{{ not a variable }}".
const BLOCK_FORMAT: &str = r#"{% macro row(host, r) -%}
{{ host }}: {{ r.stdout }}{% if r.return_code != 0 %} (exit {{ r.return_code }}){% endif %}
{%- endmacro %}
{% set ns = namespace(ok=0) %}
Ran `{{ execution.parameters.cmd }}`:
{% for host, r in execution.result | dictsort %}
  {% if r.succeeded %}{% set ns.ok = ns.ok + 1 %}{% endif %}
{{ loop.index }}/{{ loop.length }} {{ row(host, r) }}{{ ',' if not loop.last }}
{% endfor %}
{% if ns.ok == execution.result | length %}
all {{ ns.ok }} hosts succeeded
{% else %}
{{ ns.ok }} of {{ execution.result | length }} hosts succeeded
{% endif %}
{% raw %}{{ not a variable }}{% endraw %}"#;

#[actix_rt::test]
async fn a_result_format_with_blocks_is_rendered_as_stackstorm_renders_it() {
    let mut opts = with_test_aliases();
    opts.emulator.aliases.push(json!({
        "name": "fanout", "pack": "ops", "ref": "ops.fanout", "action_ref": "core.remote",
        "enabled": true, "formats": ["fanout {{cmd}} to {{hosts}}"],
        "result": {"format": BLOCK_FORMAT},
    }));
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    // Announced while the stream is away: the bridge renders the format itself, from the
    // execution it fetches, and must post what StackStorm's chatops pack rendered.
    b.emulator.set_stream_service(false);
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 0));
    // (command, the start of what StackStorm renders for it)
    let commands = [
        (
            "fanout hostname to web2,web1,db1",
            "Ran `hostname`:\n1/3 db1: db1,\n2/3 web1: web1,\n3/3 web2: web2\nall 3 hosts succeeded\n",
        ),
        (
            "fanout exit 3 to web1,db1",
            "Ran `exit 3`:\n1/2 db1:  (exit 3),\n2/2 web1:  (exit 3)\n0 of 2 hosts succeeded\n",
        ),
    ];
    for (command, _) in commands {
        b.say(&format!("!st2 {command}")).await;
        b.line_containing(&format!("Started `{command}`")).await;
    }
    assert!(eventually!(WAIT, b.emulator.announcements().len() == 2));
    let announced: Vec<String> = b
        .emulator
        .announcements()
        .iter()
        .map(|(_, data)| {
            data["payload"]["message"]
                .as_str()
                .expect("announced text")
                .to_owned()
        })
        .collect();
    b.emulator.set_stream_service(true);
    for (_, rendered) in commands {
        let text = announced
            .iter()
            .find(|t| t.starts_with(rendered))
            .unwrap_or_else(|| panic!("StackStorm rendered {rendered:?}; announced {announced:?}"));
        assert!(text.ends_with("{{ not a variable }}"), "{text:?}");
        // The two results may be settled in either order.
        let summary = rendered.lines().last().unwrap_or("");
        let seen = b.seen.iter().find(|l| l.contains(summary)).cloned();
        let posted = match seen {
            Some(line) => line,
            None => b.line_containing(summary).await,
        };
        assert_posted(&posted, text);
    }
    assert_eq!(
        b.metric(r#"stormbridge_results_delivered_total{source="reconciliation"}"#)
            .await,
        2.0,
        "both rendered by the bridge"
    );
}

// ----- 7. display-only formats and disabled namesakes -------------------------------------

#[actix_rt::test]
async fn a_format_with_a_display_but_no_representation_is_help_text_as_in_stackstorm() {
    let mut opts = with_test_aliases();
    opts.emulator.aliases.push(json!({
        "name": "watch", "pack": "goonies", "ref": "goonies.watch", "action_ref": "core.local",
        "enabled": true, "description": "help only", "formats": [{"display": "Watch this."}],
    }));
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b.say("!st2help goonies").await;
    let help = b.line_containing("[goonies]").await;
    assert!(help.contains("Watch this."), "{help}");
    // Its display is no pattern: StackStorm matches nothing, and neither does the bridge.
    assert_eq!(
        st2_match(&b.emulator, "Watch this.").await,
        Err((400, "Command 'Watch this.' matched no patterns".into()))
    );
    b.say("!st2 Watch this.").await;
    b.line_containing("No StackStorm command matches").await;
    // StackStorm's matcher gives it the pattern "" (a command of key=value pairs only)…
    assert_eq!(
        st2_match(&b.emulator, "speed=fast").await,
        Ok(("goonies.watch".into(), String::new()))
    );
    // …which its aliasexecution can never run: the alias has no such format string. The
    // bridge sends nothing (and so does not take StackStorm's refusal for a stale alias
    // list and reload it).
    let lists = r#"stormbridge_st2_request_seconds_count{endpoint="actionalias_list"}"#;
    let loads = b.metric(lists).await;
    assert!(loads >= 1.0, "the list was loaded: {loads}");
    b.say("!st2 speed=fast").await;
    let reply = b.line_containing("No StackStorm command matches").await;
    assert!(reply.contains("speed=fast"), "{reply}");
    assert!(b.emulator.executions().is_empty());
    assert_eq!(b.metric(lists).await, loads, "no reload");
    assert!(b.seen.iter().all(|l| !l.contains("Sorry")), "{:?}", b.seen);
}

#[actix_rt::test]
async fn a_name_shared_with_a_disabled_alias_is_warned_about_when_loaded() {
    let mut opts = with_test_aliases();
    let alias = |pack: &str, enabled: bool| {
        json!({"name": "recycle", "pack": pack, "ref": format!("{pack}.recycle"),
               "action_ref": "core.local", "enabled": enabled,
               "formats": [format!("recycle {pack} {{{{svc}}}}")]})
    };
    opts.emulator
        .aliases
        .extend([alias("cache", true), alias("queue", false)]);
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let warned = eventually!(WAIT, {
        crate::support::captured_logs().lines().any(|l| {
            l.contains("alias name defined in several packs")
                && l.contains("alias=recycle")
                && l.contains("cache, queue")
        })
    });
    assert!(warned, "the load warns about the disabled namesake");
    let cache = b.actor("alias_cache").await;
    assert!(
        cache["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("1 alias names shared by several packs")),
        "{cache}"
    );
    // StackStorm looks the name up and may find the disabled alias first.
    b.say("!st2 recycle cache redis").await;
    let reply = b.line_containing("looks aliases up by name alone").await;
    assert!(reply.contains("disabled in queue"), "{reply}");
    assert!(b.emulator.executions().is_empty());
}
