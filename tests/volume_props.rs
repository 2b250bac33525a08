//! Property tests: nothing panics on any input (bytes, strings, JSON trees with arbitrary and
//! duplicate keys), every error is one line, valid volumes round-trip through the option, any
//! JSON rendering Go could produce decodes alike, valid tables round-trip through their text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::verity::{
    RawVerity, Salt, VerityFormat, VerityOption, VerityParams, VerityTable, VerityTarget,
    VerityVersion, parse_tarfs,
};
use kata_volume::volume::{
    DirectAssignedVolume, DmVerityInfo, ImagePullVolume, KataVirtualVolume, NydusImageVolume,
    Volume, VolumeType, decode, encode_option,
};
use proptest::prelude::*;
use proptest::sample::select;

/// Field names of the wire format, in every nested object.
const NAMES: &[&str] = &[
    "volume_type",
    "source",
    "fs_type",
    "options",
    "direct_volume",
    "image_pull",
    "nydus_image",
    "dm_verity",
    "metadata",
    "config",
    "snapshot_dir",
    "hashtype",
    "hash",
    "blocknum",
    "blocksize",
    "hashsize",
    "offset",
    "salt",
    "hash_type",
    "no_superblock",
];

/// Feeds `input` to every parser; checks that errors stay one line.
fn parse_everything(input: &str) {
    for result in [
        decode(input).map(|_| ()).map_err(|e| e.to_string()),
        Volume::parse(input).map(|_| ()).map_err(|e| e.to_string()),
        parse_tarfs(input).map(|_| ()).map_err(|e| e.to_string()),
        input
            .parse::<VerityTable>()
            .map(|_| ())
            .map_err(|e| e.to_string()),
        input
            .parse::<VerityTarget>()
            .map(|_| ())
            .map_err(|e| e.to_string()),
    ] {
        if let Err(msg) = result {
            assert!(!msg.contains('\n'), "multi-line error {msg:?}");
        }
    }
}

/// A key: a wire name, a wire name in some other case, or anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(NAMES).prop_map(str::to_owned),
        2 => (select(NAMES), any::<u64>()).prop_map(|(n, bits)| {
            n.chars()
                .enumerate()
                .map(|(i, c)| match (c, bits >> (i % 64) & 1) {
                    ('s', 1) => '\u{17f}',
                    ('k', 1) => '\u{212a}',
                    (c, 1) => c.to_ascii_uppercase(),
                    (c, _) => c,
                })
                .collect()
        }),
        1 => ".{0,12}",
    ]
}

/// Number texts, including the ones `u64` refuses.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..70_000).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        select(
            &[
                "1e3",
                "-0",
                "0.0",
                "18446744073709551616",
                "1e400",
                "-1e400",
                "4096.5"
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

/// A JSON tree with document-order members and possible duplicate keys.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn render(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(n),
            J::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render(out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    v.render(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
}

fn json_tree() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        number().prop_map(J::Num),
        prop_oneof![
            select(
                &[
                    "sha256",
                    "SHA1",
                    "sha512",
                    "md5",
                    "layer_raw_block",
                    "direct_block",
                    "image_guest_pull",
                    "image_nydus_fs",
                    "/dev/vdb",
                    "erofs",
                    "ro",
                    ""
                ][..]
            )
            .prop_map(str::to_owned),
            "[0-9a-f]{40}|[0-9a-f]{64}",
            ".{0,20}",
        ]
        .prop_map(J::Str),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec((key(), inner), 0..10).prop_map(J::Obj),
        ]
    })
}

// ---- valid volumes ---------------------------------------------------------------------------

