//! nginx's tokens: words, quoted strings, `;`, `{`, `}`, with `#` comments
//! skipped. The rules follow nginx's own reader (`ngx_conf_read_token`):
//! `$variables` and `${var}` stay text, a backslash escapes the next
//! character, and a `}` or quote inside a word is part of the word.

use std::path::Path;

use super::NginxError;

/// One token (paired with the line it starts on by [`tokenize`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A word or quoted string, unescaped.
    Word(String),
    /// `;`
    Semi,
    /// `{`
    Open,
    /// `}`
    Close,
}

/// Splits `text` into tokens; errors name `file` and the line.
pub fn tokenize(text: &str, file: &Path) -> Result<Vec<(Tok, usize)>, NginxError> {
    let err = |line: usize, message: String| NginxError::At {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                // A comment runs to the end of the line; the newline is counted above.
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' => out.push((Tok::Semi, line)),
            '{' => out.push((Tok::Open, line)),
            '}' => out.push((Tok::Close, line)),
            '"' | '\'' => {
                let start = line;
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(err(start, "unterminated quoted string".to_string()));
                        }
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            None => {
                                return Err(err(start, "unterminated quoted string".to_string()))
                            }
                            Some(e) => escape(&mut word, e, &mut line),
                        },
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            word.push(ch);
                        }
                    }
                }
                // nginx wants a separator after a closing quote (`")` closes an `if`).
                if let Some(&next) = chars.peek() {
                    if !(next.is_whitespace() || matches!(next, ';' | '{' | ')')) {
                        return Err(err(
                            line,
                            format!("unexpected \"{next}\" after a quoted string"),
                        ));
                    }
                }
                out.push((Tok::Word(word), start));
            }
            first => {
                let start = line;
                let mut word = String::new();
                let mut ch = first;
                loop {
                    if ch == '\\' {
                        match chars.next() {
                            Some(e) => escape(&mut word, e, &mut line),
                            None => word.push('\\'),
                        }
                    } else {
                        word.push(ch);
                    }
                    match chars.peek() {
                        // `${name}`: the brace belongs to the variable.
                        Some('{') if ch == '$' => {}
                        Some(&n) if n.is_whitespace() || n == ';' || n == '{' => break,
                        None => break,
                        Some(_) => {}
                    }
                    match chars.next() {
                        Some(n) => ch = n,
                        None => break,
                    }
                }
                out.push((Tok::Word(word), start));
            }
        }
    }
    Ok(out)
}

/// Appends escaped character `e` as nginx unescapes it (`\"`, `\'`, `\\`,
/// `\t`, `\r`, `\n`); any other escape keeps its backslash (regexes need it).
fn escape(word: &mut String, e: char, line: &mut usize) {
    match e {
        '"' | '\'' | '\\' => word.push(e),
        't' => word.push('\t'),
        'r' => word.push('\r'),
        'n' => word.push('\n'),
        other => {
            if other == '\n' {
                *line += 1;
            }
            word.push('\\');
            word.push(other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::parse::parse_str;

    fn p(text: &str) -> Vec<crate::nginx::parse::Directive> {
        parse_str(text, Path::new("t.conf")).unwrap()
    }

    #[test]
    fn variables_regexes_and_escapes_stay_text() {
        let d = p("location ~ \\.php$ { return 200 \"${host}x\"; set $a ${b}c; }");
        assert_eq!(d[0].args, ["~", "\\.php$"]);
        assert_eq!(d[0].children()[0].args, ["200", "${host}x"]);
        assert_eq!(d[0].children()[1].args, ["$a", "${b}c"]);
        let d = p("if ($http_accept = \"text/event-stream\") { }");
        assert_eq!(d[0].args, ["($http_accept", "=", "text/event-stream", ")"]);
        let d = p("add_header X \"a\\tb\\\"\";");
        assert_eq!(d[0].args, ["X", "a\tb\""]);
    }

    #[test]
    fn multiline_quoted_counts_lines() {
        let d = p("a \"x\ny\";\nb;");
        assert_eq!(d[0].args, ["x\ny"]);
        assert_eq!(d[1].line, 3);
    }

    #[test]
    fn tokens_and_lines() {
        let toks = tokenize("a 'b c';\n# x\n{ }", Path::new("t.conf")).unwrap();
        let want = [
            (Tok::Word("a".into()), 1),
            (Tok::Word("b c".into()), 1),
            (Tok::Semi, 1),
            (Tok::Open, 3),
            (Tok::Close, 3),
        ];
        assert_eq!(toks, want);
    }
}
