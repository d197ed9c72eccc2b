//! Request logging that never writes a login link: `/login/<id>` is logged as
//! `/login/[redacted]`, because the id is a bearer secret until it is used.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    Error,
};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

/// The path as it may appear in logs.
pub fn loggable_path(path: &str) -> String {
    match path.strip_prefix("/login/") {
        Some(rest) if !rest.is_empty() => "/login/[redacted]".to_owned(),
        _ => path.to_owned(),
    }
}

/// A root span with the method and the redacted path; no query string, no headers.
pub struct RedactingRootSpan;

impl RootSpanBuilder for RedactingRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing::info_span!(
            "http request",
            method = %request.method(),
            path = %loggable_path(request.path()),
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        if let Ok(response) = outcome {
            span.record("status", response.status().as_u16());
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_links_are_redacted() {
        assert_eq!(loggable_path("/login/abcDEF123"), "/login/[redacted]");
        assert_eq!(loggable_path("/ready"), "/ready");
        assert_eq!(
            loggable_path("/login-assets/login.js"),
            "/login-assets/login.js"
        );
    }
}
