//! DAOS access control lists: entries in DAOS's short form `TYPE:FLAGS:PRINCIPAL:PERMS`
//! (`A::OWNER@:rw`, `A:G:GROUP@:r`, `A::EVERYONE@:r`, `A::alice@:rw`, `A:G:readers@:r`), the
//! owner user and group of a pool or container, and the permissions a principal gets.

use crate::AuthError;
use crate::cred::Identity;

/// DAOS's permission bits (the letters of an entry's last field).
pub mod perm {
    pub const READ: u16 = 1 << 0; // r
    pub const WRITE: u16 = 1 << 1; // w
    pub const CREATE_CONT: u16 = 1 << 2; // c
    pub const DEL_CONT: u16 = 1 << 3; // d
    pub const GET_PROP: u16 = 1 << 4; // t
    pub const SET_PROP: u16 = 1 << 5; // T
    pub const GET_ACL: u16 = 1 << 6; // a
    pub const SET_ACL: u16 = 1 << 7; // A
    pub const SET_OWNER: u16 = 1 << 8; // o
}

const LETTERS: [(char, u16); 9] = [
    ('r', perm::READ),
    ('w', perm::WRITE),
    ('c', perm::CREATE_CONT),
    ('d', perm::DEL_CONT),
    ('t', perm::GET_PROP),
    ('T', perm::SET_PROP),
    ('a', perm::GET_ACL),
    ('A', perm::SET_ACL),
    ('o', perm::SET_OWNER),
];

/// What an ACL protects: the letters allowed differ (DAOS: pools have no `o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Pool,
    Container,
}

impl Object {
    fn allowed(self) -> u16 {
        match self {
            // Every letter but `o`.
            Object::Pool => 0xff,
            Object::Container => {
                perm::READ
                    | perm::WRITE
                    | perm::DEL_CONT
                    | perm::GET_PROP
                    | perm::SET_PROP
                    | perm::GET_ACL
                    | perm::SET_ACL
                    | perm::SET_OWNER
            }
        }
    }

    fn letters(self) -> String {
        LETTERS
            .iter()
            .filter(|(_, b)| self.allowed() & b != 0)
            .map(|(c, _)| *c)
            .collect()
    }
}

/// Whom an entry is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    Owner,
    User(String),
    OwnerGroup,
    Group(String),
    Everyone,
}

impl Principal {
    /// The principal as an entry names it (`OWNER@`, `alice@`, ...), and whether it needs the
    /// group flag.
    fn text(&self) -> (String, bool) {
        match self {
            Principal::Owner => ("OWNER@".into(), false),
            Principal::User(n) => (format!("{n}@"), false),
            Principal::OwnerGroup => ("GROUP@".into(), true),
            Principal::Group(n) => (format!("{n}@"), true),
            Principal::Everyone => ("EVERYONE@".into(), false),
        }
    }

    /// Parses `dmg pool delete-acl -p` principals: `OWNER@`, `GROUP@`, `EVERYONE@`,
    /// `u:name@`, `g:name@` (DAOS's forms).
    pub fn parse(text: &str) -> Result<Principal, AuthError> {
        let bad = || {
            AuthError::Acl(format!(
                "principal {text:?} is not OWNER@, GROUP@, EVERYONE@, u:name@ or g:name@"
            ))
        };
        match text {
            "OWNER@" => return Ok(Principal::Owner),
            "GROUP@" => return Ok(Principal::OwnerGroup),
            "EVERYONE@" => return Ok(Principal::Everyone),
            _ => {}
        }
        let (kind, name) = text.split_once(':').ok_or_else(bad)?;
        let name = name.strip_suffix('@').ok_or_else(bad)?;
        check_name(name).map_err(|_| bad())?;
        match kind {
            "u" => Ok(Principal::User(name.into())),
            "g" => Ok(Principal::Group(name.into())),
            _ => Err(bad()),
        }
    }
}

