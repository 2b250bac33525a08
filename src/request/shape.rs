//! Which convention a Storage follows, from its `driver` and its options. Recognised once;
//! a Storage that mixes conventions (a volume option with the `dmverity` driver, Kata main's
//! `X-kata.*` options with a volume option …) or names an unknown driver is refused here,
//! naming the driver and the field.

use super::{RequestError, Storage};
use crate::volume::{VOLUME_OPTION_PREFIX, truncate_for_error};

/// Kata's block drivers: the disk is named by a guest address on the bus the driver implies.
pub const BLOCK_DRIVERS: &[&str] = &["blk", "mmioblk", "scsi", "nvdimm", "blk-ccw"];

/// The conventions a Storage can follow (see `docs/kata-runtime.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An `io.katacontainers.volume=` option (driver empty or a block driver).
    VirtualVolume,
    /// The CCv0 runtime's `dmverity` driver: `verity_info=` and `source_type=`.
    DmVerity,
    /// The CCv0 runtime's `overlayfs` driver: the container rootfs over mounted layers.
    Overlay,
    /// Kata main's multi-layer erofs: `X-kata.multi-layer=true` (or driver
    /// `erofs.multi-layer`), a layer of a rootfs.
    MultiLayer,
    /// An image the guest pulls itself (`image_guest_pull`): the agent's business.
    GuestPull,
}

impl Shape {
    /// The shape of `storage`.
    pub fn of(storage: &Storage) -> Result<Self, RequestError> {
        let all = || storage.options.iter().chain(&storage.driver_options);
        let volume_option = all().any(|o| o.starts_with(VOLUME_OPTION_PREFIX));
        let kata_main = all().any(|o| o.starts_with("X-kata."));
        let driver = storage.driver.as_str();
        let mixed = |field: &'static str| RequestError::MixedShape {
            driver: truncate_for_error(driver),
            field,
        };
        let multi_layer = driver == "erofs.multi-layer"
            || storage
                .options
                .iter()
                .any(|o| o == "X-kata.multi-layer=true");
        match driver {
            _ if multi_layer && volume_option => Err(mixed("an io.katacontainers.volume option")),
            "" | "erofs.multi-layer" if multi_layer => Ok(Shape::MultiLayer),
            d if multi_layer && BLOCK_DRIVERS.contains(&d) => Ok(Shape::MultiLayer),
            _ if kata_main => Err(mixed("X-kata.* options")),
            "dmverity" | "overlayfs" if volume_option => {
                Err(mixed("an io.katacontainers.volume option"))
            }
            "dmverity" => Ok(Shape::DmVerity),
            "overlayfs" => Ok(Shape::Overlay),
            "image_guest_pull" => Ok(Shape::GuestPull),
            "" => Ok(Shape::VirtualVolume),
            d if BLOCK_DRIVERS.contains(&d) => Ok(Shape::VirtualVolume),
            _ => Err(RequestError::UnknownDriver(truncate_for_error(driver))),
        }
    }
}
