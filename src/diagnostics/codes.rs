//! Every diagnostic code, with its family and title: one typed table. `docs/errors.md` holds
//! each code's entry under the same title (a test holds them to each other), and
//! `wvflow explain CODE` prints it.

use serde::{Serialize, Serializer};

/// A code's family: what part of a workspace it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Syntax,
    NamesAndStructure,
    ConfigurationValues,
    Triggers,
    SagaAndIdempotency,
    Schedules,
    FlowsAndCalls,
    Connectors,
    Tests,
}

macro_rules! codes {
    ($($code:ident: $title:literal;)*) => {
        /// A diagnostic code: `E` errors and `W` warnings, numbered by family.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($code),*
        }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$code),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code)),*
                }
            }

            /// The title of its entry in `docs/errors.md`.
            pub fn title(self) -> &'static str {
                match self {
                    $(Code::$code => $title),*
                }
            }
        }
    };
}

impl Code {
    pub fn is_warning(self) -> bool {
        self.as_str().starts_with('W')
    }

    /// From the hundreds of its number: E01xx and W01xx are names and structure.
    pub fn family(self) -> Family {
        match &self.as_str()[2..3] {
            "0" => Family::Syntax,
            "1" => Family::NamesAndStructure,
            "2" => Family::ConfigurationValues,
            "3" => Family::Triggers,
            "4" => Family::SagaAndIdempotency,
            "5" => Family::Schedules,
            "6" => Family::FlowsAndCalls,
            "7" => Family::Connectors,
            _ => Family::Tests,
        }
    }

    /// The code written as text (`e0201` too), if it is one.
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A code equals its text, as tests and JSON readers write it.
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

codes! {
    E0001: "unexpected character";
    E0002: "unterminated string";
    E0003: "unterminated quoted name";
    E0004: "unterminated block comment";
    E0005: "malformed number or duration";
    E0006: "unknown escape in a string";
    E0007: "number out of range";
    E0008: "unknown parameter type";
    E0009: "config entries on one line need a comma";
    E0010: "unexpected token";
    E0011: "unexpected end of file";
    E0012: "nesting too deep";
    E0013: "file too large";
    E0014: "NUL character in a string";
    E0015: "malformed date or timestamp literal";
    E0101: "stage defined twice";
    E0102: "flow defined twice";
    E0103: "activity defined twice";
    E0104: "undefined stage";
    E0105: "dependency cycle";
    E0106: "flow has no stages";
    E0107: "stage reads a stage that ends the flow";
    E0108: "operator after the end of a pipeline";
    E0109: "flow has no terminal stage";
    E0110: "route target does not read from the route";
    E0111: "stage named by two route cases";
    E0112: "route percentages do not sum to 100";
    E0113: "percentage and condition cases mixed";
    E0114: "no such column";
    E0115: "a run-store table named by a flow";
    E0116: "failed items of a stage without `each`";
    E0117: "pool defined twice";
    E0118: "failed items and their input share a column name";
    E0119: "failed items of a stage that fans out twice";
    E0120: "`while` with nothing to repeat";
    E0121: "operator a loop cannot repeat";
    E0201: "unknown configuration key";
    E0202: "key in the wrong place";
    E0203: "key set twice";
    E0204: "configuration value of the wrong type";
    E0205: "configuration value out of range";
    E0206: "unknown value of a key";
    E0207: "maximum retry delay shorter than the first delay";
    E0208: "heartbeat not shorter than the timeout";
    E0209: "schedule timeout shorter than the timeout";
    E0210: "unknown pool";
    E0211: "pool without `slots`";
    E0212: "pool held while a child run needs it";
    E0301: "trigger names an unknown stage";
    E0302: "stage triggers on itself";
    E0303: "unknown stage state";
    E0304: "unknown trigger rule";
    E0305: "trigger can never be true";
    E0306: "trigger rule without upstream stages";
    E0307: "both an `if` trigger and a `trigger:` rule";
    E0308: "`first_success` with a `join`";
    E0401: "compensation is not an activity call";
    E0402: "compensation calls an undefined activity";
    E0403: "compensation arguments do not match";
    E0404: "compensation runs the stage's own activity";
    E0405: "idempotency key changes on every run";
    E0501: "invalid cron pattern";
    E0502: "schedule is not a cron call";
    E0503: "unknown time zone";
    E0504: "both `schedule` and `interval`";
    E0505: "interval shorter than one second";
    E0506: "catchup without a schedule";
    E0507: "flow concurrency below 1";
    E0601: "undefined flow";
    E0602: "`depends on` cycle";
    E0603: "too many arguments";
    E0604: "unknown argument name";
    E0605: "argument given twice";
    E0606: "positional argument after a named one";
    E0607: "missing argument";
    E0608: "argument of the wrong type";
    E0609: "parameter default of the wrong type";
    E0610: "unknown activity";
    E0611: "no such flow version";
    E0612: "invalid flow condition";
    E0613: "parameter declared twice";
    E0614: "invalid `activate` target";
    E0615: "unknown name in an expression";
    E0616: "`_` or a column where no row is read";
    E0617: "unknown function";
    E0618: "wrong number of function arguments";
    E0619: "two parameters, one environment variable";
    E0620: "`wait` without a duration";
    E0621: "arithmetic that is not time arithmetic";
    E0622: "one row read where another number of rows is known";
    E0623: "`while` condition that is not a boolean";
    E0624: "`iteration()` outside a `while` loop";
    E0701: "unknown connector";
    E0702: "connector this build cannot run";
    E0703: "malformed `wvflow.toml`";
    E0704: "unknown connector kind";
    E0705: "missing connector key";
    E0706: "unknown key in `wvflow.toml`";
    E0707: "invalid connector value";
    E0708: "connector `default` redefined";
    E0709: "expression a connector cannot run";
    E0710: "step a connector cannot run";
    E0801: "unknown name in a test";
    E0802: "test without one `call`";
    E0803: "activity a test neither mocks nor lets run";
    E0804: "invalid value in a test";
    E0805: "expectation that can never hold";
    E0806: "expectation not met";
    E0807: "mocked rows without a column the flow reads";
    E0808: "duplicate test name";
    W0101: "triggered stage reads a stage that may have failed";
    W0102: "route without `else`";
    W0103: "name looks like a misspelled stage";
    W0104: "loop condition that the loop cannot change";
    W0201: "stage timeout longer than the flow timeout";
    W0202: "retries do not fit in the schedule timeout";
    W0203: "key has no effect";
    W0301: "join after a route waits for every branch";
    W0401: "compensation without retries";
    W0402: "compensation on a stage with no side effect";
    W0501: "cron time in a daylight-saving transition";
    W0502: "schedule never fires";
    W0503: "time zone without a schedule";
    W0601: "jumps loop";
    W0602: "parameter shadows `run_time` or `run_date`";
    W0603: "flows start each other";
    W0604: "child runs call each other";
    W0801: "mock of an activity the run never calls";
}
