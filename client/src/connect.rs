//! How a client finds a pool's targets: GetAttachInfo (every joined engine's fabric URI and
//! context count) and a pool query (its UUID and ranks) from the management service, combined
//! into a [`crate::PoolMap`]. Used by `daos` and `daos_bench io`.

use daos_control::{Target, ms_client, status_text};
use daos_proto::mgmt::{GetAttachInfoReq, PoolQueryReq};

use crate::{PoolMap, RankUri};

/// The map of pool `pool` (label or UUID).
pub async fn pool_map(t: &Target, pool: &str) -> Result<PoolMap, String> {
    let mut c = ms_client(t).await?;
    let attach = c
        .get_attach_info(GetAttachInfoReq {
            all_ranks: true,
            ..Default::default()
        })
        .await
        .map_err(status_text)?
        .into_inner();
    let q = c
        .pool_query(PoolQueryReq {
            id: pool.into(),
            ..Default::default()
        })
        .await
        .map_err(status_text)?
        .into_inner();
    if q.state != "Ready" {
        return Err(format!(
            "pool {pool} is {}: I/O is refused until it is Ready (see dmg pool list)",
            q.state
        ));
    }
    let uuid = crate::parse_uuid(&q.uuid).ok_or_else(|| {
        format!(
            "the management service gave pool {pool} a bad UUID {:?}",
            q.uuid
        )
    })?;
    let engines: Vec<RankUri> = attach
        .rank_uris
        .into_iter()
        .map(|r| RankUri {
            rank: r.rank,
            uri: r.uri,
            num_ctxs: r.num_ctxs,
        })
        .collect();
    PoolMap::new(uuid, &q.enabled_ranks, &engines).map_err(|e| {
        format!(
            "pool {pool}: {e} (ranks {:?}; joined engines: {}); check `dmg system query`",
            q.enabled_ranks,
            engines.len()
        )
    })
}

/// [`pool_map`] for blocking callers.
pub fn pool_map_blocking(t: &Target, pool: &str) -> Result<PoolMap, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?
        .block_on(pool_map(t, pool))
}
