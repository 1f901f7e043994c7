//! The `--plot` chart of `sluice bench disk`: read GB/s against chunk size (log scale), one
//! line per (reader, queue depth), one panel per pattern; the best cell of each panel circled
//! in the highlight colour and labelled. Colour follows the depth; io_uring is drawn solid with
//! dots, pread dashed with triangles; the legend has a strip of its own at the right of each
//! panel, so it never hides a point. Unavailable cells are left out.

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::measure::{best_of, Cell, Pattern, ReaderSel};
use super::size_label;
use crate::cli::bench::plot::{palette, Figure, HIGHLIGHT};

/// Pixel size of one panel, its legend strip included.
const PANEL_SIZE: (u32, u32) = (860, 560);
/// Width of the legend strip at the right of each panel.
const LEGEND_WIDTH: u32 = 140;

/// The whole chart.
pub(crate) struct DiskFigure<'a> {
    cells: &'a [Cell],
    patterns: &'a [Pattern],
}

impl<'a> DiskFigure<'a> {
    /// A chart of `cells` with one panel for each of `patterns`.
    pub(crate) fn new(cells: &'a [Cell], patterns: &'a [Pattern]) -> DiskFigure<'a> {
        DiskFigure { cells, patterns }
    }
}

impl Figure for DiskFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let panels = self.patterns.len().max(1) as u32;
        (PANEL_SIZE.0 * panels, PANEL_SIZE.1)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let panels = root.split_evenly((1, self.patterns.len().max(1)));
        for (area, &pattern) in panels.iter().zip(self.patterns) {
            draw_panel(area, self.cells, pattern)?;
        }
        Ok(())
    }
}

/// x coordinate of a chunk size: log2 of its bytes.
fn x_of(chunk_bytes: usize) -> f64 {
    (chunk_bytes as f64).log2()
}

/// One line of a panel: a reader at one depth, points in chunk order.
struct Line {
    reader: ReaderSel,
    queue_depth: usize,
    points: Vec<(f64, f64)>,
}

fn lines(cells: &[Cell], pattern: Pattern) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for cell in cells.iter().filter(|c| c.setting.pattern == pattern) {
        let Some(gb) = cell.read_gb_per_s() else {
            continue;
        };
        let s = &cell.setting;
        let point = (x_of(s.chunk_bytes), gb);
        match lines
            .iter_mut()
            .find(|l| (l.reader, l.queue_depth) == (s.reader, s.queue_depth))
        {
            Some(line) => line.points.push(point),
            None => lines.push(Line {
                reader: s.reader,
                queue_depth: s.queue_depth,
                points: vec![point],
            }),
        }
    }
    for line in &mut lines {
        line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cells: &[Cell],
    pattern: Pattern,
) -> anyhow::Result<()> {
    let lines = lines(cells, pattern);
    let title = format!("{} reads", pattern.name());
    let (width, _) = area.dim_in_pixel();
    let (area, legend) = area.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
    let points = || lines.iter().flat_map(|l| l.points.iter().copied());
    let (x_lo, x_hi) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    if x_lo > x_hi {
        let style = TextStyle::from(("sans-serif", 20).into_font());
        area.draw_text(&format!("{title}: no cell measured"), &style, (20, 20))
            .map_err(draw_err)?;
        return Ok(());
    }
    let y_hi = points().map(|(_, y)| y).fold(0.0, f64::max).max(1e-3) * 1.25;
    let mut depths: Vec<usize> = lines.iter().map(|l| l.queue_depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((x_lo - 0.4)..(x_hi + 0.4), 0.0..y_hi)
        .map_err(draw_err)?;
    let label_chunk = |x: &f64| {
        let r = x.round();
        if (x - r).abs() < 1e-6 && (0.0..63.0).contains(&r) {
            size_label(1u64 << r as u32)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc("chunk (request) size")
        .y_desc("read GB/s")
        .x_labels((x_hi - x_lo) as usize + 3)
        .x_label_formatter(&label_chunk)
        .draw()
        .map_err(draw_err)?;
    let color = |line: &Line| palette(depths.binary_search(&line.queue_depth).unwrap_or(0));
    for line in &lines {
        draw_line(&mut chart, line, color(line))?;
    }
    if let Some(best) = best_of(cells, pattern) {
        draw_best(&mut chart, best, x_lo, x_hi)?;
    }
    for (row, line) in lines.iter().enumerate() {
        draw_legend_row(&legend, row, line, color(line))?;
    }
    Ok(())
}

/// Row `row` of the legend strip: a sample of the line's stroke and marker, and its name.
fn draw_legend_row<DB: DrawingBackend>(
    legend: &DrawingArea<DB, Shift>,
    row: usize,
    line: &Line,
    color: RGBColor,
) -> anyhow::Result<()> {
    let y = 60 + 22 * row as i32;
    let stroke = color.stroke_width(2);
    let at = EmptyElement::at((4, y));
    match line.reader {
        ReaderSel::Uring => legend.draw(
            &(at + PathElement::new(vec![(0, 0), (24, 0)], stroke)
                + Circle::new((12, 0), 4, color.filled())),
        ),
        ReaderSel::Pread => legend.draw(
            &(at + PathElement::new(vec![(0, 0), (7, 0)], stroke)
                + PathElement::new(vec![(17, 0), (24, 0)], stroke)
                + TriangleMarker::new((12, 0), 5, color.filled())),
        ),
    }
    .map_err(draw_err)?;
    let name = format!("{} qd {}", line.reader.name(), line.queue_depth);
    let style =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    legend.draw_text(&name, &style, (36, y)).map_err(draw_err)?;
    Ok(())
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    line: &Line,
    color: RGBColor,
) -> anyhow::Result<()> {
    let points = line.points.clone();
    match line.reader {
        ReaderSel::Uring => {
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(draw_err)?;
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, color.filled())),
                )
                .map_err(draw_err)?;
        }
        ReaderSel::Pread => {
            chart
                .draw_series(DashedLineSeries::new(
                    points.clone(),
                    6,
                    4,
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?;
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| TriangleMarker::new(p, 5, color.filled())),
                )
                .map_err(draw_err)?;
        }
    }
    Ok(())
}

/// Circles the best cell and labels it with its setting and GB/s, on the side with room.
fn draw_best<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    best: &Cell,
    x_lo: f64,
    x_hi: f64,
) -> anyhow::Result<()> {
    let s = &best.setting;
    let gb = best.read_gb_per_s().unwrap_or(0.0);
    let at = (x_of(s.chunk_bytes), gb);
    let label = format!(
        "best: {} qd {}, {}: {gb:.2} GB/s",
        s.reader.name(),
        s.queue_depth,
        size_label(s.chunk_bytes as u64)
    );
    let right_half = at.0 > (x_lo + x_hi) / 2.0;
    let (h, dx) = if right_half {
        (HPos::Right, -10)
    } else {
        (HPos::Left, 10)
    };
    let style = TextStyle::from(("sans-serif", 16).into_font())
        .color(&HIGHLIGHT)
        .pos(Pos::new(h, VPos::Bottom));
    let mark = EmptyElement::at(at)
        + Circle::new((0, 0), 9, HIGHLIGHT.stroke_width(3))
        + Text::new(label, (dx, -10), style);
    chart.draw_series(std::iter::once(mark)).map_err(draw_err)?;
    Ok(())
}

fn draw_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}
