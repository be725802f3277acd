//! What people and programs read: the progress line and the `--csv` time series ([`Timeline`], fed one
//! [`Sample`] a second), the table ([`table`]) and the JSON summary ([`json`]).
//!
//! Rules: latencies are shown in ms; counts of a second are per second; the CSV has one header line
//! and one row per second, an empty cell where a second measured nothing.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::report::Sample;
use crate::report::histo::ms;

pub mod json;
pub mod table;

/// The CSV's columns.
pub const CSV_HEADER: &str = "t_s,open_streams,events_per_s,delivered_per_s,failures,drops,reconnects,cycles,\
latency_p50_ms,latency_p90_ms,latency_p99_ms,latency_max_ms,connect_p50_ms,connect_p99_ms";

/// Where each second's sample goes: a progress line on stderr, a row of the time series.
pub struct Timeline {
    progress: bool,
    mode: &'static str,
    csv: Option<BufWriter<File>>,
    /// The first error writing the CSV (reported at the end; the run goes on).
    csv_error: Option<io::Error>,
}

impl Timeline {
    pub fn new(progress: bool, csv: Option<&Path>, mode: &'static str) -> io::Result<Timeline> {
        let csv = match csv {
            Some(path) => {
                let mut file = BufWriter::new(File::create(path)?);
                writeln!(file, "{CSV_HEADER}")?;
                Some(file)
            }
            None => None,
        };
        Ok(Timeline { progress, mode, csv, csv_error: None })
    }

    pub fn push(&mut self, sample: &Sample) {
        if self.progress {
            eprintln!("{}", progress_line(sample, self.mode));
        }
        // Flushed each second: the file is a live time series (`c1m` and `tail -f` read it as it grows).
        if let Some(csv) = &mut self.csv
            && let Err(e) = writeln!(csv, "{}", csv_row(sample)).and_then(|()| csv.flush())
        {
            self.csv_error.get_or_insert(e);
        }
    }

    /// Flushes the time series; the first error writing it, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.csv_error.take() {
            return Err(e);
        }
        match &mut self.csv {
            Some(csv) => csv.flush(),
            None => Ok(()),
        }
    }
}

/// `t=3s open=200 events/s=2000 failures=0 drops=0 reconnects=0`, and what the mode measures.
pub fn progress_line(s: &Sample, mode: &str) -> String {
    let mut line = format!(
        "t={:>3}s open={} events/s={} failures={} drops={} reconnects={}",
        s.t_s, s.open, s.events, s.failures, s.drops, s.reconnects
    );
    if mode == "fanout" {
        line.push_str(&format!(" delivered/s={}", s.delivered));
        if !s.latency_us.is_empty() {
            let p = s.latency_us.percentiles(0.001);
            line.push_str(&format!(" latency p50/p99={}/{} ms", ms(p.p50), ms(p.p99)));
        }
    }
    if mode == "churn" {
        line.push_str(&format!(" cycles/s={}", s.cycles));
    }
    line
}

/// One CSV row (columns: [`CSV_HEADER`]).
pub fn csv_row(s: &Sample) -> String {
    let cells = |h: &crate::report::Histo, quantiles: &[f64]| -> Vec<String> {
        quantiles
            .iter()
            .map(|q| if h.is_empty() { String::new() } else { format!("{:.3}", h.at(*q) as f64 / 1000.0) })
            .collect()
    };
    let mut row = vec![
        s.t_s.to_string(),
        s.open.to_string(),
        s.events.to_string(),
        s.delivered.to_string(),
        s.failures.to_string(),
        s.drops.to_string(),
        s.reconnects.to_string(),
        s.cycles.to_string(),
    ];
    row.extend(cells(&s.latency_us, &[0.5, 0.9, 0.99, 1.0]));
    row.extend(cells(&s.connect_us, &[0.5, 0.99]));
    row.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_row_has_a_cell_per_column_and_latencies_in_ms() {
        let mut s = Sample { t_s: 3, open: 200, events: 2000, delivered: 1800, ..Sample::default() };
        s.latency_us.record(1500);
        let row = csv_row(&s);
        assert_eq!(row.split(',').count(), CSV_HEADER.split(',').count(), "{row}");
        assert!(row.starts_with("3,200,2000,1800,0,0,0,0,1.500,1.500,1.500,1.500,,"), "{row}");
        assert!(
            progress_line(&s, "fanout").contains("latency p50/p99=1.50/1.50 ms"),
            "{}",
            progress_line(&s, "fanout")
        );
    }
}
