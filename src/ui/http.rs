//! The dashboard's HTTP server: a few threads taking requests from one listener, a route
//! table, JSON responses, and the checks that keep other web pages out.
//!
//! Reads need a request addressed to this server by name (the `Host` header), which stops a
//! DNS-rebinding page; the API sends no CORS headers, so other origins cannot read it.
//! Actions also need the token printed at start, and an `Origin`, when the browser sends
//! one, of this server.

use super::{actions, flows, read};
use serde_json::{Value, json};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tiny_http::{Header, Method, Request, Response, Server};

/// Where and what the dashboard serves.
pub struct Options {
    /// The workspace (a .wv file or a folder), as given to `wvflow run`.
    pub workspace: PathBuf,
    /// Its run store.
    pub db: PathBuf,
    pub host: IpAddr,
    /// 0: any free port.
    pub port: u16,
    /// Requests served at once.
    pub threads: usize,
}

/// What every request handler reads.
pub(super) struct Site {
    pub workspace: PathBuf,
    pub db: PathBuf,
    token: String,
    /// The `Host` values (and, with a scheme, the origins) that name this server.
    hosts: Vec<String>,
}

/// A bound dashboard, not yet serving.
pub struct Dashboard {
    server: Arc<Server>,
    site: Arc<Site>,
    threads: usize,
    pub address: SocketAddr,
}

/// A green square with a white check mark: the tab of a dashboard.
const FAVICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' rx='3' fill='#2e8b57'/><path d='M4 8l3 3 5-6' stroke='#fff' stroke-width='2' fill='none'/></svg>";

/// Largest request body read (a flow's arguments or a signal).
const MAX_BODY: u64 = 1 << 20;

impl Dashboard {
    pub fn bind(options: Options) -> Result<Dashboard, String> {
        let server = Server::http(SocketAddr::new(options.host, options.port))
            .map_err(|e| format!("cannot listen on {}:{}: {e}", options.host, options.port))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or("the server has no IP address")?;
        let port = address.port();
        let mut hosts = vec![address.to_string(), format!("localhost:{port}")];
        if options.host.is_loopback() {
            hosts.push(format!("127.0.0.1:{port}"));
        }
        Ok(Dashboard {
            server: Arc::new(server),
            site: Arc::new(Site {
                workspace: options.workspace,
                db: options.db,
                token: new_token()?,
                hosts,
            }),
            threads: options.threads.max(1),
            address,
        })
    }

