//! Training curves, drawn twice: as text in the terminal at the end of a run, and as an SVG file
//! with `--plot PATH` (plotters' pure-Rust SVG backend: no system fonts or libraries).

use std::path::Path;

use plotters::prelude::*;

/// One named curve of `(x, y)` points (e.g. step and loss).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named curve.
    pub fn new(name: &str, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.to_string(),
            points,
        }
    }
}

const MARKS: [char; 4] = ['*', 'o', '+', 'x'];

fn bounds(series: &[Series]) -> Option<(f64, f64, f64, f64)> {
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let mut b: Option<(f64, f64, f64, f64)> = None;
    for &(x, y) in pts {
        b = Some(match b {
            None => (x, x, y, y),
            Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
        });
    }
    b.map(|(x0, x1, y0, y1)| {
        let (x1, y1) = (
            if x1 > x0 { x1 } else { x0 + 1.0 },
            if y1 > y0 { y1 } else { y0 + 1.0 },
        );
        (x0, x1, y0, y1)
    })
}

/// The curves as a `width x height` character chart with a y axis and a legend.
pub fn terminal_plot(
    title: &str,
    x_label: &str,
    series: &[Series],
    width: usize,
    height: usize,
) -> String {
    let Some((x0, x1, y0, y1)) = bounds(series) else {
        return format!("{title}: nothing to plot\n");
    };
    let mut grid = vec![vec![' '; width]; height];
    for (k, s) in series.iter().enumerate() {
        let mark = MARKS[k % MARKS.len()];
        for &(x, y) in &s.points {
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let col = (((x - x0) / (x1 - x0)) * (width - 1) as f64).round() as usize;
            let row = (((y1 - y) / (y1 - y0)) * (height - 1) as f64).round() as usize;
            grid[row.min(height - 1)][col.min(width - 1)] = mark;
        }
    }
    let mut out = format!("{title}\n");
    for (r, row) in grid.iter().enumerate() {
        let label = if r == 0 {
            format!("{y1:>9.3}")
        } else if r == height - 1 {
            format!("{y0:>9.3}")
        } else if r == height / 2 {
            format!("{:>9.3}", (y0 + y1) / 2.0)
        } else {
            " ".repeat(9)
        };
        out.push_str(&format!("{label} │{}\n", row.iter().collect::<String>()));
    }
    out.push_str(&format!("{} └{}\n", " ".repeat(9), "─".repeat(width)));
    let left = format!("{x0:.0}");
    let right = format!("{x1:.0}");
    let gap = width.saturating_sub(left.len() + right.len() + x_label.len()) / 2;
    out.push_str(&format!(
        "{}  {left}{}{x_label}{}{right}\n",
        " ".repeat(9),
        " ".repeat(gap),
        " ".repeat(width.saturating_sub(left.len() + right.len() + x_label.len() + gap))
    ));
    let legend: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(k, s)| format!("{} {}", MARKS[k % MARKS.len()], s.name))
        .collect();
    out.push_str(&format!("{}  {}\n", " ".repeat(9), legend.join("   ")));
    out
}

/// Write the curves as an SVG line chart.
pub fn svg_plot(path: &Path, title: &str, x_label: &str, series: &[Series]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw the plot: {e}", path.display());
    let Some((x0, x1, y0, y1)) = bounds(series) else {
        return Err(format!("{}: nothing to plot", path.display()));
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .draw()
        .map_err(|e| err(&e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (k, s) in series.iter().enumerate() {
        let color = colors[k % colors.len()];
        let pts = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// One labelled point of a scatter chart; `highlighted` points (e.g. the Pareto frontier) are
/// drawn filled and joined by a line, the others hollow.
#[derive(Debug, Clone)]
pub struct ScatterPoint {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub highlighted: bool,
}

/// One panel of [`svg_scatter`]: axis labels and points.
#[derive(Debug, Clone)]
pub struct ScatterPanel {
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
}

/// Write labelled scatter charts side by side as one SVG (e.g. accuracy against latency and
/// against size, with the Pareto frontier highlighted and joined in order of `x`).
pub fn svg_scatter(path: &Path, title: &str, panels: &[ScatterPanel]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw the plot: {e}", path.display());
    if panels.is_empty() || panels.iter().all(|p| p.points.is_empty()) {
        return Err(format!("{}: nothing to plot", path.display()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    let width = 480 * panels.len() as u32;
    let root = SVGBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        let series = [Series::new(
            "points",
            panel.points.iter().map(|p| (p.x, p.y)).collect(),
        )];
        let Some((x0, x1, y0, y1)) = bounds(&series) else {
            continue;
        };
        // A margin so points on the edges (and their labels) stay inside.
        let (dx, dy) = ((x1 - x0) * 0.15, (y1 - y0) * 0.15);
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((x0 - dx)..(x1 + dx), (y0 - dy)..(y1 + dy))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .draw()
            .map_err(|e| err(&e))?;
        let mut front: Vec<(f64, f64)> = panel
            .points
            .iter()
            .filter(|p| p.highlighted && p.x.is_finite() && p.y.is_finite())
            .map(|p| (p.x, p.y))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(front, RED.stroke_width(1)))
            .map_err(|e| err(&e))?;
        for p in panel
            .points
            .iter()
            .filter(|p| p.x.is_finite() && p.y.is_finite())
        {
            let style = if p.highlighted {
                RED.filled()
            } else {
                BLUE.stroke_width(2)
            };
            chart
                .draw_series(std::iter::once(Circle::new((p.x, p.y), 5, style)))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    p.label.clone(),
                    (p.x, p.y),
                    ("sans-serif", 13),
                )))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
