//! DAOS's AUTH_SYS credential: a `Sys` token naming the caller's user and groups as DAOS
//! principals (`name@`), a verifier, and the origin whose certificate checks the verifier.
//!
//! - daos_agent builds it from the uid/gid the kernel gave for the caller's socket
//!   ([`identity`]) and signs the encoded token with its key ([`Signer`]): RSA keys as DAOS
//!   does (RSA-PSS, SHA-512), ECDSA P-256 keys (what daos-rs's certificate generator makes)
//!   with ECDSA/SHA-256. Insecure: the verifier is the token's SHA-512 digest.
//! - daos_server checks it ([`validate`]) against `<client_cert_dir>/<origin>.crt`; the result
//!   is the identity a pool's ACL is checked against.

use std::path::{Path, PathBuf};

use daos_proto::auth::{Credential, Flavor, Sys, Token};
use prost::Message;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};

use crate::AuthError;

/// The origin DAOS's agent puts in its credentials (its certificate is `agent.crt`).
pub const AGENT_ORIGIN: &str = "agent";
/// Bounds of a credential a server accepts (the encoded credential, names, groups).
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;
pub const MAX_NAME_LEN: usize = 256;
pub const MAX_GROUPS: usize = 1024;

/// Appends DAOS's principal suffix to a user or group name.
pub fn principal(name: &str) -> String {
    format!("{name}@")
}

/// Names a uid/gid pair carries, as the agent puts them in a token (`client_user_map`
/// entries replace local lookups).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub user: String,
    pub group: String,
    pub groups: Vec<String>,
}

/// The local names of `uid` (its user) and `gid` (its primary group) and the user's other
/// groups, from the passwd and group databases.
pub fn identity(uid: u32, gid: u32) -> Result<Names, AuthError> {
    use nix::unistd::{Gid, Group, Uid, User, getgrouplist};
    let user = User::from_uid(Uid::from_raw(uid))
        .map_err(|e| AuthError::Identity(format!("looking up uid {uid}: {e}")))?
        .ok_or_else(|| {
            AuthError::Identity(format!(
                "uid {uid} has no user name (no passwd entry); add one or map it in \
                 credential_config.client_user_map"
            ))
        })?;
    let group_name = |g: u32| -> Option<String> {
        Group::from_gid(Gid::from_raw(g))
            .ok()
            .flatten()
            .map(|g| g.name)
    };
    let group = group_name(gid).ok_or_else(|| {
        AuthError::Identity(format!(
            "gid {gid} has no group name (no group entry); add one or map it in \
             credential_config.client_user_map"
        ))
    })?;
    let mut groups = Vec::new();
    if let Ok(c) = std::ffi::CString::new(user.name.clone())
        && let Ok(list) = getgrouplist(&c, Gid::from_raw(gid))
    {
        for g in list {
            if g.as_raw() == gid {
                continue;
            }
            if let Some(n) = group_name(g.as_raw())
                && !groups.contains(&n)
            {
                groups.push(n);
            }
        }
    }
    Ok(Names {
        user: user.name,
        group,
        groups,
    })
}

/// This machine's short host name (DAOS's `machinename`).
pub fn machine_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// The AUTH_SYS token of `names` on `machine`.
pub fn sys_token(names: &Names, machine: &str) -> Token {
    let sys = Sys {
        stamp: 0,
        machinename: machine.to_string(),
        user: principal(&names.user),
        group: principal(&names.group),
        groups: names.groups.iter().map(|g| principal(g)).collect(),
        secctx: String::new(),
    };
    Token {
        flavor: Flavor::AuthSys as i32,
        data: sys.encode_to_vec(),
    }
}

/// How an agent makes a token's verifier.
pub enum Signer {
    /// Insecure mode: the token's SHA-512 digest.
    Digest,
    /// DAOS's RSA-PSS with SHA-512.
    Rsa(Box<RsaKeyPair>),
    /// ECDSA P-256 with SHA-256 (ASN.1 signature).
    Ecdsa(Box<EcdsaKeyPair>),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signer::Digest => "Signer::Digest",
            Signer::Rsa(_) => "Signer::Rsa",
            Signer::Ecdsa(_) => "Signer::Ecdsa",
        })
    }
}

fn pem_blocks(text: &[u8]) -> Vec<x509_parser::pem::Pem> {
    x509_parser::pem::Pem::iter_from_buffer(text)
        .filter_map(Result::ok)
        .collect()
}

