//! Durations as people read them in messages, plans and hovers (`1h 30m`, `250ms`, `0s`): one
//! form for the checker, the plan's text, the runtime's errors and the language server.

use std::time::Duration;

/// Past this, the exact figure is noise (a retry schedule that saturates reads
/// `584542046090years 7months ... 999ns`).
const CENTURY: Duration = Duration::from_secs(3_155_760_000); // humantime years: 365.25 days

pub fn duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    if d > CENTURY {
        return "more than 100 years".to_string();
    }
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(90_500)), "1m 30s 500ms");
        assert_eq!(duration(CENTURY), "100years");
        assert_eq!(duration(Duration::MAX), "more than 100 years");
    }
}
