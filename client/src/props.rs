//! Container properties this build keeps and acts on: DAOS's `rd_fac` (failures its objects
//! must survive, 0-4), `rd_lvl` (the fault domain replicas must differ at: `rank` or `node`)
//! and the container's default object class. Given as `daos container create --properties
//! rd_fac:1,rd_lvl:node [--oclass CLASS]`, stored in the container table as
//! `rd_fac:1;rd_lvl:node;oclass:RP_2G1`, and checked at every object open: a class that
//! tolerates fewer failures than `rd_fac` is refused with DER_INVAL and the reason.

use daos_placement::{ObjectClass, RdLvl};

/// A container's redundancy properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContProps {
    pub rd_fac: u32,
    pub rd_lvl: RdLvl,
    /// The class objects get when none is named (`--oclass` at create, else from `rd_fac`).
    pub oclass: Option<ObjectClass>,
}

impl Default for ContProps {
    fn default() -> ContProps {
        ContProps {
            rd_fac: 0,
            rd_lvl: RdLvl::Node,
            oclass: None,
        }
    }
}

fn rd_fac(v: &str) -> Result<u32, String> {
    let n = v.trim().trim_start_matches("rd_fac");
    match n.parse::<u32>() {
        Ok(n) if n <= 4 => Ok(n),
        _ => Err(format!(
            "rd_fac {v:?} is not a redundancy factor: use 0 to 4 (failures the container's objects survive)"
        )),
    }
}

fn rd_lvl(v: &str) -> Result<RdLvl, String> {
    match v.trim() {
        "rank" | "1" => Ok(RdLvl::Rank),
        "node" | "2" => Ok(RdLvl::Node),
        other => Err(format!(
            "rd_lvl {other:?} is not a fault-domain level: use rank or node"
        )),
    }
}

impl ContProps {
    /// `--properties name:value[,name:value]` and `--oclass` as `daos container create` takes
    /// them; the class must tolerate `rd_fac` failures.
    pub fn from_cli(properties: Option<&str>, oclass: Option<&str>) -> Result<ContProps, String> {
        let mut p = ContProps::default();
        for item in properties
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (name, value) = item.split_once(':').ok_or_else(|| {
                format!("--properties: {item:?} is not name:value (e.g. rd_fac:1,rd_lvl:node)")
            })?;
            match name.trim() {
                "rd_fac" => p.rd_fac = rd_fac(value).map_err(|e| format!("--properties: {e}"))?,
                "rd_lvl" => p.rd_lvl = rd_lvl(value).map_err(|e| format!("--properties: {e}"))?,
                other => {
                    return Err(format!(
                        "--properties: {other:?} is not a container property this server keeps (known: rd_fac, rd_lvl)"
                    ));
                }
            }
        }
        if let Some(name) = oclass {
            let class = ObjectClass::parse(name).map_err(|e| format!("--oclass: {e}"))?;
            class
                .check(p.rd_fac)
                .map_err(|e| format!("--oclass: {e} (DER_INVAL)"))?;
            p.oclass = Some(class);
        }
        Ok(p)
    }

    /// The stored form: `rd_fac:N;rd_lvl:L[;oclass:C]`.
    pub fn encode(&self) -> String {
        let mut s = format!("rd_fac:{};rd_lvl:{}", self.rd_fac, self.rd_lvl.name());
        if let Some(c) = self.oclass {
            s.push_str(&format!(";oclass:{c}"));
        }
        s
    }

    /// The stored form read back (empty: the defaults); a damaged one is an error naming it.
    pub fn decode(s: &str) -> Result<ContProps, String> {
        let mut p = ContProps::default();
        for item in s.split(';').filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once(':')
                .ok_or_else(|| format!("stored container property {item:?} is not name:value"))?;
            match name {
                "rd_fac" => p.rd_fac = rd_fac(value)?,
                "rd_lvl" => p.rd_lvl = rd_lvl(value)?,
                "oclass" => {
                    p.oclass = Some(ObjectClass::parse(value).map_err(|e| e.to_string())?);
                }
                // Properties a DAOS client set (`daos.<type>`), kept for DAOS's clients.
                other if other.starts_with("daos.") => {}
                other => return Err(format!("stored container property {other:?} is unknown")),
            }
        }
        Ok(p)
    }

    /// The class an object opened with `requested` (or the container's default) gets: it must
    /// tolerate `rd_fac` failures (DER_INVAL otherwise). `None`: no class (one copy, as
    /// containers without properties store their keys).
    pub fn class_for(&self, requested: Option<ObjectClass>) -> Result<Option<ObjectClass>, String> {
        let class = match (requested, self.oclass) {
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) if self.rd_fac == 0 => return Ok(None),
            (None, None) => ObjectClass::default_for(self.rd_fac).map_err(|e| e.to_string())?,
        };
        class
            .check(self.rd_fac)
            .map_err(|e| format!("{e} (DER_INVAL)"))?;
        Ok(Some(class))
    }

    /// DAOS's `daos container get-prop` rows.
    pub fn rows(&self) -> Vec<Vec<String>> {
        vec![
            vec![
                "Redundancy Factor (rd_fac)".into(),
                format!("rd_fac{}", self.rd_fac),
            ],
            vec![
                "Redundancy Level (rd_lvl)".into(),
                match self.rd_lvl {
                    RdLvl::Rank => "rank (1)".into(),
                    RdLvl::Node => "node (2)".into(),
                },
            ],
            vec![
                "Object Class (oclass)".into(),
                self.oclass
                    .map_or_else(|| "UNKNOWN".to_string(), |c| c.to_string()),
            ],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_store_and_check_classes_as_daos() {
        let p = ContProps::from_cli(Some("rd_fac:1,rd_lvl:node"), None).unwrap();
        assert_eq!((p.rd_fac, p.rd_lvl, p.oclass), (1, RdLvl::Node, None));
        assert_eq!(ContProps::decode(&p.encode()).unwrap(), p);
        // No class named: the default from rd_fac.
        assert_eq!(p.class_for(None).unwrap().unwrap().to_string(), "RP_2G1");
        let s1 = ObjectClass::parse("S1").unwrap();
        let e = p.class_for(Some(s1)).unwrap_err();
        assert!(e.contains("DER_INVAL") && e.contains("S1"), "{e}");
        let with = ContProps::from_cli(Some("rd_fac:1"), Some("RP_3G1")).unwrap();
        assert_eq!(ContProps::decode(&with.encode()).unwrap(), with);
        assert_eq!(with.class_for(None).unwrap().unwrap().to_string(), "RP_3G1");
        // Refusals name the property and the fix.
        for (props, oclass, words) in [
            (Some("rd_fac:5"), None, "use 0 to 4"),
            (Some("rd_lvl:rack"), None, "use rank or node"),
            (Some("cksum:crc32"), None, "known: rd_fac, rd_lvl"),
            (Some("rd_fac"), None, "is not name:value"),
            (Some("rd_fac:2"), Some("RP_2G1"), "DER_INVAL"),
            (None, Some("EC_2P1G1"), "not supported yet"),
        ] {
            let e = ContProps::from_cli(props, oclass).unwrap_err();
            assert!(e.contains(words), "{props:?} {oclass:?}: {e}");
        }
        // No properties: objects keep one unclassed copy, as before.
        assert_eq!(ContProps::decode("").unwrap().class_for(None), Ok(None));
        assert!(ContProps::decode("rd_fac:x").is_err());
    }
}
