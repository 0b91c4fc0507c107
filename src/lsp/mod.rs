//! `wvflow lsp`: a Language Server over stdio on the same front end and checker as
//! `wvflow check`. It keeps the workspace (the `.wv` files under the client's root folder, with
//! the editor's unsaved text in place of what is on disk), checks it again shortly after the
//! typing stops, and answers from one analysis of it. Features: `docs/editors.md`.
//!
//! | module | job |
//! |---|---|
//! | [`analysis`] | the workspace as the editor sees it; positions in UTF-16 |
//! | [`symbols`] | definitions and references of flows, stages and activities |
//! | [`features`] | hover, completion, document symbols |
//! | [`transport`] | the framed messages on stdin and stdout (`body`: a large body read without extra copies) |

pub mod analysis;
mod body;
pub mod features;
mod in_tests;
pub mod symbols;
pub mod transport;

use analysis::{Analysis, Texts, path_of, uri_of};
use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after the last change the workspace is checked again. Keystrokes come tens of
/// milliseconds apart, so this only gathers changes an editor sends together (a paste, a
/// rename); a check of a 2,000-line file takes about 8 ms (`cargo bench --bench lsp`), so a
/// change has its diagnostics in under 20 ms.
pub const DEBOUNCE: Duration = Duration::from_millis(5);

/// Serves one client on stdin and stdout until it says `exit`: `Ok(true)` after a
/// `shutdown` request, `Ok(false)` when the client exited without one (an error for the LSP).
pub fn serve() -> Result<bool, Error> {
    crate::check::chunked::return_freed_memory();
    let (connection, io_threads) = transport::stdio();
    let clean = serve_on(&connection, Output::Serialized)?;
    drop(connection);
    io_threads.join();
    Ok(clean)
}

/// Serves one client on `connection` until it says `exit` or the connection closes, as
/// [`serve`] does on stdio: the initialization handshake, then every request and notification.
/// `Ok(true)` when a `shutdown` request came first; an error when the handshake fails or a
/// message cannot be sent. In-process tests and the `lsp_session` fuzz target use it with
/// [`Connection::memory`].
pub fn serve_connection(connection: &Connection) -> Result<bool, Error> {
    serve_on(connection, Output::Values)
}

/// Why the server stopped before the client said `exit`.
#[derive(Debug)]
pub enum Error {
    /// The initialization handshake did not happen as the protocol says.
    Handshake(lsp_server::ProtocolError),
    /// A message could not be sent: the connection to the client is closed.
    ClientGone,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Handshake(e) => write!(f, "{e}"),
            Error::ClientGone => f.write_str("sending on a closed channel"),
        }
    }
}

impl std::error::Error for Error {}

/// How diagnostics leave the server.
#[derive(Clone, Copy, PartialEq)]
enum Output {
    /// As JSON values, as any connection takes them.
    Values,
    /// Serialized already ([`transport::serialized`]): only the stdio writer reads them so.
    Serialized,
}

fn serve_on(connection: &Connection, output: Output) -> Result<bool, Error> {
    let capabilities = json!({
        "textDocumentSync": 1,
        "hoverProvider": true,
        "definitionProvider": true,
        "referencesProvider": true,
        "documentSymbolProvider": true,
        "documentFormattingProvider": true,
        "renameProvider": true,
        "completionProvider": { "triggerCharacters": [".", " ", ":"] },
        "positionEncoding": "utf-16",
    });
    let (id, init) = connection.initialize_start().map_err(Error::Handshake)?;
    connection
        .initialize_finish(
            id,
            json!({
                "capabilities": capabilities,
                "serverInfo": { "name": "wvflow", "version": env!("CARGO_PKG_VERSION") },
            }),
        )
        .map_err(Error::Handshake)?;
    let root = root_of(&init);
    let mut server = Server {
        connection,
        disk: analysis::read_disk(root.as_deref()),
        root,
        open: BTreeMap::new(),
        analysis: None,
        changed: None,
        published: BTreeSet::new(),
        shut_down: false,
        output,
    };
    server.run()
}