impl Signer {
    /// The key in PEM file `path` (PKCS#8 RSA or P-256, or PKCS#1 RSA).
    pub fn from_key_file(path: &Path) -> Result<Signer, AuthError> {
        let text = std::fs::read(path)
            .map_err(|e| AuthError::Key(format!("cannot read key {}: {e}", path.display())))?;
        Signer::from_pem(&text).map_err(|e| AuthError::Key(format!("key {}: {e}", path.display())))
    }

    /// The key in PEM text.
    pub fn from_pem(text: &[u8]) -> Result<Signer, String> {
        let blocks = pem_blocks(text);
        let Some(block) = blocks.first() else {
            return Err("no PEM block found (expected a PRIVATE KEY)".into());
        };
        let der = &block.contents;
        match block.label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(der)
                .map(|k| Signer::Rsa(Box::new(k)))
                .map_err(|e| format!("not a usable RSA key: {e}")),
            "PRIVATE KEY" => {
                if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
                    return Ok(Signer::Rsa(Box::new(k)));
                }
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map(|k| Signer::Ecdsa(Box::new(k)))
                .map_err(|e| format!("neither an RSA nor a P-256 key: {e}"))
            }
            other => Err(format!(
                "PEM block {other:?} is not a private key (expected PRIVATE KEY or RSA PRIVATE KEY)"
            )),
        }
    }

    /// The verifier of `data` (an encoded token).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let rng = SystemRandom::new();
        match self {
            Signer::Digest => Ok(ring::digest::digest(&ring::digest::SHA512, data)
                .as_ref()
                .to_vec()),
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PSS_SHA512, &rng, data, &mut sig)
                    .map_err(|_| AuthError::Key("RSA-PSS signing failed".into()))?;
                Ok(sig)
            }
            Signer::Ecdsa(k) => k
                .sign(&rng, data)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| AuthError::Key("ECDSA signing failed".into())),
        }
    }

    /// The public half, as a certificate's subject public key would carry it (tests).
    pub fn public_key(&self) -> Option<Vec<u8>> {
        match self {
            Signer::Digest => None,
            Signer::Rsa(k) => Some(k.public_key().as_ref().to_vec()),
            Signer::Ecdsa(k) => Some(k.public_key().as_ref().to_vec()),
        }
    }
}

/// A signed AUTH_SYS credential for `names`.
pub fn credential(names: &Names, machine: &str, signer: &Signer) -> Result<Credential, AuthError> {
    let token = sys_token(names, machine);
    let verifier = signer.sign(&token.encode_to_vec())?;
    Ok(Credential {
        token: Some(token),
        verifier: Some(Token {
            flavor: Flavor::AuthSys as i32,
            data: verifier,
        }),
        origin: AGENT_ORIGIN.into(),
    })
}

/// How a server checks verifiers.
#[derive(Clone, Debug)]
pub enum Verify {
    /// Insecure mode: the verifier must be the token's digest.
    Digest,
    /// Secure mode: a signature checked with `<dir>/<origin>.crt`.
    CertDir(PathBuf),
}

/// The identity a validated credential carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `name@`.
    pub user: String,
    /// `name@` of the primary group.
    pub group: String,
    pub groups: Vec<String>,
    pub machine: String,
}

/// Checks the shape of a decoded token: AUTH_SYS, bounded principal names ending in `@`.
pub fn sys_of(token: &Token) -> Result<Sys, AuthError> {
    if token.flavor != Flavor::AuthSys as i32 {
        return Err(AuthError::Malformed(format!(
            "token flavor {} is not AUTH_SYS (1)",
            token.flavor
        )));
    }
    let sys = Sys::decode(token.data.as_slice())
        .map_err(|e| AuthError::Malformed(format!("AUTH_SYS token does not decode: {e}")))?;
    let name_ok = |n: &str| n.len() > 1 && n.len() <= MAX_NAME_LEN && n.ends_with('@');
    if !name_ok(&sys.user) {
        return Err(AuthError::Malformed(format!(
            "token user {:?} is not a principal (`name@`, at most {MAX_NAME_LEN} bytes)",
            sys.user
        )));
    }
    if !name_ok(&sys.group) {
        return Err(AuthError::Malformed(format!(
            "token group {:?} is not a principal (`name@`, at most {MAX_NAME_LEN} bytes)",
            sys.group
        )));
    }
    if sys.groups.len() > MAX_GROUPS {
        return Err(AuthError::Malformed(format!(
            "token names {} groups (at most {MAX_GROUPS})",
            sys.groups.len()
        )));
    }
    if let Some(g) = sys.groups.iter().find(|g| !name_ok(g)) {
        return Err(AuthError::Malformed(format!(
            "token group {g:?} is not a principal (`name@`)"
        )));
    }
    if sys.machinename.len() > MAX_NAME_LEN {
        return Err(AuthError::Malformed(format!(
            "token machine name is {} bytes (at most {MAX_NAME_LEN})",
            sys.machinename.len()
        )));
    }
    Ok(sys)
}

