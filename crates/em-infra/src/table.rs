//! Terminal tables and the small formats they share: durations, times, bars.

/// A borderless table with `header`, in the style every em-infra table uses.
pub(crate) fn new(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    table
}

/// A borderless table without the padding's leading column and trailing blanks.
pub(crate) fn render(table: &comfy_table::Table) -> String {
    let text = table.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let strip = lines.iter().all(|l| l.is_empty() || l.starts_with(' '));
    lines
        .iter()
        .map(|l| {
            if strip {
                l.strip_prefix(' ').unwrap_or(l)
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `2026-11-26 05:01:02` (UTC).
pub(crate) fn fmt_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// `850ms`, `12.3s`, `4m05s`, `1h02m`.
pub(crate) fn fmt_duration(ms: u64) -> String {
    let secs = ms / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if secs < 60 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// A horizontal bar of `value` scaled so that `max` fills `width` cells, in eighths of a cell.
/// A non-zero value always shows at least a sliver.
pub(crate) fn bar(value: u64, max: u64, width: usize) -> String {
    const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    if max == 0 || value == 0 || width == 0 {
        return String::new();
    }
    let eighths =
        (u128::from(value.min(max)) * (width as u128) * 8 + u128::from(max) / 2) / u128::from(max);
    let eighths = usize::try_from(eighths).unwrap_or(width * 8).max(1);
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTIAL[eighths % 8]);
    s
}

/// At most `max` characters, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The first line of a (possibly multi-line) message, for one-line displays.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_scales_to_the_longest_in_eighths() {
        assert_eq!(bar(100, 100, 4), "████");
        assert_eq!(bar(50, 100, 4), "██");
        assert_eq!(bar(1, 100, 4), "▏", "a non-zero value is always visible");
        assert_eq!(bar(0, 100, 4), "");
        assert_eq!(bar(5, 0, 4), "");
        // 3/8 of one cell
        assert_eq!(bar(3, 32, 4), "▍");
        assert_eq!(bar(9, 32, 4), "█▏");
        // Never longer than the width.
        assert_eq!(bar(200, 100, 3).chars().count(), 3);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(850), "850ms");
        assert_eq!(fmt_duration(12_345), "12.3s");
        assert_eq!(fmt_duration(245_000), "4m05s");
        assert_eq!(fmt_duration(3_720_000), "1h02m");
    }
}
