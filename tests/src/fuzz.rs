//! The fuzz targets' bodies: one per parser at a trust boundary. `fuzz/` (its own workspace,
//! libFuzzer through cargo-fuzz, run by `scripts/fuzz.sh`) drives them with generated input;
//! `tests/tests/fuzz_corpus.rs` replays every saved input of `fuzz/corpus/<target>/` as a
//! regular test. Each must return (any result) for every input: never panic, hang or allocate
//! without bound.

use prost::Message;

/// A target's name and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("wire", wire),
    ("drpc_frame", drpc_frame),
    ("config", config),
    ("mgmt_api", mgmt_api),
    ("mgmt_peer", mgmt_peer),
];

/// A message as a target receives it: header, then the body of its operation; a decoded
/// request is checked and re-encoded, and must encode to the length it says.
pub fn wire(data: &[u8]) {
    use daos_wire::{Header, Request, Writer};
    let Ok(h) = Header::read(data) else {
        return;
    };
    let Ok(body) = h.body(data) else {
        return;
    };
    let Ok(req) = Request::decode(h.op, body) else {
        return;
    };
    let _ = req.check();
    let mut buf = vec![0u8; req.encoded_len()];
    let mut w = Writer::body(&mut buf);
    req.encode(&mut w);
    let n = w
        .finish(h)
        .unwrap_or_else(|e| panic!("{req:?} does not re-encode: {e}"));
    assert_eq!(n, req.encoded_len(), "{req:?}");
}

/// Datagrams as a dRPC socket delivers them (each prefixed here by a length byte), assembled
/// into messages and decoded as `Call`s.
pub fn drpc_frame(data: &[u8]) {
    let mut asm = daos_drpc::frame::Assembler::default();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (datagram, next) = tail.split_at(n);
        rest = next;
        match asm.push(datagram) {
            Ok(Some(msg)) => {
                let _ = daos_drpc::proto::Call::decode(msg);
            }
            Ok(None) => {}
            Err(_) => asm.reset(),
        }
    }
}

/// A `daos_server.yml` and a `daos_control.yml`.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = daos_config::load_str(text, "fuzz.yml", &daos_config::Overrides::default());
    let _ = daos_config::control::load_str(text, "fuzz.yml");
}

/// Management API requests as daos_server decodes them (first byte picks the message), with
/// the checks it applies to what they carry (rank lists, labels, sizes, properties).
pub fn mgmt_api(data: &[u8]) {
    use daos_proto::{ctl, mgmt};
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Ok(r) = mgmt::PoolCreateReq::decode(body) {
                for p in &r.properties {
                    if let Ok((_, v)) = daos_control::props::decode(p) {
                        let _ = daos_control::input::check_label_of("pool", &v);
                        let _ = daos_control::input::parse_size(&v);
                    }
                }
            }
        }
        1 => {
            if let Ok(r) = mgmt::SystemQueryReq::decode(body) {
                let _ = daos_control::hostlist::parse_ranks(&r.ranks);
                let _ = daos_control::hostlist::expand(&r.hosts, 10001);
            }
        }
        2 => {
            if let Ok(r) = mgmt::SystemStopReq::decode(body) {
                let _ = daos_control::hostlist::parse_ranks(&r.ranks);
            }
        }
        3 => {
            let _ = mgmt::PoolSetPropReq::decode(body);
        }
        4 => {
            let _ = mgmt::PoolQueryReq::decode(body);
        }
        5 => {
            let _ = ctl::StorageFormatReq::decode(body);
        }
        6 => {
            if let Ok(r) = ctl::RanksReq::decode(body) {
                let _ = daos_control::hostlist::parse_ranks(&r.ranks);
            }
        }
        _ => {
            let _ = mgmt::GetAttachInfoReq::decode(body);
        }
    }
}

/// What servers take from each other and from disk for the management service (first byte
/// picks): a `raft.log` image, openraft's JSON messages on `raft.RaftSvc` as the receiving
/// replica decodes them, a forwarded command, and the group map an engine checks.
pub fn mgmt_peer(data: &[u8]) {
    use daos_mgmt::raft::TypeConfig;
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(good) = daos_mgmt::raft::log::scan(body) {
                assert!(good <= body.len());
            }
        }
        1 => {
            let _ =
                serde_json::from_slice::<openraft::raft::AppendEntriesRequest<TypeConfig>>(body);
        }
        2 => {
            let _ = serde_json::from_slice::<openraft::raft::VoteRequest<u64>>(body);
        }
        3 => {
            let _ =
                serde_json::from_slice::<openraft::raft::InstallSnapshotRequest<TypeConfig>>(body);
        }
        4 => {
            if let Ok(cmd) = serde_json::from_slice::<daos_mgmt::Command>(body) {
                // A decoded command applies or is refused; it never panics the state.
                let mut db = daos_mgmt::SystemDb::new("daos_server");
                let _ = db.apply(&cmd);
            }
        }
        _ => {
            if let Ok(req) = daos_drpc::mgmt::GroupUpdateReq::decode(body) {
                let _ = daos_engine::control::check_group_update(&req);
            }
        }
    }
}
