//! Pool properties as DAOS numbers and encodes them on the wire (`DAOS_PROP_PO_*`, a string or
//! a number each): `dmg` turns `name:value` into them, daos_server turns them back into the
//! names and values it validates and stores, and the other way for `get-prop`.

use daos_proto::mgmt::PoolProperty;
use daos_proto::mgmt::pool_property::Value;

/// How a property's value travels.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A string (`strval`).
    Str,
    /// A number (`numval`), written in decimal.
    Num,
    /// One of named numbers.
    Enum(&'static [(&'static str, u64)]),
    /// A comma-separated set of named bits.
    Bits(&'static [(&'static str, u64)]),
}

/// A pool property DAOS defines and daos-rs serves.
#[derive(Clone, Copy, Debug)]
pub struct Def {
    pub name: &'static str,
    /// `DAOS_PROP_PO_*`.
    pub number: u32,
    pub kind: Kind,
    pub description: &'static str,
}

/// The properties, by DAOS's numbers (2.6; number 10 was `policy` in 2.4).
pub const DEFS: &[Def] = &[
    Def {
        name: "label",
        number: 1,
        kind: Kind::Str,
        description: "Pool label",
    },
    Def {
        name: "space_rb",
        number: 3,
        kind: Kind::Num,
        description: "Rebuild space ratio",
    },
    Def {
        name: "self_heal",
        number: 4,
        kind: Kind::Bits(&[("exclude", 1), ("rebuild", 2), ("delay_rebuild", 4)]),
        description: "Self-healing policy",
    },
    Def {
        name: "reclaim",
        number: 5,
        kind: Kind::Enum(&[("disabled", 0), ("lazy", 1), ("time", 4)]),
        description: "Reclaim strategy",
    },
    Def {
        name: "ec_cell_sz",
        number: 9,
        kind: Kind::Num,
        description: "EC cell size",
    },
    Def {
        name: "ec_pda",
        number: 12,
        kind: Kind::Num,
        description: "Performance domain affinity level of EC",
    },
    Def {
        name: "rp_pda",
        number: 13,
        kind: Kind::Num,
        description: "Performance domain affinity level of RP",
    },
    Def {
        name: "scrub",
        number: 16,
        kind: Kind::Enum(&[("off", 0), ("lazy", 1), ("timed", 2)]),
        description: "Checksum scrubbing mode",
    },
    Def {
        name: "svc_rf",
        number: 19,
        kind: Kind::Num,
        description: "Pool service redundancy factor",
    },
    Def {
        name: "checkpoint",
        number: 22,
        kind: Kind::Enum(&[("disabled", 0), ("timed", 1), ("lazy", 2)]),
        description: "WAL checkpointing behavior",
    },
    Def {
        name: "checkpoint_freq",
        number: 23,
        kind: Kind::Num,
        description: "WAL checkpointing frequency, in seconds",
    },
    Def {
        name: "reintegration",
        number: 25,
        kind: Kind::Enum(&[("data_sync", 0), ("no_data_sync", 1)]),
        description: "Reintegration mode",
    },
    Def {
        name: "svc_list",
        number: 8,
        kind: Kind::Str,
        description: "Pool service replica list",
    },
    Def {
        name: "data_thresh",
        number: 10,
        kind: Kind::Num,
        description: "Data bdev threshold size",
    },
    Def {
        name: "rd_fac",
        number: 11,
        kind: Kind::Num,
        description: "Pool redundancy factor",
    },
    Def {
        name: "global_version",
        number: 14,
        kind: Kind::Num,
        description: "Global Version",
    },
    Def {
        name: "upgrade_status",
        number: 15,
        kind: Kind::Enum(&[
            ("not started", 0),
            ("in progress", 1),
            ("completed", 2),
            ("failed", 3),
        ]),
        description: "Upgrade Status",
    },
    Def {
        name: "scrub_freq",
        number: 17,
        kind: Kind::Num,
        description: "Checksum scrubbing frequency",
    },
    Def {
        name: "scrub_thresh",
        number: 18,
        kind: Kind::Num,
        description: "Checksum scrubbing threshold",
    },
    Def {
        name: "perf_domain",
        number: 21,
        kind: Kind::Enum(&[("root", 255), ("group", 3)]),
        description: "Pool performance domain",
    },
    Def {
        name: "checkpoint_thresh",
        number: 24,
        kind: Kind::Num,
        description: "WAL checkpoint threshold, in percentage",
    },
    Def {
        name: "svc_ops_enabled",
        number: 26,
        kind: Kind::Num,
        description: "Metadata duplicate operations detection enabled",
    },
    Def {
        name: "svc_ops_entry_age",
        number: 27,
        kind: Kind::Num,
        description: "Metadata duplicate operations KVS max entry age, in seconds",
    },
];

