//! `wvflow lsp` as an editor meets it: the real binary, JSON-RPC over its stdin and stdout.

use crate::common::scratch;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wvflow"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            loop {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                stdout.read_exact(&mut body).unwrap();
                if sender.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            messages,
            next_id: 1,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its result, setting aside notifications meanwhile.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.messages.recv_timeout(Duration::from_secs(20)).unwrap();
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{message}");
                return message["result"].clone();
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let message = self.messages.recv_timeout(Duration::from_secs(20)).unwrap();
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return message["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }
}

const OTHER: &str = "activity load(table: string) = exec('echo', table)\n";

/// A flow whose line 4 starts with a character of two UTF-16 units (and four bytes), so
/// positions after it differ in every count; line 2 is not in the canonical layout.
const FLOW: &str = "flow Nightly with { schedule: cron('0 2 * * *'), timezone: 'Asia/Tokyo' } = {\n  stage extract [retries: 2] = load('orders')\n  stage clean = from extract |where id>0\n  stage report if clean.success and extract.success = from extract, clean\n  /* \u{1F600} */ stage note [timeout: 5s] = load('\u{1F600}') | where x > 0 | limit 1\n}\n";

#[test]
fn the_language_server_speaks_lsp_over_stdio() {
    let dir = scratch("lsp", &[("other.wv", OTHER), ("nightly.wv", "")]);
    let root = format!("file://{}", dir.display());
    let uri = format!("{root}/nightly.wv");
    let broken = FLOW.replace("[timeout: 5s]", "[retires: 5s]");
    let mut client = Client::start();
    let init = client.request(
        "initialize",
        json!({ "processId": null, "rootUri": root, "capabilities": {} }),
    );
    assert_eq!(init["capabilities"]["hoverProvider"], true);
    client.notify("initialized", json!({}));
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "wvflow", "version": 1, "text": broken } }),
    );
    let diagnostics = client.diagnostics(&uri);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(d["code"], "E0201");
    assert_eq!(d["severity"], 1);
    assert!(d["message"].as_str().unwrap().contains("retries"), "{d}");
    // `retires` on line 4 after `  /* 😀 */ stage note [`: 23 UTF-16 units (25 bytes).
    assert_eq!(d["range"]["start"], json!({ "line": 4, "character": 23 }));
    assert_eq!(d["range"]["end"], json!({ "line": 4, "character": 30 }));

    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": FLOW }] }),
    );
    assert!(client.diagnostics(&uri).is_empty(), "the fix clears them");

    let at = |line: u32, character: u32| json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
    // Hover: a stage (at a reference), a config key, an activity in another file, the flow.
    let hover = client.request("textDocument/hover", at(2, 22));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("stage `extract`") && text.contains("retry: 3 attempt(s)"),
        "{text}"
    );
    let hover = client.request("textDocument/hover", at(1, 18));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("**`retries`** (stage key): a whole number") && text.contains("default: `0`"),
        "{text}"
    );
    let hover = client.request("textDocument/hover", at(1, 32));
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("activity `load`"),
        "{hover}"
    );
    let hover = client.request("textDocument/hover", at(0, 7));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("flow `Nightly`") && text.contains("next fire") && text.contains("JST"),
        "{text}"
    );

    // Definition and references: across files for the activity.
    let definition = client.request("textDocument/definition", at(1, 32));
    assert!(definition["uri"].as_str().unwrap().ends_with("other.wv"));
    assert_eq!(
        definition["range"]["start"],
        json!({ "line": 0, "character": 9 })
    );
    let definition = client.request("textDocument/definition", at(3, 59));
    assert_eq!(
        definition["range"]["start"],
        json!({ "line": 1, "character": 8 })
    );
    let mut references = client.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 1, "character": 10 }, "context": { "includeDeclaration": true } }),
    );
    let lines: Vec<u64> = references
        .as_array_mut()
        .unwrap()
        .iter()
        .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        [1, 2, 3, 3],
        "definition, `from extract`, the trigger and `from extract, clean`"
    );

    // Completion: stage names after `from`, states after `stage.`, values, keys.
    let labels = |result: Value| -> Vec<String> {
        result
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["label"].as_str().unwrap().to_string())
            .collect()
    };
    let after_from = labels(client.request("textDocument/completion", at(2, 21)));
    assert!(
        after_from.contains(&"extract".to_string()),
        "{after_from:?}"
    );
    let states = labels(client.request("textDocument/completion", at(3, 24)));
    assert!(
        states.contains(&"success".to_string()) && states.contains(&"failed".to_string()),
        "{states:?}"
    );
    let keys = labels(client.request("textDocument/completion", at(1, 17)));
    assert!(
        keys.contains(&"retries".to_string()) && keys.contains(&"backoff".to_string()),
        "{keys:?}"
    );
    let anywhere = labels(client.request("textDocument/completion", at(1, 31)));
    assert!(
        anywhere.contains(&"load".to_string()) && anywhere.contains(&"Nightly".to_string()),
        "{anywhere:?}"
    );

    // Right after a character of several bytes: no crash, an answer.
    let after_emoji = client.request("textDocument/completion", at(4, 7));
    assert!(after_emoji.is_array(), "{after_emoji}");

    // Symbols: the flow with its stages.
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": uri } }),
    );
    assert_eq!(symbols[0]["name"], "Nightly");
    let stages: Vec<&str> = symbols[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["extract", "clean", "report", "note"]);

    // Formatting: one edit with the canonical text.
    let edits = client.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    let formatted = edits[0]["newText"].as_str().unwrap();
    assert!(
        formatted.contains("from extract | where id > 0\n"),
        "{formatted}"
    );

    // Rename a stage everywhere it is named.
    let edit = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 2, "character": 22 }, "newName": "pull" }),
    );
    let changes = edit["changes"][&uri].as_array().unwrap();
    assert_eq!(changes.len(), 4);
    assert!(changes.iter().all(|c| c["newText"] == "pull"));

    // A keyword is not a name.
    let refused = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 2, "character": 22 }, "newName": "stage" }),
    );
    assert_eq!(refused, Value::Null);

    assert_eq!(client.request("shutdown", Value::Null), Value::Null);
    client.notify("exit", Value::Null);
    let status = client.child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn neovim_shows_the_diagnostics_of_wvflow_lsp() {
    let broken = FLOW.replace("[timeout: 5s]", "[retires: 5s]");
    let dir = scratch("lsp-nvim", &[("other.wv", OTHER), ("nightly.wv", &broken)]);
    let out = dir.join("diagnostics.txt");
    let status = Command::new("nvim")
        .args(["--headless", "--clean", "-u", "tests/nvim/init.lua"])
        .env("WVFLOW_BIN", env!("CARGO_BIN_EXE_wvflow"))
        .env("WVFLOW_ROOT", &dir)
        .env("WVFLOW_FILE", dir.join("nightly.wv"))
        .env("WVFLOW_OUT", &out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("Neovim is installed (scripts/test.sh installs the Debian package)");
    assert!(status.success());
    let diagnostics = std::fs::read_to_string(&out).unwrap();
    // Neovim counts columns in bytes: `  /* 😀 */ stage note [` is 25 bytes.
    assert_eq!(
        diagnostics.trim(),
        "4:25:E0201:unknown key `retires` in a stage help: did you mean `retries`?"
    );
}

#[test]
fn malformed_messages_are_skipped_and_the_protocol_ends_by_its_rules() {
    let mut client = Client::start();
    for garbage in [
        "Content-Length: 99999999999\r\n\r\n".to_string(),
        "Content-Length: 9\r\n\r\n{not json".to_string(),
        "X-Nonsense: 1\r\n\r\n".to_string(),
        "Content-Length: 3\r\n\r\n{}}".to_string(),
    ] {
        client.stdin.write_all(garbage.as_bytes()).unwrap();
    }
    client.stdin.flush().unwrap();
    let init = client.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    assert_eq!(init["capabilities"]["hoverProvider"], true, "still serving");
    client.notify("initialized", json!({}));
    client.request("shutdown", json!(null));
    // After `shutdown`, a request is refused with InvalidRequest (-32600).
    let id = client.next_id;
    client
        .send(json!({ "jsonrpc": "2.0", "id": id, "method": "textDocument/hover", "params": {} }));
    let answer = loop {
        let message = client
            .messages
            .recv_timeout(Duration::from_secs(20))
            .unwrap();
        if message["id"] == id {
            break message;
        }
    };
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    client.notify("exit", json!(null));
    assert_eq!(client.child.wait().unwrap().code(), Some(0));

    // `exit` without `shutdown`: exit code 1.
    let mut client = Client::start();
    client.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    client.notify("exit", json!(null));
    assert_eq!(client.child.wait().unwrap().code(), Some(1));
}

/// A language server with `text` open as `name` in a fresh workspace `folder`: the client,
/// the document's URI, and a position maker.
fn open_one(folder: &str, name: &str, text: &str) -> (Client, String) {
    let (client, uri, found) = open_with_diagnostics(folder, name, text);
    assert!(found.is_empty());
    (client, uri)
}

/// As [`open_one`], with the document's first diagnostics.
fn open_with_diagnostics(folder: &str, name: &str, text: &str) -> (Client, String, Vec<Value>) {
    open_beside(folder, name, text, &[])
}

/// As [`open_with_diagnostics`], with other files in the folder (a `wvflow.toml`).
fn open_beside(
    folder: &str,
    name: &str,
    text: &str,
    others: &[(&str, &str)],
) -> (Client, String, Vec<Value>) {
    let mut files = vec![(name, text)];
    files.extend_from_slice(others);
    let dir = scratch(folder, &files);
    let root = format!("file://{}", dir.display());
    let uri = format!("{root}/{name}");
    let mut client = Client::start();
    client.request(
        "initialize",
        json!({ "processId": null, "rootUri": root, "capabilities": {} }),
    );
    client.notify("initialized", json!({}));
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "wvflow", "version": 1, "text": text } }),
    );
    let found = client.diagnostics(&uri);
    (client, uri, found)
}

