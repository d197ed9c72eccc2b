//! Whether a form post comes from the bridge's own page (login CSRF protection).
//!
//! Browsers say where a request comes from in `Origin` (every cross-origin `POST`, from every
//! current browser), `Referer` (unless a policy strips it) and `Sec-Fetch-Site` (set by the
//! browser, never by a page's script). A post is the page's own when those that are present
//! name the bridge's origin: `[auth] public_url`, or the address the request itself was sent
//! to (its `Host`), which is how the page is reached without the public name (an operator's
//! tunnel, the tests). Pure functions, no actix.

use url::Url;

/// A web origin: scheme, host and port (the default port made explicit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an `http(s)` URL (`https://bridge.example.com/x` →
    /// `https://bridge.example.com:443`), or `None` for anything else, `null` included.
    pub fn of_url(text: &str) -> Option<Self> {
        let url = Url::parse(text.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// Whether this is `scheme://<host header>`. A `Host` without a port means the scheme's
    /// default port, exactly as the browser omitted it.
    fn is_host(&self, scheme: &str, host_header: &str) -> bool {
        if host_header.is_empty() || host_header.contains(['/', '\\', '@', '?', '#', ' ']) {
            return false;
        }
        Origin::of_url(&format!("{scheme}://{host_header}/")).is_some_and(|own| &own == self)
    }
}

/// What is known about the request, apart from its headers about where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct OwnOrigin<'a> {
    /// `[auth] public_url`'s origin, when configured.
    pub public: Option<&'a Origin>,
    /// The request's `Host` header (HTTP/1.1) or authority (HTTP/2).
    pub host: Option<&'a str>,
    /// Whether the bridge itself serves this connection over TLS.
    pub tls: bool,
}

impl OwnOrigin<'_> {
    /// Whether `origin` is the bridge's own: `public_url`'s origin, or the origin the request
    /// was addressed to. For the latter the scheme is the connection's, or `https` (a TLS
    /// proxy in front of a plain-HTTP bridge); `http` is never taken for a TLS connection.
    fn accepts(&self, origin: &Origin) -> bool {
        if self.public == Some(origin) {
            return true;
        }
        let Some(host) = self.host else {
            return false;
        };
        origin.is_host("https", host) || (!self.tls && origin.is_host("http", host))
    }
}

/// Why a post was refused (for the log; the client is told only that it was refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Sec-Fetch-Site` says another site (or another origin of this site) sent it.
    CrossSite,
    /// `Origin` names another origin.
    ForeignOrigin,
    /// `Origin: null` (an opaque origin: a sandboxed frame, a `data:` page, or a
    /// `no-referrer` page) without the browser vouching that it is same-origin.
    OpaqueOrigin,
    /// No `Origin`, and `Referer` names another origin (or is not a URL).
    ForeignReferer,
}

impl Refusal {
    /// A short name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::CrossSite => "sec-fetch-site is not same-origin",
            Refusal::ForeignOrigin => "origin is not the bridge's",
            Refusal::OpaqueOrigin => "origin is null",
            Refusal::ForeignReferer => "referer is not the bridge's",
        }
    }
}

