//! A system over several hosts, each a network namespace on one bridge (root, as in CI; other
//! users get loopback hosts and the partition case is skipped, see `daos_tests::hosts`): the
//! management service replicated on three, one `dmg storage format` for all, ranks joined,
//! leader hosts killed and back, a fourth host joining, bad joins refused, a cut replica
//! converging. The steps live in `scenarios/`; `loopback.rs` runs them on loopback hosts.

#[allow(dead_code)]
mod scenarios;

use daos_tests::cluster::Cluster;

fn cluster(name: &str, count: usize, replicas: usize) -> Option<Cluster> {
    match Cluster::new(count, replicas) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("SKIPPED {name}: {e}");
            None
        }
    }
}

#[test]
fn three_hosts_one_format_a_leader_killed_and_its_host_back() {
    if let Some(c) = cluster(
        "three_hosts_one_format_a_leader_killed_and_its_host_back",
        3,
        3,
    ) {
        scenarios::three_hosts(c);
    }
}

#[test]
fn a_fourth_host_joins_bad_joins_are_refused_and_a_cut_replica_converges() {
    if let Some(c) = cluster(
        "a_fourth_host_joins_bad_joins_are_refused_and_a_cut_replica_converges",
        4,
        3,
    ) {
        scenarios::fourth_host(c);
    }
}

#[test]
fn agents_on_two_hosts_connect_and_an_eviction_reaches_every_host() {
    if let Some(c) = cluster(
        "agents_on_two_hosts_connect_and_an_eviction_reaches_every_host",
        3,
        3,
    ) {
        scenarios::agents_on_hosts(c);
    }
}