fn check_name(name: &str) -> Result<(), AuthError> {
    if name.is_empty()
        || name.len() > 255
        || name.contains(['@', ':', ' ', '\t', '\n'])
        || name.chars().any(char::is_control)
    {
        return Err(AuthError::Acl(format!(
            "{name:?} is not a user or group name"
        )));
    }
    Ok(())
}

/// One allow entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    pub principal: Principal,
    pub perms: u16,
}

impl Ace {
    /// Parses an entry of DAOS's short form for an `object`'s ACL.
    pub fn parse(text: &str, object: Object) -> Result<Ace, AuthError> {
        let text = text.trim();
        let fields: Vec<&str> = text.split(':').collect();
        let bad = |why: String| AuthError::Acl(format!("ACE {text:?}: {why}"));
        if fields.len() != 4 {
            return Err(bad(
                "expected TYPE:FLAGS:PRINCIPAL:PERMISSIONS, e.g. A::OWNER@:rw or A:G:GROUP@:r"
                    .into(),
            ));
        }
        let (kind, flags, who, letters) = (fields[0], fields[1], fields[2], fields[3]);
        match kind {
            "A" => {}
            "L" | "U" => {
                return Err(bad(format!(
                    "type {kind} (audit/alarm) is not supported; use A (allow)"
                )));
            }
            _ => return Err(bad(format!("type {kind:?} is not A (allow)"))),
        }
        let mut group = false;
        for f in flags.chars() {
            match f {
                'G' => group = true,
                'S' | 'F' | 'P' => {
                    return Err(bad(format!(
                        "flag {f} is for audit/alarm entries; only G (group) applies to A"
                    )));
                }
                _ => return Err(bad(format!("flag {f:?} is not G"))),
            }
        }
        let principal = match who {
            "OWNER@" | "EVERYONE@" if group => {
                return Err(bad(format!("{who} takes no G flag")));
            }
            "GROUP@" if !group => {
                return Err(bad("GROUP@ needs the G flag (A:G:GROUP@:..)".into()));
            }
            "OWNER@" => Principal::Owner,
            "EVERYONE@" => Principal::Everyone,
            "GROUP@" => Principal::OwnerGroup,
            name => {
                let n = name
                    .strip_suffix('@')
                    .ok_or_else(|| bad(format!("principal {name:?} must end in @")))?;
                check_name(n).map_err(|e| bad(e.to_string()))?;
                if group {
                    Principal::Group(n.into())
                } else {
                    Principal::User(n.into())
                }
            }
        };
        let mut perms = 0;
        for c in letters.chars() {
            let bit = LETTERS
                .iter()
                .find(|(l, _)| *l == c)
                .map(|(_, b)| *b)
                .filter(|b| object.allowed() & b != 0)
                .ok_or_else(|| {
                    bad(format!(
                        "permission {c:?} is not one of {} for a {}",
                        object.letters(),
                        match object {
                            Object::Pool => "pool",
                            Object::Container => "container",
                        }
                    ))
                })?;
            perms |= bit;
        }
        // No letters: DAOS's way to deny a user everything.
        Ok(Ace { principal, perms })
    }
}

impl std::fmt::Display for Ace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (who, group) = self.principal.text();
        let letters: String = LETTERS
            .iter()
            .filter(|(_, b)| self.perms & b != 0)
            .map(|(c, _)| *c)
            .collect();
        write!(f, "A:{}:{who}:{letters}", if group { "G" } else { "" })
    }
}

/// An object's owner and its entries (at most one per principal, in DAOS's order: owner,
/// users, owner group, groups, everyone).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Acl {
    pub entries: Vec<Ace>,
}

