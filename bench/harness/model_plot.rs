//! The chart of `sluice bench model --plot FILE`: on top the bandwidth waterfall, disk → host →
//! device → compute, each link's measured GB/s with the bytes it carries per token and the time
//! that takes, the bottleneck in red; below, the last decode sweep as a timeline, one row per
//! layer (and the head): when its weights were being read, when the host stalled on them, and
//! when it computed.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;

use super::bound::{Bound, Demand, Link};
use super::model::Links;
use super::plot::{draw_err, draw_legend, palette, Figure, HIGHLIGHT};
use crate::engine::layer_times::RowSpans;

/// Grey of a link no byte crosses.
const UNUSED: RGBColor = RGBColor(200, 200, 200);
const READ: RGBColor = RGBColor(158, 202, 225);
const STALL: RGBColor = HIGHLIGHT;
const COMPUTE: RGBColor = RGBColor(44, 160, 44);

/// Everything the chart shows.
pub(super) struct ModelFigure<'a> {
    pub title: String,
    pub links: &'a Links,
    pub demand: &'a Demand,
    pub bound: &'a Bound,
    pub achieved_tok_per_s: f64,
    pub spans: &'a [RowSpans],
    pub row_names: &'a [String],
}

/// One bar of the waterfall.
struct Bar {
    name: &'static str,
    gb_per_s: Option<f64>,
    /// Bytes per token and seconds per token over this link (`None`: not a pacing link).
    carries: Option<(u64, f64)>,
    link: Option<Link>,
}

impl Figure for ModelFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let rows = self.spans.len().max(1) as u32;
        (1200, 520 + (rows * 16).clamp(240, 1400))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = root
            .titled(&self.title, ("sans-serif", 22))
            .map_err(draw_err)?;
        let (top, bottom) = root.split_vertically(440);
        self.waterfall(&top).map_err(draw_err)?;
        self.timeline(&bottom).map_err(draw_err)?;
        Ok(())
    }
}

