//! An inquiry's response schema, read as the list of fields a chat user fills in.
//!
//! StackStorm validates responses with its `CustomValidator`
//! (`st2common/util/schema/__init__.py`): draft 4 keywords, except that `required` is the
//! draft 3 kind — a property's own `"required": true` — and an object-level `required`
//! list is not enforced at all. Defaults are filled in before validation (`use_default`).
//! The fields here follow the same rules, so that what the bridge calls required is what
//! StackStorm will insist on.

use crate::st2::result_message::json_truthy;
use serde_json::Value;

/// A field's JSON type, as far as typing it in chat goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `boolean`: `yes`/`no`, `true`/`false`, …
    Boolean,
    /// `string`: the text as typed.
    String,
    /// `integer`: a whole number.
    Integer,
    /// `number`: any finite number.
    Number,
    /// `array`: typed as JSON (`[1, 2]`).
    Array,
    /// `object`: typed as JSON (`{"a": 1}`).
    Object,
    /// No usable `type`: the text as typed.
    Any,
}

impl FieldType {
    /// The JSON schema name shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Boolean => "boolean",
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Array => "array",
            FieldType::Object => "object",
            FieldType::Any => "any",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "boolean" => FieldType::Boolean,
            "string" => FieldType::String,
            "integer" => FieldType::Integer,
            "number" => FieldType::Number,
            "array" => FieldType::Array,
            "object" => FieldType::Object,
            _ => return None,
        })
    }

    /// `type` may be a name or a list of names (`["string", "null"]`): the first usable
    /// one, `null` aside, decides how chat text is read.
    fn from_schema(ty: Option<&Value>) -> Self {
        match ty {
            Some(Value::String(name)) => Self::from_name(name).unwrap_or(FieldType::Any),
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(Value::as_str)
                .filter(|n| *n != "null")
                .find_map(Self::from_name)
                .unwrap_or(FieldType::Any),
            _ => FieldType::Any,
        }
    }
}

/// One property of the response schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The property name (the `key` of `key=value`).
    pub name: String,
    /// Its type.
    pub kind: FieldType,
    /// Its `description`, if any.
    pub description: Option<String>,
    /// The property's own `"required"` is truthy (what StackStorm enforces).
    pub required: bool,
    /// Its `default`, filled in when the answer leaves it out.
    pub default: Option<Value>,
    /// Its `enum`: the only values allowed.
    pub choices: Option<Vec<Value>>,
}

impl Field {
    /// Required and without a default: the answer must give it.
    pub fn must_be_given(&self) -> bool {
        self.required && self.default.is_none()
    }
}

/// The response schema of one inquiry, read as fields in the schema's own order.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSchema {
    /// The schema's `title`, if any.
    pub title: Option<String>,
    /// Its properties.
    pub fields: Vec<Field>,
    /// Whether keys the schema does not name may be sent. `additionalProperties` must say
    /// so explicitly (`true` or a schema) when the schema names properties: in chat an
    /// unknown key is almost always a typo, and StackStorm would otherwise drop it silently.
    pub extra_allowed: bool,
}

impl ResponseSchema {
    /// Reads a schema; anything malformed reads as "no fields".
    pub fn from_json(schema: &Value) -> Self {
        let title = schema
            .get("title")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned);
        let fields: Vec<Field> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, spec)| Field {
                        name: name.clone(),
                        kind: match spec.get("type") {
                            None => spec
                                .get("enum")
                                .and_then(Value::as_array)
                                .map(|values| infer_enum_type(values))
                                .unwrap_or(FieldType::Any),
                            ty => FieldType::from_schema(ty),
                        },
                        description: spec
                            .get("description")
                            .and_then(Value::as_str)
                            .filter(|d| !d.trim().is_empty())
                            .map(str::to_owned),
                        required: spec.get("required").is_some_and(json_truthy),
                        default: spec.get("default").filter(|d| !d.is_null()).cloned(),
                        choices: spec
                            .get("enum")
                            .and_then(Value::as_array)
                            .filter(|v| !v.is_empty())
                            .cloned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let extra_allowed = match schema.get("additionalProperties") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Object(_)) => true,
            _ => fields.is_empty(),
        };
        Self {
            title,
            fields,
            extra_allowed,
        }
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field a lone value answers (and buttons offer): the only field, or else the
    /// only one StackStorm requires.
    pub fn main_field(&self) -> Option<&Field> {
        if let [only] = self.fields.as_slice() {
            return Some(only);
        }
        let mut required = self.fields.iter().filter(|f| f.required);
        match (required.next(), required.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }
}

