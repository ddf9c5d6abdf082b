//! libfabric for daos-rs, the only crate that calls it: providers and interfaces from
//! `fi_getinfo` (network scan), and [`RdmEndpoint`], the reliable-datagram endpoint the targets
//! and clients talk through (messages on a completion queue, registered buffers, RMA).
//!
//! The generated bindings live in the private `sys` module; this module is the only place that
//! calls them, each `unsafe` block with its SAFETY note. Provider names come back the way DAOS
//! prints them (`ofi+tcp`, `ofi+tcp;ofi_rxm`), best first: verbs, cxi, opx, psm2, then tcp, then
//! the rest, with sockets last.

use std::ffi::CStr;
use std::ptr;

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/fabric_sys.rs"));
}

/// One provider on one domain (for tcp, sockets and verbs over IP, the domain is the interface).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FabricInfo {
    /// DAOS's name: `ofi+` and libfabric's provider name.
    pub provider: String,
    pub domain: String,
    /// Endpoint type: `msg`, `rdm` or `dgram`.
    pub ep_type: &'static str,
}

/// libfabric could not be queried.
#[derive(Debug, thiserror::Error)]
#[error(
    "fi_getinfo failed: {message} ({code}); check that libfabric's providers are installed (Debian: libfabric1)"
)]
pub struct FabricError {
    pub code: i32,
    pub message: String,
}

fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libfabric returns NUL-terminated strings that live as long as the info list,
    // which the caller holds until after this copy.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// How good a provider is for DAOS (lower is better).
pub fn provider_rank(provider: &str) -> u32 {
    let core = provider.trim_start_matches("ofi+");
    let base = core.split(';').next().unwrap_or(core);
    match base {
        "verbs" | "cxi" | "opx" | "psm2" | "psm3" => 0,
        "tcp" => 1,
        "sockets" => 3,
        _ => 2,
    }
}

/// Every (provider, domain) libfabric offers, best provider first, without duplicates.
pub fn providers() -> Result<Vec<FabricInfo>, FabricError> {
    // SAFETY: fi_version takes no arguments and only reads a constant.
    let version = unsafe { sys::fi_version() };
    let mut info: *mut sys::fi_info = ptr::null_mut();
    // SAFETY: node, service and hints may be NULL (all providers, no filter); `info` is a
    // valid out-pointer; the list it receives is freed with fi_freeinfo below.
    let ret =
        unsafe { sys::fi_getinfo(version, ptr::null(), ptr::null(), 0, ptr::null(), &mut info) };
    if ret != 0 {
        // SAFETY: fi_strerror returns a static string for any error number.
        let message = cstr(unsafe { sys::fi_strerror(-ret) });
        return Err(FabricError { code: ret, message });
    }
    let mut out = Vec::new();
    let mut cur = info;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list fi_getinfo returned, not yet freed.
        let i = unsafe { &*cur };
        // SAFETY: the attribute pointers are either NULL or point into the same live list.
        let (fabric, domain, ep) = unsafe {
            (
                i.fabric_attr.as_ref(),
                i.domain_attr.as_ref(),
                i.ep_attr.as_ref(),
            )
        };
        if let (Some(f), Some(d)) = (fabric, domain) {
            let ep_type = match ep.map(|e| e.type_) {
                Some(sys::fi_ep_type::FI_EP_MSG) => "msg",
                Some(sys::fi_ep_type::FI_EP_RDM) => "rdm",
                Some(sys::fi_ep_type::FI_EP_DGRAM) => "dgram",
                _ => "other",
            };
            out.push(FabricInfo {
                provider: format!("ofi+{}", cstr(f.prov_name)),
                domain: cstr(d.name),
                ep_type,
            });
        }
        cur = i.next;
    }
    // SAFETY: `info` came from fi_getinfo and is freed exactly once; nothing borrowed from it
    // survives (every string was copied).
    unsafe { sys::fi_freeinfo(info) };
    out.sort_by(|a, b| {
        (provider_rank(&a.provider), &a.provider, &a.domain).cmp(&(
            provider_rank(&b.provider),
            &b.provider,
            &b.domain,
        ))
    });
    out.dedup_by(|a, b| a.provider == b.provider && a.domain == b.domain);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_best_first() {
        assert!(provider_rank("ofi+verbs;ofi_rxm") < provider_rank("ofi+tcp;ofi_rxm"));
        assert!(provider_rank("ofi+tcp") < provider_rank("ofi+udp"));
        assert!(provider_rank("ofi+udp") < provider_rank("ofi+sockets"));
    }

    #[test]
    fn this_machine_offers_tcp_on_loopback() {
        let p = providers().expect("fi_getinfo");
        assert!(
            p.iter()
                .any(|i| i.provider == "ofi+tcp" && i.domain == "lo"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|i| i.provider == "ofi+tcp;ofi_rxm" && i.ep_type == "rdm"),
            "{p:?}"
        );
        let ranks: Vec<u32> = p.iter().map(|i| provider_rank(&i.provider)).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "best first: {p:?}");
    }
}

