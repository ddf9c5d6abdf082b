#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test
//! Behaviour of the server config: both forms, every validation rule with its message and
//! position, CLI precedence, env/argv mapping, the embedded default, and no panics.

use std::path::{Path, PathBuf};

use daos_config::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn load(text: &str) -> Result<Loaded, ConfigErrors> {
    load_str(text, "test.yml", &Overrides::default())
}

fn errors(text: &str) -> ConfigErrors {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e,
    }
}

/// A valid modern config with two engines; tests break one thing at a time.
const BASE: &str = "\
name: daos_server
provider: ofi+tcp
mgmt_svc_replicas: [localhost]
engines:
- targets: 4
  nr_xs_helpers: 1
  fabric_iface: eth0
  fabric_iface_port: 31416
  log_file: /tmp/e0.log
  storage:
  - class: ram
    scm_mount: /mnt/daos0
    scm_size: 8
  - class: nvme
    bdev_list: [\"0000:81:00.0\"]
- targets: 4
  nr_xs_helpers: 1
  fabric_iface: eth1
  fabric_iface_port: 31416
  log_file: /tmp/e1.log
  storage:
  - class: ram
    scm_mount: /mnt/daos1
    scm_size: 8
  - class: nvme
    bdev_list: [\"0000:82:00.0\"]
";

fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE lacks {from:?}");
    BASE.replacen(from, to, 1)
}

/// Replaces the n-th (0-based) occurrence.
fn base_with_nth(from: &str, to: &str, n: usize) -> String {
    let mut out = String::new();
    let mut rest = BASE;
    for _ in 0..n {
        let i = rest.find(from).expect("occurrence");
        out.push_str(&rest[..i + from.len()]);
        rest = &rest[i + from.len()..];
    }
    let i = rest.find(from).expect("occurrence");
    out.push_str(&rest[..i]);
    out.push_str(to);
    out.push_str(&rest[i + from.len()..]);
    out
}

/// Asserts exactly one error, with this kind, path, line and message fragment; returns its line.
#[track_caller]
fn one_error(text: &str, kind: ErrorKind, path: &str, line: usize, fragment: &str) -> String {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got:\n{errs}");
    let e = &errs.errors[0];
    assert_eq!(e.kind, kind, "{errs}");
    assert_eq!(e.path, path, "{errs}");
    match &e.origin {
        Origin::File(m) => assert_eq!(m.line, line, "{errs}"),
        // A key missing from the top level has no position: line 0.
        Origin::Default => assert_eq!(line, 0, "{errs}"),
        other => panic!("expected a file position, got {other:?}: {errs}"),
    }
    assert!(
        e.message.contains(fragment),
        "message {:?} lacks {fragment:?}",
        e.message
    );
    assert!(!e.fix.is_empty(), "no fix in {errs}");
    errs.lines()[0].clone()
}

/// Asserts that some error has this kind, path, line and message fragment (others may follow
/// from it, e.g. an engine that no longer matches its peers).
#[track_caller]
fn some_error(text: &str, kind: ErrorKind, path: &str, line: usize, fragment: &str) {
    let errs = errors(text);
    let found = errs.errors.iter().any(|e| {
        e.kind == kind
            && e.path == path
            && matches!(e.origin, Origin::File(m) if m.line == line)
            && e.message.contains(fragment)
    });
    assert!(
        found,
        "no {kind:?} error at {path} line {line} with {fragment:?} in:\n{errs}"
    );
}

#[test]
fn base_is_valid() {
    let l = load(BASE).unwrap();
    assert_eq!(l.server.engines.len(), 2);
    assert_eq!(l.server.engines[1].provider, "ofi+tcp;ofi_rxm");
    assert_eq!(l.server.mgmt_svc_replicas, vec!["localhost:10001"]);
}

// ---- the example files ----

#[test]
fn every_example_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            load_file(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 3, "expected at least 3 examples, found {n}");
}

#[test]
fn local_example_is_ram_plus_file_on_loopback() {
    let l = load_file(
        &examples().join("daos_server_local.yml"),
        &Overrides::default(),
    )
    .unwrap();
    let e = &l.server.engines[0];
    assert_eq!(e.fabric_iface, "lo");
    assert_eq!(e.provider, "ofi+tcp;ofi_rxm");
    assert_eq!(e.storage[0].class, TierClass::Ram);
    assert_eq!(e.storage[1].class, TierClass::File);
    assert!(l.server.transport_config.allow_insecure);
}

#[test]
fn legacy_example_converts_to_tiers_with_notices() {
    let l = load_file(
        &examples().join("daos_server_legacy.yml"),
        &Overrides::default(),
    )
    .unwrap();
    let s = &l.server;
    assert_eq!(s.engines.len(), 2);
    assert_eq!(s.mgmt_svc_replicas, vec!["node-4:10001"]);
    let e1 = &s.engines[1];
    assert_eq!(e1.storage.len(), 2);
    assert_eq!(e1.storage[0].class, TierClass::Dcpm);
    assert_eq!(
        e1.storage[0].scm_mount.as_deref(),
        Some(Path::new("/mnt/daos1"))
    );
    assert_eq!(e1.storage[0].scm_list, vec!["/dev/pmem1"]);
    assert_eq!(e1.storage[1].class, TierClass::Nvme);
    assert_eq!(e1.storage[1].bdev_list, vec!["0000:83:00.0"]);
    let notices: Vec<String> = l.notices.iter().map(|n| n.to_string()).collect();
    let has = |s: &str| notices.iter().any(|n| n.contains(s));
    assert!(
        has("\"servers\" server config file parameter is deprecated"),
        "{notices:?}"
    );
    assert!(has("access_points is deprecated"), "{notices:?}");
    assert!(
        has("engine 0: Legacy storage configuration detected"),
        "{notices:?}"
    );
    assert!(
        has("engine 1: Legacy storage configuration detected"),
        "{notices:?}"
    );
}