impl Acl {
    /// Parses entries (an ACL file's lines: blanks and `#` comments skipped); a principal
    /// named twice is an error.
    pub fn parse<'a>(
        lines: impl IntoIterator<Item = &'a str>,
        object: Object,
    ) -> Result<Acl, AuthError> {
        let mut acl = Acl::default();
        for line in lines {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let ace = Ace::parse(l, object)?;
            if acl.entries.iter().any(|e| e.principal == ace.principal) {
                return Err(AuthError::Acl(format!(
                    "ACE {l:?}: its principal has an entry already (one entry per principal)"
                )));
            }
            acl.entries.push(ace);
        }
        acl.entries.sort_by_key(|e| e.principal.binary_type());
        Ok(acl)
    }

    /// An object's ACL as stored: its entries, or DAOS's default for the object when none
    /// were ever set.
    pub fn stored(entries: &[String], object: Object) -> Result<Acl, AuthError> {
        if entries.is_empty() {
            return Ok(match object {
                Object::Pool => Acl::default_pool(),
                Object::Container => Acl::default_container(),
            });
        }
        Acl::parse(entries.iter().map(String::as_str), object)
    }

    /// DAOS's default pool ACL: the owner and the owner group may connect read-write.
    pub fn default_pool() -> Acl {
        Acl {
            entries: vec![
                Ace {
                    principal: Principal::Owner,
                    perms: perm::READ | perm::WRITE,
                },
                Ace {
                    principal: Principal::OwnerGroup,
                    perms: perm::READ | perm::WRITE,
                },
            ],
        }
    }

    /// DAOS's default container ACL.
    pub fn default_container() -> Acl {
        Acl {
            entries: vec![
                Ace {
                    principal: Principal::Owner,
                    perms: Object::Container.allowed(),
                },
                Ace {
                    principal: Principal::OwnerGroup,
                    perms: perm::READ | perm::WRITE | perm::GET_PROP | perm::SET_PROP,
                },
            ],
        }
    }

    /// The entries as DAOS's short strings.
    pub fn strings(&self) -> Vec<String> {
        self.entries.iter().map(Ace::to_string).collect()
    }

    /// Adds or replaces entries (`update-acl`).
    pub fn update(&mut self, other: &Acl) {
        for e in &other.entries {
            match self.entries.iter_mut().find(|x| x.principal == e.principal) {
                Some(x) => x.perms = e.perms,
                None => self.entries.push(e.clone()),
            }
        }
        self.entries.sort_by_key(|e| e.principal.binary_type());
    }

    /// Removes the entry of `p` (`delete-acl`); false when there was none.
    pub fn delete(&mut self, p: &Principal) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.principal != *p);
        self.entries.len() != before
    }

    fn of(&self, p: &Principal) -> Option<u16> {
        self.entries
            .iter()
            .find(|e| e.principal == *p)
            .map(|e| e.perms)
    }

    /// The permissions `who` gets on an object owned by `owner` / `owner_group` (all
    /// `name@`), as DAOS decides: the owner's entry for the owner; else a named user's entry;
    /// else the union of the entries of every group the caller is in (owner group and named
    /// groups), if any matched; else everyone's; else none.
    pub fn perms(&self, who: &Identity, owner: &str, owner_group: &str) -> u16 {
        if who.user == owner
            && let Some(p) = self.of(&Principal::Owner)
        {
            return p;
        }
        let bare = |n: &str| n.strip_suffix('@').unwrap_or(n).to_string();
        if let Some(p) = self.of(&Principal::User(bare(&who.user))) {
            return p;
        }
        let mut found = false;
        let mut union = 0;
        for g in std::iter::once(&who.group).chain(&who.groups) {
            if g == owner_group
                && let Some(p) = self.of(&Principal::OwnerGroup)
            {
                found = true;
                union |= p;
            }
            if let Some(p) = self.of(&Principal::Group(bare(g))) {
                found = true;
                union |= p;
            }
        }
        if found {
            return union;
        }
        self.of(&Principal::Everyone).unwrap_or(0)
    }
}

/// `struct daos_ace` without its principal: access types u8, principal type u8, principal
/// length u16, flags u16, reserved u16, allow / audit / alarm permissions u64 each.
const ACE_HEAD: usize = 32;
/// `struct daos_acl` without its entries: version u16, reserved u16, entries' length u32.
const ACL_HEAD: usize = 8;
/// `DAOS_ACL_VERSION`.
const ACL_VERSION: u16 = 1;
/// `DAOS_ACL_MAX_ACE_LEN`: the most bytes of entries an ACL has.
const ACL_MAX_ACE_LEN: usize = 65536;
/// `DAOS_ACL_ACCESS_ALLOW`.
const ACCESS_ALLOW: u8 = 1;
/// `DAOS_ACL_FLAG_GROUP`.
const FLAG_GROUP: u16 = 1;

