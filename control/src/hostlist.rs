//! DAOS host lists and rank lists (DAOS_FACTS §3.3).
//!
//! Input: entries separated by commas, spaces or tabs; bracketed numeric ranges anywhere in the
//! name (`node[1-3,7]`, `wolf-7[1-2]`, `node1-[45,47]`, `10.5.1.[2-32]`), zero padding kept
//! (`node[001-020]`), an optional `:port` (default from the config). Output: sorted,
//! deduplicated and compressed (`node[1-6,12]`), ports stripped, as dmg prints host sets.

use std::collections::{BTreeMap, BTreeSet};

/// Largest range one bracket may expand to.
pub const MAX_RANGE: u64 = 16384;

/// A host list that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostListError {
    #[error("invalid range {range:?} in {entry:?}: the start is greater than the end")]
    InvalidRange { entry: String, range: String },
    #[error("invalid range {range:?} in {entry:?}: expected numbers like 1-3,5")]
    NotNumeric { entry: String, range: String },
    #[error("range {range:?} in {entry:?} expands to more than {MAX_RANGE} names")]
    TooLarge { entry: String, range: String },
    #[error("unbalanced brackets in {0:?}")]
    Brackets(String),
    #[error("invalid port in {0:?}: expected 1-65535")]
    Port(String),
    #[error("empty host name in {0:?}")]
    Empty(String),
}

/// Splits on commas, spaces and tabs that are outside brackets.
fn entries(list: &str) -> Result<Vec<String>, HostListError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    for c in list.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err(HostListError::Brackets(list.into()));
                }
                cur.push(c);
            }
            ',' | ' ' | '\t' | '\n' if depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if depth != 0 {
        return Err(HostListError::Brackets(list.into()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Expands the bracket ranges of one entry (without port).
fn expand_name(entry: &str, name: &str) -> Result<Vec<String>, HostListError> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let close = name[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| HostListError::Brackets(entry.into()))?;
    let (prefix, ranges, rest) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let tails = expand_name(entry, rest)?;
    let mut out = Vec::new();
    let mut total = 0u64;
    for part in ranges.split(',') {
        let bad = || HostListError::NotNumeric {
            entry: entry.into(),
            range: ranges.into(),
        };
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if a.is_empty() || b.is_empty() || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let (lo, hi): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if lo > hi {
            return Err(HostListError::InvalidRange {
                entry: entry.into(),
                range: part.into(),
            });
        }
        total += hi - lo + 1;
        if total > MAX_RANGE {
            return Err(HostListError::TooLarge {
                entry: entry.into(),
                range: ranges.into(),
            });
        }
        let width = if a.len() > 1 && a.starts_with('0') {
            a.len()
        } else {
            0
        };
        for n in lo..=hi {
            for t in &tails {
                out.push(format!("{prefix}{n:0width$}{t}"));
            }
        }
    }
    Ok(out)
}

/// Splits `host:port`; brackets belong to the host, and an IPv6 address is not split.
fn split_port(entry: &str) -> (&str, Option<&str>) {
    match entry.rfind(':') {
        Some(i) if !entry[i..].contains(']') && entry.matches(':').count() == 1 => {
            (&entry[..i], Some(&entry[i + 1..]))
        }
        _ => (entry, None),
    }
}

/// Expands a host list into sorted, unique `host:port` addresses.
pub fn expand(list: &str, default_port: u16) -> Result<Vec<String>, HostListError> {
    let mut out = BTreeSet::new();
    for entry in entries(list)? {
        let (name, port) = split_port(&entry);
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| HostListError::Port(entry.clone()))?,
            None => default_port,
        };
        if name.is_empty() {
            return Err(HostListError::Empty(entry.clone()));
        }
        for host in expand_name(&entry, name)? {
            out.insert(format!("{host}:{port}"));
        }
    }
    Ok(out.into_iter().collect())
}

/// Host name without its port.
pub fn strip_port(addr: &str) -> &str {
    split_port(addr).0
}

