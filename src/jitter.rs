//! A small, fast pseudo-random source for spreading reconnects (`retry:` jitter).
//!
//! Not for secrets: xorshift64* seeded from the standard library's per-process random hash keys, which
//! is all that spreading clients' comebacks needs, without another dependency.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// xorshift64* (Vigna, 2016).
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator seeded differently in every process.
    pub fn from_entropy() -> Jitter {
        let seed = RandomState::new().build_hasher().finish();
        Jitter::with_seed(seed)
    }

    /// A generator with a fixed seed (tests).
    pub fn with_seed(seed: u64) -> Jitter {
        Jitter { state: seed | 1 } // never zero, the one state xorshift cannot leave
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `low..=high` (`low` if the range is empty).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_in_range_and_spread_out() {
        let mut jitter = Jitter::with_seed(42);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let v = jitter.between(1000, 1999);
            assert!((1000..=1999).contains(&v));
            buckets[((v - 1000) / 100) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 800), "roughly uniform: {buckets:?}");
        assert_eq!(jitter.between(5, 5), 5);
        assert_eq!(jitter.between(7, 3), 7);
    }
}
