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
    // daos_init: mgmt {2,3} is served at version 3; pool, cont and obj are not served yet
    // (DER_NONEXIST in the body: libdaos stops there with a clear error, no hang).
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
        query(&mut c, 0x0200_0000, &[5, 6]).rc,
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
