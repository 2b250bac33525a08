//! `kata-volume format`: compute an image's dm-verity hash tree (format 1, no superblock, as
//! `veritysetup format --no-superblock`) and print the root hash, the parameters and a
//! ready-to-send volume option. Also owns the tree flags and the progress bar that `verify`
//! shares.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kata_volume::verity::engine::{self, Config, Corruption, EngineError, ProgressFn, Summary};
use kata_volume::verity::{Geometry, HashAlgorithm, Salt, VerityError};
use kata_volume::volume::{KataVirtualVolume, Volume, VolumeType, encode_option, verity_info};
use serde_json::json;

use crate::CliError;
use crate::output::print_json;

/// The tree's parameters, with veritysetup's flag names and defaults.
#[derive(Debug, clap::Args)]
pub struct TreeArgs {
    /// Data block size in bytes (power of two, 512 to 4096).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    data_block_size: u64,
    /// Hash block size in bytes (power of two, 512 to 4096).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    hash_block_size: u64,
    /// Hash algorithm: sha256, sha1 or sha512.
    #[arg(long = "hash", value_name = "ALG", default_value = "sha256")]
    hash: String,
    /// Salt as hex, or `-` for none (the seed producers' volumes have none; a salted one
    /// carries it in `dm_verity.salt`).
    #[arg(long, value_name = "HEX|-", default_value = "-")]
    salt: String,
    /// Byte offset of the hash tree [default: data size rounded up to a hash block in the
    /// image, 0 in a --hash-file].
    #[arg(long, value_name = "BYTES")]
    hash_offset: Option<u64>,
    /// Number of data blocks to cover [default: the image size / data block size; required
    /// by `verify` when the tree is in the image].
    #[arg(long, value_name = "N")]
    data_blocks: Option<u64>,
    /// Write (read) the tree to (from) this file instead of the image.
    #[arg(long, value_name = "PATH")]
    hash_file: Option<PathBuf>,
}

impl TreeArgs {
    /// The algorithm, or a usage error.
    pub fn algorithm(&self) -> Result<HashAlgorithm, CliError> {
        self.hash.parse().map_err(flag_error)
    }

    /// The engine's configuration; sizes and counts are checked with the shared rules first,
    /// so a bad flag is a usage error before any file is touched.
    pub fn config(&self) -> Result<Config, CliError> {
        let algorithm = self.algorithm()?;
        let salt = Salt::parse(&self.salt).map_err(flag_error)?;
        Geometry::check(
            algorithm,
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks.unwrap_or(1),
            None,
        )
        .map_err(flag_error)?;
        Ok(Config {
            algorithm,
            salt,
            data_block_size: self.data_block_size,
            hash_block_size: self.hash_block_size,
            data_blocks: self.data_blocks,
            hash_offset: self.hash_offset,
            hash_file: self.hash_file.clone(),
        })
    }
}

/// Compute the dm-verity hash tree of an image and print its root hash.
///
/// The tree (format 1, no superblock, byte-identical to `veritysetup format --no-superblock`)
/// goes into the image at --hash-offset, or into --hash-file. Exit 0 on success, 1 on failure,
/// 2 for bad usage.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume format rootfs.erofs\n  \
    kata-volume format --json --data-block-size 512 --volume-type layer_raw_block --source /dev/vdb layer.erofs")]
