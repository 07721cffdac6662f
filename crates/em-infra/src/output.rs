//! Where human output goes and how it looks. Human text goes to stderr (so stdout stays clean for
//! `--json` and for Ansible's inventory protocol); colour follows the terminal, `NO_COLOR` and
//! `--no-color` through anstream.

use std::io::Write;

use anstyle::{AnsiColor, Style};

pub(crate) use em_infra_core::text::Mark;

/// The colour of a mark.
fn style(mark: Mark) -> Style {
    let color = match mark {
        Mark::Ok => AnsiColor::Green,
        Mark::Fail => AnsiColor::Red,
        Mark::Warn => AnsiColor::Yellow,
        Mark::Skip => AnsiColor::BrightBlack,
    };
    Style::new().fg_color(Some(color.into())).bold()
}

#[derive(Debug, Clone)]
pub(crate) struct Printer {
    json: bool,
}

impl Printer {
    pub(crate) fn new(json: bool, no_color: bool) -> Self {
        if no_color {
            anstream::ColorChoice::Never.write_global();
        }
        Printer { json }
    }

    /// True when the user asked for `--json` on stdout.
    pub(crate) fn json_mode(&self) -> bool {
        self.json
    }

    /// A plain line of human output (stderr).
    pub(crate) fn line(&self, text: impl AsRef<str>) {
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "{}", text.as_ref());
    }

    /// A heading in bold.
    pub(crate) fn heading(&self, text: impl AsRef<str>) {
        let bold = Style::new().bold();
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "{bold}{}{bold:#}", text.as_ref());
    }

    /// A marked line: `✓ text`, `✗ text`, `! text`.
    pub(crate) fn mark(&self, mark: Mark, text: impl AsRef<str>) {
        let style = style(mark);
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "{style}{}{style:#} {}", mark.symbol(), text.as_ref());
    }

    /// A dimmed detail line (fix hints, paths).
    pub(crate) fn hint(&self, text: impl AsRef<str>) {
        let dim = Style::new().dimmed();
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "  {dim}{}{dim:#}", text.as_ref());
    }

    /// Machine output on stdout.
    pub(crate) fn stdout_json(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }

    /// Raw text on stdout (tables, inventory JSON).
    pub(crate) fn stdout(&self, text: impl AsRef<str>) -> anyhow::Result<()> {
        let mut out = anstream::stdout().lock();
        writeln!(out, "{}", text.as_ref())?;
        Ok(())
    }

    /// Bytes on stdout exactly as given (completion scripts, man pages).
    pub(crate) fn stdout_raw(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        Ok(())
    }

    /// The final error, with its cause chain, once.
    pub(crate) fn error(&self, err: &anyhow::Error) {
        let red = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
        let mut out = anstream::stderr().lock();
        let _ = writeln!(out, "{red}error{red:#}: {err}");
        for cause in err.chain().skip(1) {
            let _ = writeln!(out, "  caused by: {cause}");
        }
    }
}
