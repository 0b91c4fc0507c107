//! Language server sessions made from bytes, for the `lsp_session` fuzz target and its short
//! form in tests/it/fuzz.rs. The bytes choose each message from lists (method, document, text
//! edit, position kind) and numbers, so almost every input gets past the handshake and reaches
//! the request handlers; the rest tries the handshake and the shutdown in odd orders.
//!
//! A session runs `wvflow::lsp::serve_connection` in-process over `Connection::memory()`, and
//! [`check`] compares what came back with what the protocol promises: every request answered
//! exactly once (`ServerNotInitialized` before `initialize`, `InvalidRequest` after
//! `shutdown`), no handler failing, the loop ending at `exit` or when the client goes.

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use serde_json::{Value, json};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

/// Documents the sessions edit: none exists on disk (a closed or saved one is read again).
const URIS: &[&str] = &[
    "file:///wvflow-fuzz-none/a.wv",
    "file:///wvflow-fuzz-none/b.wv",
    "file:///wvflow-fuzz-none/dir%20x/c%C3%A9.wv",
    "file:///wvflow-fuzz-none/%zz%2",
    "untitled:Untitled-1",
    "",
];

/// Texts to start from.
const TEXTS: &[&str] = &[
    "activity greet(name: string) with { retries: 2, retry_delay: 1s } = sh(\"\"\"\n  echo hi\n\"\"\")\n\nflow Hello(n: int = 3) = {\n  stage people = from [[1, 'Ada'], [2, 'Linus']] as t(id, name)\n  stage greeted [on_failure: ignore] = from people\n    | where id >= n\n    | select id, upper(name) as name\n    | greet('x')\n  stage done if greeted.success and not people.failed = from greeted | end()\n}\n",
    "flow Child @version(2) (customer: int) = {\n  stage p = from 'data/c.json' | where id = customer\n}\n\nflow Parent with { timeout: 20m } = {\n  stage vip with {\n    timeout: 5m\n    parent_close: request_cancel\n  } = call Child @version(2) (customer: 3)\n  stage next if vip.success = -> Child(customer: 1)\n}\n\nrun Parent\n",
    "flow Routes = {\n  stage a = from [[1]] as t(x)\n  stage b = from a | route { case x > 0 -> c else -> d }\n  stage c = from b\n  stage d = from b\n  stage f = fork {\n    stage g = from a\n  }\n  stage w = wait(5m)\n  stage e = from a | each probe(_.x)\n}\nactivity probe(x: int) = exec('echo', x)\n",
    "-- a comment\n/* block */ flow é𝄞 = { stage s = from t }\n",
    "",
];

/// Text inserted by edits.
const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    ".",
    "|",
    "->",
    "=",
    "'",
    "\"",
    "\"\"\"",
    "--",
    "/*",
    "*/",
    "\n",
    " ",
    "\t",
    "\r\n",
    "stage",
    "flow",
    "from",
    "with",
    "if",
    "route",
    "fork",
    "each",
    "wait",
    "activate",
    "call",
    "run",
    "activity",
    "sh",
    "exec",
    "and",
    "not",
    "success",
    "failed",
    "x",
    "greeted",
    "Hello",
    "é",
    "𝄞",
    "\u{0}",
    "99999999999999999999",
    "5m",
    "trigger: ",
    "backoff: ",
    "on_failure: ",
    "parent_close: ",
    "@version(",
];

/// Methods the server answers with a result.
const ANSWERED: &[&str] = &[
    "textDocument/hover",
    "textDocument/definition",
    "textDocument/references",
    "textDocument/rename",
    "textDocument/completion",
    "textDocument/documentSymbol",
    "textDocument/formatting",
];

/// Methods it does not know.
const UNKNOWN: &[&str] = &[
    "textDocument/semanticTokens/full",
    "textDocument/signatureHelp",
    "workspace/symbol",
    "textDocument/codeAction",
    "$/cancelRequest",
    "",
];

/// The fuzz bytes, read front to back; zeros once they run out.
pub struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn below(&mut self, n: usize) -> usize {
        let wide = u16::from_le_bytes([self.byte(), self.byte()]);
        usize::from(wide) % n.max(1)
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| (n << 8) | u64::from(self.byte()))
    }

    fn pick<'t>(&mut self, list: &[&'t str]) -> &'t str {
        list[usize::from(self.byte()) % list.len()]
    }
}

