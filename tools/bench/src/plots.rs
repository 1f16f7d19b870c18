//! BENCHMARKS.md's plots (PNG, plotters): latency percentiles against arrival rate for GET by
//! id (gateway and ceiling) and for POST, and the import's progress over time.
//!
//! Text is drawn with DejaVu Sans from the system (Debian's `fonts-dejavu-core`, which the
//! bootstrap installs).

use anyhow::Context as _;
use plotters::prelude::*;

use crate::interactive::{Read, Run, Write};
use crate::report::Results;

pub(crate) const DIR: &str = "bench/plots";
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (960, 600);

/// One latency percentile of a run, in milliseconds.
type Percentile = fn(&Run) -> f64;

fn register_font() -> anyhow::Result<()> {
    let bytes =
        std::fs::read(FONT).with_context(|| format!("{FONT}: install fonts-dejavu-core (deploy/bootstrap.sh does)"))?;
    // plotters keeps the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{FONT} is not a font plotters can read"))
}

pub(crate) fn draw(results: &Results) -> anyhow::Result<()> {
    std::fs::create_dir_all(DIR)?;
    register_font()?;
    let by_id = |server: &'static str| {
        let runs: Vec<&Run> = results
            .reads
            .iter()
            .filter(|r| r.operation == Read::ById.label() && r.server == server && r.offered_per_second.is_some())
            .collect();
        (server, runs)
    };
    latency(
        &format!("{DIR}/get-latency.png"),
        "GET /users/{id}: latency against arrival rate",
        &[by_id("gateway"), by_id("ceiling")],
    )?;
    let creates: Vec<&Run> = results.writes.iter().filter(|r| r.operation == Write::Create.label()).collect();
    latency(
        &format!("{DIR}/post-latency.png"),
        "POST /users -> 201 (visible): latency against arrival rate",
        &[("gateway", creates)],
    )?;
    if let Some(import) = &results.import {
        progress(&format!("{DIR}/import-progress.png"), import.rows, &import.progress)?;
    }
    Ok(())
}

/// p50, p99 and p99.9 of each series against the offered rate, both axes logarithmic.
fn latency(path: &str, title: &str, series: &[(&str, Vec<&Run>)]) -> anyhow::Result<()> {
    let points = |runs: &[&Run], pick: Percentile| {
        let mut points: Vec<(f64, f64)> =
            runs.iter().filter_map(|r| Some((r.offered_per_second?, pick(r).max(0.01)))).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        // One point per rate: the last run at it.
        points.dedup_by(|later, earlier| later.0 == earlier.0);
        points
    };
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, runs)| points(runs, |r| r.p999_ms)).collect();
    let (x_max, y_max) = all.iter().fold((10.0f64, 1.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let x_min = all.iter().map(|p| p.0).fold(x_max, f64::min).min(x_max) / 1.5;
    let y_min = series.iter().flat_map(|(_, runs)| points(runs, |r| r.p50_ms)).map(|p| p.1).fold(y_max, f64::min) / 1.5;

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((x_min..x_max * 1.5).log_scale(), (y_min..y_max * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("arrival rate (requests/s)")
        .y_desc("latency (ms)")
        .x_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    let percentiles: [(&str, Percentile); 3] = [("p50", |r| r.p50_ms), ("p99", |r| r.p99_ms), ("p99.9", |r| r.p999_ms)];
    for (s, (name, runs)) in series.iter().enumerate() {
        let color = colors[s % colors.len()];
        for (p, (label, pick)) in percentiles.iter().enumerate() {
            let style = ShapeStyle { color: color.mix(1.0 - 0.3 * p as f64), filled: true, stroke_width: 2 };
            let line = points(runs, *pick);
            chart
                .draw_series(LineSeries::new(line.clone(), style))?
                .label(format!("{name} {label}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart.draw_series(line.into_iter().map(|point| Circle::new(point, 3, style)))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Users readable through the gateway against seconds since the upload began.
fn progress(path: &str, rows: u64, samples: &[(f64, u64)]) -> anyhow::Result<()> {
    let seconds = samples.last().map_or(1.0, |s| s.0).max(1.0);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Import of {rows} rows: users readable through the gateway"), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..seconds * 1.05, 0u64..rows + rows / 20)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the upload began")
        .y_desc("users readable")
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(LineSeries::new(samples.iter().copied(), ShapeStyle::from(&BLUE).stroke_width(2)))?;
    root.present()?;
    Ok(())
}
