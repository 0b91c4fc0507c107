//! Exported child runs (`call F(...)`, `each call F(...)`) driven task by task, as an engine
//! drives them: the children `prepare` names, the stage's end from each child's last try, the
//! depth limit, a parent cancelled while its child runs (`parent_close`), a child started
//! after its parent was cancelled, and what export refuses.

use crate::common::scratch;
use crate::export::{text, wvflow_at};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Output;

/// A parent whose call waits for a child that books (with a compensation) and then waits
/// until it is told to go on; and one that calls a child per row.
const CALLS: &str = r#"activity book(who: string) = exec('printf', '{"who": "%s"}\n', who)
activity unbook(who: string) = exec('touch', 'unbooked')

flow Child(who: string) = {
  stage booked with { compensate: unbook(who) } = book(who)
  stage held = from booked | wait(60s)
}

flow Parent(who: string = 'ann') = {
  stage kid = call Child(who: who)
}

flow Shy(who: string = 'ann') = {
  stage kid [parent_close: abandon] = call Child(who: who)
}

flow Many = {
  stage names = from [['ann'], ['bob']] as t(name)
  stage kids = from names | each call Child(who: _.name)
}
"#;

struct Drive {
    dir: PathBuf,
}

impl Drive {
    fn new(name: &str) -> Drive {
        let dir = scratch(name, &[]);
        std::fs::write(dir.join("calls.wv"), CALLS).unwrap();
        for flow in ["Parent", "Shy", "Many", "Child"] {
            let o = wvflow_at(&dir, &["plan", "calls.wv", flow, "--format", "json"]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            std::fs::write(dir.join(format!("{flow}.json")), &o.stdout).unwrap();
        }
        Drive { dir }
    }

    /// `wvflow stage WORDS` for `flow`'s run `run`.
    fn stage(&self, flow: &str, run: &str, words: &[&str]) -> Output {
        let plan = format!("{flow}.json");
        let common = ["--plan", &plan, "--state", "state", "--run-id", run];
        wvflow_at(&self.dir, &[&["stage"], words, &common].concat())
    }

    fn json(o: &Output) -> Value {
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(o)))
    }

    fn path(&self, rest: &str) -> PathBuf {
        self.dir.join(rest)
    }
}

