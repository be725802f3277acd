//! A worker's side of `--workers`: its link to the supervisor, over which it reports its figures once a
//! second and receives the whole service's (see [`crate::cluster`] for the protocol and its rules).
//!
//! The link is one more non-blocking socket on the loop, with its own token and deadline. If it cannot
//! be made, or fails, the worker serves on and its `/metrics` shows its own figures only (logged once).

use std::io;
use std::time::Instant;

use super::Server;
use crate::cluster::WorkerLink;
use crate::token::CLUSTER;

impl<S: super::Transport> Server<S> {
    /// A worker of `--workers` links up with its supervisor, which sums every worker's figures.
    pub(super) fn join_supervisor(&mut self) {
        let (Some(pid), Some(index)) = (self.cx.config.supervisor_pid, self.cx.config.worker_index) else {
            return;
        };
        match WorkerLink::connect(pid, index as u64, self.poll.registry(), CLUSTER, Instant::now()) {
            Ok(link) => self.cluster = Some(link),
            Err(e) => log::warn!("cannot reach the supervisor ({e}); /metrics shows this worker only"),
        }
    }

    /// The supervisor sent the service's totals (or the link failed: this worker's own figures then).
    pub(super) fn on_cluster_event(&mut self) {
        let Some(link) = self.cluster.as_mut() else { return };
        match link.on_event() {
            Ok(()) => self.cx.cluster_totals = link.totals.clone(),
            Err(e) => self.drop_cluster_link(&e),
        }
    }

    /// Sends this worker's figures to the supervisor once a second.
    pub(super) fn report_to_supervisor(&mut self, now: Instant) {
        let Some(link) = self.cluster.as_mut() else { return };
        if let Err(e) = link.report_if_due(&self.cx.figures(), now) {
            self.drop_cluster_link(&e);
        }
    }

    fn drop_cluster_link(&mut self, error: &io::Error) {
        log::warn!("the link to the supervisor failed ({error}); /metrics shows this worker only");
        if let Some(link) = self.cluster.take() {
            link.close(self.poll.registry());
        }
        self.cx.cluster_totals = None;
    }
}