/// The client's root folder: `rootUri`, else the first workspace folder, else `rootPath`.
fn root_of(init: &Value) -> Option<PathBuf> {
    init["rootUri"]
        .as_str()
        .or_else(|| init["workspaceFolders"][0]["uri"].as_str())
        .map(path_of)
        .or_else(|| init["rootPath"].as_str().map(PathBuf::from))
}

struct Server<'c> {
    connection: &'c Connection,
    /// The workspace's files as they are on disk, read once; a closed or saved document is
    /// read again.
    disk: Texts,
    /// The client's root folder: where `wvflow.toml` is looked for (from the first file
    /// without one).
    root: Option<PathBuf>,
    /// Open documents: their text as the editor has it, by path. The analysis shares them.
    open: Texts,
    /// The analysis of the current texts; `None` after a change.
    analysis: Option<Analysis>,
    /// When the texts last changed, while their diagnostics are not yet published.
    changed: Option<Instant>,
    /// Files that have diagnostics in the editor now.
    published: BTreeSet<PathBuf>,
    /// A `shutdown` request came: only `exit` is expected now.
    shut_down: bool,
    output: Output,
}

impl Server<'_> {
    /// Serves until `exit` (or the end of the input): whether a `shutdown` came first.
    fn run(&mut self) -> Result<bool, Error> {
        loop {
            let wait = match self.changed {
                Some(at) => DEBOUNCE.saturating_sub(at.elapsed()),
                None => Duration::from_secs(3600),
            };
            match self.connection.receiver.recv_timeout(wait) {
                Ok(Message::Request(request)) if self.shut_down => {
                    self.send(Message::Response(Response::new_err(
                        request.id,
                        lsp_server::ErrorCode::InvalidRequest as i32,
                        "the server is shutting down: only `exit` is expected".into(),
                    )))?;
                }
                Ok(Message::Request(request)) if request.method == "shutdown" => {
                    self.shut_down = true;
                    self.send(Message::Response(Response::new_ok(request.id, ())))?;
                }
                Ok(Message::Request(request)) => {
                    // A request that fails inside is answered with an error; the server goes on.
                    let id = request.id.clone();
                    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.answer(request)
                    }));
                    let response = answered.unwrap_or_else(|_| {
                        Response::new_err(
                            id,
                            lsp_server::ErrorCode::InternalError as i32,
                            "wvflow lsp failed on this request".into(),
                        )
                    });
                    self.send(Message::Response(response))?;
                }
                Ok(Message::Notification(notification)) => {
                    if notification.method == "exit" {
                        return Ok(self.shut_down);
                    }
                    self.notified(notification);
                }
                Ok(Message::Response(_)) => {}
                Err(crossbeam_timeout) if crossbeam_timeout.is_timeout() => {}
                Err(_) => return Ok(self.shut_down),
            }
            if self.changed.is_some_and(|at| at.elapsed() >= DEBOUNCE) {
                self.publish()?;
            }
        }
    }

    fn send(&self, message: Message) -> Result<(), Error> {
        self.connection
            .sender
            .send(message)
            .map_err(|_| Error::ClientGone)
    }

    fn notified(&mut self, mut notification: Notification) {
        let params = &mut notification.params;
        let Some(path) = params["textDocument"]["uri"].as_str().map(path_of) else {
            return;
        };
        // The document's text is moved out of the message, not copied: it may be large.
        let take_text = |value: &mut Value| match value.take() {
            Value::String(text) => Some(Arc::new(text)),
            _ => None,
        };
        match notification.method.as_str() {
            "textDocument/didOpen" => {
                let text = take_text(&mut params["textDocument"]["text"]);
                // While open, the editor's text stands for the file: the copy read from disk
                // is dropped (closing or saving the document reads the file again).
                self.disk.remove(&crate::workspace::absolute(&path));
                self.open.insert(path, text.unwrap_or_default());
            }
            "textDocument/didChange" => {
                // Full sync: the last change holds the whole text.
                if let Some(text) = params["contentChanges"]
                    .as_array_mut()
                    .and_then(|changes| changes.last_mut())
                    .and_then(|change| take_text(&mut change["text"]))
                {
                    // The analysis of the old text goes first, so the two are not held together.
                    self.analysis = None;
                    self.open.insert(path, text);
                }
            }
            "textDocument/didClose" | "textDocument/didSave" => {
                if notification.method.ends_with("didClose") {
                    self.open.remove(&path);
                }
                let absolute = crate::workspace::absolute(&path);
                match crate::workspace::read_source(&absolute) {
                    Ok(text) => self.disk.insert(absolute, Arc::new(text)),
                    Err(_) => self.disk.remove(&absolute),
                };
            }
            _ => return,
        }
        self.analysis = None;
        self.changed.get_or_insert_with(Instant::now);
    }

    fn analysis(&mut self) -> &Analysis {
        let (disk, open, root) = (&self.disk, &self.open, self.root.as_deref());
        self.analysis
            .get_or_insert_with(|| Analysis::configured(disk, open, root))
    }

    /// Sends every file's diagnostics, and empty lists for files that no longer have any.
    fn publish(&mut self) -> Result<(), Error> {
        self.changed = None;
        let output = self.output;
        let messages = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let analysis = self.analysis();
            let found = analysis.problems();
            analysis
                .published(&found)
                .into_iter()
                .map(|(path, params)| {
                    // Serializing strings and numbers cannot fail.
                    let params = match output {
                        Output::Values => serde_json::to_value(&params).unwrap_or_default(),
                        Output::Serialized => {
                            transport::serialized(serde_json::to_string(&params).unwrap_or_default())
                        }
                    };
                    (path, params)
                })
                .collect::<Vec<_>>()
        }))
        .unwrap_or_default();
        let mut now = BTreeSet::new();
        let mut notifications = Vec::new();
        for (path, params) in messages {
            now.insert(path.clone());
            notifications.push(params);
        }
        let empty = |path: &PathBuf| json!({ "uri": uri_of(path), "diagnostics": [] });
        for path in self.published.difference(&now) {
            notifications.push(empty(path));
        }
        // Open files without problems get an empty list too, so the editor clears them.
        for path in self.open.keys() {
            if !now.contains(path) && !self.published.contains(path) {
                notifications.push(empty(path));
            }
        }
        self.published = now;
        for params in notifications {
            self.send(Message::Notification(Notification::new(
                "textDocument/publishDiagnostics".into(),
                params,
            )))?;
        }
        Ok(())
    }

    fn answer(&mut self, request: Request) -> Response {
        let id: RequestId = request.id.clone();
        let params = request.params;
        let analysis = self.analysis();
        let result = match request.method.as_str() {
            "textDocument/hover" => analysis.at(&params).map(|at| features::hover(analysis, at)),
            "textDocument/definition" => analysis.at(&params).map(|at| analysis.definition(at)),
            "textDocument/references" => analysis.at(&params).map(|at| {
                let with_declaration = params["context"]["includeDeclaration"]
                    .as_bool()
                    .unwrap_or(true);
                analysis.references(at, with_declaration)
            }),
            "textDocument/rename" => analysis.at(&params).map(|at| {
                let name = params["newName"].as_str().unwrap_or_default();
                analysis.rename(at, name)
            }),
            "textDocument/completion" => analysis
                .at(&params)
                .map(|at| features::completion(analysis, at)),
            "textDocument/documentSymbol" => params["textDocument"]["uri"]
                .as_str()
                .map(|uri| features::document_symbols(analysis, &path_of(uri))),
            "textDocument/formatting" => params["textDocument"]["uri"]
                .as_str()
                .map(|uri| analysis.formatting(&path_of(uri))),
            _ => {
                return Response::new_err(
                    id,
                    lsp_server::ErrorCode::MethodNotFound as i32,
                    format!("wvflow lsp does not answer {}", request.method),
                );
            }
        };
        // Not `Response::new_ok`, which would copy the answer (a long completion list) into
        // a new JSON value.
        Response {
            id,
            response_result: Ok(result.unwrap_or(Value::Null)),
        }
    }
}
