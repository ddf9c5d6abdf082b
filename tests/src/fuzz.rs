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
    ("auth", auth),
    ("cart", cart),
];

/// A message as an engine's CaRT context 0 receives it from a DAOS client (Mercury's framing,
/// CaRT's header, an RPC's input): served by the context's own handlers; every codec of
/// `daos-cart` on the same bytes (bulk handles, pool bodies, pool buffers) besides.
pub fn cart(data: &[u8]) {
    use daos_cart::proc_::Decoder;
    use daos_cart::{bulk, pool, rpc};
    let mut out = vec![0u8; daos_cart::mercury::MSG_SIZE];
    let n = daos_engine::context::serve_detached(data, &mut out);
    assert!(n <= out.len());
    if n > 0 {
        // What the engine sends must decode as a reply.
        let a = rpc::parse_answer(&out[..n]).expect("the engine's reply decodes");
        let _ = a;
    }
    if let Ok(call) = rpc::parse_call(data) {
        let i = call.input;
        let _ = rpc::UriLookupIn::decode(i);
        let _ = rpc::ProtoQueryIn::decode(i).map(|q| q.versions().count());
        let _ = rpc::PoolFindIn::decode(i);
        let _ = rpc::SessionParams::decode(i);
        let _ = pool::ConnectIn::decode(i);
        let _ = pool::QueryIn::decode(i);
        let _ = bulk::decode(&mut Decoder::new(i), "bulk");
        // The object protocol a target decodes: every part walked as the target walks it.
        use daos_cart::obj;
        if let Ok(q) = obj::RwIn::decode(i) {
            for iod in q.iods() {
                let _ = iod.recxs().fold(0u64, |a, r| a ^ r.idx ^ r.nr);
            }
            for sgl in q.sgls() {
                let _ = (sgl.capacity(), sgl.len());
            }
            let _ = q.bulks().count();
        }
        if let Ok(q) = obj::PunchIn::decode(i) {
            let _ = (q.dkeys().count(), q.akeys().count());
        }
        if let Ok(q) = obj::EnumIn::decode(i) {
            let _ = q.sgl.capacity();
        }
        let _ = obj::QueryKeyIn::decode(i);
        let _ = obj::CpdIn::decode(i);
        let _ = obj::CollPunchIn::decode(i);
        let _ = obj::CollQueryIn::decode(i);
        // Container and pool attributes, and the pulled buffers they name.
        use daos_cart::cont;
        for index in [
            cont::op::ATTR_LIST,
            cont::op::ATTR_GET,
            cont::op::ATTR_SET,
            cont::op::ATTR_DEL,
        ] {
            let _ = cont::AttrIn::decode(index, i);
            let _ = cont::AttrIn::decode_pool(index - cont::op::ATTR_LIST + pool::op::ATTR_LIST, i);
            let _ = cont::decode_in(cont::op::PROP_SET + index - cont::op::ATTR_LIST, i);
        }
    }
    if let Some((&n, rest)) = data.split_first() {
        let n = u64::from(n % 8) + 1;
        let _ = daos_cart::cont::attr_set_entries(rest, n);
        let _ = daos_cart::cont::attr_names(rest, n);
        let _ = daos_cart::cont::attr_sizes(rest, 0, n);
    }
    let _ = daos_cart::obj::RwOut::decode(data);
    let _ = daos_cart::obj::EnumOut::decode(data);
    let _ = daos_cart::obj::QueryKeyOut::decode(data);
    let _ = pool::read_pool_buf(data);
    let _ = rpc::parse_answer(data).map(|a| {
        let _ = rpc::UriLookupOut::decode(a.output);
        let _ = rpc::PoolFindOut::decode(a.output).map(|o| o.ranks.iter().count());
    });
}

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

/// Datagrams as a dRPC socket delivers them (each prefixed here by a length byte), their
/// framing told apart, assembled into messages and decoded as `Call`s.
pub fn drpc_frame(data: &[u8]) {
    let mut asm = daos_drpc::frame::Assembler::default();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (datagram, next) = tail.split_at(n);
        rest = next;
        // Which framing a connection starting with it would get (DAOS 2.6's bare or 2.8's).
        let _ = daos_drpc::frame::Framing::of_first(datagram, |d| {
            daos_drpc::proto::Call::decode(d).is_ok()
        });
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
    let _ = daos_config::agent::load_str(text, "fuzz.yml");
}

/// What clients hand the servers and the agent about who they are and what they may do (first
/// byte picks): an encoded credential validated (insecure digest), ACL entries of a pool or a
/// container, a principal, an agent's credential answer, a forwarded call, a handle push.
pub fn auth(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = std::str::from_utf8(rest).unwrap_or("");
    match kind % 6 {
        0 => {
            if let Ok((_, id)) = daos_auth::cred::validate_bytes(rest, &daos_auth::Verify::Digest) {
                assert!(id.user.ends_with('@') && id.group.ends_with('@'), "{id:?}");
            }
        }
        1 | 2 => {
            let object = if kind % 6 == 1 {
                daos_auth::Object::Pool
            } else {
                daos_auth::Object::Container
            };
            if let Ok(acl) = daos_auth::Acl::parse(text.lines(), object) {
                // What it prints parses back to the same ACL.
                let again = daos_auth::Acl::parse(acl.strings().iter().map(String::as_str), object)
                    .unwrap_or_else(|e| panic!("{acl:?} does not parse back: {e}"));
                assert_eq!(again, acl);
            }
        }
        3 => {
            let _ = daos_auth::Principal::parse(text);
        }
        4 => {
            let _ = daos_proto::auth::GetCredResp::decode(rest);
            let _ = daos_proto::mgmt::ForwardReq::decode(rest);
        }
        _ => {
            let _ = daos_drpc::mgmt::PoolHandlesReq::decode(rest);
            // DAOS's binary ACL (a client's container property): what decodes encodes back
            // to the same bytes' ACL.
            for object in [daos_auth::Object::Pool, daos_auth::Object::Container] {
                if let Ok(acl) = daos_auth::Acl::from_binary(rest, object) {
                    let again = daos_auth::Acl::from_binary(&acl.to_binary(), object)
                        .unwrap_or_else(|e| panic!("{acl:?} does not decode back: {e}"));
                    assert_eq!(again, acl);
                }
            }
        }
    }
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