impl Principal {
    /// `enum daos_acl_principal_type`.
    fn binary_type(&self) -> u8 {
        match self {
            Principal::Owner => 0,
            Principal::User(_) => 1,
            Principal::OwnerGroup => 2,
            Principal::Group(_) => 3,
            Principal::Everyone => 4,
        }
    }
}

impl Acl {
    /// Decodes DAOS's binary ACL (`struct daos_acl`, as DAOS's clients send it in the ACL
    /// property and `daos_cont_update_acl`), allow entries only.
    pub fn from_binary(b: &[u8], object: Object) -> Result<Acl, AuthError> {
        let bad = |why: String| AuthError::Acl(format!("binary ACL: {why}"));
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        if b.len() < ACL_HEAD {
            return Err(bad(format!(
                "{} bytes, shorter than its 8-byte header",
                b.len()
            )));
        }
        let ver = u16_at(0);
        if ver != ACL_VERSION {
            return Err(bad(format!("version {ver}, expected {ACL_VERSION}")));
        }
        let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        if len > ACL_MAX_ACE_LEN || !len.is_multiple_of(8) || ACL_HEAD + len > b.len() {
            return Err(bad(format!(
                "entries' length {len} (a multiple of 8, at most {ACL_MAX_ACE_LEN}, within the {} bytes given)",
                b.len()
            )));
        }
        let end = ACL_HEAD + len;
        let mut at = ACL_HEAD;
        let mut entries: Vec<Ace> = Vec::new();
        while at < end {
            if at + ACE_HEAD > end {
                return Err(bad(format!("an entry at byte {at} runs past the end")));
            }
            let types = b[at];
            let kind = b[at + 1];
            let plen = usize::from(u16_at(at + 2));
            let flags = u16_at(at + 4);
            let allow = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap_or_default());
            if types != ACCESS_ALLOW {
                return Err(bad(format!(
                    "entry at byte {at}: access types {types:#x}; only allow entries are supported"
                )));
            }
            if !plen.is_multiple_of(8) || at + ACE_HEAD + plen > end {
                return Err(bad(format!("entry at byte {at}: principal length {plen}")));
            }
            let raw = &b[at + ACE_HEAD..at + ACE_HEAD + plen];
            let name = raw
                .iter()
                .position(|&c| c == 0)
                .map(|n| &raw[..n])
                .ok_or_else(|| bad(format!("entry at byte {at}: principal without its NUL")))
                .and_then(|n| {
                    std::str::from_utf8(n)
                        .map_err(|_| bad(format!("entry at byte {at}: principal is not UTF-8")))
                });
            let named = |group: bool| -> Result<Principal, AuthError> {
                let n = name?;
                let bare = n
                    .strip_suffix('@')
                    .ok_or_else(|| bad(format!("principal {n:?} does not end in @")))?;
                check_name(bare)?;
                Ok(if group {
                    Principal::Group(bare.into())
                } else {
                    Principal::User(bare.into())
                })
            };
            let principal = match kind {
                0 | 2 | 4 if plen != 0 => {
                    return Err(bad(format!(
                        "entry at byte {at}: principal type {kind} takes no name"
                    )));
                }
                0 => Principal::Owner,
                1 => named(false)?,
                2 => Principal::OwnerGroup,
                3 => named(true)?,
                4 => Principal::Everyone,
                k => return Err(bad(format!("entry at byte {at}: principal type {k}"))),
            };
            let group = matches!(principal, Principal::OwnerGroup | Principal::Group(_));
            if (flags & FLAG_GROUP != 0) != group || flags & !FLAG_GROUP != 0 {
                return Err(bad(format!(
                    "entry at byte {at}: flags {flags:#x} (the group flag, and only on group entries)"
                )));
            }
            let perms = u16::try_from(allow)
                .ok()
                .filter(|p| p & !object.allowed() == 0)
                .ok_or_else(|| {
                    bad(format!(
                        "entry at byte {at}: permissions {allow:#x} beyond {}",
                        object.letters()
                    ))
                })?;
            if entries.iter().any(|e| e.principal == principal) {
                return Err(bad(format!("{} has two entries", principal.text().0)));
            }
            entries.push(Ace { principal, perms });
            at += ACE_HEAD + plen;
        }
        entries.sort_by_key(|e| e.principal.binary_type());
        Ok(Acl { entries })
    }

    /// DAOS's binary form of the ACL (`struct daos_acl`), entries in DAOS's order.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut aces = Vec::new();
        for e in &self.entries {
            let name = match &e.principal {
                Principal::User(n) | Principal::Group(n) => format!("{n}@"),
                _ => String::new(),
            };
            let plen = if name.is_empty() {
                0
            } else {
                (name.len() + 1).div_ceil(8) * 8
            };
            let group = matches!(e.principal, Principal::OwnerGroup | Principal::Group(_));
            aces.push(ACCESS_ALLOW);
            aces.push(e.principal.binary_type());
            aces.extend_from_slice(&(plen as u16).to_le_bytes());
            aces.extend_from_slice(&(if group { FLAG_GROUP } else { 0 }).to_le_bytes());
            aces.extend_from_slice(&0u16.to_le_bytes());
            aces.extend_from_slice(&u64::from(e.perms).to_le_bytes());
            aces.extend_from_slice(&[0; 16]);
            let start = aces.len();
            aces.extend_from_slice(name.as_bytes());
            aces.resize(start + plen, 0);
        }
        let mut b = Vec::with_capacity(ACL_HEAD + aces.len());
        b.extend_from_slice(&ACL_VERSION.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(aces.len() as u32).to_le_bytes());
        b.extend_from_slice(&aces);
        b
    }
}

