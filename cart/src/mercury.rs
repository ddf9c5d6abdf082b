//! Mercury's message framing over its NA OFI plugin (Mercury v2.4, built without checksums as
//! DAOS builds it).
//!
//! A request starts with the sender's `struct sockaddr_in` (16 bytes: family 2 in host order,
//! port and address big-endian): `tcp;ofi_rxm` cannot tell a receiver who sent a message, so
//! Mercury says it, and the reply goes to that address. Then the 12-byte core header,
//! big-endian: `0xD7` (`('H' << 1) | 'G'`), protocol version 5, the RPC id (u64), flags
//! ([`MORE_DATA`], [`NO_RESPONSE`]), the sender's context id (cookie); then a 4-byte input
//! header that carries nothing, then the body. A response is the core response header (i8
//! return code, flags, the cookie as u16 big-endian, 8 bytes of padding), the 4-byte output
//! header, and the body.
//!
//! A request whose body does not fit [`MSG_SIZE`] has [`MORE_DATA`] set and its body is only
//! a bulk handle over the whole encoded input, which the server pulls; a response likewise, and
//! the client then acknowledges with a 1-byte message tagged as the response.

use crate::CartError;

/// Length of the sender's address at the front of a request.
pub const NA_ADDR_LEN: usize = 16;
/// Mercury's core header, request or response.
pub const CORE_HEADER_LEN: usize = 12;
/// Mercury's input/output header (a checksum in builds with checksums; unused in DAOS's).
pub const HG_HEADER_LEN: usize = 4;
/// Where a request's body starts.
pub const REQUEST_BODY: usize = NA_ADDR_LEN + CORE_HEADER_LEN + HG_HEADER_LEN;
/// Where a response's body starts.
pub const RESPONSE_BODY: usize = CORE_HEADER_LEN + HG_HEADER_LEN;
/// First byte of every request.
pub const IDENTIFIER: u8 = 0xD7;
/// Mercury's core protocol version (2.2 to 2.4).
pub const PROTOCOL: u8 = 5;
/// The one RPC id CaRT registers for RPCs with a reply...
pub const RPC_ID: u64 = 0xDA03_6868;
/// ...and the one for one-way RPCs.
pub const ONEWAY_RPC_ID: u64 = 0xDA03_6869;
/// Core flag: the body is a bulk handle over the real one.
pub const MORE_DATA: u8 = 0x01;
/// Core flag: send no response.
pub const NO_RESPONSE: u8 = 0x02;
/// Tag bit of requests sent as tagged messages (`NA_OFI_UNEXPECTED_TAG_MSG`).
pub const UNEXPECTED_TAG: u64 = 1 << 32;
/// Mercury's request tags are 32 bits.
pub const TAG_MASK: u64 = 0xFFFF_FFFF;
/// DAOS's message size both ways (`DAOS_RPC_SIZE`, 20 KiB), headers included.
pub const MSG_SIZE: usize = 20480;
/// `AF_INET` as the first two bytes of a `sockaddr_in` on Linux (host order, little-endian).
const AF_INET: [u8; 2] = [2, 0];

/// Mercury's return codes (`hg_return_t`) that a server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum HgReturn {
    Success = 0,
    /// No such RPC id registered.
    NoEntry = 2,
    ProtocolError = 12,
    /// A response larger than the client takes.
    MsgSize = 14,
    ProtoNoSupport = 15,
}

/// A decoded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The sender's `sockaddr_in`, as sent (for the address vector).
    pub source: [u8; NA_ADDR_LEN],
    pub rpc_id: u64,
    pub flags: u8,
    pub cookie: u8,
    /// Everything after the input header.
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The sender's IPv4 address and port.
    pub fn source_addr(&self) -> std::net::SocketAddrV4 {
        let s = &self.source;
        std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::new(s[4], s[5], s[6], s[7]),
            u16::from_be_bytes([s[2], s[3]]),
        )
    }

    /// Whether the sender expects no response.
    pub fn one_way(&self) -> bool {
        self.flags & NO_RESPONSE != 0 || self.rpc_id == ONEWAY_RPC_ID
    }
}

/// Decodes a request: the address header, then the core header, which must be Mercury's
/// identifier and protocol version 5.
pub fn parse_request(msg: &[u8]) -> Result<Request<'_>, CartError> {
    if msg.len() < REQUEST_BODY {
        return Err(CartError::Short {
            field: "Mercury request headers",
            need: REQUEST_BODY,
            have: msg.len(),
        });
    }
    let mut source = [0u8; NA_ADDR_LEN];
    source.copy_from_slice(&msg[..NA_ADDR_LEN]);
    if source[..2] != AF_INET {
        return Err(CartError::Invalid {
            field: "sender address",
            why: "not an IPv4 sockaddr_in (family 2); only tcp;ofi_rxm senders are served",
        });
    }
    let h = &msg[NA_ADDR_LEN..NA_ADDR_LEN + CORE_HEADER_LEN];
    if h[0] != IDENTIFIER {
        return Err(CartError::Invalid {
            field: "Mercury header",
            why: "first byte is not 0xD7 (not a Mercury request)",
        });
    }
    if h[1] != PROTOCOL {
        return Err(CartError::Invalid {
            field: "Mercury header protocol",
            why: "Mercury core protocol is not 5 (Mercury 2.2-2.4 send 5)",
        });
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[2..10]);
    Ok(Request {
        source,
        rpc_id: u64::from_be_bytes(id),
        flags: h[10],
        cookie: h[11],
        body: &msg[REQUEST_BODY..],
    })
}

