//! Layouts computed by DAOS v2.6.4's libdaos (`pl_obj_place` on the jump map), for pool buffers
//! written by `daos_cart::pool::write_pool_buf`, against [`daos_placement::jump_map`]. The
//! fixture's `source` field says how they were made; every case must match exactly: the map
//! query, the class fitting, the oid, the error code or every shard's target, rank, index,
//! fseq and flags.

use std::collections::BTreeMap;

use daos_placement::jump_map::{
    self, DER_INVAL, ErrorKind, JumpMapError, ObjLayout, ObjectMd, Oid, OpenMode, PoolBufMap,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    source: String,
    #[allow(dead_code)]
    fields: serde_json::Value,
    pool_bufs: BTreeMap<String, PoolBuf>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolBuf {
    desc: String,
    map_version: u32,
    hex: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    pool: String,
    class: String,
    class_id: String,
    otype: u8,
    hi_user: String,
    oid_hi: String,
    oid_lo: String,
    query: [u32; 2],
    generate_oid_rc: i32,
    layout_ver: u32,
    fdom_lvl: u32,
    omd_ver: u32,
    mode: String,
    rc: i32,
    ol_ver: Option<u32>,
    grp_size: Option<u32>,
    grp_nr: Option<u32>,
    layout: Option<Vec<Vec<i64>>>,
}

fn hex_u64(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex number")
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex byte"))
        .collect()
}

/// libdaos's rc for a result.
fn rc<T>(r: &Result<T, JumpMapError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) if e.kind() == ErrorKind::Invalid => DER_INVAL,
        Err(e) => panic!("not a libdaos error: {e}"),
    }
}

/// The fixture's rows: `[po_shard, target, rank, index, fseq, rebuilding, reintegrating]`, or
/// `[-1, -1]` for an empty shard.
fn rows(layout: &ObjLayout) -> Vec<Vec<i64>> {
    layout
        .shards
        .iter()
        .enumerate()
        .map(|(k, s)| match s {
            Some(p) => vec![
                k as i64,
                i64::from(p.target),
                i64::from(p.rank),
                i64::from(p.index),
                i64::from(p.fseq),
                i64::from(p.rebuilding),
                0,
            ],
            None => vec![-1, -1],
        })
        .collect()
}

/// Runs one case; the mismatches, if any.
fn check(case: &Case, map: &PoolBufMap) -> Vec<String> {
    let mut errs = Vec::new();
    let level = if case.fdom_lvl == 0 {
        2
    } else {
        case.fdom_lvl as i32
    };
    let attr = map.query(level);
    if [attr.domain_nr, attr.target_nr] != case.query {
        errs.push(format!("query: got {attr:?}"));
    }
    let class_id = hex_u64(&case.class_id) as u32;
    let fit = jump_map::oclass_fit_max(class_id, attr.domain_nr, attr.target_nr, 0);
    if rc(&fit) != case.generate_oid_rc {
        errs.push(format!("oclass_fit_max: got {fit:?}"));
    }
    let (ord, nr) = fit.unwrap_or(((class_id >> 24) as u8, class_id & 0xFFFF));
    let (hi_user, lo) = (hex_u64(&case.hi_user) as u32, hex_u64(&case.oid_lo));
    let oid = Oid::new(case.otype, ord, nr, hi_user, lo);
    if oid.hi != hex_u64(&case.oid_hi) {
        errs.push(format!("oid.hi: got {:#018x}", oid.hi));
    }
    if case.generate_oid_rc == 0 {
        let generated = jump_map::generate_oid(map, class_id, case.otype, hi_user, lo, level, 0);
        if generated != Ok(oid) {
            errs.push(format!("generate_oid: got {generated:?}"));
        }
    }
    let md = ObjectMd {
        oid,
        version: case.omd_ver,
        fdom_lvl: case.fdom_lvl,
    };
    let mode = match case.mode.as_str() {
        "RO" => OpenMode::ReadOnly,
        _ => OpenMode::ReadWrite,
    };
    let placed = jump_map::place(map, &md, case.layout_ver, mode);
    if rc(&placed) != case.rc {
        errs.push(format!("rc: got {placed:?}"));
    } else if let Ok(layout) = placed {
        let shape = (
            Some(layout.version),
            Some(layout.grp_size),
            Some(layout.grp_nr),
        );
        if shape != (case.ol_ver, case.grp_size, case.grp_nr) {
            errs.push(format!("ol_ver, grp_size, grp_nr: got {shape:?}"));
        }
        let got = rows(&layout);
        if Some(&got) != case.layout.as_ref() {
            errs.push(format!("layout: got {got:?}"));
        }
    }
    errs
}

#[test]
fn every_daos_layout_is_reproduced() {
    let text = include_str!("daos_layouts.json");
    let fixture: Fixture = serde_json::from_str(text).expect("fixture parses");
    assert!(
        fixture.source.contains("DAOS v2.6.4's libdaos"),
        "{}",
        fixture.source
    );
    assert!(
        fixture.source.contains("write_pool_buf"),
        "{}",
        fixture.source
    );
    let mut maps = BTreeMap::new();
    for (name, buf) in &fixture.pool_bufs {
        let map = PoolBufMap::parse(&hex_bytes(&buf.hex), buf.map_version)
            .unwrap_or_else(|e| panic!("pool buffer {name} ({}): {e}", buf.desc));
        maps.insert(name.as_str(), map);
    }
    let mut failed = 0;
    for case in &fixture.cases {
        let map = maps
            .get(case.pool.as_str())
            .expect("the case's pool buffer");
        let errs = check(case, map);
        if !errs.is_empty() {
            failed += 1;
            eprintln!("MISMATCH {} ({})\n  case: {case:#?}", case.id, case.class);
            for e in errs {
                eprintln!("  {e}");
            }
        }
    }
    let total = fixture.cases.len();
    eprintln!(
        "DAOS v2.6.4 layouts: {} of {total} cases reproduced",
        total - failed
    );
    assert_eq!(failed, 0, "{failed} of {total} cases differ from libdaos");
    assert_eq!(total, 552);
}
