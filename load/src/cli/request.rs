//! The request every stream sends and how it is secured: `--method`, `--header`, `--body` or
//! `--body-file`, `--until-data`, and for `https://` URLs `--ca-file` and `--insecure`. Turns them and
//! the URL into the driver's [`Target`].
//!
//! Rules:
//! - A header is `Name: value` with a token for a name and no CR or LF anywhere (a flag must not be able
//!   to smuggle a second request); `Host`, `Content-Length` and `Transfer-Encoding` are the client's own
//!   and refused here.
//! - A body is sent with its `Content-Length` (any method but `GET` gets one, 0 when empty); a
//!   `--body-file` is read once, at start.
//! - TLS settings are checked at start (a `--ca-file` that holds no certificate is bad input), and
//!   `--insecure` is said loudly on stderr by the caller.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::client::Target;
use crate::tls;

/// What each stream asks, and how an `https://` server is trusted.
#[derive(Args, Debug, Clone, Default)]
pub struct RequestArgs {
    /// The request's method (`POST` for most LLM-style streaming APIs).
    #[arg(long, default_value = "GET", value_parser = method)]
    pub method: String,
    /// A header line `Name: value` sent with every request, repeatable (`Authorization: Bearer …`).
    #[arg(long = "header", value_name = "'NAME: VALUE'", value_parser = header)]
    pub headers: Vec<String>,
    /// The request's body, sent with its Content-Length.
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file")]
    pub body: Option<String>,
    /// The request's body, read from PATH once at start.
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
    /// An event whose data is exactly TEXT completes its stream (e.g. `[DONE]`): the client closes it, and
    /// it counts as completed, not dropped.
    #[arg(long, value_name = "TEXT")]
    pub until_data: Option<String>,
    /// https://: also trust the CA certificate(s) in this PEM file (beside the system's roots).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// https://: accept any certificate, verifying nothing (said loudly at start): for tests only.
    #[arg(long)]
    pub insecure: bool,
}

/// A method is a token: letters only, as every method in use is.
fn method(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(text.to_owned())
    } else {
        Err("a method is letters only (GET, POST, …)".into())
    }
}

/// `Name: value`, one line, not a header the client writes itself.
fn header(text: &str) -> Result<String, String> {
    let (name, value) = text.split_once(':').ok_or("a header is 'Name: value'")?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("{name:?} is not a header name"));
    }
    if text.contains(['\r', '\n']) {
        return Err("a header is one line (no CR or LF)".into());
    }
    if ["host", "content-length", "transfer-encoding"].contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("{name} is set by the load generator itself"));
    }
    Ok(format!("{name}: {}", value.trim()))
}

impl RequestArgs {
    /// The driver's target for `url`: the URL resolved, this request, TLS set up for `https://`.
    pub fn target(&self, url: &str) -> Result<Target, String> {
        let mut target = Target::parse(url)?;
        target.method = self.method.clone();
        target.headers = self.headers.clone();
        target.body = Arc::new(match (&self.body, &self.body_file) {
            (Some(text), _) => text.clone().into_bytes(),
            (None, Some(path)) => {
                std::fs::read(path).map_err(|e| format!("--body-file {}: {e}", path.display()))?
            }
            (None, None) => Vec::new(),
        });
        if target.https {
            target.tls = Some(tls::client_config(self.ca_file.as_deref(), self.insecure)?);
        } else if self.ca_file.is_some() || self.insecure {
            return Err("--ca-file and --insecure are for https:// URLs".into());
        }
        Ok(target)
    }

    /// These flags as given, for the `--procs` workers.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--method".into(), self.method.clone()];
        for header in &self.headers {
            args.extend(["--header".into(), header.clone()]);
        }
        let path = |p: &PathBuf| p.display().to_string();
        let optional = [
            ("--body", self.body.clone()),
            ("--body-file", self.body_file.as_ref().map(path)),
            ("--until-data", self.until_data.clone()),
            ("--ca-file", self.ca_file.as_ref().map(path)),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                args.extend([flag.into(), value]);
            }
        }
        if self.insecure {
            args.push("--insecure".into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_one_line_and_not_the_clients_own() {
        assert_eq!(header("Authorization:  Bearer abc ").unwrap(), "Authorization: Bearer abc");
        assert!(header("no colon").is_err());
        assert!(header("Bad Name: x").is_err());
        assert!(header("X: a\r\nGET / HTTP/1.1").is_err());
        assert!(header("content-length: 5").is_err());
        assert!(method("POST").is_ok() && method("PO ST").is_err() && method("").is_err());
    }

    #[test]
    fn tls_flags_need_an_https_url_and_workers_get_every_flag() {
        let args = RequestArgs { insecure: true, ..RequestArgs::default() };
        assert!(args.target("http://127.0.0.1:1/").is_err());
        assert!(args.target("https://127.0.0.1:1/").unwrap().tls.is_some());
        let args = RequestArgs {
            method: "POST".into(),
            headers: vec!["A: b".into()],
            body: Some("{}".into()),
            until_data: Some("[DONE]".into()),
            ..RequestArgs::default()
        };
        let flags = args.to_args();
        assert_eq!(flags, ["--method", "POST", "--header", "A: b", "--body", "{}", "--until-data", "[DONE]"]);
    }
}
