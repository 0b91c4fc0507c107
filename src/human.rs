//! Durations as people read them in messages, plans and hovers (`1h 30m`, `250ms`, `0s`): one
//! form for the checker, the plan's text, the runtime's errors and the language server.

use std::time::Duration;

pub fn duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    humantime::format_duration(d).to_string()
}
