//! The driver's time series: at the end of each second it closes that second's [`crate::report::Sample`] (counts of the
//! second, streams open at its end, that second's latencies) and sends it to whoever reads them (the
//! progress line, `--csv`, a `--procs` parent).
//!
//! Rules: counts of a second are differences of the report's cumulative counts, so nothing is counted
//! twice nor needs a hook of its own; latencies are recorded into the second's histograms where the
//! report's are recorded (`seen`). A reader that went away is not an error: the run goes on.

use super::Driver;

/// The report's cumulative counts at the start of a second.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    events: u64,
    delivered: u64,
    failures: u64,
    drops: u64,
    reconnects: u64,
    cycles: u64,
}

impl Driver {
    fn counts(&self) -> Counts {
        Counts {
            events: self.report.events,
            delivered: self.report.delivered,
            failures: self.report.failure_count(),
            drops: self.report.drop_count(),
            reconnects: self.report.reconnects,
            cycles: self.report.cycles,
        }
    }

    /// Closes this second's sample and sends it.
    pub(super) fn end_second(&mut self) {
        let (now, base) = (self.counts(), self.second_base);
        let mut sample = std::mem::take(&mut self.second);
        sample.t_s = self.started.elapsed().as_secs_f64().round() as u64;
        sample.open = self.open_streams() as u64;
        sample.events = now.events - base.events;
        sample.delivered = now.delivered - base.delivered;
        sample.failures = now.failures - base.failures;
        sample.drops = now.drops - base.drops;
        sample.reconnects = now.reconnects - base.reconnects;
        sample.cycles = now.cycles - base.cycles;
        self.second_base = now;
        if let Some(samples) = &self.plan.samples {
            let _ = samples.send(sample);
        }
    }
}
