//! HTTP/1.1 on the wire, as little of it as the dashboard needs: one request per connection
//! (`Connection: close`), a bounded head and body read under timeouts, a thread per
//! connection up to a limit. `httparse` parses; this module only bounds and frames.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Largest request head (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body (a flow's arguments or a signal).
pub const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as the routes see it.
pub struct Request {
    pub method: String,
    /// The path and query, as sent.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type, extra headers and body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, message: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: format!("{message}\n").into_bytes(),
        }
    }
}

/// Why a request could not be read: the status to answer with, if any can be sent.
pub enum Unread {
    /// The client went away or was too slow: nothing is answered.
    Gone,
    Refused(Response),
}

fn refused(status: u16, message: &str) -> Unread {
    Unread::Refused(Response::text(status, message))
}

/// Reads one request from `stream`, within the limits above.
pub fn read_request(stream: &mut TcpStream) -> Result<Request, Unread> {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut buffer = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(refused(431, "the request head is too large"));
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(Unread::Gone),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&buffer[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => {
            return Err(refused(400, "the request is not HTTP/1.1"));
        }
    }
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(refused(400, "the request has no method or path"));
    };
    let mut request = Request {
        method: method.to_string(),
        target: target.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    for h in parsed.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(refused(400, "a header value is not UTF-8"));
        };
        request
            .headers
            .push((h.name.to_ascii_lowercase(), value.trim().to_string()));
    }
    if request.header("transfer-encoding").is_some() {
        return Err(refused(411, "send the body with a Content-Length"));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(text) => match text.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return Err(refused(400, "the Content-Length is not a number")),
        },
    };
    if length > MAX_BODY {
        return Err(refused(413, "the request body is larger than 1 MiB"));
    }
    let mut body = buffer.split_off(head_end);
    if body.len() > length {
        return Err(refused(400, "more bytes came than the Content-Length says"));
    }
    let missing = length - body.len();
    if missing > 0 {
        let start = body.len();
        body.resize(length, 0);
        if stream.read_exact(&mut body[start..]).is_err() {
            return Err(Unread::Gone);
        }
    }
    request.body = body;
    Ok(request)
}

/// Writes `response` and closes the connection. A client that left is no concern.
pub fn write_response(stream: &mut TcpStream, response: &Response, head_only: bool) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(&response.body);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
