//! Rate limits: token buckets, one per caller key and one per client
//! address, in this process's memory (so a limit is per replica: N
//! replicas behind a balancer let a caller through up to N times the rate).
//!
//! A bucket holds at most `burst` tokens and gains `per_second` a second;
//! each call of a request takes one. A request takes what it can: the
//! calls that find a token run, the others are answered -32005 (see
//! [`super::admit`]).
//!
//! Our own bucket rather than `governor`'s: a batch needs "take up to n,
//! say how many", and governor's `check_n` is all or nothing; and a key's
//! bucket lives in the key itself (no keyed map to look up), carried over
//! when the key table is reloaded.
//!
//! The table of addresses is bounded ([`MAX_ADDRESSES`]): a full bucket is
//! the same as no bucket, so full ones are dropped when the table fills; if
//! every bucket is in use, an arbitrary one is dropped (that address starts
//! again with a full burst). IPv6 clients are counted by /64 prefix (one
//! host usually has a whole /64), IPv4-mapped IPv6 addresses as IPv4.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Most addresses with a bucket at once.
pub const MAX_ADDRESSES: usize = 65_536;
/// Largest rate and burst: a million calls a second.
pub const MAX_RATE: u32 = 1_000_000;
/// How often at most a full table is scanned for full buckets.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A rate: `per_second` calls a second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    /// Checks the bounds: both 1 to [`MAX_RATE`].
    pub fn new(per_second: u32, burst: Option<u32>) -> Result<Rate, String> {
        let burst = burst.unwrap_or(per_second);
        for (what, n) in [("calls per second", per_second), ("burst", burst)] {
            if !(1..=MAX_RATE).contains(&n) {
                return Err(format!("{what} must be 1 to {MAX_RATE}, not {n}"));
            }
        }
        Ok(Rate { per_second, burst })
    }

    /// Parses `RATE[/BURST]` (`10`, `10/20`), as `--rate-limit` takes it.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let number = |s: &str| {
            s.trim().parse::<u32>().map_err(|_| {
                format!("`{text}` is not a rate: write RATE or RATE/BURST, whole calls per second (e.g. 10 or 10/20)")
            })
        };
        match text.split_once('/') {
            Some((rate, burst)) => Rate::new(number(rate)?, Some(number(burst)?)),
            None => Rate::new(number(text)?, None),
        }
    }
}

impl fmt::Display for Rate {
    /// `10 calls per second, burst 20`: what -32005's `data.limit` says.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.per_second == 1 { "" } else { "s" };
        write!(f, "{} call{s} per second, burst {}", self.per_second, self.burst)
    }
}

/// One token bucket. Times come from the caller, so tests need no clock.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a request got from a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    /// Calls that may run (the first ones of the request).
    pub granted: u32,
    /// When some were refused: the wait until the next token.
    pub retry_after: Duration,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(rate.burst), at: now }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate.per_second)).min(f64::from(rate.burst));
        self.at = now;
    }

    /// Takes up to `n` tokens.
    pub fn take(&mut self, rate: Rate, n: u32, now: Instant) -> Taken {
        self.refill(rate, now);
        // Whole tokens only; a hair under one (float rounding) counts as one.
        let whole = (self.tokens + 1e-9).floor().max(0.0);
        let granted = if whole >= f64::from(n) { n } else { whole as u32 };
        self.tokens = (self.tokens - f64::from(granted)).max(0.0);
        let retry_after = if granted < n {
            Duration::from_secs_f64(((1.0 - self.tokens) / f64::from(rate.per_second)).max(0.0))
        } else {
            Duration::ZERO
        };
        Taken { granted, retry_after }
    }

    /// Whether the bucket is full again by `now`: the same as no bucket.
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * f64::from(rate.per_second) >= f64::from(rate.burst)
    }
}

/// A bucket shared by the requests of one key.
#[derive(Debug)]
pub struct Limiter {
    pub rate: Rate,
    bucket: Mutex<Bucket>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter { rate, bucket: Mutex::new(Bucket::full(rate, Instant::now())) }
    }

    pub fn take(&self, n: u32) -> Taken {
        let now = Instant::now();
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).take(self.rate, n, now)
    }
}

/// The buckets of client addresses (calls without a key), at one rate.
#[derive(Debug)]
pub struct Addresses {
    pub rate: Rate,
    table: Mutex<AddressTable>,
}

#[derive(Debug)]
struct AddressTable {
    buckets: HashMap<IpAddr, Bucket>,
    pruned: Option<Instant>,
}

