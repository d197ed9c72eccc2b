//! Reading a request body with a size limit and the server's body timeout, for the handlers
//! that take one (the login page, the post endpoints).

use actix_web::{error::PayloadError, http::header, web, HttpRequest};
use futures_util::StreamExt;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyError {
    /// Over the limit (declared or sent).
    TooLarge,
    /// Not all there within [`super::server::BODY_TIMEOUT`].
    TooSlow,
    /// The client went away or the body was malformed.
    Incomplete,
}

/// Reads the body, at most `max` bytes; a declared length over that is refused before a
/// byte is read. What was read of a body that fails is wiped (it may hold a password).
pub(super) async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
) -> Result<web::BytesMut, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let capacity = declared.map_or(1024, |n| usize::try_from(n).unwrap_or(max));
    let mut body = web::BytesMut::with_capacity(capacity.min(max));
    while let Some(chunk) = payload.next().await {
        let failed = match chunk {
            Ok(chunk) if body.len() + chunk.len() <= max => {
                body.extend_from_slice(&chunk);
                continue;
            }
            Ok(_) | Err(PayloadError::Overflow) => BodyError::TooLarge,
            Err(e) if super::server::is_body_timeout(&e) => BodyError::TooSlow,
            Err(_) => BodyError::Incomplete,
        };
        zeroize::Zeroize::zeroize(body.as_mut());
        return Err(failed);
    }
    Ok(body)
}
