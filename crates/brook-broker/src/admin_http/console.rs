//! The web console at `/`: one HTML page, one script and one stylesheet, embedded in
//! the binary (vanilla JavaScript, no framework, nothing fetched from elsewhere). The
//! page talks only to the admin JSON API on the same listener.
//!
//! Each asset is served gzip-compressed to clients that accept it, compressed once on
//! its first request. Only these fixed paths exist, so there is no file system path to
//! traverse.

use std::io::Write;
use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AdminState;

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    gzipped: OnceLock<Option<Vec<u8>>>,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str) -> Self {
        Asset {
            body,
            content_type,
            gzipped: OnceLock::new(),
        }
    }

    fn gzipped(&self) -> Option<&[u8]> {
        self.gzipped
            .get_or_init(|| {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                gz.write_all(self.body).ok()?;
                gz.finish().ok()
            })
            .as_deref()
    }

    fn respond(&self, headers: &HeaderMap) -> Response {
        let accepts_gzip = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        let common = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            ),
            // Assets change with the binary: revalidate rather than cache blindly.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // The console loads nothing from elsewhere and may not be framed.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                     script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                ),
            ),
        ];
        match self.gzipped().filter(|_| accepts_gzip) {
            Some(gz) => (
                common,
                [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
                gz.to_vec(),
            )
                .into_response(),
            None => (common, self.body).into_response(),
        }
    }
}

static INDEX: Asset = Asset::new(
    include_bytes!("console/index.html"),
    "text/html; charset=utf-8",
);
static SCRIPT: Asset = Asset::new(
    include_bytes!("console/console.js"),
    "text/javascript; charset=utf-8",
);
static STYLE: Asset = Asset::new(
    include_bytes!("console/console.css"),
    "text/css; charset=utf-8",
);

pub fn routes() -> Router<std::sync::Arc<AdminState>> {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { INDEX.respond(&h) }))
        .route(
            "/console.js",
            get(|h: HeaderMap| async move { SCRIPT.respond(&h) }),
        )
        .route(
            "/console.css",
            get(|h: HeaderMap| async move { STYLE.respond(&h) }),
        )
}

/// The embedded assets' sizes (bytes, uncompressed), for the tests' size budget.
#[cfg(test)]
fn total_size() -> usize {
    [&INDEX, &SCRIPT, &STYLE].iter().map(|a| a.body.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_stays_small() {
        assert!(total_size() < 100 * 1024, "{} bytes", total_size());
    }

    #[test]
    fn assets_gzip_and_round_trip() {
        use std::io::Read;
        let gz = SCRIPT.gzipped().expect("gzip");
        assert!(gz.len() < SCRIPT.body.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, SCRIPT.body);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in [&INDEX, &SCRIPT, &STYLE] {
            // The SVG namespace is a name, not a fetch.
            let text = std::str::from_utf8(asset.body)
                .unwrap()
                .replace("http://www.w3.org/2000/svg", "");
            for needle in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(needle), "an asset mentions {needle}");
            }
        }
    }
}