/// A line or character number: mostly small, sometimes past any end or not a number at all.
fn number(bytes: &mut Bytes) -> Value {
    let byte = bytes.byte();
    match byte % 16 {
        0..=9 => json!(byte / 16),
        10 => json!(bytes.byte()),
        11 => json!(bytes.u64() % (1 << 32)),
        12 => {
            json!([u32::MAX as u64, u64::MAX, i64::MAX as u64, 1 << 53][usize::from(byte / 16) % 4])
        }
        13 => json!(-1 - i64::from(byte / 16)),
        14 => json!(1.5),
        _ => [json!("3"), Value::Null, json!(true), json!({}), json!([1])]
            [usize::from(byte / 16) % 5]
            .clone(),
    }
}

/// The nearest character boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A new text for a document that has `old`: an edit of it, a fresh text, or raw bytes.
fn text(bytes: &mut Bytes, old: &str) -> String {
    let mut text = match bytes.byte() % 8 {
        0..=3 if !old.is_empty() => old.to_string(),
        0..=5 => bytes.pick(TEXTS).to_string(),
        6 => {
            let len = bytes.below(200);
            let raw: Vec<u8> = (0..len).map(|_| bytes.byte()).collect();
            return String::from_utf8_lossy(&raw).into_owned();
        }
        _ => (0..bytes.below(40))
            .map(|_| bytes.pick(FRAGMENTS))
            .collect::<Vec<_>>()
            .join(" "),
    };
    // Mostly none or one edit, so the text still parses, and its names can be pointed at.
    let edits = [0, 0, 0, 0, 1, 1, 2, 3][usize::from(bytes.byte() % 8)];
    for _ in 0..edits {
        let at = boundary(&text, bytes.below(text.len() + 1));
        match bytes.byte() % 4 {
            0 | 1 => text.insert_str(at, bytes.pick(FRAGMENTS)),
            2 => {
                let end = boundary(&text, at + bytes.below(40));
                text.replace_range(at..end.max(at), "");
            }
            _ => {
                let end = boundary(&text, at + bytes.below(200));
                let copy = text[at..end.max(at)].to_string();
                let to = boundary(&text, bytes.below(text.len() + 1));
                text.insert_str(to, &copy);
            }
        }
    }
    text
}

/// A position in `text`: mostly in one of its words (where the names are) or at any of its
/// characters, as a line and a UTF-16 column, sometimes one column further (inside a
/// surrogate pair, past the line's end); else any numbers.
fn position(bytes: &mut Bytes, text: &str) -> Value {
    let offset = match bytes.byte() % 4 {
        // In a word, where the names are.
        0 | 1 => {
            let words: Vec<usize> = text
                .char_indices()
                .zip(std::iter::once(' ').chain(text.chars()))
                .filter(|&((_, c), before)| c.is_alphabetic() && !before.is_alphanumeric())
                .map(|((i, _), _)| i)
                .collect();
            let start = words.get(bytes.below(words.len())).copied().unwrap_or(0);
            boundary(text, start + bytes.below(4))
        }
        2 => boundary(text, bytes.below(text.len() + 1)),
        _ => return json!({ "line": number(bytes), "character": number(bytes) }),
    };
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..offset].matches('\n').count();
    let column = text[line_start..offset].encode_utf16().count() + bytes.below(3) / 2;
    json!({ "line": line, "character": column })
}

/// `params.textDocument` and `params.position`, sometimes in the wrong shape.
fn at(bytes: &mut Bytes, uri: &str, text: &str) -> Value {
    let position = position(bytes, text);
    match bytes.byte() % 16 {
        0 => Value::Null,
        1 => json!([uri, position]),
        2 => json!({ "textDocument": uri, "position": position }),
        3 => json!({ "textDocument": { "uri": 5 }, "position": position }),
        4 => json!({ "textDocument": { "uri": uri } }),
        5 => json!({ "textDocument": { "uri": uri }, "position": [0, 0] }),
        _ => json!({ "textDocument": { "uri": uri }, "position": position }),
    }
}

/// What one step of a session sends.
#[derive(Clone, Debug)]
pub enum Step {
    Send(Message),
    /// The client pauses past the debounce, so the server publishes diagnostics.
    Pause,
}

