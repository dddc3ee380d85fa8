//! `ssegate convert-nginx`: reads an nginx config (with its includes) and
//! writes the equivalent ssegate YAML, plus a [`Note`] for everything it
//! could not carry over.
//!
//! The stages are `parse` (nginx syntax into directive trees, includes
//! expanded), `translate` (directives into listeners, upstreams and routes,
//! with nginx's inheritance from `http` to `server` to `location`) and
//! `emit` (the YAML text). What nginx does that ssegate already does
//! (unbuffered proxying, forwarding headers, HTTP/1.1 upstreams, WebSocket
//! upgrades) is dropped without a note; what changes behaviour gets one.
//! Access control that cannot be carried over fails closed: the route is
//! commented out and its path is routed to an upstream that cannot answer.

mod emit;
mod glob;
mod lex;
mod listen;
mod location;
mod parse;
mod routes;
mod scope;
mod server;
mod translate;
mod upstreams;
mod values;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

/// The result of a conversion: the YAML and what did not translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The ssegate config, ready for `ssegate check`.
    pub yaml: String,
    /// Everything not translated, in file order (also listed in the YAML).
    pub notes: Vec<Note>,
}

/// One thing that was not translated (or translated with a caveat).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// The nginx file, as opened (includes joined to the main file's directory).
    pub file: PathBuf,
    /// Line of the directive, 1-based.
    pub line: usize,
    /// What was not translated and why, starting with the directive.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why a conversion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxError {
    /// The main file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A syntax error, an unreadable include or an invalid directive.
    At {
        /// The file.
        file: PathBuf,
        /// Line, 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Nothing usable was left (no listener or no route); the notes say why.
    Untranslatable {
        /// What is missing.
        message: String,
        /// The notes gathered up to that point.
        notes: Vec<Note>,
    },
}

impl NginxError {
    /// The notes gathered before the conversion gave up (empty for syntax errors).
    pub fn notes(&self) -> &[Note] {
        match self {
            NginxError::Untranslatable { notes, .. } => notes,
            _ => &[],
        }
    }
}

impl fmt::Display for NginxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NginxError::Read { file, message } => write!(f, "{}: {message}", file.display()),
            NginxError::At {
                file,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", file.display()),
            NginxError::Untranslatable { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for NginxError {}

/// Converts the nginx config at `path` (includes are followed relative to
/// its directory, as nginx does with its prefix).
pub fn convert(path: &Path) -> Result<Conversion, NginxError> {
    let tree = parse::load(path)?;
    let base = base_dir(path);
    let plan = translate::translate(&tree, &base)?;
    let source = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let yaml = emit::emit(&plan, &source, &base);
    Ok(Conversion {
        yaml,
        notes: plan.notes,
    })
}

/// The directory relative includes and paths are resolved against.
fn base_dir(path: &Path) -> PathBuf {
    path.parent().map_or_else(PathBuf::new, Path::to_path_buf)
}
