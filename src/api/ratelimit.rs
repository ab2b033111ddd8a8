//! Token buckets: pull limits on manifest GETs (what a pull costs; HEAD and blob reads are
//! free, as on Docker Hub) per account, or per source address for anonymous clients; and
//! failed-login limits per (account, address) and per address. And [`Tally`]: refusals
//! past a limit counted per source and window instead of recorded one by one. Time is
//! passed in, so the arithmetic is tested without waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before full ones (idle clients) are dropped.
const MAX_TRACKED: usize = 65_536;

/// `count` pulls per `window`, e.g. "100/hour", "2/10s".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("pull rate limit '{s}' {why}: write COUNT/WINDOW, e.g. 100/hour or 20/30s")
        };
        let (count, window) = s.trim().split_once('/').ok_or_else(|| bad("has no '/'"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("does not start with a count"))?;
        if count == 0 {
            return Err(bad("allows nothing"));
        }
        let window = window.trim();
        let digits = window.bytes().take_while(u8::is_ascii_digit).count();
        let (n, unit) = window.split_at(digits);
        let n: u64 = if n.is_empty() {
            1
        } else {
            n.parse().map_err(|_| bad("has a window too long"))?
        };
        let unit_secs = match unit {
            "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(bad("has an unknown window unit")),
        };
        let secs = n
            .checked_mul(unit_secs)
            .filter(|s| *s > 0)
            .ok_or_else(|| bad("has an empty or too long window"))?;
        Ok(Rate {
            count,
            window: Duration::from_secs(secs),
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.count, self.window.as_secs())
    }
}

/// The unit a per-address limit counts: an IPv4 address, or the /64 network of an IPv6
/// one. One IPv6 subscriber or host routinely holds a whole /64, so a bucket per IPv6
/// address would let one client rotate through 2^64 fresh buckets. IPv4-mapped IPv6
/// addresses count as the IPv4 address they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNetwork(IpAddr);

impl ClientNetwork {
    pub fn of(ip: IpAddr) -> ClientNetwork {
        match ip {
            IpAddr::V4(_) => ClientNetwork(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientNetwork(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientNetwork(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The outcome of one pull against its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; `remaining` pulls left now, the bucket is full again in `reset_secs`.
    Allowed { remaining: u32, reset_secs: u64 },
    /// Refused; one pull is possible again in `retry_after_secs`.
    Limited { retry_after_secs: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One bucket of `rate` per key.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Pull buckets: keyed `user:<account>` or `ip:<address>`.
pub type PullLimiter = Limiter<String>;

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Rate) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    fn per_sec(&self) -> f64 {
        f64::from(self.rate.count) / self.rate.window.as_secs_f64()
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.per_sec()).min(f64::from(self.rate.count))
    }

    /// Seconds until `who` has a token again, when its bucket is empty now.
    pub fn exhausted(&self, who: &K, now: Instant) -> Option<u64> {
        let buckets = self.buckets.lock().expect("rate limit lock");
        let tokens = self.refilled(*buckets.get(who)?, now);
        (tokens < 1.0).then(|| (((1.0 - tokens) / self.per_sec()).ceil() as u64).max(1))
    }

    /// Takes one token from `who`'s bucket if it has one.
    pub fn check(&self, who: K, now: Instant) -> Decision {
        let cap = f64::from(self.rate.count);
        let per_sec = self.per_sec();
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&who) {
            buckets.retain(|_, b| self.refilled(*b, now) < cap);
        }
        let bucket = buckets.entry(who).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            let left = tokens - 1.0;
            *bucket = Bucket {
                tokens: left,
                at: now,
            };
            Decision::Allowed {
                remaining: left.floor() as u32,
                reset_secs: ((cap - left) / per_sec).ceil() as u64,
            }
        } else {
            *bucket = Bucket { tokens, at: now };
            Decision::Limited {
                retry_after_secs: (((1.0 - tokens) / per_sec).ceil() as u64).max(1),
            }
        }
    }
}

/// Refusals counted per key (a source and what it ran into) and window: the first of a
/// window is recorded, the rest are counted, and once the window has passed the count is
/// reported once. A client refused a million times adds two records, not a million.
pub struct Tally<E> {
    window: Duration,
    state: Mutex<TallyState<E>>,
}

struct TallyState<E> {
    open: HashMap<String, TallyEntry<E>>,
    /// Windows that ended while their key was busy, waiting for [`Tally::due`].
    ended: Vec<Tallied<E>>,
}

struct TallyEntry<E> {
    since: Instant,
    /// Refusals after the first.
    more: u64,
    first: E,
}

/// One window's count, due to be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tallied<E> {
    /// The window's first refusal, as recorded.
    pub first: E,
    /// Refusals after it.
    pub more: u64,
    /// From the first refusal to the report.
    pub span: Duration,
}

impl<E: Clone> Tally<E> {
    pub fn new(window: Duration) -> Self {
        Tally {
            window,
            state: Mutex::new(TallyState {
                open: HashMap::new(),
                ended: Vec::new(),
            }),
        }
    }

    /// Notes one refusal under `key`: `true` when it is the first of its window, to be
    /// recorded now; `false` when it was counted.
    pub fn note(&self, key: String, event: E, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = TallyEntry {
            since: now,
            more: 0,
            first: event,
        };
        let TallyState { open, ended } = &mut *state;
        match open.get_mut(&key) {
            Some(e) if now.saturating_duration_since(e.since) < self.window => {
                e.more += 1;
                false
            }
            Some(e) => {
                let old = std::mem::replace(e, fresh);
                if old.more > 0 && ended.len() < MAX_TRACKED {
                    ended.push(Tallied {
                        first: old.first,
                        more: old.more,
                        span: now.saturating_duration_since(old.since),
                    });
                }
                true
            }
            None => {
                if open.len() < MAX_TRACKED {
                    open.insert(key, fresh);
                }
                true
            }
        }
    }

