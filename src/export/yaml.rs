//! JSON values written as block-style YAML, for Kubernetes manifests people read. Every
//! string is double-quoted with JSON's escapes, which YAML reads the same way, so no value
//! is ever taken for a number, a boolean or a null by accident.

use serde_json::Value;

pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    block(value, 0, &mut out);
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Array(a) if !a.is_empty())
        || matches!(value, Value::Object(o) if !o.is_empty())
}

/// Writes `value` (an object or a list) at `indent`; the caller wrote the key or dash.
fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                out.push_str(&pad);
                out.push_str(&key_text(key));
                out.push(':');
                if is_block(item) {
                    out.push('\n');
                    // Lists sit at their key's indentation, as kubectl writes them.
                    let inner = if item.is_array() { indent } else { indent + 2 };
                    block(item, inner, out);
                } else {
                    out.push(' ');
                    out.push_str(&scalar(item));
                    out.push('\n');
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                if is_block(item) {
                    // The first line of the item follows the dash.
                    let mut inner = String::new();
                    block(item, indent + 2, &mut inner);
                    out.push_str(inner.trim_start());
                } else {
                    out.push_str(&scalar(item));
                    out.push('\n');
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// A key as is when it is a plain word, else quoted.
fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if plain {
        key.to_string()
    } else {
        serde_json::to_string(key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_blocks_and_quotes_every_string() {
        let doc = json!({
            "kind": "Workflow",
            "spec": {
                "args": ["stage", "run", "a b", "yes", "1"],
                "tasks": [{ "name": "x", "depends": "(a.Succeeded || a.Failed)" }, { "name": "y" }],
                "empty": [],
                "limit": 3,
            },
            "we:ird": "line\nbreak",
        });
        assert_eq!(
            to_yaml(&doc),
            "kind: \"Workflow\"\nspec:\n  args:\n  - \"stage\"\n  - \"run\"\n  - \"a b\"\n  - \"yes\"\n  - \"1\"\n  tasks:\n  - name: \"x\"\n    depends: \"(a.Succeeded || a.Failed)\"\n  - name: \"y\"\n  empty: []\n  limit: 3\n\"we:ird\": \"line\\nbreak\"\n"
        );
    }
}
