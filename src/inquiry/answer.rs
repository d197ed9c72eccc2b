//! A chat answer to an inquiry — `key=value key2="two words"` — read against the
//! inquiry's response schema.
//!
//! Values are typed the way StackStorm users type action parameters: booleans as
//! `yes`/`no`, `true`/`false`, `on`/`off`, `y`/`n` or `1`/`0` (any case); numbers as
//! digits; arrays and objects as JSON; strings as they are, quoted when they hold spaces
//! (`"..."` with `\"` and `\\` escapes, or `'...'` taken literally). When the schema has a
//! single field (or a single required one), a lone value answers it: `!st2answer <id> yes`.
//!
//! Every error names the field and says what it expects, so that nothing StackStorm would
//! refuse is sent to it.

use serde_json::{Map, Number, Value};

use super::schema::{display_value, Field, FieldType, ResponseSchema};

/// Longest answer read, in characters (a chat line is far shorter; this bounds the work
/// done on hostile input).
pub const MAX_ANSWER_CHARS: usize = 16 * 1024;

/// Most `key=value` pairs read.
pub const MAX_PAIRS: usize = 64;

/// Why an answer cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Nothing after the inquiry id.
    #[error("no answer given; answer with {expected}")]
    Empty {
        /// What a complete answer looks like (`continue=yes`).
        expected: String,
    },
    /// The text is over [`MAX_ANSWER_CHARS`] or has over [`MAX_PAIRS`] pairs.
    #[error("the answer is too long")]
    TooLong,
    /// A quote is opened and never closed.
    #[error("a quote opened in `{0}` is never closed")]
    UnterminatedQuote(String),
    /// A word that is not `key=value` (and no lone value is possible).
    #[error("`{token}` is not of the form key=value{hint}")]
    NotKeyValue {
        /// The word.
        token: String,
        /// What to type instead, starting with a separator (may be empty).
        hint: String,
    },
    /// A key the schema does not have.
    #[error("`{field}` is not a field of this inquiry; it asks for {known}")]
    UnknownField {
        /// The key as typed.
        field: String,
        /// The fields it has, as a sentence.
        known: String,
    },
    /// The same key twice.
    #[error("`{0}` is given more than once")]
    Duplicate(String),
    /// A value of the wrong type.
    #[error("`{field}` must be {expected}, not `{got}`")]
    Invalid {
        /// The field.
        field: String,
        /// What it takes (`yes or no`, `a whole number`, …).
        expected: String,
        /// The value as typed.
        got: String,
    },
    /// A value outside the field's `enum`.
    #[error("`{field}` must be one of {allowed}, not `{got}`")]
    NotAllowed {
        /// The field.
        field: String,
        /// The allowed values, as a sentence.
        allowed: String,
        /// The value as typed.
        got: String,
    },
    /// Required fields (without defaults) left out.
    #[error("{}", missing_sentence(.0))]
    Missing(Vec<String>),
}

impl AnswerError {
    /// The field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            AnswerError::UnknownField { field, .. }
            | AnswerError::Invalid { field, .. }
            | AnswerError::NotAllowed { field, .. } => Some(field),
            AnswerError::Duplicate(field) => Some(field),
            AnswerError::Missing(fields) => fields.first().map(String::as_str),
            _ => None,
        }
    }
}

fn missing_sentence(fields: &[String]) -> String {
    let named: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    match named.as_slice() {
        [one] => format!("{one} is required"),
        _ => format!("{} are required", english_list(&named)),
    }
}

/// `a`, `a or b`, `a, b or c` (with `word` as the last joint).
fn list_with(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

fn english_list(items: &[String]) -> String {
    list_with(items, "and")
}

/// One word of the answer: `key=value` or a lone value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    key: Option<String>,
    value: String,
    /// As typed, for error messages.
    raw: String,
}

