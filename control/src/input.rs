//! What admins and users type that several tools and the server check the same way: sizes
//! (`10G`, `512MiB`, `50%`) and pool and container labels.

/// A size as dmg accepts it: `10G`, `1.5TB`, `512MiB`, `100%`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Size {
    Bytes(u64),
    Percent(u64),
}

/// Parses `N[k|M|G|T|P][B|iB]` (decimal units, binary with `i`) or `N%`.
pub fn parse_size(s: &str) -> Result<Size, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        let v: u64 = p
            .trim()
            .parse()
            .map_err(|_| format!("invalid size {s:?}: expected a percentage like 50%"))?;
        if v == 0 || v > 100 {
            return Err(format!("invalid size {s:?}: a percentage must be 1 to 100"));
        }
        return Ok(Size::Percent(v));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with a unit, like 10G or 512MiB")
    })?;
    if n <= 0.0 {
        return Err(format!("invalid size {s:?}: it must be more than 0"));
    }
    let unit = unit.trim();
    let binary = unit.contains('i');
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let exp = match unit
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i')
        .to_ascii_uppercase()
        .as_str()
    {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use K, M, G, T, P, optionally with B or iB)"
            ));
        }
    };
    let bytes = n * base.powi(exp);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large (at most 16 EiB)"));
    }
    if bytes < 1.0 {
        return Err(format!("invalid size {s:?}: less than one byte"));
    }
    Ok(Size::Bytes(bytes as u64))
}

/// Checks a pool label as DAOS does.
pub fn check_label(l: &str) -> Result<(), String> {
    check_label_of("pool", l)
}

/// Checks the label of a `what` (pool or container) as DAOS does.
pub fn check_label_of(what: &str, l: &str) -> Result<(), String> {
    if l.is_empty() || l.len() > 127 {
        return Err(format!(
            "invalid {what} label {l:?}: it must be 1 to 127 characters"
        ));
    }
    if !l
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return Err(format!(
            "invalid {what} label {l:?}: use letters, digits, '_', '.', ':' and '-'"
        ));
    }
    if daos_engine_uuid(l) {
        return Err(format!(
            "invalid {what} label {l:?}: a label must not look like a UUID"
        ));
    }
    Ok(())
}

fn daos_engine_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}
