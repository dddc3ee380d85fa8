//! nginx config syntax: the tokens of `lex` read into [`Directive`] trees,
//! with `include` expanded in place (globs too, relative to the main file's
//! directory as nginx resolves them against its prefix).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::lex::{tokenize, Tok};
use super::{base_dir, glob, NginxError};
use crate::files;

/// Deepest include nesting accepted (nginx has no limit, but a cycle would never end).
const MAX_INCLUDE_DEPTH: usize = 32;
/// Deepest block nesting accepted, so that a hostile file cannot exhaust the stack.
const MAX_BLOCK_DEPTH: usize = 64;

/// One directive: `name args;` or `name args { children }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Directive name, e.g. `proxy_pass`.
    pub name: String,
    /// Arguments with quotes and escapes resolved.
    pub args: Vec<String>,
    /// File it was read from.
    pub file: Rc<Path>,
    /// Line of its name, 1-based.
    pub line: usize,
    /// Children of a block directive; `None` for `name args;`.
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// Argument `i`, if present.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    /// The children of a block (empty for a simple directive).
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or_default()
    }

    /// The directive as written (without block or `;`) on one line, for messages.
    pub fn text(&self) -> String {
        let mut s = one_line(&self.name);
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains(char::is_whitespace) {
                s.push('"');
                s.push_str(&one_line(&a.replace('"', "\\\"")));
                s.push('"');
            } else {
                s.push_str(&one_line(a));
            }
        }
        s
    }
}

/// `text` with control characters escaped (`\n`), so that a message stays
/// one line on stderr and inside a YAML comment.
pub fn one_line(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => s.extend(c.escape_default()),
            c => s.push(c),
        }
    }
    s
}

/// Reads and parses the config at `path` and every file it includes.
pub fn load(path: &Path) -> Result<Vec<Directive>, NginxError> {
    let text = files::read_text(path, files::MAX_CONFIG).map_err(|e| NginxError::Read {
        file: path.to_path_buf(),
        message: format!("cannot read the nginx config: {e}"),
    })?;
    let mut loader = Loader {
        base: base_dir(path),
        stack: vec![canonical(path)],
        depth: 0,
    };
    loader.parse_file(&text, Rc::from(path))
}