/// All `enum` values of one JSON type: that type; otherwise none in particular.
fn infer_enum_type(values: &[Value]) -> FieldType {
    let kind = |v: &Value| match v {
        Value::Bool(_) => FieldType::Boolean,
        Value::String(_) => FieldType::String,
        Value::Number(n) if n.is_i64() || n.is_u64() => FieldType::Integer,
        Value::Number(_) => FieldType::Number,
        _ => FieldType::Any,
    };
    let mut kinds = values.iter().map(kind);
    match kinds.next() {
        Some(first) if kinds.all(|k| k == first) => first,
        _ => FieldType::Any,
    }
}

/// A JSON value as a user types it: strings bare, everything else as JSON.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The schema st2's inquirer runner uses when none is given (`runner.yaml`).
    pub(crate) fn default_schema() -> Value {
        json!({"title": "response_data", "type": "object", "properties": {"continue": {
            "type": "boolean", "description": "Would you like to continue the workflow?",
            "required": true}}})
    }

    #[test]
    fn st2s_default_schema_is_one_required_boolean() {
        let s = ResponseSchema::from_json(&default_schema());
        assert_eq!(s.title.as_deref(), Some("response_data"));
        assert_eq!(s.fields.len(), 1);
        let f = &s.fields[0];
        assert_eq!(
            (f.name.as_str(), f.kind, f.required),
            ("continue", FieldType::Boolean, true)
        );
        assert!(!s.extra_allowed);
        assert_eq!(s.main_field().map(|f| f.name.as_str()), Some("continue"));
    }

    #[test]
    fn types_lists_enums_and_defaults_are_read() {
        let s = ResponseSchema::from_json(&json!({"type": "object", "properties": {
            "env": {"enum": ["staging", "prod"], "required": true},
            "count": {"type": ["integer", "null"], "default": 1},
            "ratio": {"type": "number"},
            "note": {"type": "string", "default": null},
            "odd": {"type": "wat"},
        }}));
        let kinds: Vec<_> = s.fields.iter().map(|f| (f.name.as_str(), f.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("env", FieldType::String),
                ("count", FieldType::Integer),
                ("ratio", FieldType::Number),
                ("note", FieldType::String),
                ("odd", FieldType::Any),
            ]
        );
        assert_eq!(s.field("count").unwrap().default, Some(json!(1)));
        assert_eq!(
            s.field("note").unwrap().default,
            None,
            "a null default is none"
        );
        assert_eq!(s.main_field().map(|f| f.name.as_str()), Some("env"));
    }

    #[test]
    fn an_object_level_required_list_is_not_enforced_as_in_st2() {
        let s = ResponseSchema::from_json(&json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}));
        assert!(s.fields.iter().all(|f| !f.required));
        assert_eq!(s.main_field(), None);
    }

    #[test]
    fn malformed_schemas_have_no_fields_and_take_any_key() {
        for bad in [json!(null), json!("x"), json!({"properties": []})] {
            let s = ResponseSchema::from_json(&bad);
            assert!(s.fields.is_empty());
            assert!(s.extra_allowed);
        }
        let s = ResponseSchema::from_json(&json!({"properties": {"a": {}},
            "additionalProperties": {"type": "string"}}));
        assert!(s.extra_allowed);
    }
}