/// The messages of a session. Most start with a well-formed handshake.
pub fn decode(data: &[u8]) -> Vec<Step> {
    let mut bytes = Bytes(data);
    let mut steps = Vec::new();
    let mut next_id = 0_i32;
    let mut id = |bytes: &mut Bytes| {
        next_id += 1;
        if bytes.byte().is_multiple_of(8) {
            RequestId::from(format!("s{next_id}"))
        } else {
            RequestId::from(next_id)
        }
    };
    let request = |id: RequestId, method: &str, params: Value| {
        Step::Send(Message::Request(Request::new(id, method.into(), params)))
    };
    let notify = |method: &str, params: Value| {
        Step::Send(Message::Notification(Notification::new(
            method.into(),
            params,
        )))
    };
    let mut texts: BTreeMap<&str, String> = BTreeMap::new();
    let handshake = !bytes.byte().is_multiple_of(8);
    if handshake {
        let mut params = json!({ "capabilities": {}, "processId": null });
        match bytes.byte() % 4 {
            0 => params["rootUri"] = json!("file:///wvflow-fuzz-none"),
            1 => params["rootUri"] = json!(5),
            2 => params["workspaceFolders"] = json!([{ "uri": "file:///wvflow-fuzz-none/w" }]),
            _ => params["rootPath"] = json!(""),
        }
        steps.push(request(id(&mut bytes), "initialize", params));
        steps.push(notify("initialized", json!({})));
        if !bytes.byte().is_multiple_of(8) {
            let text = bytes.pick(TEXTS).to_string();
            texts.insert(URIS[0], text.clone());
            steps.push(notify(
                "textDocument/didOpen",
                json!({ "textDocument": { "uri": URIS[0], "text": text } }),
            ));
        }
    }
    let mut paused = false;
    for _ in 0..64 {
        if bytes.0.is_empty() {
            break;
        }
        // Mostly a document that is open.
        let open: Vec<&str> = texts.keys().copied().collect();
        let uri = if open.is_empty() || bytes.byte().is_multiple_of(4) {
            bytes.pick(URIS)
        } else {
            bytes.pick(&open)
        };
        let old = texts.get(uri).cloned().unwrap_or_default();
        let step = match bytes.byte() % 32 {
            0..=4 => {
                let text = text(&mut bytes, &old);
                texts.insert(uri, text.clone());
                let params = match bytes.byte() % 8 {
                    0 => json!({ "textDocument": { "uri": uri, "text": 5 } }),
                    1 => json!({ "textDocument": [uri, text] }),
                    2 => json!({ "textDocument": { "uri": 5, "text": text } }),
                    _ => json!({ "textDocument": {
                        "uri": uri, "languageId": "wvflow", "version": 1, "text": text
                    } }),
                };
                notify("textDocument/didOpen", params)
            }
            5..=8 => {
                let text = text(&mut bytes, &old);
                texts.insert(uri, text.clone());
                // Full sync, but a client may send ranges anyway, or several changes.
                let range = json!({
                    "start": position(&mut bytes, &old),
                    "end": position(&mut bytes, &old),
                });
                let changes = match bytes.byte() % 4 {
                    0 => json!([{ "range": range, "text": text }]),
                    1 => json!([{ "text": "" }, { "text": text }]),
                    2 => json!({ "text": text }),
                    _ => json!([{ "text": text }]),
                };
                notify(
                    "textDocument/didChange",
                    json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": changes }),
                )
            }
            9 => {
                texts.remove(uri);
                notify(
                    "textDocument/didClose",
                    json!({ "textDocument": { "uri": uri } }),
                )
            }
            10 => notify(
                "textDocument/didSave",
                json!({ "textDocument": { "uri": uri } }),
            ),
            11..=22 => {
                let method = bytes.pick(ANSWERED);
                let mut params = at(&mut bytes, uri, &old);
                if let Some(object) = params.as_object_mut() {
                    match method {
                        "textDocument/references" => {
                            let with =
                                [json!(true), json!(false), json!("yes")][bytes.below(3)].clone();
                            object.insert("context".into(), json!({ "includeDeclaration": with }));
                        }
                        "textDocument/rename" => {
                            let name = match bytes.byte() % 4 {
                                0 => json!(bytes.pick(FRAGMENTS)),
                                1 => json!(5),
                                2 => json!(text(&mut bytes, "")),
                                _ => json!("renamed"),
                            };
                            object.insert("newName".into(), name);
                        }
                        "textDocument/formatting" => {
                            object.insert(
                                "options".into(),
                                json!({ "tabSize": 2, "insertSpaces": true }),
                            );
                        }
                        _ => {}
                    }
                }
                request(id(&mut bytes), method, params)
            }
            23 => {
                let method = bytes.pick(UNKNOWN);
                request(id(&mut bytes), method, at(&mut bytes, uri, &old))
            }
            24 => notify(bytes.pick(UNKNOWN), json!({ "id": number(&mut bytes) })),
            // Not too often, or most sessions would end early.
            op @ (25 | 26) if bytes.byte().is_multiple_of(4) => match op {
                25 => request(id(&mut bytes), "shutdown", Value::Null),
                _ => notify("exit", Value::Null),
            },
            27 => request(id(&mut bytes), "initialize", json!({ "capabilities": {} })),
            28 => notify("initialized", json!({})),
            29 => Step::Send(Message::Response(Response::new_ok(
                RequestId::from(i32::from(bytes.byte())),
                Value::Null,
            ))),
            // Rarely: a pause costs the debounce, and most of the server's work is elsewhere.
            30 if !paused && bytes.byte().is_multiple_of(4) => {
                paused = true;
                Step::Pause
            }
            _ => notify("$/setTrace", json!({ "value": "off" })),
        };
        steps.push(step);
    }
    steps
}