const FI_MSG: u64 = 1 << 1;
const FI_RMA: u64 = 1 << 2;
const FI_READ: u64 = 1 << 8;
const FI_WRITE: u64 = 1 << 9;
const FI_REMOTE_READ: u64 = 1 << 12;
const FI_REMOTE_WRITE: u64 = 1 << 13;
/// Completion contexts with this bit are RMA operations (the rest is the caller's id);
/// message buffers use their slot number + 1.
const RMA_CONTEXT: usize = 1 << 62;
const FI_RECV: u64 = 1 << 10;
const FI_SEND: u64 = 1 << 11;
const FI_SOURCE: u64 = 1 << 57;
const FI_TAGGED: u64 = 1 << 3;
const FI_DIRECTED_RECV: u64 = 1 << 59;
const FI_REMOTE_CQ_DATA: u64 = 1 << 17;
const FI_MR_VIRT_ADDR: u32 = 1 << 4;
/// Tag bits an unsolicited tagged receive ignores: Mercury's 32-bit request tag.
const UNEXPECTED_TAG_IGNORE: u64 = 0xFFFF_FFFF;
const FI_MR_ALLOCATED: u32 = 1 << 5;
const FI_MR_PROV_KEY: u32 = 1 << 6;
const FI_ADDR_UNSPEC: u64 = u64::MAX;
const FI_EAGAIN: isize = 11;
const FI_EAVAIL: isize = 259;

/// The fabric address of a `tcp`/`sockets` endpoint at `ip:port` (a `struct sockaddr_in`),
/// so a client can reach a server it only knows by host and port.
pub fn sockaddr_in(ip: std::net::Ipv4Addr, port: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&ip.octets());
    v.extend_from_slice(&[0u8; 8]);
    v
}

/// An address inserted in an endpoint's address vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(u64);

/// An endpoint operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{call} failed: {message} ({code}); provider {provider}")]
    Call {
        call: &'static str,
        code: isize,
        message: String,
        provider: String,
    },
    #[error("all {0} send buffers are in flight; poll for completions and retry")]
    Busy(usize),
    #[error(
        "the provider cannot take the operation now (connecting, or queues full); poll and retry"
    )]
    Again,
    #[error("message of {len} bytes exceeds the {max}-byte buffers")]
    TooLarge { len: usize, max: usize },
}

/// A reliable-datagram (RDM) endpoint with its own completion queue, address vector and a
/// fixed pool of message buffers: `send_slots` for sends in flight, `recv_slots` kept posted.
/// Buffers are owned here, so a buffer can never be freed while the provider still uses it.
pub struct RdmEndpoint {
    provider: String,
    info: *mut sys::fi_info,
    fabric: *mut sys::fid_fabric,
    domain: *mut sys::fid_domain,
    cq: *mut sys::fid_cq,
    av: *mut sys::fid_av,
    ep: *mut sys::fid_ep,
    msg_size: usize,
    /// Slots `0..send_slots` send, the next `recv_slots` receive unsolicited messages, the
    /// rest receive tagged ones.
    bufs: Vec<Box<[u8]>>,
    send_slots: usize,
    recv_slots: usize,
    free_send: Vec<usize>,
    /// Tagged receive slots not posted.
    free_tagged: Vec<usize>,
    tagged: bool,
    /// [`Shape::unexpected_tag`].
    unexpected_tag: Option<u64>,
    /// Receive buffers the provider could not take yet; posted again at the next poll.
    pending_recv: Vec<usize>,
    /// Filled send buffers the provider could not take yet: (slot, len, peer), retried at the
    /// next poll in order.
    pending_send: std::collections::VecDeque<(usize, usize, Peer, SendKind)>,
    /// Registered memory for RMA, when the endpoint was opened with it.
    bulk: Option<Bulk>,
    /// Finished RMA operations: (id, succeeded), taken with [`RdmEndpoint::take_rma`].
    rma_done: Vec<(u64, bool)>,
}

/// Memory registered for remote access: `slots` buffers of `slot_size` bytes in one
/// allocation, each slot registered on its own (as Mercury registers each bulk handle), so a
/// peer names a slot's first byte by offset 0 or, with `FI_MR_VIRT_ADDR`, its address.
struct Bulk {
    mem: Box<[u8]>,
    slot_size: usize,
    /// The domain's `mr_mode` has `FI_MR_VIRT_ADDR`: peers name bytes by virtual address.
    virt_addr: bool,
    /// Per slot: the registration, its local descriptor and its key.
    regs: Vec<SlotReg>,
}

struct SlotReg {
    mr: *mut sys::fid_mr,
    desc: *mut std::ffi::c_void,
    key: u64,
}

/// Where a peer's registered buffer is: its key, the address in its region (an offset, or the
/// virtual address for endpoints that register memory as Mercury does), and the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteBuf {
    pub key: u64,
    pub offset: u64,
    pub len: u32,
}

/// A received message the endpoint still holds (its buffer is not posted again) until it is
/// answered with [`RdmEndpoint::reply`] or given back with [`RdmEndpoint::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    slot: usize,
    len: usize,
    /// The remote CQ data the sender attached (`fi_senddata`), if any.
    data: Option<u64>,
    /// The tag, for a message taken by an [`RdmEndpoint::expect`]ed receive.
    tag: Option<u64>,
}

impl Received {
    /// Length of the message.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 64-bit remote CQ data the sender attached (Mercury puts its tag there), if any.
    pub fn data(&self) -> Option<u64> {
        self.data
    }

    /// The tag of a message received by [`RdmEndpoint::expect`].
    pub fn tag(&self) -> Option<u64> {
        self.tag
    }
}

/// How a queued send goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendKind {
    /// `fi_send`.
    Plain,
    /// `fi_senddata` with this remote CQ data.
    Data(u64),
    /// `fi_tsend` with this tag.
    Tagged(u64),
}

