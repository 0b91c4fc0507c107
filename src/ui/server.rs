//! HTTP/1.1 on the wire, as little of it as the dashboard needs: one request per connection
//! (`Connection: close`), a bounded head and body read within deadlines for the whole request
//! (not per read: a client sending a byte a second is cut off all the same), a thread per
//! connection up to a limit. `httparse` parses; this module only bounds and frames.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Largest request head (request line and headers, up to the blank line that ends them).
const MAX_HEAD: usize = 16 * 1024;
/// Most headers a request may have.
const MAX_HEADERS: usize = 64;
/// Largest request body (a flow's arguments or a signal).
pub const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send the whole head: a browser sends it at once.
const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// How long a client may take to send the whole request, and to take the answer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

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

/// Reads from `stream` what the time left until `deadline` allows: `None` when the client
/// went away or the time is up.
fn read_until(stream: &mut TcpStream, chunk: &mut [u8], deadline: Instant) -> Option<usize> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    let _ = stream.set_read_timeout(Some(left));
    match stream.read(chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// Reads one request from `stream`, within the limits above.
pub fn read_request(stream: &mut TcpStream) -> Result<Request, Unread> {
    let started = Instant::now();
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let mut buffer = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        // Not one byte more than the limit is read into the head.
        let room = (MAX_HEAD + 1).saturating_sub(buffer.len()).min(chunk.len());
        if room == 0 {
            return Err(refused(431, "the request head is larger than 16 KiB"));
        }
        let n =
            read_until(stream, &mut chunk[..room], started + HEAD_DEADLINE).ok_or(Unread::Gone)?;
        buffer.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(refused(431, "the request head is larger than 16 KiB"));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&buffer[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refused(431, "the request has more than 64 headers"));
        }
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
    // Two of these could be read two ways: which host, which page asked.
    for once in ["host", "origin", "content-length", "x-wvflow-token"] {
        if request.headers.iter().filter(|(n, _)| n == once).count() > 1 {
            return Err(refused(
                400,
                &format!("the request has more than one {once} header"),
            ));
        }
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
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        let n = read_until(stream, &mut chunk[..want], started + REQUEST_DEADLINE)
            .ok_or(Unread::Gone)?;
        body.extend_from_slice(&chunk[..n]);
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