/// The labels of a completion answer.
fn labels(result: Value) -> Vec<String> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

/// The patterns' syntax in the editor: after `| call ` and a jump's `->` the completion
/// offers flows (a route case's `->` still offers stages), and a flow named by `| call`
/// jumps to its definition.
#[test]
fn the_language_server_knows_calls_after_a_pipe() {
    const PATTERNS: &str = "flow Report(n: int) = { stage r = from [[n]] as t(n) }\nflow Main = {\n  stage totals = from [[1]] as t(total) | call Report(n: _.total)\n  stage split = from totals | route { case true -> a else -> b }\n  stage a = from split\n  stage b = from split | -> Report(n: 1)\n}\n";
    let (mut client, uri) = open_one("lsp_patterns", "main.wv", PATTERNS);
    let at = |line: u32, character: u32| json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
    // `| call R|eport`: the cursor after `R` (line 2, column 48).
    let after_call = labels(client.request("textDocument/completion", at(2, 48)));
    assert_eq!(after_call, ["Main", "Report"]);
    // `| -> R|eport` on line 5.
    let after_jump = labels(client.request("textDocument/completion", at(5, 29)));
    assert_eq!(after_jump, ["Main", "Report"]);
    // `case true -> a`: stages, not flows.
    let after_case = labels(client.request("textDocument/completion", at(3, 52)));
    assert_eq!(after_case, ["a", "b", "split", "totals"]);
    let definition = client.request("textDocument/definition", at(2, 49));
    assert_eq!(
        definition["range"]["start"],
        json!({ "line": 0, "character": 5 })
    );
}

