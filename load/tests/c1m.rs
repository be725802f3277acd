//! `c1m` at a small scale, as CI can afford: a few thousand streams on two workers and two load
//! processes, a few seconds of hold, one rolling restart; its last line is the JSON the full run prints.

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn a_small_c1m_run_holds_every_stream_through_a_rolling_restart() {
    if Command::new("redis-server").arg("--version").output().is_err() {
        panic!("redis-server is needed (scripts/test.sh installs it)");
    }
    let load = Path::new(env!("CARGO_BIN_EXE_mio-sse-load"));
    let release = load.parent().and_then(Path::file_name).is_some_and(|profile| profile == "release");
    // The server binary next to this one (built if need be), as the load tests use it.
    let server = mio_sse_load::bench::server::server_beside(load, release).unwrap_or_else(|e| panic!("{e}"));
    let bin_dir = server.parent().expect("the binaries' directory");
    let out_dir = std::env::temp_dir().join(format!("c1m-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_c1m"))
        .args([
            "3000",
            "--hold-s",
            "3",
            "--per-worker",
            "1500",
            "--per-load-process",
            "1500",
            "--ramp",
            "3000",
        ])
        .args(["--interval-ms", "1000", "--publish-every-ms", "500", "--rolling-restart"])
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out-dir")
        .arg(&out_dir)
        .output()
        .expect("run c1m");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line is not JSON ({e}):\n{stdout}\n{stderr}"));
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(u64::MAX);
    assert_eq!(n(&json["requested"]), 3000, "{json}");
    assert_eq!(n(&json["held"]), 3000, "{json}\n{stderr}");
    assert_eq!(n(&json["failures"]), 0, "{json}");
    assert!(n(&json["ticks_min_per_stream"]) >= 2, "{json}");
    for key in ["opens_per_s", "server_rss_bytes", "load_rss_bytes", "slab_bytes", "tcp_mem_pages", "hold_s"]
    {
        assert!(json[key].is_number(), "{key} in {json}");
    }
    // The restart's figures: every stream back within a minute of its worker's restart, nothing lost,
    // skipped or repeated, and the figures the report promises all there.
    let restart = &json["restart"];
    assert_eq!(restart["all_back"], true, "{json}\n{stderr}");
    assert_eq!(n(&restart["not_back"]), 0, "{json}");
    let ids = ["lost", "jumps", "duplicated", "decreases"].map(|key| n(&restart[key]));
    assert_eq!(ids, [0; 4], "lost, jumps, duplicated, decreases: {json}");
    assert!(n(&restart["published"]) > 0, "{json}");
    let back = &restart["back_ms"];
    assert!(n(&back["count"]) >= 3000, "every stream came back at least once: {json}");
    for key in ["p50", "p99", "max"] {
        assert!(back[key].as_f64().is_some_and(|ms| ms > 0.0 && ms < 60_000.0), "back_ms.{key}: {json}");
    }
    assert!(n(&restart["reconnects_peak_per_s"]) > 0, "{json}");
    assert!(restart["retried"].is_object() && restart["kernel_tcp"]["OutRsts"].is_number(), "{json}");
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status.code());
    let _ = std::fs::remove_dir_all(&out_dir);
}
