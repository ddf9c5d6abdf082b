//! A real libfabric RDM exchange over tcp;ofi_rxm on loopback: ping-pong with data checked
//! byte for byte, back-pressure when every send buffer is in flight, and clear errors.

use std::time::{Duration, Instant};

use daos_fabric::{EndpointError, RdmEndpoint};

/// A port that was free a moment ago, below the kernel's ephemeral range (32768 and up), so no
/// outgoing connection takes it before the endpoint binds it; distinct per call in this process.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    for _ in 0..1000 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (31600 + (pid.wrapping_mul(7919) + k * 8) % 1100) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 31600 and 32700");
}

/// Sends, polling both sides while the provider asks to retry (connection set-up).
fn send(from: &mut RdmEndpoint, other: &mut RdmEndpoint, peer: daos_fabric::Peer, data: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match from.send(peer, data) {
            Ok(()) => return,
            Err(EndpointError::Again) => {
                assert!(Instant::now() < deadline, "send never accepted");
                from.poll(|_| panic!("unexpected message")).expect("poll");
                other.poll(|_| panic!("unexpected message")).expect("poll");
            }
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// Polls `ep` (and, for progress, `other`) until `ep` receives a message.
fn recv_both(ep: &mut RdmEndpoint, other: &mut RdmEndpoint) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = None;
    while got.is_none() {
        assert!(Instant::now() < deadline, "no message within 10 s");
        ep.poll(|m| got = Some(m.to_vec())).expect("poll");
        other.poll(|_| panic!("unexpected message")).expect("poll");
    }
    got.unwrap_or_default()
}

#[test]
fn ping_pong_over_tcp_rxm_on_loopback() {
    let port = free_port().to_string();
    let mut server =
        RdmEndpoint::open("tcp;ofi_rxm", Some("127.0.0.1"), Some(&port), 1 << 20, 8, 8)
            .expect("server endpoint");
    let mut client =
        RdmEndpoint::open("tcp;ofi_rxm", None, None, 1 << 20, 8, 8).expect("client endpoint");
    let to_server = client
        .insert_peer(&server.name().expect("name"))
        .expect("insert server");
    let to_client = server
        .insert_peer(&client.name().expect("name"))
        .expect("insert client");
    for size in [64usize, 4096, 64 << 10, 1 << 20] {
        for i in 0..20u32 {
            let msg: Vec<u8> = (0..size)
                .map(|b| (b as u32).wrapping_mul(31).wrapping_add(i) as u8)
                .collect();
            send(&mut client, &mut server, to_server, &msg);
            let got = recv_both(&mut server, &mut client);
            assert_eq!(got, msg, "ping {i} of {size} bytes arrives intact");
            send(&mut server, &mut client, to_client, &got);
            assert_eq!(
                recv_both(&mut client, &mut server),
                msg,
                "pong {i} of {size} bytes"
            );
        }
    }
    // Reap the last send completions.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (client.sends_in_flight() > 0 || server.sends_in_flight() > 0)
        && Instant::now() < deadline
    {
        client.poll(|_| {}).expect("poll");
        server.poll(|_| {}).expect("poll");
    }
    assert_eq!((client.sends_in_flight(), server.sends_in_flight()), (0, 0));
}

#[test]
fn a_full_send_pool_is_back_pressure() {
    let port = free_port().to_string();
    let mut server = RdmEndpoint::open("tcp;ofi_rxm", Some("127.0.0.1"), Some(&port), 4096, 2, 4)
        .expect("server");
    let mut client = RdmEndpoint::open("tcp;ofi_rxm", None, None, 4096, 2, 4).expect("client");
    let to_server = client
        .insert_peer(&server.name().expect("name"))
        .expect("insert");
    send(&mut client, &mut server, to_server, b"one");
    client.send(to_server, b"two").expect("second");
    assert!(
        matches!(
            client.send(to_server, b"three"),
            Err(EndpointError::Busy(2))
        ),
        "no third buffer"
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 && Instant::now() < deadline {
        server.poll(|m| got.push(m.to_vec())).expect("poll");
        client.poll(|_| {}).expect("poll");
    }
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    while client.sends_in_flight() > 0 && Instant::now() < deadline {
        client.poll(|_| {}).expect("poll");
    }
    send(&mut client, &mut server, to_server, b"three");
    assert!(matches!(
        client.send(to_server, &[0u8; 5000]),
        Err(EndpointError::TooLarge {
            len: 5000,
            max: 4096
        })
    ));
}

#[test]
fn an_unknown_provider_is_a_clear_error() {
    let err = RdmEndpoint::open("nosuchprov", None, None, 4096, 1, 1)
        .err()
        .expect("no such provider");
    let text = err.to_string();
    assert!(
        text.contains("fi_getinfo") && text.contains("nosuchprov"),
        "{text}"
    );
}

#[test]
fn tcp_names_are_sockaddr_in() {
    let port = free_port();
    let server = RdmEndpoint::open(
        "tcp;ofi_rxm",
        Some("127.0.0.1"),
        Some(&port.to_string()),
        4096,
        1,
        1,
    )
    .expect("server");
    let name = server.name().expect("name");
    assert_eq!(
        name,
        daos_fabric::sockaddr_in("127.0.0.1".parse().expect("ip"), port),
        "{name:?}"
    );
}

#[test]
fn rma_reads_and_writes_registered_buffers_of_a_peer() {
    let port = free_port().to_string();
    let size = 1 << 20;
    let mut server = RdmEndpoint::open_with_rma(
        "tcp;ofi_rxm",
        Some("127.0.0.1"),
        Some(&port),
        4096,
        2,
        4,
        2,
        size,
    )
    .expect("server");
    let mut client =
        RdmEndpoint::open_with_rma("tcp;ofi_rxm", None, None, 4096, 2, 4, 2, size).expect("client");
    assert!(server.has_rma() && client.has_rma());
    let to_server = client
        .insert_peer(&server.name().expect("name"))
        .expect("insert");
    // The server learns the client's address from a first message, as targets do.
    let my_name = client.name().expect("name");
    send(&mut client, &mut server, to_server, &my_name);
    let client_name = recv_both(&mut server, &mut client);
    let to_client = server.insert_peer(&client_name).expect("insert");

    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    client.bulk_mut(1).copy_from_slice(&data);
    let remote = client.bulk_desc(1, size).expect("desc");
    let wait = |ep: &mut RdmEndpoint, other: &mut RdmEndpoint, want: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut done = None;
        while done.is_none() {
            assert!(Instant::now() < deadline, "RMA {want} did not finish");
            ep.poll(|_| {}).expect("poll");
            other.poll(|_| {}).expect("poll");
            ep.take_rma(|id, ok| {
                if id == want {
                    done = Some(ok);
                }
            });
        }
        assert_eq!(done, Some(true), "RMA {want} succeeded");
    };
    loop {
        match server.rma_read(to_client, 0, remote, 7) {
            Ok(()) => break,
            Err(EndpointError::Again) => {
                server.poll(|_| {}).expect("poll");
            }
            Err(e) => panic!("rma_read: {e}"),
        }
    }
    wait(&mut server, &mut client, 7);
    assert!(
        server.bulk_buf(0) == &data[..],
        "the server read the client's slot"
    );

    // And back: the server writes a changed copy into the client's slot 0.
    for b in server.bulk_mut(0).iter_mut().take(4096) {
        *b = 0xee;
    }
    let into = client.bulk_desc(0, size).expect("desc");
    server.rma_write(to_client, 0, into, 8).expect("rma_write");
    wait(&mut server, &mut client, 8);
    // A message sent after the write arrives after its data (send-after-write order), which
    // is what a target's reply to a fetch relies on.
    send(&mut server, &mut client, to_client, b"written");
    assert_eq!(recv_both(&mut client, &mut server), b"written");
    assert!(client.bulk_buf(0)[..4096].iter().all(|b| *b == 0xee));
    assert!(client.bulk_buf(0)[4096..] == data[4096..]);
    assert!(client.bulk_desc(2, 1).is_none(), "no slot 2");
    assert!(
        client.bulk_desc(0, size + 1).is_none(),
        "longer than a slot"
    );
}

/// Polls until `ep` holds a message (polling `other` for progress).
fn held_one(ep: &mut RdmEndpoint, other: &mut RdmEndpoint) -> daos_fabric::Received {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = Vec::with_capacity(16);
    while held.is_empty() {
        assert!(Instant::now() < deadline, "no message within 10 s");
        ep.poll_held(&mut held).expect("poll");
        other.poll(|_| panic!("unexpected message")).expect("poll");
    }
    assert_eq!(held.len(), 1, "one message");
    held[0]
}

#[test]
fn unexpected_sends_carry_cq_data_and_tagged_replies_reach_only_the_posted_receive() {
    let port = free_port().to_string();
    let shape = daos_fabric::Shape {
        tagged_slots: 2,
        bulk: Some((2, 4096)),
        tagged: true,
        unexpected_tag: Some(1 << 32),
        ..daos_fabric::Shape::messages(4096, 4, 4)
    };
    let mut server = RdmEndpoint::open_shaped("tcp;ofi_rxm", Some("127.0.0.1"), Some(&port), shape)
        .expect("server");
    let mut client = RdmEndpoint::open_shaped("tcp;ofi_rxm", None, None, shape).expect("client");
    let to_server = client
        .insert_peer(&server.name().expect("name"))
        .expect("insert");
    // Each bulk slot is its own registration (as each Mercury bulk handle is): its first byte
    // is offset 0, or its address where the domain names bytes by virtual address.
    let (d0, d1) = (
        client.bulk_desc(0, 16).expect("desc"),
        server.bulk_desc(0, 16).expect("desc"),
    );
    assert_eq!(d0.offset == 0, !client.virt_addr(), "{d0:?}");
    assert_eq!(d1.offset == 0, !server.virt_addr(), "{d1:?}");

    // The client posts the receive for its reply first, tag 77, then sends its request with the
    // tag as remote CQ data (Mercury's unexpected message).
    client.expect(to_server, 77).expect("expect 77");
    let name = client.name().expect("name");
    client
        .send_data_with(to_server, 77, |b| {
            b[..name.len()].copy_from_slice(&name);
            name.len()
        })
        .expect("send");
    let r = held_one(&mut server, &mut client);
    assert_eq!(r.data(), Some(77), "the CQ data arrived");
    assert_eq!(r.tag(), None);
    assert_eq!(server.message(r), &name[..]);
    let to_client = server.insert_peer(&name).expect("insert");

    // A tagged message with another tag is not taken by the posted receive...
    server
        .send_tagged_with(to_client, 78, |b| {
            b[..5].copy_from_slice(b"other");
            5
        })
        .expect("tsend 78");
    // ...the reply with the right tag is.
    server
        .reply_tagged(r, to_client, 77, |req, out| {
            out[..req.len()].copy_from_slice(req);
            out[..4].copy_from_slice(b"ANSW");
            req.len()
        })
        .expect("reply");
    let got = held_one(&mut client, &mut server);
    assert_eq!(got.tag(), Some(77));
    assert_eq!(&client.message(got)[..4], b"ANSW");
    assert_eq!(&client.message(got)[4..], &name[4..]);
    client.release(got).expect("release");
    // A request sent tagged (DAOS's clients on tcp;ofi_rxm: tag 1 << 32 | T) lands in an
    // unsolicited tagged slot, its tag intact.
    client
        .send_tagged_with(to_server, 1 << 32 | 9, |b| {
            b[..3].copy_from_slice(b"req");
            3
        })
        .expect("tsend");
    let r = held_one(&mut server, &mut client);
    assert_eq!(r.tag(), Some(1 << 32 | 9));
    assert_eq!(r.data(), None);
    assert_eq!(server.message(r), b"req");
    server.release(r).expect("release");
    // Now a receive for 78 takes the message that waited.
    client.expect(to_server, 78).expect("expect 78");
    let got = held_one(&mut client, &mut server);
    assert_eq!(got.tag(), Some(78));
    assert_eq!(client.message(got), b"other");
    client.release(got).expect("release");
    // Both tagged slots are free again: two receives post, a third is back-pressure.
    client.expect(to_server, 1).expect("slot 1");
    client.expect(to_server, 2).expect("slot 2");
    assert!(matches!(
        client.expect(to_server, 3),
        Err(EndpointError::Busy(2))
    ));
}
