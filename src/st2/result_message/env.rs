//! st2's Jinja environment, as `st2common/st2common/util/jinja.py`
//! (`get_jinja_environment`) builds it, and rendering within limits.
//!
//! [`build_env`] applies st2's settings (`trim_blocks`, `lstrip_blocks`, no kept
//! trailing newline, `Undefined` or `StrictUndefined`), prints `{{ value }}` with
//! Python's `str()` and registers st2's filters (`filters/`). Every render is
//! capped: fuel ([`FUEL`]) stops templates that loop forever, and a capped writer
//! stops output past [`MAX_OUTPUT_BYTES`]. Failures become the
//! [`ResultMessageError`] variant that says why.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};

use super::filters::{self, UNSUPPORTED_MARK};
use super::python::py_str;
use super::six::Six;
use super::{JValue, ResultMessageError, FUEL, MAX_OUTPUT_BYTES};

/// An environment set up like st2's `get_jinja_environment`: `undefined` is
/// `Lenient` for messages (`jinja2.Undefined`) and `Strict` for `render_values`
/// (`StrictUndefined`).
pub(super) fn build_env(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(false)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_undefined_behavior(undefined);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, state, value| {
        let text = py_str(state, value)?;
        out.write_str(&text)
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write output"))
    });
    env.add_global("six", JValue::from_object(Six));

    filters::register(&mut env);
    env
}

/// Compiles and renders `source` under `name`, mapping errors.
pub(super) fn render_source(
    env: &Environment<'static>,
    name: &str,
    source: &str,
    context: JValue,
) -> Result<String, ResultMessageError> {
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| classify_error(name, &e))?;
    render_compiled(name, &template, context)
}

/// Renders a compiled template within the output cap, mapping errors to the
/// template `name`.
pub(super) fn render_compiled(
    name: &str,
    template: &minijinja::Template<'_, '_>,
    context: JValue,
) -> Result<String, ResultMessageError> {
    render_capped(template, context).map_err(|e| classify(name, &e))
}

/// Charges fuel for `len` bytes of data a filter created: one unit per 64 bytes,
/// as [`FUEL`] counts.
pub(super) fn consume_fuel_for_bytes(state: &State, len: usize) -> Result<(), Error> {
    state.consume_fuel(u64::try_from(len / 64).unwrap_or(u64::MAX))
}

/// An `io::Write` that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct CappedWriter<'a> {
    /// The output so far.
    buf: Vec<u8>,
    /// Set when a write was refused, so that the caller can tell the cap from
    /// other write failures.
    overflowed: &'a Cell<bool>,
}

impl io::Write for CappedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > MAX_OUTPUT_BYTES {
            self.overflowed.set(true);
            return Err(io::Error::other("output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Errors of one render, before they get a template name.
enum RenderFailure {
    /// minijinja's error (syntax, render, fuel, ...).
    Engine(Error),
    /// The output grew past [`MAX_OUTPUT_BYTES`].
    TooLarge,
}

/// Renders `template` into a [`CappedWriter`].
fn render_capped(
    template: &minijinja::Template<'_, '_>,
    context: JValue,
) -> Result<String, RenderFailure> {
    let overflowed = Cell::new(false);
    let mut writer = CappedWriter {
        buf: Vec::new(),
        overflowed: &overflowed,
    };
    let result = template.render_captured_to(context, &mut writer);
    if overflowed.get() {
        return Err(RenderFailure::TooLarge);
    }
    result.map_err(RenderFailure::Engine)?;
    String::from_utf8(writer.buf).map_err(|_| {
        RenderFailure::Engine(Error::new(
            ErrorKind::WriteFailure,
            "output is not valid UTF-8",
        ))
    })
}

/// Turns a render failure into a [`ResultMessageError`] for template `name`.
fn classify(name: &str, failure: &RenderFailure) -> ResultMessageError {
    match failure {
        RenderFailure::Engine(e) => classify_error(name, e),
        RenderFailure::TooLarge => ResultMessageError::OutputTooLarge {
            template: name.to_string(),
            limit: MAX_OUTPUT_BYTES,
        },
    }
}

/// Turns a minijinja error into a [`ResultMessageError`] for template `name`.
fn classify_error(name: &str, error: &Error) -> ResultMessageError {
    let template = name.to_string();
    // A filter's error may be wrapped; look through the chain.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut out_of_fuel = false;
    while let Some(err) = cur {
        if let Some(e) = err.downcast_ref::<Error>() {
            if e.kind() == ErrorKind::OutOfFuel {
                out_of_fuel = true;
            }
            if let Some(filter) = e.detail().and_then(|d| d.strip_prefix(UNSUPPORTED_MARK)) {
                return ResultMessageError::UnsupportedFilter {
                    template,
                    filter: filter.to_string(),
                };
            }
        }
        cur = err.source();
    }
    if out_of_fuel {
        return ResultMessageError::TooExpensive { template };
    }
    let message = describe(error);
    if error.kind() == ErrorKind::SyntaxError {
        ResultMessageError::Syntax { template, message }
    } else {
        ResultMessageError::Render { template, message }
    }
}

/// One line: the error, its line number and its causes.
fn describe(err: &Error) -> String {
    let mut text = match err.detail() {
        Some(d) => format!("{}: {d}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line() {
        let _ = write!(text, " (line {line})");
    }
    let mut cur = std::error::Error::source(err);
    while let Some(cause) = cur {
        let _ = write!(text, "; {cause}");
        cur = cause.source();
    }
    text
}
