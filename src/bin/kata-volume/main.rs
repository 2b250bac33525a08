//! `kata-volume`: the command-line interface. Argument parsing and output formatting only;
//! every decision is made by the `kata_volume` library.
//!
//! Exit codes, for every subcommand: 0 success, 1 the request was refused or failed (one
//! `error:` line on stderr), 2 bad usage.

/// `println!` for standard output that never panics: a closed pipe ends the process quietly
/// with status 141 (as SIGPIPE would), any other write error is reported on stderr.
macro_rules! outln {
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` for standard output that never panics (see `outln!`).
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!($($t)*)) };
}

mod add_storages;
mod client;
mod daemon;
mod format;
mod inspect;
mod mount;
mod output;
mod policy_args;
mod resolve;
mod storages;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Kata virtual volumes in the guest: inspect, verify, mount dm-verity protected erofs images.
#[derive(Debug, Parser)]
#[command(name = "kata-volume", version, about, long_about = None)]
#[command(propagate_version = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Inspect(inspect::Args),
    Format(format::Args),
    Verify(verify::Args),
    Resolve(resolve::Args),
    Storages(storages::Args),
    Mount(mount::MountArgs),
    Umount(mount::UmountArgs),
    Serve(daemon::ServeArgs),
    Add(client::AddArgs),
    Remove(client::RemoveArgs),
    List(client::ListArgs),
    Check(client::CheckArgs),
    Version(client::VersionArgs),
}

/// How a subcommand failed.
#[derive(Debug)]
pub enum CliError {
    /// The request was refused or failed: exit 1.
    Failed(String),
    /// The command line was wrong: exit 2.
    Usage(String),
}

impl CliError {
    /// A failure from any displayable error.
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self::Failed(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Format(args) => format::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Mount(args) => mount::run_mount(args),
        Command::Umount(args) => mount::run_umount(args),
        Command::Serve(args) => daemon::run(args),
        Command::Add(args) => client::run_add(args),
        Command::Remove(args) => client::run_remove(args),
        Command::List(args) => client::run_list(args),
        Command::Check(args) => client::run_check(args),
        Command::Version(args) => client::run_version(args),
        Command::Verify(args) => verify::run(args),
        Command::Resolve(args) => resolve::run(args),
        Command::Storages(args) => storages::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
