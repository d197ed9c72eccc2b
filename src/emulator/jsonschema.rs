//! The part of `jsonschema` (4.26, as pinned by st2 master) that st2 uses to validate
//! action parameters and inquiry responses, with st2's own wrapper
//! (`st2common/util/schema/__init__.py`: `validate(..., cls=CustomValidator,
//! use_default=True, allow_default_none=True)`).
//!
//! * `CustomValidator`: Draft 4 keywords, except that `properties` is Draft 3's
//!   (a property's own `"required": true`); an object-level `required` list is
//!   ignored. Modelled keywords: `type`, `enum`, `properties`, `additionalProperties`,
//!   `items`, `anyOf`, `oneOf`, `minimum`, `maximum`, `minLength`, `maxLength`,
//!   `minItems`, `maxItems`, `pattern`.
//! * Before validating, `modify_schema_allow_default_none` lets `null` through for
//!   optional properties whose default is `null` or absent, and
//!   `assign_default_values` fills in defaults.
//! * The error raised is `best_match`'s, and its text is `str(ValidationError)`: the
//!   message, then `Failed validating '<kw>' in schema[...]:` and `On instance[...]:`
//!   with `pprint.pformat(width=72, sort_dicts=False)` of the schema and instance —
//!   which st2 puts verbatim into its 400 faultstrings.

use serde_json::{Map, Value};

use super::util::{py_repr, py_str_repr};

/// One step of a path into a schema or an instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Step {
    Index(usize),
    Key(String),
}

impl Step {
    fn repr(&self) -> String {
        match self {
            Step::Index(i) => i.to_string(),
            Step::Key(k) => py_str_repr(k),
        }
    }
}

/// A `jsonschema.ValidationError`.
#[derive(Debug, Clone)]
pub(crate) struct SchemaError {
    pub message: String,
    validator: &'static str,
    /// `relative_schema_path`, the keyword last.
    schema_path: Vec<Step>,
    /// `relative_path` into the instance.
    path: Vec<Step>,
    instance: Value,
    schema: Value,
    context: Vec<SchemaError>,
}

impl SchemaError {
    fn new(message: String, validator: &'static str, instance: &Value, schema: &Value) -> Self {
        SchemaError {
            message,
            validator,
            schema_path: vec![Step::Key(validator.to_string())],
            path: Vec::new(),
            instance: instance.clone(),
            schema: schema.clone(),
            context: Vec::new(),
        }
    }

    /// `str(error)`.
    pub(crate) fn verbose(&self) -> String {
        let index = |word: &str, steps: &[Step]| {
            if steps.is_empty() {
                word.to_string()
            } else {
                let parts: Vec<String> = steps.iter().map(Step::repr).collect();
                format!("{word}[{}]", parts.join("]["))
            }
        };
        let schema_steps = &self.schema_path[..self.schema_path.len().saturating_sub(1)];
        let indent = |text: String| text.replace('\n', "\n    ");
        format!(
            "{}\n\nFailed validating {} in {}:\n    {}\n\nOn {}:\n    {}",
            self.message,
            py_str_repr(self.validator),
            index("schema", schema_steps),
            indent(pformat(&self.schema)),
            index("instance", &self.path),
            indent(pformat(&self.instance)),
        )
    }

    /// `best_match`'s relevance for `max`: shallower first, then the greater path,
    /// then not `anyOf`/`oneOf`.
    fn relevance(&self) -> (isize, Vec<Step>, bool) {
        (
            -isize::try_from(self.path.len()).unwrap_or(isize::MAX),
            self.path.clone(),
            !matches!(self.validator, "anyOf" | "oneOf"),
        )
    }
}

