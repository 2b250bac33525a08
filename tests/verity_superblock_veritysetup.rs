//! Cross-checks with images made by the real `veritysetup format`, with and without a
//! superblock, hash type 0 and 1, with and without a salt: our parser reads the superblock it
//! wrote, our encoder writes it back byte for byte, a request for the image matches it (and
//! one that differs is refused), and our `hash_start_block` is where its tree starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/veritysetup.rs"]
mod veritysetup;

mod support;

use kata_volume::verity::superblock::check_hash_area;
use kata_volume::verity::{Superblock, SuperblockCheckError, VerityParams, VerityTarget};
use kata_volume::volume::Volume;
use support::assert_names;
use veritysetup::{Flags, Layout, dump, pattern, read_range, verify_with};

/// A `layer_raw_block` volume's JSON with `extra` members appended to its `dm_verity`.
fn volume_json(
    (alg, root): (&str, &str),
    blocks: u64,
    (bs, hs): (u64, u64),
    offset: u64,
    extra: &str,
) -> String {
    format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs","dm_verity":{{"hashtype":"{alg}","hash":"{root}","blocknum":{blocks},"blocksize":{bs},"hashsize":{hs},"offset":{offset}{extra}}}}}"#
    )
}

/// The checked parameters of a volume's JSON.
fn params_of(json: &str) -> VerityParams {
    Volume::parse(json).unwrap().verity().unwrap().clone()
}

/// One `veritysetup format` case.
struct Case {
    alg: &'static str,
    bs: u64,
    hs: u64,
    blocks: u64,
    /// Extra hash blocks between the data's end and the offset.
    gap: u64,
    version: u32,
    salt: String,
}

impl Case {
    fn flags(&self, offset: u64) -> Flags {
        Flags {
            hash: self.alg,
            data_block_size: self.bs,
            hash_block_size: self.hs,
            data_blocks: self.blocks,
            hash_offset: offset,
            salt: self.salt.clone(),
        }
    }

    fn offset(&self) -> u64 {
        (self.blocks * self.bs).next_multiple_of(self.hs) + self.gap * self.hs
    }

    /// The wire members for this case's format (salt, hash type, superblock).
    fn members(&self, no_superblock: Option<bool>) -> String {
        let mut m = String::new();
        if self.salt != "-" {
            m.push_str(&format!(",\"salt\":\"{}\"", self.salt));
        }
        if self.version != 1 {
            m.push_str(&format!(",\"hash_type\":{}", self.version));
        }
        if let Some(b) = no_superblock {
            m.push_str(&format!(",\"no_superblock\":{b}"));
        }
        m
    }
}

fn cases() -> Vec<Case> {
    let c = |alg, bs, hs, blocks, gap, version, salt: &str| Case {
        alg,
        bs,
        hs,
        blocks,
        gap,
        version,
        salt: salt.into(),
    };
    vec![
        c("sha256", 4096, 4096, 64, 0, 1, "abcd"),
        c("sha256", 4096, 512, 64, 0, 1, "-"),
        c("sha256", 512, 4096, 300, 2, 1, "00ff"),
        c("sha1", 4096, 512, 100, 0, 0, "0011223344"),
        c("sha256", 512, 4096, 300, 0, 0, &"5a".repeat(256)),
        c("sha1", 1024, 1024, 1000, 1, 1, "-"),
        // One data block: an empty tree; the superblock's block is all the hash area.
        c("sha256", 4096, 4096, 1, 0, 1, "01"),
    ]
}

