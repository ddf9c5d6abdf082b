//! Exclusion, rebuild, reintegration and self-healing (SWIM finds a dead rank, the pool
//! excludes it and rebuilds) over three hosts (network namespaces as root, else loopback
//! hosts): see `scenarios::exclude_rebuild_reintegrate`.

#[allow(dead_code)]
mod scenarios;

use daos_tests::cluster::Cluster;

#[test]
fn an_excluded_rank_is_rebuilt_elsewhere_and_reintegrated() {
    // Fast failure detection for the self-healing part: SWIM suspicion 6 s (DAOS: 20 s),
    // pool exclusion 2 s after (DAOS: 10 s).
    let hosts = match daos_tests::hosts::Hosts::new(3) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("SKIPPED an_excluded_rank_is_rebuilt_elsewhere_and_reintegrated: {e}");
            return;
        }
    };
    match Cluster::on_with_env(
        hosts,
        1,
        &["SWIM_SUSPECT_TIMEOUT=6000", "CRT_EVENT_DELAY=2"],
    ) {
        Ok(c) => scenarios::exclude_rebuild_reintegrate(c),
        Err(e) => eprintln!("SKIPPED an_excluded_rank_is_rebuilt_elsewhere_and_reintegrated: {e}"),
    }
}
