//! Validation of the names that reach an engine: queue, handler and job
//! names, and idempotency keys.
//!
//! Names are checked before any statement is built; every statement takes
//! them as parameters anyway, so a name is never part of SQL text or of a
//! Redis key pattern. A refused name comes back as [`Error::InvalidName`].

use crate::error::Error;

/// The longest queue, handler or job name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// The longest idempotency key, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// What a name names, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A queue's name.
    Queue,
    /// A handler's name ([`Handler::NAME`](crate::Handler::NAME)).
    Handler,
    /// A job's name, for its record.
    Job,
    /// An idempotency key.
    IdempotencyKey,
}

impl NameKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NameKind::Queue => "queue name",
            NameKind::Handler => "handler name",
            NameKind::Job => "job name",
            NameKind::IdempotencyKey => "idempotency key",
        }
    }
}

/// Checks a queue, handler or job name: 1 to [`MAX_NAME_LEN`] bytes of ASCII
/// letters, digits, `_`, `-`, `.` and `:`.
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::{validate_name, NameKind};
///
/// assert!(validate_name(NameKind::Queue, "emails.v2").is_ok());
/// assert!(validate_name(NameKind::Queue, "x'; DROP TABLE jobs; --").is_err());
/// ```
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(
            kind,
            name,
            format!("must be 1 to {MAX_NAME_LEN} bytes long"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        return Err(invalid(
            kind,
            name,
            format!("has {bad:?}; only ASCII letters, digits, '_', '-', '.' and ':' are allowed"),
        ));
    }
    Ok(())
}

/// Checks an idempotency key: 1 to [`MAX_KEY_LEN`] bytes, no control
/// characters.
pub fn validate_key(key: &str) -> Result<(), Error> {
    let kind = NameKind::IdempotencyKey;
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(invalid(
            kind,
            key,
            format!("must be 1 to {MAX_KEY_LEN} bytes long"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid(kind, key, "has a control character".to_string()));
    }
    Ok(())
}

fn invalid(kind: NameKind, name: &str, reason: String) -> Error {
    Error::InvalidName {
        kind,
        name: shown(name),
        reason,
    }
}

/// The refused name as the error shows it: escaped, and cut to 64 chars.
fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(64).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for n in [
            "a",
            "emails",
            "send_email.v2",
            "tenant-1:reports",
            &"x".repeat(128),
        ] {
            validate_name(NameKind::Queue, n).unwrap();
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let long = "x".repeat(129);
        for n in [
            "",
            "a b",
            "q'; DROP TABLE wpxt_jobs;--",
            "jobs:*",
            "a\0b",
            "ä",
            "q\n",
            &long,
        ] {
            let e = validate_name(NameKind::Handler, n).unwrap_err();
            assert!(e.to_string().contains("handler name"), "{e}");
        }
    }

    #[test]
    fn refuses_bad_keys() {
        validate_key("order-42 / retry").unwrap();
        assert!(validate_key("").is_err());
        assert!(validate_key("a\u{7}").is_err());
        assert!(validate_key(&"k".repeat(257)).is_err());
    }
}
