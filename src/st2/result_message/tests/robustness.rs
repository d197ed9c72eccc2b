//! Garbage templates and odd documents: rendering may fail, but never panics or
//! overflows the stack.

use super::super::ResultFormatter;
use super::fixtures::execution;
use super::{alias_with, render_format, with_alias_ref};

/// Small deterministic generator for the fuzz-ish tests.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap()
    }
}

#[test]
fn garbage_templates_never_panic() {
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "-",
        " ",
        "\n",
        "'",
        "\"",
        "(",
        ")",
        "[",
        "]",
        "|",
        "execution",
        ".result",
        ".stdout",
        "six.iteritems(",
        "for ",
        "in ",
        "if ",
        "endif",
        "endfor",
        "macro ",
        "endmacro",
        "set ",
        "=",
        "~",
        "+",
        "*",
        "/",
        "0",
        "1e309",
        "-1",
        "to_json_string",
        "regex_replace('(', ')')",
        "regex_substring('x*', -1)",
        "to_human_time_from_seconds",
        "version_match('>')",
        "trim",
        "join",
        "tojson",
        "from_json_string",
        "basename",
        "int",
        "truncate(1)",
        "center(99999999)",
        "é",
        "\u{0}",
        "loop",
        "range(99999)",
        "selectattr('0')",
        "items()",
        "none",
        "true",
        "raw",
        "endraw",
    ];
    let f = ResultFormatter::new();
    let docs = [
        execution("tricky"),
        execution("remote_two"),
        execution("http"),
        serde_json::json!(null),
    ];
    let mut rng = Lcg(7);
    for i in 0..3000 {
        let n = 1 + rng.next() % 14;
        let src: String = (0..n).map(|_| PIECES[rng.next() % PIECES.len()]).collect();
        let doc = &docs[i % docs.len()];
        let _ = render_format(&f, &src, doc);
        let a = alias_with(serde_json::json!({"extra": {"k": src.clone(), "l": [src.clone()]}}));
        let _ = f.format(&with_alias_ref(doc.clone()), Some(&a));
    }
}

#[test]
fn odd_documents_never_panic() {
    let f = ResultFormatter::new();
    let mut deep = serde_json::json!("leaf");
    for _ in 0..300 {
        deep = serde_json::json!({"k": deep, "l": [1]});
    }
    let docs = [
        serde_json::json!(null),
        serde_json::json!(5),
        serde_json::json!("text"),
        serde_json::json!([1, 2]),
        serde_json::json!({}),
        serde_json::json!({"context": null}),
        serde_json::json!({"context": {"action_alias_ref": "x"}}),
        serde_json::json!({"result": {"a": 1}, "runner": "not a mapping"}),
        serde_json::json!({"result": {"a": 1}}),
        serde_json::json!({"result": [1], "runner": {"name": 7}, "elapsed_seconds": "12"}),
        serde_json::json!({"result": {"h": 5}, "runner": {"name": "remote-shell-cmd"}}),
        serde_json::json!({"elapsed_seconds": 1e300, "result": true}),
        serde_json::json!({"elapsed_seconds": -1, "result": u64::MAX, "status": f64::MAX}),
        serde_json::json!({"result": deep.clone(), "runner": {"name": "orquesta"}}),
        serde_json::json!({"result": {"items": [1], "keys": {"values": null}}, "runner": {"name": "http-request"}}),
    ];
    for doc in &docs {
        let _ = f.default_message(doc);
        let _ = f.format(doc, None);
        let _ = f.format(
            doc,
            Some(&serde_json::json!({"result": {"format": "{{ execution }}"}})),
        );
        let _ = render_format(
            &f,
            "{{ execution | to_json_string }}{{ execution | tojson }}{{ execution.result | trim }}",
            doc,
        );
    }
    // Deep nesting is refused cleanly rather than overflowing the stack.
    assert!(render_format(
        &f,
        "{{ execution.result }}",
        &serde_json::json!({"result": deep})
    )
    .is_err());
}