/// Pools in the editor: `pool:` completes the workspace's pools, a pool's name jumps to its
/// definition and hovers with its slots; `failed(` completes stages; pools are document
/// symbols.
#[test]
fn the_language_server_knows_pools_and_failed_items() {
    const POOLS: &str = "pool gpu with { slots: 2 }\nactivity fit(m: string) = exec('echo', m)\nflow Train = {\n  stage models = from [['a']] as t(m)\n  stage trained [pool: gpu] = from models | each fit(_.m)\n  stage again = from failed(trained)\n}\n";
    let (mut client, uri) = open_one("lsp_pools", "train.wv", POOLS);
    let at = |line: u32, character: u32| json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
    // `[pool: g|pu]` on line 4: `gpu` starts at column 23.
    assert_eq!(
        labels(client.request("textDocument/completion", at(4, 24))),
        ["gpu"]
    );
    let definition = client.request("textDocument/definition", at(4, 24));
    assert_eq!(
        definition["range"]["start"],
        json!({ "line": 0, "character": 5 })
    );
    let hover = client.request("textDocument/hover", at(4, 24));
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("2 slot(s)"),
        "{hover}"
    );
    // `failed(t|rained)` on line 5: `trained` starts at column 28.
    let after_failed = labels(client.request("textDocument/completion", at(5, 29)));
    assert!(
        after_failed.contains(&"trained".to_string()),
        "{after_failed:?}"
    );
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": uri } }),
    );
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"gpu"), "{names:?}");
}