/// Checks where a `POST` comes from, given its `Origin`, `Referer` and `Sec-Fetch-Site`.
///
/// - `Sec-Fetch-Site: cross-site` or `same-site` → refused (only browsers send it, and they
///   cannot be made to lie).
/// - `Origin` present → it must be the bridge's own; `null` only when `Sec-Fetch-Site` says
///   `same-origin` (the login page asks for a `same-origin` referrer policy, so its own posts
///   carry a real origin; an opaque origin is what an attacker's page can make itself have).
/// - no `Origin`, `Referer` present → the referring page's origin must be the bridge's own.
/// - neither header → **allowed**. Every current browser sends `Origin` on every
///   cross-origin `POST`, whatever its referrer policy, so a post without one does not come
///   from another site's page in a browser: it comes from a non-browser client (curl, a
///   script, a test), which can send whatever headers it likes anyway and gains nothing
///   from a refusal. Allowing them keeps CSRF closed while not breaking clients that strip
///   headers for privacy.
pub fn check_post(
    origin: Option<&str>,
    referer: Option<&str>,
    sec_fetch_site: Option<&str>,
    own: &OwnOrigin<'_>,
) -> Result<(), Refusal> {
    let site = sec_fetch_site.map(|s| s.trim().to_ascii_lowercase());
    if matches!(site.as_deref(), Some("cross-site" | "same-site")) {
        return Err(Refusal::CrossSite);
    }
    if let Some(origin) = origin {
        if origin.trim() == "null" {
            return if site.as_deref() == Some("same-origin") {
                Ok(())
            } else {
                Err(Refusal::OpaqueOrigin)
            };
        }
        return match Origin::of_url(origin) {
            Some(o) if own.accepts(&o) => Ok(()),
            _ => Err(Refusal::ForeignOrigin),
        };
    }
    if let Some(referer) = referer {
        return match Origin::of_url(referer) {
            Some(o) if own.accepts(&o) => Ok(()),
            _ => Err(Refusal::ForeignReferer),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Origin {
        Origin::of_url("https://bridge.example.com").unwrap()
    }

    fn own<'a>(public: Option<&'a Origin>, host: &'a str, tls: bool) -> OwnOrigin<'a> {
        OwnOrigin {
            public,
            host: Some(host),
            tls,
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port_with_default_ports() {
        let o = Origin::of_url("HTTPS://Bridge.Example.com:443/login/x?y").unwrap();
        assert_eq!(o, public());
        assert_ne!(
            Origin::of_url("http://bridge.example.com").unwrap(),
            public()
        );
        assert_ne!(
            Origin::of_url("https://bridge.example.com:8443").unwrap(),
            public()
        );
        assert!(Origin::of_url("null").is_none());
        assert!(Origin::of_url("file:///etc/passwd").is_none());
        assert!(Origin::of_url("data:text/html,hi").is_none());
    }

    #[test]
    fn the_public_url_and_the_requests_own_host_are_accepted() {
        let p = public();
        let direct = own(Some(&p), "127.0.0.1:3141", false);
        for ok in [
            "https://bridge.example.com",
            "http://127.0.0.1:3141",
            "https://127.0.0.1:3141",
        ] {
            assert_eq!(check_post(Some(ok), None, None, &direct), Ok(()), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "http://bridge.example.com",
            "https://bridge.example.com.evil.example",
            "http://127.0.0.1:3142",
            "http://127.0.0.1",
            "garbage",
        ] {
            assert_eq!(
                check_post(Some(bad), None, None, &direct),
                Err(Refusal::ForeignOrigin),
                "{bad}"
            );
        }
        // Default ports: Host has none, Origin has none.
        let proxied = own(None, "bridge.example.com", false);
        assert_eq!(
            check_post(Some("https://bridge.example.com"), None, None, &proxied),
            Ok(())
        );
        assert_eq!(
            check_post(
                Some("https://bridge.example.com:8443"),
                None,
                None,
                &proxied
            ),
            Err(Refusal::ForeignOrigin)
        );
        // A TLS connection never takes an http:// origin for its own.
        let tls = own(None, "bridge.example.com", true);
        assert_eq!(
            check_post(Some("http://bridge.example.com:443"), None, None, &tls),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            check_post(Some("https://bridge.example.com"), None, None, &tls),
            Ok(())
        );
        // IPv6 hosts, and Host headers that are not a plain authority.
        let v6 = own(None, "[::1]:3141", false);
        assert_eq!(
            check_post(Some("http://[::1]:3141"), None, None, &v6),
            Ok(())
        );
        let odd = own(None, "evil.example/@127.0.0.1:3141", false);
        assert!(check_post(Some("http://evil.example"), None, None, &odd).is_err());
        let none = OwnOrigin {
            public: None,
            host: None,
            tls: false,
        };
        assert!(check_post(Some("http://127.0.0.1:3141"), None, None, &none).is_err());
    }

    #[test]
    fn cross_site_fetch_metadata_and_opaque_origins_are_refused() {
        let p = public();
        let own = own(Some(&p), "127.0.0.1:3141", false);
        let good = Some("https://bridge.example.com");
        assert_eq!(
            check_post(good, None, Some("cross-site"), &own),
            Err(Refusal::CrossSite)
        );
        assert_eq!(
            check_post(None, None, Some("Same-Site"), &own),
            Err(Refusal::CrossSite)
        );
        assert_eq!(check_post(good, None, Some("same-origin"), &own), Ok(()));
        assert_eq!(
            check_post(Some("null"), None, None, &own),
            Err(Refusal::OpaqueOrigin)
        );
        assert_eq!(
            check_post(
                Some("null"),
                Some("https://bridge.example.com/"),
                None,
                &own
            ),
            Err(Refusal::OpaqueOrigin),
            "a Referer does not make up for an opaque origin"
        );
        assert_eq!(
            check_post(Some("null"), None, Some("same-origin"), &own),
            Ok(())
        );
    }

    #[test]
    fn without_origin_the_referer_decides_and_without_both_the_post_is_allowed() {
        let p = public();
        let own = own(Some(&p), "127.0.0.1:3141", false);
        assert_eq!(
            check_post(None, Some("http://127.0.0.1:3141/login/abc"), None, &own),
            Ok(())
        );
        assert_eq!(
            check_post(None, Some("https://evil.example/page"), None, &own),
            Err(Refusal::ForeignReferer)
        );
        assert_eq!(
            check_post(None, Some("not a url"), None, &own),
            Err(Refusal::ForeignReferer)
        );
        assert_eq!(check_post(None, None, None, &own), Ok(()));
        assert_eq!(check_post(None, None, Some("none"), &own), Ok(()));
    }
}
