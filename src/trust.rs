//! Trust: who may talk to this server at all, and who may publish. Pure: a request and the flags in, a
//! verdict out.
//!
//! Rules:
//! - Trust is never implied by where a request seems to come from alone. A loopback peer may be a
//!   browser on this machine running any web page, or a reverse proxy relaying anyone.
//! - `Host`: while the server listens on a loopback address, a request must name a loopback host
//!   (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`) or one allowed by `--allow-host`, else `421`.
//!   A page whose DNS name was rebound to 127.0.0.1 sends its own name, so it can neither read the
//!   streams or the metrics nor publish (DNS rebinding). Without a `Host` (HTTP/1.0) there is no name to
//!   check, and no browser sends such a request.
//! - Publishing: with `--publish-token`, exactly `Authorization: Bearer TOKEN` from any peer (compared in
//!   constant time); without it, loopback peers only, and then a request that carries an `Origin` (a
//!   browser's) must come from the server's own origin (the demo page's form) or one listed by
//!   `--cors-origin` (`*` does not count: it lets any page read, not publish). A "simple" cross-site
//!   `POST` is sent by the browser without a preflight, so this check is what stops any web page from
//!   publishing through a browser on this machine.

use std::net::IpAddr;

use crate::config::Config;
use crate::http::refusal::Refusal;

/// Whether a request naming `host` is served (see the module's rules).
pub fn host_allowed(config: &Config, host: Option<&str>) -> bool {
    if !config.listen.ip().is_loopback() {
        return true;
    }
    let Some(host) = host else { return true };
    let name = strip_port(host);
    is_loopback_name(name) || config.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
}

/// Whether this request may publish; the refusal says why not.
pub fn may_publish(
    config: &Config,
    authorization: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
    peer_is_loopback: bool,
) -> Result<(), Refusal> {
    if let Some(token) = &config.publish_token {
        let Some(given) = authorization else { return Err(Refusal::Unauthorized) };
        // Without the `Bearer ` prefix nothing matches (the token is never empty: config checks).
        let given = given.strip_prefix("Bearer ").map_or(&[][..], |t| t.trim().as_bytes());
        return match constant_time_eq(given, token.as_bytes()) {
            true => Ok(()),
            false => Err(Refusal::Forbidden("wrong publish token")),
        };
    }
    if !peer_is_loopback {
        return Err(Refusal::Forbidden("only loopback peers may publish (see --publish-token)"));
    }
    match origin {
        None => Ok(()),
        Some(origin) if is_own_origin(origin, host) || config.cors_origins.iter().any(|o| o == origin) => {
            Ok(())
        }
        Some(_) => Err(Refusal::Forbidden(
            "a page of another origin may not publish (see --publish-token and --cors-origin)",
        )),
    }
}

/// `http://HOST` or `https://HOST` where HOST is the request's own `Host`: the page was served by us.
fn is_own_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// The host without its port: `127.0.0.1:8080` → `127.0.0.1`, `[::1]:8080` → `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `localhost`, a name under `.localhost` (browsers resolve them to loopback, RFC 6761), or a loopback
/// address.
fn is_loopback_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower); // a fully qualified `localhost.`
    lower == "localhost" || lower.ends_with(".localhost") || lower.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// 127.0.0.0/8, ::1, and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// Compares two byte strings in time that depends only on their lengths, so that a wrong token's
/// answer time says nothing about how much of it was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("mio-sse").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn loopback_peers() {
        for (ip, loopback) in [
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.0.0.1", false),
            ("::2", false),
        ] {
            assert_eq!(is_loopback(ip.parse().unwrap()), loopback, "{ip}");
        }
    }

    #[test]
    fn on_loopback_only_loopback_names_and_allowed_hosts_are_served() {
        let local = config(&["--allow-host", "sse.internal"]);
        for (host, ok) in [
            (Some("127.0.0.1:8080"), true),
            (Some("localhost"), true),
            (Some("LOCALHOST:80"), true),
            (Some("app.localhost:8080"), true),
            (Some("[::1]:8080"), true),
            (Some("127.9.9.9"), true),
            (Some("sse.internal:8080"), true),
            (None, true),
            (Some("evil.example:8080"), false),
            (Some("localhost.evil.example"), false),
            (Some("10.0.0.1"), false),
            (Some("[::2]:8080"), false),
        ] {
            assert_eq!(host_allowed(&local, host), ok, "{host:?}");
        }
        let public = config(&["--listen", "0.0.0.0:8080"]);
        assert!(host_allowed(&public, Some("evil.example")), "not listening on loopback: no check");
    }

    #[test]
    fn a_browser_page_of_another_origin_may_not_publish_through_loopback_trust() {
        let open = config(&["--cors-origin", "https://app.example", "--cors-origin", "*"]);
        let host = Some("127.0.0.1:8080");
        let publish = |origin| may_publish(&open, None, origin, host, true);
        assert_eq!(publish(None), Ok(()), "curl, a script: no Origin");
        assert_eq!(publish(Some("http://127.0.0.1:8080")), Ok(()), "the demo page's own form");
        assert_eq!(publish(Some("https://app.example")), Ok(()), "listed by --cors-origin");
        assert!(publish(Some("https://evil.example")).is_err(), "`*` does not grant publishing");
        assert!(publish(Some("null")).is_err(), "a sandboxed page");
        assert!(publish(Some("http://127.0.0.1:9999")).is_err(), "another port is another origin");
        assert!(may_publish(&open, None, None, host, false).is_err(), "not loopback");
    }

    #[test]
    fn with_a_token_exactly_bearer_token_publishes() {
        let guarded = config(&["--publish-token", "s3cret"]);
        let with = |auth| may_publish(&guarded, auth, Some("https://evil.example"), None, false);
        assert_eq!(with(Some("Bearer s3cret")), Ok(()));
        assert_eq!(with(None), Err(Refusal::Unauthorized));
        assert!(with(Some("s3cret")).is_err(), "no Bearer prefix");
        assert!(with(Some("Bearer ")).is_err());
        assert!(with(Some("junk")).is_err());
        assert!(with(Some("Bearer s3cret!")).is_err());
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
