//! `argo retry WF -p wvflow-try=2`: the failed steps of an exported Argo run run their stage
//! again, and `finish` decides the run again without compensating twice; the same steps with
//! the parameter unchanged end as recorded.

use crate::common::scratch;
use crate::export::{python, text, wvflow_at};
use serde_json::Value;
use std::process::Command;

const TRIP: &str = r#"activity book = sh("""echo x >> booked.log; echo '{"ref": 1}'""")
activity unbook = sh("""cat >/dev/null; echo x >> unbooked.log""")
activity pay = sh("""echo x >> paid.log; if [ ! -e card-ok ]; then exit 3; fi; echo '{"paid": true}'""")
flow Trip = {
  stage b with { compensate: unbook() } = book()
  stage p = from b | pay()
}
"#;

#[test]
fn argo_retry_with_a_higher_try_runs_the_failed_stage_again() {
    let dir = scratch("argo_retry", &[("flow.wv", TRIP)]);
    let workspace = dir.canonicalize().unwrap();
    let o = wvflow_at(
        &dir,
        &[
            "export",
            "flow.wv",
            "Trip",
            "--target",
            "argo",
            "--workspace",
            workspace.to_str().unwrap(),
            "-o",
            "trip.yaml",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let manifest = std::fs::read_to_string(dir.join("trip.yaml")).unwrap();
    assert!(
        manifest.contains("name: \"wvflow-try\"\n      value: \"1\""),
        "{manifest}"
    );
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // The interpreter stands for Argo: a first run, then a retry of the same Workflow (the
    // same name, the same state) with the parameters given.
    let argo = |params: &[&str]| -> Value {
        let mut command = Command::new(python());
        command.args(["tests/export/argo_check.py", "run"]);
        command.arg(dir.join("trip.yaml"));
        command.args(["--wvflow", env!("CARGO_BIN_EXE_wvflow")]);
        command.arg("--state").arg(&state);
        command.args(["--run-time", "2026-11-26T00:00:00Z"]);
        for p in params {
            command.args(["-p", p]);
        }
        let o = command.output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let lines = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let first = argo(&[]);
    assert_eq!(first["state"], "failed");
    assert_eq!(lines("unbooked.log"), 1, "the failed run compensated");

    // `argo retry` without a new try: every step ends as it was recorded.
    std::fs::write(dir.join("card-ok"), "").unwrap();
    let same = argo(&[]);
    assert_eq!(same, first);
    assert_eq!(lines("paid.log"), 1);

    // `argo retry -p wvflow-try=2`: the failed stage pays again and succeeds; the run is
    // decided again and succeeds, its compensation not run again.
    let retried = argo(&["wvflow-try=2"]);
    assert_eq!(retried["state"], "success", "{retried}");
    assert_eq!(lines("paid.log"), 2);
    assert_eq!(lines("unbooked.log"), 1);
}
