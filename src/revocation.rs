//! Fetching what [`crate::trust::revocation`] judges: certificate revocation lists from
//! the distribution points certificates name, over HTTP, bounded in size and time, and
//! kept for reuse.
//!
//! What the server does when a CRL host is down: a fetch gives up after
//! [`FETCH_TIMEOUT`] (connection refused fails at once), the failure is remembered for
//! [`FAILURE_TTL`] so that a host that is down does not hold every push for the timeout,
//! and the signature's revocation status is *unavailable*: under `strict` (revocation
//! enforced) the signature does not count, under `permissive` and `audit` the failure is
//! logged in its verdict and it counts. A CRL already fetched is kept until its
//! `nextUpdate` (and at most [`MAX_AGE`], so a revocation published early is seen); after
//! its `nextUpdate`, while no newer one can be fetched, the old list still proves a
//! listed certificate revoked but no longer proves any other good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use crate::trust::revocation::{Evidence, Fetched, MAX_AGE, MAX_CRL_BYTES};

/// How long one distribution point may take to answer (the Notary Project's default).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed fetch is remembered before the point is tried again.
pub const FAILURE_TTL: time::Duration = time::Duration::seconds(30);
/// Distribution points fetched for one verification (a chain of a few certificates).
pub const MAX_URLS_PER_VERIFICATION: usize = 16;
/// CRL bytes kept in memory; past it, the oldest entries go.
pub const MAX_CACHED_BYTES: usize = 64 << 20;
/// Distribution points remembered.
pub const MAX_CACHED_URLS: usize = 1024;

struct Entry {
    fetched: Fetched,
    /// Until when it is used without fetching again.
    fresh_until: OffsetDateTime,
    /// When it was stored (the oldest go first).
    stored: OffsetDateTime,
    bytes: usize,
}

/// CRLs by distribution point, fetched on demand and kept (see the module's notes).
pub struct CrlFetcher {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Entry>>,
}

impl CrlFetcher {
    pub fn new() -> Result<CrlFetcher, String> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("the HTTP client for CRLs: {e}"))?;
        Ok(CrlFetcher {
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The CRLs of `urls` (the first [`MAX_URLS_PER_VERIFICATION`]), from the cache where
    /// fresh, fetched concurrently otherwise.
    pub async fn evidence(&self, urls: &[String]) -> Evidence {
        let now = OffsetDateTime::now_utc();
        let urls = &urls[..urls.len().min(MAX_URLS_PER_VERIFICATION)];
        let mut evidence = Evidence::new();
        let mut missing = Vec::new();
        {
            let cache = self.cache.lock().expect("CRL cache poisoned");
            for url in urls {
                match cache.get(url) {
                    Some(e) if now <= e.fresh_until => evidence.insert_crl(url, e.fetched.clone()),
                    _ => missing.push(url.clone()),
                }
            }
        }
        let fetched = futures_util::future::join_all(missing.iter().map(|u| self.fetch(u))).await;
        let mut cache = self.cache.lock().expect("CRL cache poisoned");
        for (url, got) in missing.iter().zip(fetched) {
            let got = match got {
                Fetched::Failed(why) => {
                    // A list fetched before, now past its freshness, still says more than
                    // nothing: trust::revocation judges it by its nextUpdate.
                    let stale = match cache.get(url).map(|e| &e.fetched) {
                        Some(Fetched::Crl(old)) => Some(Fetched::Crl(old.clone())),
                        _ => None,
                    };
                    if let Some(stale) = stale {
                        tracing::warn!(url = %url, error = %why, "CRL refresh failed; judging by the list fetched before");
                        evidence.insert_crl(url, stale);
                        continue;
                    }
                    tracing::warn!(url = %url, error = %why, "CRL unavailable");
                    Fetched::Failed(why)
                }
                crl => crl,
            };
            let (fresh_until, bytes) = match &got {
                // Until its nextUpdate (at most MAX_AGE); one already past it (or without
                // one) is asked for again only after FAILURE_TTL, not on every request.
                Fetched::Crl(der) => (
                    match next_update(der) {
                        Some(n) if n > now => n.min(now + MAX_AGE),
                        _ => now + FAILURE_TTL,
                    },
                    der.len(),
                ),
                Fetched::Failed(_) => (now + FAILURE_TTL, 0),
            };
            evidence.insert_crl(url, got.clone());
            insert(
                &mut cache,
                url,
                Entry {
                    fetched: got,
                    fresh_until,
                    stored: now,
                    bytes,
                },
            );
        }
        evidence
    }

    async fn fetch(&self, url: &str) -> Fetched {
        let res = match self
            .http
            .get(url)
            .header("Accept", "application/pkix-crl")
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Fetched::Failed(format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))
            }
            Err(e) => return Fetched::Failed(format!("unreachable ({e})")),
        };
        if !res.status().is_success() {
            return Fetched::Failed(format!("answered {}", res.status()));
        }
        match crate::client::body_within(res, MAX_CRL_BYTES).await {
            Ok(Some(body)) => Fetched::Crl(Arc::new(body)),
            Ok(None) => Fetched::Failed(format!(
                "the CRL is larger than {} MiB",
                MAX_CRL_BYTES >> 20
            )),
            Err(e) => Fetched::Failed(format!("reading the CRL failed ({e})")),
        }
    }
}

/// A CRL's `nextUpdate`, if it parses and has one.
fn next_update(der: &[u8]) -> Option<OffsetDateTime> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    OffsetDateTime::from_unix_timestamp(crl.next_update()?.timestamp()).ok()
}

/// Stores `entry`, evicting the oldest entries while the cache is over its bounds.
fn insert(cache: &mut HashMap<String, Entry>, url: &str, entry: Entry) {
    cache.insert(url.to_string(), entry);
    loop {
        let bytes: usize = cache.values().map(|e| e.bytes).sum();
        if bytes <= MAX_CACHED_BYTES && cache.len() <= MAX_CACHED_URLS {
            break;
        }
        let Some(oldest) = cache
            .iter()
            .min_by_key(|(_, e)| e.stored)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        cache.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize, stored: i64) -> Entry {
        Entry {
            fetched: Fetched::Crl(Arc::new(vec![0; bytes])),
            fresh_until: OffsetDateTime::UNIX_EPOCH,
            stored: OffsetDateTime::from_unix_timestamp(stored).unwrap(),
            bytes,
        }
    }

    #[test]
    fn the_cache_keeps_within_its_byte_bound_by_evicting_the_oldest() {
        let mut cache = HashMap::new();
        insert(&mut cache, "http://a", entry(MAX_CACHED_BYTES / 2, 1));
        insert(&mut cache, "http://b", entry(MAX_CACHED_BYTES / 2, 2));
        assert_eq!(cache.len(), 2);
        insert(&mut cache, "http://c", entry(1, 3));
        assert!(!cache.contains_key("http://a"), "the oldest goes first");
        assert!(cache.contains_key("http://b") && cache.contains_key("http://c"));
    }

    #[test]
    fn the_cache_keeps_within_its_count_bound() {
        let mut cache = HashMap::new();
        for i in 0..(MAX_CACHED_URLS as i64 + 10) {
            insert(&mut cache, &format!("http://h/{i}"), entry(0, i));
        }
        assert_eq!(cache.len(), MAX_CACHED_URLS);
        assert!(!cache.contains_key("http://h/0"));
        assert!(cache.contains_key(&format!("http://h/{}", MAX_CACHED_URLS + 9)));
    }
}
