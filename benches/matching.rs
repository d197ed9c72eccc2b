//! Alias matching benchmarks: `select` of one command against 10,000 generated,
//! realistic aliases, and `extract_parameters` of a single typical format.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use stormbridge::alias::format::{extract_parameters, prepare, CompiledFormat};
use stormbridge::alias::index::{AliasIndex, Selection};

mod common;
use common::{command_for, generate};

fn bench(c: &mut Criterion) {
    let aliases = generate(10_000);
    // A command for a format in the middle of the list.
    let command = command_for(5_017).expect("5_017 has the common shape");
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
