//! Flow calls from the command line and from jumps: `Name@v(arg = value, ...)` read with the
//! language's own parser, and arguments bound to a flow's parameters (positional, then named,
//! then defaults), each value stored as its parameter's type.

use super::store::from_json;
use crate::arguments::{ArgProblem, Slot, assign};
use crate::syntax::ast::{ExprKind, Item};
use crate::value::stored;
use rusqlite::types::Value;
use std::collections::BTreeMap;

/// Why a flow call cannot be read, or its arguments cannot be bound. `Display` gives the
/// message users see.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// The call is not one (`message`: what the parser said first).
    Unreadable {
        text: String,
        message: Option<String>,
    },
    /// An argument that is not a literal.
    NotLiteral { flow: String },
    PositionalAfterNamed { flow: String },
    TooMany {
        flow: String,
        takes: usize,
        given: usize,
    },
    Unknown { flow: String, name: String },
    Twice { name: String },
    Missing { flow: String, name: String },
    /// A value the parameter's type does not take; `expected` says what it takes.
    WrongType {
        flow: String,
        name: String,
        expected: String,
    },
    /// A JSON argument that is an array or an object.
    NotScalar { name: String },
    /// A JSON argument the parameter's type does not read: what it must be, and the JSON.
    WrongJson {
        flow: String,
        name: String,
        expected: String,
        given: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreadable {
                text,
                message: Some(message),
            } => write!(f, "cannot read the flow call `{text}`: {message}"),
            Error::Unreadable {
                text,
                message: None,
            } => write!(f, "cannot read the flow call `{text}`"),
            Error::NotLiteral { flow } => write!(
                f,
                "arguments of `{flow}` must be literals, such as 42, 'text' or 30s"
            ),
            Error::PositionalAfterNamed { flow } => {
                write!(f, "a positional argument of `{flow}` comes after a named one")
            }
            Error::TooMany { flow, takes, given } => {
                write!(f, "flow `{flow}` takes {takes} arguments, {given} given")
            }
            Error::Unknown { flow, name } => write!(f, "flow `{flow}` has no parameter `{name}`"),
            Error::Twice { name } => write!(f, "argument `{name}` is given twice"),
            Error::Missing { flow, name } => {
                write!(f, "flow `{flow}` needs an argument for `{name}`")
            }
            Error::WrongType {
                flow,
                name,
                expected,
            } => write!(f, "argument `{name}` of flow `{flow}` must be {expected}"),
            Error::NotScalar { name } => write!(
                f,
                "argument `{name}`: must be a number, a boolean, a text or null"
            ),
            Error::WrongJson {
                flow,
                name,
                expected,
                given,
            } => write!(
                f,
                "argument `{name}` of flow `{flow}` must be {expected}, not `{given}`"
            ),
        }
    }
}

impl std::error::Error for Error {}


/// Arguments of a flow call: positional (no name) or named, as values.
pub type CallArgs = Vec<(Option<String>, Value)>;

/// `Name` or `Name(arg = value, ...)`, read with the language's own parser.
/// `Name@2` is short for `Name @version(2)`, for every command that takes a flow.
pub fn parse_call(text: Option<&str>) -> Result<(Option<String>, CallArgs), Error> {
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
        (Some(d), _) => {
            return Err(Error::Unreadable {
                text: text.to_string(),
                message: Some(d.message.to_string()),
            });
        }
        _ => {
            return Err(Error::Unreadable {
                text: text.to_string(),
                message: None,
            });
        }
    };
    let mut name = call.name.name.to_string();
    if let Some(v) = &call.version {
        name.push_str(&format!("@{}", v.value));
    }
    Ok((Some(name), call_args(call)?))
}

