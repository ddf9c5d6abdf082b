//! Version interoperability as DAOS's control plane does it: every management-API call carries
//! the caller's component and version in gRPC metadata (`x-daos-component`,
//! `x-daos-version`), and the server checks them against its own before serving.
//!
//! daos-rs speaks the DAOS wire format of [`DAOS_VERSION`] and says so in these headers, so
//! DAOS's own tools and ours are judged by DAOS's rules ([`check`]): equal versions pass; a
//! server and an agent may be up to two minor releases apart; nothing before 2.0.0 talks to
//! 2.0.0 or later; otherwise major and minor must match.

use std::fmt;

/// The DAOS release whose management-API wire format this build speaks.
pub const DAOS_VERSION: &str = "2.6.0";
/// Header naming the caller's component.
pub const COMPONENT_HEADER: &str = "x-daos-component";
/// Header carrying the caller's version.
pub const VERSION_HEADER: &str = "x-daos-version";
/// Most minor releases a server and an agent may be apart.
pub const MAX_MINOR_DELTA: u32 = 2;

/// A component and its version, e.g. `admin:2.6.1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub component: String,
    pub version: Version,
}

impl fmt::Display for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.component, self.version)
    }
}

/// `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Version {
    /// Parses `2.6.1` (a leading `v` and a suffix after `-` or `~` are ignored, as DAOS does).
    pub fn parse(s: &str) -> Option<Version> {
        let core = s
            .trim()
            .trim_start_matches('v')
            .split(['-', '~', '+'])
            .next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// This build's DAOS wire version.
    pub fn ours() -> Version {
        Version::parse(DAOS_VERSION).unwrap_or(Version {
            major: 2,
            minor: 6,
            patch: 0,
        })
    }
}

/// Whether `other` may talk to `this` (the server), by DAOS's rules; `Err` names the rule.
pub fn check(this: &Versioned, other: &Versioned) -> Result<(), &'static str> {
    let (a, b) = (this.version, other.version);
    if a == b {
        return Ok(());
    }
    if this.component == "server" && other.component == "agent" {
        let within = a.major == b.major && a.minor.abs_diff(b.minor) <= MAX_MINOR_DELTA;
        return if within {
            Ok(())
        } else {
            Err("server and agent must be within 2 minor versions")
        };
    }
    let v2 = Version {
        major: 2,
        minor: 0,
        patch: 0,
    };
    if (a >= v2) != (b >= v2) {
        return Err("no backward compatibility prior to 2.0.0");
    }
    if a.major != b.major || a.minor != b.minor {
        return Err("standard DAOS compatibility");
    }
    Ok(())
}

/// DAOS's refusal of incompatible components.
pub fn incompatible(this: &Versioned, other: &Versioned, rule: &str) -> String {
    format!(
        "components {this} and {other} are not compatible ({rule}); retry the request with compatible components"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vc(c: &str, v: &str) -> Versioned {
        Versioned {
            component: c.into(),
            version: Version::parse(v).expect("version"),
        }
    }

    #[test]
    fn daos_rules() {
        let server = vc("server", "2.6.0");
        assert!(check(&server, &vc("admin", "2.6.0")).is_ok());
        assert!(
            check(&server, &vc("admin", "2.6.5")).is_ok(),
            "patch releases"
        );
        assert!(check(&server, &vc("admin", "2.4.1")).is_err());
        assert!(
            check(&server, &vc("agent", "2.4.1")).is_ok(),
            "agents: 2 minors"
        );
        assert!(check(&server, &vc("agent", "2.8.0")).is_ok());
        assert!(check(&server, &vc("agent", "2.2.0")).is_err());
        assert!(check(&server, &vc("admin", "1.2.0")).is_err());
        assert_eq!(Version::parse("v2.6.1-rc3"), Version::parse("2.6.1"));
        assert_eq!(Version::parse("nonsense"), None);
        let msg = incompatible(
            &server,
            &vc("admin", "2.2.0"),
            "standard DAOS compatibility",
        );
        assert!(msg.starts_with("components server:2.6.0 and admin:2.2.0 are not compatible"));
    }
}