/// The buffers and capabilities of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Largest message sent or received.
    pub msg_size: usize,
    /// Send buffers (sends in flight).
    pub send_slots: usize,
    /// Receive buffers kept posted for unsolicited messages.
    pub recv_slots: usize,
    /// Receive buffers for tagged messages, posted one by one with [`RdmEndpoint::expect`].
    pub tagged_slots: usize,
    /// Registered memory for RMA: (slots, bytes per slot).
    pub bulk: Option<(usize, usize)>,
    /// Tagged messages as well as untagged (`FI_TAGGED`, `FI_DIRECTED_RECV`), and registered
    /// memory addressed the way Mercury's NA OFI plugin asks (`FI_MR_VIRT_ADDR`,
    /// `FI_MR_PROV_KEY`, `FI_MR_ALLOCATED`): a peer names a byte of it by its virtual address.
    pub tagged: bool,
    /// Half of the unsolicited receive slots take tagged messages whose tag has these bits
    /// and any low 32 bits (Mercury's tagged requests, `NA_OFI_UNEXPECTED_TAG_MSG`, which
    /// DAOS turns on for `tcp;ofi_rxm`: tag `1 << 32 | T`); the other half untagged ones.
    pub unexpected_tag: Option<u64>,
}

impl Shape {
    /// Untagged messages only, no RMA.
    pub fn messages(msg_size: usize, send_slots: usize, recv_slots: usize) -> Shape {
        Shape {
            msg_size,
            send_slots,
            recv_slots,
            tagged_slots: 0,
            bulk: None,
            tagged: false,
            unexpected_tag: None,
        }
    }
}

// SAFETY: the endpoint is owned by one thread at a time (a shard); libfabric objects may move
// between threads when nothing else uses them, and every call takes `&mut self`.
unsafe impl Send for RdmEndpoint {}

impl RdmEndpoint {
    fn fail(&self, call: &'static str, code: isize) -> EndpointError {
        fail(&self.provider, call, code)
    }

    /// Opens an RDM endpoint of `provider` (libfabric's name, e.g. `tcp;ofi_rxm`), bound to
    /// `node:service` when given (a server), else on an ephemeral address (a client).
    pub fn open(
        provider: &str,
        node: Option<&str>,
        service: Option<&str>,
        msg_size: usize,
        send_slots: usize,
        recv_slots: usize,
    ) -> Result<RdmEndpoint, EndpointError> {
        Self::open_shaped(
            provider,
            node,
            service,
            Shape::messages(msg_size, send_slots, recv_slots),
        )
    }

    /// [`Self::open`] with RMA: `bulk_slots` buffers of `bulk_size` bytes are registered for
    /// remote read and write ([`Self::bulk_mut`], [`Self::bulk_buf`]), and [`Self::rma_read`] /
    /// [`Self::rma_write`] move data between them and peers' registered buffers.
    #[allow(clippy::too_many_arguments)]
    pub fn open_with_rma(
        provider: &str,
        node: Option<&str>,
        service: Option<&str>,
        msg_size: usize,
        send_slots: usize,
        recv_slots: usize,
        bulk_slots: usize,
        bulk_size: usize,
    ) -> Result<RdmEndpoint, EndpointError> {
        Self::open_shaped(
            provider,
            node,
            service,
            Shape {
                bulk: Some((bulk_slots, bulk_size)),
                ..Shape::messages(msg_size, send_slots, recv_slots)
            },
        )
    }

