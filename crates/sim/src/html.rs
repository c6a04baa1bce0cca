//! `report.html`: one self-contained page with hand-written SVG charts (line charts
//! of the per-second series, bar charts of the headline figures), one colour per
//! preset. Hand-written because the charts are a few polylines and rectangles; a
//! plotting crate would add a large dependency for the same output.
//!
//! Not here: computing the figures ([`crate::report`]).

use crate::report::{Report, Row, Series};

const W: f64 = 640.0;
const H: f64 = 220.0;
const PAD: f64 = 48.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// The page for one or more runs of the same scenario.
pub fn page(runs: &[(Report, Series)]) -> String {
    let title = runs.first().map_or("mediamesh sim".to_string(), |(r, _)| {
        format!(
            "mediamesh sim: {} ({} viewers, {} s)",
            r.scenario, r.viewers, r.duration_s
        )
    });
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}svg{{margin:8px 0}}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(&title)
    );
    out.push_str(&sampling_note(runs));
    out.push_str(&legend(runs));
    out.push_str(&table(runs));
    type Pick = fn(&Row) -> f64;
    let charts: [(&str, Pick); 5] = [
        ("Viewers present", |r| r.viewers),
        ("CDN edge egress (Gbit/s)", |r| r.edge_bytes * 8.0 / 1e9),
        ("Origin egress (Mbit/s)", |r| r.origin_bytes * 8.0 / 1e6),
        ("Share of bytes from peers", |r| {
            let t = r.edge_bytes + r.p2p_bytes;
            if t > 0.0 {
                r.p2p_bytes / t
            } else {
                0.0
            }
        }),
        ("Viewers stalled", |r| r.stalled),
    ];
    for (name, pick) in charts {
        out.push_str(&line_chart(name, runs, pick));
    }
    type Bar = fn(&Report) -> f64;
    let bars: [(&str, Bar); 5] = [
        ("Cost (USD)", |r| r.cost_usd),
        ("Start-up p50 (s)", |r| r.startup_p50_s),
        ("Stall ratio (%)", |r| r.stall_ratio * 100.0),
        ("Latency to live p50 (s)", |r| r.latency_to_live_p50_s),
        ("Origin egress (GB)", |r| r.origin_egress_bytes as f64 / 1e9),
    ];
    for (name, pick) in bars {
        out.push_str(&bar_chart(name, runs, pick));
    }
    out.push_str("</body></html>\n");
    out
}

/// Says when the figures are estimated from a sample of swarms (`--max-detailed`).
fn sampling_note(runs: &[(Report, Series)]) -> String {
    match runs.first() {
        Some((r, _)) if r.sample_fraction < 1.0 => format!(
            "<p>Estimated: {} of {} viewers simulated one by one ({:.1} % of the swarms, \
             evenly in every region and rendition) and scaled up; CDN load from all \
             viewers. <code>--max-detailed 0</code> simulates everyone.</p>\n",
            r.simulated_viewers,
            r.viewers,
            r.sample_fraction * 100.0
        ),
        _ => String::new(),
    }
}

fn legend(runs: &[(Report, Series)]) -> String {
    let mut s = String::from("<p>");
    for (i, (r, _)) in runs.iter().enumerate() {
        s.push_str(&format!(
            "<span style=\"color:{}\">&#9632; {}</span> &nbsp; ",
            COLOURS[i % COLOURS.len()],
            esc(&r.preset)
        ));
    }
    s.push_str("</p>\n");
    s
}

fn table(runs: &[(Report, Series)]) -> String {
    let mut s = String::from(
        "<table><tr><th>preset</th><th>p2p share</th><th>edge egress GB</th><th>origin egress GB</th><th>p2p GB</th><th>cost USD</th><th>start-up p50/p95 s</th><th>stall ratio</th><th>latency p50 s</th></tr>\n",
    );
    for (r, _) in runs {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{:.3}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2} / {:.2}</td><td>{:.4}</td><td>{:.2}</td></tr>\n",
            esc(&r.preset),
            r.p2p_share,
            r.edge_egress_bytes as f64 / 1e9,
            r.origin_egress_bytes as f64 / 1e9,
            r.p2p_bytes as f64 / 1e9,
            r.cost_usd,
            r.startup_p50_s,
            r.startup_p95_s,
            r.stall_ratio,
            r.latency_to_live_p50_s
        ));
    }
    s.push_str("</table>\n");
    s
}

fn line_chart(title: &str, runs: &[(Report, Series)], pick: fn(&Row) -> f64) -> String {
    let max_x = runs
        .iter()
        .flat_map(|(_, s)| s.rows.last().map(|r| r.second))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_y = runs
        .iter()
        .flat_map(|(_, s)| s.rows.iter().map(pick))
        .fold(0.0, f64::max);
    let max_y = if max_y > 0.0 { max_y } else { 1.0 };
    let mut s = frame(title, max_x, max_y, "s");
    for (i, (_, series)) in runs.iter().enumerate() {
        let pts: Vec<String> = series
            .rows
            .iter()
            .map(|r| {
                let x = PAD + r.second as f64 / max_x * (W - 2.0 * PAD);
                let y = H - PAD + -pick(r) / max_y * (H - 2.0 * PAD);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            COLOURS[i % COLOURS.len()],
            pts.join(" ")
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn bar_chart(title: &str, runs: &[(Report, Series)], pick: fn(&Report) -> f64) -> String {
    let max_y = runs.iter().map(|(r, _)| pick(r)).fold(0.0, f64::max);
    let max_y = if max_y > 0.0 { max_y } else { 1.0 };
    let mut s = frame(title, 0.0, max_y, "");
    let n = runs.len().max(1) as f64;
    let slot = (W - 2.0 * PAD) / n;
    for (i, (r, _)) in runs.iter().enumerate() {
        let v = pick(r);
        let h = v / max_y * (H - 2.0 * PAD);
        let x = PAD + i as f64 * slot + slot * 0.15;
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{} ({})</text>\n",
            H - PAD - h,
            slot * 0.7,
            COLOURS[i % COLOURS.len()],
            x + slot * 0.35,
            H - PAD + 14.0,
            esc(&r.preset),
            fmt(v)
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn frame(title: &str, max_x: f64, max_y: f64, unit: &str) -> String {
    let mut s = format!(
        "<h3>{}</h3>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\n<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#333\"/>\n<text x=\"4\" y=\"{t}\" font-size=\"10\">{}</text><text x=\"4\" y=\"{b}\" font-size=\"10\">0</text>\n",
        esc(title),
        fmt(max_y),
        b = H - PAD,
        r = W - PAD,
        t = PAD + 4.0,
    );
    if max_x > 0.0 {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}{unit}</text>\n",
            W - PAD,
            H - PAD + 14.0,
            fmt(max_x)
        ));
    }
    s
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_numbers() {
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
        assert_eq!(fmt(1234.5), "1234");
        assert_eq!(fmt(0.01234), "0.012");
    }
}
