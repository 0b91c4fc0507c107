//! Flow calls from the command line and from jumps: `Name@v(arg = value, ...)` read with the
//! language's own parser, and arguments bound to a flow's parameters (positional, then named,
//! then defaults), each value stored as its parameter's type.

use super::store::from_json;
use crate::syntax::ast::{ExprKind, Item};
use crate::value::stored;
use rusqlite::types::Value;
use std::collections::BTreeMap;

/// Arguments of a flow call: positional (no name) or named, as values.
pub type CallArgs = Vec<(Option<String>, Value)>;

/// `Name` or `Name(arg = value, ...)`, read with the language's own parser.
/// `Name@2` is short for `Name @version(2)`, for every command that takes a flow.
pub fn parse_call(text: Option<&str>) -> Result<(Option<String>, CallArgs), String> {
    let Some(text) = text else {
        return Ok((None, Vec::new()));
    };
    let long = match text.split_once('@') {
        Some((name, rest)) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            format!("{name}@version({}){}", &rest[..digits], &rest[digits..])
        }
        _ => text.to_string(),
    };
    let parsed = crate::syntax::parse(&format!("run flow {long}"), crate::source::FileId(0));
    let call = match (parsed.diagnostics.first(), parsed.ast.items.as_slice()) {
        (None, [Item::Run(run)]) => &run.call,
        (Some(d), _) => return Err(format!("cannot read the flow call `{text}`: {}", d.message)),
        _ => return Err(format!("cannot read the flow call `{text}`")),
    };
    let mut name = call.name.name.to_string();
    if let Some(v) = &call.version {
        name.push_str(&format!("@{}", v.value));
    }
    Ok((Some(name), call_args(call)?))
}

/// The literal arguments of a flow call.
pub fn call_args(call: &crate::syntax::ast::FlowCall) -> Result<CallArgs, String> {
    let mut args = Vec::new();
    for arg in call.args.as_deref().unwrap_or_default() {
        let value = match &arg.value.kind {
            ExprKind::Int(n) => Value::Integer(*n),
            ExprKind::Float(x) => Value::Real(*x),
            ExprKind::Str(s) => Value::Text(s.to_string()),
            ExprKind::Bool(b) => Value::Integer(*b as i64),
            ExprKind::Duration { millis, .. } => Value::Integer(*millis as i64),
            ExprKind::Null => Value::Null,
            _ => {
                return Err(format!(
                    "arguments of `{}` must be literals, such as 42, 'text' or 30s",
                    call.name.name
                ));
            }
        };
        args.push((arg.name.as_ref().map(|n| n.name.to_string()), value));
    }
    Ok(args)
}

/// Binds call arguments to the flow's parameters: positional, then named, then defaults.
pub fn bind_params(
    plan: &crate::plan::Plan,
    args: &[(Option<String>, Value)],
) -> Result<BTreeMap<String, Value>, String> {
    let params = &plan.flow.params;
    let mut bound = BTreeMap::new();
    for (i, (name, value)) in args.iter().enumerate() {
        let param = match name {
            Some(n) => params
                .iter()
                .find(|p| &p.name == n)
                .ok_or_else(|| format!("flow `{}` has no parameter `{n}`", plan.flow.name))?,
            None => params.get(i).ok_or_else(|| {
                format!(
                    "flow `{}` takes {} arguments, {} given",
                    plan.flow.name,
                    params.len(),
                    args.len()
                )
            })?,
        };
        let value = stored(value.clone(), param.ty).map_err(|expected| {
            format!(
                "argument `{}` of flow `{}` must be {expected}",
                param.name, plan.flow.name
            )
        })?;
        if bound.insert(param.name.clone(), value).is_some() {
            return Err(format!("argument `{}` is given twice", param.name));
        }
    }
    for p in params {
        if !bound.contains_key(&p.name) {
            let default = p.default.as_ref().ok_or_else(|| {
                format!(
                    "flow `{}` needs an argument for `{}`",
                    plan.flow.name, p.name
                )
            })?;
            let value = stored(from_json(default), p.ty).unwrap_or_else(|_| from_json(default));
            bound.insert(p.name.clone(), value);
        }
    }
    Ok(bound)
}
