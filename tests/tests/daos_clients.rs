//! A daos-rs system as DAOS's own clients see it (#24): what libdaos does from `daos_init` to
//! finding a pool, with a client of DAOS's protocol written from DAOS's layouts
//! (`daos_client::cart`): GetAttachInfo from the management API gives each rank's tag-0 URI,
//! PROTO_QUERY of every module `daos_init` asks about goes to it, and MGMT_POOL_FIND by label
//! and by UUID answers the pool's UUID and service ranks (the engine asks daos_server over
//! dRPC, as DAOS's engines do).

use std::net::SocketAddrV4;
use std::time::Duration;

use daos_cart::opcode::{self, module};
use daos_cart::rpc::{PoolFindIn, PoolFindOut, ProtoQueryIn, ProtoQueryOut};
use daos_client::cart::{CartClient, Sends};
use daos_tests::*;

const T: Duration = Duration::from_secs(10);

/// Each rank's tag-0 address, from GetAttachInfo (what the agent hands libdaos).
fn rank_addrs(sys: &System) -> Vec<(u32, SocketAddrV4)> {
    use daos_proto::mgmt::{GetAttachInfoReq, mgmt_svc_client::MgmtSvcClient};
    let r = with_channel(sys.port, |ch| async move {
        MgmtSvcClient::new(ch)
            .get_attach_info(GetAttachInfoReq {
                all_ranks: true,
                ..Default::default()
            })
            .await
    })
    .expect("attach info")
    .into_inner();
    r.rank_uris
        .iter()
        .map(|u| {
            let addr = u.uri.split_once("://").expect("provider://addr").1;
            (u.rank, addr.parse().expect("ip:port"))
        })
        .collect()
}

fn pool_find(
    c: &mut CartClient,
    to: SocketAddrV4,
    rank: u32,
    q: PoolFindIn<'_>,
) -> ([u8; 16], Vec<u32>, i32) {
    let r = c
        .call(
            to,
            rank,
            0,
            opcode::opcode(module::MGMT, 3, opcode::mgmt::POOL_FIND),
            T,
            |e| q.encode(e),
        )
        .expect("MGMT_POOL_FIND");
    assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
    let o = PoolFindOut::decode(&r.output).expect("decode");
    (o.uuid, o.ranks.iter().collect(), o.rc)
}

#[test]
fn daos_init_and_pool_find_as_libdaos_does_them() {
    let sys = System::new(1);
    let mut server = sys.start_joined();
    let uuid = sys.create_pool("tank", "256M", None);
    let addrs = rank_addrs(&sys);
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    let (rank, to) = addrs[0];
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    // daos_init: mgmt {2,3} is served at version 3, pool {5,6} at 6; a module not served is
    // DER_NONEXIST in the body (libdaos stops there with a clear error, no hang).
    let query = |c: &mut CartClient, base: u32, offer: &[u32]| {
        let r = c
            .call(to, rank, 0, opcode::PROTO_QUERY, T, |e| {
                ProtoQueryIn::encode_query(e, offer, base)
            })
            .expect("PROTO_QUERY");
        ProtoQueryOut::decode(&r.output).expect("decode")
    };
    assert_eq!(
        query(&mut c, 0x0100_0000, &[2, 3]),
        ProtoQueryOut { version: 3, rc: 0 }
    );
    assert_eq!(
        query(&mut c, 0x0200_0000, &[5, 6]),
        ProtoQueryOut { version: 6, rc: 0 }
    );
    assert_eq!(
        query(&mut c, 0x0C00_0000, &[1]).rc,
        daos_wire::der::NONEXIST
    );

    let want = daos_wire::parse_uuid(&uuid).expect("uuid");
    let by_label = pool_find(
        &mut c,
        to,
        rank,
        PoolFindIn {
            by_label: true,
            label: Some("tank"),
            uuid: [0; 16],
        },
    );
    assert_eq!(by_label, (want, vec![0], 0));
    let by_uuid = pool_find(
        &mut c,
        to,
        rank,
        PoolFindIn {
            by_label: false,
            label: Some("NO LABEL, FINDING BY UUID"),
            uuid: want,
        },
    );
    assert_eq!(by_uuid, (want, vec![0], 0));
    let (_, ranks, rc) = pool_find(
        &mut c,
        to,
        rank,
        PoolFindIn {
            by_label: true,
            label: Some("no-such-pool"),
            uuid: [0; 16],
        },
    );
    assert_eq!((ranks.len(), rc), (0, daos_wire::der::NONEXIST));
    // Through a 2.8-style client too.
    let mut c8 = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::CqData).expect("client");
    let again = pool_find(
        &mut c8,
        to,
        rank,
        PoolFindIn {
            by_label: true,
            label: Some("tank"),
            uuid: [0; 16],
        },
    );
    assert_eq!(again, (want, vec![0], 0));
    sys.stop(&mut server);
}

/// A credential as daos_agent makes one for this process (insecure system: a digest).
fn credential() -> Vec<u8> {
    use prost::Message;
    let names = daos_auth::cred::identity(
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
    .expect("identity");
    daos_auth::cred::credential(
        &names,
        &daos_auth::cred::machine_name(),
        &daos_auth::cred::Signer::Digest,
    )
    .expect("credential")
    .encode_to_vec()
}

/// A pool connect or query with the map buffer of `len` bytes in bulk slot 0 (RW, as
/// libdaos registers it): the reply's output.
#[allow(clippy::too_many_arguments)]
fn pool_op(
    c: &mut CartClient,
    to: SocketAddrV4,
    rank: u32,
    index: u16,
    pool: [u8; 16],
    handle: [u8; 16],
    cred: &[u8],
    len: u64,
    bits: u64,
) -> Vec<u8> {
    use daos_cart::{bulk, pool as cpool};
    let addr = c.endpoint().bulk_addr(0);
    let key = c.endpoint().bulk_desc(0, 1).expect("desc").key;
    let op = cpool::PoolOpIn {
        uuid: pool,
        handle,
        client: [9; 16],
        time: 1,
    };
    let r = c
        .call(
            to,
            rank,
            0,
            opcode::opcode(module::POOL, 6, index),
            T,
            |e| {
                op.encode(e)?;
                match index {
                    cpool::op::CONNECT => {
                        e.iov(cred, "cred")?;
                        e.u64(2, "flags (DAOS_PC_RW)")?;
                        e.u64(bits, "bits")?;
                        bulk::encode(e, addr, len, key, bulk::READ_ONLY | bulk::WRITE_ONLY, "map")?;
                        e.u32(3, "pool version")
                    }
                    cpool::op::QUERY => {
                        bulk::encode(e, addr, len, key, bulk::READ_ONLY | bulk::WRITE_ONLY, "map")?;
                        e.u64(bits, "bits")
                    }
                    _ => Ok(()),
                }
            },
        )
        .expect("pool RPC");
    assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
    r.output
}

#[test]
fn pool_connect_query_and_disconnect_as_libdaos_sends_them() {
    use daos_cart::pool::{self as cpool, PoolOpOut, comp, status};
    use daos_cart::proc_::Decoder;
    let sys = System::with_targets(1, 2);
    let mut server = sys.start_joined();
    let uuid = daos_wire::parse_uuid(&sys.create_pool("tank", "128M", Some("512M"))).expect("uuid");
    let (rank, to) = rank_addrs(&sys)[0];
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let cred = credential();
    let handle = [0x42; 16];
    let size = cpool::pool_buf_size(1 + 1 + 2) as u64;

    // A buffer too small: DER_TRUNC and the size needed; nothing written.
    c.endpoint().bulk_mut(0)[..64].fill(0xEE);
    let out = pool_op(
        &mut c,
        to,
        rank,
        cpool::op::CONNECT,
        uuid,
        handle,
        &cred,
        64,
        4,
    );
    let mut d = Decoder::new(&out);
    let op = PoolOpOut::decode(&mut d).expect("op out");
    assert_eq!(op.rc, daos_wire::der::TRUNC, "{op:?}");
    d.take(cpool::SPACE_LEN + cpool::REBUILD_LEN, "space, rebuild")
        .expect("body");
    assert_eq!(u64::from(d.u32("size").expect("size")), size);
    assert!(c.endpoint().bulk_buf(0)[..64].iter().all(|b| *b == 0xEE));

    // Big enough: the map lands in the buffer; the leader hint names this rank.
    let out = pool_op(
        &mut c,
        to,
        rank,
        cpool::op::CONNECT,
        uuid,
        handle,
        &cred,
        4128,
        4,
    );
    let mut d = Decoder::new(&out);
    let op = PoolOpOut::decode(&mut d).expect("op out");
    assert_eq!((op.rc, op.map_version), (0, 1), "{op:?}");
    assert_eq!((op.hint_flags, op.hint_rank), (cpool::HINT_VALID, rank));
    let (domains, nodes, targets, comps) =
        cpool::read_pool_buf(&c.endpoint().bulk_buf(0)[..size as usize]).expect("pool_buf");
    assert_eq!((domains, nodes, targets), (1, 1, 2));
    assert_eq!(
        (comps[0].kind, comps[1].kind, comps[1].rank),
        (comp::NODE, comp::RANK, rank)
    );
    assert!(
        comps[2..]
            .iter()
            .all(|t| t.kind == comp::TARGET && t.status == status::UPIN)
    );
    // The same connect again (a retry) is answered the same.
    let again = pool_op(
        &mut c,
        to,
        rank,
        cpool::op::CONNECT,
        uuid,
        handle,
        &cred,
        4128,
        4,
    );
    assert_eq!(
        PoolOpOut::decode(&mut Decoder::new(&again)).expect("op").rc,
        0
    );

    // Query with space: totals of both tiers, free no larger than total.
    let out = pool_op(
        &mut c,
        to,
        rank,
        cpool::op::QUERY,
        uuid,
        handle,
        &[],
        4128,
        3,
    );
    let mut d = Decoder::new(&out);
    assert_eq!(PoolOpOut::decode(&mut d).expect("op").rc, 0);
    assert_eq!(d.u32("prop").expect("prop"), 0);
    let v: Vec<u64> = (0..10).map(|_| d.u64("space").expect("space")).collect();
    assert!(
        v[0] > 0 && v[1] > 0 && v[2] <= v[0] && v[3] <= v[1],
        "{v:?}"
    );
    assert_eq!(d.u32("targets").expect("targets"), 2);

    // The pool properties container create asks for (redundancy factor, and EC pda through
    // DAOS's missing break): DAOS's numbers, in type order; label as a string.
    let out = pool_op(
        &mut c,
        to,
        rank,
        cpool::op::QUERY,
        uuid,
        handle,
        &[],
        4128,
        0x600_0000 | 1 << 16,
    );
    let mut d = Decoder::new(&out);
    assert_eq!(PoolOpOut::decode(&mut d).expect("op").rc, 0);
    assert_eq!(d.u32("nr").expect("nr"), 3);
    d.u32("reserved").expect("reserved");
    let entry = |d: &mut Decoder<'_>| {
        let t = d.u32("type").expect("type");
        d.u32("flags").expect("flags");
        t
    };
    assert_eq!(entry(&mut d), 1);
    assert_eq!(d.string("label").expect("label"), Some("tank"));
    assert_eq!((entry(&mut d), d.u64("rf").expect("rf")), (11, 0));
    assert_eq!((entry(&mut d), d.u64("pda").expect("pda")), (12, 1));

    // Disconnect; a second one is no error (a retried request).
    for _ in 0..2 {
        let out = pool_op(
            &mut c,
            to,
            rank,
            cpool::op::DISCONNECT,
            uuid,
            handle,
            &[],
            0,
            0,
        );
        assert_eq!(
            PoolOpOut::decode(&mut Decoder::new(&out)).expect("op").rc,
            0
        );
    }

    // Refusals in the body (never a CaRT-level error for pool RPCs): no credential, a
    // credential that does not verify, an unknown pool.
    let refused = |c: &mut CartClient, pool: [u8; 16], cred: &[u8]| {
        let out = pool_op(
            c,
            to,
            rank,
            cpool::op::CONNECT,
            pool,
            [7; 16],
            cred,
            4128,
            4,
        );
        PoolOpOut::decode(&mut Decoder::new(&out)).expect("op").rc
    };
    assert_eq!(refused(&mut c, uuid, &[]), daos_wire::der::NO_PERM);
    // A changed byte inside the signed token (the uid's field).
    let mut bent = cred.clone();
    bent[6] ^= 0x55;
    assert_ne!(refused(&mut c, uuid, &bent), 0);
    assert_eq!(refused(&mut c, [3; 16], &cred), daos_wire::der::NONEXIST);
    // A pool RPC not served yet (FILTER_CONT, 21): DER_NOSYS in the body; one served whose
    // input does not decode (ATTR_LIST without its op): DER_INVAL in the body.
    for (index, rc) in [(21, daos_wire::der::NOSYS), (13, daos_wire::der::INVAL)] {
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::POOL, 6, index),
                T,
                |_| Ok(()),
            )
            .expect("pool RPC");
        assert_eq!(
            (r.rc(), &r.output[..4]),
            (0, &rc.to_le_bytes()[..]),
            "pool op {index}"
        );
    }
    sys.stop(&mut server);
}

