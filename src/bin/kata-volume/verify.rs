//! `kata-volume verify`: recompute an image's whole dm-verity hash tree and check it against
//! the stored tree and a root hash, naming the first corrupted block as the kernel would
//! meet it (top level first).

use std::path::PathBuf;

use kata_volume::verity::Digest;
use kata_volume::verity::engine::{self, ProgressFn};

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
    kata-volume verify --hash-file rootfs.hash rootfs.erofs 5f1c…")]
pub struct Args {
    #[command(flatten)]
    tree: TreeArgs,
    /// Print one JSON object instead of text (on success; failures are the `error:` line).
    #[arg(long)]
    json: bool,
    /// The data image (a file or a block device).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// The expected root hash (hex).
    #[arg(value_name = "ROOT_HASH")]
    root_hash: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<(), CliError> {
    let config = args.tree.config()?;
    let root = Digest::from_hex(config.algorithm, &args.root_hash).map_err(flag_error)?;
    let bar = ProgressBar::new("verify");
    let draw = |done, total| bar.draw(done, total);
    let progress = bar.enabled().then_some(&draw as &ProgressFn<'_>);
    let result = engine::verify(&args.image, &config, &root, progress);
    bar.finish();
    let summary = result.map_err(engine_error)?;
    let g = &summary.geometry;
    let tree = summary.tree();
    if args.json {
        let mut out = tree_json(&summary);
        out["ok"] = json!(true);
        out["hash_blocks"] = json!(tree.total_blocks());
        print_json(&out);
        return Ok(());
    }
    outln!(
        "ok: {} data blocks and {} hash blocks match root hash {}",
        g.data_blocks,
        tree.total_blocks(),
        summary.root_hash
    );
    Ok(())
}
