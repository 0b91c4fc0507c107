//! The wire: LSP messages framed by `Content-Length` headers on stdin and stdout. No input
//! stops the server: a header block without a length, a body that is not a JSON-RPC message,
//! or a length over [`MAX_MESSAGE`] is reported on stderr and skipped, and reading goes on
//! with the bytes that follow.

use crossbeam_channel::{Receiver, Sender};
use lsp_server::{Connection, Message};
use serde_json::Value;
use std::io::{self, BufRead, Read, Write};

/// The largest message read: 64 MiB, far above any real document.
pub const MAX_MESSAGE: usize = 64 << 20;

/// The longest header line read; longer lines are not headers.
const MAX_HEADER_LINE: u64 = 8 * 1024;

/// What the next frame of the input held.
#[derive(Debug)]
pub enum Frame {
    Message(Message),
    /// Skipped, with the reason.
    Skipped(String),
}

/// The next frame of `input`, or `None` at the end of the input.
pub fn next_frame(input: &mut impl BufRead) -> io::Result<Option<Frame>> {
    let mut length = None;
    let mut any = false;
    loop {
        let mut line = Vec::new();
        let read = input
            .by_ref()
            .take(MAX_HEADER_LINE)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if any {
                break;
            }
            continue;
        }
        any = true;
        if let Some((name, value)) = text.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| value.trim().to_string()),
            );
        }
    }
    let length = match length {
        None => {
            return Ok(Some(Frame::Skipped(
                "a header block without Content-Length".into(),
            )));
        }
        Some(Err(value)) => {
            return Ok(Some(Frame::Skipped(format!(
                "Content-Length `{value}` is not a number"
            ))));
        }
        Some(Ok(n)) if n > MAX_MESSAGE as u64 => {
            // Not read: the bytes that follow are read as the next header block, so a client
            // that did not send them is not waited for.
            return Ok(Some(Frame::Skipped(format!(
                "a message of {n} bytes is over the limit of {MAX_MESSAGE}"
            ))));
        }
        Some(Ok(n)) => n as usize,
    };
    let mut body = vec![0; length];
    if let Err(e) = input.read_exact(&mut body) {
        return if e.kind() == io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(match super::body::parse(body) {
        Ok(message) => Frame::Message(message),
        Err(e) => Frame::Skipped(format!("a body that is not a JSON-RPC message: {e}")),
    }))
}

/// The reading and writing threads of a connection.
pub struct Threads {
    reader: std::thread::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
}

impl Threads {
    /// Waits for the writer to send what is queued. The reader may be blocked on stdin and is
    /// left to end with the process.
    pub fn join(self) {
        let _ = self.writer.join();
        drop(self.reader);
    }
}

/// A connection over stdin and stdout.
pub fn stdio() -> (Connection, Threads) {
    let (to_server, receiver) = crossbeam_channel::unbounded();
    let (sender, from_server) = crossbeam_channel::unbounded();
    let reader = std::thread::spawn(move || read_loop(io::stdin().lock(), to_server));
    let writer = std::thread::spawn(move || write_loop(io::stdout().lock(), from_server));
    (Connection { sender, receiver }, Threads { reader, writer })
}

fn read_loop(mut input: impl BufRead, to_server: Sender<Message>) {
    loop {
        match next_frame(&mut input) {
            Ok(Some(Frame::Message(message))) => {
                if to_server.send(message).is_err() {
                    return;
                }
            }
            Ok(Some(Frame::Skipped(why))) => errln!("wvflow lsp: skipped {why}"),
            Ok(None) | Err(_) => return,
        }
    }
}

/// Notification parameters already serialized to JSON text, for the stdio writer to copy
/// as they are: a large list of diagnostics is never a tree of JSON values, nor copied again
/// into the message's text. No parameters of the protocol are a string, so a string stands
/// for them unmistakably.
pub fn serialized(params: String) -> Value {
    Value::String(params)
}

fn write_loop(mut output: impl Write, from_server: Receiver<Message>) {
    for message in from_server {
        let written = match &message {
            Message::Notification(n) if n.params.is_string() => {
                write_serialized(&mut output, &n.method, n.params.as_str().unwrap_or("null"))
            }
            _ => message.write(&mut output),
        };
        if written.is_err() {
            return;
        }
    }
}

/// A notification framed as `lsp_server` frames one, with its parameters as given.
fn write_serialized(output: &mut impl Write, method: &str, params: &str) -> io::Result<()> {
    let method = serde_json::to_string(method)?;
    let head = format!(r#"{{"jsonrpc":"2.0","method":{method},"params":"#);
    write!(output, "Content-Length: {}\r\n\r\n", head.len() + params.len() + 1)?;
    output.write_all(head.as_bytes())?;
    output.write_all(params.as_bytes())?;
    output.write_all(b"}")?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<String> {
        let mut input = input;
        let mut out = Vec::new();
        while let Some(frame) = next_frame(&mut input).unwrap() {
            out.push(match frame {
                Frame::Message(Message::Request(r)) => format!("request {}", r.method),
                Frame::Message(Message::Notification(n)) => format!("notification {}", n.method),
                Frame::Message(Message::Response(_)) => "response".into(),
                Frame::Skipped(why) => format!("skipped {why}"),
            });
        }
        out
    }

    fn framed(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn malformed_frames_are_skipped_and_reading_goes_on() {
        let good = framed(r#"{"jsonrpc": "2.0", "method": "initialized", "params": {}}"#);
        let input = [
            "Content-Length: 99999999999\r\n\r\n".to_string(),
            good.clone(),
            framed("{not json"),
            good.clone(),
            "Content-Type: text\r\n\r\n".to_string(),
            good.clone(),
            "Content-Length: x\r\n\r\n".to_string(),
            good,
        ]
        .concat();
        let found = frames(input.as_bytes());
        assert_eq!(found.len(), 8, "{found:?}");
        assert!(found[0].contains("over the limit"), "{found:?}");
        assert!(found[2].contains("not a JSON-RPC message"), "{found:?}");
        assert!(found[4].contains("without Content-Length"), "{found:?}");
        assert!(found[6].contains("not a number"), "{found:?}");
        for i in [1, 3, 5, 7] {
            assert_eq!(found[i], "notification initialized");
        }
    }

    #[test]
    fn serialized_parameters_are_framed_as_lsp_server_frames_a_message() {
        let params = serde_json::json!({ "uri": "file:///a.wv", "diagnostics": [{ "message": "é\n\"" }] });
        let mut ours = Vec::new();
        write_serialized(&mut ours, "textDocument/publishDiagnostics", &params.to_string()).unwrap();
        let mut theirs = Vec::new();
        Message::Notification(lsp_server::Notification::new(
            "textDocument/publishDiagnostics".into(),
            params,
        ))
        .write(&mut theirs)
        .unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
    }

    #[test]
    fn a_short_body_at_the_end_ends_the_input() {
        assert!(frames(b"Content-Length: 50\r\n\r\n{}").is_empty());
    }
}
