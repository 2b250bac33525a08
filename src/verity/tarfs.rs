//! The tarfs block-info string, `"<blocknum>,<offset>,sha256:<hex>"`, that nydus-snapshotter
//! puts in an annotation and the host turns into a volume's `dm_verity`: data blocks of 512
//! bytes, hash blocks of 4 KiB, `offset` in bytes.

use super::VerityError;
use super::params::{RawVerity, VerityParams};

/// Data block size of the tarfs layout.
pub const TARFS_DATA_BLOCK_SIZE: u64 = 512;
/// Hash block size of the tarfs layout.
pub const TARFS_HASH_BLOCK_SIZE: u64 = 4096;

/// Parses and checks a tarfs block-info string.
pub fn parse_tarfs(info: &str) -> Result<VerityParams, VerityError> {
    let bad = |why: &'static str| VerityError::Tarfs {
        why,
        value: info.to_owned(),
    };
    let mut parts = info.split(',');
    let (Some(blocknum), Some(offset), Some(digest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected three comma-separated fields"));
    };
    let number = |s: &str, why| {
        // Plain decimal only: no sign, no spaces, no empty field.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(why));
        }
        s.parse::<u64>().map_err(|_| bad(why))
    };
    let blocknum = number(blocknum, "block count is not a decimal number")?;
    let offset = number(offset, "offset is not a decimal number")?;
    let Some(hash) = digest.strip_prefix("sha256:") else {
        return Err(bad("digest must start with 'sha256:'"));
    };
    VerityParams::new(&RawVerity {
        hashtype: "sha256",
        hash,
        blocknum,
        blocksize: TARFS_DATA_BLOCK_SIZE,
        hashsize: TARFS_HASH_BLOCK_SIZE,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";

    #[test]
    fn parses_a_good_string() {
        let p = parse_tarfs(&format!("16384,8388608,sha256:{H}")).unwrap();
        assert_eq!(p.data_blocks(), 16384);
        assert_eq!(p.hash_offset().0, 8_388_608);
        assert_eq!(p.data_block_size().bytes(), 512);
        assert_eq!(p.hash_block_size().bytes(), 4096);
        assert_eq!(p.hash_start_block(), 2048);
    }

    #[test]
    fn rejects_malformed_strings() {
        for s in [
            String::new(),
            "1,2".into(),
            format!("16384,8388608,sha1:{H}"),
            format!("16384,8388608,{H}"),
            format!("-1,8388608,sha256:{H}"),
            format!("+16384,8388608,sha256:{H}"),
            format!(" 16384,8388608,sha256:{H}"),
            format!("16384,8388608,sha256:{H},x"),
            format!("16384,8388609,sha256:{H}"),
            format!("16384,8388608,sha256:{}", &H[..63]),
            "16384,8388608,sha256:zz".into(),
        ] {
            assert!(parse_tarfs(&s).is_err(), "{s:?}");
        }
    }
}
