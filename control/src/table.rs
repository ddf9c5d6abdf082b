//! Tables as DAOS's dmg prints them (Go tabwriter: padding 1, a row of dashes as long as each
//! title, every cell padded so lines carry trailing spaces, `None` for a missing cell).

/// Renders `rows` under `titles`, each line prefixed by `indent`.
pub fn render(titles: &[&str], rows: &[Vec<String>], indent: &str) -> String {
    let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut out = String::from(indent);
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).cloned().unwrap_or_else(|| "None".into());
            out.push_str(&cell);
            out.push_str(&" ".repeat(w - cell.chars().count() + 1));
        }
        out.push('\n');
        out
    };
    let mut out = line(titles.iter().map(|t| t.to_string()).collect());
    out.push_str(&line(
        titles
            .iter()
            .map(|t| "-".repeat(t.chars().count()))
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// Bytes in decimal units, as dmg prints device sizes: `16 GB`, `1.5 TB`.
pub fn bytes_si(n: u64) -> String {
    human(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"])
}

/// Bytes in binary units: `4.0 GiB`.
pub fn bytes_iec(n: u64) -> String {
    human(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"])
}

/// As DAOS's tools print sizes (go-humanize): one decimal below 10 of a unit (`1.0 GB`,
/// `6.4 TB`), none from 10 on (`60 MB`, `940 MB`); the unit is the largest not above the
/// value, so rounding may show `1000 MB`.
fn human(n: u64, base: f64, units: &[&str]) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / base.ln()).floor();
    let unit = units[(e as usize).min(units.len() - 1)];
    let v = (n as f64 / base.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if v < 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// How DAOS's tools print a member state that travels in lower case (`awaitformat` ->
/// `AwaitFormat`); any case is accepted, an unknown name is printed as it came.
pub fn member_state(wire: &str) -> String {
    const NAMES: [&str; 12] = [
        "Unknown",
        "AwaitFormat",
        "Starting",
        "Ready",
        "Joined",
        "Stopping",
        "Stopped",
        "Excluded",
        "Errored",
        "Unresponsive",
        "AdminExcluded",
        "CheckerStarted",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(wire))
        .map_or_else(|| wire.to_string(), |n| (*n).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_layout() {
        let t = render(
            &["Rank", "State"],
            &[vec!["[0-1]".into(), "Joined".into()], vec!["2".into()]],
            "",
        );
        assert_eq!(
            t,
            "Rank  State  \n----  -----  \n[0-1] Joined \n2     None   \n"
        );
        let t = render(
            &["Hosts", "SCM Devices"],
            &[vec!["wolf-[71-72]".into(), "2".into()]],
            "  ",
        );
        assert!(t.starts_with("  Hosts        SCM Devices \n  -----        ----------- \n  wolf-[71-72] 2           \n"), "{t:?}");
    }

    #[test]
    fn sizes() {
        // go-humanize's Bytes and IBytes, which DAOS's tools print with.
        assert_eq!(bytes_si(16_000_000_000), "16 GB");
        assert_eq!(bytes_si(6_400_000_000_000), "6.4 TB");
        assert_eq!(bytes_si(60_000_000), "60 MB");
        assert_eq!(bytes_si(1_000_000_000), "1.0 GB");
        assert_eq!(bytes_iec(4 << 30), "4.0 GiB");
        assert_eq!(bytes_iec(65536), "64 KiB");
        assert_eq!(bytes_iec(4096), "4.0 KiB");
        assert_eq!(bytes_si(0), "0 B");
        assert_eq!(bytes_si(9), "9 B");
        assert_eq!(bytes_si(999_990_000), "1000 MB");
        assert_eq!(bytes_si(999_900_000), "1000 MB");
        assert_eq!(bytes_si(999), "999 B");
    }

    #[test]
    fn member_states_print_as_daos_prints_them() {
        assert_eq!(member_state("awaitformat"), "AwaitFormat");
        assert_eq!(member_state("JOINED"), "Joined");
        assert_eq!(member_state("adminexcluded"), "AdminExcluded");
        assert_eq!(member_state("weird"), "weird");
    }
}