fn verity_info() -> impl Strategy<Value = DmVerityInfo> {
    let sizes = select(&[512u64, 1024, 2048, 4096][..]);
    (
        (
            select(&[("sha256", 32usize), ("sha1", 20)][..]),
            prop::collection::vec(any::<u8>(), 64),
            1u64..=u64::from(u32::MAX),
            sizes.clone(),
            sizes,
            0u64..1000,
        ),
        // The format in canonical form: each field absent (or empty) at its default.
        (
            prop::option::of(prop::collection::vec(any::<u8>(), 1..=256)),
            prop::option::of(Just(0u32)),
            prop::option::of(Just(false)),
            // Ours: the signature text is kept as sent (decoded by `request`, not here).
            prop::option::of("[A-Za-z0-9+/]{4,40}={0,2}"),
        ),
    )
        .prop_map(
            |(
                ((alg, len), bytes, blocknum, bs, hs, extra),
                (salt, hash_type, no_superblock, root_hash_sig),
            )| {
                DmVerityInfo {
                    hashtype: alg.into(),
                    hash: hex::encode(&bytes[..len]),
                    blocknum,
                    blocksize: bs,
                    hashsize: hs,
                    offset: (blocknum * bs).next_multiple_of(hs) + extra * hs,
                    salt: salt.map(hex::encode).unwrap_or_default(),
                    hash_type,
                    no_superblock,
                    root_hash_sig: root_hash_sig.unwrap_or_default(),
                }
            },
        )
}

/// The format a canonical `dm_verity` describes.
fn format_of(info: &DmVerityInfo) -> VerityFormat {
    VerityFormat {
        version: match info.hash_type {
            Some(0) => VerityVersion::V0,
            _ => VerityVersion::V1,
        },
        salt: Salt::parse(&info.salt).unwrap(),
        superblock: info.no_superblock == Some(false),
    }
}

fn text_without(forbidden: &'static [char]) -> impl Strategy<Value = String> {
    ".{1,40}".prop_map(move |s: String| s.replace(forbidden, "_"))
}

fn metadata() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(".{0,12}", ".{0,24}", 0..4)
}

/// A valid wire volume in canonical form (what `to_wire` gives back).
fn canonical_wire() -> impl Strategy<Value = KataVirtualVolume> {
    (
        select(&VolumeType::ALL[..]),
        text_without(&['\0']),
        "[a-z0-9._-]{1,12}",
        prop::collection::vec(text_without(&['\0', ',']), 0..4),
        prop::option::of(verity_info()),
        metadata(),
        (".{0,30}", ".{0,30}", any::<bool>()),
    )
        .prop_map(
            |(t, source, fs_type, options, dm_verity, md, (config, dir, use_config))| {
                let mut w = KataVirtualVolume {
                    volume_type: t.as_str().into(),
                    ..Default::default()
                };
                match t {
                    VolumeType::ImageGuestPull => {
                        let mut md = md;
                        md.entry("image".into()).or_insert_with(|| "busybox".into());
                        w.image_pull = Some(ImagePullVolume { metadata: Some(md) });
                        return w;
                    }
                    VolumeType::DirectBlock => {
                        w.direct_volume = Some(DirectAssignedVolume { metadata: Some(md) });
                    }
                    VolumeType::ImageRawBlock | VolumeType::LayerRawBlock => {}
                    _ => {
                        let (config, snapshot_dir) =
                            match (config.is_empty() && dir.is_empty(), use_config) {
                                (true, true) => ("{}".into(), dir),
                                (true, false) => (config, "/snapshots/1".into()),
                                _ => (config, dir),
                            };
                        w.nydus_image = Some(NydusImageVolume {
                            config,
                            snapshot_dir,
                        });
                    }
                }
                (w.source, w.fs_type, w.options, w.dm_verity) =
                    (source, fs_type, options, dm_verity);
                w
            },
        )
}

