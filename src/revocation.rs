//! Fetching what [`crate::trust::revocation`] judges: OCSP answers from the responders
//! certificates name and certificate revocation lists from their distribution points,
//! over HTTP, bounded in size and time, and kept for reuse.
//!
//! What the server does when a CRL host or responder is down: a fetch gives up after
//! [`FETCH_TIMEOUT`] ([`OCSP_TIMEOUT`] for OCSP; connection refused fails at once), an
//! unanswered OCSP question falls back to the certificate's lists, the failure is remembered for
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

use crate::trust::revocation::{
    self, CertSources, Evidence, Fetched, OcspQuery, MAX_AGE, MAX_CRL_BYTES,
};

/// How long one distribution point may take to answer (the Notary Project's default).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one OCSP responder may take to answer (the Notary Project's default).
pub const OCSP_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest OCSP answer accepted (a signed status and a responder certificate or two).
pub const MAX_OCSP_BYTES: usize = 256 << 10;
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

/// CRLs by distribution point and OCSP answers by question, fetched on demand and kept
/// (see the module's notes).
pub struct RevocationFetcher {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Entry>>,
}

/// What is fetched: a CRL by URL, or an OCSP answer to a query.
enum Item<'a> {
    Crl(&'a str),
    Ocsp(&'a OcspQuery),
}

impl Item<'_> {
    fn key(&self) -> String {
        match self {
            Item::Crl(url) => format!("crl {url}"),
            Item::Ocsp(q) => format!("ocsp {}", q.key),
        }
    }
}