#[test]
fn legacy_and_modern_forms_give_the_same_model() {
    let legacy = load_file(
        &examples().join("daos_server_legacy.yml"),
        &Overrides::default(),
    )
    .unwrap();
    // The normalized output is the modern form; reading it back gives the same model.
    let modern_text = legacy.server.to_yaml();
    assert!(
        modern_text.contains("engines:") && modern_text.contains("storage:"),
        "{modern_text}"
    );
    assert!(
        !modern_text.contains("servers:") && !modern_text.contains("scm_class"),
        "{modern_text}"
    );
    let modern = load(&modern_text).unwrap_or_else(|e| panic!("{e}\n{modern_text}"));
    assert_eq!(modern.server, legacy.server);
    assert!(
        modern
            .notices
            .iter()
            .all(|n| !n.message.contains("deprecated"))
    );
}

#[test]
fn normalized_yaml_and_json_round_trip_every_example() {
    for name in ["daos_server_local.yml", "daos_server_nvme.yml"] {
        let l = load_file(&examples().join(name), &Overrides::default()).unwrap();
        let again = load(&l.server.to_yaml()).unwrap();
        assert_eq!(again.server, l.server, "{name}");
        let json = l.server.to_json();
        assert_eq!(
            json["engines"][0]["storage"][0]["class"],
            l.server.engines[0].storage[0].class.as_str()
        );
    }
}

#[test]
fn defaults_are_daos_defaults() {
    let l = load("").unwrap();
    let s = &l.server;
    assert_eq!(s.name, "daos_server");
    assert_eq!(s.port, 10001);
    assert_eq!(s.socket_dir, Path::new("/var/run/daos_server"));
    assert_eq!(s.mgmt_svc_replicas, vec!["localhost:10001"]);
    assert_eq!(s.control_log_mask, "INFO");
    assert_eq!(s.core_dump_filter, 0x13);
    assert_eq!(s.system_ram_reserved, 64);
    assert_eq!(s.engine_auto_restart_min_delay, 300);
    assert!(!s.transport_config.allow_insecure);
    assert_eq!(
        s.transport_config.ca_cert,
        Path::new("/etc/daos/certs/daosCA.crt")
    );
    assert_eq!(
        s.transport_config.client_cert_dir,
        Path::new("/etc/daos/certs/clients")
    );
    assert!(s.engines.is_empty(), "no engines = discovery mode");
    let e = &load(BASE).unwrap().server.engines[0];
    assert_eq!(e.log_mask, "ERR");
    let d = load(&BASE.replace("  nr_xs_helpers: 1\n", "")).unwrap();
    assert_eq!(
        d.server.engines[0].nr_xs_helpers, 2,
        "DAOS's struct default"
    );
}

#[test]
fn engines_inherit_top_level_fabric_settings() {
    let text = BASE.replace("  fabric_iface_port: 31416\n", "").replace(
        "provider: ofi+tcp\n",
        "provider: ofi+tcp\nfabric_iface_port: 20000\ncrt_timeout: 60\n",
    );
    let l = load(&text).unwrap();
    for e in &l.server.engines {
        assert_eq!(e.fabric_iface_port, 20000);
        assert_eq!(e.crt_timeout, Some(60));
    }
}

// ---- parse-level errors ----

#[test]
fn unknown_keys_are_errors_with_suggestions() {
    let line = one_error(
        &base_with("  log_file: /tmp/e0.log\n", "  log_fiel: /tmp/e0.log\n"),
        ErrorKind::UnknownKey,
        "engines[0].log_fiel",
        9,
        "unknown key",
    );
    assert!(line.contains("did you mean `log_file`"), "{line}");
    let line = one_error(
        &format!("{BASE}telemetry: 9191\n"),
        ErrorKind::UnknownKey,
        "telemetry",
        27,
        "unknown key",
    );
    assert!(line.contains("telemetry_port"), "{line}");
    one_error(
        &base_with("    scm_size: 8\n", "    scm_size: 8\n    colour: red\n"),
        ErrorKind::UnknownKey,
        "engines[0].storage[0].colour",
        14,
        "unknown key",
    );
}

