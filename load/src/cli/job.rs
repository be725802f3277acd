//! A mode's flags as one [`Job`]: what every mode shares, and the groups only some take. It checks what
//! can be known before the run (exit code 2 when it fails) and builds the driver's [`Plan`].
//!
//! Rules (the checks at start):
//! - URLs parse, and every `--source-ips` address is this machine's (bind fails with "cannot assign
//!   requested address" otherwise: said at start, not as a failure of every attempt).
//! - The streams a process holds at once fit in its open-file limit: if not, the error says which
//!   `--procs` would fit, since each process has its own limit.

use std::net::SocketAddr;
use std::time::Duration;

use super::flags::{
    ArrivalArgs, CycleArgs, ModeCommand, PublishArgs, PublisherKind, ReconnectArgs, RunArgs, StormOnlyArgs,
    StreamArgs, TargetArgs,
};
use crate::client::{Target, bind_error};
use crate::driver::{Fanout, Mode, Plan};
use crate::ids::IdCheck;

/// File descriptors a process needs beyond its streams: stdio, the poll, the publisher, a margin.
const FD_MARGIN: u64 = 32;

/// A client mode's flags, whatever the mode.
#[derive(Debug, Clone)]
pub struct Job {
    pub mode: &'static str,
    pub target: TargetArgs,
    pub streams: Option<StreamArgs>,
    pub reconnect: Option<ReconnectArgs>,
    pub publish: Option<PublishArgs>,
    pub cycles: Option<CycleArgs>,
    pub storm: Option<StormOnlyArgs>,
    pub arrivals: Option<ArrivalArgs>,
    pub run: RunArgs,
}

impl Job {
    /// The job of a client mode's subcommand; `bench` is not one and comes back as its flags.
    pub fn from_command(command: ModeCommand) -> Result<Job, Box<crate::bench::BenchArgs>> {
        let job = |mode, target, run| Job {
            mode,
            target,
            streams: None,
            reconnect: None,
            publish: None,
            cycles: None,
            storm: None,
            arrivals: None,
            run,
        };
        Ok(match command {
            ModeCommand::Hold(a) => {
                Job { streams: Some(a.streams), reconnect: Some(a.reconnect), ..job("hold", a.target, a.run) }
            }
            ModeCommand::Fanout(a) => Job {
                streams: Some(a.streams),
                reconnect: Some(a.reconnect),
                publish: Some(a.publish),
                ..job("fanout", a.target, a.run)
            },
            ModeCommand::Churn(a) => Job { cycles: Some(a.cycles), ..job("churn", a.target, a.run) },
            ModeCommand::Storm(a) => {
                Job { streams: Some(a.streams), storm: Some(a.storm), ..job("storm", a.target, a.run) }
            }
            ModeCommand::Stream(a) => Job { arrivals: Some(a.arrivals), ..job("stream", a.target, a.run) },
            ModeCommand::Bench(args) => return Err(Box::new(args)),
        })
    }

    /// Streams this job holds at once, in all processes.
    fn streams_at_once(&self) -> u64 {
        match (&self.streams, &self.cycles, &self.arrivals) {
            (Some(s), _, _) => s.streams as u64,
            (None, Some(c), _) => c.concurrency.min(c.cycles),
            (None, None, Some(a)) => a.max_inflight,
            (None, None, None) => 0,
        }
    }

