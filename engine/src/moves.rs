//! RMAs between a registered buffer of ours and a client's bulk handle of one or more
//! segments (each its own registration, addressed from its start).

/// One RMA of a request's data: `len` bytes between slot byte `at` and the client's
/// registration `key` at `addr`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Move {
    pub at: usize,
    pub key: u64,
    pub addr: u64,
    pub len: u32,
}

/// The RMAs that move `len` bytes between slot byte `at` on and the client's handle `b`,
/// segment by segment (each its own registration, addressed from its start); false when
/// the handle holds fewer bytes.
pub fn segment_moves(
    moves: &mut Vec<Move>,
    b: &daos_cart::bulk::Bulk<'_>,
    at: usize,
    remote: usize,
    len: usize,
    virt: bool,
) -> bool {
    let (mut done, mut skip) = (0usize, remote);
    for seg in b.segments().filter(|s| s.len > 0) {
        if done == len {
            break;
        }
        let seg_len = usize::try_from(seg.len).unwrap_or(usize::MAX);
        if skip >= seg_len {
            skip -= seg_len;
            continue;
        }
        let n = (len - done).min(seg_len - skip);
        let off = skip as u64;
        moves.push(Move {
            at: at + done,
            key: seg.key,
            addr: if virt { seg.addr + off } else { off },
            len: n as u32,
        });
        done += n;
        skip = 0;
    }
    done == len
}
