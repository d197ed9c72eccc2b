//! The formatter's rules: which alias settings `format_execution_result` honours,
//! how `result.extra` is rendered, unsupported filters, and the fuel and output
//! limits.

use super::super::{ResultFormatter, ResultMessage, ResultMessageError, MAX_OUTPUT_BYTES};
use super::fixtures::{alias, execution};
use super::{alias_with, render_format};

#[test]
fn default_template_compiles_and_formatter_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ResultFormatter>();
    let f = ResultFormatter::default();
    assert!(f.default_ok);
    assert!(format!("{f:?}").contains("ResultFormatter"));
}

#[test]
fn runaway_templates_are_stopped() {
    let f = ResultFormatter::new();
    let e = execution("local_ok");
    let start = std::time::Instant::now();
    let err = render_format(
        &f,
        alias("big_loop")["result"]["format"].as_str().unwrap(),
        &e,
    )
    .unwrap_err();
    assert!(
        matches!(err, ResultMessageError::TooExpensive { .. }),
        "{err:?}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    let err = render_format(
        &f,
        "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
        &e,
    )
    .unwrap_err();
    assert!(matches!(err, ResultMessageError::Render { .. }), "{err:?}");
    let err = render_format(&f, "{% set s = 'x' * 1000000000 %}{{ s }}", &e).unwrap_err();
    assert!(
        matches!(err, ResultMessageError::TooExpensive { .. }),
        "{err:?}"
    );
}

#[test]
fn output_is_capped() {
    let f = ResultFormatter::new();
    let e = execution("local_ok");
    let err = render_format(
        &f,
        "{% for i in range(40000) %}{{ 'x' * 40 }}{% endfor %}",
        &e,
    )
    .unwrap_err();
    assert!(
        matches!(err, ResultMessageError::OutputTooLarge { limit, .. } if limit == MAX_OUTPUT_BYTES),
        "{err:?}"
    );
    let ok = render_format(
        &f,
        "{% for i in range(1000) %}{{ 'x' * 40 }}{% endfor %}",
        &e,
    )
    .unwrap();
    assert_eq!(ok.len(), 40_000);
}

#[test]
fn unsupported_filters_are_named() {
    let f = ResultFormatter::new();
    let e = execution("local_ok");
    for (filter, call) in [
        ("to_yaml_string", "execution.result | to_yaml_string"),
        ("from_yaml_string", "'a: 1' | from_yaml_string"),
        (
            "jsonpath_query",
            "execution.result | jsonpath_query('$.stdout')",
        ),
        ("decrypt_kv", "'x' | decrypt_kv"),
    ] {
        let err = render_format(&f, &format!("x {{{{ {call} }}}}"), &e).unwrap_err();
        match err {
            ResultMessageError::UnsupportedFilter {
                filter: got,
                template,
            } => {
                assert_eq!(got, filter);
                assert_eq!(template, "alias ops.probe result.format");
            }
            other => panic!("{filter}: {other:?}"),
        }
    }
    // Only when actually called.
    assert_eq!(
        render_format(
            &f,
            "{% if false %}{{ 1 | to_yaml_string }}{% endif %}ok",
            &e
        )
        .unwrap(),
        "ok"
    );
}

#[test]
fn alias_rules_follow_format_execution_result() {
    let f = ResultFormatter::new();
    let e = execution("local_ok");
    let default = f.default_message(&e);
    // No alias ref on the execution: the alias is not consulted.
    let mut no_ref = e.clone();
    no_ref["context"] = serde_json::json!({"user": "x"});
    let a = alias_with(serde_json::json!({"format": "custom"}));
    assert_eq!(f.format(&no_ref, Some(&a)).unwrap().message, default);
    // Alias ref but alias unknown: default template.
    assert_eq!(f.format(&e, None).unwrap().message, default);
    // Disabled: nothing rendered, even a broken format or extra.
    for enabled in [
        serde_json::json!(false),
        serde_json::json!(0),
        serde_json::json!(""),
    ] {
        let a = alias_with(
            serde_json::json!({"enabled": enabled, "format": "{% broken", "extra": {"k": "{{ nope.x }}"}}),
        );
        let r = f.format(&e, Some(&a)).unwrap();
        assert_eq!(
            r,
            ResultMessage {
                enabled: false,
                message: String::new(),
                extra: None
            }
        );
    }
    // A non-string format or a non-mapping extra/result is an error, as in st2.
    for result in [
        serde_json::json!({"format": 5}),
        serde_json::json!({"extra": ["a"]}),
        serde_json::json!("yes"),
    ] {
        let err = f.format(&e, Some(&alias_with(result.clone()))).unwrap_err();
        assert!(
            matches!(err, ResultMessageError::InvalidAlias { .. }),
            "{result}: {err:?}"
        );
    }
    // Errors name the template.
    let err = f
        .format(
            &e,
            Some(&alias_with(
                serde_json::json!({"format": "{{ execution.x.y }}"}),
            )),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("alias ops.probe result.format: "),
        "{err}"
    );
    let err = f
        .format(
            &e,
            Some(&alias_with(
                serde_json::json!({"extra": {"k": "{{ nope }}"}}),
            )),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("alias ops.probe result.extra.k: "),
        "{err}"
    );
}

#[test]
fn extra_keeps_untouched_values_and_types() {
    let f = ResultFormatter::new();
    let e = execution("local_ok");
    let a = alias_with(serde_json::json!({"extra": {
        "n": 1.0, "big": 1e16, "b": false, "z": null, "s": "plain", "l": [1.0, "{{ 1 + 1 }}"],
        "d": {"k": "{{ execution.status | upper }}", "u": "ünï"}, "t": "{{ execution.elapsed_seconds }}",
        "ctx": "{{ __context.alias.name }}", "raw": "{% raw %}{{ x }}{% endraw %}"
    }}));
    let r = f.format(&e, Some(&a)).unwrap();
    assert_eq!(
        serde_json::to_string(&r.extra.unwrap()).unwrap(),
        r#"{"n":1.0,"big":1e+16,"b":false,"z":null,"s":"plain","l":[1.0,"2"],"d":{"k":"SUCCEEDED","u":"ünï"},"t":"0.212334","ctx":"probe","raw":"{{ x }}"}"#
    );
}
