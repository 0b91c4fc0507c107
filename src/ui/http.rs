//! The dashboard's routes and who may call them, over [`super::server`].
//!
//! Reads need a request addressed to this server by name (the `Host` header) when it listens
//! on a loopback address, which stops a DNS-rebinding page; the API sends no CORS headers, so
//! other origins cannot read it. Actions also need the token printed at start, and an
//! `Origin`, when the browser sends one, naming the host the request was sent to.

use super::server::{self, Request, Response, Unread};
use super::slots::{Slots, Ticket};
use super::{actions, flows, read};
use serde_json::{Value, json};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

/// Where and what the dashboard serves.
pub struct Options {
    /// The workspace (a .wv file or a folder), as given to `wvflow run`.
    pub workspace: PathBuf,
    /// Its run store.
    pub db: PathBuf,
    pub host: IpAddr,
    /// 0: any free port.
    pub port: u16,
}

/// What every request handler reads.
pub(super) struct Site {
    pub workspace: PathBuf,
    pub db: PathBuf,
    token: String,
    /// The `Host` values that name this server; `None` (listening beyond loopback): any.
    hosts: Option<Vec<String>>,
}

/// A bound dashboard, not yet serving.
pub struct Dashboard {
    listener: TcpListener,
    site: Arc<Site>,
    pub address: SocketAddr,
}

impl Dashboard {
    pub fn bind(options: Options) -> Result<Dashboard, BindError> {
        let at = SocketAddr::new(options.host, options.port);
        let listener = TcpListener::bind(at).map_err(|e| BindError::Listen(at, e))?;
        let address = listener.local_addr().map_err(|e| BindError::Listen(at, e))?;
        let port = address.port();
        let hosts = options.host.is_loopback().then(|| {
            vec![
                address.to_string(),
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]
        });
        Ok(Dashboard {
            listener,
            site: Arc::new(Site {
                workspace: options.workspace,
                db: options.db,
                token: new_token()?,
                hosts,
            }),
            address,
        })
    }

    /// The address to open: the page takes the token from it.
    pub fn url(&self) -> String {
        let shown = if self.address.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), self.address.port())
        } else {
            self.address
        };
        format!("http://{shown}/?token={}", self.site.token)
    }

    /// Serves until the process ends: a thread per connection, as [`Slots`] admits them.
    pub fn serve(self) {
        let slots = Arc::new(Slots::default());
        for stream in self.listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let peer = stream
                .peer_addr()
                .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
            let Some(ticket) = slots.admit(&stream, peer) else {
                let busy = Response::text(503, "too many connections; try again");
                server::write_response(&mut stream, &busy, false);
                continue;
            };
            let site = self.site.clone();
            std::thread::spawn(move || serve_one(&site, &mut stream, &ticket));
        }
    }
}

fn serve_one(site: &Site, stream: &mut TcpStream, ticket: &Ticket) {
    let request = match server::read_request(stream) {
        Ok(request) => request,
        Err(Unread::Gone) => return,
        Err(Unread::Refused(response)) => return server::write_response(stream, &response, false),
    };
    ticket.answering();
    let head_only = request.method == "HEAD";
    let response = respond(route(site, &request));
    server::write_response(stream, &response, head_only);
}

/// 128 random bits from the kernel, as hex.
fn new_token() -> Result<String, BindError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(BindError::Token)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why the dashboard cannot start.
#[derive(Debug)]
pub enum BindError {
    Listen(SocketAddr, std::io::Error),
    Token(std::io::Error),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Listen(at, e) => write!(f, "cannot listen on {}:{}: {e}", at.ip(), at.port()),
            BindError::Token(e) => write!(f, "cannot read /dev/urandom for the token: {e}"),
        }
    }
}

impl std::error::Error for BindError {}

