//! The dm-verity table line: exact `Display` strings for known cases, `FromStr` of tables with
//! optional arguments, and rejection of malformed tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kata_volume::verity::units::Sectors;
use kata_volume::verity::{
    RawVerity, Salt, VerityError, VerityFormat, VerityOption, VerityParams, VerityTable,
    VerityTarget, VerityVersion, parse_tarfs,
};
use support::{H1, H256, assert_names};

fn params(hashtype: &str, hash: &str, n: u64, bs: u64, hs: u64, off: u64) -> VerityParams {
    VerityParams::new(&RawVerity {
        hashtype,
        hash,
        blocknum: n,
        blocksize: bs,
        hashsize: hs,
        offset: off,
    })
    .unwrap()
}

fn table(p: &VerityParams, dev: &str, options: Vec<VerityOption>) -> VerityTable {
    VerityTable::new(VerityTarget::new(p, dev, options).unwrap()).unwrap()
}

#[test]
fn display_of_the_tarfs_layout() {
    let p = parse_tarfs(&format!("16384,8388608,sha256:{H256}")).unwrap();
    let t = table(&p, "/dev/vdb", Vec::new());
    assert_eq!(
        t.to_string(),
        format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -")
    );
    assert_eq!(t.length, Sectors(16384));
    assert_eq!(
        t.target.to_string(),
        format!("1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -")
    );
}

/// The hash tree need not start where the data ends: the table's hash start is the
/// volume's `offset` in hash blocks, never the data's end (rounded or not).
#[test]
fn display_with_a_gap_between_data_and_tree() {
    for (n, bs, hs, off, start) in [
        // tarfs layout, the tree 4 MiB after the data's end.
        (16384, 512, 4096, 12_582_912, 3072),
        // 4 KiB blocks, one spare hash block.
        (1000, 4096, 4096, 4_100_096, 1001),
        // Data ending inside a hash block (512,512 bytes: 126 blocks of 4 KiB rounded up),
        // tree at 1 MiB.
        (1001, 512, 4096, 1 << 20, 256),
        // Hash blocks smaller than data blocks.
        (100, 4096, 512, 409_600 + 7 * 512, 807),
    ] {
        let p = params("sha256", H256, n, bs, hs, off);
        assert_eq!(p.hash_start_block(), start, "{n} {bs} {hs} {off}");
        let sectors = n * bs / 512;
        let want =
            format!("0 {sectors} verity 1 /dev/vdb /dev/vdb {bs} {hs} {n} {start} sha256 {H256} -");
        let t = table(&p, "/dev/vdb", Vec::new());
        assert_eq!(t.to_string(), want);
        assert_eq!(want.parse::<VerityTable>().unwrap(), t);
    }
    let p = parse_tarfs(&format!("16384,12582912,sha256:{H256}")).unwrap();
    assert_eq!(
        table(&p, "/dev/vdb", Vec::new()).to_string(),
        format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 3072 sha256 {H256} -")
    );
}

#[test]
fn display_carries_the_version_the_salt_and_the_superblock() {
    let raw = RawVerity {
        hashtype: "sha1",
        hash: H1,
        blocknum: 100,
        blocksize: 4096,
        hashsize: 512,
        offset: 409_600,
    };
    for (version, salt, superblock, want) in [
        (
            VerityVersion::V1,
            "-",
            false,
            "1 d d 4096 512 100 800 sha1 {H} -",
        ),
        (
            VerityVersion::V0,
            "-",
            false,
            "0 d d 4096 512 100 800 sha1 {H} -",
        ),
        (
            VerityVersion::V0,
            "0011223344",
            true,
            "0 d d 4096 512 100 801 sha1 {H} 0011223344",
        ),
        (
            VerityVersion::V1,
            "ABCD",
            true,
            "1 d d 4096 512 100 801 sha1 {H} abcd",
        ),
    ] {
        let p = VerityParams::with_format(
            &raw,
            VerityFormat {
                version,
                salt: Salt::parse(salt).unwrap(),
                superblock,
            },
        )
        .unwrap();
        let t = table(&p, "d", vec![VerityOption::IgnoreZeroBlocks]);
        let want = format!(
            "0 800 verity {} 1 ignore_zero_blocks",
            want.replace("{H}", H1)
        );
        assert_eq!(t.to_string(), want);
        let back: VerityTable = want.parse().unwrap();
        assert_eq!(back, t);
        assert_eq!(back.target.version, version);
        assert_eq!(back.target.salt, *p.salt());
    }
}

