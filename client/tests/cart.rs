//! An engine's CaRT context 0 driven as DAOS's clients drive it (a client written from DAOS's
//! and Mercury's layouts, `daos_client::cart`), over real libfabric `tcp;ofi_rxm` on
//! loopback: PROTO_QUERY for every module libdaos asks about at `daos_init`, URI_LOOKUP,
//! self-test sessions, and the refusals (wrong rank or tag, unknown opcode, a clock too far
//! ahead, malformed input, a message that is not Mercury's), for DAOS 2.6's tagged requests
//! and 2.8's CQ-data requests alike.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use daos_cart::opcode::{self, self_test};
use daos_cart::rpc::{ProtoQueryIn, ProtoQueryOut, SessionParams, UriLookupIn, UriLookupOut};
use daos_cart::{der, hlc, mercury};
use daos_client::cart::{CartClient, Sends};
use daos_engine::context::{ContextConfig, Membership, SystemContext};
use daos_engine::control::{GroupMap, Peer};

const T: Duration = Duration::from_secs(5);

/// A context on a free port, polled by its own thread until dropped.
struct Running {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn free_port() -> u16 {
    // Three ports in a row free: the context's and two more a lookup names.
    for _ in 0..200 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        drop(l);
        if p < 60000 && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

fn start(rank: Option<u32>) -> Running {
    let port = free_port();
    let config = ContextConfig {
        provider: "tcp;ofi_rxm".into(),
        uri_provider: "ofi+tcp;ofi_rxm".into(),
        host: "127.0.0.1".into(),
        port,
        group: "daos_server".into(),
        targets: 2,
        server_sock: None,
        pools: None,
    };
    let mut ctx = SystemContext::open(config).expect("context");
    let mut peers = std::collections::BTreeMap::new();
    peers.insert(
        4,
        Peer {
            uri: "ofi+tcp;ofi_rxm://127.0.0.9:40000".into(),
            incarnation: 1,
        },
    );
    ctx.set_membership(Membership {
        rank,
        group: Arc::new(GroupMap { version: 2, peers }),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if ctx.poll() == 0 {
                std::thread::yield_now();
            }
        }
    });
    Running {
        port,
        stop,
        thread: Some(thread),
    }
}

fn addr(r: &Running) -> SocketAddrV4 {
    SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, r.port)
}

fn proto_query(
    c: &mut CartClient,
    to: SocketAddrV4,
    rank: u32,
    base: u32,
    offer: &[u32],
) -> ProtoQueryOut {
    let r = c
        .call(to, rank, 0, opcode::PROTO_QUERY, T, |e| {
            ProtoQueryIn::encode_query(e, offer, base)
        })
        .expect("PROTO_QUERY");
    assert_eq!((r.hg_ret, r.rc()), (0, 0), "{r:?}");
    ProtoQueryOut::decode(&r.output).expect("decode")
}

#[test]
fn daos_init_protocol_queries_are_answered_for_both_client_generations() {
    let ctx = start(Some(1));
    for sends in [Sends::Tagged, Sends::CqData] {
        let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", sends).expect("client");
        // daos_init asks mgmt {2,3} (2.6) or {3,4} (2.8): version 3 is served.
        assert_eq!(
            proto_query(&mut c, addr(&ctx), 1, 0x0100_0000, &[2, 3]),
            ProtoQueryOut { version: 3, rc: 0 }
        );
        assert_eq!(
            proto_query(&mut c, addr(&ctx), 1, 0x0100_0000, &[3, 4]),
            ProtoQueryOut { version: 3, rc: 0 }
        );
        // None of the offered versions: DER_UNREG in the body; a module not served:
        // DER_NONEXIST.
        assert_eq!(
            proto_query(&mut c, addr(&ctx), 1, 0x0100_0000, &[9]).rc,
            der::UNREG
        );
        assert_eq!(
            proto_query(&mut c, addr(&ctx), 1, 0x0B00_0000, &[1]).rc,
            der::NONEXIST
        );
        // The reply carries the engine's clock, within a second of ours.
        let r = c
            .call(addr(&ctx), 1, 0, opcode::PROTO_QUERY, T, |e| {
                ProtoQueryIn::encode_query(e, &[2, 3], 0x0100_0000)
            })
            .expect("call");
        let ours = hlc::from_unix_nanos(hlc::now_ns());
        assert!(r.hdr.hlc.abs_diff(ours) < hlc::EPSILON, "{r:?}");
        assert_eq!(r.hdr.opc, 0, "a reply header is zero but hlc and rc");
    }
}

