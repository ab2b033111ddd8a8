//! What a running registry counts, for Prometheus: requests by endpoint family and status,
//! latency, bytes in and out, uploads in progress, admissions and signature verifications
//! by outcome, database pool use. Served in the Prometheus/OpenMetrics text format on a
//! listener of its own (`--metrics-addr`), never on the registry's.
//!
//! The counters are [`prometheus_client`]'s (the Prometheus project's Rust client):
//! lock-free atomics, so counting costs a request nothing measurable.

use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub family: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabel {
    pub family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerificationLabels {
    pub format: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: &'static str,
    pub state: &'static str,
}

type Histograms = Family<FamilyLabel, Histogram, fn() -> Histogram>;

/// Every metric the server keeps.
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Histograms,
    pub bytes_in: Family<FamilyLabel, Counter>,
    pub bytes_out: Family<FamilyLabel, Counter>,
    pub admissions: Family<OutcomeLabel, Counter>,
    pub verifications: Family<VerificationLabels, Counter>,
    /// Set when scraped (from the database).
    pub uploads_in_progress: Gauge,
    /// Set when scraped (from the pools).
    pub db_connections: Family<PoolLabels, Gauge>,
    /// What garbage collection removed, by kind (manifest, link, blob, leftover).
    pub gc_removed: Family<KindLabel, Counter>,
    pub gc_bytes_freed: Counter,
    pub gc_runs: Counter,
    registry: Registry,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 65 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bonded");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            admissions: Family::default(),
            verifications: Family::default(),
            uploads_in_progress: Gauge::default(),
            db_connections: Family::default(),
            gc_removed: Family::default(),
            gc_bytes_freed: Counter::default(),
            gc_runs: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by endpoint family, method and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response's head, by endpoint family",
            m.latency.clone(),
        );
        registry.register(
            "http_request_body_bytes",
            "Request body bytes read, by endpoint family",
            m.bytes_in.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Response body bytes sent, by endpoint family",
            m.bytes_out.clone(),
        );
        registry.register(
            "admissions",
            "Manifest pushes decided by the trust gate, by outcome",
            m.admissions.clone(),
        );
        registry.register(
            "signature_verifications",
            "Signatures verified, by format and outcome",
            m.verifications.clone(),
        );
        registry.register(
            "uploads_in_progress",
            "Blob upload sessions open",
            m.uploads_in_progress.clone(),
        );
        registry.register(
            "db_connections",
            "Database connections, by pool and state (idle or busy)",
            m.db_connections.clone(),
        );
        registry.register(
            "gc_runs",
            "Garbage collection runs completed (dry runs not counted)",
            m.gc_runs.clone(),
        );
        registry.register(
            "gc_removed",
            "What garbage collection removed, by kind",
            m.gc_removed.clone(),
        );
        registry.register(
            "gc_freed_bytes",
            "Bytes garbage collection freed",
            m.gc_bytes_freed.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a garbage collection run's removals.
    pub fn gc_ran(&self, r: &crate::wire::GcReport) {
        self.gc_runs.inc();
        for (kind, n) in [
            ("manifest", r.manifests_removed),
            ("link", r.links_removed),
            ("blob", r.blobs_removed),
            ("leftover", r.leftovers_removed),
        ] {
            self.gc_removed.get_or_create(&KindLabel { kind }).inc_by(n);
        }
        self.gc_bytes_freed.inc_by(r.bytes_freed);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// Counts one signature verification.
    pub fn verified(&self, format: &'static str, accepted: bool) {
        self.verifications
            .get_or_create(&VerificationLabels {
                format,
                outcome: if accepted { "accepted" } else { "rejected" },
            })
            .inc();
    }

    /// Counts one admission decision.
    pub fn admitted(&self, outcome: &'static str) {
        self.admissions
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}

/// The endpoint family of a request path: few values, so the label stays small.
pub fn family_of(path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return match path {
            "/v2" => "base",
            "/token" => "token",
            "/healthz" | "/readyz" => "health",
            p if p.starts_with("/bonded/v1/") => "api",
            _ => "other",
        };
    };
    if rest.is_empty() {
        "base"
    } else if rest == "_catalog" {
        "catalog"
    } else if rest.contains("/blobs/uploads") {
        "blob_upload"
    } else if rest.contains("/blobs/") {
        "blob"
    } else if rest.contains("/manifests/") {
        "manifest"
    } else if rest.ends_with("/tags/list") {
        "tags"
    } else if rest.contains("/referrers/") {
        "referrers"
    } else {
        "other"
    }
}

/// A body that counts the bytes of its data frames into `counter` as they pass.
pub struct Counted<B> {
    inner: B,
    counter: Counter,
}

impl<B> Counted<B> {
    pub fn new(inner: B, counter: Counter) -> Self {
        Counted { inner, counter }
    }
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.counter.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Axum middleware: counts the request, its bytes both ways and its latency.
pub async fn track(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let family = family_of(req.uri().path());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let label = FamilyLabel { family };
    let req = req.map(|b| {
        axum::body::Body::new(Counted::new(
            b,
            metrics.bytes_in.get_or_create(&label).clone(),
        ))
    });
    let path = tracing::enabled!(target: "bonded::request", tracing::Level::INFO)
        .then(|| req.uri().path().to_string());
    let res = next.run(req).await;
    let latency = started.elapsed();
    metrics
        .latency
        .get_or_create(&label)
        .observe(latency.as_secs_f64());
    // One line per request: method and path (never the query string or a header, where
    // credentials and tokens travel), status and latency.
    if let Some(path) = path {
        tracing::info!(
            target: "bonded::request",
            method = %method,
            path = %path,
            status = res.status().as_u16(),
            latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3,
            "request"
        );
    }
    metrics
        .requests
        .get_or_create(&RequestLabels {
            family,
            method,
            status: res.status().as_u16(),
        })
        .inc();
    let out = metrics.bytes_out.get_or_create(&label).clone();
    res.map(|b| axum::body::Body::new(Counted::new(b, out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_few_families() {
        for (path, family) in [
            ("/v2/", "base"),
            ("/v2", "base"),
            ("/v2/_catalog", "catalog"),
            ("/v2/team/app/blobs/uploads/", "blob_upload"),
            ("/v2/team/app/blobs/uploads/0f-1", "blob_upload"),
            ("/v2/a/b/c/blobs/sha256:ab", "blob"),
            ("/v2/team/app/manifests/v1", "manifest"),
            ("/v2/team/app/tags/list", "tags"),
            ("/v2/team/app/referrers/sha256:ab", "referrers"),
            ("/token", "token"),
            ("/bonded/v1/audit", "api"),
            ("/readyz", "health"),
            ("/favicon.ico", "other"),
        ] {
            assert_eq!(family_of(path), family, "{path}");
        }
    }

    #[test]
    fn the_exposition_names_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                family: "manifest",
                method: "GET".into(),
                status: 200,
            })
            .inc();
        m.verified("notary.jws", true);
        let text = m.encode();
        assert!(
            text.contains(
                r#"bonded_http_requests_total{family="manifest",method="GET",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"bonded_signature_verifications_total{format="notary.jws",outcome="accepted"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
