//! `kata-volume add --storages FILE|-`: read a JSON array of Storages and add them in order,
//! all or nothing (the library's `VolumeClient::add_storages`), printing each answer.

use std::io::Read;

use kata_volume::request::Storage;
use serde_json::Value;

use crate::CliError;
use crate::client::{Conn, print_added, request, volume_json};
use crate::output::{error_chain, print_json};

/// Largest Storage list read (bytes).
const MAX_INPUT: u64 = 16 << 20;

/// Runs `add --storages FILE`.
pub fn run(conn: &Conn, file: &str) -> Result<(), CliError> {
    let storages = read(file)?;
    let added = request(conn, async |c| Ok(c.add_storages(&storages).await))?
        .map_err(|e| CliError::Failed(error_chain(&e)))?;
    if conn.json {
        print_json(&Value::Array(added.iter().map(volume_json).collect()));
    } else {
        added.iter().for_each(print_added);
    }
    Ok(())
}

/// The Storage list in `file` (`-`: standard input): a non-empty JSON array.
fn read(file: &str) -> Result<Vec<Storage>, CliError> {
    let name = if file == "-" { "standard input" } else { file };
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_INPUT + 1).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::Failed(format!("Cannot read the Storages from {name}: {e}")))?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_INPUT {
        return Err(CliError::Failed(format!(
            "The Storages in {name} are more than {MAX_INPUT} bytes"
        )));
    }
    let storages: Vec<Storage> = serde_json::from_str(&text).map_err(|e| {
        CliError::Failed(format!(
            "Invalid Storages in {name} (expected a JSON array of Storage objects): {e}"
        ))
    })?;
    if storages.is_empty() {
        return Err(CliError::Failed(format!(
            "The Storage list in {name} is empty: nothing to add"
        )));
    }
    Ok(storages)
}
