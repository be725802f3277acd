//! The benchmark's two SVG plots, written by hand (no plotting crate): server memory against open
//! streams, and the publish-to-receive latency percentile curve.
//!
//! Rules: pure functions from figures to SVG text; fixed 640×360 canvas, axes and labels in the same
//! places in both plots, so they sit side by side in the README.

use super::figures::{FanoutFigures, HoldFigures};

/// Server RSS against open streams, with the bytes per stream marked.
pub fn memory_svg(hold: &[HoldFigures]) -> String {
    let (w, h, pad) = (640.0, 360.0, 60.0);
    let max_n = hold.iter().map(|f| f.streams).max().unwrap_or(1) as f64;
    let max_kib = hold.iter().map(|f| f.rss_kib).max().unwrap_or(1) as f64 * 1.1;
    let x = |n: f64| pad + n / max_n * (w - 2.0 * pad);
    let y = |kib: f64| h - pad - kib / max_kib * (h - 2.0 * pad);
    let mut svg = svg_open(w, h, "mio-sse: server resident memory against open streams");
    svg.push_str(&axes(w, h, pad, "open streams", "RSS (KiB)"));
    let points: Vec<String> = std::iter::once((0.0, hold.first().map_or(0, |f| f.rss_idle_kib) as f64))
        .chain(hold.iter().map(|f| (f.streams as f64, f.rss_kib as f64)))
        .map(|(n, kib)| format!("{:.1},{:.1}", x(n), y(kib)))
        .collect();
    svg.push_str(&format!(
        r##"<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    ));
    for f in hold {
        let (px, py) = (x(f.streams as f64), y(f.rss_kib as f64));
        let (anchor, dx) = if px < w / 2.0 { ("start", 8.0) } else { ("end", -8.0) };
        svg.push_str(&format!(
            r##"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="#2563eb"/><text x="{:.1}" y="{:.1}" font-size="12" text-anchor="{anchor}">{} streams: {} KiB ({:.0} B/stream)</text><text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            px + dx,
            py - 8.0,
            f.streams,
            f.rss_kib,
            f.bytes_per_stream,
            h - pad + 14.0,
            f.streams
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{:.0}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">0</text>"##,
        pad - 4.0,
        y(max_kib / 1.1) + 4.0,
        max_kib / 1.1,
        pad - 4.0,
        h - pad + 4.0
    ));
    svg.push_str("</svg>\n");
    svg
}

/// The latency distribution as a percentile curve (log-scaled tail), from the 5 events/s run.
pub fn latency_svg(f: &FanoutFigures) -> String {
    let (w, h, pad) = (640.0, 360.0, 60.0);
    let quantiles = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0];
    let max_ms = f.latency.max() as f64 / 1000.0 * 1.1 + 1e-9;
    // x: the "nines" of a quantile, -log10(1 - q), capped at 4.
    let nines = |q: f64| (-(1.0 - q).max(1e-4).log10()).min(4.0);
    let x = |q: f64| pad + nines(q) / 4.0 * (w - 2.0 * pad);
    let y = |ms: f64| h - pad - ms / max_ms * (h - 2.0 * pad);
    let title = format!("publish → receive latency, {} events at 5/s to {} streams", f.events, f.streams);
    let mut svg = svg_open(w, h, &title);
    svg.push_str(&axes(w, h, pad, "percentile", "latency (ms)"));
    let points: Vec<String> =
        quantiles.iter().map(|&q| format!("{:.1},{:.1}", x(q), y(f.latency.at(q) as f64 / 1000.0))).collect();
    svg.push_str(&format!(
        r##"<polyline fill="none" stroke="#dc2626" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    ));
    for (q, label) in [(0.5, "50"), (0.9, "90"), (0.99, "99"), (0.999, "99.9"), (0.9999, "99.99")] {
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{label}</text>"##,
            x(q),
            h - pad + 14.0
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{:.0}</text>"##,
        pad - 4.0,
        y(max_ms / 1.1) + 4.0,
        max_ms / 1.1
    ));
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let ms = f.latency.at(q) as f64 / 1000.0;
        svg.push_str(&format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#dc2626"/><text x="{:.1}" y="{:.1}" font-size="12">{label} {ms:.1} ms</text>"##,
            x(q),
            y(ms),
            x(q) + 6.0,
            y(ms) - 6.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn svg_open(w: f64, h: f64, title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="15" text-anchor="middle">{title}</text>"##,
        w / 2.0
    )
}

fn axes(w: f64, h: f64, pad: f64, x_label: &str, y_label: &str) -> String {
    format!(
        r##"<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="#444"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="#444"/><text x="{cx}" y="{lx}" font-size="12" text-anchor="middle">{x_label}</text><text x="16" y="{cy}" font-size="12" text-anchor="middle" transform="rotate(-90 16 {cy})">{y_label}</text>"##,
        b = h - pad,
        r = w - pad,
        cx = w / 2.0,
        lx = h - pad / 3.0,
        cy = h / 2.0
    )
}