/// `jsonschema.exceptions.best_match`.
fn best_match(errors: Vec<SchemaError>) -> Option<SchemaError> {
    let mut best: Option<SchemaError> = None;
    for e in errors {
        // `max` keeps the first of equal elements.
        if best.as_ref().is_none_or(|b| e.relevance() > b.relevance()) {
            best = Some(e);
        }
    }
    let mut best = best?;
    while !best.context.is_empty() {
        let mut ctx = std::mem::take(&mut best.context);
        ctx.sort_by_key(SchemaError::relevance);
        if ctx.len() >= 2 && ctx[0].relevance() == ctx[1].relevance() {
            return Some(best);
        }
        best = ctx.swap_remove(0);
    }
    Some(best)
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.as_number().is_some_and(|n| n.is_i64() || n.is_u64()),
        "number" => v.is_number(),
        _ => true,
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Errors of `instance` against `schema` (`iter_errors`), keywords in schema order.
fn iter_errors(instance: &Value, schema: &Value) -> Vec<SchemaError> {
    let Value::Object(s) = schema else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for (kw, value) in s {
        match kw.as_str() {
            "type" => {
                let types: Vec<&str> = match value {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => continue,
                };
                if !types.iter().any(|t| is_type(instance, t)) {
                    let reprs: Vec<String> = types.iter().map(|t| py_str_repr(t)).collect();
                    errors.push(SchemaError::new(
                        format!("{} is not of type {}", py_repr(instance), reprs.join(", ")),
                        "type",
                        instance,
                        schema,
                    ));
                }
            }
            "enum" => {
                let Value::Array(options) = value else {
                    continue;
                };
                if !options.iter().any(|o| json_equal(o, instance)) {
                    errors.push(SchemaError::new(
                        format!("{} is not one of {}", py_repr(instance), py_repr(value)),
                        "enum",
                        instance,
                        schema,
                    ));
                }
            }
            "properties" => {
                let (Value::Object(props), Value::Object(inst)) = (value, instance) else {
                    continue;
                };
                for (name, sub) in props {
                    match inst.get(name) {
                        Some(v) => {
                            for mut e in iter_errors(v, sub) {
                                e.path.insert(0, Step::Key(name.clone()));
                                e.schema_path.insert(0, Step::Key(name.clone()));
                                e.schema_path.insert(0, Step::Key("properties".into()));
                                errors.push(e);
                            }
                        }
                        None if sub.get("required").is_some_and(super::util::py_truthy) => {
                            errors.push(SchemaError {
                                message: format!("{} is a required property", py_str_repr(name)),
                                validator: "required",
                                schema_path: vec![
                                    Step::Key("properties".into()),
                                    Step::Key(name.clone()),
                                    Step::Key("required".into()),
                                ],
                                path: vec![Step::Key(name.clone())],
                                instance: instance.clone(),
                                schema: schema.clone(),
                                context: Vec::new(),
                            });
                        }
                        None => {}
                    }
                }
            }
            "additionalProperties" => {
                let Value::Object(inst) = instance else {
                    continue;
                };
                let props = s.get("properties").and_then(Value::as_object);
                let mut extras: Vec<&String> = inst
                    .keys()
                    .filter(|k| !props.is_some_and(|p| p.contains_key(k.as_str())))
                    .collect();
                match value {
                    Value::Object(_) => {
                        for k in extras {
                            for mut e in iter_errors(&inst[k.as_str()], value) {
                                e.path.insert(0, Step::Key(k.clone()));
                                e.schema_path
                                    .insert(0, Step::Key("additionalProperties".into()));
                                errors.push(e);
                            }
                        }
                    }
                    Value::Bool(false) if !extras.is_empty() => {
                        extras.sort();
                        let verb = if extras.len() == 1 { "was" } else { "were" };
                        let list: Vec<String> = extras.iter().map(|k| py_str_repr(k)).collect();
                        errors.push(SchemaError::new(
                            format!(
                                "Additional properties are not allowed ({} {verb} unexpected)",
                                list.join(", ")
                            ),
                            "additionalProperties",
                            instance,
                            schema,
                        ));
                    }
                    _ => {}
                }
            }
            "items" => {
                let Value::Array(items) = instance else {
                    continue;
                };
                match value {
                    Value::Object(_) => {
                        for (i, item) in items.iter().enumerate() {
                            for mut e in iter_errors(item, value) {
                                e.path.insert(0, Step::Index(i));
                                e.schema_path.insert(0, Step::Key("items".into()));
                                errors.push(e);
                            }
                        }
                    }
                    Value::Array(schemas) => {
                        for (i, (item, sub)) in items.iter().zip(schemas).enumerate() {
                            for mut e in iter_errors(item, sub) {
                                e.path.insert(0, Step::Index(i));
                                e.schema_path.insert(0, Step::Index(i));
                                e.schema_path.insert(0, Step::Key("items".into()));
                                errors.push(e);
                            }
                        }
                    }
                    _ => {}
                }
            }
            kw @ ("anyOf" | "oneOf") => {
                let Value::Array(subs) = value else { continue };
                let mut context = Vec::new();
                let mut valid = 0;
                for (i, sub) in subs.iter().enumerate() {
                    let errs = iter_errors(instance, sub);
                    if errs.is_empty() {
                        valid += 1;
                    }
                    for mut e in errs {
                        e.schema_path.insert(0, Step::Index(i));
                        context.push(e);
                    }
                }
                let validator = if kw == "anyOf" { "anyOf" } else { "oneOf" };
                if valid == 0 {
                    let mut e = SchemaError::new(
                        format!(
                            "{} is not valid under any of the given schemas",
                            py_repr(instance)
                        ),
                        validator,
                        instance,
                        schema,
                    );
                    e.context = context;
                    errors.push(e);
                } else if valid > 1 && validator == "oneOf" {
                    errors.push(SchemaError::new(
                        format!(
                            "{} is valid under each of {}",
                            py_repr(instance),
                            py_repr(value)
                        ),
                        "oneOf",
                        instance,
                        schema,
                    ));
                }
            }
            kw @ ("minimum" | "maximum") => {
                let (Some(limit), Some(n)) = (number(value), number(instance)) else {
                    continue;
                };
                if instance.is_boolean() {
                    continue;
                }
                let (bad, words, validator) = if kw == "minimum" {
                    (n < limit, "less than the minimum", "minimum")
                } else {
                    (n > limit, "greater than the maximum", "maximum")
                };
                if bad {
                    errors.push(SchemaError::new(
                        format!("{} is {words} of {}", py_repr(instance), py_repr(value)),
                        validator,
                        instance,
                        schema,
                    ));
                }
            }
            kw @ ("minLength" | "maxLength" | "minItems" | "maxItems") => {
                let Some(limit) = value.as_u64() else {
                    continue;
                };
                let len = match (kw, instance) {
                    ("minLength" | "maxLength", Value::String(s)) => s.chars().count(),
                    ("minItems" | "maxItems", Value::Array(a)) => a.len(),
                    _ => continue,
                };
                let len = u64::try_from(len).unwrap_or(u64::MAX);
                let (bad, message, validator) = match kw {
                    "minLength" | "minItems" => (
                        len < limit,
                        if limit == 1 {
                            "should be non-empty"
                        } else {
                            "is too short"
                        },
                        if kw == "minLength" {
                            "minLength"
                        } else {
                            "minItems"
                        },
                    ),
                    _ => (
                        len > limit,
                        if limit == 0 {
                            "is expected to be empty"
                        } else {
                            "is too long"
                        },
                        if kw == "maxLength" {
                            "maxLength"
                        } else {
                            "maxItems"
                        },
                    ),
                };
                if bad {
                    errors.push(SchemaError::new(
                        format!("{} {message}", py_repr(instance)),
                        validator,
                        instance,
                        schema,
                    ));
                }
            }
            "pattern" => {
                let (Some(p), Some(text)) = (value.as_str(), instance.as_str()) else {
                    continue;
                };
                let matched = super::pyre::compile(p, "")
                    .ok()
                    .and_then(|re| re.is_match(text).ok())
                    .unwrap_or(true);
                if !matched {
                    errors.push(SchemaError::new(
                        format!("{} does not match {}", py_repr(instance), py_str_repr(p)),
                        "pattern",
                        instance,
                        schema,
                    ));
                }
            }
            _ => {}
        }
    }
    errors
}

/// Python equality of JSON values (`1 == 1.0`; `True` is not `1` for `enum`, which
/// jsonschema's `equal` keeps apart).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// `modify_schema_allow_default_none`: optional properties whose default is `null`
/// (or absent) also accept `null`.
pub(crate) fn allow_default_none(schema: &Value) -> Value {
    let mut schema = schema.clone();
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return schema;
    };
    for (_, prop) in props.iter_mut() {
        let Value::Object(p) = prop else { continue };
        let optional = !p.get("required").is_some_and(super::util::py_truthy);
        let default_none = p.get("default").is_none_or(Value::is_null);
        if (p.contains_key("default") || optional) && default_none {
            let nullable_list = |list: &Vec<Value>| {
                list.iter().any(|t| {
                    t.as_str() == Some("null")
                        || t.get("type").and_then(Value::as_str).unwrap_or("string") == "null"
                })
            };
            if let Some(Value::Array(list)) = p.get_mut("anyOf") {
                if !nullable_list(list) {
                    list.push(serde_json::json!({"type": "null"}));
                }
            } else if let Some(Value::Array(list)) = p.get_mut("oneOf") {
                if !nullable_list(list) {
                    list.push(serde_json::json!({"type": "null"}));
                }
            } else if let Some(Value::Array(types)) = p.get_mut("type") {
                if !types.iter().any(|t| t == "null") {
                    types.push(Value::String("null".into()));
                }
            } else {
                let t = p
                    .get("type")
                    .cloned()
                    .unwrap_or_else(|| Value::String("string".into()));
                if t != "null" {
                    p.insert(
                        "type".into(),
                        Value::Array(vec![t, Value::String("null".into())]),
                    );
                }
            }
        }
        let ty = p.get("type").cloned();
        let has = |t: &str| match &ty {
            Some(Value::String(s)) => s == t,
            Some(Value::Array(list)) => list.iter().any(|x| x == t),
            _ => false,
        };
        if has("array") {
            if let Some(items) = p.get("items") {
                if items
                    .get("properties")
                    .is_some_and(|x| x.as_object().is_some_and(|o| !o.is_empty()))
                {
                    let new = allow_default_none(items);
                    p.insert("items".into(), new);
                }
            }
        }
        if has("object")
            && p.get("properties")
                .is_some_and(|x| x.as_object().is_some_and(|o| !o.is_empty()))
        {
            let new = allow_default_none(&Value::Object(p.clone()));
            *prop = new;
        }
    }
    schema
}