impl ModelFigure<'_> {
    fn bars(&self) -> [Bar; 4] {
        let (d, b) = (self.demand, self.bound);
        [
            Bar {
                name: "disk",
                gb_per_s: Some(self.links.disk_gb_per_s),
                carries: Some((d.streamed_bytes, b.disk_s)),
                link: Some(Link::Disk),
            },
            Bar {
                name: "host memory",
                gb_per_s: Some(self.links.host_gb_per_s),
                carries: None,
                link: None,
            },
            Bar {
                name: "device (PCIe)",
                gb_per_s: self.links.pcie_gb_per_s,
                carries: self.links.pcie_gb_per_s.map(|_| (d.copied_bytes, b.pcie_s)),
                link: Some(Link::Pcie),
            },
            Bar {
                name: "compute",
                gb_per_s: Some(self.links.compute_gb_per_s),
                carries: Some((0, b.compute_s)),
                link: Some(Link::Compute),
            },
        ]
    }

    fn waterfall<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let bars = self.bars();
        let top = bars.iter().filter_map(|b| b.gb_per_s).fold(1.0, f64::max) * 1.3;
        let caption = format!(
            "links measured in this run: predicted {:.2} tok/s ({}-bound), achieved {:.2} tok/s",
            self.bound.predicted_tok_per_s, self.bound.bottleneck, self.achieved_tok_per_s
        );
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..4.0, 0.0..top)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc("GB/s")
            .draw()
            .map_err(draw_err)?;
        for (i, bar) in bars.iter().enumerate() {
            let x0 = i as f64 + 0.15;
            let x1 = i as f64 + 0.85;
            let is_bottleneck = bar.link == Some(self.bound.bottleneck);
            // A link no byte crosses and no time is spent on is greyed out.
            let idle = bar.carries.is_some_and(|(bytes, s)| bytes == 0 && s <= 0.0);
            let colour = match (bar.gb_per_s, idle, is_bottleneck) {
                (_, _, true) => HIGHLIGHT,
                (Some(_), false, _) => palette(i),
                _ => UNUSED,
            };
            let height = bar.gb_per_s.unwrap_or(top * 0.02);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x1, height)],
                    colour.filled(),
                )))
                .map_err(draw_err)?;
            let value = match bar.gb_per_s {
                Some(r) => format!("{r:.2} GB/s"),
                None => "not measured".into(),
            };
            let load = match (bar.link, bar.carries) {
                (Some(Link::Compute), Some((_, s))) => format!("{:.2} ms/token", s * 1e3),
                (Some(_), Some((bytes, s))) if bytes > 0 => {
                    format!("{:.1} MB/token, {:.2} ms", bytes as f64 / 1e6, s * 1e3)
                }
                (Some(_), _) => "nothing crosses".into(),
                (None, _) => "host memory → CPU: bounds compute".into(),
            };
            let mid = i as f64 + 0.5;
            let label_y = (height + top * 0.03).min(top * 0.95);
            let centred = |size| {
                ("sans-serif", size)
                    .into_font()
                    .color(&BLACK)
                    .pos(text_anchor::Pos::new(
                        text_anchor::HPos::Center,
                        text_anchor::VPos::Bottom,
                    ))
            };
            chart
                .draw_series([
                    Text::new(value, (mid, label_y + top * 0.06), centred(16)),
                    Text::new(load, (mid, label_y), centred(13)),
                    Text::new(bar.name.to_string(), (mid, -top * 0.01), {
                        ("sans-serif", 15)
                            .into_font()
                            .color(&BLACK)
                            .pos(text_anchor::Pos::new(
                                text_anchor::HPos::Center,
                                text_anchor::VPos::Top,
                            ))
                    }),
                ])
                .map_err(draw_err)?;
        }
        Ok(())
    }

    fn timeline<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.spans.len();
        if n == 0 {
            area.draw(&Text::new(
                "no decode sweep timeline (the GPU backend times layers with device events)",
                (20, 20),
                ("sans-serif", 16),
            ))
            .map_err(draw_err)?;
            return Ok(());
        }
        let lo = self
            .spans
            .iter()
            .map(|s| s.read_ms.map_or(s.stall_ms.0, |r| r.0.min(s.stall_ms.0)))
            .fold(0.0, f64::min);
        let hi = self
            .spans
            .iter()
            .map(|s| s.compute_ms.1)
            .fold(f64::MIN_POSITIVE, f64::max);
        let names = self.row_names;
        let mut chart = ChartBuilder::on(area)
            .caption(
                "last decode sweep: read (queued → done), host stall, compute",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi * 1.02, (n as f64 - 0.5)..-0.5)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("ms from the start of the sweep")
            .y_desc("layer")
            .y_labels((2 * n + 1).min(81))
            .y_label_formatter(&|y| {
                // Rows are centred on whole numbers.
                if *y < -0.25 || (y - y.round()).abs() > 0.25 {
                    return String::new();
                }
                names.get(y.round() as usize).cloned().unwrap_or_default()
            })
            .disable_y_mesh()
            .draw()
            .map_err(draw_err)?;
        let bar = |row: usize, (a, b): (f64, f64), y0: f64, y1: f64, c: RGBColor| {
            Rectangle::new(
                [(a, row as f64 + y0), (b.max(a), row as f64 + y1)],
                c.filled(),
            )
        };
        chart
            .draw_series(
                self.spans
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.read_ms.map(|r| bar(i, r, -0.4, -0.05, READ))),
            )
            .map_err(draw_err)?
            .label("read")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], READ.filled()));
        chart
            .draw_series(
                self.spans
                    .iter()
                    .enumerate()
                    .map(|(i, s)| bar(i, s.stall_ms, 0.0, 0.4, STALL)),
            )
            .map_err(draw_err)?
            .label("host stall")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], STALL.filled()));
        chart
            .draw_series(
                self.spans
                    .iter()
                    .enumerate()
                    .map(|(i, s)| bar(i, s.compute_ms, 0.0, 0.4, COMPUTE)),
            )
            .map_err(draw_err)?
            .label("compute")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], COMPUTE.filled()));
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}