#[test]
fn uri_lookups_name_each_tag_on_its_own_port() {
    let ctx = start(Some(1));
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let mut look = |rank: u32, tag: u32, grp: Option<&str>| {
        let r = c
            .call(addr(&ctx), 1, 0, opcode::URI_LOOKUP, T, |e| {
                UriLookupIn { grp, rank, tag }.encode(e)
            })
            .expect("URI_LOOKUP");
        assert_eq!(r.rc(), 0);
        let o = UriLookupOut::decode(&r.output).expect("decode");
        (o.uri.map(str::to_string), o.tag, o.rc)
    };
    let p = ctx.port;
    assert_eq!(
        look(1, 0, Some("daos_server")),
        (Some(format!("ofi+tcp;ofi_rxm://127.0.0.1:{p}")), 0, 0)
    );
    // Target 1 is tag 3, on the base port + 3.
    assert_eq!(
        look(1, 3, Some("daos_server")),
        (Some(format!("ofi+tcp;ofi_rxm://127.0.0.1:{}", p + 3)), 3, 0)
    );
    // Another rank from the group map; an unknown one; another system; a tag past 63; tag 1
    // (SWIM, not CaRT here) and a target this engine does not have.
    assert_eq!(
        look(4, 2, Some("daos_server")),
        (Some("ofi+tcp;ofi_rxm://127.0.0.9:40002".into()), 2, 0)
    );
    assert_eq!(look(5, 0, Some("daos_server")).2, der::OOG);
    assert_eq!(look(1, 0, Some("other")).2, der::INVAL);
    assert_eq!(look(1, 64, Some("daos_server")).2, der::INVAL);
    assert_eq!(look(1, 1, Some("daos_server")).2, der::NONEXIST);
    assert_eq!(look(1, 4, Some("daos_server")).2, der::NONEXIST);
}

#[test]
fn self_test_sessions_answer_empty_and_iov_messages() {
    let ctx = start(Some(0));
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let to = addr(&ctx);
    let r = c
        .call(to, 0, 0, self_test::BOTH_EMPTY, T, |_| Ok(()))
        .expect("ping");
    assert_eq!((r.rc(), r.output.len()), (0, 0));
    let params = SessionParams {
        send_size: 16,
        reply_size: 1000,
        num_buffers: 1,
        flags: 0xFFFF_0005, // IOV both ways, default alignment
    };
    let r = c
        .call(to, 0, 0, self_test::OPEN_SESSION, T, |e| params.encode(e))
        .expect("open");
    assert_eq!(r.rc(), 0);
    let id = u64::from_le_bytes(r.output[..8].try_into().expect("8 bytes"));
    assert!(id >= 1, "session ids start at 1");
    let r = c
        .call(to, 0, 0, self_test::BOTH_IOV, T, |e| {
            e.u64(id, "id")?;
            e.iov(&[1u8; 16], "buf")
        })
        .expect("iov");
    assert_eq!(r.rc(), 0);
    assert_eq!(
        &r.output[..16],
        &[232, 3, 0, 0, 0, 0, 0, 0, 232, 3, 0, 0, 0, 0, 0, 0]
    );
    assert!(r.output[16..].iter().all(|b| *b == 0xA7) && r.output.len() == 1016);
    // An input larger than a message travels as Mercury sends it ("more data": the message
    // carries a bulk handle, the engine pulls the input); the reply is as usual.
    let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    let r = c
        .call(to, 0, 0, self_test::BOTH_IOV, T, |e| {
            e.u64(id, "id")?;
            e.iov(&big, "buf")
        })
        .expect("more data");
    assert_eq!(r.rc(), 0);
    assert_eq!(r.output.len(), 1016, "the session's reply size");
    let r = c
        .call(to, 0, 0, self_test::CLOSE_SESSION, T, |e| e.u64(id, "id"))
        .expect("close");
    assert_eq!((r.rc(), r.output.len()), (0, 0));
    // A closed session's messages get an empty reply, as CaRT's service answers.
    let r = c
        .call(to, 0, 0, self_test::SEND_ID_REPLY_IOV, T, |e| {
            e.u64(id, "id")
        })
        .expect("iov");
    assert_eq!(r.output, [0u8; 16]);
}

