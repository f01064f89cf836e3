//! Charts (SVG and PNG through `plotters`): per workload, median wall time
//! and max pause per configuration; and the pause distribution of every
//! configuration that reports individual pauses (else its p50/p99/max).
//!
//! Text needs a TrueType font: plotters' `ab_glyph` backend is given
//! DejaVu Sans (or another font found at [`FONT_PATHS`]); without one the
//! charts are skipped with a message naming the package to install.

use crate::runner::{Report, Summary};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Where a sans-serif TrueType font is looked for.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Register a font with plotters once per process.
fn ensure_font() -> Result<(), String> {
    static FONT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let path = FONT_PATHS
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                format!(
                    "charts skipped: no TrueType font found (looked in {}); `apt-get install fonts-dejavu-core`",
                    FONT_PATHS.join(", ")
                )
            })?;
        let bytes = std::fs::read(path).map_err(|e| format!("charts skipped: cannot read {path}: {e}"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("charts skipped: {path} is not a usable TrueType font"))
    })
    .clone()
}

/// One bar chart: a value per label.
struct Bars<'a> {
    title: String,
    y_label: &'a str,
    labels: Vec<String>,
    values: Vec<f64>,
}

fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    bars: &Bars,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("drawing failed: {e:?}");
    let top = bars.values.iter().cloned().fold(0.0f64, f64::max).max(1e-6) * 1.15;
    let n = bars.values.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&bars.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(70)
        .y_label_area_size(60)
        // `into_segmented` over 0..k gives k + 1 segments.
        .build_cartesian_2d((0..n.max(2) - 1).into_segmented(), 0.0..top)
        .map_err(err)?;
    let labels = bars.labels.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(bars.y_label)
        .x_labels(n)
        .x_label_style(("sans-serif", 12))
        .x_label_formatter(&move |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.values.iter().enumerate().map(|(i, v)| {
            let x0: SegmentValue<usize> = SegmentValue::Exact(i);
            let x1: SegmentValue<usize> = SegmentValue::Exact(i + 1);
            let mut bar = Rectangle::new([(x0, 0.0), (x1, *v)], Palette99::pick(i).filled());
            bar.set_margin(0, 0, 8, 8);
            bar
        }))
        .map_err(err)?;
    Ok(())
}

/// (colour index, label, sorted pauses in ms) per configuration; configurations without
/// individual pauses contribute their p50/p99/max.
fn distributions(summaries: &[&Summary]) -> Vec<(usize, String, Vec<f64>)> {
    summaries
        .iter()
        .filter(|s| s.runs_ok > 0)
        .enumerate()
        .filter(|(_, s)| s.pause_max_ms > 0.0)
        .map(|(colour, s)| {
            let mut v: Vec<f64> = if s.pauses_ns.is_empty() {
                vec![s.pause_p50_ms, s.pause_p99_ms, s.pause_max_ms]
            } else {
                s.pauses_ns.iter().map(|p| *p as f64 / 1e6).collect()
            };
            v.sort_by(|a, b| a.total_cmp(b));
            (colour, s.config.clone(), v)
        })
        .collect()
}

fn draw_distribution<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[(usize, String, Vec<f64>)],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("drawing failed: {e:?}");
    let top = series
        .iter()
        .flat_map(|(_, _, v)| v.last().copied())
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.1;
    let mut chart: ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    > = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..100.0, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile of pauses")
        .y_desc("pause ms")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for (colour, label, v) in series {
        let color = Palette99::pick(*colour);
        let n = v.len() as f64;
        let points: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .map(|(k, p)| ((k + 1) as f64 / n * 100.0, *p))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Draw one workload's figures onto a root area.
fn draw_workload<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    workload: &str,
    summaries: &[&Summary],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)
        .map_err(|e| format!("drawing failed: {e:?}"))?;
    let ok: Vec<&&Summary> = summaries.iter().filter(|s| s.runs_ok > 0).collect();
    let labels: Vec<String> = ok.iter().map(|s| s.config.clone()).collect();
    let array_writer = workload == "array-writer";
    // array-writer has no collector, hence no pause panel.
    let panels = if array_writer { 2 } else { 3 };
    let (left, rest) = root.split_horizontally(root.dim_in_pixel().0 as i32 / panels);
    let (middle, right) = if array_writer {
        (rest.clone(), rest.clone())
    } else {
        rest.split_horizontally(rest.dim_in_pixel().0 as i32 / 2)
    };
    let time = Bars {
        title: format!(
            "{workload}: {}",
            if array_writer {
                "total slowdown"
            } else {
                "median wall time"
            }
        ),
        y_label: if array_writer { "x untracked" } else { "ms" },
        labels: labels.clone(),
        values: ok
            .iter()
            .map(|s| {
                if array_writer {
                    s.extra
                        .iter()
                        .find(|(n, _)| n == "total_slowdown")
                        .map(|(_, v)| *v)
                        .unwrap_or(0.0)
                } else {
                    s.wall_ms
                }
            })
            .collect(),
    };
    draw_bars(&left, &time)?;
    let pause = Bars {
        title: format!(
            "{workload}: {}",
            if array_writer {
                "harvest per pass"
            } else {
                "max pause"
            }
        ),
        y_label: "ms",
        labels,
        values: ok
            .iter()
            .map(|s| {
                if array_writer {
                    s.extra
                        .iter()
                        .find(|(n, _)| n == "harvest_pass_ns")
                        .map(|(_, v)| *v / 1e6)
                        .unwrap_or(0.0)
                } else {
                    s.pause_max_ms
                }
            })
            .collect(),
    };
    draw_bars(&middle, &pause)?;
    if !array_writer {
        let series = distributions(summaries);
        if series.is_empty() {
            right
                .titled(
                    &format!("{workload}: no collector pauses in this run"),
                    ("sans-serif", 18),
                )
                .map_err(|e| format!("drawing failed: {e:?}"))?;
        } else {
            draw_distribution(&right, &format!("{workload}: pause distribution"), &series)?;
        }
    }
    root.present()
        .map_err(|e| format!("writing the chart failed: {e:?}"))
}

/// Write `<workload>.svg` and `<workload>.png` for every workload into
/// `dir`; returns the paths written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, String> {
    ensure_font()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut workloads: Vec<&str> = Vec::new();
    for s in &report.summaries {
        if !workloads.contains(&s.workload.as_str()) {
            workloads.push(&s.workload);
        }
    }
    let mut written = Vec::new();
    for w in workloads {
        let summaries: Vec<&Summary> = report
            .summaries
            .iter()
            .filter(|s| s.workload == w)
            .collect();
        let size = (1500u32, 500u32);
        let svg = dir.join(format!("{w}.svg"));
        draw_workload(
            SVGBackend::new(&svg, size).into_drawing_area(),
            w,
            &summaries,
        )?;
        written.push(svg);
        let png = dir.join(format!("{w}.png"));
        draw_workload(
            BitMapBackend::new(&png, size).into_drawing_area(),
            w,
            &summaries,
        )?;
        written.push(png);
    }
    Ok(written)
}
