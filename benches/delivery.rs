//! Local work on the two hot paths (ARCHITECTURE.md §9 budgets: under 1 ms p99 each):
//! a chat line up to the serialised `aliasexecution` body, and an announcement's SSE bytes
//! up to the message handed to a chat connection.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use stormbridge::{
    alias::{
        index::{AliasIndex, Selection},
        model::parse_alias_list,
    },
    domain::{
        announcement::{self, SourceContext},
        command::{self, Command, Prefixes},
        message::RoomKind,
    },
    st2::{models::AliasExecutionRequest, sse::SseParser},
};

fn aliases(n: usize) -> AliasIndex {
    let verbs = [
        "run", "deploy", "restart", "status", "scale", "rollback", "check", "purge",
    ];
    let items: Vec<_> = (0..n)
        .map(|i| {
            let verb = verbs[i % verbs.len()];
            json!({"name": format!("a{i}"), "pack": format!("pack{}", i % 50), "ref": format!("pack{}.a{i}", i % 50),
                   "action_ref": "core.local", "enabled": true,
                   "formats": [format!("{verb} service{i} {{{{target}}}} on {{{{hosts=localhost}}}}")]})
        })
        .collect();
    let (list, _) = parse_alias_list(&json!(items)).expect("a list");
    AliasIndex::build(list).0
}

fn command_to_request(c: &mut Criterion) {
    let index = aliases(10_000);
    let prefixes = Prefixes {
        bot: "!".into(),
        plugin: "st2".into(),
    };
    c.bench_function("chat line -> aliasexecution body (10k aliases)", |b| {
        b.iter(|| {
            let Some(Command::Run(text)) = command::parse(
                black_box("!st2 deploy service4321 web on host1"),
                RoomKind::Group,
                false,
                &prefixes,
            ) else {
                panic!("not a command")
            };
            let text = command::normalise_text(&text);
            let Selection::Matched(m) = index.select(&text) else {
                panic!("no match")
            };
            let req = AliasExecutionRequest {
                name: m.alias.name.clone(),
                format: m.representation.clone(),
                command: text.clone(),
                user: "U123".into(),
                source_channel: "C42".into(),
                notification_route: "stormbridge".into(),
                source_context: SourceContext {
                    bridge: "stormbridge".into(),
                    connection: "slack".into(),
                    room: "C42".into(),
                    room_kind: RoomKind::Group,
                    thread: None,
                    message_id: Some("1.2".into()),
                    user_id: "U123".into(),
                    user_name: None,
                    request_id: "r".into(),
                },
            };
            black_box(serde_json::to_vec(&req).map(|v| v.len()))
        })
    });
}

fn announcement_to_delivery(c: &mut Criterion) {
    let payload = json!({"payload": {
        "message": "Action core.local completed.\nstatus : succeeded\nexecution: 5f0e\nresult :\n  stdout: Mon Nov 23 20:00:00 UTC 2026",
        "channel": "C42", "user": "U123", "whisper": false, "extra": {"color": "#00ff00"},
        "context": {"bridge": "stormbridge", "connection": "slack", "room": "C42", "room_kind": "group",
                    "thread": "1.2", "message_id": "1.2", "user_id": "U123", "request_id": "r"}},
        "trace_context": null});
    let bytes = format!("event: st2.announcement__stormbridge\ndata: {payload}\n\n").into_bytes();
    let connections = vec!["console".to_owned(), "slack".to_owned()];
    c.bench_function("announcement bytes -> delivery", |b| {
        b.iter(|| {
            let mut parser = SseParser::new(1 << 20);
            let events = parser.feed(black_box(&bytes));
            let Some(Ok(event)) = events.into_iter().next() else {
                panic!("no event")
            };
            let route = event.event.trim_start_matches("st2.announcement__");
            let a = announcement::decode(route, &event.data).map_err(|e| e.to_string());
            let d =
                a.and_then(|a| announcement::route(&a, &connections).map_err(|e| e.to_string()));
            black_box(d.map(|d| d.text.len()))
        })
    });
}

/// The reconciliation path's local work: a finished execution, as `GET /api/v1/executions/{id}`
/// answers, rendered like the chatops pack's `format_execution_result` (the default template,
/// and an alias `result.format`).
fn execution_to_result_text(c: &mut Criterion) {
    use stormbridge::st2::result_message::ResultFormatter;
    let execution = json!({
        "id": "5f0e9a1b2c3d4e5f60718293", "status": "succeeded",
        "action": {"ref": "core.local", "runner_type": "local-shell-cmd"},
        "runner": {"name": "local-shell-cmd"},
        "context": {"action_alias_ref": {"id": "a1", "name": "run_local"}, "user": "st2admin"},
        "start_timestamp": "2026-11-23T20:00:00.000000Z", "end_timestamp": "2026-11-23T20:00:02.500000Z",
        "elapsed_seconds": 2.5,
        "web_url": "https://st2.example.com/#/history/5f0e9a1b2c3d4e5f60718293/general",
        "result": {"failed": false, "succeeded": true, "return_code": 0,
                   "stdout": "Mon Nov 23 20:00:02 UTC 2026\nline two", "stderr": ""}});
    let alias = json!({"id": "a1", "name": "run_local", "pack": "core", "ref": "core.run_local",
        "result": {"format": "{% if execution.status == 'succeeded' %}ok{% else %}failed{% endif %}: {{ execution.result.stdout }}"}});
    let formatter = ResultFormatter::new();
    c.bench_function("execution -> result text (default template)", |b| {
        b.iter(|| {
            black_box(
                formatter
                    .format(black_box(&execution), None)
                    .map(|m| m.message.len()),
            )
        })
    });
    c.bench_function("execution -> result text (alias result.format)", |b| {
        b.iter(|| {
            black_box(
                formatter
                    .format(black_box(&execution), Some(&alias))
                    .map(|m| m.message.len()),
            )
        })
    });
}