/// A property by name.
pub fn by_name(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// A property by DAOS number.
pub fn by_number(number: u32) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.number == number)
}

fn known() -> String {
    DEFS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
}

/// `name:value` as it travels; an unknown name or a value of the wrong form is refused.
pub fn encode(name: &str, value: &str) -> Result<PoolProperty, String> {
    let d = by_name(name)
        .ok_or_else(|| format!("unknown pool property {name:?} (known: {})", known()))?;
    let v = match d.kind {
        Kind::Str => Value::Strval(value.to_string()),
        Kind::Num => Value::Numval(
            value
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("{name}: {value:?} is not a number"))?,
        ),
        Kind::Enum(names) => Value::Numval(
            names
                .iter()
                .find(|(n, _)| *n == value)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let ok: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                    format!("{name}: {value:?} is not one of {}", ok.join(", "))
                })?,
        ),
        Kind::Bits(names) => {
            let mut bits = 0;
            // DAOS writes `exclude;rebuild` (and `none`); a comma list is taken too.
            for part in value
                .split([',', ';'])
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != "none")
            {
                bits |= names
                    .iter()
                    .find(|(n, _)| *n == part)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        let ok: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                        format!("{name}: {part:?} is not one of {}", ok.join(", "))
                    })?;
            }
            Value::Numval(bits)
        }
    };
    Ok(PoolProperty {
        number: d.number,
        value: Some(v),
    })
}

/// A property as it came: its definition and its value as text (`lazy`, `exclude,rebuild`).
pub fn decode(p: &PoolProperty) -> Result<(&'static Def, String), String> {
    let d = by_number(p.number).ok_or_else(|| {
        format!(
            "pool property number {} is not one this server handles (known: {})",
            p.number,
            known()
        )
    })?;
    let text = match (&p.value, d.kind) {
        (None, _) => String::new(),
        (Some(Value::Strval(s)), Kind::Str) => s.clone(),
        (Some(Value::Numval(n)), Kind::Num) => n.to_string(),
        (Some(Value::Numval(n)), Kind::Enum(names)) => names
            .iter()
            .find(|(_, v)| v == n)
            .map(|(name, _)| (*name).to_string())
            .ok_or_else(|| format!("{}: {n} is not a value DAOS defines", d.name))?,
        (Some(Value::Numval(n)), Kind::Bits(names)) => {
            if n & !names.iter().fold(0, |a, (_, v)| a | v) != 0 {
                return Err(format!("{}: bits {n:#x} include unknown ones", d.name));
            }
            if *n == 0 {
                "none".to_string()
            } else {
                names
                    .iter()
                    .filter(|(_, v)| n & v != 0)
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(";")
            }
        }
        (Some(Value::Strval(s)), _) => {
            return Err(format!(
                "{}: expected a number, got the string {s:?}",
                d.name
            ));
        }
        (Some(Value::Numval(n)), Kind::Str) => {
            return Err(format!("{}: expected a string, got the number {n}", d.name));
        }
    };
    Ok((d, text))
}

/// A value as DAOS's dmg shows it (`64 KiB`, `0%`); `value` is [`decode`]'s text.
pub fn display(d: &Def, value: &str) -> String {
    match d.name {
        "ec_cell_sz" | "data_thresh" => value
            .parse::<u64>()
            .map_or_else(|_| value.to_string(), crate::table::bytes_iec),
        "space_rb" => format!("{value}%"),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_round_trips_and_bad_ones_are_named() {
        for (name, value) in [
            ("label", "tank"),
            ("reclaim", "time"),
            ("self_heal", "exclude;rebuild"),
            ("self_heal", "none"),
            ("space_rb", "5"),
            ("scrub", "timed"),
            ("svc_rf", "2"),
            ("checkpoint", "lazy"),
            ("reintegration", "no_data_sync"),
        ] {
            let p = encode(name, value).expect(name);
            let (d, text) = decode(&p).expect(name);
            assert_eq!((d.name, text.as_str()), (name, value));
        }
        assert_eq!(
            encode("reclaim", "time").unwrap().value,
            Some(Value::Numval(4))
        );
        assert_eq!(encode("self_heal", "rebuild").unwrap().number, 4);
        assert!(
            encode("colour", "red")
                .unwrap_err()
                .contains("unknown pool property")
        );
        assert!(
            encode("reclaim", "never")
                .unwrap_err()
                .contains("not one of")
        );
        let odd = PoolProperty {
            number: 5,
            value: Some(Value::Numval(3)),
        };
        assert!(decode(&odd).is_err());
        let unknown = PoolProperty {
            number: 99,
            value: None,
        };
        assert!(decode(&unknown).is_err());
    }
}