/// What the server did with a session.
pub struct Outcome {
    /// What `serve_connection` returned; `None` if it did not end in time.
    pub result: Option<Result<bool, wvflow::lsp::Error>>,
    /// Everything the server sent.
    pub received: Vec<Message>,
    /// Whether anything panicked on the server's thread (a caught panic included).
    pub panicked: bool,
}

thread_local! {
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Runs a session: the server on a thread of its own, the client sending the steps, then
/// closing the connection. Waits at most `limit` for the server to end.
pub fn run(steps: Vec<Step>, limit: Duration) -> Outcome {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.with(|p| p.set(true));
            previous(info);
        }));
    });
    let (server, client) = Connection::memory();
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        PANICKED.with(|p| p.set(false));
        let result = wvflow::lsp::serve_connection(&server);
        drop(server);
        let _ = done.send((result, PANICKED.with(Cell::get)));
    });
    let Connection { sender, receiver } = client;
    for step in steps {
        match step {
            // The server may have ended already: the rest is not read.
            Step::Send(message) => {
                let _ = sender.send(message);
            }
            Step::Pause => std::thread::sleep(wvflow::lsp::DEBOUNCE + Duration::from_millis(2)),
        }
    }
    drop(sender);
    let (result, panicked) = match ended.recv_timeout(limit) {
        Ok((result, panicked)) => (Some(result), panicked),
        Err(_) => (None, false),
    };
    Outcome {
        result,
        received: receiver.try_iter().collect(),
        panicked,
    }
}

/// What a request must get back.
#[derive(Debug)]
enum Expect {
    Result,
    Error(lsp_server::ErrorCode),
    /// A method the fuzzer does not count on: a result or `MethodNotFound`.
    ResultOrUnknown,
}

