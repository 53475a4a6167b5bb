//! The app's own security, in one middleware in front of every route:
//!
//! - the Host header must name the app itself (`127.0.0.1:PORT`, `localhost:PORT`, or
//!   `[::1]:PORT`): a page on another site that rebinds its name to 127.0.0.1 is refused;
//! - the first load carries `?token=…`, exchanged for an HttpOnly, SameSite=Strict cookie and
//!   a redirect to the same address without it; without the cookie nothing but the stylesheet
//!   is served;
//! - a request that changes anything (every method but GET and HEAD) must come from the app's
//!   own pages: its Origin, or (as browsers send under `no-referrer`) `Origin: null` with
//!   `Sec-Fetch-Site: same-origin`;
//! - every answer forbids caching, framing, referrers and any script, style, image or
//!   connection that is not the app's own.

use std::path::Path;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::WebError;
use crate::app::App;

const TOKEN_FILE: &str = "ui.token";

/// The secret that opens the app: 32 random bytes, hex. Kept in the party's home (mode 0600)
/// so a page left open is still let in after `backchannel ui` restarts.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    pub fn reveal(&self) -> &str {
        &self.0
    }

    fn random() -> Result<Self, WebError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| WebError::Token { path: String::new(), why: e.to_string() })?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Whether `given` is this token (in constant time).
    pub fn matches(&self, given: &str) -> bool {
        given.len() == self.0.len() && bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }

    /// The token in `home`, made on first use.
    pub fn load_or_create(home: &Path) -> Result<Self, WebError> {
        let path = home.join(TOKEN_FILE);
        let fail =
            |e: std::io::Error| WebError::Token { path: path.display().to_string(), why: e.to_string() };
        if let Ok(text) = std::fs::read_to_string(&path) {
            let text = text.trim();
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Self(text.to_owned()));
            }
        }
        create_private_dir(home).map_err(fail)?;
        let token = Self::random()?;
        write_private(&path, token.0.as_bytes()).map_err(fail)?;
        Ok(token)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The cookie's name carries the port: cookies are not kept apart by port, and two apps (two
/// parties) may run on one machine.
pub(crate) fn cookie_name(app: &App) -> String {
    format!("backchannel_ui_{}", app.addr.port())
}

/// The host names the app answers to.
fn allowed_hosts(app: &App) -> Vec<String> {
    let port = app.addr.port();
    let mut hosts = vec![format!("localhost:{port}")];
    match app.addr {
        std::net::SocketAddr::V4(a) => hosts.push(format!("{}:{port}", a.ip())),
        std::net::SocketAddr::V6(a) => hosts.push(format!("[{}]:{port}", a.ip())),
    }
    hosts
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn harden(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(headers, header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn cookie_token<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// The same path and query without `token=…`.
fn without_token(path: &str, query: &str) -> String {
    let rest: Vec<&str> = query.split('&').filter(|kv| !kv.starts_with("token=") && !kv.is_empty()).collect();
    if rest.is_empty() { path.to_owned() } else { format!("{path}?{}", rest.join("&")) }
}

/// Whether a request that changes something comes from the app's own pages. Under
/// `Referrer-Policy: no-referrer` browsers send `Origin: null` on such requests, so a `null`
/// (or absent) Origin counts only with `Sec-Fetch-Site: same-origin`, which pages cannot set.
fn same_origin(headers: &HeaderMap, hosts: &[String]) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("origin") {
        Some("null") | None => text("sec-fetch-site") == Some("same-origin"),
        Some(origin) => hosts.iter().any(|h| origin.eq_ignore_ascii_case(&format!("http://{h}"))),
    }
}

pub(crate) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = check(&app, request, next).await;
    harden(response.headers_mut());
    response
}

async fn check(app: &App, request: Request, next: Next) -> Response {
    let hosts = allowed_hosts(app);
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return plain(StatusCode::FORBIDDEN, "This address is not the Backchannel app's own: refused.\n");
    }
    let uri = request.uri().clone();
    let name = cookie_name(app);
    if let Some(given) = query_token(uri.query()) {
        if !app.token.matches(given) {
            return crate::layout::unauthorized();
        }
        let to = without_token(uri.path(), uri.query().unwrap_or_default());
        let cookie = format!("{name}={}; HttpOnly; SameSite=Strict; Path=/", app.token.reveal());
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, to)
            .header(header::SET_COOKIE, cookie)
            .body(Body::empty())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot answer\n"));
    }
    let public = uri.path().starts_with("/assets/") && request.method() == Method::GET;
    let signed_in = cookie_token(request.headers(), &name).is_some_and(|t| app.token.matches(t));
    if !signed_in && !public {
        return crate::layout::unauthorized();
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) && !same_origin(request.headers(), &hosts) {
        return plain(StatusCode::FORBIDDEN, "A request from another site was refused.\n");
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_print_nothing() {
        let token = Token("ab".repeat(32));
        assert!(token.matches(&"ab".repeat(32)));
        assert!(!token.matches(&"ab".repeat(31)));
        assert!(!token.matches(&format!("{}ac", "ab".repeat(31))));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }

    #[test]
    fn only_our_own_pages_change_things() {
        let hosts = vec!["127.0.0.1:4680".to_owned(), "localhost:4680".to_owned()];
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&with(&[("origin", "http://127.0.0.1:4680")]), &hosts));
        assert!(same_origin(&with(&[("origin", "null"), ("sec-fetch-site", "same-origin")]), &hosts));
        assert!(!same_origin(&with(&[("origin", "null"), ("sec-fetch-site", "cross-site")]), &hosts));
        assert!(!same_origin(&with(&[("origin", "http://evil.example")]), &hosts));
        assert!(!same_origin(&with(&[("origin", "http://127.0.0.1:4681")]), &hosts));
        assert!(!same_origin(&with(&[]), &hosts));
    }

    #[test]
    fn the_token_leaves_the_address() {
        assert_eq!(without_token("/", "token=abc"), "/");
        assert_eq!(without_token("/contacts", "x=1&token=abc"), "/contacts?x=1");
        assert_eq!(query_token(Some("a=1&token=xyz")), Some("xyz"));
    }
}