/// `assign_default_values` for an object instance and an object schema.
pub(crate) fn assign_defaults(instance: &Value, schema: &Value) -> Value {
    let (Value::Object(inst), Some(props)) = (
        instance,
        schema.get("properties").and_then(Value::as_object),
    ) else {
        return instance.clone();
    };
    let mut out: Map<String, Value> = inst.clone();
    for (name, prop) in props {
        let Value::Object(p) = prop else { continue };
        if let Some(default) = p.get("default") {
            if out.get(name).is_none_or(Value::is_null) {
                out.insert(name.clone(), default.clone());
            }
        }
        let Some(v) = out.get(name).cloned().filter(|v| !v.is_null()) else {
            continue;
        };
        let is_object = match p.get("type") {
            Some(Value::String(s)) => s == "object",
            Some(Value::Array(l)) => l.iter().any(|t| t == "object"),
            _ => false,
        };
        if is_object && v.is_object() {
            out.insert(name.clone(), assign_defaults(&v, prop));
        }
    }
    Value::Object(out)
}

/// st2's `util_schema.validate(instance, schema, cls=CustomValidator,
/// use_default=True, allow_default_none=True)`: `Err` is the best-matching error.
pub(crate) fn validate(instance: &Value, schema: &Value) -> Result<Value, Box<SchemaError>> {
    validate_nullable(instance, &allow_default_none(schema))
}