/// Checks the outcome of `steps` against the protocol (see the module's documentation).
pub fn check(steps: &[Step], outcome: &Outcome) -> Result<(), String> {
    use lsp_server::ErrorCode;
    let Some(result) = &outcome.result else {
        return Err("the server did not end after the client closed the connection".into());
    };
    if outcome.panicked {
        return Err("a panic on the server's thread (its message is above)".into());
    }
    // What the server reads, in order: the handshake (lsp-server's rules), then its loop.
    enum Phase {
        Initialize,
        Initialized,
        Serving { shut_down: bool },
    }
    let mut phase = Phase::Initialize;
    let mut expected: Vec<(RequestId, Expect, String)> = Vec::new();
    let mut ends = None;
    for step in steps {
        let Step::Send(message) = step else { continue };
        match (&phase, message) {
            (Phase::Initialize, Message::Request(r)) if r.method == "initialize" => {
                expected.push((r.id.clone(), Expect::Result, r.method.clone()));
                phase = Phase::Initialized;
            }
            (Phase::Initialize, Message::Request(r)) => {
                let not_yet = Expect::Error(ErrorCode::ServerNotInitialized);
                expected.push((r.id.clone(), not_yet, r.method.clone()));
            }
            (Phase::Initialize, Message::Notification(n)) if n.method != "exit" => {}
            (Phase::Initialized, Message::Notification(n)) if n.method == "initialized" => {
                phase = Phase::Serving { shut_down: false };
            }
            // `exit` or a response before `initialize`, anything but `initialized` after it.
            (Phase::Initialize | Phase::Initialized, _) => {
                ends = Some(Err(()));
                break;
            }
            (Phase::Serving { shut_down }, Message::Request(r)) => {
                let expect = if *shut_down {
                    Expect::Error(ErrorCode::InvalidRequest)
                } else if r.method == "shutdown" {
                    phase = Phase::Serving { shut_down: true };
                    Expect::Result
                } else if ANSWERED.contains(&r.method.as_str()) {
                    Expect::Result
                } else {
                    Expect::ResultOrUnknown
                };
                expected.push((r.id.clone(), expect, r.method.clone()));
            }
            (Phase::Serving { shut_down }, Message::Notification(n)) if n.method == "exit" => {
                ends = Some(Ok(*shut_down));
                break;
            }
            (Phase::Serving { .. }, _) => {}
        }
    }
    let ends = ends.unwrap_or(match phase {
        Phase::Serving { shut_down } => Ok(shut_down),
        _ => Err(()),
    });
    match (result, ends) {
        (Ok(clean), Ok(expected_clean)) if *clean == expected_clean => {}
        (Err(_), Err(())) => {}
        (got, want) => return Err(format!("the server returned {got:?}, expected {want:?}")),
    }
    let mut responses: BTreeMap<RequestId, Vec<&Response>> = BTreeMap::new();
    for message in &outcome.received {
        match message {
            Message::Response(r) => responses.entry(r.id.clone()).or_default().push(r),
            Message::Notification(n) => check_notification(n)?,
            Message::Request(r) => return Err(format!("the server sent a request: {r:?}")),
        }
    }
    for (id, expect, method) in expected {
        let Some(got) = responses.remove(&id) else {
            return Err(format!("request {id} ({method}) got no response"));
        };
        let [response] = got.as_slice() else {
            return Err(format!(
                "request {id} ({method}) got {} responses",
                got.len()
            ));
        };
        let code = response.response_result.as_ref().err().map(|e| e.code);
        if code == Some(ErrorCode::InternalError as i32) {
            return Err(format!("the handler of {method} failed: {response:?}"));
        }
        let fits = match expect {
            Expect::Result => code.is_none(),
            Expect::Error(want) => code == Some(want as i32),
            Expect::ResultOrUnknown => {
                code.is_none() || code == Some(ErrorCode::MethodNotFound as i32)
            }
        };
        if !fits {
            return Err(format!(
                "request {id} ({method}): expected {expect:?}, got {response:?}"
            ));
        }
    }
    if let Some((id, _)) = responses.into_iter().next() {
        return Err(format!(
            "a response to {id}, which no request was sent with"
        ));
    }
    Ok(())
}

/// Diagnostics name a document and hold well-formed ranges.
fn check_notification(n: &Notification) -> Result<(), String> {
    if n.method != "textDocument/publishDiagnostics" {
        return Err(format!("an unexpected notification: {}", n.method));
    }
    let uri = n.params["uri"].as_str();
    let diagnostics = n.params["diagnostics"].as_array();
    let (Some(_), Some(diagnostics)) = (uri, diagnostics) else {
        return Err(format!("malformed diagnostics: {}", n.params));
    };
    for d in diagnostics {
        let point = |p: &Value| Some((p["line"].as_u64()?, p["character"].as_u64()?));
        let (Some(start), Some(end)) = (point(&d["range"]["start"]), point(&d["range"]["end"]))
        else {
            return Err(format!("a diagnostic without a range: {d}"));
        };
        if start > end {
            return Err(format!("a diagnostic ending before it starts: {d}"));
        }
    }
    Ok(())
}
