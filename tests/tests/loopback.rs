//! The multi-host scenarios on hosts that are distinct loopback addresses (`127.a.b.1`, ...)
//! instead of network namespaces: what a developer without root runs, checked here for every
//! user (CI included). Each host's daos_server listens on its own address
//! (`DAOS_RS_HOST_ADDR`) with its engines' fabric endpoints bound there. Links cannot be cut
//! on one loopback network, so the partition case is skipped and says so.

#[allow(dead_code)]
mod scenarios;

use daos_tests::cluster::Cluster;
use daos_tests::hosts::Hosts;

#[test]
fn loopback_three_hosts_one_format_a_leader_killed_and_its_host_back() {
    let c = Cluster::on(Hosts::loopback(3), 3).expect("loopback cluster");
    scenarios::three_hosts(c);
}

#[test]
fn loopback_a_fourth_host_joins_and_bad_joins_are_refused() {
    let c = Cluster::on(Hosts::loopback(4), 3).expect("loopback cluster");
    scenarios::fourth_host(c);
}

#[test]
fn loopback_a_leader_dying_in_a_pool_create_leaves_no_half_made_pool() {
    let c = Cluster::on(Hosts::loopback(3), 3).expect("loopback cluster");
    scenarios::leader_dies_in_a_pool_create(c);
}
