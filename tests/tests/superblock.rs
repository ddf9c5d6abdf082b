//! A host started with a copy of another host's engine superblock (issue #23 item 14): its
//! join is refused, and the healthy original rank stays `Joined` and is used by the next pool
//! create. Two loopback hosts (any user).

use std::time::Duration;

use daos_tests::cluster::Cluster;
use daos_tests::hosts::Hosts;
use daos_tests::*;

fn joined(c: &Cluster, from: usize, hosts: &str) -> Vec<(u32, String, String)> {
    c.members(from, hosts).unwrap_or_default()
}

#[test]
fn a_copied_superblock_is_refused_and_the_original_rank_stays_joined() {
    let mut c = Cluster::on(Hosts::loopback(2), 1).expect("loopback cluster");
    let all = c.all();
    let all = all.as_str();
    c.start_all();
    for i in 1..=2 {
        c.wait_log(i, "SCM format required on instance 0", 30);
    }
    let o = c.dmg(1, all, &["storage", "format"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let both = |c: &Cluster| {
        let m = joined(c, 1, all);
        m.len() == 2 && m.iter().all(|(_, _, s)| s == "joined")
    };
    assert!(
        wait_until(Duration::from_secs(60), || both(&c)),
        "{:?}\n{}",
        c.members(1, all),
        c.logs()
    );
    let rank_of = |c: &Cluster, host: usize| {
        joined(c, 1, all)
            .into_iter()
            .find(|(_, addr, _)| addr.starts_with(&format!("{}:", c.hosts.addr(host))))
            .map(|m| m.0)
            .expect("a rank on the host")
    };
    let original = rank_of(&c, 1);
    // Host 2 stops; its engine's superblock is replaced by host 1's (a cloned disk image).
    c.stop(2);
    let sb = std::fs::read(c.path(1).join("scm0/superblock")).expect("host 1's superblock");
    std::fs::write(c.path(2).join("scm0/superblock"), &sb).expect("copied superblock");
    c.start(2);
    // Refused clearly on the copy's host...
    c.wait_log(2, "join failed: can't rejoin member", 60);
    // ...and the original rank is left as it was: Joined, and in the next pool.
    let stays = wait_until(Duration::from_secs(15), || {
        joined(&c, 1, all)
            .iter()
            .any(|(r, _, s)| *r == original && s == "joined")
    });
    assert!(stays, "{:?}\n{}", c.members(1, all), c.logs());
    // Long enough for a wrongly marked rank to show: the copy's engine has been refused and
    // stopped, and its supervisor has reported it.
    c.wait_log(2, "exited with status", 60);
    let m = joined(&c, 1, all);
    assert!(
        m.iter().any(|(r, _, s)| *r == original && s == "joined"),
        "the original rank after the copy's engine exited: {m:?}\n{}",
        c.logs()
    );
    let o = c.dmg(
        1,
        &c.at(1),
        &["-j", "pool", "create", "p", "--scm-size", "64M"],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ranks = v["response"]["tgt_ranks"].clone();
    assert!(
        ranks
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == original)),
        "the pool's ranks {ranks} include the original rank {original}: {v}"
    );
}
