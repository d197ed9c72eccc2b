//! Tests of the result message against Jinja2: goldens produced by Jinja2 3.1.6
//! running st2's `format_execution_result` logic and `default.j2` in st2's
//! environment (`goldens.rs`, on the documents in `fixtures.rs`), single
//! expressions and filters (`expressions.rs`), the formatter's alias rules and
//! limits (`formatter.rs`), and inputs that must never panic (`robustness.rs`).

mod expressions;
mod fixtures;
mod formatter;
mod goldens;
mod robustness;

use serde_json::Value;

use super::{ResultFormatter, ResultMessageError};

/// Alias `ops.probe` (id `a1`) with the given `result` section.
fn alias_with(result: Value) -> Value {
    serde_json::json!({"id": "a1", "name": "probe", "pack": "ops", "ref": "ops.probe", "result": result})
}

/// `e` with a context that names alias `a1`, so the formatter consults it.
fn with_alias_ref(mut e: Value) -> Value {
    if let Some(map) = e.as_object_mut() {
        map.insert(
            "context".into(),
            serde_json::json!({"action_alias_ref": {"id": "a1"}}),
        );
    }
    e
}

/// The message for `e` when its alias's `result.format` is `format`.
fn render_format(
    f: &ResultFormatter,
    format: &str,
    e: &Value,
) -> Result<String, ResultMessageError> {
    let a = alias_with(serde_json::json!({"format": format}));
    f.format(&with_alias_ref(e.clone()), Some(&a))
        .map(|r| r.message)
}
