//! Shared input/output helpers for subcommands: reading `-` from standard input, printing JSON.

use std::io::Read;

use crate::CliError;

/// Upper bound on what is read from standard input for one option (bytes).
const MAX_STDIN: u64 = 16 << 20;

/// The argument itself, or standard input when it is `-` (surrounding whitespace trimmed:
/// host options can exceed the kernel's 128 KiB limit on one argument).
pub fn arg_or_stdin(arg: &str) -> Result<String, CliError> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .take(MAX_STDIN)
        .read_to_string(&mut s)
        .map_err(|e| {
            CliError::Failed(format!("Cannot read the option from standard input: {e}"))
        })?;
    Ok(s.trim().to_owned())
}

/// Prints one JSON value on standard output.
pub fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => outln!("{s}"),
        Err(e) => eprintln!("error: cannot format JSON: {e}"),
    }
}

pub use kata_volume::error_chain;

/// Writes to standard output. A reader that went away (broken pipe) ends the process quietly
/// with status 141, as SIGPIPE would; other errors are reported once on standard error.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| out.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => eprintln!("error: cannot write to standard output: {e}"),
    }
}
