//! Progress bars for long `sluice bench` runs, shared by its subcommands.
//!
//! A bar draws on stderr at most 20 times a second, and only when stderr is a terminal:
//! indicatif hides it otherwise, so pipes, `--json` consumers and tests see nothing of it.
//! Print other stderr lines through `ProgressBar::suspend` while a bar is drawn.

use indicatif::{ProgressBar, ProgressFinish, ProgressStyle};

/// Layout of every bar: what, bar, position of length, elapsed and remaining time.
const TEMPLATE: &str = "{msg} [{bar:32}] {pos}/{len} ({elapsed} elapsed, about {eta} left)";

/// A bar over `len` steps, labelled `what` (change the label with `set_message`); it clears
/// itself when dropped, so an error sentence printed after it stands alone.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_finish(ProgressFinish::AndClear);
    match ProgressStyle::with_template(TEMPLATE) {
        Ok(style) => bar.set_style(style.progress_chars("=> ")),
        Err(e) => log::debug!("progress bar template: {e}"),
    }
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
        let b = bar(3, "cells");
        b.inc(1);
        assert_eq!(b.position(), 1);
        assert_eq!(b.length(), Some(3));
    }
}