    /// What can be refused before running: URLs, source addresses, the open-file limit.
    pub fn check(&self, fd_limit: u64) -> Result<(), String> {
        self.target.request.target(&self.target.url)?;
        if let Some(url) = self.publish.as_ref().and_then(|p| p.publish_url.as_deref()) {
            Target::parse(url)?;
        }
        for ip in self.target.source_ips.iter().flat_map(|s| &s.ips) {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(SocketAddr::new(*ip, 0)),
                socket2::Type::STREAM,
                None,
            )
            .map_err(|e| format!("a socket: {e}"))?;
            socket
                .bind(&SocketAddr::new(*ip, 0).into())
                .map_err(|e| format!("--source-ips {ip}: {}", bind_error(&e)))?;
        }
        let procs = self.run.procs;
        let per_process = self.streams_at_once().div_ceil(procs) + FD_MARGIN;
        if per_process > fd_limit {
            let fits = self.streams_at_once().div_ceil(fd_limit.saturating_sub(FD_MARGIN).max(1));
            return Err(format!(
                "{} streams at once need about {per_process} open files in each of {procs} process(es), and one \
                 process may hold at most {fd_limit} (RLIMIT_NOFILE's hard limit): use --procs {fits} (each process \
                 has its own limit), or raise the hard limit",
                self.streams_at_once()
            ));
        }
        Ok(())
    }

    /// The driver's plan for this process (`worker`: which `--procs` worker it is, if one).
    pub fn plan(&self, worker: Option<usize>) -> Result<Plan, String> {
        let target = self.target.request.target(&self.target.url)?;
        let streams = self.streams.as_ref();
        let mode = match (self.mode, &self.publish, &self.cycles, &self.storm) {
            ("fanout", Some(p), _, _) => Mode::Fanout(Box::new(Fanout {
                // Over https:// the publisher trusts what the streams trust (`--ca-file`, `--insecure`).
                target: {
                    let mut publish = Target::parse(&self.fanout_url())?;
                    if publish.https {
                        publish.tls = target.tls.clone().or(Some(crate::tls::client_config(None, false)?));
                    }
                    publish
                },
                events: p.events,
                rate_per_s: p.rate,
                payload_bytes: p.payload_bytes,
                publishes: worker.is_none_or(|w| w == 0),
                waits_for_answers: p.publisher == PublisherKind::Wait,
            })),
            ("churn", _, Some(c), _) => {
                Mode::Churn { cycles: c.cycles, concurrency: c.concurrency as usize, ready_on: c.ready_on }
            }
            ("storm", _, _, Some(s)) => Mode::Storm { after: Duration::from_secs_f64(s.storm_after_s) },
            ("stream", _, _, _) => {
                Mode::Stream { total: self.arrivals_total(), max_inflight: self.max_inflight() }
            }
            _ => Mode::Hold,
        };
        Ok(Plan {
            reconnect: self.mode == "storm" || self.reconnect.as_ref().is_some_and(|r| r.reconnect),
            mode,
            target,
            streams: streams.map_or(self.arrivals_total() as usize, |s| s.streams),
            ramp_per_s: streams.map_or(self.arrivals.as_ref().map_or(0.0, |a| a.arrival_rate), |s| s.ramp),
            source_ips: self.target.source_ips.as_ref().map(|s| s.ips.clone()).unwrap_or_default(),
            duration: Duration::from_secs_f64(self.target.duration_s),
            connect_timeout: Duration::from_secs_f64(self.target.connect_timeout_s),
            slow_share: streams.map_or(0.0, |s| s.slow_share),
            tick_interval_ms: streams.map_or(0, |s| s.tick_interval_ms),
            ids: streams.map_or(IdCheck::default(), |s| s.ids),
            topics: streams.and_then(|s| s.topics.spread()).map(std::sync::Arc::new),
            until_data: self.target.request.until_data.clone(),
            samples: None,
            go: None,
            ready: None,
            // SIGINT or SIGTERM end the run early, with its report (see `cli::stop_flag`).
            stop: Some(super::stop_flag()),
        })
    }

    /// `stream` mode: streams to start in all (`--total`, or the rate × the duration); 0 in other modes.
    fn arrivals_total(&self) -> u64 {
        let duration = self.target.duration_s;
        self.arrivals.as_ref().map_or(0, |a| a.total.unwrap_or((a.arrival_rate * duration).ceil() as u64))
    }

    fn max_inflight(&self) -> usize {
        self.arrivals.as_ref().map_or(0, |a| a.max_inflight as usize)
    }

    /// Where the fan-out publishes: `--publish-url`, or the stream's URL without its query.
    fn fanout_url(&self) -> String {
        let publish_url = self.publish.as_ref().and_then(|p| p.publish_url.clone());
        publish_url.unwrap_or_else(|| self.target.url.split('?').next().unwrap_or_default().to_owned())
    }

    /// Worker `worker`'s command line: this job's flags, with its share of the counts.
    pub fn worker_args(&self, worker: u64) -> Vec<String> {
        let procs = self.run.procs;
        let mut args = vec![self.mode.to_owned()];
        args.extend(self.target.to_args());
        if let Some(s) = &self.streams {
            args.extend(s.to_args(procs, worker));
        }
        if let Some(r) = &self.reconnect {
            args.extend(r.to_args());
        }
        if let Some(p) = &self.publish {
            args.extend(p.to_args());
        }
        if let Some(c) = &self.cycles {
            args.extend(c.to_args(procs, worker));
        }
        if let Some(s) = &self.storm {
            args.extend(s.to_args());
        }
        if let Some(a) = &self.arrivals {
            args.extend(a.to_args(procs, worker));
        }
        args.extend(["--worker".into(), worker.to_string()]);
        args
    }
}