#[test]
fn veritysetup_superblocks_parse_check_and_place_the_tree() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::write(
            &img,
            pattern(usize::try_from(case.blocks * case.bs).unwrap(), 7),
        )
        .unwrap();
        let offset = case.offset();
        let flags = case.flags(offset);
        let layout = Layout {
            format: case.version,
            superblock: true,
        };
        let root = veritysetup::format_with(&img, &img, &flags, layout);
        let what = format!(
            "{} {}/{} v{} salt {}",
            case.alg,
            case.bs,
            case.hs,
            case.version,
            &case.salt[..case.salt.len().min(8)]
        );

        // Our parser reads what veritysetup wrote, and our encoder writes it back exactly.
        let bytes = read_range(&img, offset, 512);
        let sb = Superblock::parse(&bytes).unwrap();
        assert_eq!(sb.encode().to_vec(), bytes, "{what}");
        assert_eq!(sb.version.number(), case.version, "{what}");
        assert_eq!(sb.algorithm.name(), case.alg);
        assert_eq!(
            (sb.data_block_size.bytes(), sb.hash_block_size.bytes()),
            (case.bs, case.hs)
        );
        assert_eq!(sb.data_blocks, case.blocks);
        assert_eq!(sb.salt.to_string(), case.salt);
        let d = dump(&img, offset);
        let get = |k: &str| {
            d.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("UUID"), sb.uuid_string(), "{what}");
        assert_eq!(get("Hash type"), case.version.to_string());
        assert_eq!(get("Salt"), case.salt);

        // The request as a volume: the superblock matches it, and the tree is where
        // hash_start_block says — veritysetup verifies it there without a superblock.
        let json = volume_json(
            (case.alg, &root),
            case.blocks,
            (case.bs, case.hs),
            offset,
            &case.members(Some(false)),
        );
        let p = params_of(&json);
        assert!(p.has_superblock());
        assert_eq!(check_hash_area(&p, &bytes), Ok(Some(sb.clone())), "{what}");
        assert_eq!(p.hash_start_block(), offset / case.hs + 1, "{what}");
        assert_eq!(get("Hash blocks"), p.tree().total_blocks().to_string());
        let at_start = Flags {
            hash_offset: p.hash_start_block() * case.hs,
            ..flags.clone()
        };
        let plain = Layout {
            format: case.version,
            superblock: false,
        };
        assert!(
            verify_with(&img, &img, &root, &at_start, plain),
            "{what}: tree not at the start block"
        );
        if case.blocks > 1 {
            assert!(
                !verify_with(&img, &img, &root, &flags, plain),
                "{what}: tree found at the offset itself"
            );
        }
        assert!(verify_with(&img, &img, &root, &flags, layout));
        // The image ends exactly where the kernel needs it to.
        assert_eq!(
            std::fs::metadata(&img).unwrap().len(),
            p.required_device_size().0,
            "{what}"
        );

        // The table carries the version, the salt and the start past the superblock.
        let t = VerityTarget::new(&p, "/dev/vdb", Vec::new()).unwrap();
        assert_eq!(
            t.to_string(),
            format!(
                "{} /dev/vdb /dev/vdb {} {} {} {} {} {root} {}",
                case.version,
                case.bs,
                case.hs,
                case.blocks,
                offset / case.hs + 1,
                case.alg,
                case.salt
            )
        );
        assert_eq!(t.to_string().parse::<VerityTarget>().unwrap(), t);

        // The same request without the superblock flag (absent: no superblock) is refused,
        // and so is one whose salt differs.
        let json = volume_json(
            (case.alg, &root),
            case.blocks,
            (case.bs, case.hs),
            offset,
            &case.members(None),
        );
        let e = check_hash_area(&params_of(&json), &bytes).unwrap_err();
        assert_eq!(e, SuperblockCheckError::Unexpected { offset });
        let other_salt = Case {
            salt: "beef".into(),
            ..case
        };
        let json = volume_json(
            (other_salt.alg, &root),
            other_salt.blocks,
            (other_salt.bs, other_salt.hs),
            offset,
            &other_salt.members(Some(false)),
        );
        let e = check_hash_area(&params_of(&json), &bytes).unwrap_err();
        assert_names(&e.to_string(), &["has salt", "dm_verity.salt is beef"]);
    }
}

#[test]
fn veritysetup_images_without_a_superblock_are_recognised_as_such() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::write(
            &img,
            pattern(usize::try_from(case.blocks * case.bs).unwrap(), 8),
        )
        .unwrap();
        let offset = case.offset();
        let flags = case.flags(offset);
        let layout = Layout {
            format: case.version,
            superblock: false,
        };
        let root = veritysetup::format_with(&img, &img, &flags, layout);
        let len = std::fs::metadata(&img).unwrap().len();
        let bytes = read_range(&img, offset, (len - offset).min(512));
        for no_superblock in [None, Some(true)] {
            let json = volume_json(
                (case.alg, &root),
                case.blocks,
                (case.bs, case.hs),
                offset,
                &case.members(no_superblock),
            );
            let p = params_of(&json);
            assert!(!p.has_superblock());
            assert_eq!(check_hash_area(&p, &bytes), Ok(None));
            assert_eq!(p.hash_start_block(), offset / case.hs);
            assert_eq!(len, p.required_device_size().0);
            let t = VerityTarget::new(&p, "/dev/vdb", Vec::new()).unwrap();
            assert_eq!(t.version.number(), case.version);
            assert_eq!(t.salt.to_string(), case.salt);
        }
        // Told to expect a superblock, it finds none.
        let json = volume_json(
            (case.alg, &root),
            case.blocks,
            (case.bs, case.hs),
            offset,
            &case.members(Some(false)),
        );
        let e = check_hash_area(&params_of(&json), &bytes).unwrap_err();
        assert!(matches!(e, SuperblockCheckError::Invalid { .. }), "{e:?}");
    }
}