/// Splits the answer into words, honouring quotes in values.
fn words(text: &str) -> Result<Vec<Word>, AnswerError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // A key runs to `=` or whitespace; a word without `=` is a lone value.
        let mut key = String::new();
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
            key.push(chars[i]);
            i += 1;
        }
        let has_key = i < chars.len() && chars[i] == '=';
        if has_key {
            i += 1;
        } else {
            // A lone value may itself be quoted.
            i = start;
        }
        let (value, next) = read_value(&chars, i).map_err(|()| {
            AnswerError::UnterminatedQuote(chars[start..].iter().take(40).collect())
        })?;
        i = next;
        out.push(Word {
            key: has_key.then_some(key),
            value,
            raw: chars[start..i].iter().collect(),
        });
        if out.len() > MAX_PAIRS {
            return Err(AnswerError::TooLong);
        }
    }
    Ok(out)
}

/// Reads one value starting at `i`: quoted (`"…"` with escapes, `'…'` literal) or up to
/// the next whitespace. Returns the value and the index after it.
fn read_value(chars: &[char], mut i: usize) -> Result<(String, usize), ()> {
    let mut value = String::new();
    match chars.get(i) {
        Some(&q @ ('"' | '\'')) => {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(()),
                    Some(&c) if c == q => {
                        i += 1;
                        break;
                    }
                    Some('\\') if q == '"' && matches!(chars.get(i + 1), Some('"' | '\\')) => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            // Text glued to the closing quote belongs to the same value (`"a b"c`).
            while i < chars.len() && !chars[i].is_whitespace() {
                value.push(chars[i]);
                i += 1;
            }
        }
        _ => {
            while i < chars.len() && !chars[i].is_whitespace() {
                value.push(chars[i]);
                i += 1;
            }
        }
    }
    Ok((value, i))
}

