//! The `mio-sse` binary: parse flags, start logging, run the server.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = mio_sse::Config::from_args();
    // Before the first log line: a stalled stderr must never block the event loop.
    // A worker's lines say which worker wrote them: the workers share the supervisor's stderr.
    let prefix = config.worker_index.map(|i| format!("[worker {i}] "));
    if let Err(e) = mio_sse::log_sink::install(prefix) {
        eprintln!("mio-sse: cannot set up non-blocking logging ({e}); logging straight to stderr");
    }
    let code = serve(config);
    mio_sse::log_sink::restore(std::time::Duration::from_secs(2));
    code
}

fn serve(config: mio_sse::Config) -> ExitCode {
    if let Err(e) =
        simple_logger::SimpleLogger::new().with_utc_timestamps().with_level(config.log_level).init()
    {
        eprintln!("mio-sse: cannot start logging: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(supervisor) = config.supervisor_pid
        && !mio_sse::supervisor::follow_supervisor(supervisor)
    {
        log::warn!("the supervisor (pid {supervisor}) is gone; this worker does not start");
        return ExitCode::FAILURE;
    }
    // A certificate that cannot be used stops the start here, before any worker is started to fail.
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key)
        && let Err(e) = mio_sse::conn::tls::load_server_config(cert, key)
    {
        log::error!("{e}");
        return ExitCode::FAILURE;
    }
    if config.workers > 1 {
        return match mio_sse::supervisor::supervise(&config) {
            Ok(code) => code,
            Err(e) => {
                log::error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    match mio_sse::run(config) {
        Ok(mio_sse::Stop::Graceful) => ExitCode::SUCCESS,
        Ok(mio_sse::Stop::Immediate) => ExitCode::from(130),
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
