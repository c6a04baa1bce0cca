//! Flags of `mediamesh sim` and its output folder: runs the scenario under each preset
//! asked for, shows a progress bar on stderr, and writes `report.json`, the per-second
//! CSV and `report.html`.
//!
//! Not here: the simulation (crate `sim`).
//!
//! Layout of `--out`: one preset → `report.json`, `series.csv`, `report.html`; several
//! presets → `report.json` (`{"presets": {name: report, …}}`), `report.html` comparing
//! them, and `<preset>/report.json` plus `<preset>/series.csv` for each. `--curve` →
//! `curve.json` and `curve.md` (latency to live against P2P share, also printed) and
//! `<point>/report.json` plus `<point>/series.csv` for each point of the curve.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sim::{Latency, Preset, Scenario};

/// Flags of `sim`.
#[derive(Args, Debug, Default)]
pub struct SimArgs {
    /// Scenario file (TOML); without it the built-in 10-minute live event.
    pub scenario: Option<PathBuf>,
    /// Delivery preset: cdn-only, p2p-only, hybrid, hybrid-edge-transcode; repeat or
    /// separate with commas to compare several; `all` for the four.
    #[arg(long)]
    pub preset: Vec<String>,
    /// Distinct viewers over the event.
    #[arg(long)]
    pub viewers: Option<u64>,
    /// Event length in seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Random seed; the same scenario and seed give the same report.json.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output folder [default: sim-out].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Simulate at most this many viewers one by one, sampling whole swarms above it
    /// (0 = all) [default: 50000].
    #[arg(long)]
    pub max_detailed: Option<u64>,
    /// Worker threads (0 = all cores); does not change the results.
    #[arg(long)]
    pub threads: Option<u32>,
    /// Viewers' latency target, as `mediamesh peer --latency`: low (LL-HLS parts at
    /// the part hold-back, parts shared), balanced (one target duration more, parts
    /// shared), max-offload (three target durations back, whole segments)
    /// [default: the scenario's `peers.latency`, max-offload].
    #[arg(long, value_parser = ["low", "balanced", "max-offload"])]
    pub latency: Option<String>,
    /// Seconds behind the live edge viewers join, as `mediamesh peer --live-offset`
    /// [default: the latency target's].
    #[arg(long)]
    pub live_offset: Option<f64>,
    /// Run the latency-to-live against P2P-share curve of the preset: LL-HLS with
    /// P2P off, parts at growing hold-backs, `balanced`, whole segments; writes
    /// curve.json and curve.md and prints the table.
    #[arg(long)]
    pub curve: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: SimArgs) -> Result<()> {
    let mut base = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Scenario::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Scenario::default(),
    };
    if let Some(v) = args.viewers {
        base.viewers = v;
    }
    if let Some(d) = args.duration {
        base.duration_s = d;
    }
    if let Some(s) = args.seed {
        base.seed = s;
    }
    if let Some(m) = args.max_detailed {
        base.sim.max_detailed_viewers = m;
    }
    if let Some(t) = args.threads {
        base.sim.threads = t;
    }
    if let Some(l) = &args.latency {
        base.peers.latency = Latency::parse(l)?;
    }
    if let Some(secs) = args.live_offset {
        anyhow::ensure!(
            secs.is_finite() && (0.0..=3_600.0).contains(&secs),
            "--live-offset {secs}: want 0 to 3600 seconds"
        );
        base.peers.live_offset_ms = (secs * 1000.0).round() as u64;
    }
    let presets = presets(&args.preset, base.preset)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("sim-out"));
    if args.curve {
        anyhow::ensure!(
            presets.len() == 1,
            "--curve runs one preset at several latency targets; give one --preset"
        );
        anyhow::ensure!(
            args.latency.is_none() && args.live_offset.is_none(),
            "--curve picks the latency targets and live offsets itself; drop --latency \
             and --live-offset"
        );
        base.preset = presets[0];
        return run_curve(&base, &out, args.quiet);
    }
    base.validate()?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut runs = Vec::new();
    for preset in &presets {
        let scenario = Scenario {
            preset: *preset,
            ..base.clone()
        };
        let bar = progress_bar(args.quiet, preset.name(), scenario.duration_s + 1);
        let started = std::time::Instant::now();
        let outcome = sim::run(&scenario, sim::RunOptions::default(), &mut |done, _| {
            bar.set_position(done)
        })?;
        bar.finish();
        let r = &outcome.report;
        tracing::info!(
            preset = preset.name(),
            viewers = r.viewers,
            simulated = r.simulated_viewers,
            p2p_share = r.p2p_share,
            cost_usd = r.cost_usd,
            startup_p50_s = r.startup_p50_s,
            stall_ratio = r.stall_ratio,
            wall_s = started.elapsed().as_secs_f64(),
            "simulated"
        );
        runs.push((outcome.report, outcome.series));
    }
    write_outputs(&out, &runs)?;
    println!("{}", out.join("report.html").display());
    Ok(())
}