#[test]
fn display_in_sectors_and_hash_blocks() {
    // 4 KiB data blocks: the length is 8 sectors per block, the start is in hash blocks.
    let p = params("sha256", H256, 1000, 4096, 4096, 4_096_000);
    assert_eq!(
        table(&p, "/dev/vda", Vec::new()).to_string(),
        format!("0 8000 verity 1 /dev/vda /dev/vda 4096 4096 1000 1000 sha256 {H256} -")
    );
    // The upstream 512/512 case: hash start 8388608 / 512.
    let p = params("SHA256", &H256.to_uppercase(), 16384, 512, 512, 8_388_608);
    assert_eq!(
        table(&p, "253:0", Vec::new()).to_string(),
        format!("0 16384 verity 1 253:0 253:0 512 512 16384 16384 sha256 {H256} -")
    );
    let p = params("sha1", H1, 1, 512, 4096, 4096);
    assert_eq!(
        table(&p, "/dev/loop0", Vec::new()).to_string(),
        format!("0 1 verity 1 /dev/loop0 /dev/loop0 512 4096 1 1 sha1 {H1} -")
    );
    // The largest volume: 2^32-1 blocks of 4 KiB.
    let p = params(
        "sha256",
        H256,
        4_294_967_295,
        4096,
        4096,
        4_294_967_295 * 4096,
    );
    assert_eq!(
        table(&p, "/dev/vdc", Vec::new()).to_string(),
        format!(
            "0 34359738360 verity 1 /dev/vdc /dev/vdc 4096 4096 4294967295 4294967295 sha256 {H256} -"
        )
    );
}

#[test]
fn display_with_optional_arguments() {
    let p = parse_tarfs(&format!("16384,8388608,sha256:{H256}")).unwrap();
    let base = format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -");
    for (options, tail) in [
        (
            vec![
                VerityOption::IgnoreZeroBlocks,
                VerityOption::CheckAtMostOnce,
            ],
            " 2 ignore_zero_blocks check_at_most_once",
        ),
        (
            vec![VerityOption::RootHashSigKeyDesc("key".into())],
            " 2 root_hash_sig_key_desc key",
        ),
        (
            vec![
                VerityOption::RestartOnCorruption,
                VerityOption::RootHashSigKeyDesc("k".into()),
            ],
            " 3 restart_on_corruption root_hash_sig_key_desc k",
        ),
        (
            vec![
                VerityOption::IgnoreCorruption,
                VerityOption::PanicOnCorruption,
                VerityOption::RestartOnError,
                VerityOption::PanicOnError,
            ],
            " 4 ignore_corruption panic_on_corruption restart_on_error panic_on_error",
        ),
    ] {
        let t = table(&p, "/dev/vdb", options.clone());
        assert_eq!(t.to_string(), format!("{base}{tail}"));
        let back: VerityTable = t.to_string().parse().unwrap();
        assert_eq!(back, t);
        assert_eq!(back.target.options, options);
    }
}