/// [`validate`] against a schema that went through [`allow_default_none`] already (one
/// worked out once and kept).
pub(crate) fn validate_nullable(
    instance: &Value,
    schema: &Value,
) -> Result<Value, Box<SchemaError>> {
    let instance = if schema.get("type").and_then(Value::as_str) == Some("object") {
        assign_defaults(instance, schema)
    } else {
        instance.clone()
    };
    match best_match(iter_errors(&instance, schema)) {
        Some(e) => Err(Box::new(e)),
        None => Ok(instance),
    }
}

/// `pprint.pformat(value, width=72, sort_dicts=False)`.
pub(crate) fn pformat(v: &Value) -> String {
    let mut out = String::new();
    format_value(v, 0, 0, 0, &mut out);
    out
}

const WIDTH: usize = 72;

fn format_value(v: &Value, indent: usize, allowance: usize, level: usize, out: &mut String) {
    let rep = py_repr(v);
    let max_width = WIDTH.saturating_sub(indent + allowance);
    if rep.chars().count() <= max_width {
        out.push_str(&rep);
        return;
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('{');
            let indent = indent + 1;
            let last = m.len() - 1;
            for (i, (k, item)) in m.iter().enumerate() {
                let krep = py_str_repr(k);
                out.push_str(&krep);
                out.push_str(": ");
                let allow = if i == last { allowance + 1 } else { 1 };
                format_value(
                    item,
                    indent + krep.chars().count() + 2,
                    allow,
                    level + 1,
                    out,
                );
                if i != last {
                    out.push_str(",\n");
                    out.push_str(&" ".repeat(indent));
                }
            }
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            let indent = indent + 1;
            let last = a.len() - 1;
            for (i, item) in a.iter().enumerate() {
                let allow = if i == last { allowance + 1 } else { 1 };
                format_value(item, indent, allow, level + 1, out);
                if i != last {
                    out.push_str(",\n");
                    out.push_str(&" ".repeat(indent));
                }
            }
            out.push(']');
        }
        Value::String(s) if !s.is_empty() => format_str(s, indent, allowance, level + 1, out),
        _ => out.push_str(&rep),
    }
}

