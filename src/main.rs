//! The `mio-sse` binary: parse flags, start logging, run the server.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = mio_sse::Config::from_args();
    if let Err(e) =
        simple_logger::SimpleLogger::new().with_utc_timestamps().with_level(config.log_level).init()
    {
        eprintln!("mio-sse: cannot start logging: {e}");
        return ExitCode::FAILURE;
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