/// Decodes and validates an encoded credential.
pub fn validate_bytes(data: &[u8], how: &Verify) -> Result<(Token, Identity), AuthError> {
    if data.len() > MAX_CREDENTIAL_BYTES {
        return Err(AuthError::Malformed(format!(
            "credential is {} bytes (at most {MAX_CREDENTIAL_BYTES})",
            data.len()
        )));
    }
    let cred = Credential::decode(data)
        .map_err(|e| AuthError::Malformed(format!("credential does not decode: {e}")))?;
    validate(&cred, how)
}

/// Validates a credential: shape, then verifier; the token and the identity it carries.
pub fn validate(cred: &Credential, how: &Verify) -> Result<(Token, Identity), AuthError> {
    let token = cred
        .token
        .as_ref()
        .ok_or_else(|| AuthError::Malformed("credential has no token".into()))?;
    let verifier = cred
        .verifier
        .as_ref()
        .ok_or_else(|| AuthError::Malformed("credential has no verifier".into()))?;
    let sys = sys_of(token)?;
    let data = token.encode_to_vec();
    match how {
        Verify::Digest => {
            let want = ring::digest::digest(&ring::digest::SHA512, &data);
            if verifier.data != want.as_ref() {
                return Err(AuthError::BadSignature(
                    "the credential's verifier is not its token's SHA-512 digest".into(),
                ));
            }
        }
        Verify::CertDir(dir) => {
            let origin = &cred.origin;
            if origin.is_empty()
                || origin.len() > 64
                || !origin
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(AuthError::Malformed(format!(
                    "credential origin {origin:?} is not a certificate name"
                )));
            }
            let path = dir.join(format!("{origin}.crt"));
            let pem = std::fs::read(&path).map_err(|e| {
                AuthError::NoCert(format!(
                    "no certificate for credential origin {origin:?}: {}: {e} (put the \
                     agent's certificate in client_cert_dir)",
                    path.display()
                ))
            })?;
            verify_with_cert(&pem, &data, &verifier.data).map_err(|e| match e {
                AuthError::BadSignature(m) => {
                    AuthError::BadSignature(format!("{m} (checked with {})", path.display()))
                }
                other => other,
            })?;
        }
    }
    Ok((
        token.clone(),
        Identity {
            user: sys.user,
            group: sys.group,
            groups: sys.groups,
            machine: sys.machinename,
        },
    ))
}

/// Checks `sig` over `data` with the public key of the PEM certificate `pem`.
pub fn verify_with_cert(pem: &[u8], data: &[u8], sig: &[u8]) -> Result<(), AuthError> {
    use x509_parser::prelude::*;
    let blocks = pem_blocks(pem);
    let block = blocks
        .iter()
        .find(|b| b.label == "CERTIFICATE")
        .ok_or_else(|| AuthError::BadCert("no CERTIFICATE block".into()))?;
    let (_, cert) = X509Certificate::from_der(&block.contents)
        .map_err(|e| AuthError::BadCert(format!("certificate does not parse: {e}")))?;
    let spki = cert.public_key();
    let key = spki.subject_public_key.data.as_ref();
    let alg = spki.algorithm.algorithm.to_id_string();
    let bad = || AuthError::BadSignature("the credential's signature does not verify".into());
    match alg.as_str() {
        // rsaEncryption: RSA-PSS with SHA-512, the salt length read from the signature (DAOS's
        // Go agent signs with the longest salt the key allows, ours with the hash's length).
        "1.2.840.113549.1.1.1" => verify_rsa_pss(key, data, sig).map_err(|_| bad()),
        // id-ecPublicKey (P-256 only)
        "1.2.840.10045.2.1" => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, key)
                .verify(data, sig)
                .map_err(|_| bad())
        }
        other => Err(AuthError::BadCert(format!(
            "certificate key algorithm {other} is not supported (RSA or ECDSA P-256)"
        ))),
    }
}