#[test]
fn wrong_types_are_errors() {
    one_error(
        &base_with("targets: 4", "targets: four"),
        ErrorKind::WrongType,
        "engines[0].targets",
        5,
        "whole number",
    );
    let line = one_error(
        &base_with("targets: 4", "targets: \"4\""),
        ErrorKind::WrongType,
        "engines[0].targets",
        5,
        "whole number",
    );
    assert!(line.contains("remove the quotes"), "{line}");
    one_error(
        &base_with("bdev_list: [\"0000:81:00.0\"]", "bdev_list: 0000:81:00.0"),
        ErrorKind::WrongType,
        "engines[0].storage[1].bdev_list",
        15,
        "expected a list",
    );
    one_error(
        &format!("{BASE}transport_config: [a]\n"),
        ErrorKind::WrongType,
        "transport_config",
        27,
        "expected a mapping",
    );
    one_error(
        &format!("{BASE}control_log_json: maybe\n"),
        ErrorKind::WrongType,
        "control_log_json",
        27,
        "true or false",
    );
    one_error(
        &format!("{BASE}port: 70000\n"),
        ErrorKind::BadValue,
        "port",
        27,
        "between 0 and 65535",
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let errs = errors("name: x\nengines: [\n");
    assert!(errs.has(ErrorKind::Syntax));
    assert!(errs.lines()[0].starts_with("test.yml:"), "{errs}");
    let errs = errors("port: 1\nport: 2\n");
    assert!(errs.lines()[0].contains("test.yml:2:1"), "{errs}");
}

#[test]
fn missing_required_keys() {
    one_error(
        &base_with(
            "- targets: 4\n  nr_xs_helpers: 1\n  fabric_iface: eth0",
            "- nr_xs_helpers: 1\n  fabric_iface: eth0",
        ),
        ErrorKind::MissingKey,
        "engines[0].targets",
        5,
        "required key `targets`",
    );
    one_error(
        &base_with("provider: ofi+tcp\n", ""),
        ErrorKind::MissingKey,
        "provider",
        0,
        "provider not specified in server configuration",
    );
    one_error(
        &base_with("  fabric_iface: eth0\n", ""),
        ErrorKind::MissingKey,
        "engines[0].fabric_iface",
        5,
        "fabric_iface is required",
    );
    one_error(
        &base_with_nth("  fabric_iface_port: 31416\n", "", 1),
        ErrorKind::MissingKey,
        "engines[1].fabric_iface_port",
        16,
        "not optional",
    );
    one_error(
        &base_with("    scm_mount: /mnt/daos0\n", ""),
        ErrorKind::MissingKey,
        "engines[0].storage[0].scm_mount",
        11,
        "scm_mount is required",
    );
    one_error(
        &base_with(
            "  - class: ram\n    scm_mount: /mnt/daos0",
            "  - scm_mount: /mnt/daos0",
        ),
        ErrorKind::MissingKey,
        "engines[0].storage[0].class",
        11,
        "`class`",
    );
}

// ---- validation rules, each with DAOS's message ----

#[test]
fn first_core_with_pinned_numa_node() {
    one_error(
        &base_with(
            "  nr_xs_helpers: 1\n",
            "  nr_xs_helpers: 1\n  first_core: 1\n  pinned_numa_node: 0\n",
        ),
        ErrorKind::Conflict,
        "engines[0].first_core",
        7,
        "cannot specify both pinned_numa_node and first_core",
    );
}

#[test]
fn duplicate_fabric_and_close_ports() {
    one_error(
        &base_with("fabric_iface: eth1", "fabric_iface: eth0"),
        ErrorKind::Duplicate,
        "engines[1].fabric_iface_port",
        19,
        "the fabric configuration in I/O Engine 1 is a duplicate of I/O Engine 0",
    );
    let text = base_with("fabric_iface: eth1", "fabric_iface: eth0")
        .replacen("31416", "31418", 2)
        .replacen("31418", "31416", 1);
    one_error(
        &text,
        ErrorKind::BadValue,
        "engines[1].fabric_iface_port",
        19,
        "at least 4 apart",
    );
}

#[test]
fn duplicate_log_file_scm_mount_scm_list() {
    one_error(
        &base_with("/tmp/e1.log", "/tmp/e0.log"),
        ErrorKind::Duplicate,
        "engines[1].log_file",
        20,
        "the log_file value in I/O Engine 1 is a duplicate of I/O Engine 0",
    );
    one_error(
        &base_with("/mnt/daos1", "/mnt/daos0"),
        ErrorKind::Duplicate,
        "engines[1].storage[0].scm_mount",
        23,
        "the scm_mount value in I/O Engine 1 is a duplicate of I/O Engine 0",
    );
    let dcpm = BASE
        .replace(
            "  - class: ram\n    scm_mount: /mnt/daos0\n    scm_size: 8",
            "  - class: dcpm\n    scm_mount: /mnt/daos0\n    scm_list: [/dev/pmem0]",
        )
        .replace(
            "  - class: ram\n    scm_mount: /mnt/daos1\n    scm_size: 8",
            "  - class: dcpm\n    scm_mount: /mnt/daos1\n    scm_list: [/dev/pmem0]",
        );
    one_error(
        &dcpm,
        ErrorKind::Duplicate,
        "engines[1].storage[0].scm_list[0]",
        24,
        "the scm_list value in I/O Engine 1 is a duplicate of I/O Engine 0",
    );
}

#[test]
fn overlapping_bdev_lists() {
    one_error(
        &base_with("0000:82:00.0", "0000:81:00.0"),
        ErrorKind::Duplicate,
        "engines[1].storage[1].bdev_list[0]",
        26,
        "the bdev_list value in engine 1 overlaps with entries in engine 0",
    );
}

#[test]
fn bad_pci_addresses() {
    let line = one_error(
        &base_with("0000:81:00.0", "0000:81:00"),
        ErrorKind::BadValue,
        "engines[0].storage[1].bdev_list[0]",
        15,
        "not a PCI address",
    );
    assert!(line.contains("= \"0000:81:00\""), "{line}");
    one_error(
        &format!("{BASE}bdev_exclude: [\"zz:00\"]\n"),
        ErrorKind::BadValue,
        "bdev_exclude[0]",
        27,
        "not a PCI address",
    );
    one_error(
        &format!("{BASE}bdev_exclude: [\"0000:82:00.0\"]\n"),
        ErrorKind::Conflict,
        "bdev_exclude[0]",
        27,
        "engine 1 lists it",
    );
}

#[test]
fn tier_zero_must_be_scm() {
    let text = base_with(
        "  - class: ram\n    scm_mount: /mnt/daos0\n    scm_size: 8\n  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]\n",
        "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]\n  - class: ram\n    scm_mount: /mnt/daos0\n    scm_size: 8\n",
    );
    one_error(
        &text,
        ErrorKind::BadValue,
        "engines[0].storage[0].class",
        11,
        "first storage tier is not scm",
    );
}

#[test]
fn scm_class_rules() {
    let dcpm_with_size = base_with(
        "  - class: ram\n    scm_mount: /mnt/daos0\n",
        "  - class: dcpm\n    scm_list: [/dev/pmem0]\n    scm_mount: /mnt/daos0\n",
    );
    some_error(
        &dcpm_with_size,
        ErrorKind::Conflict,
        "engines[0].storage[0].scm_size",
        14,
        "scm_size is only for class ram",
    );
    one_error(
        &base_with(
            "    scm_size: 8\n",
            "    scm_size: 8\n    scm_list: [/dev/pmem0]\n",
        ),
        ErrorKind::Conflict,
        "engines[0].storage[0].scm_list",
        14,
        "only for class dcpm",
    );
    one_error(
        &base_with("scm_size: 8", "scm_size: 2"),
        ErrorKind::BadValue,
        "engines[0].storage[0].scm_size",
        13,
        "minimum tmpfs size of 4 GiB",
    );
    let dcpm_no_list = base_with(
        "  - class: ram\n    scm_mount: /mnt/daos0\n    scm_size: 8\n",
        "  - class: dcpm\n    scm_mount: /mnt/daos0\n",
    );
    one_error(
        &dcpm_no_list,
        ErrorKind::MissingKey,
        "engines[0].storage[0].scm_list",
        11,
        "class dcpm needs scm_list",
    );
}

#[test]
fn bdev_class_rules() {
    one_error(
        &base_with(
            "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]",
            "  - class: file\n    bdev_list: [/tmp/b0]",
        ),
        ErrorKind::MissingKey,
        "engines[0].storage[1].bdev_size",
        14,
        "class file needs bdev_size",
    );
    some_error(
        &base_with(
            "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]",
            "  - class: kdev\n    bdev_list: []",
        ),
        ErrorKind::MissingKey,
        "engines[0].storage[1].bdev_list",
        15,
        "class kdev needs bdev_list",
    );
    some_error(
        &base_with(
            "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]",
            "  - class: malloc\n    bdev_size: 1",
        ),
        ErrorKind::MissingKey,
        "engines[0].storage[1].bdev_number",
        14,
        "bdev_number",
    );
    one_error(
        &base_with("class: nvme", "class: optane"),
        ErrorKind::BadValue,
        "engines[0].storage[1].class",
        14,
        "unknown storage class",
    );
    one_error(
        &base_with(
            "    bdev_list: [\"0000:81:00.0\"]\n",
            "    bdev_list: [\"0000:81:00.0\"]\n    scm_mount: /x\n",
        ),
        ErrorKind::Conflict,
        "engines[0].storage[1].scm_mount",
        16,
        "does not apply to a nvme tier",
    );
    let two_tiers = base_with(
        "    bdev_list: [\"0000:81:00.0\"]\n",
        "    bdev_list: [\"0000:81:00.0\"]\n  - class: nvme\n    bdev_list: [\"0000:81:00.1\"]\n",
    );
    one_error(
        &two_tiers,
        ErrorKind::BadValue,
        "engines[0].storage[2]",
        16,
        "bdev_roles",
    );
    let mixed = base_with(
        "    bdev_list: [\"0000:81:00.0\"]\n",
        "    bdev_list: [\"0000:81:00.0\"]\n  - class: file\n    bdev_list: [/tmp/f]\n    bdev_size: 1\n",
    );
    assert!(
        errors(&mixed)
            .errors
            .iter()
            .any(|e| e.message.contains("cannot mix real NVMe and emulated"))
    );
}

#[test]
fn md_on_ssd_roles() {
    let roles = "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]\n    bdev_roles: [wal]\n  - class: nvme\n    bdev_list: [\"0000:81:00.1\"]\n    bdev_roles: [meta, data]\n";
    let text = base_with(
        "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]\n",
        roles,
    )
    .replace(
        "  - class: nvme\n    bdev_list: [\"0000:82:00.0\"]\n",
        &roles.replace("81:", "82:"),
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs}");
    assert!(
        errs.errors[0]
            .message
            .contains("require control_metadata.path"),
        "{errs}"
    );
    let ok = format!("{text}control_metadata:\n  path: /var/daos/config\n");
    load(&ok).unwrap_or_else(|e| panic!("{e}"));
    let bad_role = ok.replace("[wal]", "[wall]");
    assert!(
        errors(&bad_role)
            .errors
            .iter()
            .any(|e| e.message.contains("unknown bdev role"))
    );
}

#[test]
fn replicas_must_be_odd_and_unique() {
    one_error(
        &base_with(
            "mgmt_svc_replicas: [localhost]",
            "mgmt_svc_replicas: [a, b]",
        ),
        ErrorKind::BadValue,
        "mgmt_svc_replicas",
        3,
        "must be odd, not 2",
    );
    one_error(
        &base_with(
            "mgmt_svc_replicas: [localhost]",
            "mgmt_svc_replicas: [a, b, a]",
        ),
        ErrorKind::Duplicate,
        "mgmt_svc_replicas[2]",
        3,
        "duplicate of mgmt_svc_replicas[0]",
    );
    one_error(
        &base_with(
            "mgmt_svc_replicas: [localhost]",
            "mgmt_svc_replicas: [\"a:x\"]",
        ),
        ErrorKind::BadValue,
        "mgmt_svc_replicas[0]",
        3,
        "host[:port]",
    );
    let both = base_with(
        "mgmt_svc_replicas: [localhost]",
        "mgmt_svc_replicas: [localhost]\naccess_points: [localhost]",
    );
    one_error(
        &both,
        ErrorKind::Conflict,
        "mgmt_svc_replicas",
        3,
        "cannot both be set",
    );
    let single = load(BASE).unwrap();
    assert!(
        single
            .notices
            .iter()
            .any(|n| n.message.contains("only one MS replica"))
    );
}

#[test]
fn system_name_limit() {
    one_error(
        &base_with("name: daos_server", "name: a_very_long_system_name"),
        ErrorKind::BadValue,
        "name",
        1,
        "1 to 15 characters",
    );
    load(&base_with("name: daos_server", "name: sixteen_chars_xx")).unwrap_err();
    load(&base_with("name: daos_server", "name: fifteen_chars")).unwrap();
}

#[test]
fn servers_and_engines_together_are_refused() {
    let text = format!("{BASE}servers:\n- targets: 1\n");
    let errs = errors(&text);
    assert!(errs.errors.iter().any(|e| e.kind == ErrorKind::Conflict && e.message.contains("`servers` and `engines`")), "{errs}");
}

#[test]
fn legacy_and_tier_keys_together_are_refused() {
    let text = base_with(
        "  log_file: /tmp/e0.log\n",
        "  log_file: /tmp/e0.log\n  scm_class: ram\n",
    );
    let errs = errors(&text);
    assert!(
        errs.errors
            .iter()
            .any(|e| e.kind == ErrorKind::Conflict && e.path == "engines[0].scm_class"),
        "{errs}"
    );
}

#[test]
fn other_top_level_rules() {
    one_error(
        &format!("{BASE}control_log_mask: LOUD\n"),
        ErrorKind::BadValue,
        "control_log_mask",
        27,
        "unknown control log level",
    );
    one_error(
        &format!("{BASE}system_ram_reserved: 0\n"),
        ErrorKind::BadValue,
        "system_ram_reserved",
        27,
        "must be > 0",
    );
    one_error(
        &format!("{BASE}fault_path: /a/b/c\n"),
        ErrorKind::BadValue,
        "fault_path",
        27,
        "1 or 2 levels",
    );
    one_error(
        &format!("{BASE}fault_path: /a\nfault_cb: /etc/daos/cb\n"),
        ErrorKind::Conflict,
        "fault_cb",
        28,
        "cannot both be set",
    );
    one_error(
        &format!("{BASE}disable_hugepages: true\n"),
        ErrorKind::Conflict,
        "disable_hugepages",
        27,
        "NVMe",
    );
    one_error(
        &format!("{BASE}enable_hotplug: true\ndisable_hotplug: true\n"),
        ErrorKind::Conflict,
        "disable_hotplug",
        28,
        "cannot both be set",
    );
    one_error(
        &base_with("provider: ofi+tcp", "provider: tcp"),
        ErrorKind::BadValue,
        "provider",
        2,
        "not a fabric provider",
    );
    one_error(
        &base_with("provider: ofi+tcp", "provider: ofi+tcp,ofi+cxi"),
        ErrorKind::BadValue,
        "provider",
        2,
        "multi-provider",
    );
    one_error(
        &format!("{BASE}socket_dir: relative/dir\n"),
        ErrorKind::BadValue,
        "socket_dir",
        27,
        "absolute",
    );
}

#[test]
fn other_engine_rules() {
    one_error(
        &base_with(
            "  log_file: /tmp/e0.log\n",
            "  log_file: /tmp/e0.log\n  log_mask: LOUD\n",
        ),
        ErrorKind::BadValue,
        "engines[0].log_mask",
        10,
        "not a valid log mask",
    );
    one_error(
        &base_with(
            "  log_file: /tmp/e0.log\n",
            "  log_file: /tmp/e0.log\n  env_vars: [NOEQUALS]\n",
        ),
        ErrorKind::BadValue,
        "engines[0].env_vars[0]",
        10,
        "KEY=VALUE",
    );
    one_error(
        &base_with_nth("targets: 4", "targets: 8", 1),
        ErrorKind::BadValue,
        "engines[1].targets",
        16,
        "same number of targets",
    );
    one_error(
        &base_with_nth("nr_xs_helpers: 1", "nr_xs_helpers: 2", 1),
        ErrorKind::BadValue,
        "engines[1].nr_xs_helpers",
        17,
        "same nr_xs_helpers",
    );
    some_error(
        &BASE.replace("targets: 4", "targets: 0"),
        ErrorKind::BadValue,
        "engines[0].targets",
        5,
        "must be > 0",
    );
    let uneven = base_with(
        "  nr_xs_helpers: 1\n",
        "  nr_xs_helpers: 1\n  pinned_numa_node: 0\n",
    );
    let uneven = uneven.replacen(
        "  nr_xs_helpers: 1\n  fabric_iface: eth1",
        "  nr_xs_helpers: 1\n  pinned_numa_node: 0\n  fabric_iface: eth1",
        1,
    );
    load(&uneven).expect("two engines on node 0 are balanced (one node)");
    let three = format!(
        "{}{}",
        uneven,
        &BASE[BASE
            .find("- targets: 4\n  nr_xs_helpers: 1\n  fabric_iface: eth1")
            .unwrap()..]
            .replace("eth1", "eth2")
            .replace("/tmp/e1.log", "/tmp/e2.log")
            .replace("/mnt/daos1", "/mnt/daos2")
            .replace("82:00", "83:00")
            .replace(
                "  nr_xs_helpers: 1\n",
                "  nr_xs_helpers: 1\n  pinned_numa_node: 1\n"
            )
    );
    let errs = errors(&three);
    assert!(
        errs.errors.iter().any(|e| e
            .message
            .contains("uneven distribution of engines across NUMA nodes")),
        "{errs}"
    );
    load(&format!("{three}allow_numa_imbalance: true\n")).unwrap();
}

// ---- all errors at once ----

#[test]
fn three_mistakes_are_all_reported_with_line_and_column() {
    let text = BASE
        .replace("name: daos_server", "name: this_name_is_too_long")
        .replace("  log_file: /tmp/e0.log\n", "  log_fiel: /tmp/e0.log\n")
        .replace("0000:82:00.0", "0000:82:0.0");
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs}");
    let lines = errs.lines();
    assert!(
        lines[0].starts_with("test.yml:1:7: name = \"this_name_is_too_long\":"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("test.yml:9:3: engines[0].log_fiel:"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2]
            .starts_with("test.yml:26:16: engines[1].storage[1].bdev_list[0] = \"0000:82:0.0\":"),
        "{}",
        lines[2]
    );
    assert!(errs.to_string().starts_with("test.yml has 3 errors:"));
}

#[test]
fn the_v1_guide_example_with_copy_paste_duplicates_reports_each() {
    // The v1.0 deployment guide's legacy example gives both servers the same scm_mount,
    // fabric port and log file; each duplicate is reported against servers[1].
    let text = std::fs::read_to_string(examples().join("daos_server_legacy.yml"))
        .unwrap()
        .replace("/mnt/daos1", "/mnt/daos0")
        .replace("fabric_iface: ib1", "fabric_iface: ib0")
        .replace("fabric_iface_port: 31316", "fabric_iface_port: 31416")
        .replace("/tmp/daos_engine_1.log", "/tmp/daos_engine_0.log");
    let errs = errors(&text);
    let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "servers[1].fabric_iface_port",
            "servers[1].log_file",
            "servers[1].scm_mount"
        ],
        "{errs}"
    );
    assert!(
        errs.errors
            .iter()
            .all(|e| matches!(e.origin, Origin::File(m) if m.line > 30))
    );
}