/// Loops in the editor: the activity a `while` calls jumps to its definition and is offered
/// after `while`; `max_iterations` hovers with its meaning; a `while` with nothing after it is
/// shown as E0120 where it is written.
#[test]
fn the_language_server_knows_while_loops() {
    const LOOP: &str = "activity not_done() = exec('true')\nactivity step() = exec('true')\nflow Drain = {\n  stage s [max_iterations: 10] = from [[1]] as t(x) | while not_done() | step()\n}\n";
    let (mut client, uri) = open_one("lsp_loops", "loop.wv", LOOP);
    let at = |line: u32, character: u32| json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
    // `while n|ot_done()` on line 3: `not_done` starts at column 59.
    let definition = client.request("textDocument/definition", at(3, 60));
    assert_eq!(
        definition["range"]["start"],
        json!({ "line": 0, "character": 9 })
    );
    let offered = labels(client.request("textDocument/completion", at(3, 60)));
    assert!(offered.contains(&"not_done".to_string()), "{offered:?}");
    let hover = client.request("textDocument/hover", at(3, 14));
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap_or_default()
            .contains("bound on a `while` loop's iterations"),
        "{hover}"
    );
    let (_, _, found) = open_with_diagnostics(
        "lsp_loops_bare",
        "bare.wv",
        "flow Drain = {\n  stage s = from [[1]] as t(x) | while x > 0\n}\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["code"], "E0120");
    assert_eq!(
        found[0]["range"]["start"],
        json!({ "line": 1, "character": 33 })
    );
}

/// A file with more problems than an editor shows gets the first 999 and, in place of the
/// rest, one note of how many more there are, at the first of them; fixed, it gets none.
#[test]
fn a_file_with_thousands_of_problems_gets_the_first_and_a_note() {
    let text: String = (0..1205)
        .map(|i| format!("flow f{i} = {{ stage s = from [[1]] as t(x) | select uper(x) as y }}\n"))
        .collect();
    let (mut client, uri, found) = open_with_diagnostics("lsp_many_problems", "many.wv", &text);
    assert_eq!(found.len(), 1000);
    assert!(found[..999].iter().all(|d| d["code"] == "E0617"));
    assert_eq!(found[998]["range"]["start"]["line"], 998);
    let note = &found[999];
    assert_eq!(note["severity"], 3);
    assert_eq!(
        note["range"]["start"]["line"], 999,
        "at the first not shown"
    );
    assert!(note.get("code").is_none(), "{note}");
    let message = note["message"].as_str().unwrap();
    assert!(
        message.starts_with("206 more problems from here on are not shown; `wvflow check ")
            && message.ends_with("many.wv` lists them all"),
        "{message}"
    );
    let fixed = text.replace("uper", "upper");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": fixed }] }),
    );
    assert!(client.diagnostics(&uri).is_empty());
}

