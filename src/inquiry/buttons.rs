//! Which answers can be offered as buttons.
//!
//! A button answers one field with one value, so it is offered only when one field settles
//! the inquiry: the schema has a single field, or a single required one (the others then
//! take their defaults or stay out, as StackStorm allows). A boolean field gets two
//! buttons, an `enum` field one per value. Anything else — free text, numbers, several
//! required fields — is answered by typing.

use serde_json::Value;

use super::schema::{display_value, FieldType, ResponseSchema};

/// Most buttons offered for one inquiry: chat clients wrap or cut longer rows (Discord
/// takes five a row, Slack's actions block 25), and a long list reads better as text.
pub const MAX_BUTTONS: usize = 10;

/// Longest button label, in characters (Slack's limit for a button's text is 75,
/// Discord's 80).
pub const MAX_LABEL_CHARS: usize = 75;

/// One button: what it says and the value it answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonChoice {
    /// The label.
    pub label: String,
    /// The field's value when pressed.
    pub value: Value,
}

/// The buttons for one inquiry: all answer `field`.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonOffer {
    /// The field the buttons answer.
    pub field: String,
    /// One button per value.
    pub choices: Vec<ButtonChoice>,
}

/// The buttons that answer `schema`, when one field settles it and its values are few.
pub fn button_offer(schema: &ResponseSchema) -> Option<ButtonOffer> {
    let field = schema.main_field()?;
    // Another field that must be given cannot come from a button.
    if schema
        .fields
        .iter()
        .any(|f| f.name != field.name && f.must_be_given())
    {
        return None;
    }
    let values: Vec<Value> = match (&field.choices, field.kind) {
        (Some(choices), _) => choices.clone(),
        (None, FieldType::Boolean) => vec![Value::Bool(true), Value::Bool(false)],
        _ => return None,
    };
    if values.is_empty() || values.len() > MAX_BUTTONS || values.iter().any(|v| !is_scalar(v)) {
        return None;
    }
    let choices = values
        .into_iter()
        .map(|value| ButtonChoice {
            label: label_of(&value),
            value,
        })
        .collect();
    Some(ButtonOffer {
        field: field.name.clone(),
        choices,
    })
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::Bool(_) | Value::String(_) | Value::Number(_))
}

fn label_of(v: &Value) -> String {
    let text = match v {
        Value::Bool(true) => "Yes".to_owned(),
        Value::Bool(false) => "No".to_owned(),
        other => display_value(other),
    };
    let text = if text.trim().is_empty() {
        format!("{v}")
    } else {
        text
    };
    match text.char_indices().nth(MAX_LABEL_CHARS - 1) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offer(schema: Value) -> Option<ButtonOffer> {
        button_offer(&ResponseSchema::from_json(&schema))
    }

    #[test]
    fn a_boolean_gets_yes_and_no() {
        let o = offer(json!({"properties": {"continue": {"type": "boolean", "required": true}}}))
            .unwrap();
        assert_eq!(o.field, "continue");
        let labels: Vec<_> = o
            .choices
            .iter()
            .map(|c| (c.label.as_str(), c.value.clone()))
            .collect();
        assert_eq!(labels, vec![("Yes", json!(true)), ("No", json!(false))]);
    }

    #[test]
    fn an_enum_gets_one_button_per_value_beside_optional_fields() {
        let o = offer(json!({"properties": {
            "env": {"enum": ["staging", "prod"], "required": true},
            "note": {"type": "string"},
            "count": {"type": "integer", "required": true, "default": 1},
        }}));
        assert_eq!(o, None, "two required fields, though one has a default");
        let o = offer(json!({"properties": {
            "env": {"enum": ["staging", "prod", 3], "required": true},
            "note": {"type": "string"},
        }}))
        .unwrap();
        let labels: Vec<_> = o.choices.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, vec!["staging", "prod", "3"]);
    }

    #[test]
    fn text_numbers_many_values_and_several_fields_are_typed() {
        assert_eq!(
            offer(json!({"properties": {"why": {"type": "string"}}})),
            None
        );
        assert_eq!(
            offer(json!({"properties": {"n": {"type": "integer"}}})),
            None
        );
        let many: Vec<Value> = (0..=MAX_BUTTONS).map(|i| json!(i)).collect();
        assert_eq!(offer(json!({"properties": {"n": {"enum": many}}})), None);
        assert_eq!(
            offer(json!({"properties": {"a": {"type": "boolean"}, "b": {"type": "boolean"}}})),
            None
        );
        assert_eq!(
            offer(json!({"properties": {"o": {"enum": [{"a": 1}]}}})),
            None
        );
        assert_eq!(offer(json!(null)), None);
    }

    #[test]
    fn long_labels_are_cut_to_the_platform_limit() {
        let long = "x".repeat(200);
        let o = offer(json!({"properties": {"p": {"enum": [long]}}})).unwrap();
        assert_eq!(o.choices[0].label.chars().count(), MAX_LABEL_CHARS);
        assert_eq!(o.choices[0].value, json!("x".repeat(200)));
    }
}