pub struct Args {
    #[command(flatten)]
    tree: TreeArgs,
    /// Volume type of the printed option: image_raw_block or layer_raw_block.
    #[arg(long, value_name = "TYPE", default_value = "image_raw_block")]
    volume_type: String,
    /// Source of the printed option (the block device in the guest) [default: IMAGE's
    /// absolute path].
    #[arg(long, value_name = "PATH")]
    source: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The data image (a file or a block device).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<(), CliError> {
    let config = args.tree.config()?;
    let volume_type = match args.volume_type.parse() {
        Ok(t @ (VolumeType::ImageRawBlock | VolumeType::LayerRawBlock)) => t,
        _ => {
            return Err(CliError::Usage(format!(
                "Invalid --volume-type {:?}: expected image_raw_block or layer_raw_block",
                args.volume_type
            )));
        }
    };
    // The guest wants an absolute path: the image's, unless --source names the guest's device.
    let source = match &args.source {
        Some(source) => source.clone(),
        None => std::path::absolute(&args.image)
            .unwrap_or_else(|_| args.image.clone())
            .display()
            .to_string(),
    };
    let bar = ProgressBar::new("format");
    let draw = |done, total| bar.draw(done, total);
    let progress = bar.enabled().then_some(&draw as &ProgressFn<'_>);
    let result = engine::format(&args.image, &config, progress);
    bar.finish();
    let summary = result.map_err(engine_error)?;
    let (option, note) = match volume_option(&summary, volume_type, &source) {
        Ok(o) => (Some(o), None),
        Err(why) => (None, Some(why)),
    };
    let g = &summary.geometry;
    let tree = summary.tree();
    if args.json {
        let mut out = tree_json(&summary);
        out["hash_tree_size"] = json!(tree.size().0);
        out["levels"] = json!(tree.levels());
        out["option"] = json!(option);
        out["option_note"] = json!(note);
        print_json(&out);
        return Ok(());
    }
    let device = summary
        .hash_file
        .as_ref()
        .unwrap_or(&args.image)
        .display()
        .to_string();
    outln!("root hash:       {}", summary.root_hash);
    outln!("hash algorithm:  {}", summary.algorithm());
    outln!("salt:            {}", summary.salt);
    outln!("data block size: {}", g.data_block_size);
    outln!("hash block size: {}", g.hash_block_size);
    outln!("data blocks:     {}", g.data_blocks);
    outln!("hash offset:     {} (in {device})", g.hash_offset);
    outln!(
        "hash tree:       {} bytes, {} level(s)",
        tree.size(),
        tree.levels()
    );
    match (option, note) {
        (Some(o), _) => outln!("option:          {o}"),
        (None, why) => outln!("option:          none: {}", why.unwrap_or_default()),
    }
    Ok(())
}

/// The JSON keys `format` and `verify` share: the root hash and the resolved parameters.
pub fn tree_json(summary: &Summary) -> serde_json::Value {
    let g = &summary.geometry;
    json!({
        "root_hash": summary.root_hash.to_hex(),
        "hash_algorithm": summary.algorithm().name(),
        "salt": summary.salt.to_string(),
        "data_block_size": g.data_block_size.bytes(),
        "hash_block_size": g.hash_block_size.bytes(),
        "data_blocks": g.data_blocks,
        "hash_offset": g.hash_offset.0,
        "hash_file": summary.hash_file.as_ref().map(|p| p.display().to_string()),
    })
}

/// The `io.katacontainers.volume=…` option for this tree, or why there is none.
fn volume_option(
    summary: &Summary,
    volume_type: VolumeType,
    source: &str,
) -> Result<String, String> {
    if summary.hash_file.is_some() {
        return Err("the Kata volume format has no separate hash device".into());
    }
    if summary.algorithm() == HashAlgorithm::Sha512 {
        return Err("the Kata volume contract accepts only sha256 and sha1".into());
    }
    let params = summary.params().map_err(|e| e.to_string())?;
    let wire = KataVirtualVolume {
        volume_type: volume_type.as_str().to_owned(),
        source: source.to_owned(),
        dm_verity: Some(verity_info(&params)),
        ..KataVirtualVolume::default()
    };
    // The option must be one that `inspect` (and the guest) accept.
    Volume::from_wire(&wire).map_err(|e| e.to_string())?;
    Ok(encode_option(&wire))
}

/// Maps engine errors to exit codes: parameter errors are bad usage (2), the rest failures (1).
pub fn engine_error(e: EngineError) -> CliError {
    match e {
        EngineError::Params(e) => flag_error(e),
        EngineError::DataBlocksRequired | EngineError::RootAlgorithm { .. } => {
            CliError::Usage(e.to_string())
        }
        EngineError::Corrupted(c) => {
            // A mismatch from the first block on is what wrong parameters look like too.
            let first = matches!(
                c,
                Corruption::Root { .. }
                    | Corruption::DataBlock { index: 0, .. }
                    | Corruption::HashBlock { index: 0, .. }
            );
            let hint = if first {
                "; if the image is intact, check that block sizes, salt, --hash and --hash-offset are those it was formatted with"
            } else {
                ""
            };
            CliError::Failed(format!("{c}{hint}"))
        }
        other => CliError::Failed(other.to_string()),
    }
}

/// A parameter error as bad usage, in terms of the flag that carries the parameter (the
/// shared rules name the wire fields of `dm_verity`).
pub fn flag_error(e: VerityError) -> CliError {
    CliError::Usage(match e {
        VerityError::HashType(value) => {
            format!("Invalid --hash {value:?}: expected sha256, sha1 or sha512")
        }
        VerityError::Salt(value) => {
            format!(
                "Invalid --salt {value:?}: expected '-' or an even number of hex digits, at most 512 (256 bytes)"
            )
        }
        VerityError::RootHash { algorithm, value } => {
            let other = [
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha1,
                HashAlgorithm::Sha512,
            ]
            .into_iter()
            .find(|a| *a != algorithm && a.digest_size() * 2 == value.len());
            let hint = other.map_or(String::new(), |a| {
                format!(" ({} hex digits is {a}: add --hash {a})", value.len())
            });
            format!(
                "Invalid ROOT_HASH {value:?}: expected {} hex digits for {algorithm}{hint}",
                algorithm.digest_size() * 2
            )
        }
        VerityError::DataBlockSize(n) => {
            format!("Invalid --data-block-size {n}: must be a power of two from 512 to 4096")
        }
        VerityError::HashBlockSize(n) => {
            format!("Invalid --hash-block-size {n}: must be a power of two from 512 to 4096")
        }
        VerityError::HashBlockTooSmall {
            hashsize,
            algorithm,
        } => format!(
            "Invalid --hash-block-size {hashsize}: must hold at least two {algorithm} digests"
        ),
        VerityError::DataBlocks(n) => {
            format!("Invalid --data-blocks {n}: must be from 1 to 4294967295")
        }
        VerityError::OffsetAlignment { offset, hashsize } => format!(
            "Invalid --hash-offset {offset}: must be a multiple of the hash block size {hashsize}"
        ),
        VerityError::OffsetOverlapsData { offset, data_size } => format!(
            "Invalid --hash-offset {offset}: the hash tree must start at or after the data's end (byte {data_size})"
        ),
        VerityError::Overflow { offset } => format!(
            "Invalid --hash-offset {offset} or --data-blocks: the hash tree's end overflows 64 bits"
        ),
        other => other.to_string(),
    })
}

/// A one-line progress bar on standard error, drawn only when it is a terminal, after a
/// short delay (small images finish silently) and only when the percentage changes.
pub struct ProgressBar {
    label: &'static str,
    start: Instant,
    /// Last percentage drawn (`None`: nothing drawn yet); locked with `try_lock` so worker
    /// threads never wait for the terminal.
    drawn: Mutex<Option<u64>>,
    enabled: bool,
}

impl ProgressBar {
    const DELAY: Duration = Duration::from_millis(300);
    const WIDTH: u64 = 40;

    /// A bar labelled `label`, enabled when standard error is a terminal.
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            start: Instant::now(),
            drawn: Mutex::new(None),
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Whether the bar draws at all (standard error is a terminal).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Redraws the bar for `done` of `total` bytes (the engine's progress callback).
    pub fn draw(&self, done: u64, total: u64) {
        if self.start.elapsed() < Self::DELAY {
            return;
        }
        let Ok(mut drawn) = self.drawn.try_lock() else {
            return;
        };
        let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        if *drawn == Some(percent) {
            return;
        }
        *drawn = Some(percent);
        let filled = percent * Self::WIDTH / 100;
        let bar: String = (0..Self::WIDTH)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        let mib = |b: u64| b >> 20;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{bar}] {percent:>3}% {}/{} MiB",
            self.label,
            mib(done),
            mib(total)
        );
        let _ = err.flush();
    }

    /// Clears the bar's line, if one was drawn.
    pub fn finish(&self) {
        let drawn = self.drawn.lock().map(|d| d.is_some()).unwrap_or(false);
        if self.enabled && drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