    /// Opens an RDM endpoint of `provider` with the buffers and capabilities of `shape`,
    /// bound to `node:service` when given (a server), else on an ephemeral address.
    pub fn open_shaped(
        provider: &str,
        node: Option<&str>,
        service: Option<&str>,
        shape: Shape,
    ) -> Result<RdmEndpoint, EndpointError> {
        let Shape {
            msg_size,
            send_slots,
            recv_slots,
            tagged_slots,
            bulk: rma,
            tagged,
            unexpected_tag,
        } = shape;
        let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
        let (node_c, service_c) = (node.map(c), service.map(c));
        // SAFETY: fi_allocinfo returns a zeroed fi_info with its attribute structs allocated,
        // or NULL; it is freed with fi_freeinfo below.
        let hints = unsafe { sys::fi_allocinfo() };
        if hints.is_null() {
            return Err(fail(provider, "fi_allocinfo", -12));
        }
        // SAFETY: `hints` and its attribute pointers were just allocated by libfabric; the
        // provider name is malloc'ed (strdup) because fi_freeinfo frees it.
        unsafe {
            (*hints).caps = if rma.is_some() {
                FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE
            } else {
                FI_MSG
            };
            if tagged {
                (*hints).caps |= FI_TAGGED | FI_DIRECTED_RECV;
                (*(*hints).domain_attr).mr_mode =
                    (FI_MR_VIRT_ADDR | FI_MR_PROV_KEY | FI_MR_ALLOCATED) as i32;
            }
            (*hints).mode = 0;
            (*(*hints).ep_attr).type_ = sys::fi_ep_type::FI_EP_RDM;
            (*(*hints).fabric_attr).prov_name = libc::strdup(c(provider).as_ptr());
        }
        let mut info: *mut sys::fi_info = ptr::null_mut();
        let flags = if node.is_some() { FI_SOURCE } else { 0 };
        // SAFETY: valid hints, NUL-terminated optional strings alive for the call, out-pointer valid.
        let ret = unsafe {
            sys::fi_getinfo(
                sys::fi_version(),
                node_c.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
                service_c.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
                flags,
                hints,
                &mut info,
            )
        };
        // SAFETY: `hints` came from fi_allocinfo and is freed once.
        unsafe { sys::fi_freeinfo(hints) };
        if ret != 0 || info.is_null() {
            return Err(fail(provider, "fi_getinfo", ret as isize));
        }
        let bufs: Vec<Box<[u8]>> = (0..send_slots + recv_slots + tagged_slots)
            .map(|_| vec![0u8; msg_size].into_boxed_slice())
            .collect();
        let mut e = RdmEndpoint {
            provider: provider.into(),
            info,
            fabric: ptr::null_mut(),
            domain: ptr::null_mut(),
            cq: ptr::null_mut(),
            av: ptr::null_mut(),
            ep: ptr::null_mut(),
            msg_size,
            bufs,
            send_slots,
            recv_slots,
            free_send: (0..send_slots).rev().collect(),
            free_tagged: (send_slots + recv_slots..send_slots + recv_slots + tagged_slots)
                .rev()
                .collect(),
            tagged,
            unexpected_tag: unexpected_tag.filter(|_| tagged),
            pending_recv: Vec::with_capacity(recv_slots),
            pending_send: std::collections::VecDeque::with_capacity(send_slots),
            bulk: None,
            rma_done: Vec::with_capacity(rma.map_or(0, |(n, _)| n)),
        };
        // SAFETY: every object is opened from the live `info`/parents and stored in `e`, whose
        // Drop closes what was opened, in reverse order, even if a later step fails.
        unsafe {
            let r = sys::fi_fabric((*e.info).fabric_attr, &mut e.fabric, ptr::null_mut());
            if r != 0 {
                return Err(e.fail("fi_fabric", r as isize));
            }
            let r = sys::fi_domain(e.fabric, e.info, &mut e.domain, ptr::null_mut());
            if r != 0 {
                return Err(e.fail("fi_domain", r as isize));
            }
            let mut cq_attr: sys::fi_cq_attr = std::mem::zeroed();
            cq_attr.size = (send_slots + recv_slots + tagged_slots) * 2;
            cq_attr.format = sys::fi_cq_format_FI_CQ_FORMAT_TAGGED;
            cq_attr.wait_obj = sys::fi_wait_obj_FI_WAIT_NONE;
            let r = sys::fi_cq_open(e.domain, &mut cq_attr, &mut e.cq, ptr::null_mut());
            if r != 0 {
                return Err(e.fail("fi_cq_open", r as isize));
            }
            let mut av_attr: sys::fi_av_attr = std::mem::zeroed();
            av_attr.type_ = sys::fi_av_type_FI_AV_TABLE;
            av_attr.count = 64;
            let r = sys::fi_av_open(e.domain, &mut av_attr, &mut e.av, ptr::null_mut());
            if r != 0 {
                return Err(e.fail("fi_av_open", r as isize));
            }
            let r = sys::fi_endpoint(e.domain, e.info, &mut e.ep, ptr::null_mut());
            if r != 0 {
                return Err(e.fail("fi_endpoint", r as isize));
            }
            let r = sys::fi_ep_bind(e.ep, &mut (*e.av).fid, 0);
            if r != 0 {
                return Err(e.fail("fi_ep_bind(av)", r as isize));
            }
            let r = sys::fi_ep_bind(e.ep, &mut (*e.cq).fid, FI_SEND | FI_RECV);
            if r != 0 {
                return Err(e.fail("fi_ep_bind(cq)", r as isize));
            }
            let r = sys::fi_enable(e.ep);
            if r != 0 {
                return Err(e.fail("fi_enable", r as isize));
            }
        }
        if let Some((slots, size)) = rma {
            // SAFETY: `info` is the live list fi_getinfo returned; its domain attributes are
            // allocated with it.
            let mr_mode = unsafe { (*(*e.info).domain_attr).mr_mode } as u32;
            e.register_bulk(slots, size, mr_mode & FI_MR_VIRT_ADDR != 0)?;
        }
        for slot in send_slots..send_slots + recv_slots {
            if !e.post_recv(slot)? {
                e.pending_recv.push(slot);
            }
        }
        Ok(e)
    }

    fn register_bulk(
        &mut self,
        slots: usize,
        size: usize,
        virt_addr: bool,
    ) -> Result<(), EndpointError> {
        let slots = slots.max(1);
        let mut bulk = Bulk {
            mem: vec![0u8; slots * size].into_boxed_slice(),
            slot_size: size,
            virt_addr,
            regs: Vec::with_capacity(slots),
        };
        for slot in 0..slots {
            let mut mr: *mut sys::fid_mr = ptr::null_mut();
            let start = bulk.mem[slot * size..].as_mut_ptr();
            // SAFETY: `domain` is open; the slot lies inside `bulk.mem`, a live allocation
            // stored in `self.bulk` (with the registrations) and freed only in Drop, after
            // every registration is closed. Keys are requested as slot + 1 (providers that
            // choose their own keys ignore it).
            let r = unsafe {
                sys::fi_mr_reg(
                    self.domain,
                    start.cast(),
                    size,
                    FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE,
                    0,
                    slot as u64 + 1,
                    0,
                    &mut mr,
                    ptr::null_mut(),
                )
            };
            if r != 0 {
                // Registrations made so far are closed by Drop.
                self.bulk = Some(bulk);
                return Err(self.fail("fi_mr_reg", r as isize));
            }
            // SAFETY: `mr` was just registered.
            let (desc, key) = unsafe { (sys::fi_mr_desc(mr), sys::fi_mr_key(mr)) };
            bulk.regs.push(SlotReg { mr, desc, key });
        }
        self.bulk = Some(bulk);
        Ok(())
    }

    /// Whether peers name this endpoint's registered bytes (and this endpoint names theirs)
    /// by virtual address (`FI_MR_VIRT_ADDR` in the domain's `mr_mode`) rather than by offset
    /// from the start of a registration. tcp;ofi_rxm: offsets.
    pub fn virt_addr(&self) -> bool {
        self.bulk.as_ref().is_some_and(|b| b.virt_addr)
    }