// ---- command-line overrides ----

#[test]
fn cli_overrides_take_precedence() {
    let o = Overrides {
        port: Some(12345),
        socket_dir: Some("/tmp/socks".into()),
        insecure: true,
        targets: Some(2),
        nr_xs_helpers: Some(0),
        first_core: Some(1),
        scm_mount: Some("/mnt/other".into()),
        modules: Some("vos,mgmt".into()),
        group: Some("sys2".into()),
    };
    let l = load_str(BASE, "t.yml", &o).unwrap();
    let s = &l.server;
    assert_eq!(s.port, 12345);
    assert_eq!(s.socket_dir, Path::new("/tmp/socks"));
    assert!(s.transport_config.allow_insecure);
    assert_eq!(s.name, "sys2");
    for e in &s.engines {
        assert_eq!((e.targets, e.nr_xs_helpers, e.first_core), (2, 0, Some(1)));
        assert_eq!(e.modules.as_deref(), Some("vos,mgmt"));
    }
    assert_eq!(s.engines[0].scm_mount(), Some(&PathBuf::from("/mnt/other")));
    assert_eq!(
        s.engines[1].scm_mount(),
        Some(&PathBuf::from("/mnt/daos1")),
        "-s only touches engine 0"
    );
}

#[test]
fn replica_ports_stay_explicit_and_only_portless_entries_take_the_control_port() {
    // Issue #23 item 9: servers sharing an address are told apart by their ports.
    let text =
        "port: 10011\nmgmt_svc_replicas: [127.0.0.1:10013, 127.0.0.1, \"127.0.0.1:10012\"]\n";
    let l = load(text).unwrap();
    assert_eq!(
        l.server.mgmt_svc_replicas,
        vec!["127.0.0.1:10013", "127.0.0.1:10011", "127.0.0.1:10012"]
    );
    // -p gives its port to entries without one, never to an explicit one.
    let o = Overrides {
        port: Some(10099),
        ..Default::default()
    };
    let l = load_str(text, "t.yml", &o).unwrap();
    assert_eq!(
        l.server.mgmt_svc_replicas,
        vec!["127.0.0.1:10013", "127.0.0.1:10099", "127.0.0.1:10012"]
    );
    let l = load_str("", "t.yml", &o).unwrap();
    assert_eq!(l.server.mgmt_svc_replicas, vec!["localhost:10099"]);
    // An entry without a port and one naming the control port are one replica.
    let errs = load("port: 10011\nmgmt_svc_replicas: [a, b, \"a:10011\"]\n").unwrap_err();
    assert!(
        errs.to_string()
            .contains("duplicate of mgmt_svc_replicas[0]"),
        "{errs}"
    );
}