/// What a handler answers: a status and a body.
pub(super) enum Reply {
    Json(u16, Value),
    Asset(&'static str, &'static str),
    /// A method the path does not take, and those it does.
    Method(&'static str),
}

/// An error as `{"error": ...}` with its status.
pub(super) fn error(status: u16, message: impl std::fmt::Display) -> Reply {
    Reply::Json(status, json!({ "error": message.to_string() }))
}

fn respond(reply: Reply) -> Response {
    let mut headers = vec![
        ("Cache-Control", "no-store".to_string()),
        // Nothing but this server's own scripts, styles and API; no framing by other pages.
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'".to_string(),
        ),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
    ];
    let (status, content_type, body) = match reply {
        Reply::Json(status, value) => (
            status,
            "application/json",
            serde_json::to_vec(&value).unwrap_or_default(),
        ),
        Reply::Asset(content_type, text) => (200, content_type, text.as_bytes().to_vec()),
        Reply::Method(allow) => {
            headers.push(("Allow", allow.to_string()));
            (
                405,
                "application/json",
                serde_json::to_vec(&json!({ "error": format!("this path takes {allow}") }))
                    .unwrap_or_default(),
            )
        }
    };
    Response {
        status,
        content_type,
        headers,
        body,
    }
}

/// A green square with a white check mark: the tab of a dashboard.
const FAVICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' rx='3' fill='#2e8b57'/><path d='M4 8l3 3 5-6' stroke='#fff' stroke-width='2' fill='none'/></svg>";

fn route(site: &Site, request: &Request) -> Reply {
    let host = request.header("host").unwrap_or_default();
    if let Some(hosts) = &site.hosts
        && !hosts.iter().any(|ok| ok.eq_ignore_ascii_case(host))
    {
        return error(403, "this server answers only to its own address");
    }
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let query = Query::parse(query);
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let reading = matches!(request.method.as_str(), "GET" | "HEAD");
    match (reading, request.method.as_str(), segments.as_slice()) {
        (true, _, [] | ["index.html"]) => Reply::Asset(
            "text/html; charset=utf-8",
            include_str!("assets/index.html"),
        ),
        (true, _, ["app.js"]) => Reply::Asset(
            "text/javascript; charset=utf-8",
            include_str!("assets/app.js"),
        ),
        (true, _, ["app.css"]) => {
            Reply::Asset("text/css; charset=utf-8", include_str!("assets/app.css"))
        }
        (true, _, ["favicon.ico"]) => Reply::Asset("image/svg+xml", FAVICON),
        (true, _, ["api", "runs"]) => read::runs(site, &query),
        (true, _, ["api", "runs", id]) => read::run(site, id),
        (true, _, ["api", "runs", id, "graph"]) => read::graph(site, id),
        (true, _, ["api", "runs", id, "logs"]) => read::logs(site, id, &query),
        (true, _, ["api", "runs", id, "rows"]) => read::rows(site, id, &query),
        (true, _, ["api", "flows"]) => flows::list(site),
        (
            true,
            _,
            ["api", "flows", _, "runs"] | ["api", "runs", _, "cancel" | "resume" | "signal"],
        ) => Reply::Method("POST"),
        (true, _, _) => error(404, format!("nothing at {path}")),
        (false, "POST", ["api", ..]) => {
            if let Err(refused) = allowed(site, request) {
                return refused;
            }
            let Ok(body) = std::str::from_utf8(&request.body) else {
                return error(400, "the request body is not UTF-8 text");
            };
            let body: Value = if body.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                match serde_json::from_str(body) {
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
        (false, "POST", _) => Reply::Method("GET, HEAD"),
        (
            false,
            _,
            ["api", "flows", _, "runs"] | ["api", "runs", _, "cancel" | "resume" | "signal"],
        ) => Reply::Method("POST"),
        (false, _, _) => Reply::Method("GET, HEAD"),
    }
}

/// An action needs the token, and a browser's `Origin`, when it sends one, must name the
/// host the request was sent to: another page the user has open cannot act for them.
fn allowed(site: &Site, request: &Request) -> Result<(), Reply> {
    let given = request.header("x-wvflow-token").unwrap_or_default();
    if !same(given.as_bytes(), site.token.as_bytes()) {
        return Err(error(
            403,
            "an action needs the token `wvflow ui` printed (header X-Wvflow-Token)",
        ));
    }
    if let Some(origin) = request.header("origin") {
        let host = request.header("host").unwrap_or_default();
        let named = origin
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
            && origin[7..].eq_ignore_ascii_case(host);
        if host.is_empty() || !named {
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
