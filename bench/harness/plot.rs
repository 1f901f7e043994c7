//! Writing a chart to `--plot FILE`: PNG or SVG by the file's extension, through plotters.
//!
//! Text is laid out with ab_glyph from a TrueType font found on the machine (`SLUICE_FONT`, else
//! the usual DejaVu/Liberation/Free paths, else the first `.ttf` under `/usr/share/fonts`),
//! loaded once per process. Without a font the chart cannot be laid out, and the error says
//! which package or variable provides one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Environment variable naming the TrueType font to lay text out with.
pub const FONT_ENV: &str = "SLUICE_FONT";

/// Fonts tried, in order, when `SLUICE_FONT` is not set.
const FONT_CANDIDATES: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Directory searched for any `.ttf` when no candidate exists.
const FONT_DIR: &str = "/usr/share/fonts";
/// Directory levels searched under [`FONT_DIR`].
const FONT_DIR_DEPTH: usize = 4;
/// Largest font file accepted (a font is a few hundred KiB; this bounds a wrong path).
const FONT_BYTES_MAX: u64 = 64 << 20;

/// The image formats a chart can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format named by `path`'s extension, or a sentence saying which ones are accepted.
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => bail!(
                "{}: a plot is written as PNG or SVG; name a .png or .svg file",
                path.display()
            ),
        }
    }
}

/// A chart that can draw itself on any plotters backend.
pub trait Figure {
    /// Pixel size of the whole chart.
    fn size(&self) -> (u32, u32);
    /// Draws on `root`, which covers the whole chart.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Writes `figure` to `path` in the format its extension names.
pub fn save(path: &Path, figure: &impl Figure) -> Result<()> {
    let format = Format::of(path)?;
    load_font()?;
    let size = figure.size();
    let write = || -> Result<()> {
        match format {
            Format::Svg => {
                let root = SVGBackend::new(path, size).into_drawing_area();
                root.fill(&WHITE)?;
                figure.draw(&root)?;
                root.present()?;
            }
            Format::Png => {
                let root = BitMapBackend::new(path, size).into_drawing_area();
                root.fill(&WHITE)?;
                figure.draw(&root)?;
                root.present()?;
            }
        }
        Ok(())
    };
    write().with_context(|| format!("writing the plot {}", path.display()))
}

/// Registers the font once; later calls return the first outcome.
fn load_font() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| register_font().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow!("{e}"))
}

fn register_font() -> Result<PathBuf> {
    let path = find_font()?;
    let len = std::fs::metadata(&path)
        .with_context(|| format!("font {}", path.display()))?
        .len();
    if len > FONT_BYTES_MAX {
        bail!(
            "font {}: {len} bytes is too large for a font file",
            path.display()
        );
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading font {}", path.display()))?;
    // The font table wants 'static bytes; one font is loaded once per process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    for family in ["sans-serif", "serif", "monospace"] {
        plotters::style::register_font(family, FontStyle::Normal, bytes).map_err(|_| {
            anyhow!(
                "font {}: not a TrueType/OpenType font plotters can read",
                path.display()
            )
        })?;
    }
    Ok(path)
}

/// The font to use: `SLUICE_FONT`, a known path, or the first `.ttf` under `/usr/share/fonts`.
fn find_font() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(FONT_ENV) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{FONT_ENV}={}: no such font file", p.display());
        }
        return Ok(p);
    }
    if let Some(p) = FONT_CANDIDATES.iter().map(Path::new).find(|p| p.is_file()) {
        return Ok(p.to_path_buf());
    }
    first_ttf(Path::new(FONT_DIR), FONT_DIR_DEPTH).ok_or_else(|| {
        anyhow!(
            "plots need a TrueType font to lay out their text and none was found under \
             {FONT_DIR}: install one (Debian: apt-get install fonts-dejavu-core) or set \
             {FONT_ENV} to a .ttf file"
        )
    })
}

/// The first `.ttf` file under `dir`, at most `depth` levels down, in name order.
fn first_ttf(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let is_ttf = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("ttf"))
    };
    if let Some(p) = entries.iter().find(|p| p.is_file() && is_ttf(p)) {
        return Some(p.clone());
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|p| p.is_dir())
        .find_map(|p| first_ttf(p, depth - 1))
}

/// A plotters error as an `anyhow` error (their error types borrow the backend's).
pub fn draw_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// Draws the series labels of `chart` at `at` in the common style (a light box, black border).
pub fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)
}

/// Colour of the link, layer stage or series at position `i` (a fixed qualitative palette).
pub fn palette(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(127, 127, 127),
    ];
    COLOURS[i % COLOURS.len()]
}

/// Colour that marks the bottleneck.
pub const HIGHLIGHT: RGBColor = RGBColor(214, 39, 40);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a/b.png")).ok(), Some(Format::Png));
        assert_eq!(Format::of(Path::new("b.SVG")).ok(), Some(Format::Svg));
        let e = Format::of(Path::new("c.jpg")).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("c.jpg") && e.contains(".png or .svg")));
        assert!(Format::of(Path::new("noext")).is_err());
    }

    #[test]
    fn a_font_directory_is_searched_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(first_ttf(dir.path(), 2), None);
        std::fs::create_dir_all(dir.path().join("b/deep")).expect("mkdir");
        std::fs::write(dir.path().join("b/deep/Z.ttf"), b"x").expect("write");
        std::fs::write(dir.path().join("b/readme.txt"), b"x").expect("write");
        assert_eq!(first_ttf(dir.path(), 0), None);
        assert_eq!(
            first_ttf(dir.path(), 2),
            Some(dir.path().join("b/deep/Z.ttf"))
        );
        std::fs::write(dir.path().join("A.TTF"), b"x").expect("write");
        assert_eq!(first_ttf(dir.path(), 2), Some(dir.path().join("A.TTF")));
    }
}
