//! gurt's hybrid logical clock, as it travels in CaRT headers (`src/gurt/hlc.c`): physical
//! nanoseconds since 2021-01-01 times 16, the low 18 bits a logical counter. A server refuses
//! a request whose clock is more than [`EPSILON`] ahead of its own (`-DER_HLC_SYNC`) and
//! otherwise moves its clock past it; every reply carries the server's clock.

/// Seconds from the Unix epoch to gurt's (2021-01-01T00:00:00Z).
pub const START_SEC: u64 = 1_609_459_200;
/// Logical bits.
pub const MASK: u64 = 0x3FFFF;
/// The largest skew accepted: one second, in HLC units.
pub const EPSILON: u64 = 1_000_000_000 * 16;

/// gurt's reading of a physical time (nanoseconds since the Unix epoch), logical bits clear.
pub fn from_unix_nanos(ns: u64) -> u64 {
    (ns.saturating_sub(START_SEC * 1_000_000_000) << 4) & !MASK
}

/// Nanoseconds since the Unix epoch of an HLC reading (logical bits dropped).
pub fn to_unix_nanos(hlc: u64) -> u64 {
    ((hlc & !MASK) >> 4) + START_SEC * 1_000_000_000
}

/// A server's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hlc {
    last: u64,
}

impl Hlc {
    /// A reading for a message sent at physical time `now` (`d_hlc_get`): never below one
    /// given before.
    pub fn get(&mut self, now_ns: u64) -> u64 {
        let pt = from_unix_nanos(now_ns);
        self.last = if self.last & !MASK < pt {
            pt
        } else {
            self.last + 1
        };
        self.last
    }

    /// Takes in a received message's reading at physical time `now` (`d_hlc_get_msg`): `Err`
    /// with how far ahead it is (in nanoseconds) when more than [`EPSILON`] ahead.
    pub fn get_msg(&mut self, msg: u64, now_ns: u64) -> Result<u64, u64> {
        let pt = from_unix_nanos(now_ns);
        let ml = msg & !MASK;
        if ml > pt.saturating_add(EPSILON) {
            return Err((ml - pt) >> 4);
        }
        let hp = self.last & !MASK;
        self.last = if hp < ml {
            if ml < pt { pt } else { msg + 1 }
        } else if hp < pt {
            pt
        } else if pt <= ml {
            self.last.max(msg) + 1
        } else {
            self.last + 1
        };
        Ok(self.last)
    }
}

/// Physical time now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_765_000_000_000_000_000; // late 2025

    #[test]
    fn readings_are_sixteenths_since_2021_and_never_go_back() {
        assert_eq!(from_unix_nanos(START_SEC * 1_000_000_000), 0);
        assert_eq!(
            from_unix_nanos(START_SEC * 1_000_000_000 + (1 << 20)),
            0x100_0000
        );
        let mut c = Hlc::default();
        let a = c.get(T);
        let b = c.get(T);
        assert!(b > a && b - a == 1, "same instant: logical + 1");
        let d = c.get(T - 1_000_000);
        assert!(d > b, "the clock going back does not move readings back");
        assert!(to_unix_nanos(a).abs_diff(T) < 16_384);
    }

    #[test]
    fn messages_ahead_by_more_than_a_second_are_refused() {
        let mut c = Hlc::default();
        let ahead = from_unix_nanos(T + 2_000_000_000);
        assert!(c.get_msg(ahead, T).is_err());
        let near = from_unix_nanos(T + 500_000_000);
        let got = c.get_msg(near, T).unwrap();
        assert!(got > near, "the clock moves past what it saw");
        assert!(c.get(T) > got);
        assert!(c.get_msg(0, T).is_ok(), "a new client sends 0");
    }
}
