//! Alias matching benchmarks: `select` of one command against 10,000 generated,
//! realistic aliases, and `extract_parameters` of a single typical format.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use stormbridge::alias::format::{extract_parameters, prepare, CompiledFormat};
use stormbridge::alias::index::{AliasIndex, Selection};
use stormbridge::alias::model::{ActionAlias, AliasFormat, FormatObject, Representation};

const PACKS: &[&str] = &[
    "ops",
    "k8s",
    "aws",
    "gcp",
    "jira",
    "nagios",
    "pagerduty",
    "github",
    "jenkins",
    "consul",
    "vault",
    "docker",
    "ansible",
    "terraform",
    "datadog",
    "sensu",
    "slack",
    "zabbix",
    "mysql",
    "redis",
    "nginx",
    "haproxy",
    "elastic",
    "kafka",
    "rabbitmq",
    "puppet",
    "salt",
    "chef",
    "openstack",
    "vsphere",
    "netbox",
    "servicenow",
    "splunk",
    "grafana",
    "prometheus",
    "git",
    "npm",
    "pypi",
    "helm",
    "argo",
];
const VERBS: &[&str] = &[
    "deploy", "restart", "get", "list", "show", "create", "delete", "scale", "rollback", "ack",
    "silence", "run", "exec", "ping", "status", "describe", "tail", "open", "close", "assign",
    "start", "stop", "check", "sync", "backup", "restore", "promote", "drain", "cordon", "page",
];
const NOUNS: &[&str] = &[
    "service",
    "host",
    "pod",
    "pods",
    "node",
    "cluster",
    "instance",
    "bucket",
    "ticket",
    "issue",
    "alert",
    "build",
    "job",
    "pipeline",
    "release",
    "app",
    "database",
    "queue",
    "topic",
    "user",
    "key",
    "secret",
    "volume",
    "image",
    "container",
    "vm",
    "stack",
    "record",
    "incident",
    "check",
];

fn pick<'a>(list: &'a [&'a str], n: usize) -> &'a str {
    list[n % list.len()]
}

/// 10,000 aliases: mostly `<pack> <verb> <noun> …` and `<verb> <noun> …` shapes with
/// placeholders and defaults, some object formats with several representations,
/// and a few percent of regex-heavy formats (leading placeholder, alternation,
/// case-insensitive, user anchors).
pub fn generate(n: usize) -> Vec<ActionAlias> {
    (0..n)
        .map(|i| {
            let pack = pick(PACKS, i);
            let verb = pick(VERBS, i / PACKS.len());
            let noun = pick(NOUNS, i / (PACKS.len() * VERBS.len()) + i * 7);
            let tag = i % 97;
            let formats = match i % 50 {
                0 => vec![AliasFormat::Plain(format!(
                    "{{{{target}}}} {verb} {noun} {tag}"
                ))],
                1 => vec![AliasFormat::Plain(format!(
                    "(?i){pack} {verb} {noun}{tag} {{{{name}}}}"
                ))],
                2 => vec![AliasFormat::Plain(format!(
                    r"^\s*{pack}-{verb}-{tag} (?P<ticket>[A-Z]+-\d+)\s*$"
                ))],
                3..=9 => vec![AliasFormat::Object(FormatObject {
                    display: Some(format!("{pack} {verb} {noun}{tag} <name> [on <env>]")),
                    representation: Some(Representation::Many(vec![
                        format!("{pack} {verb} {noun}{tag} {{{{name}}}}"),
                        format!("{pack} {verb} {noun}{tag} {{{{name}}}} on {{{{env=staging}}}}"),
                    ])),
                    match_multiple: false,
                })],
                10..=29 => vec![AliasFormat::Plain(format!(
                    "{pack} {verb} {noun}{tag} {{{{name}}}} {{{{count=1}}}}"
                ))],
                _ => vec![
                    AliasFormat::Plain(format!("{verb} {noun}{tag} {{{{name}}}} in {pack}")),
                    AliasFormat::Plain(format!(
                        "{verb} (?:the )?{noun}{tag} {{{{name}}}} in {pack} with {{{{opts}}}}"
                    )),
                ],
            };
            ActionAlias {
                id: Some(format!("{i:024x}")),
                name: format!("{verb}_{noun}_{tag}_{i}"),
                pack: pack.to_string(),
                reference: format!("{pack}.{verb}_{noun}_{tag}_{i}"),
                description: Some(format!("{verb} a {noun}")),
                action_ref: format!("{pack}.{verb}_{noun}"),
                formats,
                ..ActionAlias::default()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let aliases = generate(10_000);
    // A command for a format in the middle of the list (i = 5_017: `10..=29` shape).
    let i = 5_017usize;
    let command = format!(
        "{} {} {}{} web-frontend 3",
        pick(PACKS, i),
        pick(VERBS, i / PACKS.len()),
        pick(NOUNS, i / (PACKS.len() * VERBS.len()) + i * 7),
        i % 97
    );
    let (index, warnings) = AliasIndex::build(aliases);
    assert!(warnings.is_empty(), "{warnings:?}");
    match index.select(&command) {
        Selection::Matched(m) => assert_eq!(m.params[0]["name"], "web-frontend"),
        other => panic!("benchmark command must match: {other:?}"),
    }
    c.bench_function("select/10k_aliases/match", |b| {
        b.iter(|| black_box(index.select(black_box(&command))))
    });
    let with_pairs = format!("{command} env=prod note=\"two words\"");
    c.bench_function("select/10k_aliases/match_with_pairs", |b| {
        b.iter(|| black_box(index.select(black_box(&with_pairs))))
    });
    c.bench_function("select/10k_aliases/no_match", |b| {
        b.iter(|| black_box(index.select(black_box("deploy the moon to mars please"))))
    });
    let format = "run {{cmd}} on {{hosts}} {{timeout=60}}";
    let cmd = "run 'uptime -p' on web1,web2 timeout=30 env=prod";
    c.bench_function("extract_parameters/typical", |b| {
        b.iter(|| black_box(extract_parameters(black_box(format), black_box(cmd), false)))
    });
    c.bench_function("prepare/typical", |b| {
        b.iter(|| black_box(prepare(black_box(cmd))))
    });
    let compiled = CompiledFormat::compile(format).expect("compiles");
    c.bench_function("extract/precompiled", |b| {
        b.iter(|| black_box(compiled.extract(&prepare(black_box(cmd)))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