    /// Whether this endpoint was opened with RMA.
    pub fn has_rma(&self) -> bool {
        self.bulk.is_some()
    }

    /// Where this endpoint's bulk slot `slot` is, for a peer to read or write `len` bytes.
    pub fn bulk_desc(&self, slot: usize, len: usize) -> Option<RemoteBuf> {
        let b = self.bulk.as_ref()?;
        let reg = b.regs.get(slot)?;
        let offset = if b.virt_addr {
            b.mem[slot * b.slot_size..].as_ptr() as u64
        } else {
            0
        };
        (len <= b.slot_size).then_some(RemoteBuf {
            key: reg.key,
            offset,
            len: len as u32,
        })
    }

    /// The virtual address of bulk slot `slot`'s first byte (what Mercury's bulk descriptors
    /// name), 0 when there is no such slot.
    pub fn bulk_addr(&self, slot: usize) -> u64 {
        self.bulk_buf(slot).as_ptr() as u64 * u64::from(!self.bulk_buf(slot).is_empty())
    }

    /// Bulk slot `slot`.
    pub fn bulk_buf(&self, slot: usize) -> &[u8] {
        match &self.bulk {
            Some(b) => b
                .mem
                .get(slot * b.slot_size..(slot + 1) * b.slot_size)
                .unwrap_or(&[]),
            None => &[],
        }
    }

    /// Bulk slot `slot`, to fill. The caller must not touch a slot with an RMA in flight.
    pub fn bulk_mut(&mut self, slot: usize) -> &mut [u8] {
        slot_mut(&mut self.bulk, slot)
    }

    /// A held message and bulk slot `slot` together (they never overlap), so a request can
    /// be served straight into the slot.
    pub fn message_and_bulk(&mut self, r: Received, slot: usize) -> (&[u8], &mut [u8]) {
        (&self.bufs[r.slot][..r.len], slot_mut(&mut self.bulk, slot))
    }

    /// Reads `remote` of `peer` into the first `remote.len` bytes of bulk slot `slot`;
    /// [`Self::take_rma`] reports `id` when done. `Again`: retry after a poll.
    pub fn rma_read(
        &mut self,
        peer: Peer,
        slot: usize,
        remote: RemoteBuf,
        id: u64,
    ) -> Result<(), EndpointError> {
        self.rma(true, peer, slot, 0, remote, id)
    }

    /// [`Self::rma_read`] into bulk slot `slot` from byte `at` on.
    pub fn rma_read_at(
        &mut self,
        peer: Peer,
        slot: usize,
        at: usize,
        remote: RemoteBuf,
        id: u64,
    ) -> Result<(), EndpointError> {
        self.rma(true, peer, slot, at, remote, id)
    }

    /// [`Self::rma_write`] from bulk slot `slot`'s byte `at` on.
    pub fn rma_write_at(
        &mut self,
        peer: Peer,
        slot: usize,
        at: usize,
        remote: RemoteBuf,
        id: u64,
    ) -> Result<(), EndpointError> {
        self.rma(false, peer, slot, at, remote, id)
    }

    /// Writes the first `remote.len` bytes of bulk slot `slot` to `remote` of `peer`.
    pub fn rma_write(
        &mut self,
        peer: Peer,
        slot: usize,
        remote: RemoteBuf,
        id: u64,
    ) -> Result<(), EndpointError> {
        self.rma(false, peer, slot, 0, remote, id)
    }

    fn rma(
        &mut self,
        read: bool,
        peer: Peer,
        slot: usize,
        at: usize,
        remote: RemoteBuf,
        id: u64,
    ) -> Result<(), EndpointError> {
        let Some(b) = &mut self.bulk else {
            return Err(self.fail("fi_read/fi_write (endpoint opened without RMA)", -38));
        };
        let len = remote.len as usize;
        if at.saturating_add(len) > b.slot_size || (slot + 1) * b.slot_size > b.mem.len() {
            return Err(EndpointError::TooLarge {
                len: at.saturating_add(len),
                max: b.slot_size,
            });
        }
        let buf = b.mem[slot * b.slot_size + at..].as_mut_ptr();
        let desc = b.regs[slot].desc;
        let ctx = (RMA_CONTEXT | id as usize) as *mut std::ffi::c_void;
        // SAFETY: the slot lies inside the registered region owned by `self`, which outlives
        // the operation (Drop closes the endpoint before freeing it); the caller keeps the
        // slot untouched until `take_rma` reports `id`.
        let r = unsafe {
            if read {
                sys::fi_read(
                    self.ep,
                    buf.cast(),
                    len,
                    desc,
                    peer.0,
                    remote.offset,
                    remote.key,
                    ctx,
                )
            } else {
                sys::fi_write(
                    self.ep,
                    buf.cast(),
                    len,
                    desc,
                    peer.0,
                    remote.offset,
                    remote.key,
                    ctx,
                )
            }
        };
        match r {
            0 => Ok(()),
            r if r == -FI_EAGAIN => Err(EndpointError::Again),
            r => Err(self.fail(if read { "fi_read" } else { "fi_write" }, r)),
        }
    }

    /// Hands every finished RMA operation to `f(id, succeeded)`.
    pub fn take_rma(&mut self, mut f: impl FnMut(u64, bool)) {
        for (id, ok) in self.rma_done.drain(..) {
            f(id, ok);
        }
    }