/// Renders `w` as Go might: members in any order, names in any case Go folds, strings with
/// `\uXXXX` escapes anywhere, whitespace between tokens.
fn go_like_json(w: &KataVirtualVolume, seed: u64) -> String {
    let mut rng = seed;
    let mut next = move || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        rng >> 33
    };
    let v = serde_json::to_value(w).unwrap();
    fn render(
        v: &serde_json::Value,
        next: &mut dyn FnMut() -> u64,
        in_map: bool,
        out: &mut String,
    ) {
        let string = |s: &str, next: &mut dyn FnMut() -> u64, out: &mut String| {
            out.push('"');
            for c in s.chars() {
                let escape =
                    next().is_multiple_of(4) || matches!(c, '"' | '\\') || (c as u32) < 0x20;
                if escape {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                } else {
                    out.push(c);
                }
            }
            out.push('"');
        };
        match v {
            serde_json::Value::Object(m) => {
                let mut members: Vec<_> = m.iter().collect();
                for i in (1..members.len()).rev() {
                    members.swap(i, usize::try_from(next() % (i as u64 + 1)).unwrap());
                }
                out.push('{');
                for (i, (k, val)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(if next().is_multiple_of(2) {
                            ","
                        } else {
                            " ,\n "
                        });
                    }
                    let name: String = if in_map {
                        (*k).clone()
                    } else {
                        k.chars()
                            .map(|c| match (c, next() % 3) {
                                ('s', 0) => '\u{17f}',
                                ('k', 0) => '\u{212a}',
                                (c, 1) => c.to_ascii_uppercase(),
                                (c, _) => c,
                            })
                            .collect()
                    };
                    string(&name, next, out);
                    out.push_str(if next().is_multiple_of(2) { ":" } else { " : " });
                    render(val, next, k.as_str() == "metadata", out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    render(item, next, false, out);
                }
                out.push(']');
            }
            serde_json::Value::String(s) => string(s, next, out),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    render(&v, &mut next, false, &mut out);
    out
}

// ---- valid tables ----------------------------------------------------------------------------

/// A valid table, with the `dm_verity` it was made from (its offset usually leaves a gap
/// after the data).
fn valid_table() -> impl Strategy<Value = (DmVerityInfo, VerityTable)> {
    (
        verity_info(),
        "[!-~]{1,30}",
        prop::collection::vec(
            prop_oneof![
                Just(VerityOption::IgnoreCorruption),
                Just(VerityOption::RestartOnCorruption),
                Just(VerityOption::PanicOnCorruption),
                Just(VerityOption::RestartOnError),
                Just(VerityOption::PanicOnError),
                Just(VerityOption::IgnoreZeroBlocks),
                Just(VerityOption::CheckAtMostOnce),
                "[!-~]{1,20}".prop_map(VerityOption::RootHashSigKeyDesc),
            ],
            0..4,
        ),
    )
        .prop_map(|(info, device, options)| {
            let params = VerityParams::with_format(
                &RawVerity {
                    hashtype: &info.hashtype,
                    hash: &info.hash,
                    blocknum: info.blocknum,
                    blocksize: info.blocksize,
                    hashsize: info.hashsize,
                    offset: info.offset,
                },
                format_of(&info),
            )
            .unwrap();
            let table =
                VerityTable::new(VerityTarget::new(&params, &device, options).unwrap()).unwrap();
            (info, table)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_everything(&String::from_utf8_lossy(&bytes));
        parse_everything(&STANDARD.encode(&bytes));
        parse_everything(&format!("io.katacontainers.volume={}", STANDARD.encode(&bytes)));
    }

    #[test]
    fn random_strings_never_panic(s in "\\PC{0,300}", t in ".{0,100}") {
        parse_everything(&s);
        parse_everything(&t);
        parse_everything(&format!("{{{s}"));
        parse_everything(&format!("io.katacontainers.volume={}", STANDARD.encode(&s)));
    }

    #[test]
    fn table_like_strings_never_panic(
        words in prop::collection::vec(
            prop_oneof![
                select(&["0", "1", "8", "verity", "512", "4096", "sha256", "sha1", "-", "2",
                         "ignore_zero_blocks", "root_hash_sig_key_desc", "/dev/vdb",
                         "18446744073709551615", "18446744073709551616", "+1", "00"][..])
                    .prop_map(str::to_owned),
                "[0-9a-f]{40}|[0-9a-f]{64}|[0-9]{1,22}",
                "\\PC{0,6}",
            ],
            0..16,
        ),
        sep in select(&[" ", "  ", "\t", ","][..]),
    ) {
        let s = words.join(sep);
        parse_everything(&s);
        parse_everything(&format!("0 8 verity {s}"));
    }

    #[test]
    fn random_json_never_panics(tree in json_tree()) {
        let text = tree.text();
        parse_everything(&text);
        parse_everything(&format!("io.katacontainers.volume={}", STANDARD.encode(&text)));
    }

    #[test]
    fn random_volume_objects_never_panic(
        members in prop::collection::vec((key(), json_tree()), 0..12),
        verity_members in prop::collection::vec((key(), json_tree()), 0..8),
    ) {
        let mut members = members;
        members.push(("dm_verity".into(), J::Obj(verity_members)));
        let text = J::Obj(members).text();
        parse_everything(&format!("io.katacontainers.volume={}", STANDARD.encode(&text)));
    }

    #[test]
    fn valid_volumes_round_trip_through_the_option(w in canonical_wire()) {
        let option = encode_option(&w);
        let v = Volume::parse(&option).unwrap();
        prop_assert_eq!(v.volume_type().as_str(), w.volume_type.as_str());
        prop_assert_eq!(&v.to_wire(), &w);
        prop_assert_eq!(Volume::from_wire(&w).unwrap(), v.clone());
        prop_assert_eq!(Volume::parse(&w.to_json()).unwrap(), v);
    }

    #[test]
    fn any_go_rendering_decodes_alike(w in canonical_wire(), seed in any::<u64>()) {
        let json = go_like_json(&w, seed);
        prop_assert_eq!(decode(&json).unwrap(), w.clone(), "{}", json);
        let option = format!("io.katacontainers.volume={}", STANDARD.encode(&json));
        prop_assert_eq!(decode(&option).unwrap(), w);
    }

    #[test]
    fn valid_tables_round_trip_through_text((info, t) in valid_table()) {
        let text = t.to_string();
        let back: VerityTable = text.parse().unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.to_string(), text);
        let target: VerityTarget = t.target.to_string().parse().unwrap();
        prop_assert_eq!(target, t.target.clone());
        // Units: the length is the data in sectors, the start is `offset` in hash blocks
        // (whatever gap it leaves after the data), past the superblock when there is one.
        let superblock = u64::from(format_of(&info).superblock);
        prop_assert_eq!(t.length.0, info.blocknum * info.blocksize / 512);
        prop_assert_eq!(t.target.data_blocks, info.blocknum);
        prop_assert_eq!(t.target.hash_start_block, info.offset / info.hashsize + superblock);
        prop_assert_eq!((t.target.hash_start_block - superblock) * info.hashsize, info.offset);
    }


    #[test]
    fn tables_carry_the_format_of_the_request(info in verity_info(), device in "[!-~]{1,30}") {
        let format = format_of(&info);
        let params = VerityParams::with_format(
            &RawVerity {
                hashtype: &info.hashtype,
                hash: &info.hash,
                blocknum: info.blocknum,
                blocksize: info.blocksize,
                hashsize: info.hashsize,
                offset: info.offset,
            },
            format.clone(),
        )
        .unwrap();
        let t = VerityTarget::new(&params, &device, Vec::new()).unwrap();
        prop_assert_eq!(t.version.number(), info.hash_type.unwrap_or(1));
        prop_assert_eq!(&t.salt, &format.salt);
        let superblock = u64::from(info.no_superblock == Some(false));
        prop_assert_eq!(t.hash_start_block, info.offset / info.hashsize + superblock);
        prop_assert_eq!(
            params.required_device_size().0,
            info.offset + superblock * info.hashsize + params.tree().size().0
        );
        // And the wire form of the parameters is the canonical input (a signature is not a
        // parameter: the volume carries it beside them).
        prop_assert_eq!(
            kata_volume::volume::verity_info(&params),
            DmVerityInfo { root_hash_sig: String::new(), ..info }
        );
    }

    #[test]
    fn valid_tarfs_strings_parse_to_their_numbers(
        blocknum in 1u64..=u64::from(u32::MAX),
        extra in 0u64..1000,
        hash in "[0-9a-f]{64}",
    ) {
        let offset = (blocknum * 512).next_multiple_of(4096) + extra * 4096;
        let p = parse_tarfs(&format!("{blocknum},{offset},sha256:{hash}")).unwrap();
        prop_assert_eq!(p.data_blocks(), blocknum);
        prop_assert_eq!(p.hash_offset().0, offset);
        prop_assert_eq!(p.hash_start_block(), offset / 4096);
        prop_assert_eq!(p.root_hash().to_hex(), hash);
    }
}