#[test]
fn bad_overrides_are_blamed_on_the_flag() {
    let o = Overrides {
        targets: Some(0),
        ..Default::default()
    };
    let errs = load_str(BASE, "t.yml", &o).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs}");
    assert!(
        errs.errors
            .iter()
            .all(|e| e.origin == Origin::Flag("-t/--targets")),
        "{errs}"
    );
    assert!(
        errs.lines()[0].starts_with("-t/--targets (overrides t.yml): engines[0].targets"),
        "{errs}"
    );
    let o = Overrides {
        scm_mount: Some("/mnt/x".into()),
        ..Default::default()
    };
    let errs = load_str("", "t.yml", &o).unwrap_err();
    assert!(errs.lines()[0].contains("-s/--storage"), "{errs}");
    let o = Overrides {
        first_core: Some(0),
        ..Default::default()
    };
    let pinned = base_with(
        "  nr_xs_helpers: 1\n",
        "  nr_xs_helpers: 1\n  pinned_numa_node: 0\n",
    );
    let errs = load_str(&pinned, "t.yml", &o).unwrap_err();
    assert!(
        errs.to_string()
            .contains("cannot specify both pinned_numa_node and first_core"),
        "{errs}"
    );
}

// ---- env and argv ----

#[test]
fn engine_environment_maps_config_keys() {
    let text = base_with(
        "  log_file: /tmp/e0.log\n",
        "  log_file: /tmp/e0.log\n  crt_timeout: 30\n  log_mask: DEBUG,mgmt=ERR\n  env_vars: [FOO=bar, D_LOG_MASK=INFO, EMPTY=]\n  env_pass_through: [PASSED, ABSENT]\n",
    );
    let l = load(&text).unwrap();
    let parent = |k: &str| (k == "PASSED").then(|| "yes".to_string());
    let env = l.server.engines[0].environment(&parent);
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("D_PROVIDER"), Some("ofi+tcp;ofi_rxm"));
    assert_eq!(get("D_INTERFACE"), Some("eth0"));
    assert_eq!(get("D_PORT"), Some("31416"));
    assert_eq!(
        get("D_LOG_MASK"),
        Some("DEBUG,mgmt=ERR"),
        "derived values win over env_vars"
    );
    assert_eq!(get("D_LOG_FILE"), Some("/tmp/e0.log"));
    assert_eq!(get("CRT_TIMEOUT"), Some("30"));
    assert_eq!(get("VOS_BDEV_CLASS"), Some("NVME"));
    assert_eq!(get("FI_OFI_RXM_USE_SRX"), Some("1"));
    assert_eq!(get("PMEMOBJ_CONF"), Some("sds.at_create=0"));
    assert_eq!(get("FOO"), Some("bar"));
    assert_eq!(
        get("EMPTY"),
        None,
        "pairs with an empty value are dropped, as in DAOS"
    );
    assert_eq!(get("PASSED"), Some("yes"));
    assert_eq!(get("ABSENT"), None);
    assert_eq!(
        get("PATH"),
        None,
        "the rest of the parent environment is dropped"
    );
    assert_eq!(env.iter().filter(|(k, _)| k == "D_LOG_MASK").count(), 1);

    let local = load_file(
        &examples().join("daos_server_local.yml"),
        &Overrides::default(),
    )
    .unwrap();
    let env = local.server.engines[0].environment(&|_| None);
    assert!(env.contains(&("VOS_BDEV_CLASS".into(), "AIO".into())));
    let dcpm = load_file(
        &examples().join("daos_server_nvme.yml"),
        &Overrides::default(),
    )
    .unwrap();
    let env = dcpm.server.engines[0].environment(&|_| None);
    assert!(
        !env.iter().any(|(k, _)| k == "PMEMOBJ_CONF"),
        "not for dcpm"
    );
}