/// `prepare` names each child as the engine starts it; `gather` reads how each ended.
#[test]
fn a_call_stage_prepares_its_children_and_gathers_their_ends() {
    let d = Drive::new("calls_gather");
    assert_eq!(d.stage("Many", "m1", &["init"]).status.code(), Some(0));
    d.stage("Many", "m1", &["run", "names"]);
    let o = d.stage("Many", "m1", &["prepare", "kids", "--engine", "airflow"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let parent = json!("Many/m1");
    assert_eq!(
        Drive::json(&o),
        json!([
            {"trigger_dag_id": "Child", "conf": {"who": "ann", "wvflow_nesting": 1, "wvflow_parent": parent}},
            {"trigger_dag_id": "Child", "conf": {"who": "bob", "wvflow_nesting": 1, "wvflow_parent": parent}},
        ])
    );
    let o = d.stage("Many", "m1", &["prepare", "kids", "--engine", "argo"]);
    assert_eq!(
        Drive::json(&o),
        json!([
            {"item": "0", "nesting": "1", "arg-who": "ann"},
            {"item": "1", "nesting": "1", "arg-who": "bob"},
        ])
    );

    // Child 0 ends (its wait cut short by a cancel: it ends cancelled), child 1 never starts.
    let child = "m1-kids-0-1";
    let args = r#"{"who": "ann", "wvflow_nesting": 1, "wvflow_parent": "Many/m1"}"#;
    assert_eq!(
        d.stage("Child", child, &["init", "--args", args])
            .status
            .code(),
        Some(0)
    );
    d.stage("Child", child, &["run", "booked"]);
    let o = wvflow_at(
        &d.dir,
        &[
            "runs", "cancel", child, "--state", "state", "--flow", "Child",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    d.stage("Child", child, &["run", "held"]);
    d.stage("Child", child, &["finish"]);
    let o = d.stage("Many", "m1", &["gather", "kids"]);
    let summary = Drive::json(&o);
    assert_eq!(summary["state"], "failed", "{}", text(&o));
    let error = summary["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "2 of 2 items failed (tolerated: 0); first error: child run m1-kids-0-1 of `Child` \
             ended cancelled"
        ),
        "{error}"
    );

    // A `call` whose child never started (its DAG missing, say) fails, saying so.
    d.stage("Parent", "p1", &["init"]);
    d.stage("Parent", "p1", &["prepare", "kid", "--engine", "airflow"]);
    let o = d.stage("Parent", "p1", &["gather", "kid"]);
    let summary = Drive::json(&o);
    assert_eq!(summary["state"], "failed", "{}", text(&o));
    assert_eq!(
        summary["error"],
        "the child run of `Child` never started: is the child flow exported to the engine?"
    );
}

/// A parent 16 calls deep starts no 17th: its stage fails as `wvflow run`'s does.
#[test]
fn a_call_past_the_depth_limit_fails_its_stage() {
    let d = Drive::new("calls_depth");
    let args = r#"{"wvflow_nesting": 16}"#;
    assert_eq!(
        d.stage("Parent", "deep", &["init", "--args", args])
            .status
            .code(),
        Some(0)
    );
    let o = d.stage("Parent", "deep", &["prepare", "kid", "--engine", "airflow"]);
    assert_eq!(o.status.code(), Some(98), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
    assert!(
        text(&o).contains(
            "child run of `Child` not started: 16 runs are nested already (the depth limit)"
        ),
        "{}",
        text(&o)
    );
    let args = r#"{"wvflow_nesting": 15}"#;
    d.stage("Parent", "fine", &["init", "--args", args]);
    let o = d.stage("Parent", "fine", &["prepare", "kid", "--engine", "airflow"]);
    assert_eq!(
        Drive::json(&o)[0]["conf"]["wvflow_nesting"],
        16,
        "{}",
        text(&o)
    );
}

/// `wvflow runs cancel` of a parent whose child runs: the child is asked to stop as the
/// stage's `parent_close` says (`terminate`: no compensations; `abandon`: it goes on), and a
/// child the engine starts after the cancel starts cancelled.
#[test]
fn a_cancelled_parent_closes_its_children_as_parent_close_says() {
    let d = Drive::new("calls_cancel");
    for (flow, run) in [("Parent", "p1"), ("Shy", "s1")] {
        assert_eq!(d.stage(flow, run, &["init"]).status.code(), Some(0));
        d.stage(flow, run, &["prepare", "kid", "--engine", "airflow"]);
        let child = format!("{run}-kid-0-1");
        let args = format!(r#"{{"who": "ann", "wvflow_parent": "{flow}/{run}"}}"#);
        d.stage("Child", &child, &["init", "--args", &args]);
        let o = d.stage("Child", &child, &["run", "booked"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let o = wvflow_at(
            &d.dir,
            &["runs", "cancel", run, "--state", "state", "--flow", flow],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let cancel = |run: &str| d.path(&format!("state/runs/Child/{run}/cancel.json"));
    let terminated: Value =
        serde_json::from_slice(&std::fs::read(cancel("p1-kid-0-1")).unwrap()).unwrap();
    assert_eq!(
        terminated["compensate"], false,
        "terminate: without compensations"
    );
    assert!(!cancel("s1-kid-0-1").exists(), "abandon: the child goes on");

    // The terminated child stops and ends cancelled, its booking not compensated.
    d.stage("Child", "p1-kid-0-1", &["run", "held"]);
    let o = d.stage("Child", "p1-kid-0-1", &["finish"]);
    let summary = Drive::json(&o);
    assert_eq!(summary["state"], "cancelled", "{}", text(&o));
    assert_eq!(summary["compensations"], json!([]));
    assert!(!d.path("unbooked").exists());

    // A child started after its parent was cancelled (a late try) starts cancelled.
    let args = r#"{"who": "ann", "wvflow_parent": "Parent/p1"}"#;
    d.stage("Child", "p1-kid-0-2", &["init", "--args", args]);
    let o = d.stage("Child", "p1-kid-0-2", &["run", "booked"]);
    assert_eq!(o.status.code(), Some(99), "{}", text(&o));
    assert_eq!(Drive::json(&o)["state"], "cancelled");
}

/// Flows whose call comes after other work, two calls, a quoted argument.
const MORE: &str = r#"
activity flaky(who: string) with { retries: 2, retry_delay: 10ms } = sh("""
  if [ ! -e tried ]; then touch tried; exit 1; fi
  printf '{"who": "%s"}\n' "$WV_WHO"
""")

flow Quick(who: string) = {
  stage booked = book(who)
}

flow Busy = {
  stage kid = from [['x']] as t(a) | flaky(_.a) | activate('log') | call Quick(who: _.who)
}

flow Twice = {
  stage kid = call Quick(who: 'x') | call Quick(who: 'y')
}

flow Quoted = {
  stage kid = call Child(who: 'say "hi"')
}
"#;

/// Work before a call (an activity retried, a log) runs in the stage's `prepare`, and the run
/// ends as `wvflow run`'s, attempts included; two calls in a stage are refused, and so is
/// what an Argo child cannot carry.
#[test]
fn work_before_a_call_runs_in_prepare_and_two_calls_are_refused() {
    let dir = scratch("calls_refused", &[]);
    let flows = format!("{CALLS}{MORE}");
    std::fs::write(dir.join("calls.wv"), flows).unwrap();
    let o = wvflow_at(&dir, &["check", "calls.wv"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = wvflow_at(&dir, &["run", "calls.wv", "Busy", "--format", "json"]);
    let reference: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(reference["stages"][0]["attempts"], 2, "{reference}");
    std::fs::remove_file(dir.join("tried")).unwrap();
    let workspace = dir.canonicalize().unwrap();
    for (flow, extra) in [("Busy", None), ("Quick", Some("--template"))] {
        let out = format!("{flow}.yaml");
        let mut args = vec!["export", "calls.wv", flow, "--target", "argo"];
        args.extend(["--workspace", workspace.to_str().unwrap(), "-o", &out]);
        args.extend(extra);
        let o = wvflow_at(&dir, &args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let o = std::process::Command::new(crate::export::python())
        .args(["tests/export/argo_check.py", "run"])
        .arg(dir.join("Busy.yaml"))
        .args(["--wvflow", env!("CARGO_BIN_EXE_wvflow"), "--state"])
        .arg(dir.join("state"))
        .args(["--run-time", "2026-11-26T00:00:00Z", "--template"])
        .arg(dir.join("Quick.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let driven: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        crate::export::outcome(&driven),
        crate::export::outcome(&reference)
    );
    let o = wvflow_at(
        &dir,
        &["export", "calls.wv", "Twice", "--target", "airflow"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("a stage has one `call`"), "{}", text(&o));
    let o = wvflow_at(&dir, &["plan", "calls.wv", "Quoted", "--format", "json"]);
    std::fs::write(dir.join("Quoted.json"), &o.stdout).unwrap();
    let stage = |run: &str, words: &[&str]| {
        let common = ["--plan", "Quoted.json", "--state", "state", "--run-id", run];
        wvflow_at(&dir, &[&["stage"], words, &common].concat())
    };
    // On Argo the stage fails for good at its `prepare`, saying why; its last task ends so.
    stage("q", &["init"]);
    let o = stage("q", &["prepare", "kid", "--engine", "argo"]);
    assert_eq!(o.status.code(), Some(98), "{}", text(&o));
    assert!(
        text(&o).contains("argument `who` of `Child` holds a quote"),
        "{}",
        text(&o)
    );
    let o = stage("q", &["gather", "kid"]);
    assert_eq!(o.status.code(), Some(98), "{}", text(&o));
    stage("q2", &["init"]);
    let o = stage("q2", &["prepare", "kid", "--engine", "airflow"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let starts: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(starts[0]["conf"]["who"], "say \"hi\"");
}

/// A call or a jump may pass null, as `wvflow run F(x = null)` may: every exported Airflow
/// parameter takes null, and one without a default is still required.
#[test]
fn airflow_parameters_take_null_and_stay_required() {
    let dir = scratch("calls_null", &[]);
    std::fs::write(
        dir.join("kid.wv"),
        "activity show(n: int) = exec('printf', '{\"n\": \"%s\"}\\n', n)\n\
         flow Kid(n: int, m: int = 2) = {\n  stage s = show(n)\n}\n",
    )
    .unwrap();
    let o = wvflow_at(
        &dir,
        &[
            "export", "kid.wv", "Kid", "--target", "airflow", "-o", "kid.py",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let check = r#"
import copy, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(sys.argv[1]).dags["Kid"]
# A run's params are a copy of the DAG's, updated with its conf (Airflow's own way).
given = copy.deepcopy(dag.params)
given.update({"n": None, "m": None})
print("null:", given.validate())
try:
    copy.deepcopy(dag.params).validate()
    print("missing: accepted")
except Exception as e:
    print("missing:", type(e).__name__)
"#;
    let o = std::process::Command::new(crate::export::python())
        .args(["-c", check])
        .arg(dir.join("kid.py"))
        .env("AIRFLOW_HOME", dir.join("airflow"))
        .output()
        .unwrap();
    let out = text(&o);
    assert!(out.contains("null: {'n': None, 'm': None}"), "{out}");
    assert!(out.contains("missing: ParamValidationError"), "{out}");
}