/// The entries of an ACL file: one per line, blank lines and `#` comments skipped (DAOS's
/// format); a file without entries is an error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("opening ACL file {}: {e}", path.display()))?;
    let entries: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if entries.is_empty() {
        return Err(format!("ACL file '{}' contains no entries", path.display()));
    }
    Ok(entries)
}

/// DAOS's long form of an entry (`get-acl --verbose`).
pub fn verbose_ace(ace: &str) -> String {
    let f: Vec<&str> = ace.split(':').collect();
    if f.len() != 4 {
        return "invalid ACE".into();
    }
    let kind = if f[0] == "A" { "Allow" } else { f[0] };
    let flags = if f[1] == "G" { "Group" } else { f[1] };
    let who = match f[2] {
        "OWNER@" => "Owner",
        "GROUP@" => "Owner-Group",
        "EVERYONE@" => "Everyone",
        other => other,
    };
    let perms: Vec<&str> = f[3]
        .chars()
        .map(|c| match c {
            'r' => "Read",
            'w' => "Write",
            'c' => "Create-Container",
            'd' => "Delete-Container",
            't' => "Get-Prop",
            'T' => "Set-Prop",
            'a' => "Get-ACL",
            'A' => "Set-ACL",
            'o' => "Set-Owner",
            _ => "?",
        })
        .collect();
    format!("{kind}:{flags}:{who}:{}", perms.join("/"))
}

/// DAOS's `dmg pool get-acl` text (with `verbose`, each entry's long form above it).
pub fn format(entries: &[String], owner: &str, owner_group: &str, verbose: bool) -> String {
    let mut s = String::new();
    if !owner.is_empty() {
        s.push_str(&format!("# Owner: {owner}\n"));
    }
    if !owner_group.is_empty() {
        s.push_str(&format!("# Owner Group: {owner_group}\n"));
    }
    s.push_str("# Entries:\n");
    if entries.is_empty() {
        s.push_str("#   None\n");
    }
    for e in entries {
        if verbose {
            s.push_str(&format!("# {}\n", verbose_ace(e)));
        }
        s.push_str(e);
        s.push('\n');
    }
    s
}