#[test]
fn self_test_bulk_messages_move_their_data_by_rma() {
    use daos_cart::bulk;
    let ctx = start(Some(0));
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::Tagged).expect("client");
    let to = addr(&ctx);
    // self_test's default sizes are 1 MiB + 2 bytes: bulk both ways (send BULK_GET 3, reply
    // BULK_PUT 2 << 2).
    let params = SessionParams {
        send_size: 1_048_578,
        reply_size: 1_048_578,
        num_buffers: 1,
        flags: 0xFFFF_0000 | 3 | 2 << 2,
    };
    let r = c
        .call(to, 0, 0, self_test::OPEN_SESSION, T, |e| params.encode(e))
        .expect("open");
    let id = u64::from_le_bytes(r.output[..8].try_into().expect("8 bytes"));
    let len = 1 << 20;
    c.endpoint().bulk_mut(0).fill(0x11);
    let at = c.endpoint().bulk_addr(0);
    let key = c.endpoint().bulk_desc(0, 1).expect("desc").key;
    let rw = bulk::READ_ONLY | bulk::WRITE_ONLY;
    let r = c
        .call(to, 0, 0, self_test::BOTH_BULK, T, |e| {
            e.u64(id, "id")?;
            bulk::encode(e, at, len, key, rw, "bulk")
        })
        .expect("both bulk");
    assert_eq!((r.rc(), r.output.len()), (0, 0));
    // The reply was pushed into the whole buffer (1 MiB of the 1 MiB + 2 asked).
    assert!(
        c.endpoint().bulk_buf(0)[..len as usize]
            .iter()
            .all(|b| *b == 0xA7)
    );
    // Reply by bulk only, of the session's size, into a smaller buffer: what fits.
    c.endpoint().bulk_mut(0).fill(0x22);
    let r = c
        .call(to, 0, 0, self_test::SEND_IOV_REPLY_BULK, T, |e| {
            e.u64(id, "id")?;
            e.iov(&[5; 64], "buf")?;
            bulk::encode(e, at, 4096, key, rw, "bulk")
        })
        .expect("iov, reply bulk");
    assert_eq!(r.rc(), 0);
    let b = c.endpoint().bulk_buf(0);
    assert!(b[..4096].iter().all(|x| *x == 0xA7) && b[4096..].iter().all(|x| *x == 0x22));
    // An unknown session: an empty body, nothing moved.
    c.endpoint().bulk_mut(0).fill(0x33);
    let r = c
        .call(to, 0, 0, self_test::BOTH_BULK, T, |e| {
            e.u64(id + 100, "id")?;
            bulk::encode(e, at, len, key, rw, "bulk")
        })
        .expect("unknown session");
    assert_eq!((r.rc(), r.output.len()), (0, 0));
    assert!(c.endpoint().bulk_buf(0).iter().all(|x| *x == 0x33));
}

