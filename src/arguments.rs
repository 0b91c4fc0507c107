//! How the arguments of a call meet the parameters of what it calls: one rule for the checker
//! (which reports each problem), lowering (which binds a checked call) and the command line
//! (`wvflow run flow.wv 'F(3, day = ...)'`). Positional arguments come first and take the
//! parameters in order; named ones take the parameter of their name; a parameter left over
//! takes its default.

use crate::syntax::ast;

/// A parameter as the rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct Slot<'a> {
    pub name: &'a str,
    pub has_default: bool,
}

/// What is wrong with the arguments; `arg` and `param` are indexes into the lists given.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgProblem {
    PositionalAfterNamed {
        arg: usize,
    },
    /// More positional arguments than parameters; the rest are not looked at.
    TooMany {
        arg: usize,
    },
    Unknown {
        arg: usize,
    },
    Twice {
        arg: usize,
        param: usize,
    },
    /// Parameters without a default that no argument gave (not reported after `TooMany`).
    Missing {
        params: Vec<usize>,
    },
}

/// The argument each parameter takes (`None`: its default), and the problems.
#[derive(Debug, PartialEq)]
pub struct Assignment {
    pub args: Vec<Option<usize>>,
    pub problems: Vec<ArgProblem>,
}

/// Assigns arguments (each with its name, if named) to parameters.
pub fn assign(params: &[Slot], args: &[Option<&str>]) -> Assignment {
    let mut taken: Vec<Option<usize>> = vec![None; params.len()];
    let mut problems = Vec::new();
    let mut seen_named = false;
    let mut position = 0;
    for (arg, name) in args.iter().enumerate() {
        let param = match name {
            None if seen_named => {
                problems.push(ArgProblem::PositionalAfterNamed { arg });
                continue;
            }
            None => {
                if position >= params.len() {
                    problems.push(ArgProblem::TooMany { arg });
                    break;
                }
                position += 1;
                position - 1
            }
            Some(name) => {
                seen_named = true;
                match params.iter().position(|p| p.name == *name) {
                    Some(param) => param,
                    None => {
                        problems.push(ArgProblem::Unknown { arg });
                        continue;
                    }
                }
            }
        };
        if taken[param].is_some() {
            problems.push(ArgProblem::Twice { arg, param });
            continue;
        }
        taken[param] = Some(arg);
    }
    let missing: Vec<usize> = (0..params.len())
        .filter(|&p| taken[p].is_none() && !params[p].has_default)
        .collect();
    let too_many = problems
        .iter()
        .any(|p| matches!(p, ArgProblem::TooMany { .. }));
    if !missing.is_empty() && !too_many {
        problems.push(ArgProblem::Missing { params: missing });
    }
    Assignment {
        args: taken,
        problems,
    }
}

/// [`assign`] for a call written in the language: its arguments to the callee's parameters.
pub fn assign_call(params: &[ast::Param], args: &[ast::Arg]) -> Assignment {
    let slots: Vec<Slot> = params
        .iter()
        .map(|p| Slot {
            name: &p.name.name,
            has_default: p.default.is_some(),
        })
        .collect();
    let names: Vec<Option<&str>> = args
        .iter()
        .map(|a| a.name.as_ref().map(|n| n.name.as_str()))
        .collect();
    assign(&slots, &names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: [Slot; 3] = [
        Slot {
            name: "a",
            has_default: false,
        },
        Slot {
            name: "b",
            has_default: false,
        },
        Slot {
            name: "c",
            has_default: true,
        },
    ];

    #[test]
    fn positional_then_named_then_defaults() {
        let done = assign(&PARAMS, &[None, Some("b")]);
        assert_eq!(done.args, [Some(0), Some(1), None]);
        assert!(done.problems.is_empty());
        let done = assign(&PARAMS, &[Some("b"), Some("a"), Some("c")]);
        assert_eq!(done.args, [Some(1), Some(0), Some(2)]);
    }

    #[test]
    fn every_problem_is_named() {
        assert_eq!(
            assign(&PARAMS, &[Some("a"), None]).problems,
            [
                ArgProblem::PositionalAfterNamed { arg: 1 },
                ArgProblem::Missing { params: vec![1] }
            ]
        );
        assert_eq!(
            assign(&PARAMS, &[None, None, None, None]).problems,
            [ArgProblem::TooMany { arg: 3 }]
        );
        assert_eq!(
            assign(&PARAMS, &[None, Some("a"), Some("d")]).problems,
            [
                ArgProblem::Twice { arg: 1, param: 0 },
                ArgProblem::Unknown { arg: 2 },
                ArgProblem::Missing { params: vec![1] }
            ]
        );
    }
}