#[test]
fn containers_as_libdaos_creates_opens_queries_and_destroys_them() {
    use daos_cart::cont::{self as ccont, ContOpIn};
    use daos_cart::pool::{self as cpool, PoolOpOut, PropValue};
    use daos_cart::proc_::Decoder;
    let sys = System::new(1);
    let mut server = sys.start_joined();
    let pool = daos_wire::parse_uuid(&sys.create_pool("tank", "128M", None)).expect("uuid");
    let (rank, to) = rank_addrs(&sys)[0];
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let cred = credential();
    let ph = [0x51; 16];
    let out = pool_op(
        &mut c,
        to,
        rank,
        cpool::op::CONNECT,
        pool,
        ph,
        &cred,
        4128,
        4,
    );
    assert_eq!(
        PoolOpOut::decode(&mut Decoder::new(&out)).expect("op").rc,
        0
    );
    let cont_call = |c: &mut CartClient,
                     index: u16,
                     op: ContOpIn,
                     rest: &dyn Fn(
        &mut daos_cart::proc_::Encoder<'_>,
    ) -> Result<(), daos_cart::CartError>| {
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::CONT, 8, index),
                T,
                |e| {
                    op.encode(e)?;
                    rest(e)
                },
            )
            .expect("container RPC");
        assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
        r.output
    };
    let op = |uuid: [u8; 16], handle: [u8; 16]| ContOpIn {
        pool_handle: ph,
        uuid,
        handle,
        client: [8; 16],
        time: 5,
    };
    let rc = |out: &[u8]| {
        PoolOpOut::decode(&mut Decoder::new(out))
            .expect("op out")
            .rc
    };
    let cont = [0xC1; 16];
    // Create with DAOS's properties: label, layout type HDF5, roots.
    let create = |label: &'static str, uuid: [u8; 16]| {
        move |e: &mut daos_cart::proc_::Encoder<'_>| {
            cpool::write_props(
                e,
                &[
                    (0x1001, PropValue::Text(label.into())),
                    (0x1002, PropValue::Num(2)),
                    (ccont::PROP_ROOTS, PropValue::Raw(vec![uuid[0]; 64])),
                ],
            )
        }
    };
    let out = cont_call(
        &mut c,
        ccont::op::CREATE,
        op(cont, [0; 16]),
        &create("c1", cont),
    );
    assert_eq!(rc(&out), 0);
    // The pool's containers: the count alone (no buffer), then into a buffer of 4 entries
    // (UUID, then the label NUL-padded to 128 bytes), DER_TRUNC when it has too little room.
    let list = |c: &mut CartClient, n: u64| {
        use daos_cart::bulk;
        let at = c.endpoint().bulk_addr(0);
        let key = c.endpoint().bulk_desc(0, 1).expect("desc").key;
        let op = cpool::PoolOpIn {
            uuid: pool,
            handle: ph,
            client: [0; 16],
            time: 0,
        };
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::POOL, 6, cpool::op::LIST_CONT),
                T,
                |e| {
                    op.encode(e)?;
                    if n == 0 {
                        e.u64(0, "no bulk")?;
                    } else {
                        let rw = bulk::READ_ONLY | bulk::WRITE_ONLY;
                        bulk::encode(e, at, n * ccont::CONT_INFO_LEN as u64, key, rw, "bulk")?;
                    }
                    e.u64(n, "ncont")
                },
            )
            .expect("list");
        let mut d = Decoder::new(&r.output);
        let rc = PoolOpOut::decode(&mut d).expect("op").rc;
        (rc, d.u64("ncont").expect("ncont"))
    };
    assert_eq!(list(&mut c, 0), (0, 1));
    c.endpoint().bulk_mut(0).fill(0xEE);
    assert_eq!(list(&mut c, 4), (0, 1));
    let b = c.endpoint().bulk_buf(0);
    assert_eq!(&b[..16], &cont);
    assert_eq!(&b[16..19], b"c1\0");
    assert!(b[19..ccont::CONT_INFO_LEN].iter().all(|x| *x == 0));
    assert_eq!(b[ccont::CONT_INFO_LEN], 0xEE, "one entry written");
    // Two containers and room for one: DER_TRUNC with the count, nothing written.
    let c5 = [0xC5; 16];
    let out = cont_call(
        &mut c,
        ccont::op::CREATE,
        op(c5, [0; 16]),
        &create("c5", c5),
    );
    assert_eq!(rc(&out), 0);
    c.endpoint().bulk_mut(0).fill(0xEE);
    assert_eq!(list(&mut c, 1), (daos_wire::der::TRUNC, 2));
    assert!(c.endpoint().bulk_buf(0).iter().all(|x| *x == 0xEE));
    assert_eq!(list(&mut c, 0), (0, 2));
    // The same label again: DER_EXIST.
    let out = cont_call(
        &mut c,
        ccont::op::CREATE,
        op([0xC2; 16], [0; 16]),
        &create("c1", [0xC2; 16]),
    );
    assert_eq!(rc(&out), daos_wire::der::EXIST);
    // Open by label, asking for layout type and roots: the properties stored, and the UUID.
    let bits = 1 << 1 | 1 << 16;
    let out = cont_call(
        &mut c,
        ccont::op::OPEN_BYLABEL,
        op([0; 16], [0xAA; 16]),
        &|e| {
            e.u64(0x82, "flags")?;
            e.u64(bits, "bits")?;
            e.string(Some("c1"), true, "label")
        },
    );
    let mut d = Decoder::new(&out);
    assert_eq!(PoolOpOut::decode(&mut d).expect("op").rc, 0);
    let props = ccont::read_props(&mut d).expect("props");
    assert_eq!(
        props,
        [
            (0x1002, PropValue::Num(2)),
            (ccont::PROP_ROOTS, PropValue::Raw(vec![0xC1; 64]))
        ]
    );
    d.take(16, "snapshots, handles").expect("tail");
    assert_eq!(d.uuid("uuid").expect("uuid"), cont);
    // Query through the open handle: the label.
    let out = cont_call(&mut c, ccont::op::QUERY, op(cont, [0xAA; 16]), &|e| {
        e.u64(1, "bits")
    });
    let mut d = Decoder::new(&out);
    assert_eq!(PoolOpOut::decode(&mut d).expect("op").rc, 0);
    assert_eq!(
        ccont::read_props(&mut d).expect("props"),
        [(0x1001, PropValue::Text("c1".into()))]
    );
    // Close (twice: the second is a retry, no error), destroy, then it is gone.
    for _ in 0..2 {
        let out = cont_call(&mut c, ccont::op::CLOSE, op(cont, [0xAA; 16]), &|_| Ok(()));
        assert_eq!(rc(&out), 0);
    }
    let out = cont_call(&mut c, ccont::op::DESTROY, op(cont, [0; 16]), &|e| {
        e.u32(0, "force")
    });
    assert_eq!(rc(&out), 0);
    let out = cont_call(&mut c, ccont::op::QUERY, op(cont, [0xAA; 16]), &|e| {
        e.u64(1, "bits")
    });
    assert_eq!(rc(&out), daos_wire::der::NONEXIST);
    // Containers without a label (DAOS's clients make them): known by their UUID, two of
    // them side by side, the label property left out (DAOS's service leaves out its default
    // label).
    for u in [[0xD1u8; 16], [0xD2; 16]] {
        let out = cont_call(&mut c, ccont::op::CREATE, op(u, [0; 16]), &|e| {
            cpool::write_props(e, &[(0x1002, PropValue::Num(1))])
        });
        assert_eq!(rc(&out), 0, "unlabeled create");
    }
    let out = cont_call(&mut c, ccont::op::OPEN, op([0xD2; 16], [0xAD; 16]), &|e| {
        e.u64(2, "flags")?;
        e.u64(0b11, "bits (label, layout type)")
    });
    let mut d = Decoder::new(&out);
    assert_eq!(PoolOpOut::decode(&mut d).expect("op").rc, 0);
    assert_eq!(
        ccont::read_props(&mut d).expect("props"),
        [(0x1002, PropValue::Num(1))]
    );
    // A pool handle that never connected here: DER_NO_HDL, in the body.
    let stranger = ContOpIn {
        pool_handle: [0x99; 16],
        ..op(cont, [0; 16])
    };
    let out = cont_call(&mut c, ccont::op::CREATE, stranger, &create("c9", [9; 16]));
    assert_eq!(rc(&out), daos_wire::der::NO_HDL);
    sys.stop(&mut server);
}

