//! Who a client is and what it may do: DAOS's AUTH_SYS credentials ([`cred`]: built by
//! daos_agent from the kernel's peer credentials, signed with the agent's key, validated by
//! daos_server against `client_cert_dir`) and access control lists ([`acl`]: DAOS's ACE
//! syntax, default ACLs and permission rules).

pub mod acl;
pub mod cred;

pub use acl::{Ace, Acl, Object, Principal, perm};
pub use cred::{Identity, Names, Signer, Verify};

/// DAOS error numbers of the failures here.
pub const DER_NO_PERM: i32 = -1001;
pub const DER_INVAL: i32 = -1003;
pub const DER_MISC: i32 = -1025;
pub const DER_NO_CERT: i32 = -2043;
pub const DER_BAD_CERT: i32 = -2044;

/// Why a credential or an ACL was refused, or a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The credential does not decode or breaks its bounds (DER_INVAL).
    #[error("malformed credential: {0}")]
    Malformed(String),
    /// No certificate for the credential's origin (DER_NO_CERT).
    #[error("{0}")]
    NoCert(String),
    /// The origin's certificate is unusable (DER_BAD_CERT).
    #[error("bad certificate: {0}")]
    BadCert(String),
    /// The verifier does not match (DER_NO_PERM).
    #[error("{0}")]
    BadSignature(String),
    /// The signing key could not be read or used (DER_MISC).
    #[error("{0}")]
    Key(String),
    /// The caller's uid/gid has no names (DER_MISC).
    #[error("{0}")]
    Identity(String),
    /// An ACL entry or principal does not parse (DER_INVAL).
    #[error("{0}")]
    Acl(String),
}

impl AuthError {
    /// The DAOS error number for this failure.
    pub fn der(&self) -> i32 {
        match self {
            AuthError::Malformed(_) | AuthError::Acl(_) => DER_INVAL,
            AuthError::NoCert(_) => DER_NO_CERT,
            AuthError::BadCert(_) => DER_BAD_CERT,
            AuthError::BadSignature(_) => DER_NO_PERM,
            AuthError::Key(_) | AuthError::Identity(_) => DER_MISC,
        }
    }
}

/// A new random handle cookie (never 0 or `u64::MAX`, which targets reserve).
pub fn random_cookie() -> u64 {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut b = [0u8; 8];
        if rng.fill(&mut b).is_err() {
            continue;
        }
        let c = u64::from_le_bytes(b);
        if c != 0 && c != u64::MAX {
            return c;
        }
    }
}
