//! Where human output goes and how it looks. Human text goes to stderr (so stdout stays clean for
//! `--json` and for Ansible's inventory protocol); colour follows the terminal, `NO_COLOR` and
//! `--no-color` through anstream.

use std::io::Write;

use anstyle::{AnsiColor, Style};

/// How a check or stage line is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    Fail,
    Warn,
    Skip,
}

impl Mark {
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Fail => "✗",
            Mark::Warn => "!",
            Mark::Skip => "-",
        }
    }

    fn style(self) -> Style {
        let color = match self {
            Mark::Ok => AnsiColor::Green,
            Mark::Fail => AnsiColor::Red,
            Mark::Warn => AnsiColor::Yellow,
            Mark::Skip => AnsiColor::BrightBlack,
        };
        Style::new().fg_color(Some(color.into())).bold()
    }
}

#[derive(Debug, Clone)]
pub struct Printer {
    json: bool,
}

impl Printer {
    pub fn new(json: bool, no_color: bool) -> Self {
        if no_color {
            anstream::ColorChoice::Never.write_global();
        }
        Printer { json }
    }

    /// True when the user asked for `--json` on stdout.
    pub fn json_mode(&self) -> bool {
        self.json
    }

    /// A plain line of human output (stderr).
    pub fn line(&self, text: impl AsRef<str>) {
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "{}", text.as_ref());
    }

    /// A heading in bold.
    pub fn heading(&self, text: impl AsRef<str>) {
        let bold = Style::new().bold();
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "{bold}{}{bold:#}", text.as_ref());
    }

    /// A marked line: `✓ text`, `✗ text`, `! text`.
    pub fn mark(&self, mark: Mark, text: impl AsRef<str>) {
        let style = mark.style();
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "{style}{}{style:#} {}", mark.symbol(), text.as_ref());
    }

    /// A dimmed detail line (fix hints, paths).
    pub fn hint(&self, text: impl AsRef<str>) {
        let dim = Style::new().dimmed();
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "  {dim}{}{dim:#}", text.as_ref());
    }

    /// Machine output on stdout.
    pub fn stdout_json(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }

    /// Raw text on stdout (tables, inventory JSON).
    pub fn stdout(&self, text: impl AsRef<str>) -> anyhow::Result<()> {
        let mut out = anstream::stdout().lock();
        writeln!(out, "{}", text.as_ref())?;
        Ok(())
    }

    /// The final error, with its cause chain, once.
    pub fn error(&self, err: &anyhow::Error) {
        let red = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
        let mut out = anstream::stderr().lock();
        let _ = writeln!(out, "{red}error{red:#}: {err}");
        for cause in err.chain().skip(1) {
            let _ = writeln!(out, "  caused by: {cause}");
        }
    }
}