/// The Matrix backend's own work on both paths: a synced timeline event to an inbound
/// message, and a reply (a full 16,000-byte part, markdown rendered to HTML) to event content.
fn matrix_mapping(c: &mut Criterion) {
    use stormbridge::backends::matrix::{
        config::MsgType,
        wire::{message_content, message_to_inbound, Mapping},
    };
    let names = vec!["stormbridge".to_owned()];
    let members = std::collections::HashMap::new();
    let event = json!({"type": "m.room.message", "sender": "@alice:example.org", "event_id": "$e1",
        "origin_server_ts": 1_000_000u64,
        "content": {"msgtype": "m.text", "body": "!st2 deploy service4321 web on host1",
                    "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}});
    c.bench_function("matrix: timeline event -> inbound message", |b| {
        b.iter(|| {
            let mapping = Mapping {
                connection: "matrix",
                bot_user_id: "@stormbridge:example.org",
                bot_names: &names,
                ignore_users: &[],
                direct: false,
                room_name: None,
                member_names: &members,
                reply_in_thread: false,
                now_ms: 1_000_500,
                max_age_ms: 900_000,
            };
            black_box(message_to_inbound("!ops:example.org", black_box(&event), &mapping).is_ok())
        })
    });
    let line = "status : succeeded | **web-01** `deploy` finished in 12.3 s\n";
    let reply = line.repeat(16_000 / line.len());
    c.bench_function(
        "matrix: 16 kB reply -> event content (markdown to HTML)",
        |b| {
            b.iter(|| {
                let content =
                    message_content(black_box(&reply), MsgType::Notice, Some("$root"), None);
                black_box(content.to_string().len())
            })
        },
    );
}

/// What masking secrets costs each outgoing message (every message passes it): a typical
/// result with nothing to mask, the same with two remembered secret values, a 16 kB
/// result full of ordinary output, and 1,000 texts full of secrets, all different.
fn secret_masking(c: &mut Criterion) {
    use stormbridge::redact::{RedactConfig, Redactor, SecretMask};
    let mask = SecretMask::new(
        std::sync::Arc::new(Redactor::new(&RedactConfig::default()).expect("defaults compile")),
        std::time::Duration::from_secs(600),
    );
    let result = "Execution 5f1d2a3b4c5d6e7f8a9b0c1d (core.local) succeeded in 1.2 s:\n\
                  stdout: Wed Dec  2 14:03:11 UTC 2026\nreturn code 0";
    c.bench_function("mask: a result, nothing remembered", |b| {
        b.iter(|| black_box(mask.text(black_box(result)).len()))
    });
    mask.remember(["Hunter2-Secret".to_owned(), "s3cr3t-v4lue".to_owned()]);
    c.bench_function("mask: a result, two secret values remembered", |b| {
        b.iter(|| black_box(mask.text(black_box(result)).len()))
    });
    let line =
        "status : succeeded | web-01 deploy finished in 12.3 s, id 5f1d2a3b4c5d6e7f8a9b0c1d\n";
    let long = line.repeat(16_000 / line.len());
    c.bench_function("mask: a 16 kB result", |b| {
        b.iter(|| black_box(mask.text(black_box(&long)).len()))
    });
    // Text the scan has not seen before, each with a word that makes it scan: what a busy
    // bridge masks (its lazy DFAs keep at most a bounded cache, cleared when full).
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let varied: Vec<String> = (0..1_000)
        .map(|i| {
            format!(
                "user{i}: token {:016x}{:016x} set; see https://bridge.test/login/{:x} \
                 (password={:x}, api_key {:012x})",
                next(),
                next(),
                next(),
                next() & 0xffff_ffff,
                next() & 0xffff_ffff_ffff
            )
        })
        .collect();
    c.bench_function("mask: 1,000 different texts with secrets", |b| {
        b.iter(|| {
            varied
                .iter()
                .map(|t| black_box(mask.text(black_box(t)).len()))
                .sum::<usize>()
        })
    });
}

criterion_group!(
    benches,
    command_to_request,
    announcement_to_delivery,
    execution_to_result_text,
    matrix_mapping,
    secret_masking
);
criterion_main!(benches);
