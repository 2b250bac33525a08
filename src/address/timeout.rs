//! How long to wait for a disk: the default, the written form (`10s`, `500ms`) and back.

use std::time::Duration;

/// How long a hot-plugged disk is waited for unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait [`parse_timeout`] accepts.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Parses a wait: `<N>s`, `<N>ms` or a bare `<N>` (seconds); `N` a whole number; at most
/// [`MAX_TIMEOUT`]. `0` means one look, no waiting. The error says what is wrong.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let shown = crate::volume::truncate_for_error(s);
    let (digits, millis) = if let Some(d) = s.strip_suffix("ms") {
        (d, true)
    } else {
        (s.strip_suffix('s').unwrap_or(s), false)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Invalid timeout {shown:?}: expected a whole number of seconds (10, 10s) or \
             milliseconds (500ms)"
        ));
    }
    let n: u64 = digits.parse().map_err(|_| too_long(&shown))?;
    let d = if millis {
        Duration::from_millis(n)
    } else {
        Duration::from_secs(n)
    };
    if d > MAX_TIMEOUT {
        return Err(too_long(&shown));
    }
    Ok(d)
}

fn too_long(shown: &str) -> String {
    format!(
        "Invalid timeout {shown:?}: longer than {}",
        format_duration(MAX_TIMEOUT)
    )
}

/// A duration as messages show it: `10 s`, `1.5 s`, `250 ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{} s", s.trim_end_matches('0'))
    }
}
