//! The crate's error type.

use std::fmt;

use crate::envelope::JobId;
use crate::name::NameKind;

/// Why an operation of a [`Client`](crate::Client), a
/// [`Worker`](crate::Worker) or a backend did not happen.
///
/// Messages never carry a connection string or a credential: a backend's
/// errors are reduced to the engine's own message.
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::{validate_name, Error, NameKind};
///
/// let e = validate_name(NameKind::Queue, "jobs; DROP TABLE x").unwrap_err();
/// assert!(matches!(e, Error::InvalidName { kind: NameKind::Queue, .. }));
/// assert!(e.to_string().starts_with("invalid queue name"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A queue, handler or job name, or an idempotency key, was refused
    /// before it reached the engine.
    InvalidName {
        /// What the name names.
        kind: NameKind,
        /// The refused name, escaped and shortened.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A payload is larger than the limit.
    PayloadTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Arguments or an output could not be encoded or decoded.
    Serde(String),
    /// No job has this id (it never existed, or its record expired).
    NotFound(JobId),
    /// A setting is out of range.
    Config(String),
    /// The engine refused or failed an operation; the text is the engine's
    /// message, without connection details.
    Backend(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { kind, name, reason } => {
                write!(f, "invalid {} \"{name}\": {reason}", kind.as_str())
            }
            Error::PayloadTooLarge { size, limit } => {
                write!(
                    f,
                    "payload of {size} bytes is over the limit of {limit} bytes"
                )
            }
            Error::Serde(m) => write!(f, "serialization failed: {m}"),
            Error::NotFound(id) => write!(f, "no job {id} (unknown, or its record expired)"),
            Error::Config(m) => write!(f, "invalid setting: {m}"),
            Error::Backend(m) => write!(f, "queue backend: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Serde(e.to_string())
    }
}