/// `PrettyPrinter._pprint_str`: a long string split after whitespace into adjacent
/// literals (parenthesised at the top level).
fn format_str(s: &str, mut indent: usize, mut allowance: usize, level: usize, out: &mut String) {
    let mut chunks: Vec<String> = Vec::new();
    let lines: Vec<&str> = s.split_inclusive('\n').collect();
    if level == 1 {
        indent += 1;
        allowance += 1;
    }
    let max_width = WIDTH.saturating_sub(indent);
    let mut max_width1 = max_width;
    let count = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let rep = py_str_repr(line);
        if i == count - 1 {
            max_width1 = max_width1.saturating_sub(allowance);
        }
        if rep.chars().count() <= max_width1 {
            chunks.push(rep);
            continue;
        }
        // re.findall(r'\S*\s*', line), the final empty match dropped.
        let parts = split_words(line);
        let mut max_width2 = max_width;
        let mut current = String::new();
        let nparts = parts.len();
        for (j, part) in parts.iter().enumerate() {
            let candidate = format!("{current}{part}");
            if j == nparts - 1 && i == count - 1 {
                max_width2 = max_width2.saturating_sub(allowance);
            }
            if py_str_repr(&candidate).chars().count() > max_width2 {
                if !current.is_empty() {
                    chunks.push(py_str_repr(&current));
                }
                current = (*part).to_string();
            } else {
                current = candidate;
            }
        }
        if !current.is_empty() {
            chunks.push(py_str_repr(&current));
        }
    }
    if chunks.len() == 1 {
        out.push_str(&py_str_repr(s));
        return;
    }
    if level == 1 {
        out.push('(');
    }
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(c);
    }
    if level == 1 {
        out.push(')');
    }
}

/// `re.findall(r'\S*\s*', text)` without its final empty match.
fn split_words(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && !chars[i].1.is_whitespace() {
            i += 1;
        }
        while i < chars.len() && chars[i].1.is_whitespace() {
            i += 1;
        }
        let end = chars.get(i).map_or(text.len(), |c| c.0);
        parts.push(&text[start..end]);
        start = end;
    }
    parts
}
