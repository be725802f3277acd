//! The fan-out publisher: one keep-alive connection for the `POST`s. Pipelined, they go at their scheduled
//! times without waiting for answers (a server that stalls then shows up as latency, measured from each
//! event's intended time, instead of silently slowing the schedule down: no coordinated omission).
//! Waiting, each goes once the one before was answered, as most real publishers do; the delay is still
//! measured from the schedule.
//!
//! Rules: every answer is read and counted by status before a close is reported (a server that answers
//! `401` and closes must show as `401`, not as a close); a refused publish is kept as
//! `publish: STATUS REASON` for the report.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};

use mio::net::TcpStream;

use super::client::{Target, short};
use crate::tls::{self, TlsIo};

/// The publisher's connection.
pub struct Publisher {
    pub socket: TcpStream,
    /// Over `https://`: the TLS state (requests are queued into it as plaintext).
    tls: Option<Box<TlsIo>>,
    connected: bool,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
    /// Requests queued, and answers read: 2xx, and any other status.
    pub sent: u64,
    pub accepted: u64,
    pub refused: u64,
    /// Refused publishes by status (`publish: 401 Unauthorized`), until the driver takes them.
    refusals: BTreeMap<String, u64>,
    /// The tag (a topic) of each request not answered yet, oldest first: answers come in order.
    tags: VecDeque<Option<u32>>,
    /// Accepted publishes by tag, until the driver takes them.
    accepted_tags: Vec<u32>,
}

impl Publisher {
    pub fn connect(target: &Target) -> io::Result<Publisher> {
        let socket = TcpStream::connect(target.addr)?;
        socket.set_nodelay(true)?;
        let tls = match &target.tls {
            Some(config) => {
                let name = tls::server_name(&target.host).map_err(io::Error::other)?;
                Some(Box::new(TlsIo::new(config.clone(), name, &[]).map_err(io::Error::other)?))
            }
            None => None,
        };
        Ok(Publisher {
            socket,
            tls,
            connected: false,
            out: Vec::new(),
            written: 0,
            inbuf: Vec::new(),
            sent: 0,
            accepted: 0,
            refused: 0,
            refusals: BTreeMap::new(),
            tags: VecDeque::new(),
            accepted_tags: Vec::new(),
        })
    }

    /// Queues one `POST` of `body` to `path` (the target's, or a topic's) and writes what the socket
    /// takes. `tag` (a topic) comes back with its answer if it is accepted ([`Publisher::take_accepted_tags`]).
    pub fn send(&mut self, target: &Target, path: &str, body: &str, tag: Option<u32>) -> Result<(), String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            target.authority,
            body.len()
        );
        self.out.extend_from_slice(request.as_bytes());
        self.sent += 1;
        self.tags.push_back(tag);
        self.drive(&mut [0u8; 4096])
    }

    /// The refused publishes counted since the last call, by status.
    pub fn take_refusals(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.refusals)
    }

    /// The tags of the publishes accepted since the last call.
    pub fn take_accepted_tags(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.accepted_tags)
    }

    /// Requests sent and not answered yet.
    pub fn outstanding(&self) -> u64 {
        self.sent - self.accepted - self.refused
    }

    /// Over TLS: hands the queued requests to rustls, writes its records, reads the answers.
    fn drive_tls(&mut self, scratch: &mut [u8]) -> Result<(), String> {
        let Some(tls) = self.tls.as_mut() else { return Ok(()) };
        let cause =
            |e: &io::Error, what: &str| tls::io_cause(e).unwrap_or_else(|| format!("{what}: {}", short(e)));
        if !self.out.is_empty() {
            tls.queue(&self.out).map_err(|e| cause(&e, "write"))?;
            self.out.clear();
        }
        tls.flush(&mut self.socket).map_err(|e| cause(&e, "write"))?;
        loop {
            match tls.read(&mut self.socket, scratch) {
                Ok(0) => {
                    self.count_answers()?;
                    return Err("connection closed by the server".into());
                }
                Ok(n) => self.inbuf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(cause(&e, "read")),
            }
        }
        self.count_answers()
    }

    /// Writes pending requests and reads answers, counting them.
    pub fn drive(&mut self, scratch: &mut [u8]) -> Result<(), String> {
        if !self.connected {
            if let Ok(Some(e)) | Err(e) = self.socket.take_error() {
                return Err(format!("connect: {}", short(&e)));
            }
            if self.socket.peer_addr().is_err() {
                return Ok(());
            }
            self.connected = true;
        }
        if self.tls.is_some() {
            return self.drive_tls(scratch);
        }
        while self.written < self.out.len() {
            match self.socket.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {}", short(&e))),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        loop {
            match self.socket.read(scratch) {
                Ok(0) => {
                    // The answers before the close are the reason for it: count them first.
                    self.count_answers()?;
                    return Err("connection closed by the server".into());
                }
                Ok(n) => self.inbuf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {}", short(&e))),
            }
        }
        self.count_answers()
    }

    /// Takes complete answers (head and `Content-Length` body) off the input.
    fn count_answers(&mut self) -> Result<(), String> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(&self.inbuf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(()),
                Err(e) => return Err(format!("bad answer: {e}")),
            };
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            if self.inbuf.len() < head_len + length {
                return Ok(());
            }
            let tag = match response.code {
                Some(100) => None,
                _ => self.tags.pop_front().flatten(),
            };
            match response.code {
                Some(100) => {} // the go-ahead for a body: not an answer
                Some(code) if (200..300).contains(&code) => {
                    self.accepted += 1;
                    self.accepted_tags.extend(tag);
                }
                code => {
                    self.refused += 1;
                    let status = format!("publish: {} {}", code.unwrap_or(0), response.reason.unwrap_or(""));
                    *self.refusals.entry(status.trim_end().to_owned()).or_default() += 1;
                }
            }
            self.inbuf.drain(..head_len + length);
        }
    }
}