#[test]
fn engine_arguments_match_daos() {
    let l = load_file(
        &examples().join("daos_server_nvme.yml"),
        &Overrides::default(),
    )
    .unwrap();
    let args = l.server.engines[1].args(&l.server, 1);
    assert_eq!(
        args.join(" "),
        "-t 16 -x 4 -p 1 -s /mnt/daos1 -n /mnt/daos1/daos_nvme.conf -I 1 -d /var/run/daos_server -g daos_server"
    );
}

// ---- embedded default ----

#[test]
fn embedded_default_is_a_valid_single_node_system() {
    let p = DefaultParams {
        data_dir: "/var/lib/daos data".into(),
        numa_node: Some(0),
        cores: 2,
        fabric_iface: "lo".into(),
    };
    let l = load_default(&p, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    let s = &l.server;
    assert_eq!(s.engines.len(), 1);
    let e = &s.engines[0];
    assert_eq!(e.targets, 1, "one core for the system shard, one target");
    assert_eq!(e.pinned_numa_node, Some(0));
    assert_eq!(e.fabric_iface, "lo");
    assert_eq!(
        e.scm_mount(),
        Some(&PathBuf::from("/var/lib/daos data/scm0"))
    );
    assert_eq!(e.storage[1].bdev_list, vec!["/var/lib/daos data/bdev0"]);
    assert_eq!(s.socket_dir, Path::new("/var/lib/daos data/run"));
    let no_numa = DefaultParams {
        numa_node: None,
        cores: 8,
        ..p
    };
    let l = load_default(
        &no_numa,
        &Overrides {
            port: Some(4000),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(l.server.engines[0].targets, 7);
    assert_eq!(l.server.engines[0].first_core, Some(0));
    assert_eq!(l.server.port, 4000);
}

// ---- robustness ----

#[test]
fn unreadable_file_names_path_and_fix() {
    let errs = load_file(
        Path::new("/nonexistent/daos_server.yml"),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(errs.has(ErrorKind::Io));
    let text = errs.to_string();
    assert!(
        text.contains("/nonexistent/daos_server.yml") && text.contains("-o/--config"),
        "{text}"
    );
}

#[test]
fn devices_fifos_and_huge_files_are_refused_before_reading() {
    for (path, what) in [
        ("/dev/zero", "not a regular file"),
        ("/tmp", "not a regular file"),
    ] {
        let errs = load_file(Path::new(path), &Overrides::default()).unwrap_err();
        assert!(errs.to_string().contains(what), "{path}: {errs}");
        let errs = daos_config::control::load_file(Path::new(path)).unwrap_err();
        assert!(errs.to_string().contains(what), "{path}: {errs}");
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(50 << 20).unwrap();
    let errs = load_file(&big, &Overrides::default()).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("52428800 bytes, more than the 1048576"),
        "{text}"
    );
    // A long bad value is quoted as an excerpt.
    let long = format!("name: daos_server\nport: {}\n", "9".repeat(5000));
    let errs = load(&long).unwrap_err().to_string();
    assert!(errs.len() < 2000, "{} bytes: {errs}", errs.len());
    assert!(errs.contains("(5002 bytes in all)"), "{errs}");
    let bin = dir.path().join("bin.yml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let errs = load_file(&bin, &Overrides::default()).unwrap_err();
    assert!(errs.to_string().contains("not UTF-8"), "{errs}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn no_panic_on_mutated_configs(cut in 0usize..900, len in 0usize..40, insert in "[ a-z0-9:\\-\\[\\]{}\n\"',.&*]{0,12}") {
        let base = BASE.as_bytes();
        let cut = cut.min(base.len());
        let end = (cut + len).min(base.len());
        let mut text = String::from_utf8_lossy(&base[..cut]).into_owned();
        text.push_str(&insert);
        text.push_str(&String::from_utf8_lossy(&base[end..]));
        let _ = load(&text);
    }

    #[test]
    fn no_panic_on_arbitrary_text(text in "\\PC{0,300}") {
        let _ = load(&text);
    }
}

#[test]
fn names_ports_and_system_paths_that_would_hurt_are_refused() {
    for (text, needle) in [
        (
            base_with("name: daos_server", "name: \"da\\0os\""),
            "system name may hold only letters, digits",
        ),
        (
            base_with("fabric_iface_port: 31416", "fabric_iface_port: 65534"),
            "with 4 targets the engine needs ports 65534 to 65539",
        ),
        (
            base_with("scm_mount: /mnt/daos0", "scm_mount: /"),
            "scm_mount is / or a system directory",
        ),
        (
            base_with("scm_mount: /mnt/daos0", "scm_mount: /etc/daos"),
            "scm_mount is / or a system directory",
        ),
        (
            base_with(
                "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]",
                "  - class: file\n    bdev_list: [/etc/passwd]\n    bdev_size: 1",
            ),
            "a file bdev in a system directory",
        ),
        (
            base_with(
                "  - class: nvme\n    bdev_list: [\"0000:81:00.0\"]",
                "  - class: kdev\n    bdev_list: [/tmp/not-a-device]",
            ),
            "class kdev takes block devices under /dev",
        ),
    ] {
        let errs = errors(&text).to_string();
        assert!(errs.contains(needle), "expected {needle:?} in {errs}");
        assert!(errs.contains("fix:"), "{errs}");
    }
    // The last ports that fit are fine.
    load(&base_with(
        "fabric_iface_port: 31416",
        "fabric_iface_port: 65530",
    ))
    .unwrap();
}
