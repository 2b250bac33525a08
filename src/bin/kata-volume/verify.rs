//! `kata-volume verify`: recompute an image's whole dm-verity hash tree and check it against
//! the stored tree and a root hash, naming the first corrupted block as the kernel would
//! meet it (top level first).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use kata_volume::verity::engine::{self, Config, EngineError, ProgressFn};
use kata_volume::verity::superblock::{SUPERBLOCK_MAGIC, SUPERBLOCK_SIZE};
use kata_volume::verity::{Digest, Superblock, VerityVersion};

use serde_json::json;

use crate::CliError;
use crate::format::{ProgressBar, TreeArgs, engine_error, flag_error, tree_json};
use crate::output::print_json;

/// Check every data and hash block of an image against a root hash.
///
/// Takes the same flags as `format`. Exit 0 when every block checks out, 1 naming the first
/// corrupted block (data block N, or hash block N of level L, or the root), 2 for bad usage.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume verify --data-blocks 262144 rootfs.erofs 5f1c…\n  \
    kata-volume verify --hash-file rootfs.hash rootfs.erofs 5f1c…\n  \
    kata-volume verify --superblock --hash-offset 1073741824 rootfs.erofs 5f1c…")]
pub struct Args {
    #[command(flatten)]
    tree: TreeArgs,
    /// The image has a verity superblock at --hash-offset (veritysetup's default, without
    /// --no-superblock), padded to one hash block, with the tree after it: it is read, each of
    /// its fields checked against the flags (--data-blocks defaults to its count), and the
    /// tree verified after it. Hash type 1 (veritysetup --format=1) only.
    #[arg(long)]
    superblock: bool,
    /// Print one JSON object instead of text (on success; failures are the `error:` line).
    #[arg(long)]
    json: bool,
    /// The data image (a file or a block device).
    #[arg(value_name = "IMAGE", allow_hyphen_values = true)]
    image: PathBuf,
    /// The expected root hash (hex).
    #[arg(value_name = "ROOT_HASH", allow_hyphen_values = true)]
    root_hash: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<(), CliError> {
    let mut config = args.tree.config()?;
    let superblock = if args.superblock {
        Some(read_superblock(&args.image, &mut config)?)
    } else {
        None
    };
    let root = Digest::from_hex(config.algorithm, &args.root_hash).map_err(flag_error)?;
    let bar = ProgressBar::new("verify");
    let draw = |done, total| bar.draw(done, total);
    let progress = bar.enabled().then_some(&draw as &ProgressFn<'_>);
    let result = engine::verify(&args.image, &config, &root, progress);
    bar.finish();
    let summary = result.map_err(|e| {
        let corrupted = matches!(e, EngineError::Corrupted(_));
        match (engine_error(e), superblock.is_none() && corrupted) {
            (CliError::Failed(msg), true) => match superblock_found(&args.image, &config) {
                Some(offset) => CliError::Failed(format!(
                    "{msg}; a verity superblock is at byte {offset}: add --superblock"
                )),
                None => CliError::Failed(msg),
            },
            (other, _) => other,
        }
    })?;
    let g = &summary.geometry;
    let tree = summary.tree();
    if args.json {
        let mut out = tree_json(&summary);
        out["ok"] = json!(true);
        out["hash_blocks"] = json!(tree.total_blocks());
        if let Some((offset, sb)) = &superblock {
            out["superblock"] = json!({ "offset": offset, "uuid": sb.uuid_string() });
        }
        print_json(&out);
        return Ok(());
    }
    outln!(
        "ok: {} data blocks and {} hash blocks match root hash {}",
        g.data_blocks,
        tree.total_blocks(),
        summary.root_hash
    );
    if let Some((offset, sb)) = &superblock {
        outln!(
            "superblock at byte {offset} (UUID {}) matches the flags",
            sb.uuid_string()
        );
    }
    Ok(())
}

/// Reads and checks the superblock at the hash offset and moves the tree's offset past it;
/// returns the superblock's offset and the superblock.
fn read_superblock(image: &Path, config: &mut Config) -> Result<(u64, Superblock), CliError> {
    let (hash_device, offset) =
        hash_area(image, config).ok_or_else(|| engine_error(EngineError::DataBlocksRequired))?;
    let mut bytes = [0u8; SUPERBLOCK_SIZE];
    File::open(&hash_device)
        .and_then(|f| f.read_exact_at(&mut bytes, offset))
        .map_err(|e| {
            CliError::Failed(format!(
                "Cannot read the verity superblock at byte {offset} of {}: {e}",
                hash_device.display()
            ))
        })?;
    let at = || format!("byte {offset} of {}", hash_device.display());
    let sb = Superblock::parse(&bytes).map_err(|e| {
        CliError::Failed(format!(
            "Expected a verity superblock (--superblock) at {}: {e}",
            at()
        ))
    })?;
    check_flags(&sb, config, &at())?;
    // The tree starts one hash block after the superblock's offset.
    let tree = offset
        .checked_add(sb.hash_block_size.bytes())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "Invalid --hash-offset {offset}: the hash tree's end overflows 64 bits"
            ))
        })?;
    config.hash_offset = Some(tree);
    Ok((offset, sb))
}

