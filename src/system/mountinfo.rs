//! Parsing `/proc/self/mountinfo` (pure; the Linux system reads the file).

use std::path::PathBuf;

use super::DevNum;

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's id (as `statx` reports it with `STATX_MNT_ID`).
    pub id: u64,
    /// The id of the mount it sits on.
    pub parent: u64,
    /// Device number of the mounted filesystem.
    pub dev: DevNum,
    /// Mount point.
    pub target: PathBuf,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source as the kernel reports it.
    pub source: String,
    /// Per-mount options (`ro,nodev,…`).
    pub options: String,
    /// The filesystem's own options (for an overlay: `lowerdir=…,upperdir=…`).
    pub super_options: String,
}

/// Unescapes the kernel's octal escapes (`\040` for space, …).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (u32::from(b[i + 1] - b'0') << 6)
                | (u32::from(b[i + 2] - b'0') << 3)
                | u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root target options [optional…] - fstype source superopts
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.split(' ');
    let id = pre.next()?.parse().ok()?;
    let parent = pre.next()?.parse().ok()?;
    let (maj, min) = pre.next()?.split_once(':')?;
    let _root = pre.next()?;
    let target = unescape(pre.next()?);
    let options = pre.next()?.to_owned();
    let mut post = post.split(' ');
    let fs_type = post.next()?.to_owned();
    let source = unescape(post.next()?);
    let super_options = unescape(post.next().unwrap_or_default());
    Some(MountEntry {
        id,
        parent,
        dev: DevNum {
            major: maj.parse().ok()?,
            minor: min.parse().ok()?,
        },
        target: PathBuf::from(target),
        fs_type,
        source,
        options,
        super_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let t = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                 garbage\n\
                 40 1 253:2 / /run/kata-containers/x ro,nosuid,nodev - erofs /dev/mapper/kata-volume-1 ro\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].target, PathBuf::from("/mnt/a b"));
        assert_eq!((m[0].id, m[0].parent), (36, 35));
        assert_eq!((m[1].id, m[1].parent), (40, 1));
        assert_eq!(
            m[0].dev,
            DevNum {
                major: 98,
                minor: 0
            }
        );
        assert_eq!(m[1].fs_type, "erofs");
        assert_eq!(m[1].source, "/dev/mapper/kata-volume-1");
        assert_eq!(m[1].options, "ro,nosuid,nodev");
        assert_eq!(m[0].super_options, "rw,errors=continue");
    }
}