    /// The address to open: the page takes the token from it.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.address, self.site.token)
    }

    /// Serves until the process ends.
    pub fn serve(self) {
        let workers: Vec<_> = (0..self.threads)
            .map(|_| {
                let (server, site) = (self.server.clone(), self.site.clone());
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        respond(&site, request);
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// 128 random bits from the kernel, as hex.
fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a handler answers: a status and a body.
pub(super) enum Reply {
    Json(u16, Value),
    Asset(&'static str, &'static str),
}

/// An error as `{"error": ...}` with its status.
pub(super) fn error(status: u16, message: impl Into<String>) -> Reply {
    Reply::Json(status, json!({ "error": message.into() }))
}

fn respond(site: &Site, mut request: Request) {
    let reply = route(site, &mut request);
    let (status, body, content_type) = match reply {
        Reply::Json(status, value) => (
            status,
            serde_json::to_string(&value).unwrap_or_default(),
            "application/json",
        ),
        Reply::Asset(content_type, text) => (200, text.to_string(), content_type),
    };
    let headers = [
        ("Content-Type", content_type),
        ("Cache-Control", "no-store"),
        // Nothing but this server's own scripts, styles and API; no framing by other pages.
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ];
    let mut response = Response::from_string(body).with_status_code(status);
    for (name, value) in headers {
        if let Ok(header) = Header::from_bytes(name, value) {
            response.add_header(header);
        }
    }
    // A client that went away is no concern of the server's.
    let _ = request.respond(response);
}

fn header<'r>(request: &'r Request, name: &'static str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

fn route(site: &Site, request: &mut Request) -> Reply {
    if !header(request, "Host").is_some_and(|h| site.hosts.iter().any(|ok| ok == h)) {
        return error(403, "this server answers only to its own address");
    }
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let query = Query::parse(query);
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (request.method(), segments.as_slice()) {
        (Method::Get, [] | ["index.html"]) => Reply::Asset(
            "text/html; charset=utf-8",
            include_str!("assets/index.html"),
        ),
        (Method::Get, ["app.js"]) => Reply::Asset(
            "text/javascript; charset=utf-8",
            include_str!("assets/app.js"),
        ),
        (Method::Get, ["app.css"]) => {
            Reply::Asset("text/css; charset=utf-8", include_str!("assets/app.css"))
        }
        (Method::Get, ["favicon.ico"]) => Reply::Asset("image/svg+xml", FAVICON),
        (Method::Get, ["api", "runs"]) => read::runs(site, &query),
        (Method::Get, ["api", "runs", id]) => read::run(site, id),
        (Method::Get, ["api", "runs", id, "graph"]) => read::graph(site, id),
        (Method::Get, ["api", "runs", id, "logs"]) => read::logs(site, id, &query),
        (Method::Get, ["api", "runs", id, "rows"]) => read::rows(site, id, &query),
        (Method::Get, ["api", "flows"]) => flows::list(site),
        (Method::Post, ["api", ..]) => {
            if let Err(refused) = allowed(site, request) {
                return refused;
            }
            let mut body = String::new();
            if request
                .as_reader()
                .take(MAX_BODY)
                .read_to_string(&mut body)
                .is_err()
            {
                return error(400, "the request body is not UTF-8 text");
            }
            let body: Value = if body.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                match serde_json::from_str(&body) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(_) => return error(400, "the request body must be a JSON object"),
                    Err(e) => return error(400, format!("the request body is not JSON: {e}")),
                }
            };
            match &segments[1..] {
                ["flows", flow, "runs"] => actions::start(site, flow, &body),
                ["runs", id, "cancel"] => actions::cancel(site, id),
                ["runs", id, "resume"] => actions::resume(site, id),
                ["runs", id, "signal"] => actions::signal(site, id, &body),
                _ => error(404, format!("no action at {path}")),
            }
        }
        (Method::Get, _) => error(404, format!("nothing at {path}")),
        (method, _) => error(405, format!("{method} is not served at {path}")),
    }
}

/// An action needs the token, and a browser's `Origin`, when it sends one, must be this
/// server: another page the user has open cannot act for them.
fn allowed(site: &Site, request: &Request) -> Result<(), Reply> {
    let given = header(request, "X-Wvflow-Token").unwrap_or_default();
    if !same(given.as_bytes(), site.token.as_bytes()) {
        return Err(error(
            403,
            "an action needs the token `wvflow ui` printed (header X-Wvflow-Token)",
        ));
    }
    if let Some(origin) = header(request, "Origin") {
        let ours = site
            .hosts
            .iter()
            .any(|h| origin.strip_prefix("http://") == Some(h.as_str()));
        if !ours {
            return Err(error(403, format!("requests from {origin} may not act")));
        }
    }
    Ok(())
}

/// Compares in time that does not depend on where the texts differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A URL's query parameters.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(text: &str) -> Query {
        Query(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A number parameter; a text that is no number is an error the caller reports.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Reply> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| error(400, format!("`{name}` must be a number, not `{v}`")))
            })
            .transpose()
    }
}

/// `%XX` escapes and `+` as in a form; bytes that are not UTF-8 become U+FFFD.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries_as_forms_do() {
        let q = Query::parse("flow=Nightly%20Load&state=&limit=5&x=%E2%9C%93&bad=%zz%4");
        assert_eq!(q.get("flow"), Some("Nightly Load"));
        assert_eq!(q.get("state"), None);
        assert_eq!(q.get("x"), Some("✓"));
        assert_eq!(q.get("bad"), Some("%zz%4"));
        assert!(matches!(q.number::<usize>("limit"), Ok(Some(5))));
        assert!(q.number::<usize>("flow").is_err());
    }

    #[test]
    fn compares_tokens_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