    /// This endpoint's address, to hand to peers.
    pub fn name(&self) -> Result<Vec<u8>, EndpointError> {
        let mut buf = vec![0u8; 256];
        let mut len = buf.len();
        // SAFETY: `ep` is open; `buf` has `len` writable bytes and `len` is updated in place.
        let r = unsafe { sys::fi_getname(&mut (*self.ep).fid, buf.as_mut_ptr().cast(), &mut len) };
        if r != 0 {
            return Err(self.fail("fi_getname", r as isize));
        }
        buf.truncate(len);
        Ok(buf)
    }

    /// Adds a peer's address (from its [`Self::name`]).
    pub fn insert_peer(&mut self, name: &[u8]) -> Result<Peer, EndpointError> {
        let mut addr: u64 = 0;
        // SAFETY: `av` is open; `name` holds one address in this provider's format.
        let r = unsafe {
            sys::fi_av_insert(
                self.av,
                name.as_ptr().cast(),
                1,
                &mut addr,
                0,
                ptr::null_mut(),
            )
        };
        if r != 1 {
            return Err(self.fail("fi_av_insert", r as isize));
        }
        Ok(Peer(addr))
    }

    /// Posts a receive buffer; false when the provider cannot take it now.
    fn post_recv(&mut self, slot: usize) -> Result<bool, EndpointError> {
        let buf = self.bufs[slot].as_mut_ptr();
        let ctx = (slot + 1) as *mut std::ffi::c_void;
        // Every other unsolicited slot takes tagged messages, when the endpoint takes them.
        let tagged = self
            .unexpected_tag
            .filter(|_| (slot - self.send_slots) % 2 == 1);
        // SAFETY: the buffer is owned by `self` and stays allocated (and unused by us) until
        // its completion comes back through `poll`; the context is the slot number + 1.
        let (r, call) = unsafe {
            match tagged {
                None => (
                    sys::fi_recv(
                        self.ep,
                        buf.cast(),
                        self.msg_size,
                        ptr::null_mut(),
                        FI_ADDR_UNSPEC,
                        ctx,
                    ),
                    "fi_recv",
                ),
                Some(tag) => (
                    sys::fi_trecv(
                        self.ep,
                        buf.cast(),
                        self.msg_size,
                        ptr::null_mut(),
                        FI_ADDR_UNSPEC,
                        tag,
                        UNEXPECTED_TAG_IGNORE,
                        ctx,
                    ),
                    "fi_trecv",
                ),
            }
        };
        match r {
            0 => Ok(true),
            r if r == -FI_EAGAIN => Ok(false),
            r => Err(self.fail(call, r)),
        }
    }

