//! Control-plane security (DAOS_FACTS §7): mutual TLS with certificates from
//! `transport_config`, the caller's component taken from its certificate's CN (`admin`, `agent`,
//! `server`), and a per-RPC allow-list. `allow_insecure` turns all of it off (plaintext, no
//! checks). `daos_server cert generate DIR` writes the CA and the three key pairs with DAOS's
//! file names and modes, so no openssl script is needed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tonic::{Request, Status};

use crate::exit::CmdError;

/// Who is calling, from the CN of its certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Admin,
    Agent,
    Server,
    Undefined,
}

impl Component {
    pub fn from_cn(cn: &str) -> Component {
        match cn {
            "admin" => Component::Admin,
            "agent" => Component::Agent,
            "server" => Component::Server,
            _ => Component::Undefined,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Component::Admin => "admin",
            Component::Agent => "agent",
            Component::Server => "server",
            Component::Undefined => "undefined",
        }
    }
}

/// Which components may call which method (`Service.Method`).
pub fn allowed(method: &str, c: Component) -> bool {
    use Component::*;
    let who: &[Component] = match method {
        "CtlSvc.StorageScan"
        | "CtlSvc.StorageFormat"
        | "CtlSvc.NetworkScan"
        | "CtlSvc.StoragePrepare"
        | "CtlSvc.ConfigGenerate"
        | "CtlSvc.FabricCheckServe"
        | "CtlSvc.FabricCheckRun" => &[Admin],
        "CtlSvc.PrepShutdownRanks" | "CtlSvc.StopRanks" | "CtlSvc.StartRanks" => &[Server],
        "MgmtSvc.LeaderQuery" | "MgmtSvc.GetAttachInfo" => &[Admin, Agent, Server],
        // Engines' daos_servers join their ranks and report events.
        "MgmtSvc.Join" | "MgmtSvc.ClusterEvent" => &[Server],
        // The management service's replicas among themselves.
        "RaftSvc.AppendEntries"
        | "ContSvc.MapChange"
        | "ContSvc.MapQuery"
        | "RaftSvc.Vote"
        | "RaftSvc.InstallSnapshot"
        | "RaftSvc.Propose"
        | "RaftSvc.Read"
        | "RaftSvc.Start"
        | "RaftSvc.Stop"
        | "ContSvc.Handles"
        | "RankSvc.EngineCall"
        | "RankSvc.RankInfo"
        | "RankSvc.GroupUpdate" => &[Server],
        "MgmtSvc.SystemQuery"
        | "MgmtSvc.SystemStop"
        | "MgmtSvc.SystemStart"
        | "MgmtSvc.SystemExclude" => &[Admin],
        // Clients (through the agent's identity) resolve and list pools.
        "MgmtSvc.PoolQuery"
        | "MgmtSvc.ListPools"
        | "MgmtSvc.PoolQueryTarget"
        | "MgmtSvc.ListContainers"
        | "MgmtSvc.PoolEvict" => &[Admin, Agent],
        // Containers, at their pool's service (the rebuild lists them from a server).
        "ContSvc.Create"
        | "ContSvc.Destroy"
        | "ContSvc.Query"
        | "ContSvc.SetProps"
        | "ContSvc.List"
        | "ContSvc.PoolConnect"
        | "ContSvc.Open"
        | "ContSvc.Disconnect"
        | "ContSvc.AllocOids"
        | "ContSvc.Attrs"
        | "ContSvc.Acl" => &[Admin, Agent, Server],
        // A pool handle without a credential, beyond the pool's ACL: daos_servers (the
        // rebuild) and admin tools (DAOS's admins may do anything to a pool).
        "ContSvc.SystemConnect" => &[Admin, Server],
        // Evicting other users' handles: admins (dmg pool evict), and the agent for the
        // handles a process left when it exited.
        "ContSvc.Evict" => &[Admin, Agent, Server],
        "MgmtSvc.PoolCreate"
        | "MgmtSvc.PoolGetACL"
        | "MgmtSvc.PoolOverwriteACL"
        | "MgmtSvc.PoolUpdateACL"
        | "MgmtSvc.PoolDeleteACL"
        | "MgmtSvc.PoolDestroy"
        | "MgmtSvc.PoolExclude"
        | "MgmtSvc.PoolDrain"
        | "MgmtSvc.PoolReintegrate"
        | "MgmtSvc.PoolExtend"
        | "MgmtSvc.PoolSetProp"
        | "MgmtSvc.PoolGetProp" => &[Admin],
        _ => &[],
    };
    who.contains(&c)
}

/// The CN of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

/// Checks the caller's DAOS version against this server's (DAOS's interoperability rules,
/// [`daos_control::interop`]), then that it may call `method` (always in insecure mode). The
/// component the rules apply to is the certificate's with TLS, else the one the caller names.
/// A caller that sends no version headers (an older tool) is served.
pub fn authorize<T>(req: &Request<T>, method: &str, insecure: bool) -> Result<(), Status> {
    let cert = (!insecure).then(|| cert_component(req));
    check_version(req, cert)?;
    let Some(component) = cert else {
        return Ok(());
    };
    if allowed(method, component) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{} does not have permission to call {method}",
            component.name()
        )))
    }
}

