//! The `--redis` URL: `redis://[[USER]:PASSWORD@]IP:PORT[/PREFIX]`.
//!
//! # Rules
//!
//! - The host is an IP address: resolving a name would block the loop (a resolver is a rejected
//!   alternative: the address of a backplane does not change while an instance runs).
//! - The user and password are percent-decoded (`%40` for `@`), as in any URL.
//! - **The password never appears in a log or an error**: [`Auth`]'s `Debug` hides it, and errors name
//!   only the part after `@`.

use std::fmt;
use std::net::SocketAddr;

/// Credentials for Redis's `AUTH` (a user with ACLs since Redis 6, or only the `requirepass` password).
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    pub user: Option<String>,
    pub password: String,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").field("user", &self.user).field("password", &"<hidden>").finish()
    }
}

/// Where the backplane is and what its keys are called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The keys' prefix (default `mio-sse`).
    pub prefix: String,
    pub auth: Option<Auth>,
}

const SHAPE: &str = "--redis must be redis://[[USER]:PASSWORD@]IP:PORT[/PREFIX]";

/// Parses a `--redis` URL.
pub fn parse(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("redis://").ok_or(SHAPE)?;
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    };
    let addr: SocketAddr = host.parse().map_err(|_| format!("--redis: {host} is not IP:PORT"))?;
    let auth = match userinfo {
        None => None,
        Some(userinfo) => {
            let (user, password) = userinfo.split_once(':').ok_or(SHAPE)?;
            let user = decode(user).ok_or("--redis: the user is not valid percent-encoded UTF-8")?;
            let password =
                decode(password).ok_or("--redis: the password is not valid percent-encoded UTF-8")?;
            Some(Auth { user: (!user.is_empty()).then_some(user), password })
        }
    };
    let prefix = if prefix.is_empty() { "mio-sse" } else { prefix };
    Ok(Target { addr, prefix: prefix.to_string(), auth })
}

/// Percent-decoding (`%XX`); `None` for a bad escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_keep_their_shape() {
        let t = parse("redis://127.0.0.1:6379").expect("valid");
        assert_eq!((t.addr.port(), t.prefix.as_str(), t.auth), (6379, "mio-sse", None));
        assert_eq!(parse("redis://127.0.0.1:6379/app").expect("valid").prefix, "app");
        assert_eq!(parse("redis://127.0.0.1:6379/").expect("valid").prefix, "mio-sse");
        assert!(parse("http://127.0.0.1:6379").is_err());
        assert!(parse("redis://localhost:6379").is_err());
    }

    #[test]
    fn a_password_alone_or_with_a_user() {
        let t = parse("redis://:s%40cret@127.0.0.1:1/p").expect("valid");
        assert_eq!(t.auth, Some(Auth { user: None, password: "s@cret".into() }));
        let t = parse("redis://bob:pw@[::1]:1").expect("valid");
        assert_eq!(t.auth, Some(Auth { user: Some("bob".into()), password: "pw".into() }));
    }

    #[test]
    fn the_password_is_never_shown() {
        let t = parse("redis://bob:hunter2@127.0.0.1:1").expect("valid");
        assert!(!format!("{t:?}").contains("hunter2"));
        let e = parse("redis://bob:hunter2@nowhere:1").expect_err("not an IP");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("redis://hunter2@127.0.0.1:1").expect_err("no colon");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("redis://:hunter2%zz@127.0.0.1:1").expect_err("bad escape");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