/// Connects pool handle `ph` to `pool`, creates container `cont` labelled `label` and opens
/// it read-write as handle `ch`.
#[allow(clippy::too_many_arguments)]
fn open_container(
    c: &mut CartClient,
    to: SocketAddrV4,
    rank: u32,
    pool: [u8; 16],
    ph: [u8; 16],
    cont: [u8; 16],
    ch: [u8; 16],
    label: &str,
) {
    use daos_cart::cont::{self as ccont, ContOpIn};
    use daos_cart::pool::{self as cpool, PoolOpOut, PropValue};
    use daos_cart::proc_::Decoder;
    let out = pool_op(
        c,
        to,
        rank,
        cpool::op::CONNECT,
        pool,
        ph,
        &credential(),
        4128,
        4,
    );
    assert_eq!(
        PoolOpOut::decode(&mut Decoder::new(&out)).expect("op").rc,
        0
    );
    let call = |c: &mut CartClient,
                index: u16,
                op: ContOpIn,
                rest: &dyn Fn(
        &mut daos_cart::proc_::Encoder<'_>,
    ) -> Result<(), daos_cart::CartError>| {
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::CONT, 8, index),
                T,
                |e| {
                    op.encode(e)?;
                    rest(e)
                },
            )
            .expect("container RPC");
        PoolOpOut::decode(&mut Decoder::new(&r.output))
            .expect("op")
            .rc
    };
    let op = |handle| ContOpIn {
        pool_handle: ph,
        uuid: cont,
        handle,
        client: [8; 16],
        time: 5,
    };
    let label = label.to_string();
    let rc = call(c, ccont::op::CREATE, op([0; 16]), &|e| {
        cpool::write_props(e, &[(0x1001, PropValue::Text(label.clone()))])
    });
    assert_eq!(rc, 0, "create");
    let rc = call(c, ccont::op::OPEN, op(ch), &|e| {
        e.u64(2, "flags (DAOS_COO_RW)")?;
        e.u64(0, "bits")
    });
    assert_eq!(rc, 0, "open");
}

/// An `OBJ_RW` call on the container `ids` = (pool, container handle, container) opened.
fn rw<'a>(
    ids: ([u8; 16], [u8; 16], [u8; 16]),
    oid: daos_cart::obj::UnitOid,
    api_flags: u64,
    flags: u32,
    dkey: &'a [u8],
    iods: &'a [daos_cart::obj::IodSpec<'a>],
    data: daos_cart::obj::RwData<'a>,
) -> daos_cart::obj::RwCall<'a> {
    daos_cart::obj::RwCall {
        oid,
        pool: ids.0,
        co_hdl: ids.1,
        co_uuid: ids.2,
        api_flags,
        map_ver: 1,
        flags,
        dkey,
        iods,
        data,
    }
}