/// Checks the superblock (found at `at`) against the flags; takes its data block count when
/// no flag gives one.
fn check_flags(sb: &Superblock, config: &mut Config, at: &str) -> Result<(), CliError> {
    let mismatch = |field: &str, found: String, flag: &str, given: String| {
        Err(CliError::Failed(format!(
            "Verity superblock at {at} has {field} {found} but {flag} is {given}"
        )))
    };
    if sb.version != VerityVersion::V1 {
        return Err(CliError::Failed(format!(
            "Verity superblock at {at} has hash_type {}: verify checks hash type 1 trees only",
            sb.version
        )));
    }
    if sb.algorithm != config.algorithm {
        return mismatch(
            "algorithm",
            sb.algorithm.to_string(),
            "--hash",
            config.algorithm.to_string(),
        );
    }
    if sb.data_block_size.bytes() != config.data_block_size {
        return mismatch(
            "data block size",
            sb.data_block_size.to_string(),
            "--data-block-size",
            config.data_block_size.to_string(),
        );
    }
    if sb.hash_block_size.bytes() != config.hash_block_size {
        return mismatch(
            "hash block size",
            sb.hash_block_size.to_string(),
            "--hash-block-size",
            config.hash_block_size.to_string(),
        );
    }
    match config.data_blocks {
        Some(n) if n != sb.data_blocks => {
            return mismatch(
                "data blocks",
                sb.data_blocks.to_string(),
                "--data-blocks",
                n.to_string(),
            );
        }
        _ => config.data_blocks = Some(sb.data_blocks),
    }
    if sb.salt != config.salt {
        return mismatch(
            "salt",
            sb.salt.to_string(),
            "--salt",
            config.salt.to_string(),
        );
    }
    Ok(())
}

/// The hash device and the hash area's offset in it (the flags', or the defaults); `None`
/// when the tree is in the image and neither --hash-offset nor --data-blocks says where.
fn hash_area(image: &Path, config: &Config) -> Option<(PathBuf, u64)> {
    let device = config
        .hash_file
        .clone()
        .unwrap_or_else(|| image.to_path_buf());
    let offset = match (config.hash_offset, &config.hash_file, config.data_blocks) {
        (Some(offset), _, _) => offset,
        (None, Some(_), _) => 0,
        // Right after the data, rounded up to a hash block.
        (None, None, Some(blocks)) => blocks
            .saturating_mul(config.data_block_size)
            .next_multiple_of(config.hash_block_size.max(1)),
        (None, None, None) => return None,
    };
    Some((device, offset))
}

/// Whether a verity superblock's magic is at the hash area (a hint when the tree did not
/// match without --superblock).
fn superblock_found(image: &Path, config: &Config) -> Option<u64> {
    let (device, offset) = hash_area(image, config)?;
    let mut magic = [0u8; 8];
    File::open(device)
        .and_then(|f| f.read_exact_at(&mut magic, offset))
        .ok()?;
    (magic == SUPERBLOCK_MAGIC).then_some(offset)
}
