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
    human(n as f64, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"])
}

/// Bytes in binary units: `4.0 GiB`.
pub fn bytes_iec(n: u64) -> String {
    human(n as f64, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

fn human(mut v: f64, base: f64, units: &[&str]) -> String {
    let mut u = 0;
    // A value that rounds to `base` at one decimal reads as 1.0 of the next unit.
    while (v >= base || (u > 0 && (v * 10.0).round() >= base * 10.0)) && u + 1 < units.len() {
        v /= base;
        u += 1;
    }
    if u == 0 {
        format!("{v} {}", units[0])
    } else {
        format!("{v:.1} {}", units[u])
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
        assert_eq!(bytes_si(16_000_000_000), "16.0 GB");
        assert_eq!(bytes_iec(4 << 30), "4.0 GiB");
        assert_eq!(bytes_si(0), "0 B");
        assert_eq!(
            bytes_si(999_990_000),
            "1.0 GB",
            "rounds up into the next unit"
        );
        assert_eq!(bytes_si(999_900_000), "999.9 MB");
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
