//! `c1m`: a million SSE streams on this machine in one command (see `mio_sse_load::c1m`); `bench/c1m.sh`
//! builds and runs it.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = mio_sse_load::c1m::Args::parse();
    match mio_sse_load::c1m::run(&args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("c1m: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
