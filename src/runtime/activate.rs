//! `activate(...)`: delivering rows to a target outside the run: a file (CSV, JSON, NDJSON),
//! a webhook (POST of a JSON array), or the log. Stages and flow hooks use it.

use super::rows_text::{self, ndjson};
use super::store::Rows;
use crate::plan::ir::{Activation, ActivationTarget};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why rows could not be delivered. `Display` gives the message users see.
#[derive(Debug)]
pub enum Error {
    /// An option written as an expression could not be evaluated.
    Evaluate(super::store::Error),
    /// The log (stderr) could not be written.
    Log(crate::terminal::StderrFailed),
    /// The target needs an option the activation does not give (`activate('file')` needs
    /// `path:`).
    Needs {
        target: &'static str,
        option: &'static str,
    },
    /// The folder of the file could not be made.
    Create { path: PathBuf, io: std::io::Error },
    /// The file could not be written.
    Write { path: PathBuf, io: std::io::Error },
    /// The rows could not be written as CSV.
    Csv(::csv::Error),
    /// The webhook's proxy is not one.
    Proxy { proxy: String, message: String },
    /// The webhook could not be called.
    Webhook { url: String, message: String },
    /// The webhook answered with a redirect, which is not followed.
    Redirect {
        url: String,
        status: u16,
        location: String,
    },
    /// The webhook answered with another status than 2xx; `tail` begins its answer.
    Answered {
        url: String,
        status: u16,
        tail: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Evaluate(e) => write!(f, "{e}"),
            Error::Log(e) => write!(f, "{e}"),
            Error::Needs { target, option } => {
                write!(f, "`activate('{target}')` needs `{option}:`")
            }
            Error::Create { path, io } => write!(f, "cannot create {}: {io}", path.display()),
            Error::Write { path, io } => write!(f, "cannot write {}: {io}", path.display()),
            Error::Csv(e) => write!(f, "{e}"),
            Error::Proxy { proxy, message } => write!(f, "webhook proxy {proxy}: {message}"),
            Error::Webhook { url, message } => write!(f, "webhook {url}: {message}"),
            Error::Redirect {
                url,
                status,
                location,
            } => write!(
                f,
                "webhook {url} answered {status}, a redirect to {location}: wvflow follows no redirect; name the final address in `url:`"
            ),
            Error::Answered { url, status, tail } => {
                write!(f, "webhook {url} answered {status}: {tail}")
            }
        }
    }
}

impl std::error::Error for Error {}


/// The activation with its options written as expressions evaluated over the run's values.
pub fn evaluated(
    activation: &Activation,
    store: &mut super::store::Store,
    params: &std::collections::BTreeMap<String, rusqlite::types::Value>,
) -> Result<Activation, Error> {
    let mut done = activation.clone();
    if activation.computed.is_empty() {
        return Ok(done);
    }
    let values = super::engine::bind_one(store, &activation.computed, params, None)
        .map_err(Error::Evaluate)?;
    for (name, value) in values {
        done.options.insert(
            name,
            crate::value::json(&value, crate::value::ValueType::Any),
        );
    }
    done.computed.clear();
    Ok(done)
}

/// Delivers `rows` to the activation's target. Relative file paths resolve against `cwd` (the
/// flow's folder); `label` prefixes log lines.
pub fn deliver(
    activation: &Activation,
    rows: &Rows,
    cwd: &Path,
    label: &str,
) -> Result<(), Error> {
    match activation.target {
        ActivationTarget::Log => {
            // The rows are the delivery: a log that cannot be written fails the stage.
            for line in ndjson(rows).lines() {
                crate::terminal::write_stderr(format_args!("[{label}] {line}\n"))
                    .map_err(Error::Log)?;
            }
            Ok(())
        }
        ActivationTarget::File => {
            let path = activation
                .options
                .get("path")
                .and_then(|p| p.as_str())
                .ok_or(Error::Needs {
                    target: "file",
                    option: "path",
                })?;
            let format = activation
                .options
                .get("format")
                .and_then(|f| f.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    std::path::Path::new(path)
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("csv")
                        .to_ascii_lowercase()
                });
            let full = cwd.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|io| Error::Create {
                    path: parent.to_path_buf(),
                    io,
                })?;
            }
            let text = match format.as_str() {
                "json" => rows_text::json(rows),
                "ndjson" | "jsonl" => ndjson(rows),
                _ => rows_text::csv(rows).map_err(Error::Csv)?,
            };
            std::fs::write(&full, text).map_err(|io| Error::Write { path: full, io })
        }
        ActivationTarget::Webhook => {
            let url = activation
                .options
                .get("url")
                .and_then(|u| u.as_str())
                .ok_or(Error::Needs {
                    target: "webhook",
                    option: "url",
                })?;
            let proxy = activation.options.get("proxy").and_then(|p| p.as_str());
            post_json(
                url,
                proxy,
                &serde_json::Value::Array(
                    rows.to_json_objects()
                        .into_iter()
                        .map(serde_json::Value::Object)
                        .collect(),
                ),
            )
        }
    }
}

/// POSTs the rows as one JSON array to exactly the address the flow names: no redirect is
/// followed (a 3xx fails the stage with its status), and a proxy is used only when the
/// activation names one (`proxy:`), never from `HTTP_PROXY`/`ALL_PROXY`. Anything but a 2xx
/// answer fails the stage.
fn post_json(url: &str, proxy: Option<&str>, body: &serde_json::Value) -> Result<(), Error> {
    let proxy = proxy
        .map(|p| {
            ureq::Proxy::new(p).map_err(|e| Error::Proxy {
                proxy: p.to_string(),
                message: e.to_string(),
            })
        })
        .transpose()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(proxy)
        .build()
        .into();
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|e| Error::Webhook {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    if (300..400).contains(&status) {
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("nowhere");
        return Err(Error::Redirect {
            url: url.to_string(),
            status,
            location: location.to_string(),
        });
    }
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let tail: String = text.chars().take(500).collect();
    Err(Error::Answered {
        url: url.to_string(),
        status,
        tail,
    })
}