#[test]
fn from_str_parses_known_tables() {
    let text = format!(
        "0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} - 2 ignore_zero_blocks check_at_most_once"
    );
    let t: VerityTable = text.parse().unwrap();
    assert_eq!(t.length, Sectors(16384));
    assert_eq!(t.target.version, VerityVersion::V1);
    assert_eq!(t.target.data_device, "/dev/vdb");
    assert_eq!(t.target.hash_device, "/dev/vdb");
    assert_eq!(t.target.data_block_size.bytes(), 512);
    assert_eq!(t.target.hash_block_size.bytes(), 4096);
    assert_eq!(t.target.data_blocks, 16384);
    assert_eq!(t.target.hash_start_block, 2048);
    assert_eq!(t.target.root_hash.to_hex(), H256);
    assert!(t.target.salt.is_empty());
    assert_eq!(
        t.target.options,
        vec![
            VerityOption::IgnoreZeroBlocks,
            VerityOption::CheckAtMostOnce
        ]
    );
    assert_eq!(t.to_string(), text);

    // `root_hash_sig_key_desc <key>` is two words of the count.
    let t: VerityTable = format!(
        "0 8 verity 1 /dev/a /dev/b 4096 4096 1 1 sha256 {H256} 00ff 2 root_hash_sig_key_desc key"
    )
    .parse()
    .unwrap();
    assert_eq!(
        t.target.options,
        vec![VerityOption::RootHashSigKeyDesc("key".into())]
    );
    assert_eq!(t.target.salt.as_bytes(), [0, 255]);
    assert_eq!(t.target.hash_device, "/dev/b");

    // Version 0 (Chrome OS format), sha512, and a table as the kernel prints it (`0` options).
    let text = format!("0 8 verity 0 1:2 1:2 4096 4096 1 1 sha1 {H1} -");
    let t: VerityTable = text.parse().unwrap();
    assert_eq!(t.target.version, VerityVersion::V0);
    assert_eq!(t.to_string(), text);
    let t: VerityTable = format!("0 8 verity 1 a a 4096 4096 1 1 sha256 {H256} - 0")
        .parse()
        .unwrap();
    assert!(t.target.options.is_empty());
    // Surrounding whitespace (a line read from `dmsetup table`) is ignored.
    let t: VerityTable = format!("0 8 verity 1 a a 4096 4096 1 1 sha256 {H256} -\n")
        .parse()
        .unwrap();
    assert_eq!(t.length, Sectors(8));
}

#[test]
fn from_str_rejects_malformed_tables() {
    let ok = format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -");
    assert!(ok.parse::<VerityTable>().is_ok());
    let replace = |from: &str, to: &str| ok.replacen(from, to, 1);
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "start must be 0"),
        ("0".into(), "bad length"),
        ("0 16384".into(), "not a verity target"),
        ("0 16384 verity".into(), "missing parameters"),
        ("0 16384 verity 1".into(), "missing data device"),
        (ok.replacen("0 ", "1 ", 1), "start must be 0"),
        (replace("16384 verity", "x verity"), "bad length"),
        (replace("16384 verity", "-1 verity"), "bad length"),
        (replace("verity", "linear"), "not a verity target"),
        (replace("verity 1", "verity 2"), "unsupported version"),
        (replace("verity 1", "verity x"), "bad version"),
        (replace("verity 1", "verity 4294967296"), "bad version"),
        (replace(" 512 ", " 3000 "), "bad data block size"),
        (replace(" 512 ", " 8192 "), "bad data block size"),
        (replace(" 4096 ", " 256 "), "bad hash block size"),
        (replace(" 16384 2048", " x 2048"), "bad data block count"),
        (replace(" 2048 ", " -2048 "), "bad hash start"),
        (ok.replace(&format!(" {H256} -"), ""), "missing digest"),
        (ok.replace(" -", ""), "missing salt"),
        (format!("{ok} 1"), "missing option"),
        (format!("{ok} x"), "bad option count"),
        (format!("{ok} -1 check_at_most_once"), "bad option count"),
        (format!("{ok} 1 check_at_most_once extra"), "trailing words"),
        (
            format!("{ok} 1 bogus_option"),
            "unsupported optional argument",
        ),
        (
            format!("{ok} 1 root_hash_sig_key_desc key"),
            "bad option count",
        ),
        (
            format!("{ok} 2 root_hash_sig_key_desc"),
            "missing key description",
        ),
        (
            format!("{ok} 3 ignore_zero_blocks check_at_most_once"),
            "missing option",
        ),
        (format!("{ok} 18446744073709551616 x"), "bad option count"),
    ];
    for (text, why) in &cases {
        match text.parse::<VerityTable>() {
            Ok(t) => panic!("accepted {text:?} as {t}"),
            Err(e) => {
                assert_eq!(
                    e,
                    VerityError::Table {
                        why,
                        table: text.trim().to_owned()
                    }
                    .clone(),
                    "{text:?}"
                );
                assert!(e.to_string().contains("dm-verity table"), "{e}");
            }
        }
    }
}