#[test]
fn misdirected_unknown_and_malformed_requests_are_refused_and_the_context_goes_on() {
    let ctx = start(Some(1));
    let mut c = CartClient::open("tcp;ofi_rxm", "127.0.0.1", Sends::CqData).expect("client");
    let to = addr(&ctx);
    let query =
        |e: &mut daos_cart::proc_::Encoder<'_>| ProtoQueryIn::encode_query(e, &[2, 3], 0x0100_0000);
    // Another rank, another tag.
    let r = c
        .call(to, 2, 0, opcode::PROTO_QUERY, T, query)
        .expect("call");
    assert_eq!((r.rc(), r.output.len()), (der::BAD_TARGET, 0));
    let r = c
        .call(to, 1, 3, opcode::PROTO_QUERY, T, query)
        .expect("call");
    assert_eq!(r.rc(), der::BAD_TARGET);
    // An opcode nobody registered: DER_UNREG at CaRT's level.
    for opc in [opcode::opcode(9, 1, 0), 0x1234_5678] {
        let r = c.call(to, 1, 0, opc, T, |_| Ok(())).expect("call");
        assert_eq!(r.rc(), der::UNREG, "{opc:#x}");
    }
    // Pool, container and object RPCs are refused in their body, never at CaRT's level (the
    // client would read an undecoded body): a pool connect that does not decode (DER_INVAL),
    // and an object update not served yet (DER_NOSYS); the leading rc, then zeros.
    for (opc, rc) in [
        (opcode::opcode(2, 6, 1), der::INVAL),
        (opcode::opcode(4, 10, 0), der::NOSYS),
    ] {
        let r = c.call(to, 1, 0, opc, T, |_| Ok(())).expect("call");
        assert_eq!(r.rc(), 0, "{opc:#x}");
        assert_eq!(&r.output[..4], &rc.to_le_bytes(), "{opc:#x}");
        assert!(r.output[4..].iter().all(|b| *b == 0) && r.output.len() > 256);
    }
    // Truncated input: CaRT's decode failure (DER_MISC), no body.
    let r = c
        .call(to, 1, 0, opcode::PROTO_QUERY, T, |e| e.u64(8, "short"))
        .expect("call");
    assert_eq!(r.rc(), der::MISC);
    // A clock two seconds ahead: DER_HLC_SYNC.
    c.set_hlc(hlc::from_unix_nanos(hlc::now_ns() + 2_000_000_000));
    let r = c
        .call(to, 1, 0, opcode::PROTO_QUERY, T, query)
        .expect("call");
    assert_eq!(r.rc(), der::HLC_SYNC);
    c.set_hlc(0);
    // Another Mercury RPC id: Mercury's own "no entry".
    let me = c.address();
    let r = c
        .call_raw(to, T, 0, |buf| {
            mercury::write_request_header(buf, &me, 0x1111, 0, 0)?;
            Ok(mercury::REQUEST_BODY + 4)
        })
        .expect("call");
    assert_eq!(r.hg_ret, 2, "HG_NOENTRY");
    // A CaRT header cut short: Mercury's protocol error.
    let r = c
        .call_raw(to, T, 0, |buf| {
            mercury::write_request_header(buf, &me, mercury::RPC_ID, 0, 0)?;
            Ok(mercury::REQUEST_BODY + 12)
        })
        .expect("call");
    assert_eq!(r.hg_ret, 12, "HG_PROTOCOL_ERROR");
    // Not Mercury at all (wrong first byte): dropped; the caller times out, nothing breaks.
    let e = c
        .call_raw(to, Duration::from_millis(300), 0, |buf| {
            buf[..40].fill(0x55);
            Ok(40)
        })
        .expect_err("dropped");
    assert!(e.to_string().contains("no reply"), "{e}");
    // The context still answers.
    assert_eq!(proto_query(&mut c, to, 1, 0x0100_0000, &[3]).version, 3);
}