/// Parses `text` as the file `file` (includes are resolved against its directory).
#[cfg(test)]
pub fn parse_str(text: &str, file: &Path) -> Result<Vec<Directive>, NginxError> {
    let mut loader = Loader {
        base: base_dir(file),
        stack: vec![canonical(file)],
        depth: 0,
    };
    loader.parse_file(text, Rc::from(file))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Parser state shared across included files.
struct Loader {
    /// Directory relative includes are resolved against (the main file's).
    base: PathBuf,
    /// Files being read, outermost first, to refuse include cycles.
    stack: Vec<PathBuf>,
    /// Blocks open now, across includes.
    depth: usize,
}

impl Loader {
    fn parse_file(&mut self, text: &str, file: Rc<Path>) -> Result<Vec<Directive>, NginxError> {
        let tokens = tokenize(text, &file)?;
        let mut it = tokens.into_iter();
        let last_line = text.lines().count().max(1);
        self.block(&mut it, &file, None, last_line)
    }

    /// Reads directives up to the `}` closing the block opened on line
    /// `open` (or to the end of the file when `open` is `None`).
    fn block(
        &mut self,
        it: &mut std::vec::IntoIter<(Tok, usize)>,
        file: &Rc<Path>,
        open: Option<usize>,
        last_line: usize,
    ) -> Result<Vec<Directive>, NginxError> {
        let err = |line: usize, message: &str| NginxError::At {
            file: file.to_path_buf(),
            line,
            message: message.to_string(),
        };
        let mut out = Vec::new();
        loop {
            let (name, line) = match it.next() {
                None => match open {
                    Some(open) => {
                        return Err(err(
                            last_line,
                            &format!("unexpected end of file, expecting \"}}\" to close the block opened on line {open}"),
                        ))
                    }
                    None => return Ok(out),
                },
                Some((Tok::Close, line)) => match open {
                    Some(_) => return Ok(out),
                    None => return Err(err(line, "unexpected \"}\"")),
                },
                Some((Tok::Semi, line)) => return Err(err(line, "unexpected \";\"")),
                Some((Tok::Open, line)) => return Err(err(line, "unexpected \"{\"")),
                Some((Tok::Word(w), line)) => (w, line),
            };
            let mut args = Vec::new();
            let block = loop {
                match it.next() {
                    Some((Tok::Word(w), _)) => args.push(w),
                    Some((Tok::Semi, _)) => break None,
                    Some((Tok::Open, l)) => {
                        if self.depth >= MAX_BLOCK_DEPTH {
                            let why = format!("blocks nested more than {MAX_BLOCK_DEPTH} deep");
                            return Err(err(l, &why));
                        }
                        self.depth += 1;
                        let children = self.block(it, file, Some(l), last_line);
                        self.depth -= 1;
                        break Some(children?);
                    }
                    Some((Tok::Close, l)) => {
                        return Err(err(
                            l,
                            &format!("unexpected \"}}\": \"{name}\" needs a \";\""),
                        ))
                    }
                    None => {
                        return Err(err(
                            last_line,
                            &format!(
                            "unexpected end of file, expecting \";\" or \"}}\" after \"{name}\""
                        ),
                        ))
                    }
                }
            };
            let d = Directive {
                name,
                args,
                file: Rc::clone(file),
                line,
                block,
            };
            if d.name == "include" && d.block.is_none() {
                out.extend(self.include(&d)?);
            } else {
                out.push(d);
            }
        }
    }

    /// Expands `include PATTERN;` (glob patterns allowed, like nginx).
    fn include(&mut self, d: &Directive) -> Result<Vec<Directive>, NginxError> {
        let err = |message: String| NginxError::At {
            file: d.file.to_path_buf(),
            line: d.line,
            message,
        };
        let [pattern] = d.args.as_slice() else {
            return Err(err("include takes exactly one file or pattern".to_string()));
        };
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "include {pattern}: includes nested more than {MAX_INCLUDE_DEPTH} deep"
            )));
        }
        let full = self.base.join(pattern);
        let files = if glob::has_wildcard(pattern) {
            glob::glob(&full).map_err(|e| err(format!("include {pattern}: {e}")))?
        } else {
            vec![full]
        };
        let mut out = Vec::new();
        for f in files {
            let text = files::read_text(&f, files::MAX_CONFIG).map_err(|e| {
                err(format!(
                    "include {pattern}: cannot read {}: {e}",
                    f.display()
                ))
            })?;
            let canon = canonical(&f);
            if self.stack.contains(&canon) {
                return Err(err(format!(
                    "include {pattern}: {} includes itself",
                    f.display()
                )));
            }
            self.stack.push(canon);
            let parsed = self.parse_file(&text, Rc::from(f.as_path()));
            self.stack.pop();
            out.extend(parsed?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<Directive>, NginxError> {
        parse_str(text, Path::new("t.conf"))
    }

    fn err(text: &str) -> String {
        match p(text) {
            Err(e) => e.to_string(),
            Ok(d) => panic!("parsed: {d:?}"),
        }
    }

    #[test]
    fn words_quotes_comments_blocks() {
        let d =
            p("# top\nhttp {\n  server { listen 80; # c\n server_name \"a b\" 'c\\'d';\n }\n}\n")
                .unwrap();
        assert_eq!(d.len(), 1);
        let http = &d[0];
        assert_eq!((http.name.as_str(), http.line), ("http", 2));
        let server = &http.children()[0];
        assert_eq!(server.line, 3);
        let listen = &server.children()[0];
        assert_eq!((listen.text(), listen.line), ("listen 80".to_string(), 3));
        let names = &server.children()[1];
        assert_eq!(names.args, ["a b", "c'd"]);
        assert_eq!(names.line, 4);
        assert_eq!(names.text(), "server_name \"a b\" c'd");
    }

    #[test]
    fn word_ends_at_semicolon_or_brace() {
        let d = p("a b;c{d;}").unwrap();
        assert_eq!(d[0].args, ["b"]);
        assert_eq!(d[1].name, "c");
        assert_eq!(d[1].children()[0].name, "d");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        assert_eq!(err("a;\n}"), "t.conf:2: unexpected \"}\"");
        assert_eq!(err("a;\n;"), "t.conf:2: unexpected \";\"");
        assert_eq!(err("{"), "t.conf:1: unexpected \"{\"");
        assert_eq!(
            err("http {\n a;\n"),
            "t.conf:2: unexpected end of file, expecting \"}\" to close the block opened on line 1"
        );
        assert_eq!(
            err("a b"),
            "t.conf:1: unexpected end of file, expecting \";\" or \"}\" after \"a\""
        );
        assert_eq!(
            err("x {\n a b }"),
            "t.conf:2: unexpected \"}\": \"a\" needs a \";\""
        );
        assert_eq!(err("a \"b;\n"), "t.conf:1: unterminated quoted string");
        assert_eq!(
            err("a \"b\"c;"),
            "t.conf:1: unexpected \"c\" after a quoted string"
        );
        let deep = format!("{}{}", "a {\n".repeat(70), "}".repeat(70));
        assert_eq!(err(&deep), "t.conf:65: blocks nested more than 64 deep");
    }

    #[test]
    fn includes_follow_globs_in_order_relative_to_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("conf.d")).unwrap();
        std::fs::create_dir_all(root.join("snippets")).unwrap();
        std::fs::write(root.join("conf.d/b.conf"), "b;\n").unwrap();
        // Relative to the main file's directory even from a nested include, as nginx does.
        std::fs::write(root.join("conf.d/a.conf"), "a;\ninclude snippets/s.conf;\n").unwrap();
        std::fs::write(root.join("conf.d/.hidden.conf"), "hidden;\n").unwrap();
        std::fs::write(root.join("conf.d/c.txt"), "c;\n").unwrap();
        std::fs::write(root.join("snippets/s.conf"), "\n\ns;\n").unwrap();
        let main = root.join("nginx.conf");
        std::fs::write(
            &main,
            "http {\n include conf.d/*.conf;\n include none/*.conf;\n z;\n}\n",
        )
        .unwrap();
        let d = load(&main).unwrap();
        let names: Vec<(&str, usize, PathBuf)> = d[0]
            .children()
            .iter()
            .map(|c| {
                let rel = c.file.strip_prefix(root).unwrap().to_path_buf();
                (c.name.as_str(), c.line, rel)
            })
            .collect();
        assert_eq!(
            names,
            [
                ("a", 1, PathBuf::from("conf.d/a.conf")),
                ("s", 3, PathBuf::from("snippets/s.conf")),
                ("b", 1, PathBuf::from("conf.d/b.conf")),
                ("z", 4, PathBuf::from("nginx.conf")),
            ]
        );
    }

    #[test]
    fn include_errors_name_the_including_line() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("nginx.conf");
        std::fs::write(&main, "a;\ninclude missing.conf;\n").unwrap();
        let e = load(&main).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:2: include missing.conf: cannot read ",
                main.display()
            )),
            "{e}"
        );
        std::fs::write(dir.path().join("bad.conf"), "x {\n").unwrap();
        std::fs::write(&main, "include bad.conf;\n").unwrap();
        let e = load(&main).unwrap_err().to_string();
        assert!(e.ends_with("bad.conf:1: unexpected end of file, expecting \"}\" to close the block opened on line 1"), "{e}");
        std::fs::write(&main, "include nginx.conf;\n").unwrap();
        let e = load(&main).unwrap_err().to_string();
        assert!(e.contains("includes itself"), "{e}");
        std::fs::write(&main, "include a b;\n").unwrap();
        assert!(load(&main)
            .unwrap_err()
            .to_string()
            .ends_with(":1: include takes exactly one file or pattern"));
        let e = load(&dir.path().join("nope.conf")).unwrap_err();
        assert!(matches!(e, NginxError::Read { .. }), "{e:?}");
        if Path::new("/dev/zero").exists() {
            std::fs::write(&main, "a;\ninclude /dev/zero;\n").unwrap();
            let e = load(&main).unwrap_err().to_string();
            assert!(
                e.ends_with(":2: include /dev/zero: cannot read /dev/zero: larger than 16 MiB"),
                "{e}"
            );
        }
    }
}