#[test]
fn from_str_checks_algorithm_digest_and_salt() {
    let ok = format!("0 8 verity 1 a a 4096 4096 1 1 sha256 {H256} -");
    for (text, want) in [
        (ok.replace("sha256", "md5"), "\"md5\""),
        (ok.replace(H256, &H256[..63]), &H256[..63]),
        (ok.replace(H256, H1), H1),
        (ok.replace(" -", " 0"), "salt \"0\""),
        (ok.replace(" -", " zz"), "salt \"zz\""),
    ] {
        let e = text.parse::<VerityTable>().unwrap_err();
        assert_names(&e.to_string(), &[want]);
    }
}

#[test]
fn from_str_numbers_are_plain_decimal() {
    // The kernel's sscanf("%u") takes no sign: neither does the parser, so that a table that
    // parses is one the kernel would read the same way.
    let ok = format!("0 8 verity 1 a a 4096 4096 1 1 sha256 {H256} -");
    for text in [
        ok.replacen(" 8 ", " +8 ", 1),
        ok.replacen("verity 1", "verity +1", 1),
        ok.replacen(" 4096 ", " +4096 ", 1),
        ok.replacen(" 1 1 ", " +1 1 ", 1),
        ok.replacen(" 1 sha256", " +1 sha256", 1),
        format!("{ok} +1 check_at_most_once"),
    ] {
        assert!(text.parse::<VerityTable>().is_err(), "accepted {text:?}");
    }
}

#[test]
fn from_str_refuses_words_the_constructor_refuses() {
    // A table that parses can be rebuilt: devices and keys are single printable words.
    let ok = format!("0 8 verity 1 a a 4096 4096 1 1 sha256 {H256} -");
    for text in [
        ok.replace(" a a ", " a\u{b}b a "),
        ok.replace(" a a ", " a a\u{a0}b "),
        format!("{ok} 2 root_hash_sig_key_desc k\u{1}"),
    ] {
        assert!(text.parse::<VerityTable>().is_err(), "accepted {text:?}");
    }
}

#[test]
fn from_str_refuses_a_length_beyond_the_data() {
    // The kernel refuses a target longer than its data blocks.
    let long = format!("0 9 verity 1 a a 4096 4096 1 1 sha256 {H256} -");
    assert!(long.parse::<VerityTable>().is_err());
    let zero = format!("0 0 verity 1 a a 4096 4096 1 1 sha256 {H256} -");
    assert!(zero.parse::<VerityTable>().is_err());
}

#[test]
fn target_words_must_be_single_words() {
    let p = params("sha256", H256, 1, 4096, 4096, 4096);
    for dev in [
        "",
        "/dev/v db",
        "/dev/vdb\n",
        "a\tb",
        "/dev/\u{0}x",
        "a\u{a0}b",
    ] {
        let e = VerityTarget::new(&p, dev, Vec::new()).unwrap_err();
        assert!(
            matches!(e, VerityError::TableWord { what: "device", .. }),
            "{dev:?}"
        );
        assert_names(&e.to_string(), &["device", &format!("{dev:?}")]);
    }
    let e = VerityTarget::new(
        &p,
        "/dev/vdb",
        vec![VerityOption::RootHashSigKeyDesc("two words".into())],
    )
    .unwrap_err();
    assert_names(&e.to_string(), &["root_hash_sig_key_desc", "\"two words\""]);
}

#[test]
fn target_length_is_the_data_area_in_sectors() {
    let p = params("sha256", H256, 3, 2048, 4096, 8192);
    let t = VerityTarget::new(&p, "d", Vec::new()).unwrap();
    assert_eq!(t.length(), Some(Sectors(12)));
    // A hand-built target whose length overflows is refused by VerityTable::new.
    let mut huge = t.clone();
    huge.data_blocks = u64::MAX;
    assert_eq!(huge.length(), None);
    // The error names the field that is out of range: the data block count.
    assert!(matches!(
        VerityTable::new(huge),
        Err(VerityError::DataBlocks(u64::MAX))
    ));
}
