//! Live progress of a run on a terminal (stderr): one line per running stage with its
//! attempt and elapsed time.

use crate::runtime::engine::{Attempt, Progress, StageSummary};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

pub struct Live {
    bars: MultiProgress,
    running: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Live {
    /// Progress lines when stderr is a terminal; `None` otherwise (CI logs, pipes).
    pub fn on_terminal() -> Option<Live> {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal().then(|| Live {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            running: Mutex::default(),
        })
    }
}

impl Progress for Live {
    fn stage_started(&self, stage: &str) {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:20} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(stage.to_string());
        bar.set_message("running");
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut running) = self.running.lock() {
            running.insert(stage.to_string(), bar);
        }
    }

    fn attempt_started(&self, attempt: &Attempt) {
        if let Ok(running) = self.running.lock()
            && let Some(bar) = running.get(attempt.stage)
        {
            bar.set_message(format!("attempt {}", attempt.number));
        }
    }

    fn retrying(&self, attempt: &Attempt, delay: Duration) {
        if let Ok(running) = self.running.lock()
            && let Some(bar) = running.get(attempt.stage)
        {
            bar.set_message(format!(
                "retrying (attempt {} failed; next in {})",
                attempt.number,
                crate::human::duration(delay)
            ));
        }
    }

    fn stage_finished(&self, summary: &StageSummary) {
        if let Ok(mut running) = self.running.lock()
            && let Some(bar) = running.remove(&summary.stage)
        {
            bar.finish_with_message(summary.state.to_string());
            self.bars.remove(&bar);
        }
    }
}