    /// Sends `data` to `peer`. `Busy`: every send buffer is in flight; `Again`: the provider
    /// cannot take it yet. Either way: poll, then retry.
    pub fn send(&mut self, peer: Peer, data: &[u8]) -> Result<(), EndpointError> {
        if data.len() > self.msg_size {
            return Err(EndpointError::TooLarge {
                len: data.len(),
                max: self.msg_size,
            });
        }
        let Some(slot) = self.free_send.pop() else {
            return Err(EndpointError::Busy(self.send_slots));
        };
        self.bufs[slot][..data.len()].copy_from_slice(data);
        match self.post_send(slot, data.len(), peer, SendKind::Plain) {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.free_send.push(slot);
                Err(EndpointError::Again)
            }
            Err(e) => {
                self.free_send.push(slot);
                Err(e)
            }
        }
    }

    /// Sends a message written in place by `fill` (which returns its length) into a free send
    /// buffer: no copy. `Busy` (without calling `fill`) when every buffer is in flight. If the
    /// provider cannot take it yet, the message is kept and sent at a later poll.
    pub fn send_with(
        &mut self,
        peer: Peer,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), EndpointError> {
        self.fill_and_queue(peer, SendKind::Plain, fill)
    }

    /// [`Self::send_with`] with 64 bits of remote CQ data (`fi_senddata`): the receiver's
    /// completion carries them ([`Received::data`]). Mercury sends its requests so, the tag in
    /// the data.
    pub fn send_data_with(
        &mut self,
        peer: Peer,
        data: u64,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), EndpointError> {
        self.fill_and_queue(peer, SendKind::Data(data), fill)
    }

    /// [`Self::send_with`] as a tagged message (`fi_tsend`), taken only by a receive the peer
    /// posted for this tag. Needs an endpoint opened with [`Shape::tagged`].
    pub fn send_tagged_with(
        &mut self,
        peer: Peer,
        tag: u64,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), EndpointError> {
        if !self.tagged {
            return Err(self.fail("fi_tsend (endpoint opened without FI_TAGGED)", -38));
        }
        self.fill_and_queue(peer, SendKind::Tagged(tag), fill)
    }

    /// Posts a receive for the message tagged `tag` from `peer` (Mercury's expected message:
    /// the reply to a request sent with that tag). It comes back from [`Self::poll_held`] with
    /// [`Received::tag`] set; [`Self::release`] frees its slot. `Busy` when every tagged slot
    /// is posted.
    pub fn expect(&mut self, peer: Peer, tag: u64) -> Result<(), EndpointError> {
        let Some(slot) = self.free_tagged.pop() else {
            return Err(EndpointError::Busy(
                self.bufs.len() - self.send_slots - self.recv_slots,
            ));
        };
        let buf = self.bufs[slot].as_mut_ptr();
        // SAFETY: the buffer is owned by `self` and stays allocated (and unused by us) until
        // its completion comes back through a poll; the context is the slot number + 1.
        let r = unsafe {
            sys::fi_trecv(
                self.ep,
                buf.cast(),
                self.msg_size,
                ptr::null_mut(),
                peer.0,
                tag,
                0,
                (slot + 1) as *mut std::ffi::c_void,
            )
        };
        match r {
            0 => Ok(()),
            r => {
                self.free_tagged.push(slot);
                if r == -FI_EAGAIN {
                    Err(EndpointError::Again)
                } else {
                    Err(self.fail("fi_trecv", r))
                }
            }
        }
    }

    /// Takes a free send buffer, has `fill` write the message into it and queues it as `kind`;
    /// `Busy` (without calling `fill`) when every buffer is in flight.
    fn fill_and_queue(
        &mut self,
        peer: Peer,
        kind: SendKind,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), EndpointError> {
        let Some(slot) = self.free_send.pop() else {
            return Err(EndpointError::Busy(self.send_slots));
        };
        let len = fill(&mut self.bufs[slot]).min(self.msg_size);
        self.queue_send(slot, len, peer, kind)
    }

    fn queue_send(
        &mut self,
        slot: usize,
        len: usize,
        peer: Peer,
        kind: SendKind,
    ) -> Result<(), EndpointError> {
        if !self.pending_send.is_empty() {
            self.pending_send.push_back((slot, len, peer, kind));
            return Ok(());
        }
        match self.post_send(slot, len, peer, kind) {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.pending_send.push_back((slot, len, peer, kind));
                Ok(())
            }
            Err(e) => {
                self.free_send.push(slot);
                Err(e)
            }
        }
    }

    /// Hands a filled send buffer to the provider; false when it cannot take it now.
    fn post_send(
        &mut self,
        slot: usize,
        len: usize,
        peer: Peer,
        kind: SendKind,
    ) -> Result<bool, EndpointError> {
        let buf = self.bufs[slot].as_ptr().cast();
        let ctx = (slot + 1) as *mut std::ffi::c_void;
        let desc = ptr::null_mut();
        // SAFETY: the buffer is owned by `self` and not reused until its send completion
        // returns the slot to `free_send` in `poll`.
        let (r, call) = unsafe {
            match kind {
                SendKind::Plain => (
                    sys::fi_send(self.ep, buf, len, desc, peer.0, ctx),
                    "fi_send",
                ),
                SendKind::Data(data) => (
                    sys::fi_senddata(self.ep, buf, len, desc, data, peer.0, ctx),
                    "fi_senddata",
                ),
                SendKind::Tagged(tag) => (
                    sys::fi_tsend(self.ep, buf, len, desc, peer.0, tag, ctx),
                    "fi_tsend",
                ),
            }
        };
        match r {
            0 => Ok(true),
            r if r == -FI_EAGAIN => Ok(false),
            r => Err(self.fail(call, r)),
        }
    }

    /// Reaps completions like [`Self::poll`], but keeps each received message in its buffer and
    /// appends it to `held` (which should have room for every receive slot, so that pushing
    /// never allocates). Answer each with [`Self::reply`] or give it back with
    /// [`Self::release`].
    pub fn poll_held(&mut self, held: &mut Vec<Received>) -> Result<usize, EndpointError> {
        self.reap(|r| held.push(r))
    }

    /// The bytes of a held message.
    pub fn message(&self, r: Received) -> &[u8] {
        &self.bufs[r.slot][..r.len]
    }

    /// Answers a held message: `answer(request, response_buffer)` writes the response and
    /// returns its length; it is sent to `peer` and the request's buffer is posted again.
    /// `Busy` (without calling `answer`, the message still held) when every send buffer is in
    /// flight: poll, then reply again.
    pub fn reply(
        &mut self,
        r: Received,
        peer: Peer,
        answer: impl FnOnce(&[u8], &mut [u8]) -> usize,
    ) -> Result<(), EndpointError> {
        let Some(slot) = self.free_send.pop() else {
            return Err(EndpointError::Busy(self.send_slots));
        };
        // Receive slots come after send slots, so the request is in the upper half.
        let (low, high) = self.bufs.split_at_mut(self.send_slots);
        let req = &high[r.slot - self.send_slots][..r.len];
        let len = answer(req, &mut low[slot]).min(self.msg_size);
        self.release(r)?;
        self.queue_send(slot, len, peer, SendKind::Plain)
    }

    /// [`Self::reply`] as a tagged message (Mercury's expected message), to `peer` with `tag`.
    pub fn reply_tagged(
        &mut self,
        r: Received,
        peer: Peer,
        tag: u64,
        answer: impl FnOnce(&[u8], &mut [u8]) -> usize,
    ) -> Result<(), EndpointError> {
        if !self.tagged {
            return Err(self.fail("fi_tsend (endpoint opened without FI_TAGGED)", -38));
        }
        let Some(slot) = self.free_send.pop() else {
            return Err(EndpointError::Busy(self.send_slots));
        };
        let (low, high) = self.bufs.split_at_mut(self.send_slots);
        let req = &high[r.slot - self.send_slots][..r.len];
        let len = answer(req, &mut low[slot]).min(self.msg_size);
        self.release(r)?;
        self.queue_send(slot, len, peer, SendKind::Tagged(tag))
    }

    /// Gives a held message's buffer back to the provider.
    pub fn release(&mut self, r: Received) -> Result<(), EndpointError> {
        if r.slot >= self.send_slots + self.recv_slots {
            self.free_tagged.push(r.slot);
            return Ok(());
        }
        if !self.post_recv(r.slot)? {
            self.pending_recv.push(r.slot);
        }
        Ok(())
    }

    /// Reaps completions: finished sends free their buffers; each received message is handed
    /// to `on_recv` and its buffer is posted again. Returns the completions handled.
    pub fn poll(&mut self, mut on_recv: impl FnMut(&[u8])) -> Result<usize, EndpointError> {
        let mut got = [Received {
            slot: 0,
            len: 0,
            data: None,
            tag: None,
        }; 16];
        let mut n = 0;
        let done = self.reap(|r| {
            got[n] = r;
            n += 1;
        })?;
        for &r in &got[..n] {
            on_recv(&self.bufs[r.slot][..r.len]);
            self.release(r)?;
        }
        Ok(done)
    }

    /// Retries what the provider refused before, then reads up to 16 completions: send
    /// completions free their slot, receives go to `on_recv(slot, len)` still held.
    fn reap(&mut self, mut on_recv: impl FnMut(Received)) -> Result<usize, EndpointError> {
        for _ in 0..self.pending_recv.len() {
            let Some(slot) = self.pending_recv.pop() else {
                break;
            };
            if !self.post_recv(slot)? {
                self.pending_recv.push(slot);
                break;
            }
        }
        while let Some(&(slot, len, peer, kind)) = self.pending_send.front() {
            match self.post_send(slot, len, peer, kind) {
                Ok(true) => {
                    self.pending_send.pop_front();
                }
                Ok(false) => break,
                Err(e) => {
                    self.pending_send.pop_front();
                    self.free_send.push(slot);
                    return Err(e);
                }
            }
        }
        // SAFETY: an all-zero fi_cq_tagged_entry is a valid (empty) value of this plain C
        // struct.
        let mut entries: [sys::fi_cq_tagged_entry; 16] = unsafe { std::mem::zeroed() };
        // SAFETY: `cq` is open and `entries` has room for 16 entries of the CQ's format.
        let n = unsafe { sys::fi_cq_read(self.cq, entries.as_mut_ptr().cast(), entries.len()) };
        if n == -FI_EAGAIN {
            return Ok(0);
        }
        if n == -FI_EAVAIL {
            // SAFETY: as above for the error entry.
            let mut err: sys::fi_cq_err_entry = unsafe { std::mem::zeroed() };
            // SAFETY: `cq` is open; `err` is a valid out-buffer.
            unsafe { sys::fi_cq_readerr(self.cq, &mut err, 0) };
            // The failed operation's buffer is ours again.
            let ctx = err.op_context as usize;
            if ctx & RMA_CONTEXT != 0 {
                self.rma_done.push(((ctx & !RMA_CONTEXT) as u64, false));
                return Ok(1);
            }
            let slot = ctx.wrapping_sub(1);
            if slot < self.send_slots {
                self.free_send.push(slot);
            } else if slot < self.send_slots + self.recv_slots {
                self.pending_recv.push(slot);
            } else if slot < self.bufs.len() {
                self.free_tagged.push(slot);
            }
            return Err(self.fail("fi_cq_read (completion error)", -(err.err as isize)));
        }
        if n < 0 {
            return Err(self.fail("fi_cq_read", n));
        }
        for e in &entries[..n as usize] {
            let ctx = e.op_context as usize;
            if ctx & RMA_CONTEXT != 0 {
                self.rma_done.push(((ctx & !RMA_CONTEXT) as u64, true));
                continue;
            }
            let slot = ctx.wrapping_sub(1);
            if slot >= self.bufs.len() {
                continue;
            }
            if e.flags & FI_RECV != 0 {
                on_recv(Received {
                    slot,
                    len: e.len.min(self.msg_size),
                    data: (e.flags & FI_REMOTE_CQ_DATA != 0).then_some(e.data),
                    tag: (e.flags & FI_TAGGED != 0).then_some(e.tag),
                });
            } else if slot < self.send_slots {
                self.free_send.push(slot);
            }
        }
        Ok(n as usize)
    }

    /// Largest message this endpoint sends or receives.
    pub fn msg_size(&self) -> usize {
        self.msg_size
    }

    /// Sends still in flight.
    pub fn sends_in_flight(&self) -> usize {
        self.send_slots - self.free_send.len()
    }
}

