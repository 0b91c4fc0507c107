//! `activate(...)`: delivering rows to a target outside the run: a file (CSV, JSON, NDJSON),
//! a webhook (POST of a JSON array), or the log. Stages and flow hooks use it.

use super::rows_text::{self, ndjson};
use super::store::Rows;
use crate::plan::ir::{Activation, ActivationTarget};
use std::path::Path;
use std::time::Duration;

/// The activation with its options written as expressions evaluated over the run's values.
pub fn evaluated(
    activation: &Activation,
    store: &mut super::store::Store,
    params: &std::collections::BTreeMap<String, rusqlite::types::Value>,
) -> Result<Activation, String> {
    let mut done = activation.clone();
    if activation.computed.is_empty() {
        return Ok(done);
    }
    let values = super::engine::bind_one(store, &activation.computed, params, None)?;
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
) -> Result<(), String> {
    match activation.target {
        ActivationTarget::Log => {
            // The rows are the delivery: a log that cannot be written fails the stage.
            for line in ndjson(rows).lines() {
                crate::terminal::write_stderr(format_args!("[{label}] {line}\n"))?;
            }
            Ok(())
        }
        ActivationTarget::File => {
            let path = activation
                .options
                .get("path")
                .and_then(|p| p.as_str())
                .ok_or("`activate('file')` needs `path:`")?;
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
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let text = match format.as_str() {
                "json" => rows_text::json(rows),
                "ndjson" | "jsonl" => ndjson(rows),
                _ => rows_text::csv(rows)?,
            };
            std::fs::write(&full, text).map_err(|e| format!("cannot write {}: {e}", full.display()))
        }
        ActivationTarget::Webhook => {
            let url = activation
                .options
                .get("url")
                .and_then(|u| u.as_str())
                .ok_or("`activate('webhook')` needs `url:`")?;
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
fn post_json(url: &str, proxy: Option<&str>, body: &serde_json::Value) -> Result<(), String> {
    let proxy = proxy
        .map(|p| ureq::Proxy::new(p).map_err(|e| format!("webhook proxy {p}: {e}")))
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
        .map_err(|e| format!("webhook {url}: {e}"))?;
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
        return Err(format!(
            "webhook {url} answered {status}, a redirect to {location}: wvflow follows no redirect; name the final address in `url:`"
        ));
    }
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let tail: String = text.chars().take(500).collect();
    Err(format!("webhook {url} answered {status}: {tail}"))
}