/// RSA-PSS/SHA-512 verification of `sig` over `data` with the PKCS#1 public key `key`, any
/// salt length (RFC 8017 9.1.2 recovers it).
fn verify_rsa_pss(key: &[u8], data: &[u8], sig: &[u8]) -> Result<(), ()> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::signature::Verifier as _;
    let key = rsa::PublicKey::from_pkcs1_der(key).map_err(|_| ())?;
    // ring's bounds for RSA keys: 2048 to 8192 bits.
    let bits = rsa::traits::PublicKeyParts::n(&key).bit_width();
    if !(2048..=8192).contains(&bits) {
        return Err(());
    }
    let sig = rsa::pss::Signature::try_from(sig).map_err(|_| ())?;
    rsa::pss::VerifyingKey::<rsa::sha2::Sha512>::new_with_auto_salt_len(key)
        .verify(data, &sig)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names() -> Names {
        Names {
            user: "alice".into(),
            group: "users".into(),
            groups: vec!["readers".into()],
        }
    }

    /// A certificate directory with `agent.crt` and the agent's signer.
    fn agent_keys(dir: &Path) -> Signer {
        let ck = rcgen::generate_simple_self_signed(vec!["agent".into()]).expect("cert");
        std::fs::write(dir.join("agent.crt"), ck.cert.pem()).expect("write");
        Signer::from_pem(ck.signing_key.serialize_pem().as_bytes()).expect("key")
    }

    #[test]
    fn ecdsa_signed_credentials_validate_and_tampering_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = agent_keys(dir.path());
        assert!(matches!(signer, Signer::Ecdsa(_)));
        let how = Verify::CertDir(dir.path().into());
        let cred = credential(&names(), "node-1", &signer).expect("sign");
        let (_, id) = validate(&cred, &how).expect("valid");
        assert_eq!(id.user, "alice@");
        assert_eq!(id.group, "users@");
        assert_eq!(id.groups, ["readers@"]);
        assert_eq!(id.machine, "node-1");
        // Same check through the encoded form.
        validate_bytes(&cred.encode_to_vec(), &how).expect("valid bytes");

        // Another user's token under this verifier.
        let mut forged = cred.clone();
        forged.token = Some(sys_token(
            &Names {
                user: "root".into(),
                ..names()
            },
            "node-1",
        ));
        let e = validate(&forged, &how).unwrap_err();
        assert_eq!(e.der(), crate::DER_NO_PERM, "{e}");
        assert!(e.to_string().contains("does not verify"), "{e}");

        // Signed by a key whose certificate is not the one in the directory.
        let other = tempfile::tempdir().expect("tmp");
        let stranger = agent_keys(other.path());
        let foreign = credential(&names(), "node-1", &stranger).expect("sign");
        assert_eq!(
            validate(&foreign, &how).unwrap_err().der(),
            crate::DER_NO_PERM
        );

        // An origin without a certificate, and one that is a path.
        let mut lost = cred.clone();
        lost.origin = "nobody".into();
        let e = validate(&lost, &how).unwrap_err();
        assert_eq!(e.der(), crate::DER_NO_CERT, "{e}");
        assert!(e.to_string().contains("nobody.crt"), "{e}");
        lost.origin = "../agent".into();
        assert_eq!(validate(&lost, &how).unwrap_err().der(), crate::DER_INVAL);
    }

    #[test]
    fn insecure_credentials_carry_the_digest() {
        let cred = credential(&names(), "m", &Signer::Digest).expect("digest");
        assert_eq!(cred.verifier.as_ref().map(|v| v.data.len()), Some(64));
        validate(&cred, &Verify::Digest).expect("valid");
        let mut bad = cred.clone();
        if let Some(v) = bad.verifier.as_mut() {
            v.data[0] ^= 1;
        }
        assert_eq!(
            validate(&bad, &Verify::Digest).unwrap_err().der(),
            crate::DER_NO_PERM
        );
        // A digest is no signature.
        let dir = tempfile::tempdir().expect("tmp");
        let _ = agent_keys(dir.path());
        assert_eq!(
            validate(&cred, &Verify::CertDir(dir.path().into()))
                .unwrap_err()
                .der(),
            crate::DER_NO_PERM
        );
    }

    #[test]
    fn rsa_keys_sign_with_rsa_pss_sha512() {
        // DAOS's certificates are RSA (utils/certs/gen_certificates.sh); ring cannot make RSA
        // keys, so openssl does when the machine has it.
        let dir = tempfile::tempdir().expect("tmp");
        let (key, crt) = (dir.path().join("agent.key"), dir.path().join("agent.crt"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:3072",
                "-nodes",
                "-subj",
                "/CN=agent",
                "-days",
                "1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output();
        match made {
            Ok(o) if o.status.success() => {}
            _ => {
                eprintln!("SKIPPED rsa_keys_sign_with_rsa_pss_sha512: openssl is not installed");
                return;
            }
        }
        let signer = Signer::from_key_file(&key).expect("rsa key");
        assert!(matches!(signer, Signer::Rsa(_)));
        let cred = credential(&names(), "m", &signer).expect("sign");
        assert_eq!(cred.verifier.as_ref().map(|v| v.data.len()), Some(384));
        validate(&cred, &Verify::CertDir(dir.path().into())).expect("valid");

        // DAOS's Go agent signs with the longest salt the key allows (rsa.SignPSS with nil
        // options); such a signature verifies too, and a changed byte of the data does not.
        let data = dir.path().join("data");
        std::fs::write(&data, b"a token as DAOS's agent signs it").expect("write");
        let sig = dir.path().join("sig");
        let signed = std::process::Command::new("openssl")
            .args(["dgst", "-sha512", "-sigopt", "rsa_padding_mode:pss"])
            .args(["-sigopt", "rsa_pss_saltlen:max", "-sign"])
            .arg(&key)
            .arg("-out")
            .arg(&sig)
            .arg(&data)
            .output()
            .expect("openssl");
        assert!(signed.status.success(), "{signed:?}");
        let (pem, sig) = (
            std::fs::read(&crt).expect("crt"),
            std::fs::read(&sig).expect("sig"),
        );
        verify_with_cert(&pem, b"a token as DAOS's agent signs it", &sig).expect("max salt");
        let err = verify_with_cert(&pem, b"a token as DAOS's agent signs iT", &sig).unwrap_err();
        assert_eq!(err.der(), crate::DER_NO_PERM, "{err}");
        let mut bent = sig.clone();
        bent[7] ^= 1;
        verify_with_cert(&pem, b"a token as DAOS's agent signs it", &bent).unwrap_err();
    }

    #[test]
    fn bad_shapes_are_refused() {
        let how = Verify::Digest;
        let with = |sys: Sys| {
            let token = Token {
                flavor: Flavor::AuthSys as i32,
                data: sys.encode_to_vec(),
            };
            let v = Signer::Digest.sign(&token.encode_to_vec()).expect("digest");
            Credential {
                token: Some(token),
                verifier: Some(Token { flavor: 1, data: v }),
                origin: "agent".into(),
            }
        };
        let good = Sys {
            user: "a@".into(),
            group: "g@".into(),
            ..Default::default()
        };
        validate(&with(good.clone()), &how).expect("good");
        for (sys, want) in [
            (
                Sys {
                    user: "a".into(),
                    ..good.clone()
                },
                "not a principal",
            ),
            (
                Sys {
                    groups: vec!["x".into()],
                    ..good.clone()
                },
                "not a principal",
            ),
            (
                Sys {
                    groups: vec!["x@".into(); MAX_GROUPS + 1],
                    ..good.clone()
                },
                "groups",
            ),
        ] {
            let e = validate(&with(sys), &how).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(e.der(), crate::DER_INVAL);
        }
        let mut none = with(good);
        if let Some(t) = none.token.as_mut() {
            t.flavor = 0;
        }
        assert!(
            validate(&none, &how)
                .unwrap_err()
                .to_string()
                .contains("not AUTH_SYS")
        );
        none.token = None;
        assert!(
            validate(&none, &how)
                .unwrap_err()
                .to_string()
                .contains("no token")
        );
        assert!(validate_bytes(&[0xff; 8], &how).is_err());
        assert!(validate_bytes(&vec![0; MAX_CREDENTIAL_BYTES + 1], &how).is_err());
    }

    proptest! {
        /// Any bytes: an answer, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = validate_bytes(&data, &Verify::Digest);
        }
    }
}
