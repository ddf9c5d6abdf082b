//! A real libfabric RDM exchange over tcp;ofi_rxm on loopback: ping-pong with data checked
//! byte for byte, back-pressure when every send buffer is in flight, and clear errors.

use std::time::{Duration, Instant};

use daos_hw::fabric::{EndpointError, RdmEndpoint};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Sends, polling both sides while the provider asks to retry (connection set-up).
fn send(from: &mut RdmEndpoint, other: &mut RdmEndpoint, peer: daos_hw::fabric::Peer, data: &[u8]) {
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
        daos_hw::fabric::sockaddr_in("127.0.0.1".parse().expect("ip"), port),
        "{name:?}"
    );
}