#[test]
fn objects_as_libdaos_and_dfs_write_read_list_and_punch_them() {
    use daos_cart::obj::{
        self as cobj, BulkRef, EnumCall, EnumOut, IodSpec, PunchCall, QueryKeyCall, QueryKeyOut,
        Recx, RwCall, RwData, RwOut, UnitOid, cond, get, iod_type, orf,
    };
    use daos_wire::der;
    let sys = System::new(1);
    let mut server = sys.start_joined();
    let pool = daos_wire::parse_uuid(&sys.create_pool("tank", "128M", Some("512M"))).expect("uuid");
    let (rank, to) = rank_addrs(&sys)[0];
    // Target 0 is tag 2, two ports above tag 0.
    let tgt = SocketAddrV4::new(*to.ip(), to.port() + 2);
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let (ph, cont, ch) = ([0x51; 16], [0xC1; 16], [0xAA; 16]);
    open_container(&mut c, to, rank, pool, ph, cont, ch, "objects");
    let kv = UnitOid {
        lo: 7,
        hi: 0x0001_0001_0000_0000,
        shard: 0,
        layout_ver: 2,
    };
    let file = UnitOid {
        lo: 8,
        hi: 0x0D01_0001_0000_0000,
        ..kv
    };
    let obj_call = |c: &mut CartClient,
                    index: u16,
                    body: &dyn Fn(
        &mut daos_cart::proc_::Encoder<'_>,
    ) -> Result<(), daos_cart::CartError>| {
        let r = c
            .call(
                tgt,
                rank,
                2,
                opcode::opcode(module::OBJ, 10, index),
                T,
                body,
            )
            .expect("object RPC");
        assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
        r.output
    };
    let ids = (pool, ch, cont);
    let single = |name: &'static [u8], size| IodSpec {
        name,
        kind: iod_type::SINGLE,
        size,
        flags: 0,
        recxs: &[],
    };
    let update = |c: &mut CartClient, call: RwCall<'_>| {
        RwOut::decode(&obj_call(c, cobj::op::UPDATE, &|e| call.encode(e))).expect("update out")
    };
    let fetch = |c: &mut CartClient, call: RwCall<'_>| {
        RwOut::decode(&obj_call(c, cobj::op::FETCH, &|e| call.encode(e))).expect("fetch out")
    };

    // A single value, inserted once (DFS's create): a second insert is DER_EXIST.
    let iods = [single(b"a", 5)];
    let put = [(5, &b"hello"[..])];
    let out = update(
        &mut c,
        rw(
            ids,
            kv,
            cond::DKEY_INSERT,
            0,
            b"d1",
            &iods,
            RwData::Inline(&put),
        ),
    );
    assert_eq!(out.ret, 0, "{out:?}");
    let out = update(
        &mut c,
        rw(
            ids,
            kv,
            cond::DKEY_INSERT,
            0,
            b"d1",
            &iods,
            RwData::Inline(&put),
        ),
    );
    assert_eq!(out.ret, der::EXIST);
    let out = update(
        &mut c,
        rw(
            ids,
            kv,
            cond::DKEY_UPDATE,
            0,
            b"nope",
            &iods,
            RwData::Inline(&put),
        ),
    );
    assert_eq!(out.ret, der::NONEXIST);
    // Read back into a 64-byte buffer; a size query; a lookup of a missing dkey.
    let get64 = [(64, &[0u8; 0][..])];
    let out = fetch(
        &mut c,
        rw(
            ids,
            kv,
            0,
            0,
            b"d1",
            &[single(b"a", 0)],
            RwData::Inline(&get64),
        ),
    );
    assert_eq!(
        (out.ret, out.iod_sizes.clone(), out.sgls.clone()),
        (0, vec![5], vec![vec![b"hello".to_vec()]])
    );
    let out = fetch(
        &mut c,
        rw(ids, kv, 0, 0, b"d1", &[single(b"a", 0)], RwData::None),
    );
    assert_eq!((out.ret, out.iod_sizes, out.sgls.len()), (0, vec![5], 0));
    let out = fetch(
        &mut c,
        rw(
            ids,
            kv,
            cond::DKEY_FETCH,
            0,
            b"zz",
            &[single(b"a", 0)],
            RwData::Inline(&get64),
        ),
    );
    assert_eq!(out.ret, der::NONEXIST);
    let out = fetch(
        &mut c,
        rw(
            ids,
            kv,
            0,
            0,
            b"zz",
            &[single(b"a", 0)],
            RwData::Inline(&get64),
        ),
    );
    assert_eq!((out.ret, out.iod_sizes), (0, vec![0]));
    // Too small a buffer: DER_REC2BIG with the size.
    let get2 = [(2, &[0u8; 0][..])];
    let out = fetch(
        &mut c,
        rw(
            ids,
            kv,
            0,
            0,
            b"d1",
            &[single(b"a", 0)],
            RwData::Inline(&get2),
        ),
    );
    assert_eq!((out.ret, out.iod_sizes), (der::REC2BIG, vec![5]));

    // A byte array (DFS's file data): two runs with a hole between them.
    let dkey1 = 1u64.to_le_bytes();
    let dk: &'static [u8] = Box::leak(Box::new(dkey1));
    let w1 = [Recx { idx: 0, nr: 10 }, Recx { idx: 20, nr: 5 }];
    let arr = |recxs| IodSpec {
        name: b"0",
        kind: iod_type::ARRAY,
        size: 1,
        flags: 0,
        recxs,
    };
    let put = [(15, &b"0123456789abcde"[..])];
    let out = update(
        &mut c,
        rw(ids, file, 0, 0, dk, &[arr(&w1)], RwData::Inline(&put)),
    );
    assert_eq!(out.ret, 0);
    let r30 = [Recx { idx: 0, nr: 30 }];
    let get30 = [(30, &[0u8; 0][..])];
    let flags = orf::CREATE_MAP | orf::CREATE_MAP_DETAIL;
    let out = fetch(
        &mut c,
        rw(
            ids,
            file,
            0,
            flags,
            dk,
            &[arr(&r30)],
            RwData::Inline(&get30),
        ),
    );
    assert_eq!(out.ret, 0);
    assert_eq!(out.iod_sizes, [1]);
    // The trailing hole is trimmed, the middle one reads as zeros; the map lists the runs.
    let mut want = b"0123456789".to_vec();
    want.extend_from_slice(&[0; 10]);
    want.extend_from_slice(b"abcde");
    assert_eq!(out.sgls, [vec![want]]);
    let (_, size, lo, hi, runs) = out.maps[0].clone();
    assert_eq!(
        (size, lo, hi),
        (1, Recx { idx: 0, nr: 10 }, Recx { idx: 20, nr: 5 })
    );
    assert_eq!(runs, [Recx { idx: 0, nr: 10 }, Recx { idx: 20, nr: 5 }]);
    // DFS's file size: the greatest dkey and its last written run.
    let q = QueryKeyCall {
        oid: file,
        pool,
        co_hdl: ch,
        co_uuid: cont,
        map_ver: 1,
        api_flags: get::DKEY | get::RECX | get::MAX,
        dkey: b"",
        akey: b"0",
    };
    let out = obj_call(&mut c, cobj::op::QUERY_KEY, &|e| q.encode(e));
    let k = QueryKeyOut::decode(&out).expect("query key out");
    assert_eq!(
        (k.ret, k.dkey, k.recx),
        (0, &dkey1[..], Recx { idx: 20, nr: 5 })
    );
    assert!(k.max_epoch > 0);

    // The array's written runs, listed (daos_obj_list_recx), one per call then the rest.
    let recx_list = |c: &mut CartClient, nr: u32, anchor: &[u8; cobj::ANCHOR_LEN]| {
        let call = EnumCall {
            oid: file,
            pool,
            co_hdl: ch,
            co_uuid: cont,
            map_ver: 1,
            nr,
            dkey: dk,
            akey: b"0",
            anchor,
            dkey_anchor: &[0; cobj::ANCHOR_LEN],
            akey_anchor: &[0; cobj::ANCHOR_LEN],
            buf_len: 0,
            bulk: None,
            kds_bulk: None,
        };
        let r = c
            .call(
                tgt,
                rank,
                2,
                opcode::opcode(module::OBJ, 10, cobj::op::RECX_ENUMERATE),
                T,
                |e| call.encode(e),
            )
            .expect("recx enumerate");
        EnumOut::decode(&r.output).expect("enum out")
    };
    let first = recx_list(&mut c, 1, &[0; cobj::ANCHOR_LEN]);
    assert_eq!(
        (first.ret, first.size, first.recxs.clone()),
        (0, 1, vec![Recx { idx: 0, nr: 10 }])
    );
    let rest = recx_list(&mut c, 8, &first.anchor);
    assert_eq!(rest.recxs, [Recx { idx: 20, nr: 5 }]);
    assert_eq!(rest.anchor[0], cobj::ANCHOR_EOF as u8);

    // A dkey of 512 KiB: the request travels as "more data" and is pulled whole.
    let long: &'static [u8] = Box::leak(vec![b'L'; 512 << 10].into_boxed_slice());
    let iods = [single(b"a", 4)];
    let put = [(4, &b"long"[..])];
    let other = UnitOid { lo: 99, ..kv };
    let out = update(
        &mut c,
        rw(ids, other, 0, 0, long, &iods, RwData::Inline(&put)),
    );
    assert_eq!(out.ret, 0, "{out:?}");
    let get8 = [(8, &[0u8; 0][..])];
    let out = fetch(
        &mut c,
        rw(
            ids,
            other,
            0,
            0,
            long,
            &[single(b"a", 0)],
            RwData::Inline(&get8),
        ),
    );
    assert_eq!(out.sgls, [vec![b"long".to_vec()]]);

    // A value moved by RMA both ways (over 19 KiB, as libdaos sends it).
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (a0, k0) = (
        c.endpoint().bulk_addr(0),
        c.endpoint().bulk_desc(0, 1).expect("desc").key,
    );
    c.endpoint().bulk_mut(0)[..big.len()].copy_from_slice(&big);
    let wbulk = [BulkRef {
        addr: a0,
        len: big.len() as u64,
        key: k0,
        writable: false,
    }];
    let iods = [single(b"big", big.len() as u64)];
    let out = update(
        &mut c,
        rw(ids, kv, 0, 0, b"d2", &iods, RwData::Bulk(&wbulk)),
    );
    assert_eq!(out.ret, 0, "{out:?}");
    let (a1, k1) = (
        c.endpoint().bulk_addr(1),
        c.endpoint().bulk_desc(1, 1).expect("desc").key,
    );
    c.endpoint().bulk_mut(1).fill(0);
    let rbulk = [BulkRef {
        addr: a1,
        len: 1 << 20,
        key: k1,
        writable: true,
    }];
    let out = fetch(
        &mut c,
        rw(
            ids,
            kv,
            0,
            0,
            b"d2",
            &[single(b"big", 0)],
            RwData::Bulk(&rbulk),
        ),
    );
    assert_eq!(
        (out.ret, out.iod_sizes.clone(), out.data_sizes.clone()),
        (0, vec![100_000], vec![100_000])
    );
    assert!(
        c.endpoint().bulk_buf(1)[..big.len()] == big[..],
        "the value pushed back"
    );

    // Dkeys listed two at a time, resuming at the anchor; then a dkey punched.
    update(
        &mut c,
        rw(
            ids,
            kv,
            0,
            0,
            b"d3",
            &[single(b"a", 5)],
            RwData::Inline(&[(5, &b"three"[..])]),
        ),
    );
    let list = |c: &mut CartClient, nr: u32, anchor: &[u8; cobj::ANCHOR_LEN]| {
        let call = EnumCall {
            oid: kv,
            pool,
            co_hdl: ch,
            co_uuid: cont,
            map_ver: 1,
            nr,
            dkey: b"",
            akey: b"",
            anchor: &[0; cobj::ANCHOR_LEN],
            dkey_anchor: anchor,
            akey_anchor: &[0; cobj::ANCHOR_LEN],
            buf_len: 256,
            bulk: None,
            kds_bulk: None,
        };
        EnumOut::decode(&obj_call(c, cobj::op::DKEY_ENUMERATE, &|e| call.encode(e)))
            .expect("enum out")
    };
    let first = list(&mut c, 2, &[0; cobj::ANCHOR_LEN]);
    assert_eq!(
        (first.ret, first.num, first.keys.clone()),
        (0, 2, b"d1d2".to_vec())
    );
    assert_eq!(first.kds, [(2, cobj::ITER_DKEY), (2, cobj::ITER_DKEY)]);
    assert_ne!(first.dkey_anchor[0], cobj::ANCHOR_EOF as u8);
    let rest = list(&mut c, 2, &first.dkey_anchor);
    assert_eq!((rest.num, rest.keys.clone()), (1, b"d3".to_vec()));
    assert_eq!(rest.dkey_anchor[0], cobj::ANCHOR_EOF as u8);
    let punch = |c: &mut CartClient, api_flags, dkey: &'static [u8]| {
        let p = PunchCall {
            oid: kv,
            pool,
            co_hdl: ch,
            co_uuid: cont,
            api_flags,
            map_ver: 1,
            dkey: Some(dkey),
            akeys: &[],
        };
        let out = obj_call(c, cobj::op::PUNCH_DKEYS, &|e| p.encode(e));
        i32::from_le_bytes(out[..4].try_into().expect("rc"))
    };
    assert_eq!(punch(&mut c, cond::PUNCH, b"d2"), 0);
    assert_eq!(punch(&mut c, cond::PUNCH, b"d2"), der::NONEXIST);
    let all = list(&mut c, 16, &[0; cobj::ANCHOR_LEN]);
    assert_eq!((all.num, all.keys), (2, b"d1d3".to_vec()));

    // A handle the pool service never issued: DER_NO_HDL.
    let a0_iod = [single(b"a", 0)];
    let stranger = RwCall {
        co_hdl: [0x77; 16],
        ..rw(ids, kv, 0, 0, b"d1", &a0_iod, RwData::Inline(&get64))
    };
    assert_eq!(fetch(&mut c, stranger).ret, der::NO_HDL);
    sys.stop(&mut server);
}