fn progress_bar(quiet: bool, name: &str, len: u64) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>22} [{bar:40}] {pos}/{len} s simulated, {elapsed} elapsed, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar
}

/// `--curve`: every point of [`sim::curve::points`] on the same audience, then the
/// table (stdout and `curve.md`) and `curve.json`.
fn run_curve(base: &Scenario, out: &std::path::Path, quiet: bool) -> Result<()> {
    let points = sim::curve::points(base)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    for p in &points {
        let bar = progress_bar(quiet, &p.label, p.scenario.duration_s + 1);
        let t0 = std::time::Instant::now();
        let o = sim::run(&p.scenario, sim::RunOptions::default(), &mut |done, _| {
            bar.set_position(done)
        })?;
        bar.finish();
        let r = &o.report;
        tracing::info!(
            point = p.label.as_str(),
            latency_p50_s = r.latency_to_live_p50_s,
            p2p_share = r.p2p_share,
            stall_ratio = r.stall_ratio,
            wall_s = t0.elapsed().as_secs_f64(),
            "simulated"
        );
        let dir = out.join(&p.label);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, text) in [
            ("report.json", o.report.to_json()),
            ("series.csv", o.series.to_csv()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        reports.push((p.label.clone(), o.report));
    }
    let curve = sim::curve::Curve::new(base, &reports);
    let table = curve.to_table();
    for (name, text) in [("curve.json", curve.to_json()), ("curve.md", table.clone())] {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!(
        points = points.len(),
        wall_s = started.elapsed().as_secs_f64(),
        "curve done"
    );
    println!("{table}");
    println!("{}", out.join("curve.json").display());
    Ok(())
}

fn presets(flags: &[String], default: Preset) -> Result<Vec<Preset>> {
    let mut out = Vec::new();
    for name in flags.iter().flat_map(|f| f.split(',')) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if name == "all" {
            out.extend(Preset::ALL);
        } else {
            out.push(Preset::parse(name)?);
        }
    }
    if out.is_empty() {
        out.push(default);
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(p);
        seen.push(*p);
        new
    });
    Ok(out)
}

fn write_outputs(out: &std::path::Path, runs: &[(sim::Report, sim::Series)]) -> Result<()> {
    let write = |name: PathBuf, text: String| -> Result<()> {
        std::fs::write(&name, text).with_context(|| format!("writing {}", name.display()))
    };
    if let [(report, series)] = runs {
        write(out.join("report.json"), report.to_json())?;
        write(out.join("series.csv"), series.to_csv())?;
    } else {
        let mut all = serde_json::Map::new();
        for (report, series) in runs {
            let dir = out.join(&report.preset);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            write(dir.join("report.json"), report.to_json())?;
            write(dir.join("series.csv"), series.to_csv())?;
            all.insert(report.preset.clone(), serde_json::to_value(report)?);
        }
        let mut top = serde_json::Map::new();
        top.insert("presets".into(), serde_json::Value::Object(all));
        write(
            out.join("report.json"),
            serde_json::to_string_pretty(&top)? + "\n",
        )?;
    }
    write(out.join("report.html"), sim::html::page(runs))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_lists() {
        assert_eq!(presets(&[], Preset::Hybrid).unwrap(), vec![Preset::Hybrid]);
        assert_eq!(
            presets(
                &["cdn-only,hybrid".into(), "cdn-only".into()],
                Preset::Hybrid
            )
            .unwrap(),
            vec![Preset::CdnOnly, Preset::Hybrid]
        );
        assert_eq!(presets(&["all".into()], Preset::Hybrid).unwrap().len(), 4);
        assert!(presets(&["nope".into()], Preset::Hybrid).is_err());
    }
}
