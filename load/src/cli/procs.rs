//! `--procs K`: K worker processes of this binary, each with its share of the streams (and of the churn
//! cycles) and its own fd limit; worker 0 publishes once every worker is ready. Both sides are here.
//!
//! The protocol, one line each on the worker's stdout / stdin:
//! - `READY`: the worker's streams have all settled (connected or failed);
//! - `GO` (parent → every worker, once all are READY or have ended): publishing may start;
//! - `SAMPLE {json}`: the worker's [`Sample`] of a second (for the merged progress line and `--csv`);
//! - `REPORT {json}`: the worker's [`Report`] (raw histograms: they merge exactly), its last line.
//!
//! Rules: the parent merges a second once every worker still running has sent it (a worker that ended
//! no longer holds the others back); a worker that ends without a report is an error (exit code 3).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::job::Job;
use crate::output::Timeline;
use crate::report::{Report, Sample};
use crate::verdict::{COULD_NOT_RUN, PASSED};

/// A worker: runs its plan, says READY, waits for GO, streams its samples, ends with its report.
pub fn run_worker(job: &Job, _worker: usize) -> u8 {
    let (go, ready) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (go_flag, ready_flag) = (Arc::clone(&go), Arc::clone(&ready));
    std::thread::spawn(move || {
        while !ready_flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10)); // a side thread; the loop never sleeps
        }
        println!("READY");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_ok() {
            go_flag.store(true, Ordering::Relaxed);
        }
    });
    let mut plan = match job.plan(job.run.worker) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("mio-sse-load worker: {e}");
            return COULD_NOT_RUN;
        }
    };
    let (tx, rx) = mpsc::channel();
    (plan.go, plan.ready, plan.samples) = (Some(go), Some(ready), Some(tx));
    let driver = std::thread::spawn(move || crate::driver::run(plan));
    for sample in rx {
        if let Ok(json) = serde_json::to_string(&sample) {
            println!("SAMPLE {json}");
        }
    }
    let report = match driver.join() {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => {
            eprintln!("mio-sse-load worker: {e}");
            return COULD_NOT_RUN;
        }
        Err(_) => return COULD_NOT_RUN,
    };
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("REPORT {json}");
            PASSED
        }
        Err(_) => COULD_NOT_RUN,
    }
}

/// What a worker's reader thread passes on.
enum Message {
    Ready,
    Sample(Box<Sample>),
    Report(Box<Report>),
    Ended,
}

/// The parent: starts the workers, says GO once all are ready, merges their samples second by second
/// into `timeline`, and their reports into one.
pub fn run_parent(job: &Job, timeline: &mut Timeline) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let procs = job.run.procs as usize;
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for worker in 0..procs {
        let mut child = Command::new(&exe)
            .args(job.worker_args(worker as u64))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start a worker: {e}"))?;
        let stdout = child.stdout.take().ok_or("a worker without stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let message = if line == "READY" {
                    Message::Ready
                } else if let Some(json) = line.strip_prefix("SAMPLE ") {
                    match serde_json::from_str(json) {
                        Ok(sample) => Message::Sample(Box::new(sample)),
                        Err(_) => continue,
                    }
                } else if let Some(json) = line.strip_prefix("REPORT ") {
                    match serde_json::from_str(json) {
                        Ok(report) => Message::Report(Box::new(report)),
                        Err(_) => continue,
                    }
                } else {
                    continue;
                };
                if tx.send((worker, message)).is_err() {
                    return;
                }
            }
            let _ = tx.send((worker, Message::Ended));
        });
        children.push(child);
    }
    drop(tx);
    let mut ready = vec![false; procs];
    let mut said_go = false;
    let mut last_second = vec![0u64; procs];
    let mut ended = vec![false; procs];
    let mut pending: Vec<Sample> = Vec::new();
    let mut merged = Report::default();
    let mut reports = 0;
    let stop = super::stop_flag();
    let mut passed_on = false;
    loop {
        let (worker, message) = match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(received) => received,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if stop.load(std::sync::atomic::Ordering::Relaxed) && !std::mem::replace(&mut passed_on, true)
                {
                    // Each worker ends its run and sends its report, merged as usual.
                    for child in &children {
                        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match message {
            Message::Ready => ready[worker] = true,
            Message::Sample(sample) => {
                last_second[worker] = sample.t_s;
                crate::report::sample::merge_series(&mut pending, &[*sample]);
            }
            Message::Report(report) => {
                merged.merge(&report);
                reports += 1;
            }
            Message::Ended => ended[worker] = true,
        }
        if !said_go && (0..procs).all(|w| ready[w] || ended[w]) {
            said_go = true;
            for child in &mut children {
                if let Some(stdin) = child.stdin.as_mut() {
                    let _ = writeln!(stdin, "GO");
                }
            }
        }
        // A second is complete once every worker still running has sent it.
        let complete = (0..procs).filter(|w| !ended[*w]).map(|w| last_second[w]).min().unwrap_or(u64::MAX);
        while pending.first().is_some_and(|s| s.t_s <= complete) {
            timeline.push(&pending.remove(0));
        }
    }
    for child in &mut children {
        let _ = child.wait();
    }
    if reports < procs {
        return Err(format!("{} of {procs} workers ended without a report", procs - reports));
    }
    Ok(merged)
}
