//! Minimal path patterns: `*` matches any run of characters except `/`, `?` one character
//! except `/`; everything else matches itself.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the last `*` (linear in practice).
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some('?') if t[ti] != '/' => {
                pi += 1;
                ti += 1;
            }
            Some(c) if *c == t[ti] && *c != '*' && *c != '?' => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) if t[st] != '/' => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                _ => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns() {
        assert!(matches("/dev/vd*", "/dev/vdb"));
        assert!(matches("/dev/vd*", "/dev/vd"));
        assert!(!matches("/dev/vd*", "/dev/vd/../mem"));
        assert!(!matches("/dev/vd*", "/dev/mem"));
        assert!(matches("/dev/nvme?n*", "/dev/nvme0n1"));
        assert!(!matches("/images/*", "/images/a/b"));
        assert!(matches("/images/*.img", "/images/a.img"));
        assert!(!matches("/dev/vdb", "/dev/vdbb"));
        assert!(matches("*", "abc"));
        assert!(!matches("*", "a/b"));
        // `?` is one character, never a `/`.
        assert!(matches("/dev/vd?", "/dev/vdb"));
        assert!(!matches("/dev/vd?b", "/dev/vd/b"));
        assert!(!matches("/images?a.img", "/images/a.img"));
    }
}