#[test]
fn what_dfs_mounts_and_lists_with_oid_blocks_attributes_truncate_and_bulk_listing() {
    use daos_cart::cont::{self as ccont, ContOpIn};
    use daos_cart::obj::{
        self as cobj, BulkRef, EnumCall, EnumOut, IodSpec, QueryKeyCall, QueryKeyOut, Recx, RwData,
        RwOut, UnitOid, get, iod_type,
    };
    use daos_cart::pool::PoolOpOut;
    use daos_cart::proc_::Decoder;
    use daos_wire::der;
    let sys = System::new(1);
    let mut server = sys.start_joined();
    let pool = daos_wire::parse_uuid(&sys.create_pool("tank", "128M", Some("256M"))).expect("uuid");
    let (rank, to) = rank_addrs(&sys)[0];
    let tgt = SocketAddrV4::new(*to.ip(), to.port() + 2);
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let (ph, cont, ch) = ([0x52; 16], [0xC2; 16], [0xAB; 16]);
    open_container(&mut c, to, rank, pool, ph, cont, ch, "dfs");
    let ids = (pool, ch, cont);

    // Object ids in blocks, unique and durable in the pool service (dfs_mount's first call).
    let alloc = |c: &mut CartClient, num: u64, handle: [u8; 16]| {
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::CONT, 8, ccont::op::OID_ALLOC),
                T,
                |e| {
                    e.uuid(&ph, "ci_pool_hdl")?;
                    e.uuid(&cont, "ci_uuid")?;
                    e.uuid(&handle, "ci_hdl")?;
                    e.u64(num, "num_oids")
                },
            )
            .expect("OID_ALLOC");
        let mut d = Decoder::new(&r.output);
        let rc = PoolOpOut::decode(&mut d).expect("op").rc;
        (rc, d.u64("oid").expect("oid"))
    };
    assert_eq!(alloc(&mut c, 100, ch), (0, 0));
    assert_eq!(alloc(&mut c, 5, ch), (0, 100));
    assert_eq!(alloc(&mut c, 1, ch), (0, 105));
    // No such container handle: refused (DAOS says DER_NO_HDL; the pool service's gRPC
    // refusal reaches the engine as its kind, DER_NO_PERM, until errors keep their codes).
    assert!(
        alloc(&mut c, 1, [0x13; 16]).0 < 0,
        "no such container handle"
    );
    // Container attributes: none yet (dfuse reads its cache settings so, and takes defaults);
    // a get naming no attribute is refused.
    let attr = |c: &mut CartClient, index: u16| {
        let op = ContOpIn {
            pool_handle: ph,
            uuid: cont,
            handle: ch,
            client: [8; 16],
            time: 9,
        };
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::CONT, 8, index),
                T,
                |e| {
                    op.encode(e)?;
                    e.u64(0, "bulk or count")
                },
            )
            .expect("attr");
        let mut d = Decoder::new(&r.output);
        (
            PoolOpOut::decode(&mut d).expect("op").rc,
            d.u64("size").ok(),
        )
    };
    assert_eq!(attr(&mut c, ccont::op::ATTR_GET).0, der::INVAL);
    assert_eq!(attr(&mut c, ccont::op::ATTR_LIST), (0, Some(0)));

    // A pool map refresh (what a client does on DER_STALE): the map moves only when it is
    // newer than the client's.
    let refresh = |c: &mut CartClient, have: u32| {
        use daos_cart::{bulk, pool as cpool};
        let addr = c.endpoint().bulk_addr(0);
        let key = c.endpoint().bulk_desc(0, 1).expect("desc").key;
        c.endpoint().bulk_mut(0)[..64].fill(0xEE);
        let op = cpool::PoolOpIn {
            uuid: pool,
            handle: ph,
            client: [0; 16],
            time: 0,
        };
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::POOL, 6, cpool::op::TGT_QUERY_MAP),
                T,
                |e| {
                    op.encode(e)?;
                    bulk::encode(
                        e,
                        addr,
                        4128,
                        key,
                        bulk::READ_ONLY | bulk::WRITE_ONLY,
                        "map",
                    )?;
                    e.u32(have, "tmi_map_version")
                },
            )
            .expect("TGT_QUERY_MAP");
        let mut d = Decoder::new(&r.output);
        let o = PoolOpOut::decode(&mut d).expect("op");
        let size = d.u32("tmo_map_buf_size").expect("size");
        let pushed = c.endpoint().bulk_buf(0)[..64].iter().any(|b| *b != 0xEE);
        (o.rc, o.map_version, size, pushed)
    };
    let (rc, version, size, pushed) = refresh(&mut c, 0);
    assert_eq!(rc, 0);
    assert!(
        version >= 1 && size > 0 && pushed,
        "{version} {size} {pushed}"
    );
    let got = daos_cart::pool::read_pool_buf(&c.endpoint().bulk_buf(0)[..size as usize])
        .expect("a pool_buf");
    let _ = got;
    assert_eq!(
        refresh(&mut c, version),
        (0, version, 0, false),
        "no newer map"
    );

    let obj_call = |c: &mut CartClient,
                    index: u16,
                    body: &dyn Fn(
        &mut daos_cart::proc_::Encoder<'_>,
    ) -> Result<(), daos_cart::CartError>| {
        let r = c
            .call(
                tgt,
                rank,
                2,
                opcode::opcode(module::OBJ, 10, index),
                T,
                body,
            )
            .expect("object RPC");
        assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
        r.output
    };
    // A file of 100 bytes truncated to 40 (DFS: an array punch, an update of size 0).
    let file = UnitOid {
        lo: 5,
        hi: 0x0D01_0001_0000_0000,
        shard: 0,
        layout_ver: 2,
    };
    let dk: &'static [u8] = Box::leak(Box::new(1u64.to_le_bytes()));
    let all = [Recx { idx: 0, nr: 100 }];
    let tail = [Recx { idx: 40, nr: 60 }];
    let arr = |size, recxs| IodSpec {
        name: b"0",
        kind: iod_type::ARRAY,
        size,
        flags: 0,
        recxs,
    };
    let data = [(100, &[7u8; 100][..])];
    let iods = [arr(1, &all)];
    let out = RwOut::decode(&obj_call(&mut c, cobj::op::UPDATE, &|e| {
        rw(ids, file, 0, 0, dk, &iods, RwData::Inline(&data)).encode(e)
    }))
    .expect("out");
    assert_eq!(out.ret, 0);
    let punch = [arr(0, &tail)];
    let out = RwOut::decode(&obj_call(&mut c, cobj::op::UPDATE, &|e| {
        rw(ids, file, 0, 0, dk, &punch, RwData::None).encode(e)
    }))
    .expect("out");
    assert_eq!(out.ret, 0);
    let q = QueryKeyCall {
        oid: file,
        pool,
        co_hdl: ch,
        co_uuid: cont,
        map_ver: 1,
        api_flags: get::DKEY | get::RECX | get::MAX,
        dkey: b"",
        akey: b"0",
    };
    let out = obj_call(&mut c, cobj::op::QUERY_KEY, &|e| q.encode(e));
    let k = QueryKeyOut::decode(&out).expect("query key");
    assert_eq!(
        (k.ret, k.recx),
        (0, Recx { idx: 0, nr: 40 }),
        "the file is 40 bytes"
    );
    let get100 = [(100, &[0u8; 0][..])];
    let out = RwOut::decode(&obj_call(&mut c, cobj::op::FETCH, &|e| {
        rw(ids, file, 0, 0, dk, &iods, RwData::Inline(&get100)).encode(e)
    }))
    .expect("out");
    assert_eq!(out.sgls, [vec![vec![7u8; 40]]]);

    // A directory of 300 entries listed as DFS's readdir does: a 32 KiB key buffer (the
    // request travels as "more data"), keys pushed into it, 200 descriptors by bulk.
    let dir = UnitOid {
        lo: 6,
        hi: 0x0001_0001_0000_0000,
        shard: 0,
        layout_ver: 2,
    };
    let names: Vec<String> = (0..300).map(|i| format!("entry-{i:04}")).collect();
    for n in &names {
        let key: &'static [u8] = Box::leak(n.clone().into_bytes().into_boxed_slice());
        let iods = [IodSpec {
            name: b"DFS_INODE",
            kind: iod_type::ARRAY,
            size: 1,
            flags: 0,
            recxs: &[Recx { idx: 0, nr: 4 }],
        }];
        let d = [(4, &b"inod"[..])];
        let out = RwOut::decode(&obj_call(&mut c, cobj::op::UPDATE, &|e| {
            rw(
                ids,
                dir,
                daos_cart::obj::cond::DKEY_INSERT,
                0,
                key,
                &iods,
                RwData::Inline(&d),
            )
            .encode(e)
        }))
        .expect("out");
        assert_eq!(out.ret, 0);
    }
    let (a0, k0) = (
        c.endpoint().bulk_addr(0),
        c.endpoint().bulk_desc(0, 1).expect("d").key,
    );
    let (a1, k1) = (
        c.endpoint().bulk_addr(1),
        c.endpoint().bulk_desc(1, 1).expect("d").key,
    );
    let mut listed: Vec<String> = Vec::new();
    let mut anchor = [0u8; cobj::ANCHOR_LEN];
    for round in 0.. {
        assert!(round < 5, "the listing ends");
        let call = EnumCall {
            oid: dir,
            pool,
            co_hdl: ch,
            co_uuid: cont,
            map_ver: 1,
            nr: 200,
            dkey: b"",
            akey: b"",
            anchor: &[0; cobj::ANCHOR_LEN],
            dkey_anchor: &anchor,
            akey_anchor: &[0; cobj::ANCHOR_LEN],
            buf_len: 32 << 10,
            bulk: Some(BulkRef {
                addr: a0,
                len: 32 << 10,
                key: k0,
                writable: true,
            }),
            kds_bulk: Some(BulkRef {
                addr: a1,
                len: 200 * 16,
                key: k1,
                writable: true,
            }),
        };
        let out = EnumOut::decode(&obj_call(&mut c, cobj::op::DKEY_ENUMERATE, &|e| {
            call.encode(e)
        }))
        .expect("enum out");
        assert_eq!(out.ret, 0);
        assert!(out.kds.is_empty() && out.keys.is_empty(), "both by bulk");
        let keys = c.endpoint().bulk_buf(0)[..out.size as usize].to_vec();
        let kds = c.endpoint().bulk_buf(1)[..out.num as usize * 16].to_vec();
        let mut at = 0;
        for kd in kds.chunks(16) {
            let len = u64::from_le_bytes(kd[..8].try_into().expect("len")) as usize;
            assert_eq!(
                u32::from_le_bytes(kd[8..12].try_into().expect("type")),
                cobj::ITER_DKEY
            );
            listed.push(String::from_utf8(keys[at..at + len].to_vec()).expect("utf8"));
            at += len;
        }
        anchor = out.dkey_anchor;
        if anchor[0] == cobj::ANCHOR_EOF as u8 {
            break;
        }
    }
    assert_eq!(listed, names, "every entry once, in order");
    sys.stop(&mut server);
}

