//! Refusals: every way a request is turned down, and, in one match, what each one means on the wire and
//! in the log.
//!
//! Rules:
//! - A refusal keeps the connection alive only when the request stream is in a known state afterwards:
//!   a `404` or `405` to a request without a body. After anything else the connection closes (once the
//!   answer is out, with a lingering close), because what follows the refused request cannot be trusted
//!   to be the start of the next one.
//! - Log levels follow who is at fault and how loud a flood would be: a client's mistake that a
//!   well-behaved client makes (`404`, `405`) at `info`; malformed or hostile input at `warn`; "come back
//!   later" at `debug` (a flood of them must not flood the log); our own side failing at `warn`.
//! - `503` always carries `Retry-After`, `401` always carries `WWW-Authenticate: Bearer`, `405` its `Allow`.

use log::Level;

use super::request::RequestError;

/// `Retry-After` (s) for a `503`.
pub const RETRY_AFTER_S: &str = "5";

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `400`: the request makes no sense (bad query, bad path, body not UTF-8 ...); the text says why.
    BadRequest(&'static str),
    /// `400`: the head itself is not HTTP/1.x syntax; the text says which part.
    Malformed(&'static str),
    /// `401`: publishing needs a bearer token and none was sent.
    Unauthorized,
    /// `403`: this peer or this token may not do that; the text says why.
    Forbidden(&'static str),
    /// `404`: no such file.
    NotFound,
    /// `421`: the `Host` is not one this server answers to (see [`crate::trust`]).
    MisdirectedRequest,
    /// `405`: the path exists but not for this method; `allow` lists the methods it takes.
    MethodNotAllowed { reason: &'static str, allow: &'static str },
    /// `408`: the request did not arrive whole within `--request-timeout-ms`.
    RequestTimeout,
    /// `411`: a publish without `Content-Length`.
    LengthRequired,
    /// `413`: a publish body over `--max-body-bytes`.
    ContentTooLarge,
    /// `414`: the request line alone is over the head limit.
    UriTooLong,
    /// `431`: the head is over the head limit.
    HeadTooLarge,
    /// `501`: something we do not implement (`Transfer-Encoding`).
    NotImplemented(&'static str),
    /// `503`: the server is at its connection cap.
    OverCapacity,
    /// `503`: the backplane (Redis) is down or did not take the event; the text says which.
    BackplaneUnavailable(&'static str),
    /// `503`: shaped streams already ask for all of `--max-shaped-bytes-per-s`.
    ShapedBudgetExhausted,
    /// `503`: the topic does not exist and `--max-topics` already exist.
    TooManyTopics,
    /// `504`: Redis did not answer a publish in time: the event may or may not be delivered.
    PublishOutcomeUnknown,
    /// `505`: not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

/// What a refusal means: its status, the one-line reason in its body, an extra header, whether the
/// connection may stay open, and the level its log line is written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meaning {
    pub status: u16,
    pub reason: &'static str,
    pub header: Option<(&'static str, &'static str)>,
    pub keeps_alive: bool,
    pub level: Level,
}

impl Refusal {
    /// The one place that says what each refusal means.
    pub fn meaning(self) -> Meaning {
        use Level::{Debug, Info, Warn};
        let (status, reason, header, keeps_alive, level) = match self {
            Refusal::BadRequest(why) => (400, why, None, false, Warn),
            Refusal::Malformed(why) => (400, why, None, false, Warn),
            Refusal::Unauthorized => (
                401,
                "publishing needs Authorization: Bearer TOKEN",
                Some(("WWW-Authenticate", "Bearer")),
                false,
                Warn,
            ),
            Refusal::Forbidden(why) => (403, why, None, false, Warn),
            Refusal::NotFound => (404, "no such file", None, true, Info),
            Refusal::MethodNotAllowed { reason, allow } => (405, reason, Some(("Allow", allow)), true, Info),
            Refusal::MisdirectedRequest => {
                (421, "this server does not answer to that Host (see --allow-host)", None, false, Warn)
            }
            Refusal::ShapedBudgetExhausted => (
                503,
                "shaped streams already use the server's budget (--max-shaped-bytes-per-s)",
                Some(("Retry-After", RETRY_AFTER_S)),
                false,
                Debug,
            ),
            Refusal::TooManyTopics => (
                503,
                "the server holds as many topics as it may (--max-topics)",
                Some(("Retry-After", RETRY_AFTER_S)),
                false,
                Info,
            ),
            Refusal::PublishOutcomeUnknown => (
                504,
                "Redis did not answer in time: the event may still be delivered (publish is at-least-once)",
                None,
                false,
                Warn,
            ),
            Refusal::RequestTimeout => (408, "request not complete in time", None, false, Warn),
            Refusal::LengthRequired => (411, "publishing needs a Content-Length", None, false, Warn),
            Refusal::ContentTooLarge => (413, "the body is larger than --max-body-bytes", None, false, Warn),
            Refusal::UriTooLong => (414, "request line too long", None, false, Warn),
            Refusal::HeadTooLarge => (431, "request head too large", None, false, Warn),
            Refusal::NotImplemented(why) => (501, why, None, false, Warn),
            Refusal::OverCapacity => (
                503,
                "the server is at its connection limit",
                Some(("Retry-After", RETRY_AFTER_S)),
                false,
                Debug,
            ),
            Refusal::BackplaneUnavailable(why) => {
                (503, why, Some(("Retry-After", RETRY_AFTER_S)), false, Warn)
            }
            Refusal::VersionNotSupported => (505, "only HTTP/1.0 and HTTP/1.1 are served", None, false, Warn),
        };
        Meaning { status, reason, header, keeps_alive, level }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        self.meaning().status
    }
}

impl From<RequestError> for Refusal {
    fn from(error: RequestError) -> Refusal {
        match error {
            RequestError::Malformed(what) => Refusal::Malformed(what),
            RequestError::UriTooLong => Refusal::UriTooLong,
            RequestError::HeadTooLarge => Refusal::HeadTooLarge,
            RequestError::VersionNotSupported => Refusal::VersionNotSupported,
        }
    }
}

impl std::fmt::Display for Refusal {
    /// The log's words: status and reason (a malformed head says so first).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.meaning();
        match self {
            Refusal::Malformed(_) => write!(f, "{} malformed request: {}", m.status, m.reason),
            _ => write!(f, "{} {}", m.status, m.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_404_and_405_keep_the_connection() {
        let all = [
            Refusal::BadRequest("x"),
            Refusal::Malformed("x"),
            Refusal::Unauthorized,
            Refusal::Forbidden("x"),
            Refusal::NotFound,
            Refusal::MethodNotAllowed { reason: "x", allow: "GET" },
            Refusal::RequestTimeout,
            Refusal::LengthRequired,
            Refusal::ContentTooLarge,
            Refusal::UriTooLong,
            Refusal::HeadTooLarge,
            Refusal::NotImplemented("x"),
            Refusal::OverCapacity,
            Refusal::BackplaneUnavailable("x"),
            Refusal::VersionNotSupported,
            Refusal::MisdirectedRequest,
            Refusal::ShapedBudgetExhausted,
            Refusal::PublishOutcomeUnknown,
            Refusal::TooManyTopics,
        ];
        for refusal in all {
            let m = refusal.meaning();
            assert_eq!(m.keeps_alive, matches!(m.status, 404 | 405), "{refusal:?}");
            assert!(m.status >= 400, "{refusal:?}");
            if m.status == 503 {
                assert_eq!(m.header, Some(("Retry-After", RETRY_AFTER_S)), "{refusal:?}");
            }
        }
        assert_eq!(Refusal::Unauthorized.meaning().header, Some(("WWW-Authenticate", "Bearer")));
        assert_eq!(Refusal::OverCapacity.meaning().level, Level::Debug, "a flood must not flood the log");
    }

    #[test]
    fn request_errors_keep_their_status() {
        for error in [
            RequestError::Malformed("invalid header name"),
            RequestError::UriTooLong,
            RequestError::HeadTooLarge,
            RequestError::VersionNotSupported,
        ] {
            assert_eq!(Refusal::from(error).status(), error.status());
        }
        assert_eq!(
            Refusal::from(RequestError::Malformed("invalid header name")).to_string(),
            "400 malformed request: invalid header name"
        );
        assert_eq!(Refusal::UriTooLong.to_string(), "414 request line too long");
    }
}