/// Connectors in the editor: `stage s on ` completes `default` and `wvflow.toml`'s
/// connectors, a connector's name hovers with its kind, and a stage on a connector this build
/// cannot run (another SQLite file; DuckDB in a build without it) is shown as E0702 where it is
/// written; one on postgres is not.
#[test]
fn the_language_server_knows_connectors() {
    const TOML: &str = "[connectors.pg]\nkind = \"postgres\"\nurl = \"postgresql://app:${PGPASSWORD}@db/a\"\n\n[connectors.duck]\nkind = \"duckdb\"\npath = \"a.duckdb\"\n\n[connectors.lite]\nkind = \"sqlite\"\npath = \"other.db\"\n";
    const FLOW: &str = "flow Report = {\n  stage orders = from [[1]] as t(id)\n  stage recent on duck = from orders | limit 10\n  stage there on pg = from orders\n  stage other on lite = from orders\n}\n";
    let (mut client, uri, found) = open_beside(
        "lsp_connectors",
        "report.wv",
        FLOW,
        &[("wvflow.toml", TOML)],
    );
    let refused: Vec<(&str, u64)> = found
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap(),
                d["range"]["start"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    if cfg!(feature = "duckdb") {
        assert_eq!(refused, [("E0702", 4)], "{found:?}");
    } else {
        assert_eq!(refused, [("E0702", 2), ("E0702", 4)], "{found:?}");
    }
    let at = |line: u32, character: u32| json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
    // `on d|uck` on line 2: `duck` starts at column 18.
    assert_eq!(
        labels(client.request("textDocument/completion", at(2, 19))),
        ["default", "pg", "duck", "lite"]
    );
    let hover = client.request("textDocument/hover", at(2, 19));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("**connector `duck`**: duckdb, file `"),
        "{text}"
    );
    assert_eq!(
        text.contains("(E0702)"),
        !cfg!(feature = "duckdb"),
        "{text}"
    );
    // `on l|ite` on line 4.
    let hover = client.request("textDocument/hover", at(4, 18));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("**connector `lite`**: sqlite"), "{text}");
    assert!(text.contains("(E0702)"), "{text}");
    // `on p|g` on line 3.
    let hover = client.request("textDocument/hover", at(3, 18));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("**connector `pg`**: postgres"), "{text}");
    assert!(!text.contains("PGPASSWORD"), "{text}");
}

/// Tests in the editor: their names complete from the tested flow and the workspace, a stage
/// named in an `expect` hovers and jumps like the stage, and a test's problems are
/// diagnostics of the document.
#[test]
fn the_language_server_knows_tests() {
    const FLOW: &str = "activity charge(amount: float) = exec('true')\nflow Pay = {\n  signal approved = false\n  stage payment = charge(1.0)\n}\ntest pays = {\n  call Pay()\n  mock charge returns []\n  signal approved at 1m\n  expect payment success\n  expect run success\n  expect \n}\n";
    let (mut client, uri, found) = open_with_diagnostics("lsp_tests", "pay.wv", FLOW);
    // The unfinished `expect` of line 11 is a syntax error, reported on its line.
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["range"]["start"]["line"], 12, "{found:?}");
    let at = |line: u32, character: u32| json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } });
    // `  expect |` on line 11: the flow's stages, the activities, the expectations.
    let offered = labels(client.request("textDocument/completion", at(11, 9)));
    assert_eq!(
        offered,
        [
            "payment",
            "charge",
            "run",
            "exit",
            "compensations",
            "hooks",
            "elapsed",
            "table"
        ]
    );
    // `  mock c|harge`: activities.
    assert_eq!(
        labels(client.request("textDocument/completion", at(7, 8))),
        ["charge"]
    );
    // `  signal a|pproved`: the flow's signals.
    assert_eq!(
        labels(client.request("textDocument/completion", at(8, 10))),
        ["approved"]
    );
    // `  expect run s|uccess`: run states.
    let states = labels(client.request("textDocument/completion", at(10, 14)));
    assert!(states.contains(&"continued".to_string()), "{states:?}");
    // `expect pay|ment`: the stage's hover and definition.
    let hover = client.request("textDocument/hover", at(9, 12));
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(text.contains("payment"), "{text}");
    let definition = client.request("textDocument/definition", at(9, 12));
    assert_eq!(
        definition["range"]["start"],
        json!({ "line": 3, "character": 8 })
    );
}