#[test]
fn objects_of_several_shards_are_sized_and_punched_across_the_engines_targets() {
    use daos_cart::obj::{
        self as cobj, CollPunchIn, CollQueryIn, CollTarget, CpdIn, CpdSub, CpdTarget, IodSpec,
        Recx, RwData, RwOut, UnitOid, cpd_op, get, iod_type,
    };
    use daos_cart::proc_::Decoder;
    // One engine of four targets: an object's shards on each, as DAOS's placement puts an
    // SX file's (what dfuse's stat and rm of such a file send).
    let sys = System::with_targets(1, 4);
    let mut server = sys.start_joined();
    let pool = daos_wire::parse_uuid(&sys.create_pool("tank", "256M", Some("512M"))).expect("uuid");
    let (rank, to) = rank_addrs(&sys)[0];
    let tgt = |t: u16| SocketAddrV4::new(*to.ip(), to.port() + 2 + t);
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let (ph, cont, ch) = ([0x53; 16], [0xC3; 16], [0xAC; 16]);
    open_container(&mut c, to, rank, pool, ph, cont, ch, "multi");
    let ids = (pool, ch, cont);
    let call = |c: &mut CartClient,
                t: u16,
                index: u16,
                body: &dyn Fn(
        &mut daos_cart::proc_::Encoder<'_>,
    ) -> Result<(), daos_cart::CartError>| {
        let r = c
            .call(
                tgt(t),
                rank,
                u32::from(t) + 2,
                opcode::opcode(module::OBJ, 10, index),
                T,
                body,
            )
            .expect("object RPC");
        assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
        r.output
    };
    let file = |lo| UnitOid {
        lo,
        hi: 0x0D01_0004_0000_0000,
        shard: 0,
        layout_ver: 2,
    };
    // Chunk k (dkey k) of a file on target k % 4, a MiB's worth of bytes in each but the last.
    let write = |c: &mut CartClient, f: UnitOid, dkey: u64, len: u64| {
        let dk: &'static [u8] = Box::leak(Box::new(dkey.to_le_bytes()));
        let recx = [Recx { idx: 0, nr: len }];
        let iods = [IodSpec {
            name: b"0",
            kind: iod_type::ARRAY,
            size: 1,
            flags: 0,
            recxs: &recx,
        }];
        let data = vec![dkey as u8; len as usize];
        let put = [(len, &data[..])];
        let t = (dkey % 4) as u16;
        let out = RwOut::decode(&call(c, t, cobj::op::UPDATE, &|e| {
            rw(
                ids,
                UnitOid {
                    shard: u32::from(t),
                    ..f
                },
                0,
                0,
                dk,
                &iods,
                RwData::Inline(&put),
            )
            .encode(e)
        }))
        .expect("update");
        assert_eq!(out.ret, 0);
    };
    let all = vec![CollTarget {
        rank,
        tgt_idxs: vec![0, 1, 2, 3],
    }];
    let size = |c: &mut CartClient, f: UnitOid, at: u16| {
        let q = CollQueryIn {
            pool,
            co_hdl: ch,
            co_uuid: cont,
            oid: f,
            api_flags: get::DKEY | get::RECX | get::MAX,
            map_ver: 1,
            flags: 0,
            dkey: b"",
            akey: b"0",
            targets: all.clone(),
        };
        let out = call(c, at, cobj::op::COLL_QUERY, &|e| q.encode(e));
        let mut d = Decoder::new(&out);
        let rc = d.i32("ret").expect("ret");
        d.take(4 + 4 + 4 + 8, "map, shard, flags, epoch")
            .expect("head");
        let dkey = d.iov("dkey").expect("dkey").to_vec();
        d.iov("akey").expect("akey");
        let recx = (d.u64("idx").expect("idx"), d.u64("nr").expect("nr"));
        (rc, dkey, recx)
    };
    // Six chunks over the four targets: the greatest dkey is on target 2 (6 % 4).
    let f1 = file(1);
    for k in 1..=6u64 {
        write(&mut c, f1, k, if k == 6 { 100 } else { 4096 });
    }
    for at in [0, 3] {
        let (rc, dkey, recx) = size(&mut c, f1, at);
        assert_eq!(
            (rc, dkey, recx),
            (0, 6u64.to_le_bytes().to_vec(), (0, 100)),
            "asked at target {at}"
        );
    }
    // A collective punch reaches every target: then nothing is left anywhere.
    let punch = CollPunchIn {
        pool,
        co_hdl: ch,
        co_uuid: cont,
        oid: f1,
        api_flags: 0,
        map_ver: 1,
        flags: 0x200,
        targets: all.clone(),
    };
    let out = call(&mut c, 1, cobj::op::COLL_PUNCH, &|e| punch.encode(e));
    assert_eq!(i32::from_le_bytes(out[..4].try_into().expect("rc")), 0);
    assert_eq!(
        size(&mut c, f1, 0).0,
        daos_wire::der::NONEXIST,
        "nothing left of it"
    );
    // A punch converted to a transaction (CPD): two shards on targets 1 and 3.
    let f2 = file(2);
    write(&mut c, f2, 1, 10);
    write(&mut c, f2, 3, 30);
    assert_eq!(size(&mut c, f2, 2).1, 3u64.to_le_bytes().to_vec());
    let cpd = CpdIn {
        pool,
        co_hdl: ch,
        co_uuid: cont,
        map_ver: 1,
        flags: 0x200,
        xid: [0x77; 24],
        subs: vec![CpdSub {
            opc: cpd_op::PUNCH_OBJ,
            oid: f2,
            dkey: b"",
            api_flags: 0,
            akeys: Vec::new(),
        }],
        targets: vec![
            CpdTarget {
                rank,
                tgt_idx: 1,
                writes: vec![(1, 0)],
            },
            CpdTarget {
                rank,
                tgt_idx: 3,
                writes: vec![(3, 0)],
            },
        ],
    };
    let out = call(&mut c, 1, cobj::op::CPD, &|e| cpd.encode(e));
    let mut d = Decoder::new(&out);
    let ret = d.i32("ret").expect("ret");
    d.u32("map").expect("map");
    assert_eq!(d.u64("epochs").expect("count"), 1);
    let epoch = d.u64("epoch").expect("epoch");
    assert_eq!(d.u64("rets").expect("count"), 1);
    let sub = d.i32("sub").expect("sub");
    assert_eq!((ret, sub), (0, 0));
    assert!(epoch > 0, "the epoch the punch took");
    assert_eq!(
        size(&mut c, f2, 0).0,
        daos_wire::der::NONEXIST,
        "both shards punched"
    );
    sys.stop(&mut server);
}