/// Splits a name into (prefix, number, width, suffix) around its last run of digits.
fn numbered(name: &str) -> Option<(&str, u64, usize, &str)> {
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = name[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let digits = &name[start..end];
    let n = digits.parse().ok()?;
    let width = if digits.len() > 1 && digits.starts_with('0') {
        digits.len()
    } else {
        0
    };
    Some((&name[..start], n, width, &name[end..]))
}

/// Ranges of sorted numbers: `1-3,5`, zero-padded to `width`.
fn ranges(nums: &BTreeSet<u64>, width: usize) -> String {
    let mut parts = Vec::new();
    let mut iter = nums.iter().copied();
    let Some(mut lo) = iter.next() else {
        return String::new();
    };
    let mut hi = lo;
    let flush = |lo: u64, hi: u64, parts: &mut Vec<String>| {
        parts.push(if lo == hi {
            format!("{lo:0width$}")
        } else {
            format!("{lo:0width$}-{hi:0width$}")
        });
    };
    for n in iter {
        if n == hi + 1 {
            hi = n;
        } else {
            flush(lo, hi, &mut parts);
            lo = n;
            hi = n;
        }
    }
    flush(lo, hi, &mut parts);
    parts.join(",")
}

/// Compresses host names (ports stripped) into DAOS's host-set notation.
pub fn compress<S: AsRef<str>>(hosts: &[S]) -> String {
    let mut groups: BTreeMap<(String, String, usize), BTreeSet<u64>> = BTreeMap::new();
    let mut plain = BTreeSet::new();
    for h in hosts {
        let name = strip_port(h.as_ref());
        match numbered(name) {
            Some((prefix, n, width, suffix)) => {
                groups
                    .entry((prefix.into(), suffix.into(), width))
                    .or_default()
                    .insert(n);
            }
            None => {
                plain.insert(name.to_string());
            }
        }
    }
    let mut out: Vec<String> = plain.into_iter().collect();
    for ((prefix, suffix, width), nums) in groups {
        if nums.len() == 1 {
            let n = nums.iter().next().copied().unwrap_or(0);
            out.push(format!("{prefix}{n:0width$}{suffix}"));
        } else {
            out.push(format!("{prefix}[{}]{suffix}", ranges(&nums, width)));
        }
    }
    out.join(",")
}

/// Parses a rank list such as `0-3,7` (brackets optional).
pub fn parse_ranks(list: &str) -> Result<Vec<u32>, HostListError> {
    let inner = list.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let names = expand_name(list, &format!("[{inner}]"))?;
    let mut ranks: Vec<u32> = names
        .iter()
        .map(|n| {
            n.parse().map_err(|_| HostListError::NotNumeric {
                entry: list.into(),
                range: inner.into(),
            })
        })
        .collect::<Result<_, _>>()?;
    ranks.sort_unstable();
    ranks.dedup();
    Ok(ranks)
}

/// Formats ranks as DAOS prints them: `3` or `[0-2,5]`.
pub fn format_ranks(ranks: &[u32]) -> String {
    let set: BTreeSet<u64> = ranks.iter().map(|r| u64::from(*r)).collect();
    if set.len() == 1 {
        ranges(&set, 0)
    } else {
        format!("[{}]", ranges(&set, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_daos_examples() {
        assert_eq!(
            expand("wolf-7[1-2]", 10001).unwrap(),
            vec!["wolf-71:10001", "wolf-72:10001"]
        );
        assert_eq!(expand("node[1-2,5-6,12]:9999", 1).unwrap().len(), 5);
        assert_eq!(
            expand("node[001-003]", 10001).unwrap(),
            vec!["node001:10001", "node002:10001", "node003:10001"]
        );
        assert_eq!(
            expand("10.5.1.[2-4]:10001", 1).unwrap(),
            vec!["10.5.1.2:10001", "10.5.1.3:10001", "10.5.1.4:10001"]
        );
        assert_eq!(
            expand("node1-[45,47]", 7).unwrap(),
            vec!["node1-45:7", "node1-47:7"]
        );
        assert_eq!(expand("a,b c\tb", 7).unwrap(), vec!["a:7", "b:7", "c:7"]);
        assert_eq!(expand("localhost", 10001).unwrap(), vec!["localhost:10001"]);
        assert_eq!(
            expand("127.100.1.[1-3]:10001", 1).unwrap(),
            vec![
                "127.100.1.1:10001",
                "127.100.1.2:10001",
                "127.100.1.3:10001"
            ]
        );
    }

    #[test]
    fn refuses_bad_lists() {
        assert!(matches!(
            expand("node[5-4]", 1),
            Err(HostListError::InvalidRange { .. })
        ));
        assert!(
            expand("node[5-4]", 1)
                .unwrap_err()
                .to_string()
                .contains("invalid range")
        );
        assert!(matches!(
            expand("node[a-b]", 1),
            Err(HostListError::NotNumeric { .. })
        ));
        assert!(matches!(
            expand("node[1-3", 1),
            Err(HostListError::Brackets(_))
        ));
        assert!(matches!(
            expand("node]", 1),
            Err(HostListError::Brackets(_))
        ));
        assert!(matches!(expand("node:0", 1), Err(HostListError::Port(_))));
        assert!(matches!(expand("node:x", 1), Err(HostListError::Port(_))));
        assert!(matches!(
            expand("n[0-20000]", 1),
            Err(HostListError::TooLarge { .. })
        ));
        assert!(matches!(expand(":1", 1), Err(HostListError::Empty(_))));
    }

    #[test]
    fn compresses_like_dmg() {
        assert_eq!(
            compress(&["wolf-71:10001", "wolf-72:10001"]),
            "wolf-[71-72]"
        );
        assert_eq!(
            compress(&[
                "node6", "node1", "node2", "node3", "node4", "node5", "node12", "node2"
            ]),
            "node[1-6,12]"
        );
        assert_eq!(compress(&["node001", "node002"]), "node[001-002]");
        assert_eq!(compress(&["localhost:10001"]), "localhost");
        assert_eq!(compress(&["b", "a", "n1"]), "a,b,n1");
        let round = expand("foo[7-9]", 1).unwrap();
        assert_eq!(compress(&round), "foo[7-9]");
    }

    #[test]
    fn rank_lists() {
        assert_eq!(parse_ranks("0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_ranks("[1,1,2]").unwrap(), vec![1, 2]);
        assert_eq!(parse_ranks("").unwrap(), Vec::<u32>::new());
        assert!(parse_ranks("3-1").is_err());
        assert!(parse_ranks("x").is_err());
        assert_eq!(format_ranks(&[0, 1, 2, 5, 6]), "[0-2,5-6]");
        assert_eq!(format_ranks(&[3]), "3");
    }
}