    /// The counts of windows that have ended (all of them with `all`, at shutdown); each
    /// is reported once. Windows with nothing after their first refusal report nothing.
    pub fn due(&self, now: Instant, all: bool) -> Vec<Tallied<E>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::mem::take(&mut state.ended);
        state.open.retain(|_, e| {
            let span = now.saturating_duration_since(e.since);
            if !all && span < self.window {
                return true;
            }
            if e.more > 0 {
                out.push(Tallied {
                    first: e.first.clone(),
                    more: e.more,
                    span,
                });
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_record_the_first_and_count_the_rest() {
        let t = Tally::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(t.note("a".into(), "first a", t0));
        for i in 1..=5 {
            assert!(!t.note("a".into(), "again", t0 + Duration::from_secs(i)));
        }
        assert!(t.note("b".into(), "first b", t0));
        assert!(t.due(t0 + Duration::from_secs(9), false).is_empty());
        let due = t.due(t0 + Duration::from_secs(10), false);
        assert_eq!(
            due,
            vec![Tallied {
                first: "first a",
                more: 5,
                span: Duration::from_secs(10)
            }]
        );
        // reported once; b had nothing after its first and reports nothing
        assert!(t.due(t0 + Duration::from_secs(20), true).is_empty());
        // a new window starts with a recorded first refusal
        assert!(t.note("a".into(), "first a again", t0 + Duration::from_secs(21)));
        assert!(!t.note("a".into(), "again", t0 + Duration::from_secs(22)));
        assert_eq!(t.due(t0 + Duration::from_secs(23), true)[0].more, 1);
        // a window that ends while its key is still busy is reported, and the next one
        // records its own first refusal
        assert!(t.note("c".into(), "c1", t0));
        assert!(!t.note("c".into(), "c", t0 + Duration::from_secs(1)));
        assert!(t.note("c".into(), "c2", t0 + Duration::from_secs(11)));
        assert!(!t.note("c".into(), "c", t0 + Duration::from_secs(12)));
        let due = t.due(t0 + Duration::from_secs(30), false);
        assert_eq!(due.len(), 2);
        assert_eq!((due[0].first, due[0].more), ("c1", 1));
        assert_eq!((due[1].first, due[1].more), ("c2", 1));
    }

    #[test]
    fn rates_parse_with_units_and_multipliers() {
        let r = |s: &str| s.parse::<Rate>();
        assert_eq!(
            r("100/hour").unwrap(),
            Rate {
                count: 100,
                window: Duration::from_secs(3600)
            }
        );
        assert_eq!(r("2/10s").unwrap().window, Duration::from_secs(10));
        assert_eq!(r(" 5 / 2d ").unwrap().window, Duration::from_secs(172_800));
        assert_eq!(r("1/minute").unwrap().window, Duration::from_secs(60));
        for bad in [
            "",
            "100",
            "0/hour",
            "x/hour",
            "10/fortnight",
            "10/0s",
            "10/",
            "-1/s",
        ] {
            let e = r(bad).unwrap_err();
            assert!(e.contains("COUNT/WINDOW"), "{bad}: {e}");
        }
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let net = |s: &str| ClientNetwork::of(s.parse().unwrap());
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("2001:db8:1:2:ab::9").to_string(), "2001:db8:1:2::/64");
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7"));
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"));
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7");

        // rotating through addresses of one /64 does not escape the limit
        let l = Limiter::<ClientNetwork>::new("2/hour".parse().unwrap());
        let t0 = Instant::now();
        for host in 1..=2 {
            let d = l.check(net(&format!("2001:db8:1:2::{host}")), t0);
            assert!(matches!(d, Decision::Allowed { .. }), "{d:?}");
        }
        assert!(matches!(
            l.check(net("2001:db8:1:2::3"), t0),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            l.check(net("2001:db8:1:3::1"), t0),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn a_bucket_drains_refuses_and_refills() {
        let l = Limiter::<IpAddr>::new("2/10s".parse().unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            l.check(a, t0),
            Decision::Allowed {
                remaining: 1,
                reset_secs: 5
            }
        );
        assert_eq!(
            l.check(a, t0),
            Decision::Allowed {
                remaining: 0,
                reset_secs: 10
            }
        );
        assert_eq!(
            l.check(a, t0),
            Decision::Limited {
                retry_after_secs: 5
            }
        );
        // another address has its own bucket
        assert!(matches!(l.check(b, t0), Decision::Allowed { .. }));
        // refused pulls do not push the refill back
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(
            l.check(a, t1),
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        let t2 = t0 + Duration::from_secs(5);
        assert!(matches!(
            l.check(a, t2),
            Decision::Allowed { remaining: 0, .. }
        ));
        assert_eq!(l.exhausted(&a, t2), Some(5));
        assert_eq!(l.exhausted(&b, t2), None);
        // a long pause fills the bucket to its capacity, not beyond
        let t3 = t2 + Duration::from_secs(3600);
        assert!(matches!(
            l.check(a, t3),
            Decision::Allowed { remaining: 1, .. }
        ));
    }
}
