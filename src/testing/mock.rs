//! The launcher of a test: each activity call is answered by the test's mocks on the virtual
//! clock, never by a process (but for the activities the test lets run with `real`), and
//! every call is recorded with its arguments, input rows and attempt.

use crate::runtime::activity::{AttemptEvent, AttemptFailure, Launcher, ProcessLauncher, Request};
use crate::runtime::clock::Clock;
use crate::runtime::output::{Output, Spool, Spooled};
use crate::runtime::retry::Outcome;
use crate::runtime::store::Rows;
use rusqlite::types::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// How a mocked attempt ends.
#[derive(Clone, Debug)]
pub enum Answer {
    /// These rows, as NDJSON lines, as a program would print them.
    Rows(std::sync::Arc<Vec<u8>>),
    Fails(i32),
    NeverEnds,
}

/// One `mock` line: the calls and attempts it answers, how long it takes, how it ends.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The argument values of the calls it answers (every call: none).
    pub when: Vec<(String, Value, crate::value::ValueType)>,
    pub attempts: Option<(u64, u64)>,
    pub takes: Duration,
    pub answer: Answer,
}

/// One call of an activity, as the test saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub activity: String,
    pub args: BTreeMap<String, Value>,
    /// Each argument as the program sees it (`true`, `2m`): its `WV_<NAME>` variable.
    pub texts: BTreeMap<String, String>,
    pub input: Rows,
    pub attempt: u32,
}

pub struct MockLauncher<'a> {
    pub clock: &'a dyn Clock,
    pub rules: BTreeMap<String, Vec<Rule>>,
    pub real: BTreeSet<String>,
    pub calls: Mutex<Vec<Call>>,
}

impl MockLauncher<'_> {
    /// The rule for `attempt` of a call of `activity` with `args`: of the lines that answer
    /// it, one naming its arguments before one that does not, then one naming its attempt
    /// before one that does not; the first written among equals.
    fn rule(&self, activity: &str, args: &BTreeMap<String, Value>, attempt: u64) -> Option<&Rule> {
        let answers = |r: &&Rule| {
            r.attempts.is_none_or(|(a, b)| (a..=b).contains(&attempt))
                && r.when.iter().all(|(name, v, ty)| {
                    args.get(name).is_some_and(|given| {
                        super::rows::same((v, *ty), (given, crate::value::ValueType::Any))
                    })
                })
        };
        let rules = self.rules.get(activity)?;
        let best = rules
            .iter()
            .filter(answers)
            .map(|r| (!r.when.is_empty(), r.attempts.is_some()))
            .max()?;
        rules
            .iter()
            .filter(answers)
            .find(|r| (!r.when.is_empty(), r.attempts.is_some()) == best)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The rows written as NDJSON, read back as a program's output is.
pub fn scanned(ndjson: &[u8]) -> Result<Spooled, crate::runtime::output::Error> {
    Spooled::scan(Spool::Memory(ndjson.to_vec()))
}

impl Launcher for MockLauncher<'_> {
    /// A test writes no file, contacts no address and logs nothing: the rows stay in the run.
    fn deliver(
        &self,
        _activation: &crate::plan::ir::Activation,
        _rows: &Rows,
        _cwd: &std::path::Path,
        _label: &str,
    ) -> Result<(), crate::runtime::activate::Error> {
        Ok(())
    }

    fn launch(&self, request: &Request, events: &dyn Fn(AttemptEvent)) -> Outcome<Output> {
        let attempt = request
            .env
            .iter()
            .find(|(k, _)| k == "WVFLOW_ATTEMPT")
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .unwrap_or(1);
        let mut input = Vec::new();
        let _ = request.input.write_to(&mut input);
        let input = scanned(&input)
            .ok()
            .and_then(|s| Output::Spooled(s).into_rows().ok())
            .unwrap_or_default();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(Call {
                activity: request.activity.clone(),
                args: request.args.clone(),
                texts: request
                    .args
                    .keys()
                    .filter_map(|name| {
                        let var = format!("WV_{}", name.to_ascii_uppercase());
                        let text = request.env.iter().find(|(k, _)| *k == var)?;
                        Some((name.clone(), text.1.clone()))
                    })
                    .collect(),
                input,
                attempt,
            });
        }
        if self.real.contains(&request.activity) {
            return ProcessLauncher.launch(request, events);
        }
        let Some(rule) = self.rule(&request.activity, &request.args, u64::from(attempt)) else {
            return Outcome::Failure(AttemptFailure::Said {
                message: format!(
                    "`{}` is not mocked for attempt {attempt}: the test gives no answer",
                    request.activity
                ),
                exit_code: None,
            });
        };
        let wanted = match rule.answer {
            Answer::NeverEnds => None,
            _ => Some(rule.takes),
        };
        // The attempt's timeout ends it first when it comes first.
        let timed_out = match (wanted, request.timeout) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(w), Some(t)) => w >= t,
        };
        let wait = if timed_out { request.timeout } else { wanted };
        let waited = match wait {
            Some(d) if d.is_zero() => !request.cancel.load(std::sync::atomic::Ordering::SeqCst),
            Some(d) => self.clock.sleep_unless(d, &request.cancel),
            None => self.clock.sleep_unless(Duration::MAX, &request.cancel),
        };
        if !waited {
            return Outcome::Cancelled;
        }
        if timed_out {
            return Outcome::Failure(AttemptFailure::TimedOut {
                after: request.timeout.unwrap_or_default(),
                tail: String::new(),
            });
        }
        match &rule.answer {
            Answer::Rows(ndjson) => match scanned(ndjson) {
                Ok(spooled) => Outcome::Success(Output::Spooled(spooled)),
                Err(e) => Outcome::Failure(AttemptFailure::Output {
                    activity: request.activity.clone(),
                    why: None,
                    scan: Some(e),
                }),
            },
            Answer::Fails(code) => Outcome::Failure(AttemptFailure::Exited {
                activity: request.activity.clone(),
                code: *code,
                tail: format!("mocked: exit {code}"),
            }),
            Answer::NeverEnds => Outcome::Cancelled,
        }
    }
}
