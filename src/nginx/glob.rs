//! The glob patterns of `include` (`conf.d/*.conf`, `sites-enabled/*`):
//! `*`, `?` and `[...]` in any path component, matched like glob(3) as nginx
//! calls it: sorted results, no match is no error, and a wildcard does not
//! match a leading dot.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Whether an include argument is a pattern rather than a file name.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The files matching `pattern`, sorted; directories named by a wildcard are skipped.
pub fn glob(pattern: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let wild = matches!(comp, Component::Normal(_)) && has_wildcard(&part);
        if !wild {
            for f in &mut found {
                f.push(comp);
            }
            continue;
        }
        let pat: Vec<char> = part.chars().collect();
        let mut next = Vec::new();
        for dir in &found {
            let list = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let entries = match std::fs::read_dir(list) {
                Ok(e) => e,
                // A directory that does not exist simply matches nothing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut names = Vec::new();
            for entry in entries {
                let name = entry?.file_name().to_string_lossy().into_owned();
                let hidden_ok = pat.first() == Some(&'.') || !name.starts_with('.');
                let chars: Vec<char> = name.chars().collect();
                if hidden_ok && matches(&pat, &chars) {
                    names.push(name);
                }
            }
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|f| !f.is_dir());
    found.sort();
    Ok(found)
}

/// Whether `name` matches the component pattern `pat` (`*`, `?`, `[a-z]`, `[!x]`).
fn matches(pat: &[char], name: &[char]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => {
            (0..=name.len()).any(|i| name.get(i..).is_some_and(|n| matches(rest, n)))
        }
        Some(('?', rest)) => name.split_first().is_some_and(|(_, n)| matches(rest, n)),
        Some(('[', rest)) => match (class(rest), name.split_first()) {
            (Some((negate, members, after)), Some((&c, n))) => {
                in_class(members, c) != negate && matches(after, n)
            }
            // An unclosed `[` is a plain character, as in glob(3).
            (None, Some(('[', n))) => matches(rest, n),
            _ => false,
        },
        Some((&p, rest)) => name
            .split_first()
            .is_some_and(|(&c, n)| c == p && matches(rest, n)),
    }
}

/// Splits a bracket class after its `[` into (negated, members, pattern
/// after the `]`), or `None` when it is not closed.
fn class(pat: &[char]) -> Option<(bool, &[char], &[char])> {
    let (negate, body) = match pat.split_first() {
        Some(('!' | '^', rest)) => (true, rest),
        _ => (false, pat),
    };
    // A `]` right after the `[` (or `[!`) is a member, not the end.
    let end = body.iter().skip(1).position(|&c| c == ']')? + 1;
    Some((negate, body.get(..end)?, body.get(end + 1..)?))
}

/// Whether `c` is one of the class `members` (single characters or `a-z` ranges).
fn in_class(members: &[char], c: char) -> bool {
    let mut i = 0;
    while let Some(&m) = members.get(i) {
        if let (Some('-'), Some(&hi)) = (members.get(i + 1), members.get(i + 2)) {
            if (m..=hi).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if m == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        matches(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn wildcards() {
        assert!(m("*.conf", "a.conf"));
        assert!(m("*.conf", ".conf"));
        assert!(!m("*.conf", "a.conf.bak"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[ab]x", "bx"));
        assert!(!m("[!ab]x", "bx"));
        assert!(m("[a-c]*", "cat"));
        assert!(!m("[a-c]*", "dog"));
        assert!(m("[]]", "]"));
        assert!(m("a[", "a["));
        assert!(m("*", ""));
        assert!(has_wildcard("conf.d/*.conf"));
        assert!(!has_wildcard("mime.types"));
    }

    #[test]
    fn globs_directories_sorted_skipping_hidden_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "sites/b.conf",
            "sites/a.conf",
            "sites/.x.conf",
            "other/c.conf",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        std::fs::create_dir_all(root.join("sites/d.conf")).unwrap();
        let got = glob(&root.join("*/*.conf")).unwrap();
        let rel: Vec<_> = got.iter().map(|p| p.strip_prefix(root).unwrap()).collect();
        assert_eq!(
            rel,
            [
                Path::new("other/c.conf"),
                Path::new("sites/a.conf"),
                Path::new("sites/b.conf")
            ]
        );
        assert!(glob(&root.join("missing/*.conf")).unwrap().is_empty());
    }
}