/// Container attributes, properties, ACLs and exclusive opens as libdaos sends them
/// (`daos_cont_set_attr`/`get_attr`/`list_attr`/`del_attr`, `daos_cont_set_prop`,
/// `daos_cont_update_acl`/`delete_acl`, `daos_cont_open` with `DAOS_COO_EX`): the bulk
/// layouts of `cont_wire.md` §1.3, DAOS's list order and truncation, refusals in the body.
#[test]
fn container_attributes_properties_acls_and_exclusive_opens_as_libdaos_sends_them() {
    use daos_cart::bulk;
    use daos_cart::cont::{self as ccont, ContOpIn};
    use daos_cart::pool::{self as cpool, PoolOpOut, PropValue};
    use daos_cart::proc_::Decoder;
    use daos_wire::der;
    let sys = System::new(1);
    let mut server = sys.start_joined();
    let pool = daos_wire::parse_uuid(&sys.create_pool("tank", "128M", None)).expect("uuid");
    let (rank, to) = rank_addrs(&sys)[0];
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let (ph, cont, ch) = ([0x61; 16], [0xC6; 16], [0xA6; 16]);
    open_container(&mut c, to, rank, pool, ph, cont, ch, "attrs");
    let op = |handle: [u8; 16]| ContOpIn {
        pool_handle: ph,
        uuid: cont,
        handle,
        client: [8; 16],
        time: 11,
    };
    // One attribute call: (rc, the u64 after the op out, if any). `bulk`: slot, length,
    // flags of a single-segment handle over the client's slot.
    let attr = |c: &mut CartClient,
                index: u16,
                handle: [u8; 16],
                count: u64,
                key_length: u64,
                bulk: Option<(usize, u64, u8)>| {
        let b = bulk.map(|(slot, len, flags)| {
            let ep = c.endpoint();
            (
                ep.bulk_addr(slot),
                len,
                ep.bulk_desc(slot, 1).expect("desc").key,
                flags,
            )
        });
        // A pool's attributes: handle [0; 16] names the pool (its handle is the pool handle).
        let pool_attr = handle == [0; 16];
        let a = ccont::AttrIn {
            index,
            pool: pool_attr,
            op: if pool_attr {
                ContOpIn {
                    uuid: pool,
                    ..op(handle)
                }
            } else {
                op(handle)
            },
            count,
            key_length,
            bulk: None,
        };
        let opc = if pool_attr {
            opcode::opcode(
                module::POOL,
                6,
                index - ccont::op::ATTR_LIST + cpool::op::ATTR_LIST,
            )
        } else {
            opcode::opcode(module::CONT, 8, index)
        };
        let r = c
            .call(to, rank, 0, opc, T, |e| {
                a.encode_head(e)?;
                match b {
                    Some((at, len, key, flags)) => bulk::encode(e, at, len, key, flags, "bulk"),
                    None => e.u64(0, "no bulk"),
                }
            })
            .expect("attribute RPC");
        assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
        let mut d = Decoder::new(&r.output);
        (
            PoolOpOut::decode(&mut d).expect("op").rc,
            d.u64("size").ok(),
        )
    };
    let ro = bulk::READ_ONLY;
    let rw = bulk::READ_ONLY | bulk::WRITE_ONLY;
    // Set two (daos_test CONT4's names and values): names, sizes, values in one RO buffer.
    let set = ccont::attr_set_bulk(&[
        (b"AVeryLongName", b"value"),
        (b"Name", b"this is a long value"),
    ]);
    c.endpoint().bulk_mut(0)[..set.len()].copy_from_slice(&set);
    let n = set.len() as u64;
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_SET, ch, 2, 0, Some((0, n, ro))).0,
        0
    );
    // The names' total size without a buffer; into 10 bytes only "Name" fits (a name that
    // does not fit is skipped); into 100 both, in DAOS's tree order ("Name" first).
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_LIST, ch, 0, 0, None),
        (0, Some(19))
    );
    c.endpoint().bulk_mut(1)[..100].fill(0xEE);
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_LIST, ch, 0, 0, Some((1, 10, rw))),
        (0, Some(19))
    );
    assert_eq!(&c.endpoint().bulk_buf(1)[..6], b"Name\0\xEE");
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_LIST, ch, 0, 0, Some((1, 100, rw))),
        (0, Some(19))
    );
    assert_eq!(&c.endpoint().bulk_buf(1)[..19], b"Name\0AVeryLongName\0");
    // Get three, one absent, one asked with no value buffer: each found value's full size,
    // 0 for the absent one, the value cut to its buffer.
    let get = |c: &mut CartClient, names: &[&str], sizes: &[u64]| {
        let mut b = Vec::new();
        for n in names {
            b.extend_from_slice(n.as_bytes());
            b.push(0);
        }
        let key = b.len() as u64;
        for s in sizes {
            b.extend_from_slice(&s.to_le_bytes());
        }
        let values: u64 = sizes.iter().sum();
        let total = b.len() as u64 + values;
        let buf = c.endpoint().bulk_mut(1);
        buf[..total as usize + 8].fill(0xEE);
        buf[..b.len()].copy_from_slice(&b);
        let (rc, _) = attr(
            c,
            ccont::op::ATTR_GET,
            ch,
            names.len() as u64,
            key,
            Some((1, total, rw)),
        );
        let buf = c.endpoint().bulk_buf(1);
        let got: Vec<u64> = (0..names.len())
            .map(|i| {
                let at = key as usize + 8 * i;
                u64::from_le_bytes(buf[at..at + 8].try_into().expect("8"))
            })
            .collect();
        let values = buf[b.len()..total as usize + 8].to_vec();
        (rc, got, values)
    };
    let (rc, sizes, values) = get(&mut c, &["AVeryLongName", "Wrong", "Name"], &[10, 10, 0]);
    assert_eq!((rc, sizes), (0, vec![5, 0, 20]));
    assert_eq!(&values[..5], b"value");
    assert!(
        values[5..].iter().all(|b| *b == 0xEE),
        "only what was found moved"
    );
    let (rc, sizes, values) = get(&mut c, &["Name"], &[8]);
    assert_eq!((rc, sizes), (0, vec![20]));
    assert_eq!(&values[..9], b"this is \xEE", "cut to the buffer");
    let (rc, sizes, _) = get(&mut c, &["Wrong"], &[4]);
    assert_eq!((rc, sizes), (der::NONEXIST, vec![0]), "none found: sizes 0");
    // Delete one; deleting it again finds none.
    c.endpoint().bulk_mut(0)[..5].copy_from_slice(b"Name\0");
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_DEL, ch, 1, 0, Some((0, 5, ro))).0,
        0
    );
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_LIST, ch, 0, 0, None),
        (0, Some(14))
    );
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_DEL, ch, 1, 0, Some((0, 5, ro))).0,
        der::NONEXIST
    );
    // Refused in the body: no names, a key length that is not the names', a name without
    // its NUL, a handle that never opened.
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_SET, ch, 0, 0, Some((0, n, ro))).0,
        der::INVAL
    );
    c.endpoint().bulk_mut(1)[..5].copy_from_slice(b"Name\0");
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_GET, ch, 1, 1, Some((1, 13, rw))).0,
        der::INVAL
    );
    c.endpoint().bulk_mut(0)[..4].copy_from_slice(b"Name");
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_DEL, ch, 1, 0, Some((0, 4, ro))).0,
        der::INVAL
    );
    assert_ne!(
        attr(&mut c, ccont::op::ATTR_LIST, [0x77; 16], 0, 0, None).0,
        0,
        "no such container handle"
    );

    // The pool's attributes travel the same way (POOL_ATTR_*, under the pool handle).
    c.endpoint().bulk_mut(0)[..set.len()].copy_from_slice(&set);
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_SET, [0; 16], 2, 0, Some((0, n, ro))).0,
        0
    );
    assert_eq!(
        attr(
            &mut c,
            ccont::op::ATTR_LIST,
            [0; 16],
            0,
            0,
            Some((1, 100, rw))
        ),
        (0, Some(19))
    );
    assert_eq!(&c.endpoint().bulk_buf(1)[..19], b"Name\0AVeryLongName\0");
    c.endpoint().bulk_mut(0)[..5].copy_from_slice(b"Name\0");
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_DEL, [0; 16], 1, 0, Some((0, 5, ro))).0,
        0
    );
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_LIST, [0; 16], 0, 0, None),
        (0, Some(14))
    );

    // Container calls: (rc, the rest of the output).
    let call = |c: &mut CartClient,
                index: u16,
                handle: [u8; 16],
                rest: &dyn Fn(
        &mut daos_cart::proc_::Encoder<'_>,
    ) -> Result<(), daos_cart::CartError>| {
        let o = op(handle);
        let r = c
            .call(
                to,
                rank,
                0,
                opcode::opcode(module::CONT, 8, index),
                T,
                |e| {
                    o.encode(e)?;
                    rest(e)
                },
            )
            .expect("container RPC");
        assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
        let mut d = Decoder::new(&r.output);
        let rc = PoolOpOut::decode(&mut d).expect("op").rc;
        (rc, r.output[d.position()..].to_vec())
    };
    // A read-only handle may read attributes, not change them.
    let ro_handle = [0xA7; 16];
    let (rc, _) = call(&mut c, ccont::op::OPEN, ro_handle, &|e| {
        e.u64(1, "flags (DAOS_COO_RO)")?;
        e.u64(0, "bits")
    });
    assert_eq!(rc, 0);
    assert_eq!(
        attr(&mut c, ccont::op::ATTR_LIST, ro_handle, 0, 0, None),
        (0, Some(14))
    );
    assert_ne!(
        attr(
            &mut c,
            ccont::op::ATTR_SET,
            ro_handle,
            2,
            0,
            Some((0, n, ro))
        )
        .0,
        0
    );

    // Exclusive opens: flags DAOS forbids (RW|EX), then EX while handles are open: busy;
    // once the others close, an exclusive handle keeps every other open out.
    let open = |c: &mut CartClient, handle: [u8; 16], flags: u64| {
        call(c, ccont::op::OPEN, handle, &|e| {
            e.u64(flags, "flags")?;
            e.u64(0, "bits")
        })
        .0
    };
    assert_eq!(open(&mut c, [0xA8; 16], 2 | 4), der::INVAL);
    assert_eq!(open(&mut c, [0xA8; 16], 4), der::BUSY);
    assert_eq!(call(&mut c, ccont::op::CLOSE, ro_handle, &|_| Ok(())).0, 0);
    // EVICT: the handles opened under this pool handle go (the read-write one too).
    assert_eq!(open(&mut c, [0xA8; 16], 4 | 0x40), 0, "EX|EVICT_ALL");
    assert_eq!(
        open(&mut c, ro_handle, 1),
        der::BUSY,
        "an exclusive handle is open"
    );
    assert_eq!(call(&mut c, ccont::op::CLOSE, [0xA8; 16], &|_| Ok(())).0, 0);
    assert_eq!(open(&mut c, ch, 2), 0, "read-write again");

    // PROP_SET: a new label and owner; a query of label, owner and ACL shows them, the
    // ACL in DAOS's binary form (DAOS's default container ACL).
    let (rc, _) = call(&mut c, ccont::op::PROP_SET, ch, &|e| {
        cpool::write_props(
            e,
            &[
                (0x1001, PropValue::Text("relabelled".into())),
                (0x100D, PropValue::Text("someone@".into())),
            ],
        )?;
        e.uuid(&pool, "cpsi_pool_uuid")
    });
    assert_eq!(rc, 0);
    let query = |c: &mut CartClient| {
        let (rc, rest) = call(c, ccont::op::QUERY, ch, &|e| {
            e.u64((1 << 0) | (1 << 11) | (1 << 12), "label, ACL, owner")
        });
        assert_eq!(rc, 0);
        ccont::read_props(&mut Decoder::new(&rest)).expect("props")
    };
    let props = query(&mut c);
    let find = |props: &[(u32, PropValue)], t: u32| {
        props.iter().find(|(x, _)| *x == t).map(|(_, v)| v.clone())
    };
    assert_eq!(
        find(&props, 0x1001),
        Some(PropValue::Text("relabelled".into()))
    );
    assert_eq!(
        find(&props, 0x100D),
        Some(PropValue::Text("someone@".into()))
    );
    let acl = |props: &[(u32, PropValue)]| match find(props, ccont::PROP_ACL) {
        Some(PropValue::Iov(b)) => daos_auth::Acl::from_binary(&b, daos_auth::Object::Container)
            .expect("DAOS's binary ACL")
            .strings(),
        other => panic!("no ACL property: {other:?}"),
    };
    assert_eq!(acl(&props), ["A::OWNER@:rwdtTaAo", "A:G:GROUP@:rwtT"]);
    // ACL_UPDATE adds an entry (after the others of its kind); ACL_DELETE takes it out,
    // and a second delete finds none.
    let update = daos_auth::Acl::parse(["A::bob@:rw"], daos_auth::Object::Container)
        .expect("acl")
        .to_binary();
    let (rc, _) = call(&mut c, ccont::op::ACL_UPDATE, ch, &|e| {
        e.iov(&update, "acl")
    });
    assert_eq!(rc, 0);
    assert_eq!(
        acl(&query(&mut c)),
        ["A::OWNER@:rwdtTaAo", "A::bob@:rw", "A:G:GROUP@:rwtT"]
    );
    let delete = |c: &mut CartClient| {
        call(c, ccont::op::ACL_DELETE, ch, &|e| {
            e.string(Some("bob@"), false, "name")?;
            e.u8(1, "type (user)")
        })
        .0
    };
    assert_eq!(delete(&mut c), 0);
    assert_eq!(
        acl(&query(&mut c)),
        ["A::OWNER@:rwdtTaAo", "A:G:GROUP@:rwtT"]
    );
    assert_eq!(delete(&mut c), der::NONEXIST);
    // A binary ACL that does not decode: DER_INVAL.
    let (rc, _) = call(&mut c, ccont::op::ACL_UPDATE, ch, &|e| {
        e.iov(&update[..12], "acl")
    });
    assert_eq!(rc, der::INVAL);

    // The owner is someone else now: an exclusive open is the owner's.
    assert_eq!(open(&mut c, [0xA8; 16], 4), der::NO_PERM);
    sys.stop(&mut server);
}

