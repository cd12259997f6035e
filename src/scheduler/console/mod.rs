//! The web console: a page and its script and style sheet, embedded in the binary and served by
//! the REST server. Nothing is fetched from elsewhere at run time; the page reads the same REST
//! API as every other client (`/api/…`, `/health`), polling every 2 s while its tab is visible.
//!
//! - `GET /` answers the page to browsers (an `Accept` naming `text/html`) and the JSON index
//!   (`rest_view::index`) to everything else, so `curl` and the framework's `webui_url` probes
//!   keep their JSON;
//! - `GET /console/{file}` answers `app.js`, `style.css` and `icon.svg`;
//! - every answer carries a strict Content-Security-Policy: scripts, styles, images and
//!   requests from this origin only, no inline code, no frames.
//!
//! The page and its assets hold no data, so they are served without the REST token even with
//! `rest.protect_reads` (a browser cannot send a bearer token when it opens a URL); the page asks
//! for the token when the API answers 401 and sends it on every request it makes.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::rest_view;

/// Where the assets are served.
pub const ASSETS: &str = "/console/";

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");
const ICON_SVG: &str = include_str!("icon.svg");

/// The policy of every console answer: this origin only, nothing inline, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// An embedded file: its bytes and content type.
fn asset_named(file: &str) -> Option<(&'static str, &'static str)> {
    match file {
        "app.js" => Some((APP_JS, "text/javascript; charset=utf-8")),
        "style.css" => Some((STYLE_CSS, "text/css; charset=utf-8")),
        "icon.svg" => Some((ICON_SVG, "image/svg+xml")),
        _ => None,
    }
}

/// Whether the client asks for HTML: a browser opening the URL (`Accept: text/html,…`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| {
            let mut parts = media.split(';');
            let kind = parts.next().unwrap_or_default().trim();
            // `text/html;q=0` says "not HTML".
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            kind.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// Whether a request is for the console's page or assets, which the REST token does not guard.
pub fn is_public(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    (path == "/" && wants_html(headers))
        || path
            .strip_prefix(ASSETS)
            .is_some_and(|file| asset_named(file).is_some())
}

/// An answer with the console's security headers.
fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new binary may bring new assets: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the page for browsers, the JSON index for everyone else.
pub async fn root(headers: HeaderMap) -> Response {
    let mut response = if wants_html(&headers) {
        with_headers("text/html; charset=utf-8", INDEX_HTML)
    } else {
        axum::Json(rest_view::index()).into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// `GET /console/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match asset_named(&file) {
        Some((body, content_type)) => with_headers(content_type, body),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": format!(
                    "no console file '{file}': the console serves app.js, style.css and icon.svg"
                )
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn browsers_get_the_page_and_other_clients_the_json_index() {
        let chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                        image/webp,*/*;q=0.8";
        assert!(wants_html(&accept(chromium)));
        assert!(wants_html(&accept("TEXT/HTML")));
        for other in [
            "*/*",
            "application/json",
            "text/html;q=0, application/json",
            "",
        ] {
            assert!(!wants_html(&accept(other)), "{other}");
        }
        assert!(!wants_html(&HeaderMap::new()));
    }

    #[test]
    fn only_the_page_and_its_assets_are_public() {
        let html = accept("text/html");
        assert!(is_public(&Method::GET, "/", &html));
        assert!(is_public(
            &Method::HEAD,
            "/console/app.js",
            &HeaderMap::new()
        ));
        assert!(!is_public(&Method::GET, "/", &HeaderMap::new()));
        assert!(!is_public(&Method::POST, "/", &html));
        assert!(!is_public(&Method::GET, "/console/secret", &html));
        assert!(!is_public(&Method::GET, "/api/jobs", &html));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_nothing_inline() {
        for needle in [
            "http://", "https://", "<style", " style=", "onclick", "<script>",
        ] {
            assert!(
                !INDEX_HTML.contains(needle),
                "index.html contains {needle:?}"
            );
        }
        assert!(INDEX_HTML.contains(r#"<script type="module" src="/console/app.js">"#));
        for needle in ["http://", "https://", "eval(", "innerHTML", "new Function"] {
            assert!(!APP_JS.contains(needle), "app.js contains {needle:?}");
        }
    }
}
