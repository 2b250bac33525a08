//! The daemon's logger: `slog`, one JSON object a line when standard error is not a terminal
//! (a journal, a file, the VM console captured by a harness), human-readable lines when it is.

use std::io::IsTerminal;
use std::sync::Mutex;

use slog::{Drain, Level, LevelFilter, Logger, o};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, text when it is.
    Auto,
    /// One JSON object a line.
    Json,
    /// Human-readable text.
    Text,
}

/// A logger writing to standard error at `level` and above.
pub fn logger(level: Level, format: LogFormat) -> Logger {
    let json = match format {
        LogFormat::Auto => !std::io::stderr().is_terminal(),
        LogFormat::Json => true,
        LogFormat::Text => false,
    };
    // A mutex rather than an async drain: no extra thread, and lines are never dropped.
    if json {
        let drain = slog_json::Json::new(std::io::stderr())
            .add_default_keys()
            .build();
        let drain = LevelFilter::new(Mutex::new(drain), level).ignore_res();
        Logger::root(drain, o!())
    } else {
        let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
        let drain = slog_term::FullFormat::new(decorator).build();
        let drain = LevelFilter::new(Mutex::new(drain), level).ignore_res();
        Logger::root(drain, o!())
    }
}

/// A logger that discards everything (for embedding and tests).
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}
