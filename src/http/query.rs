//! Percent-decoding and query strings (`?interval_ms=100&event=news`).
//!
//! Rules: decoding is strict (a `%` must be followed by two hex digits, the result must be UTF-8), and a
//! query is read into at most [`MAX_PARAMS`] pairs: the rest is ignored, so a long query costs bounded
//! work. `+` means a space in query values, as HTML forms send them.

/// Most query parameters looked at.
pub const MAX_PARAMS: usize = 32;

/// Decodes `%XX` escapes (and, if `plus_is_space`, `+` as a space) into UTF-8 text.
pub fn percent_decode(input: &str, plus_is_space: bool) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'%' => {
                let hi = bytes.next().and_then(hex_value);
                let lo = bytes.next().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => (hi << 4) | lo,
                    _ => return Err("invalid percent-encoding"),
                }
            }
            b'+' if plus_is_space => b' ',
            b => b,
        });
    }
    String::from_utf8(out).map_err(|_| "percent-encoding that is not UTF-8")
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The query of a request target (after `?`, before `#`), or "".
pub fn query_of(target: &str) -> &str {
    let without_fragment = target.split('#').next().unwrap_or("");
    without_fragment.split_once('?').map_or("", |(_, query)| query)
}

/// The decoded `(name, value)` pairs of a query, in order, at most [`MAX_PARAMS`].
pub fn params(query: &str) -> Result<Vec<(String, String)>, &'static str> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .take(MAX_PARAMS)
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name, true)?, percent_decode(value, true)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("caf%C3%A9", false).unwrap(), "café");
        assert_eq!(percent_decode("%0A", false).unwrap(), "\n", "decoding does not judge; callers do");
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert!(percent_decode(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries() {
        assert_eq!(query_of("/home/events?a=1&b=2#frag"), "a=1&b=2");
        assert_eq!(query_of("/home/events"), "");
        let got = params("interval_ms=100&&event=news%20flash&flag&x=a=b").unwrap();
        let want = [("interval_ms", "100"), ("event", "news flash"), ("flag", ""), ("x", "a=b")];
        assert_eq!(got, want.map(|(n, v)| (n.to_string(), v.to_string())));
        assert!(params("a=%zz").is_err());
        let many = vec!["a=1"; 100].join("&");
        assert_eq!(params(&many).unwrap().len(), MAX_PARAMS);
    }
}