/// The component of the caller's certificate (Undefined without one).
fn cert_component<T>(req: &Request<T>) -> Component {
    req.peer_certs()
        .and_then(|certs| certs.first().and_then(|c| common_name(c.as_ref())))
        .map(|cn| Component::from_cn(&cn))
        .unwrap_or(Component::Undefined)
}

/// Whether `req` comes through daos_agent (a client process's call it forwards): its
/// certificate's CN with TLS; in insecure mode the component the call names (the agent
/// names itself on every call it forwards). Such a call is authorized as the user whose
/// credential the agent attached ([`daos_control::forward::CALLER_HEADER`]), never as an
/// admin tool.
pub fn from_agent<T>(req: &Request<T>, insecure: bool) -> bool {
    if !insecure {
        return cert_component(req) == Component::Agent;
    }
    req.metadata()
        .get(daos_control::interop::COMPONENT_HEADER)
        .is_some_and(|v| v.as_bytes() == Component::Agent.name().as_bytes())
}

/// The version check of [`authorize`].
fn check_version<T>(req: &Request<T>, cert: Option<Component>) -> Result<(), Status> {
    use daos_control::interop::{self, Version, Versioned};
    let md = req.metadata();
    let (Some(comp), Some(ver)) = (
        md.get(interop::COMPONENT_HEADER),
        md.get(interop::VERSION_HEADER),
    ) else {
        return Ok(());
    };
    let text = |v: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>, what: &str| {
        v.to_str()
            .map(str::to_string)
            .map_err(|_| Status::invalid_argument(format!("{what} is not text")))
    };
    let named = text(comp, interop::COMPONENT_HEADER)?;
    let ver = text(ver, interop::VERSION_HEADER)?;
    let version = Version::parse(&ver).ok_or_else(|| {
        Status::invalid_argument(format!(
            "{} {ver:?} is not a version (expected major.minor.patch)",
            interop::VERSION_HEADER
        ))
    })?;
    let this = Versioned {
        component: "server".into(),
        version: Version::ours(),
    };
    let other = Versioned {
        component: cert.map_or(named, |c| c.name().to_string()),
        version,
    };
    interop::check(&this, &other)
        .map_err(|rule| Status::failed_precondition(interop::incompatible(&this, &other, rule)))
}

pub use daos_control::read_pem;

/// Names of the files `cert generate` writes.
pub const CA_CERT: &str = "daosCA.crt";

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), CmdError> {
    let err = |e: std::io::Error| CmdError::new(format!("cannot write {}: {e}", path.display()));
    if path.exists() {
        // Keys are read-only; replace rather than write through.
        fs::remove_file(path).map_err(err)?;
    }
    fs::write(path, data).map_err(err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)
}

/// Generates a CA and `server`, `admin` and `agent` key pairs into `dir` (DAOS's names: keys
/// 0400, certificates 0644, client certificates also under `clients/`). Returns the files.
pub fn generate(dir: &Path) -> Result<Vec<PathBuf>, CmdError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| CmdError::new(format!("certificate generation failed: {e}"));
    fs::create_dir_all(dir.join("clients"))
        .map_err(|e| CmdError::new(format!("cannot create {}: {e}", dir.display())))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "DAOS");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "DAOS CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let (y, m, d) = today();
    ca_params.not_before = rcgen::date_time_ymd(y, m, d);
    ca_params.not_after = rcgen::date_time_ymd(y + 3, m, d.min(28));
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let mut written = Vec::new();
    write_file(&dir.join(CA_CERT), ca.pem().as_bytes(), 0o644)?;
    written.push(dir.join(CA_CERT));
    for (cn, server) in [("server", true), ("admin", false), ("agent", false)] {
        let names = if server {
            vec!["server".to_string(), "localhost".to_string()]
        } else {
            Vec::new()
        };
        let mut p = CertificateParams::new(names).map_err(err)?;
        p.distinguished_name.push(DnType::OrganizationName, "DAOS");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = if server {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        p.not_before = rcgen::date_time_ymd(y, m, d);
        p.not_after = rcgen::date_time_ymd(y + 3, m, d.min(28));
        let key = KeyPair::generate().map_err(err)?;
        let cert = p.signed_by(&key, &issuer).map_err(err)?;
        let (crt, keyf) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
        write_file(&crt, cert.pem().as_bytes(), 0o644)?;
        write_file(&keyf, key.serialize_pem().as_bytes(), 0o400)?;
        written.extend([crt, keyf]);
        if !server {
            let copy = dir.join("clients").join(format!("{cn}.crt"));
            write_file(&copy, cert.pem().as_bytes(), 0o644)?;
            written.push(copy);
        }
    }
    Ok(written)
}

/// Today's UTC date; certificates are valid from today for three years, as DAOS's script does.
fn today() -> (i32, u8, u8) {
    let stamp = crate::logging::timestamp(std::time::SystemTime::now());
    let mut parts = stamp
        .split([' ', '/'])
        .map(|p| p.parse::<i32>().unwrap_or(1));
    let (y, m, d) = (
        parts.next().unwrap_or(1970),
        parts.next().unwrap_or(1),
        parts.next().unwrap_or(1),
    );
    (y, m as u8, d as u8)
}