/// A sample answer for the schema, e.g. `continue=yes` or `env=staging count=1`: the
/// required fields, else the main field, else the first.
pub fn example_answer(schema: &ResponseSchema) -> String {
    let mut fields: Vec<&Field> = schema.fields.iter().filter(|f| f.required).collect();
    if fields.is_empty() {
        fields.extend(schema.main_field().or(schema.fields.first()));
    }
    if fields.is_empty() {
        return "key=value".into();
    }
    fields
        .iter()
        .map(|f| format!("{}={}", f.name, example_value(f)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn example_value(f: &Field) -> String {
    if let Some(first) = f.choices.as_ref().and_then(|c| c.first()) {
        return quote_if_needed(&display_value(first));
    }
    if let Some(d) = &f.default {
        return quote_if_needed(&display_value(d));
    }
    match f.kind {
        FieldType::Boolean => "yes".into(),
        FieldType::Integer | FieldType::Number => "1".into(),
        FieldType::Array => "[]".into(),
        FieldType::Object => "{}".into(),
        FieldType::String | FieldType::Any => "\"…\"".into(),
    }
}

/// A value as it must be typed: quoted when it has spaces or quotes.
pub fn quote_if_needed(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'')
    {
        return v.to_owned();
    }
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Reads `text` (what follows the inquiry id) as an answer to `schema`: the response to
/// send, with defaults filled in as StackStorm would.
pub fn parse_answer(
    text: &str,
    schema: &ResponseSchema,
) -> Result<Map<String, Value>, AnswerError> {
    if text.chars().count() > MAX_ANSWER_CHARS {
        return Err(AnswerError::TooLong);
    }
    let words = words(text)?;
    if words.is_empty() {
        return Err(AnswerError::Empty {
            expected: format!("`{}`", example_answer(schema)),
        });
    }
    let main = schema.main_field();
    let mut response = Map::new();
    if let [Word {
        key: None, value, ..
    }] = words.as_slice()
    {
        if let Some(main) = main {
            response.insert(main.name.clone(), cast(main, value)?);
            return validate_response(response, schema);
        }
    }
    for word in &words {
        let Some(key) = &word.key else {
            let hint = match main {
                Some(f) if words.len() > 1 => format!(
                    " (a lone value answers `{}` only when it is the whole answer)",
                    f.name
                ),
                _ => format!(", e.g. `{}`", example_answer(schema)),
            };
            return Err(AnswerError::NotKeyValue {
                token: word.raw.clone(),
                hint,
            });
        };
        if key.is_empty() {
            return Err(AnswerError::NotKeyValue {
                token: word.raw.clone(),
                hint: format!(", e.g. `{}`", example_answer(schema)),
            });
        }
        if response.contains_key(key) {
            return Err(AnswerError::Duplicate(key.clone()));
        }
        let value = match schema.field(key) {
            Some(field) => cast(field, &word.value)?,
            None if schema.extra_allowed => Value::String(word.value.clone()),
            None => {
                let known: Vec<String> = schema
                    .fields
                    .iter()
                    .map(|f| format!("`{}`", f.name))
                    .collect();
                return Err(AnswerError::UnknownField {
                    field: key.clone(),
                    known: english_list(&known),
                });
            }
        };
        response.insert(key.clone(), value);
    }
    validate_response(response, schema)
}

/// Checks a response (typed or from a button) against the schema: every named field's
/// type and `enum`, defaults filled in for what is missing (StackStorm's `use_default`),
/// then the required fields.
pub fn validate_response(
    mut response: Map<String, Value>,
    schema: &ResponseSchema,
) -> Result<Map<String, Value>, AnswerError> {
    for field in &schema.fields {
        if let Some(value) = response.get(&field.name) {
            check_value(field, value)?;
        }
    }
    for field in &schema.fields {
        if let (None, Some(default)) = (response.get(&field.name), &field.default) {
            response.insert(field.name.clone(), default.clone());
        }
    }
    let missing: Vec<String> = schema
        .fields
        .iter()
        .filter(|f| f.required && response.get(&f.name).is_none_or(Value::is_null))
        .map(|f| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(AnswerError::Missing(missing));
    }
    Ok(response)
}

fn expected_of(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Boolean => "yes or no",
        FieldType::Integer => "a whole number",
        FieldType::Number => "a number",
        FieldType::Array => "a JSON array such as [1, 2]",
        FieldType::Object => "a JSON object such as {\"a\": 1}",
        FieldType::String => "text",
        FieldType::Any => "a value",
    }
}

fn check_value(field: &Field, value: &Value) -> Result<(), AnswerError> {
    let type_ok = match field.kind {
        FieldType::Boolean => value.is_boolean(),
        FieldType::Integer => value.is_i64() || value.is_u64(),
        FieldType::Number => value.is_number(),
        FieldType::String => value.is_string(),
        FieldType::Array => value.is_array(),
        FieldType::Object => value.is_object(),
        FieldType::Any => true,
    };
    if !type_ok {
        return Err(AnswerError::Invalid {
            field: field.name.clone(),
            expected: expected_of(field.kind).into(),
            got: truncate(&display_value(value)),
        });
    }
    if let Some(choices) = &field.choices {
        if !choices.contains(value) {
            return Err(not_allowed(field, choices, &display_value(value)));
        }
    }
    Ok(())
}

fn not_allowed(field: &Field, choices: &[Value], got: &str) -> AnswerError {
    let allowed: Vec<String> = choices
        .iter()
        .map(|c| format!("`{}`", display_value(c)))
        .collect();
    AnswerError::NotAllowed {
        field: field.name.clone(),
        allowed: list_with(&allowed, "or"),
        got: truncate(got),
    }
}

/// Long values are cut in messages.
fn truncate(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "on" | "1" => Some(true),
        "no" | "n" | "false" | "f" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Chat text as the field's JSON value.
fn cast(field: &Field, text: &str) -> Result<Value, AnswerError> {
    if let Some(choices) = &field.choices {
        // The value as shown in the listing, exactly, then a unique case-insensitive match
        // of a text choice, then the field's own typing (`yes` for a `true` choice).
        if let Some(c) = choices.iter().find(|c| display_value(c) == text) {
            return Ok(c.clone());
        }
        let folded: Vec<&Value> = choices
            .iter()
            .filter(|c| c.as_str().is_some_and(|s| s.eq_ignore_ascii_case(text)))
            .collect();
        if let [one] = folded.as_slice() {
            return Ok((*one).clone());
        }
        return match cast_type(field, text) {
            Ok(v) if choices.contains(&v) => Ok(v),
            _ => Err(not_allowed(field, choices, text)),
        };
    }
    cast_type(field, text)
}

fn cast_type(field: &Field, text: &str) -> Result<Value, AnswerError> {
    let invalid = || AnswerError::Invalid {
        field: field.name.clone(),
        expected: expected_of(field.kind).into(),
        got: truncate(text),
    };
    match field.kind {
        FieldType::Boolean => parse_bool(text).map(Value::Bool).ok_or_else(invalid),
        FieldType::Integer => text
            .trim()
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .map_err(|_| invalid()),
        FieldType::Number => {
            let t = text.trim();
            if let Ok(n) = t.parse::<i64>() {
                return Ok(Value::Number(n.into()));
            }
            // Rust reads `inf` and `NaN` as floats; JSON has no such numbers.
            t.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(invalid)
        }
        FieldType::Array => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Array(_)) => Ok(v),
            _ => Err(invalid()),
        },
        FieldType::Object => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(invalid()),
        },
        FieldType::String | FieldType::Any => Ok(Value::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> ResponseSchema {
        ResponseSchema::from_json(&v)
    }

    fn default_schema() -> ResponseSchema {
        schema(
            json!({"title": "response_data", "type": "object", "properties": {"continue": {
            "type": "boolean", "description": "Would you like to continue the workflow?",
            "required": true}}}),
        )
    }

    fn deploy_schema() -> ResponseSchema {
        schema(json!({"type": "object", "properties": {
            "env": {"type": "string", "enum": ["staging", "prod"], "required": true},
            "count": {"type": "integer", "default": 1},
            "ratio": {"type": "number"},
            "note": {"type": "string"},
            "tags": {"type": "array"},
        }}))
    }

    #[test]
    fn booleans_are_typed_the_way_st2_users_type_them() {
        let s = default_schema();
        for (typed, expected) in [
            ("continue=yes", true),
            ("continue=No", false),
            ("continue=TRUE", true),
            ("continue=off", false),
            ("continue=1", true),
            ("y", true),
            ("\"no\"", false),
        ] {
            let r = parse_answer(typed, &s).unwrap_or_else(|e| panic!("{typed}: {e}"));
            assert_eq!(
                r,
                json!({"continue": expected}).as_object().unwrap().clone()
            );
        }
        let e = parse_answer("continue=maybe", &s).unwrap_err();
        assert_eq!(e.field(), Some("continue"));
        assert_eq!(e.to_string(), "`continue` must be yes or no, not `maybe`");
    }

    #[test]
    fn pairs_quotes_numbers_and_defaults() {
        let r = parse_answer(
            r#"env=prod ratio=0.5 note="two words" tags=["a","b"]"#,
            &deploy_schema(),
        )
        .unwrap();
        assert_eq!(
            Value::Object(r),
            json!({"env": "prod", "ratio": 0.5, "note": "two words", "tags": ["a", "b"], "count": 1})
        );
        let r = parse_answer(r#"env=PROD count=3 note='a "b"' "#, &deploy_schema()).unwrap();
        assert_eq!(r["env"], "prod", "a unique case-insensitive choice");
        assert_eq!(r["count"], 3);
        assert_eq!(r["note"], "a \"b\"", "single quotes are literal");
        let r = parse_answer(r#"env=staging note="say \"hi\" \\o/""#, &deploy_schema()).unwrap();
        assert_eq!(r["note"], r#"say "hi" \o/"#);
    }

    #[test]
    fn each_error_names_its_field() {
        let s = deploy_schema();
        let cases = [
            ("env=dev", "`env` must be one of `staging` or `prod`, not `dev`"),
            ("env=prod count=many", "`count` must be a whole number, not `many`"),
            ("env=prod count=1.5", "`count` must be a whole number, not `1.5`"),
            ("env=prod ratio=NaN", "`ratio` must be a number, not `NaN`"),
            ("env=prod tags=a,b", "`tags` must be a JSON array such as [1, 2], not `a,b`"),
            (
                "env=prod colour=red",
                "`colour` is not a field of this inquiry; it asks for `env`, `count`, `ratio`, `note` and `tags`",
            ),
            ("env=prod env=staging", "`env` is given more than once"),
            ("count=2", "`env` is required"),
            ("env=\"prod", "a quote opened in `env=\"prod` is never closed"),
        ];
        for (typed, message) in cases {
            let e = parse_answer(typed, &s).unwrap_err();
            assert_eq!(e.to_string(), message, "{typed}");
        }
        let e = parse_answer("", &s).unwrap_err();
        assert_eq!(e.to_string(), "no answer given; answer with `env=staging`");
    }

    #[test]
    fn a_lone_value_answers_only_the_main_field_and_only_alone() {
        let r = parse_answer("prod", &deploy_schema()).unwrap();
        assert_eq!(r["env"], "prod");
        let e = parse_answer("prod count=2", &deploy_schema()).unwrap_err();
        assert!(matches!(e, AnswerError::NotKeyValue { .. }), "{e}");
        let two = schema(json!({"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}));
        let e = parse_answer("x", &two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`x` is not of the form key=value, e.g. `a=\"…\"`"
        );
        let e = parse_answer("=x", &two).unwrap_err();
        assert!(matches!(e, AnswerError::NotKeyValue { .. }), "{e}");
    }

    #[test]
    fn free_form_schemas_take_any_key_as_text() {
        let s = schema(json!({"type": "object"}));
        let r = parse_answer("reason=\"all good\" ok=yes", &s).unwrap();
        assert_eq!(Value::Object(r), json!({"reason": "all good", "ok": "yes"}));
    }

    #[test]
    fn button_values_are_checked_like_typed_ones() {
        let s = deploy_schema();
        let ok = validate_response(json!({"env": "prod"}).as_object().unwrap().clone(), &s);
        assert_eq!(ok.unwrap()["count"], 1);
        let forged = validate_response(json!({"env": "qa"}).as_object().unwrap().clone(), &s);
        assert_eq!(forged.unwrap_err().field(), Some("env"));
        let wrong = validate_response(
            json!({"continue": "yes"}).as_object().unwrap().clone(),
            &default_schema(),
        );
        assert_eq!(wrong.unwrap_err().field(), Some("continue"));
    }

    #[test]
    fn hostile_input_is_bounded() {
        let s = default_schema();
        let long = "continue=yes ".repeat(2000);
        assert_eq!(parse_answer(&long, &s).unwrap_err(), AnswerError::TooLong);
        let many = "a=1 ".repeat(MAX_PAIRS + 1);
        assert_eq!(
            parse_answer(&many, &schema(json!({}))).unwrap_err(),
            AnswerError::TooLong
        );
        for odd in ["\"", "'", "=", "==", "a=\"\\", "\u{0}", "k=\u{202e}x"] {
            let _ = parse_answer(odd, &s);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any chat text, mutated from real answers, is read or refused with a reason; a
        /// response read satisfies the schema (its check passes again).
        #[test]
        fn any_answer_is_read_or_refused_without_panicking(
            real in proptest::sample::select(vec![
                "env=prod count=3 note=\"two words\"",
                "continue=yes",
                "prod",
                "tags=[\"a\",\"b\"] ratio=0.5 env='staging'",
                "env=\"p\\\"r\" note=x",
            ]),
            cut in 0usize..60,
            noise in ".{0,12}",
        ) {
            let mut text = real.to_owned();
            let at = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
            text.insert_str(at, &noise);
            for schema in [deploy_schema(), default_schema(), schema(json!({}))] {
                if let Ok(response) = parse_answer(&text, &schema) {
                    proptest::prop_assert!(validate_response(response, &schema).is_ok());
                }
            }
        }
    }

    #[test]
    fn examples_show_what_to_type() {
        assert_eq!(example_answer(&default_schema()), "continue=yes");
        assert_eq!(example_answer(&deploy_schema()), "env=staging");
        assert_eq!(quote_if_needed("two words"), "\"two words\"");
        assert_eq!(quote_if_needed(""), "\"\"");
    }
}
