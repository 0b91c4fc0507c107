//! The library's session and reporter, as a program that embeds wvflow uses them: a
//! workspace loaded and checked once, its flows planned from it (child flows too), and what
//! a person would see told to the program's reporter instead of printed.

use crate::common::scratch;
use std::collections::BTreeMap;
use std::sync::Mutex;
use wvflow::diagnostics::{Diagnostic, render_human};
use wvflow::runtime::launch::{ChainEnd, Runner, Start};
use wvflow::runtime::state::RunState;
use wvflow::session::{Notice, Reporter, Session};
use wvflow::source::SourceMap;

/// Keeps every report as the text the command line prints.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl Heard {
    fn texts(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Reporter for Heard {
    fn diagnostics(&self, found: &[Diagnostic], sources: &SourceMap) {
        self.0
            .lock()
            .unwrap()
            .push(render_human(found, sources, false));
    }

    fn notice(&self, notice: &Notice) {
        self.0.lock().unwrap().push(notice.to_string());
    }
}

/// A parent whose stage outlives the flow's timeout (warning W0201) and calls a child whose
/// `on_finish` hook fails.
const PARENT_AND_CHILD: &str = r#"
activity say(word: string) = exec('printf', '{"word": "%s"}\n', word)
activity refuse() = exec('false')

flow Child(word: string) with { on_finish: refuse() } = {
  stage said = say(word)
}

flow Parent with { timeout: 30m } = {
  stage asked [timeout: 1h] = call Child(word: 'hi')
}
"#;

#[test]
fn a_session_reports_the_warning_and_plans_a_flow_and_its_child() {
    let dir = scratch("session-plans", &[("flows.wv", PARENT_AND_CHILD)]);
    let heard = Heard::default();
    let session = Session::load(&dir, &heard);
    let told = heard.texts();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("[W0201] Warning: stage timeout 1h is longer than the flow's timeout 30m"),
        "{}",
        told[0]
    );
    assert!(told[0].contains("flows.wv:10:25"), "{}", told[0]);
    assert_eq!(session.diagnostics().len(), 1);

    let flows = session.flows().expect("a workspace with a warning checks");
    let parent = flows.named(Some("Parent")).expect("Parent plans");
    assert_eq!(parent.flow.name, "Parent");
    assert_eq!(parent.flow.stages.len(), 1);
    let child = flows.plan("Child", None).expect("the child plans");
    assert_eq!(child.flow.name, "Child");
    assert_eq!(child.flow.params[0].name, "word");

    let missing = flows.named(Some("Chlid")).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no flow `Chlid` in this workspace; did you mean `Child`?"
    );
    let which = flows.named(None).unwrap_err();
    assert_eq!(
        which.to_string(),
        "the workspace has 2 flows; name one: Child, Parent"
    );
}

#[test]
fn a_run_plans_its_child_through_the_session_and_reports_the_childs_failed_hook() {
    let dir = scratch("session-runs", &[("flows.wv", PARENT_AND_CHILD)]);
    let heard = Heard::default();
    let session = Session::load(&dir, &heard);
    let flows = session.flows().expect("checks");
    let runner = Runner::new(&flows, dir.join(".wvflow").join("workspace.db"));
    let parent = flows.named(Some("Parent")).expect("Parent plans");
    let mut ended = Vec::new();
    let start = Start::New {
        parent: None,
        jumped_from: None,
        continued_from: None,
        run_time: None,
        gate: false,
    };
    let end = runner.chain(parent, BTreeMap::new(), start, &mut |summary| {
        ended.push((summary.flow.clone(), summary.state, summary.run_id.clone()))
    });
    assert_eq!(end, ChainEnd::Succeeded);
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (ended[0].0.as_str(), ended[0].1),
        ("Parent", RunState::Success)
    );

    // The child ran in this process, from the plan the session made; its hook's failure
    // reached the reporter, after the load's warning.
    let told = heard.texts();
    assert_eq!(told.len(), 2, "{told:?}");
    let hook = &told[1];
    assert!(
        hook.starts_with("warning: hook on_finish (refuse) of run "),
        "{hook}"
    );
    assert!(
        hook.ends_with(" failed: `refuse` exited with code 1"),
        "{hook}"
    );
    assert!(
        !hook.contains(&ended[0].2),
        "the child's run, not the parent's: {hook}"
    );
}

#[test]
fn a_workspace_that_does_not_check_plans_nothing_and_says_why() {
    let broken = "flow Broken = {\n  stage a = missing_activity(1)\n}\n";
    let dir = scratch("session-broken", &[("broken.wv", broken)]);
    let heard = Heard::default();
    let session = Session::load(&dir, &heard);
    assert!(session.flows().is_none());
    let told = heard.texts();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("] Error: "), "{}", told[0]);
    assert!(told[0].contains("missing_activity"), "{}", told[0]);

    // Unreadable paths are the caller's to say: the reporter is not told of them.
    let heard = Heard::default();
    let session = Session::load(&dir.join("absent.wv"), &heard);
    assert!(session.flows().is_none());
    assert_eq!(session.load_errors().len(), 1);
    assert!(heard.texts().is_empty());
}