impl RevocationFetcher {
    pub fn new() -> Result<RevocationFetcher, String> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| format!("the HTTP client for revocation checks: {e}"))?;
        Ok(RevocationFetcher {
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The OCSP answers and CRLs `sources` call for: every certificate's responders,
    /// then the lists of the certificates no answer settles (the Notary Project's order),
    /// at most [`MAX_URLS_PER_VERIFICATION`] of each, from the cache where fresh and
    /// fetched concurrently otherwise.
    pub async fn evidence(&self, sources: &[CertSources]) -> Evidence {
        let now = OffsetDateTime::now_utc();
        let mut evidence = Evidence::new();
        // Only HTTP(S) locations are asked; trust::revocation judges the others unavailable.
        let queries: Vec<&OcspQuery> = sources
            .iter()
            .flat_map(|s| s.ocsp.iter())
            .filter(|q| revocation::fetchable(&q.url))
            .take(MAX_URLS_PER_VERIFICATION)
            .collect();
        let items: Vec<Item<'_>> = queries.iter().map(|q| Item::Ocsp(q)).collect();
        for (q, got) in queries.iter().zip(self.lookup(&items, now).await) {
            evidence.insert_ocsp(&q.key, got);
        }
        let mut urls: Vec<&str> = Vec::new();
        for s in sources {
            let settled = s.ocsp.iter().any(|q| {
                matches!(evidence.ocsp(&q.key), Some(Fetched::Body(b)) if s.settled_by(q, b, now))
            });
            if !settled {
                for u in s.crls.iter().filter(|u| revocation::fetchable(u)) {
                    if !urls.contains(&u.as_str()) {
                        urls.push(u);
                    }
                }
            }
        }
        urls.truncate(MAX_URLS_PER_VERIFICATION);
        let items: Vec<Item<'_>> = urls.iter().map(|u| Item::Crl(u)).collect();
        for (url, got) in urls.iter().zip(self.lookup(&items, now).await) {
            evidence.insert_crl(url, got);
        }
        evidence
    }

    /// Each item's answer, from the cache where fresh, fetched concurrently otherwise.
    async fn lookup(&self, items: &[Item<'_>], now: OffsetDateTime) -> Vec<Fetched> {
        let mut out: Vec<Option<Fetched>> = Vec::with_capacity(items.len());
        {
            let cache = self.cache.lock().expect("revocation cache poisoned");
            for item in items {
                out.push(match cache.get(&item.key()) {
                    Some(e) if now <= e.fresh_until => Some(e.fetched.clone()),
                    _ => None,
                });
            }
        }
        let missing: Vec<usize> = (0..items.len()).filter(|i| out[*i].is_none()).collect();
        let fetched =
            futures_util::future::join_all(missing.iter().map(|i| self.fetch(&items[*i]))).await;
        let mut cache = self.cache.lock().expect("revocation cache poisoned");
        for (i, got) in missing.into_iter().zip(fetched) {
            let key = items[i].key();
            // A CRL is read once, here, not at every verification that uses it.
            let got = match (&items[i], got) {
                (Item::Crl(_), Fetched::Body(der)) => match revocation::Crl::parse(der) {
                    Ok(crl) => Fetched::Crl(Arc::new(crl)),
                    Err(e) => Fetched::Failed(format!("the list {e}")),
                },
                (_, other) => other,
            };
            if let Fetched::Failed(why) = &got {
                // An answer fetched before, now past its freshness, still says more than
                // nothing: trust::revocation judges it by its own dates.
                if let Some(old @ (Fetched::Body(_) | Fetched::Crl(_))) =
                    cache.get(&key).map(|e| &e.fetched)
                {
                    tracing::warn!(source = %key, error = %why, "revocation refresh failed; judging by the answer fetched before");
                    out[i] = Some(old.clone());
                    continue;
                }
                tracing::warn!(source = %key, error = %why, "revocation status source unavailable");
            }
            // Until its nextUpdate (at most MAX_AGE); one already past it (or without
            // one) is asked for again only after FAILURE_TTL, not on every request.
            let (next, bytes) = match &got {
                Fetched::Crl(crl) => (crl.next_update(), crl.len()),
                Fetched::Body(der) => (revocation::ocsp_next_update(der), der.len()),
                Fetched::Failed(_) => (None, 0),
            };
            let fresh_until = match next {
                Some(n) if n > now => n.min(now + MAX_AGE),
                _ => now + FAILURE_TTL,
            };
            insert(
                &mut cache,
                &key,
                Entry {
                    fetched: got.clone(),
                    fresh_until,
                    stored: now,
                    bytes,
                },
            );
            out[i] = Some(got);
        }
        out.into_iter()
            .map(|f| f.unwrap_or_else(|| Fetched::Failed("not fetched".into())))
            .collect()
    }

    async fn fetch(&self, item: &Item<'_>) -> Fetched {
        let (req, limit, timeout) = match item {
            Item::Crl(url) => (
                self.http.get(*url).header("Accept", "application/pkix-crl"),
                MAX_CRL_BYTES,
                FETCH_TIMEOUT,
            ),
            Item::Ocsp(q) => (
                self.http
                    .post(&q.url)
                    .header("Content-Type", "application/ocsp-request")
                    .header("Accept", "application/ocsp-response")
                    .body(q.request.clone()),
                MAX_OCSP_BYTES,
                OCSP_TIMEOUT,
            ),
        };
        let res = match req.timeout(timeout).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Fetched::Failed(format!("no answer within {} s", timeout.as_secs()))
            }
            Err(e) => return Fetched::Failed(format!("unreachable ({e})")),
        };
        if !res.status().is_success() {
            return Fetched::Failed(format!("answered {}", res.status()));
        }
        match crate::client::body_within(res, limit).await {
            Ok(Some(body)) => Fetched::Body(Arc::new(body)),
            Ok(None) => Fetched::Failed(format!("the answer is larger than {limit} bytes")),
            Err(e) => Fetched::Failed(format!("reading the answer failed ({e})")),
        }
    }
}

/// Stores `entry`, evicting the oldest entries while the cache is over its bounds.
fn insert(cache: &mut HashMap<String, Entry>, key: &str, entry: Entry) {
    cache.insert(key.to_string(), entry);
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
            fetched: Fetched::Body(Arc::new(vec![0; bytes])),
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