/// Whether pool permissions `p` allow a connection: read-only needs read (`r`, or `t` it
/// aliases); read-write also needs write (`w`, or `c`/`d` it aliases), as DAOS decides.
pub fn pool_connect_allowed(p: u16, read_write: bool) -> bool {
    let read = p & (perm::READ | perm::GET_PROP) != 0;
    let write = p & (perm::WRITE | perm::CREATE_CONT | perm::DEL_CONT) != 0;
    read && (!read_write || write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(h: &str) -> Vec<u8> {
        let h: String = h.split_whitespace().collect();
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// What DAOS v2.6.4's `daos_acl_from_strs` makes of five entries (libdaos_common, called
    /// from a C program outside the repository).
    #[test]
    fn the_binary_acl_is_daoss() {
        let daos = unhex(
            "01000000b80000000100000000000000fb010000000000000000000000000000
             0000000000000000010108000000000013000000000000000000000000000000
             0000000000000000626f62400000000001020000010000000300000000000000
             0000000000000000000000000000000001031000010000000100000000000000
             0000000000000000000000000000000072656164657273400000000000000000
             0104000000000000010000000000000000000000000000000000000000000000",
        );
        let acl = Acl::parse(
            [
                "A::EVERYONE@:r",
                "A:G:GROUP@:rw",
                "A::OWNER@:rwdtTaAo",
                "A::bob@:rwt",
                "A:G:readers@:r",
            ],
            Object::Container,
        )
        .unwrap();
        assert_eq!(acl.to_binary(), daos);
        assert_eq!(Acl::from_binary(&daos, Object::Container).unwrap(), acl);
        // Cut or corrupted anywhere: an error, never a panic.
        for n in 0..daos.len() {
            assert!(
                Acl::from_binary(&daos[..n], Object::Container).is_err(),
                "{n}"
            );
        }
        let mut audit = daos.clone();
        audit[8] = 2;
        let e = Acl::from_binary(&audit, Object::Container).unwrap_err();
        assert!(e.to_string().contains("only allow entries"), "{e}");
        let mut pool_only = daos.clone();
        pool_only[16] |= 1 << 2; // the owner's entry gets CREATE_CONT
        assert!(Acl::from_binary(&pool_only, Object::Container).is_err());
        assert!(
            Acl::from_binary(&pool_only, Object::Pool).is_err(),
            "o is no pool permission"
        );
        // An empty ACL.
        let empty = Acl::default();
        assert_eq!(empty.to_binary(), unhex("0100000000000000"));
        assert_eq!(
            Acl::from_binary(&empty.to_binary(), Object::Pool).unwrap(),
            empty
        );
    }

    fn who(user: &str, group: &str, groups: &[&str]) -> Identity {
        Identity {
            user: format!("{user}@"),
            group: format!("{group}@"),
            groups: groups.iter().map(|g| format!("{g}@")).collect(),
            machine: "m".into(),
        }
    }

    #[test]
    fn parses_and_prints_daos_short_form() {
        let acl = Acl::parse(
            [
                "# a comment",
                "A::EVERYONE@:r",
                "A:G:readers@:rt",
                "",
                "A::OWNER@:rwcdtTaA",
                "A::alice@:rw",
                "A:G:GROUP@:rw",
            ],
            Object::Pool,
        )
        .unwrap();
        assert_eq!(
            acl.strings(),
            [
                "A::OWNER@:rwcdtTaA",
                "A::alice@:rw",
                "A:G:GROUP@:rw",
                "A:G:readers@:rt",
                "A::EVERYONE@:r"
            ]
        );
        assert_eq!(
            Acl::default_pool().strings(),
            ["A::OWNER@:rw", "A:G:GROUP@:rw"]
        );
        assert_eq!(
            Acl::default_container().strings(),
            ["A::OWNER@:rwdtTaAo", "A:G:GROUP@:rwtT"]
        );
    }

    #[test]
    fn bad_entries_say_why() {
        let e = |t: &str, o| Ace::parse(t, o).unwrap_err().to_string();
        assert!(e("A::OWNER@", Object::Pool).contains("TYPE:FLAGS:PRINCIPAL"));
        assert!(e("X::OWNER@:r", Object::Pool).contains("not A"));
        assert!(e("L:S:OWNER@:r", Object::Pool).contains("audit"));
        assert!(e("A::GROUP@:r", Object::Pool).contains("needs the G flag"));
        assert!(e("A:G:OWNER@:r", Object::Pool).contains("takes no G"));
        assert!(e("A::bob:r", Object::Pool).contains("must end in @"));
        assert!(e("A::OWNER@:o", Object::Pool).contains("not one of rwcdtTaA for a pool"));
        assert!(e("A::OWNER@:c", Object::Container).contains("container"));
        // An entry without permissions denies (DAOS: `A::daos_user@:`).
        let deny = Ace::parse("A::bob@:", Object::Pool).expect("deny entry");
        assert_eq!((deny.perms, deny.to_string()), (0, "A::bob@:".to_string()));
        assert!(
            Acl::parse(["A::bob@:r", "A::bob@:w"], Object::Pool)
                .unwrap_err()
                .to_string()
                .contains("one entry per principal")
        );
    }

    #[test]
    fn permissions_follow_daos_precedence() {
        let acl = Acl::parse(
            [
                "A::OWNER@:rw",
                "A::bob@:r",
                "A:G:GROUP@:w",
                "A:G:readers@:r",
                "A::EVERYONE@:t",
            ],
            Object::Pool,
        )
        .unwrap();
        let rw = perm::READ | perm::WRITE;
        assert_eq!(acl.perms(&who("root", "root", &[]), "root@", "root@"), rw);
        // A named user entry beats group entries.
        assert_eq!(
            acl.perms(&who("bob", "root", &["readers"]), "root@", "root@"),
            perm::READ
        );
        // Groups add up.
        assert_eq!(
            acl.perms(&who("carol", "root", &["readers"]), "root@", "root@"),
            rw
        );
        assert_eq!(
            acl.perms(&who("dave", "staff", &[]), "root@", "root@"),
            perm::GET_PROP
        );
        let strict = Acl::parse(["A::OWNER@:rw"], Object::Pool).unwrap();
        assert_eq!(
            strict.perms(&who("dave", "staff", &[]), "root@", "root@"),
            0
        );
    }

    #[test]
    fn pool_connects_follow_daos_aliases() {
        use perm::*;
        assert!(pool_connect_allowed(READ, false));
        assert!(
            pool_connect_allowed(GET_PROP, false),
            "t is enough to connect"
        );
        assert!(!pool_connect_allowed(READ, true));
        assert!(
            pool_connect_allowed(GET_PROP | CREATE_CONT, true),
            "c counts as write"
        );
        assert!(!pool_connect_allowed(WRITE, true), "write-only is refused");
        assert!(!pool_connect_allowed(0, false));
    }

    #[test]
    fn update_and_delete() {
        let mut acl = Acl::default_pool();
        acl.update(&Acl::parse(["A::OWNER@:r", "A::EVERYONE@:r"], Object::Pool).unwrap());
        assert_eq!(
            acl.strings(),
            ["A::OWNER@:r", "A:G:GROUP@:rw", "A::EVERYONE@:r"]
        );
        assert!(acl.delete(&Principal::parse("EVERYONE@").unwrap()));
        assert!(!acl.delete(&Principal::parse("u:nobody@").unwrap()));
        assert!(Principal::parse("x:nobody@").is_err());
        assert_eq!(
            Principal::parse("g:readers@").unwrap(),
            Principal::Group("readers".into())
        );
        assert_eq!(
            format(&acl.strings(), "root@", "root@", false),
            "# Owner: root@\n# Owner Group: root@\n# Entries:\nA::OWNER@:r\nA:G:GROUP@:rw\n"
        );
        assert_eq!(format(&[], "", "", false), "# Entries:\n#   None\n");
        assert_eq!(
            format(&["A:G:GROUP@:rw".to_string()], "", "", true),
            "# Entries:\n# Allow:Group:Owner-Group:Read/Write\nA:G:GROUP@:rw\n"
        );
    }
}
