//! Fabric providers and interfaces from libfabric's `fi_getinfo`.
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