/// Writes a request's headers (sender address, core header, zeroed input header) at the front
/// of `buf`; the body goes at [`REQUEST_BODY`].
pub fn write_request_header(
    buf: &mut [u8],
    source: &[u8; NA_ADDR_LEN],
    rpc_id: u64,
    flags: u8,
    cookie: u8,
) -> Result<(), CartError> {
    if buf.len() < REQUEST_BODY {
        return Err(CartError::Full {
            field: "Mercury request headers",
            need: REQUEST_BODY,
            room: buf.len(),
        });
    }
    buf[..NA_ADDR_LEN].copy_from_slice(source);
    let h = &mut buf[NA_ADDR_LEN..REQUEST_BODY];
    h[0] = IDENTIFIER;
    h[1] = PROTOCOL;
    h[2..10].copy_from_slice(&rpc_id.to_be_bytes());
    h[10] = flags;
    h[11] = cookie;
    h[12..].fill(0);
    Ok(())
}

/// A decoded response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub ret: i8,
    pub flags: u8,
    pub cookie: u16,
    pub body: &'a [u8],
}

/// Decodes a response.
pub fn parse_response(msg: &[u8]) -> Result<Response<'_>, CartError> {
    if msg.len() < RESPONSE_BODY {
        return Err(CartError::Short {
            field: "Mercury response headers",
            need: RESPONSE_BODY,
            have: msg.len(),
        });
    }
    Ok(Response {
        ret: msg[0] as i8,
        flags: msg[1],
        cookie: u16::from_be_bytes([msg[2], msg[3]]),
        body: &msg[RESPONSE_BODY..],
    })
}

/// Writes a response's headers at the front of `buf`; the body goes at [`RESPONSE_BODY`].
pub fn write_response_header(
    buf: &mut [u8],
    ret: HgReturn,
    flags: u8,
    cookie: u8,
) -> Result<(), CartError> {
    if buf.len() < RESPONSE_BODY {
        return Err(CartError::Full {
            field: "Mercury response headers",
            need: RESPONSE_BODY,
            room: buf.len(),
        });
    }
    buf[0] = ret as i8 as u8;
    buf[1] = flags;
    buf[2..4].copy_from_slice(&u16::from(cookie).to_be_bytes());
    buf[4..RESPONSE_BODY].fill(0);
    Ok(())
}

/// The request tag T of a received request: the low 32 bits of its tag (tagged requests) or
/// of its remote CQ data (requests sent with `fi_senddata`).
pub fn request_tag(tag: Option<u64>, data: Option<u64>) -> Option<u64> {
    match (tag, data) {
        (Some(t), _) if t & UNEXPECTED_TAG != 0 => Some(t & TAG_MASK),
        (_, Some(d)) => Some(d & TAG_MASK),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes a Mercury 2.4.0 client sent (captured on loopback): sockaddr of 192.0.2.2
    /// port 38631, RPC id 0xDA036868, no flags, cookie 0, unused header, body deadbeef...
    const CAPTURED: &str =
        "020096e7c00002020000000000000000d70500000000da036868000000000000deadbeef00112233";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_captured_mercury_request_decodes() {
        let msg = hex(CAPTURED);
        let r = parse_request(&msg).unwrap();
        assert_eq!(r.rpc_id, RPC_ID);
        assert_eq!((r.flags, r.cookie), (0, 0));
        assert_eq!(r.source_addr().to_string(), "192.0.2.2:38631");
        assert_eq!(r.body, hex("deadbeef00112233"));
        assert!(!r.one_way());
        let mut again = vec![0u8; msg.len()];
        write_request_header(&mut again, &r.source, RPC_ID, 0, 0).unwrap();
        again[REQUEST_BODY..].copy_from_slice(r.body);
        assert_eq!(again, msg);
    }

    #[test]
    fn responses_put_the_cookie_big_endian_after_the_return_code() {
        let mut b = [0xffu8; 20];
        write_response_header(&mut b, HgReturn::NoEntry, MORE_DATA, 7).unwrap();
        assert_eq!(&b[..16], &[2, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let r = parse_response(&b).unwrap();
        assert_eq!((r.ret, r.flags, r.cookie), (2, 1, 7));
        assert_eq!(r.body, &[0xff; 4]);
    }

    #[test]
    fn other_protocols_are_refused_by_name() {
        let mut msg = hex(CAPTURED);
        msg[17] = 4;
        assert!(
            parse_request(&msg)
                .unwrap_err()
                .to_string()
                .contains("protocol")
        );
        msg[17] = 5;
        msg[16] = 0x44;
        assert!(
            parse_request(&msg)
                .unwrap_err()
                .to_string()
                .contains("0xD7")
        );
        msg[16] = 0xd7;
        msg[0] = 10;
        assert!(parse_request(&msg).is_err(), "IPv6 sender");
        assert!(parse_request(&msg[..31]).is_err());
    }

    #[test]
    fn request_tags_come_from_the_tag_or_the_cq_data() {
        assert_eq!(request_tag(Some(1 << 32 | 9), None), Some(9));
        assert_eq!(request_tag(None, Some(12)), Some(12));
        assert_eq!(request_tag(Some(5), None), None, "not a request tag");
        assert_eq!(request_tag(None, None), None);
    }
}
