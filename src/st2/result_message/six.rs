//! The `six` module that `format_execution_result.py` puts in the template context
//! (`contrib/chatops/actions/format_execution_result.py`): `six.iteritems(d)` and
//! friends, which `default.j2` and many aliases use to walk mappings.

use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Tuple, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::python::{py_str, py_type, type_error};
use super::JValue;

/// The `six` module as templates use it: `six.iteritems(d)` and friends.
#[derive(Debug)]
pub(super) struct Six;

impl Object for Six {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[JValue],
    ) -> Result<JValue, Error> {
        let [value] = args else {
            return Err(type_error(format!(
                "{method}() takes 1 positional argument but {} were given",
                args.len()
            )));
        };
        match method {
            "iteritems" | "iterkeys" | "itervalues" | "viewitems" | "viewkeys" | "viewvalues" => {
                mapping_view(state, value, method)
            }
            "text_type" | "u" => py_str(state, value).map(JValue::from),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("module 'six' has no attribute '{method}'"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<module 'six'>")
    }
}

/// `six.iteritems(d)` (and keys/values): the mapping's pairs in order, as
/// `(key, value)` tuples. Anything but a mapping is an error, as in Python.
fn mapping_view(state: &State, value: &JValue, method: &str) -> Result<JValue, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("undefined value has no attribute 'items' (six.{method})"),
        ));
    }
    let pairs = match value.kind() {
        ValueKind::Map => value.as_object().and_then(|o| o.try_iter_pairs()),
        _ => None,
    };
    let Some(pairs) = pairs else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "AttributeError: '{}' object has no attribute 'items'",
                py_type(value)
            ),
        ));
    };
    let mut items = Vec::new();
    for (k, v) in pairs {
        state.consume_fuel(1)?;
        items.push(match method {
            "iterkeys" | "viewkeys" => k,
            "itervalues" | "viewvalues" => v,
            _ => JValue::from(Tuple::from([k, v])),
        });
    }
    Ok(JValue::from(items))
}