/// The literal arguments of a flow call.
pub fn call_args(call: &crate::syntax::ast::FlowCall) -> Result<CallArgs, Error> {
    let mut args = Vec::new();
    for arg in call.args.as_deref().unwrap_or_default() {
        let value = match &arg.value.kind {
            ExprKind::Int(n) => Value::Integer(*n),
            ExprKind::Float(x) => Value::Real(*x),
            ExprKind::Str(s) | ExprKind::Time { value: s, .. } => Value::Text(s.to_string()),
            ExprKind::Bool(b) => Value::Integer(*b as i64),
            ExprKind::Duration { millis, .. } => Value::Integer(*millis as i64),
            ExprKind::Null => Value::Null,
            _ => {
                return Err(Error::NotLiteral {
                    flow: call.name.name.to_string(),
                });
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
) -> Result<BTreeMap<String, Value>, Error> {
    let (flow, params) = (&plan.flow.name, &plan.flow.params);
    let flow_name = || flow.clone();
    let slots: Vec<Slot> = params
        .iter()
        .map(|p| Slot {
            name: &p.name,
            has_default: p.default.is_some(),
        })
        .collect();
    let names: Vec<Option<&str>> = args.iter().map(|(name, _)| name.as_deref()).collect();
    let assignment = assign(&slots, &names);
    if let Some(problem) = assignment.problems.first() {
        let name = |arg: &usize| args[*arg].0.clone().unwrap_or_default();
        return Err(match problem {
            ArgProblem::PositionalAfterNamed { .. } => {
                Error::PositionalAfterNamed { flow: flow_name() }
            }
            ArgProblem::TooMany { .. } => Error::TooMany {
                flow: flow_name(),
                takes: params.len(),
                given: args.len(),
            },
            ArgProblem::Unknown { arg } => Error::Unknown {
                flow: flow_name(),
                name: name(arg),
            },
            ArgProblem::Twice { param, .. } => Error::Twice {
                name: params[*param].name.clone(),
            },
            ArgProblem::Missing { params: missing } => Error::Missing {
                flow: flow_name(),
                name: params[missing[0]].name.clone(),
            },
        });
    }
    let mut bound = BTreeMap::new();
    for (param, arg) in params.iter().zip(assignment.args) {
        let value = match (arg, &param.default) {
            (Some(arg), _) => {
                stored(args[arg].1.clone(), param.ty).map_err(|expected| Error::WrongType {
                    flow: flow_name(),
                    name: param.name.clone(),
                    expected: expected.to_string(),
                })?
            }
            (None, Some(default)) => {
                stored(from_json(default), param.ty).unwrap_or_else(|_| from_json(default))
            }
            // `assign` reported it missing.
            (None, None) => continue,
        };
        bound.insert(param.name.clone(), value);
    }
    Ok(bound)
}

/// Arguments given as a JSON object (the dashboard's form, an exported task's `--args`),
/// bound as `wvflow run` binds them: JSON numbers, booleans, texts and null, each read by its
/// parameter's type ([`crate::value::from_json_as`]: a duration as a text such as `90s` or
/// as milliseconds).
pub fn bind_json_args(
    plan: &crate::plan::Plan,
    given: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, Value>, Error> {
    bind_params(plan, &json_args(plan, given)?)
}

/// [`bind_json_args`]' arguments, before they are bound.
pub fn json_args(
    plan: &crate::plan::Plan,
    given: &serde_json::Map<String, serde_json::Value>,
) -> Result<CallArgs, Error> {
    let mut args = Vec::new();
    for (name, value) in given {
        let ty = plan
            .flow
            .params
            .iter()
            .find(|p| &p.name == name)
            .map_or(crate::value::ValueType::Any, |p| p.ty);
        let value = match value {
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                return Err(Error::NotScalar { name: name.clone() });
            }
            value => crate::value::from_json_as(value, ty).map_err(|wrong| Error::WrongJson {
                flow: plan.flow.name.clone(),
                name: name.clone(),
                expected: wrong.to_string(),
                given: value.to_string(),
            })?,
        };
        args.push((Some(name.clone()), value));
    }
    Ok(args)
}