/// Bulk slot `slot` of `bulk` (empty when there is no such slot).
fn slot_mut(bulk: &mut Option<Bulk>, slot: usize) -> &mut [u8] {
    match bulk {
        Some(b) => {
            let size = b.slot_size;
            b.mem
                .get_mut(slot * size..(slot + 1) * size)
                .unwrap_or(&mut [])
        }
        None => &mut [],
    }
}

fn fail(provider: &str, call: &'static str, code: isize) -> EndpointError {
    // SAFETY: fi_strerror returns a static string for any error number.
    let message = cstr(unsafe { sys::fi_strerror(code.unsigned_abs() as i32) });
    EndpointError::Call {
        call,
        code,
        message,
        provider: provider.into(),
    }
}

impl Drop for RdmEndpoint {
    fn drop(&mut self) {
        // SAFETY: each object is closed once, children before parents, only if it was opened;
        // `info` is freed once after them.
        unsafe {
            if !self.ep.is_null() {
                sys::fi_close(&mut (*self.ep).fid);
            }
            if let Some(b) = &self.bulk {
                for reg in &b.regs {
                    sys::fi_close(&mut (*reg.mr).fid);
                }
            }
            if !self.av.is_null() {
                sys::fi_close(&mut (*self.av).fid);
            }
            if !self.cq.is_null() {
                sys::fi_close(&mut (*self.cq).fid);
            }
            if !self.domain.is_null() {
                sys::fi_close(&mut (*self.domain).fid);
            }
            if !self.fabric.is_null() {
                sys::fi_close(&mut (*self.fabric).fid);
            }
            sys::fi_freeinfo(self.info);
        }
    }
}