/// The address a bucket is kept for: IPv4 as is (also when mapped into
/// IPv6), IPv6 by its /64 prefix.
fn bucket_address(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl Addresses {
    pub fn new(rate: Rate) -> Addresses {
        Addresses { rate, table: Mutex::new(AddressTable { buckets: HashMap::new(), pruned: None }) }
    }

    /// Takes up to `n` tokens from `addr`'s bucket.
    pub fn take(&self, addr: IpAddr, n: u32) -> Taken {
        self.take_at(addr, n, Instant::now(), MAX_ADDRESSES)
    }

    fn take_at(&self, addr: IpAddr, n: u32, now: Instant, max: usize) -> Taken {
        let rate = self.rate;
        let addr = bucket_address(addr);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.buckets.contains_key(&addr) && table.buckets.len() >= max {
            if table.pruned.is_none_or(|at| now.saturating_duration_since(at) >= PRUNE_EVERY) {
                table.buckets.retain(|_, bucket| !bucket.is_full(rate, now));
                table.pruned = Some(now);
            }
            if table.buckets.len() >= max {
                if let Some(&any) = table.buckets.keys().next() {
                    table.buckets.remove(&any);
                }
            }
        }
        table.buckets.entry(addr).or_insert_with(|| Bucket::full(rate, now)).take(rate, n, now)
    }

    /// Addresses with a bucket now.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rates_parse_and_say_what_is_wrong() {
        assert_eq!(Rate::parse("10").unwrap(), Rate { per_second: 10, burst: 10 });
        assert_eq!(Rate::parse("10/20").unwrap(), Rate { per_second: 10, burst: 20 });
        assert_eq!(Rate::parse("10/20").unwrap().to_string(), "10 calls per second, burst 20");
        assert_eq!(Rate::parse("1").unwrap().to_string(), "1 call per second, burst 1");
        for bad in ["", "x", "10/", "/5", "-1", "1.5", "10/20/30"] {
            assert!(Rate::parse(bad).unwrap_err().contains("RATE/BURST"), "{bad}");
        }
        assert!(Rate::parse("0").unwrap_err().contains("1 to 1000000"));
        assert!(Rate::parse("5/0").unwrap_err().contains("burst must be"));
    }

    #[test]
    fn a_bucket_grants_its_burst_then_its_rate() {
        let rate = Rate { per_second: 10, burst: 20 };
        let t0 = Instant::now();
        let mut bucket = Bucket::full(rate, t0);
        // A batch of 25 on a full bucket: 20 run, the next token in 100 ms.
        let taken = bucket.take(rate, 25, t0);
        assert_eq!(taken.granted, 20);
        assert_eq!(taken.retry_after, 100 * MS);
        assert_eq!(bucket.take(rate, 1, t0 + 50 * MS).granted, 0);
        let taken = bucket.take(rate, 1, t0 + 50 * MS);
        assert!(taken.retry_after > 45 * MS && taken.retry_after <= 50 * MS, "{taken:?}");
        // 100 ms later: exactly one more.
        assert_eq!(bucket.take(rate, 3, t0 + 100 * MS).granted, 1);
        // Never more than the burst, however long it waited.
        assert_eq!(bucket.take(rate, 100, t0 + Duration::from_secs(3600)).granted, 20);
        // A request that fits takes nothing more.
        let mut bucket = Bucket::full(rate, t0);
        assert_eq!(bucket.take(rate, 5, t0), Taken { granted: 5, retry_after: Duration::ZERO });
        assert_eq!(bucket.take(rate, 15, t0).granted, 15);
        assert_eq!(bucket.take(rate, 1, t0).granted, 0);
    }

    #[test]
    fn addresses_share_by_ipv4_and_ipv6_prefix() {
        assert_eq!(bucket_address("192.0.2.7".parse().unwrap()), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(bucket_address("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(bucket_address("2001:db8:1:2:aa::1".parse().unwrap()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let limits = Addresses::new(Rate { per_second: 1, burst: 2 });
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(limits.take_at(a, 2, t0, 10).granted, 2);
        assert_eq!(limits.take_at(b, 1, t0, 10).granted, 0, "same /64");
        assert_eq!(limits.take_at("192.0.2.1".parse().unwrap(), 1, t0, 10).granted, 1);
    }

    #[test]
    fn the_address_table_is_bounded() {
        let limits = Addresses::new(Rate { per_second: 1, burst: 1 });
        let t0 = Instant::now();
        let addr = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..100 {
            assert_eq!(limits.take_at(addr(i), 1, t0, 10).granted, 1);
            assert!(limits.len() <= 10);
        }
        // A second later every bucket is full again: one prune empties them.
        assert_eq!(limits.take_at(addr(1000), 1, t0 + Duration::from_secs(2), 10).granted, 1);
        assert_eq!(limits.len(), 1);
    }
}
