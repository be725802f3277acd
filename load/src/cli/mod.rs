//! The binary's flow, from flags to exit code: parse ([`flags`]), refuse what cannot run ([`job`]: exit
//! code 2), run in this process or in `--procs` workers ([`procs`]), feed each second's sample to the
//! progress line and the time series, then judge the report ([`crate::verdict`]) and print it.
//!
//! Rules: nothing is printed on stdout but the report (a worker's stdout is its parent's pipe); the
//! progress line and errors go to stderr. The exit code is the verdict's, or 2 (bad input), or 3 (the
//! load generator could not run).

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock, mpsc};

use clap::Parser;

use crate::output::{self, Timeline};
use crate::report::Report;
use crate::verdict::{self, BAD_INPUT, COULD_NOT_RUN};
use flags::Cli;
use job::Job;

pub mod flags;
pub mod job;
pub mod procs;
pub mod request;

/// The flag SIGINT and SIGTERM raise: a run that sees it ends at once and reports what it measured
/// (a `--procs` parent passes the signal on to its workers, whose reports it merges as usual).
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&flag)) {
                eprintln!("mio-sse-load: cannot catch signal {signal}: {e}");
            }
        }
        flag
    }))
}

/// The whole binary: flags in, exit code out.
pub fn main() -> ExitCode {
    // Each stream is an fd: take the hard limit as the soft one (a shortfall is said at start, below).
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let cli = Cli::parse(); // refused flags exit here with code 2
    let job = match Job::from_command(cli.command) {
        Ok(job) => job,
        Err(bench) => {
            return match crate::bench::run(&bench) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mio-sse-load bench: {e}");
                    ExitCode::from(COULD_NOT_RUN)
                }
            };
        }
    };
    if let Err(why) = job.check(fd_limit) {
        eprintln!("mio-sse-load {}: {why}", job.mode);
        return ExitCode::from(BAD_INPUT);
    }
    if job.target.request.insecure && job.run.worker.is_none() {
        eprintln!(
            "mio-sse-load: WARNING: --insecure: the server's certificate is NOT verified (anyone on the path \
             could be answering); for tests only"
        );
    }
    stop_flag(); // caught from the start: a signal during set-up ends the run with a report too
    if let Some(worker) = job.run.worker {
        return ExitCode::from(procs::run_worker(&job, worker));
    }
    ExitCode::from(run(&job))
}

/// Runs a job (in this process or in workers), prints its report, returns the exit code.
fn run(job: &Job) -> u8 {
    let mut timeline = match Timeline::new(!job.run.quiet && !job.run.json, job.run.csv.as_deref(), job.mode)
    {
        Ok(timeline) => timeline,
        Err(e) => {
            eprintln!("mio-sse-load: --csv: {e}");
            return BAD_INPUT;
        }
    };
    let result =
        if job.run.procs > 1 { procs::run_parent(job, &mut timeline) } else { run_here(job, &mut timeline) };
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("mio-sse-load: {e}");
            return COULD_NOT_RUN;
        }
    };
    if let Err(e) = timeline.finish() {
        eprintln!("mio-sse-load: --csv: {e}");
        return COULD_NOT_RUN;
    }
    let (checks, code) = verdict::judge(&report, &job.run.threshold);
    if job.run.json {
        println!("{}", output::json::summary(&report, &checks, code, job.run.json_histograms));
    } else {
        print!("{}", output::table::table(&report, &checks, code));
    }
    code
}

/// Runs the whole job in this process: the driver on its own thread, its samples read here.
fn run_here(job: &Job, timeline: &mut Timeline) -> Result<Report, String> {
    let (tx, rx) = mpsc::channel();
    let mut plan = job.plan(None)?;
    plan.samples = Some(tx);
    let driver = std::thread::spawn(move || crate::driver::run(plan));
    for sample in rx {
        timeline.push(&sample);
    }
    driver.join().map_err(|_| "the load loop panicked".to_owned())?.map_err(|e| e.to_string())
}
