//! Validation of namespaces and keys according to LDK's `KVStore` rules.

use lightning::io;
use lightning::util::persist::{KVSTORE_NAMESPACE_KEY_ALPHABET, KVSTORE_NAMESPACE_KEY_MAX_LEN};

/// Returns whether `s` only uses characters from [`KVSTORE_NAMESPACE_KEY_ALPHABET`] and is at
/// most [`KVSTORE_NAMESPACE_KEY_MAX_LEN`] bytes long (the alphabet is ASCII, so bytes and
/// characters coincide for valid strings).
fn is_valid_kvstore_str(s: &str) -> bool {
    s.len() <= KVSTORE_NAMESPACE_KEY_MAX_LEN
        && s.chars()
            .all(|c| KVSTORE_NAMESPACE_KEY_ALPHABET.contains(c))
}

/// Renders a possibly hostile string for an error message: escaped and truncated.
fn display(s: &str) -> String {
    const MAX_SHOWN: usize = KVSTORE_NAMESPACE_KEY_MAX_LEN + 8;
    if s.chars().count() > MAX_SHOWN {
        let shown: String = s.chars().take(MAX_SHOWN).collect();
        format!("{shown:?}... ({} bytes)", s.len())
    } else {
        format!("{s:?}")
    }
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn check_str(what: &str, s: &str, op: &str) -> Result<(), io::Error> {
    if is_valid_kvstore_str(s) {
        Ok(())
    } else {
        Err(invalid_input(format!(
            "cannot {op}: invalid {what} {}: must be at most {KVSTORE_NAMESPACE_KEY_MAX_LEN} \
             characters from [A-Za-z0-9_-]",
            display(s)
        )))
    }
}

/// Checks `primary_namespace` and `secondary_namespace` (as used by `list`).
///
/// Returns an [`io::ErrorKind::InvalidInput`] error describing the problem if they are invalid.
pub(crate) fn check_namespaces(
    primary_namespace: &str,
    secondary_namespace: &str,
    op: &str,
) -> Result<(), io::Error> {
    check_str("primary namespace", primary_namespace, op)?;
    check_str("secondary namespace", secondary_namespace, op)?;
    if primary_namespace.is_empty() && !secondary_namespace.is_empty() {
        return Err(invalid_input(format!(
            "cannot {op}: secondary namespace {} given with an empty primary namespace",
            display(secondary_namespace)
        )));
    }
    Ok(())
}

/// Checks namespaces and `key` (as used by `read`, `write` and `remove`).
///
/// Returns an [`io::ErrorKind::InvalidInput`] error describing the problem if any is invalid.
pub(crate) fn check_namespaces_and_key(
    primary_namespace: &str,
    secondary_namespace: &str,
    key: &str,
    op: &str,
) -> Result<(), io::Error> {
    check_namespaces(primary_namespace, secondary_namespace, op)?;
    if key.is_empty() {
        return Err(invalid_input(format!(
            "cannot {op}: key in {}/{} may not be empty",
            display(primary_namespace),
            display(secondary_namespace)
        )));
    }
    check_str("key", key, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_combinations() {
        assert!(check_namespaces_and_key("", "", "manager", "read").is_ok());
        assert!(check_namespaces_and_key("monitors", "", "abc_0-1", "read").is_ok());
        assert!(check_namespaces_and_key("monitor_updates", "deadbeef", "42", "read").is_ok());
        assert!(check_namespaces("", "", "list").is_ok());
        let max = "a".repeat(KVSTORE_NAMESPACE_KEY_MAX_LEN);
        assert!(check_namespaces_and_key(&max, &max, &max, "write").is_ok());
    }

    #[test]
    fn rejects_invalid_combinations() {
        let too_long = "a".repeat(KVSTORE_NAMESPACE_KEY_MAX_LEN + 1);
        let cases: [(&str, &str, &str); 8] = [
            ("", "", ""),
            ("", "sub", "key"),
            ("ns", "", "a/b"),
            ("ns", "", "caf\u{e9}"),
            ("ns/x", "", "key"),
            ("ns", "s s", "key"),
            ("ns", "", &too_long),
            (&too_long, "", "key"),
        ];
        for (p, s, k) in cases {
            let err = check_namespaces_and_key(p, s, k, "write")
                .expect_err(&format!("{p:?}/{s:?}/{k:?} must be rejected"));
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{p:?}/{s:?}/{k:?}");
        }
        assert!(check_namespaces("", "sub", "list").is_err());
        assert!(check_namespaces("a.b", "", "list").is_err());
    }

    #[test]
    fn error_messages_are_escaped_and_truncated() {
        let long = "\n".repeat(10_000);
        let err = check_namespaces_and_key("ns", "", &long, "write").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("invalid key"), "{msg}");
        assert!(msg.contains("10000 bytes"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