/// A collective request whose shards are on two engines (DAOS's COLL_QUERY / COLL_PUNCH /
/// CPD from a client of an SX file over several hosts): the engine that receives it asks the
/// other engine's targets for their parts (engine to engine, DAOS's object protocol) and
/// answers once all are in; a part on a rank the group map does not know fails the request
/// with DER_UNREACH.
#[test]
fn collective_requests_reach_the_shards_on_other_engines() {
    use daos_cart::obj::{
        self as cobj, CollPunchIn, CollQueryIn, CollTarget, CpdIn, CpdSub, CpdTarget, IodSpec,
        Recx, RwData, RwOut, UnitOid, cpd_op, get, iod_type,
    };
    use daos_cart::proc_::Decoder;
    let sys = System::with_targets(2, 2);
    let mut server = sys.start_joined();
    let pool = daos_wire::parse_uuid(&sys.create_pool("tank", "256M", Some("512M"))).expect("uuid");
    let ranks = rank_addrs(&sys);
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    let (r0, to0) = ranks[0];
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let (ph, cont, ch) = ([0x54; 16], [0xC4; 16], [0xAD; 16]);
    open_container(&mut c, to0, r0, pool, ph, cont, ch, "two");
    let ids = (pool, ch, cont);
    // Shard k lives on rank k % 2, target k / 2.
    let at = |k: u64| {
        let (rank, to) = ranks[(k % 2) as usize];
        let t = (k / 2) as u16;
        (
            rank,
            SocketAddrV4::new(*to.ip(), to.port() + 2 + t),
            u32::from(t) + 2,
        )
    };
    let call = |c: &mut CartClient,
                k: u64,
                index: u16,
                body: &dyn Fn(
        &mut daos_cart::proc_::Encoder<'_>,
    ) -> Result<(), daos_cart::CartError>| {
        let (rank, addr, tag) = at(k);
        let r = c
            .call(
                addr,
                rank,
                tag,
                opcode::opcode(module::OBJ, 10, index),
                T,
                body,
            )
            .expect("object RPC");
        assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
        r.output
    };
    let file = |lo| UnitOid {
        lo,
        hi: 0x0D01_0004_0000_0000,
        shard: 0,
        layout_ver: 2,
    };
    let write = |c: &mut CartClient, f: UnitOid, k: u64, len: u64| {
        let dk: &'static [u8] = Box::leak(Box::new(k.to_le_bytes()));
        let recx = [Recx { idx: 0, nr: len }];
        let iods = [IodSpec {
            name: b"0",
            kind: iod_type::ARRAY,
            size: 1,
            flags: 0,
            recxs: &recx,
        }];
        let data = vec![k as u8; len as usize];
        let put = [(len, &data[..])];
        let shard = (k % 4) as u32;
        let out = RwOut::decode(&call(c, k % 4, cobj::op::UPDATE, &|e| {
            rw(
                ids,
                UnitOid { shard, ..f },
                0,
                0,
                dk,
                &iods,
                RwData::Inline(&put),
            )
            .encode(e)
        }))
        .expect("update");
        assert_eq!(out.ret, 0);
    };
    let all = vec![
        CollTarget {
            rank: ranks[0].0,
            tgt_idxs: vec![0, 1],
        },
        CollTarget {
            rank: ranks[1].0,
            tgt_idxs: vec![0, 1],
        },
    ];
    let size = |c: &mut CartClient, f: UnitOid, k: u64, targets: &[CollTarget]| {
        let q = CollQueryIn {
            pool,
            co_hdl: ch,
            co_uuid: cont,
            oid: f,
            api_flags: get::DKEY | get::RECX | get::MAX,
            map_ver: 1,
            flags: 0,
            dkey: b"",
            akey: b"0",
            targets: targets.to_vec(),
        };
        let out = call(c, k, cobj::op::COLL_QUERY, &|e| q.encode(e));
        let mut d = Decoder::new(&out);
        let rc = d.i32("ret").expect("ret");
        d.take(4 + 4 + 4 + 8, "map, shard, flags, epoch")
            .expect("head");
        let dkey = d.iov("dkey").expect("dkey").to_vec();
        d.iov("akey").expect("akey");
        let recx = (d.u64("idx").expect("idx"), d.u64("nr").expect("nr"));
        (rc, dkey, recx)
    };
    // Chunks 1..=7: the greatest (7) on rank 1; asked at either engine, the same answer.
    let f1 = file(1);
    for k in 1..=7u64 {
        write(&mut c, f1, k, if k == 7 { 70 } else { 4096 });
    }
    for k in [0, 1] {
        assert_eq!(
            size(&mut c, f1, k, &all),
            (0, 7u64.to_le_bytes().to_vec(), (0, 70)),
            "asked at rank {}",
            k % 2
        );
    }
    // A collective punch at rank 0: rank 1's shards go too.
    let punch = |targets: Vec<CollTarget>| CollPunchIn {
        pool,
        co_hdl: ch,
        co_uuid: cont,
        oid: f1,
        api_flags: 0,
        map_ver: 1,
        flags: 0x200,
        targets,
    };
    let p = punch(all.clone());
    let out = call(&mut c, 0, cobj::op::COLL_PUNCH, &|e| p.encode(e));
    assert_eq!(i32::from_le_bytes(out[..4].try_into().expect("rc")), 0);
    assert_eq!(size(&mut c, f1, 1, &all).0, daos_wire::der::NONEXIST);
    // A rank nobody knows: its part cannot go, the request says so.
    let mut stranger = all.clone();
    stranger.push(CollTarget {
        rank: 77,
        tgt_idxs: vec![0],
    });
    let p = punch(stranger);
    let out = call(&mut c, 0, cobj::op::COLL_PUNCH, &|e| p.encode(e));
    assert_eq!(
        i32::from_le_bytes(out[..4].try_into().expect("rc")),
        daos_wire::der::UNREACH
    );
    // A punch converted to a transaction (CPD) sent to rank 0, its shards on rank 1.
    let f2 = file(2);
    write(&mut c, f2, 1, 10);
    write(&mut c, f2, 3, 30);
    assert_eq!(size(&mut c, f2, 0, &all).1, 3u64.to_le_bytes().to_vec());
    let cpd = CpdIn {
        pool,
        co_hdl: ch,
        co_uuid: cont,
        map_ver: 1,
        flags: 0x200,
        xid: [0x78; 24],
        subs: vec![CpdSub {
            opc: cpd_op::PUNCH_OBJ,
            oid: f2,
            dkey: b"",
            api_flags: 0,
            akeys: Vec::new(),
        }],
        targets: vec![
            CpdTarget {
                rank: ranks[1].0,
                tgt_idx: 0,
                writes: vec![(1, 0)],
            },
            CpdTarget {
                rank: ranks[1].0,
                tgt_idx: 1,
                writes: vec![(3, 0)],
            },
        ],
    };
    let out = call(&mut c, 0, cobj::op::CPD, &|e| cpd.encode(e));
    let mut d = Decoder::new(&out);
    let ret = d.i32("ret").expect("ret");
    d.u32("map").expect("map");
    d.u64("epochs").expect("count");
    d.u64("epoch").expect("epoch");
    d.u64("rets").expect("count");
    assert_eq!((ret, d.i32("sub").expect("sub")), (0, 0));
    assert_eq!(
        size(&mut c, f2, 0, &all).0,
        daos_wire::der::NONEXIST,
        "both shards on rank 1 punched"
    );
    // A replicated object's punch (its leader asked to forward it to another replica):
    // refused until replication is served, never acknowledged with one copy.
    let mut body = vec![0u8; 512];
    let n = {
        let mut e = daos_cart::proc_::Encoder::new(&mut body);
        cobj::PunchCall {
            oid: file(3),
            pool,
            co_hdl: ch,
            co_uuid: cont,
            api_flags: 0,
            map_ver: 1,
            dkey: None,
            akeys: &[],
        }
        .encode(&mut e)
        .expect("punch");
        e.len()
    };
    body.truncate(n);
    // The shard target list's count sits before the 40-byte comm_in: one target of 20 bytes.
    let at = n - 40 - 8;
    body[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
    body.splice(at + 8..at + 8, [0u8; 20]);
    let out = call(&mut c, 0, cobj::op::PUNCH, &|e| e.bytes(&body, "punch"));
    assert_eq!(
        i32::from_le_bytes(out[..4].try_into().expect("rc")),
        daos_wire::der::NOSYS
    );
    // An erasure-coded object's update: not supported (not written as a plain one).
    let recx = [Recx { idx: 0, nr: 4 }];
    let iods = [IodSpec {
        name: b"0",
        kind: iod_type::ARRAY,
        size: 1,
        flags: 0,
        recxs: &recx,
    }];
    let put = [(4, &b"abcd"[..])];
    let out = RwOut::decode(&call(&mut c, 0, cobj::op::UPDATE, &|e| {
        rw(
            ids,
            file(4),
            0,
            cobj::ORF_EC,
            b"d",
            &iods,
            RwData::Inline(&put),
        )
        .encode(e)
    }))
    .expect("update");
    assert_eq!(out.ret, daos_wire::der::NOTSUPPORTED);
    sys.stop(&mut server);
}
