//! bonded-bench: a load generator for any OCI registry.
//!
//! Measures blob push and pull throughput (monolithic and chunked), manifest PUT and GET
//! requests per second with p50/p99 latency at several concurrencies, and, given the
//! server's pid, its peak RSS while a large blob is pushed and pulled. Several targets are
//! measured in one run, alternating round by round so they share the machine's noise;
//! medians are reported with each target's ratio to the baseline.
//!
//! ```text
//! bonded-bench --target bonded=http://127.0.0.1:5000 --pid bonded=1234 \
//!              --target distribution=http://127.0.0.1:5001 --baseline distribution
//! ```

use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Sigstore made on the spot (Fulcio-like CA, Rekor-like log), shared with the tests.
#[path = "../test_sigstore.rs"]
mod test_sigstore;

#[derive(Debug, Parser)]
#[command(
    name = "bonded-bench",
    about = "Side-by-side load generator for OCI registries"
)]
struct Args {
    /// A registry to measure, as NAME=URL (repeatable)
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Server process of a target, as NAME=PID, to sample its RSS (repeatable)
    #[arg(long = "pid")]
    pids: Vec<String>,
    /// Target the ratios are computed against [default: the last target]
    #[arg(long)]
    baseline: Option<String>,
    /// Size of each blob in the throughput tests, MiB
    #[arg(long, default_value_t = 256)]
    blob_mib: usize,
    /// Chunk size of the chunked push, MiB
    #[arg(long, default_value_t = 16)]
    chunk_mib: usize,
    /// Rounds per test; the median is reported
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds each manifest load test runs
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Concurrencies of the manifest load tests
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Size of the blob pushed and pulled while RSS is sampled, MiB (0: skip)
    #[arg(long, default_value_t = 1024)]
    rss_blob_mib: usize,
    /// Repository used for the test data
    #[arg(long, default_value = "bench/load")]
    repo: String,
    /// Tests to run: blobs, manifests, rss, admission, compliance, gc
    #[arg(long, value_delimiter = ',', default_value = "blobs,manifests,rss")]
    only: Vec<String>,
    /// For `admission`: the admin token of the bonded target it configures
    #[arg(long, env = "BONDED_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// For `admission`: pushes measured per case
    #[arg(long, default_value_t = 200)]
    admission_pushes: usize,
    /// For `compliance`: published tags the report is measured at, cumulative
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    compliance_tags: Vec<usize>,
    /// For `gc`: manifests in the repository when garbage collection runs (half of them
    /// untagged garbage), one measurement each
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    gc_manifests: Vec<usize>,
}

struct Target {
    name: String,
    url: String,
    pid: Option<u32>,
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// `len` pseudo-random bytes (incompressible, cheap to make), distinct per `seed`.
fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn location(base: &str, res: &reqwest::Response) -> Res<String> {
    let loc = res
        .headers()
        .get("location")
        .ok_or("no Location header")?
        .to_str()?;
    Ok(if loc.starts_with("http") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    })
}

fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={digest}")
}

async fn expect(res: reqwest::Response, status: u16, what: &str) -> Res<reqwest::Response> {
    if res.status().as_u16() == status {
        Ok(res)
    } else {
        let code = res.status();
        let body = res.text().await.unwrap_or_default();
        Err(format!("{what}: expected {status}, got {code}: {body}").into())
    }
}

/// POST, then one PUT with the whole blob.
async fn push_monolithic(
    c: &reqwest::Client,
    t: &Target,
    repo: &str,
    data: Bytes,
    digest: &str,
) -> Res<()> {
    let res = c
        .post(format!("{}/v2/{repo}/blobs/uploads/", t.url))
        .send()
        .await?;
    let res = expect(res, 202, "start upload").await?;
    let loc = location(&t.url, &res)?;
    let res = c
        .put(with_digest(&loc, digest))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", data.len())
        .body(data)
        .send()
        .await?;
    expect(res, 201, "put blob").await?;
    Ok(())
}

/// POST, PATCH chunk by chunk with Content-Range, then PUT.
async fn push_chunked(
    c: &reqwest::Client,
    t: &Target,
    repo: &str,
    data: Bytes,
    digest: &str,
    chunk: usize,
) -> Res<()> {
    let res = c
        .post(format!("{}/v2/{repo}/blobs/uploads/", t.url))
        .send()
        .await?;
    let res = expect(res, 202, "start upload").await?;
    let mut loc = location(&t.url, &res)?;
    let mut start = 0;
    while start < data.len() {
        let end = (start + chunk).min(data.len());
        let res = c
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{}-{}", start, end - 1))
            .header("Content-Length", end - start)
            .body(data.slice(start..end))
            .send()
            .await?;
        let res = expect(res, 202, "patch chunk").await?;
        loc = location(&t.url, &res)?;
        start = end;
    }
    let res = c.put(with_digest(&loc, digest)).send().await?;
    expect(res, 201, "finish upload").await?;
    Ok(())
}

async fn pull(c: &reqwest::Client, t: &Target, repo: &str, digest: &str) -> Res<u64> {
    let res = c
        .get(format!("{}/v2/{repo}/blobs/{digest}", t.url))
        .send()
        .await?;
    let res = expect(res, 200, "get blob").await?;
    let mut n = 0u64;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        n += chunk?.len() as u64;
    }
    Ok(n)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Samples a process's RSS every 20 ms until stopped; returns the peak in KiB.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

fn manifest_for(config: &(String, usize), layer: &(String, usize), n: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.0, "size": layer.1}],
        "annotations": {"bench.sequence": n.to_string()}
    }))
    .expect("manifest serialises")
}

struct LoadResult {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `op` from `concurrency` workers for `duration`; each call gets a unique number.
async fn load<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Res<LoadResult>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Res<()>> + Send,
{
    let op = Arc::new(op);
    let seq = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, seq) = (op.clone(), seq.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    op(n).await?;
                    lat.push(t0.elapsed());
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
    Ok(LoadResult {
        rps: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

/// Results: test name -> target name -> samples.
type Samples = BTreeMap<String, BTreeMap<String, Vec<f64>>>;
/// Latencies: test name -> target name -> (p50 samples, p99 samples), in ms.
type Latencies = BTreeMap<String, BTreeMap<String, (Vec<f64>, Vec<f64>)>>;

fn record(s: &mut Samples, test: &str, target: &str, v: f64) {
    s.entry(test.to_string())
        .or_default()
        .entry(target.to_string())
        .or_default()
        .push(v);
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What content trust costs a push: bonded configured through its admin API with a CA and
/// signer made here, then tag pushes timed in a repository whose policy skips verification
/// (unchecked) and in one that needs a signature, with 0, 1 and 5 signatures stored.
/// Removes a bonded target's trust policy (the tests that set one leave it as they found it).
async fn remove_policy(c: &reqwest::Client, base: &str, token: &str) -> Res<()> {
    let res = c
        .delete(format!("{base}/bonded/v1/trust/policy"))
        .bearer_auth(token)
        .send()
        .await?;
    expect(res, 200, "remove trust policy").await?;
    Ok(())
}

/// How the compliance report after a trust change grows with the published tags: the
/// policy is removed, tags are pushed (plain registry, so unsigned ones are accepted), and
/// the policy put back, which answers with the report; then the report alone.
mod compliance {
    use super::{expect, median, sha256, Res};
    use futures_util::StreamExt;
    use serde_json::json;
    use std::time::Instant;

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    pub async fn run(
        c: &reqwest::Client,
        base: &str,
        token: &str,
        sizes: &[usize],
        rounds: usize,
    ) -> Res<()> {
        let host = base
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let repo = "bench/compliance/app";
        let config = {
            let d = sha256(b"{}");
            let res = c
                .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
                .body(b"{}".to_vec())
                .send()
                .await?;
            expect(res, 201, "push blob").await?;
            d
        };
        let policy = |round: usize| {
            json!({"version": "1.0", "trustPolicies": [
                {"name": format!("compliance-{round}"), "registryScopes": [format!("{host}/bench/compliance/*")],
                 "signatureVerification": {"level": "strict"}, "trustStores": ["ca:compliance"], "trustedIdentities": ["*"]},
                {"name": "rest", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}}
            ]})
            .to_string()
        };
        // A store the policy can name (any root: the tags are unsigned).
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = p.self_signed(&key)?;
        let res = c
            .put(format!("{base}/bonded/v1/trust/stores/ca/compliance"))
            .bearer_auth(token)
            .body(root.pem())
            .send()
            .await?;
        expect(res, 200, "set trust store").await?;
        let mut pushed = 0usize;
        let mut lines = Vec::new();
        for &n in sizes {
            super::remove_policy(c, base, token).await?;
            let from = pushed;
            let bodies = futures_util::stream::iter(from..n).map(|i| {
                let m = serde_json::to_vec(&json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                    "layers": [], "annotations": {"i": i.to_string()}
                }))
                .expect("json");
                let url = format!("{base}/v2/{repo}/manifests/t{i}");
                async move {
                    let res = c
                        .put(url)
                        .header("Content-Type", OCI_MANIFEST)
                        .body(m)
                        .send()
                        .await?;
                    expect(res, 201, "put manifest").await?;
                    Res::Ok(())
                }
            });
            let results: Vec<Res<()>> = bodies.buffer_unordered(32).collect().await;
            for r in results {
                r?;
            }
            pushed = n;
            eprintln!("compliance: {n} published tags");
            let (mut change, mut report) = (Vec::new(), Vec::new());
            for round in 0..rounds.max(3) {
                let t0 = Instant::now();
                let res = c
                    .put(format!("{base}/bonded/v1/trust/policy"))
                    .bearer_auth(token)
                    .body(policy(round))
                    .send()
                    .await?;
                let bytes = expect(res, 200, "set trust policy").await?.bytes().await?;
                let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
                change.push(t0.elapsed().as_secs_f64() * 1e3);
                let counted = answer["noncompliant"]["noncompliantTags"].as_u64();
                if counted != Some(n as u64) {
                    return Err(format!("the report counted {counted:?} of {n} tags").into());
                }
                let t0 = Instant::now();
                let res = c
                    .get(format!("{base}/bonded/v1/trust/noncompliant?limit=1000"))
                    .bearer_auth(token)
                    .send()
                    .await?;
                expect(res, 200, "compliance report").await?.bytes().await?;
                report.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            let (change, report) = (median(&change), median(&report));
            lines.push(format!(
                "| {n} | {change:.0} ms | {report:.0} ms | {:.1} µs |",
                report * 1e3 / n as f64
            ));
        }
        println!("\n## Compliance report after a trust change (bonded; medians)\n");
        println!("| published tags | policy PUT with report | GET trust/noncompliant | per tag |");
        println!("|---|---|---|---|");
        for l in lines {
            println!("{l}");
        }
        super::remove_policy(c, base, token).await?;
        Ok(())
    }
}

mod gc {
    //! Garbage collection's cost at N manifests: how long a run takes (dry and real),
    //! and the pull and push rates while it runs against the same load right after it.
    use super::{expect, median, sha256, Res};
    use futures_util::StreamExt;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const REPO: &str = "bench/gc/app";

    fn manifest(config: &str, i: usize) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [], "annotations": {"gc.bench": i.to_string()}
        }))
        .expect("json")
    }

    async fn put(c: &reqwest::Client, base: &str, reference: &str, m: Vec<u8>) -> Res<()> {
        let res = c
            .put(format!("{base}/v2/{REPO}/manifests/{reference}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m)
            .send()
            .await?;
        expect(res, 201, "put manifest").await?;
        Ok(())
    }

    async fn collect(
        c: &reqwest::Client,
        base: &str,
        token: &str,
        dry: bool,
    ) -> Res<serde_json::Value> {
        let res = c
            .post(format!("{base}/bonded/v1/gc?gracePeriod=0s&dryRun={dry}"))
            .bearer_auth(token)
            .send()
            .await?;
        let mut answer: serde_json::Value = serde_json::from_slice(&res.bytes().await?)?;
        // A long run answers 202; followed until it ends.
        while answer["state"] == "running" {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let res = c
                .get(format!("{base}/bonded/v1/gc"))
                .bearer_auth(token)
                .send()
                .await?;
            answer = serde_json::from_slice(&res.bytes().await?)?;
        }
        if answer.get("errors").is_some() {
            return Err(format!("gc: {answer}").into());
        }
        Ok(answer)
    }

    /// 8 pullers of tagged manifests and 8 pushers of new tagged ones until `stop`:
    /// (pulls/s, pushes/s).
    async fn mixed_load(
        c: &reqwest::Client,
        base: &str,
        config: &str,
        tagged: usize,
        next: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) -> Res<(f64, f64)> {
        let started = Instant::now();
        let (pulls, pushes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut workers = Vec::new();
        for w in 0..16u64 {
            let (c, base, config) = (c.clone(), base.to_string(), config.to_string());
            let (stop, next, pulls, pushes) =
                (stop.clone(), next.clone(), pulls.clone(), pushes.clone());
            workers.push(tokio::spawn(async move {
                let mut k = w;
                while !stop.load(Ordering::Relaxed) {
                    if w < 8 {
                        let t = (k as usize * 7919) % tagged.max(1);
                        let res = c
                            .get(format!("{base}/v2/{REPO}/manifests/t{t}"))
                            .header("Accept", OCI_MANIFEST)
                            .send()
                            .await?;
                        expect(res, 200, "pull").await?.bytes().await?;
                        pulls.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        put(
                            &c,
                            &base,
                            &format!("p{i}"),
                            manifest(&config, 10_000_000 + i),
                        )
                        .await?;
                        pushes.fetch_add(1, Ordering::Relaxed);
                    }
                    k += 16;
                }
                Res::Ok(())
            }));
        }
        for w in workers {
            w.await??;
        }
        let secs = started.elapsed().as_secs_f64();
        Ok((
            pulls.load(Ordering::Relaxed) as f64 / secs,
            pushes.load(Ordering::Relaxed) as f64 / secs,
        ))
    }

    pub async fn run(
        c: &reqwest::Client,
        base: &str,
        token: &str,
        sizes: &[usize],
        rounds: usize,
    ) -> Res<()> {
        let config = {
            let d = sha256(b"{}");
            let res = c
                .post(format!("{base}/v2/{REPO}/blobs/uploads/?digest={d}"))
                .body(b"{}".to_vec())
                .send()
                .await?;
            expect(res, 201, "push blob").await?;
            d
        };
        let next = Arc::new(AtomicU64::new(0));
        let mut tagged = 0usize;
        let mut lines = Vec::new();
        let mut seq = 0usize;
        for &n in sizes {
            // The repository holds n manifests: n/2 tagged, n/2 untagged (garbage).
            let want_tagged = n / 2;
            let t0 = Instant::now();
            let jobs: Vec<(String, usize)> = (tagged..want_tagged)
                .map(|t| (format!("t{t}"), t))
                .chain((0..n - want_tagged).map(|_| (String::new(), 0)))
                .collect();
            let results: Vec<Res<()>> =
                futures_util::stream::iter(jobs.into_iter().map(|(tag, _)| {
                    seq += 1;
                    let m = manifest(&config, seq);
                    let reference = if tag.is_empty() { sha256(&m) } else { tag };
                    let (c, base) = (c, base);
                    async move { put(c, base, &reference, m).await }
                }))
                .buffer_unordered(32)
                .collect()
                .await;
            for r in results {
                r?;
            }
            tagged = want_tagged;
            eprintln!(
                "gc: {n} manifests stored in {:.0} s",
                t0.elapsed().as_secs_f64()
            );
            let mut dry = Vec::new();
            for _ in 0..rounds.max(3) {
                let r = collect(c, base, token, true).await?;
                dry.push(r["seconds"].as_f64().unwrap_or(0.0));
                let would = r["manifestsRemoved"].as_u64().unwrap_or(0) as usize;
                if would < n - want_tagged {
                    return Err(
                        format!("a dry run found {would} of {} untagged", n - want_tagged).into(),
                    );
                }
            }
            // The real run, with the load going; then the same load alone for as long.
            let stop = Arc::new(AtomicBool::new(false));
            let load = {
                let (c, base, config, next, stop) = (
                    c.clone(),
                    base.to_string(),
                    config.clone(),
                    next.clone(),
                    stop.clone(),
                );
                tokio::spawn(
                    async move { mixed_load(&c, &base, &config, tagged, next, stop).await },
                )
            };
            let t0 = Instant::now();
            let report = collect(c, base, token, false).await?;
            let run = t0.elapsed();
            stop.store(true, Ordering::Relaxed);
            let (pull_gc, push_gc) = load.await??;
            let stop = Arc::new(AtomicBool::new(false));
            let load = {
                let (c, base, config, next, stop) = (
                    c.clone(),
                    base.to_string(),
                    config.clone(),
                    next.clone(),
                    stop.clone(),
                );
                tokio::spawn(
                    async move { mixed_load(&c, &base, &config, tagged, next, stop).await },
                )
            };
            tokio::time::sleep(run.max(Duration::from_secs(2))).await;
            stop.store(true, Ordering::Relaxed);
            let (pull_alone, push_alone) = load.await??;
            let removed = report["manifestsRemoved"].as_u64().unwrap_or(0);
            lines.push(format!(
                "| {n} | {:.2} s | {:.2} s ({removed} removed) | {pull_gc:.0} / {pull_alone:.0} = {:.2} | {push_gc:.0} / {push_alone:.0} = {:.2} |",
                median(&dry),
                run.as_secs_f64(),
                pull_gc / pull_alone,
                push_gc / push_alone
            ));
        }
        println!(
            "\n## Garbage collection at N manifests (bonded; half of them untagged garbage)\n"
        );
        println!("| manifests | dry run (median) | run | pulls/s during / after | pushes/s during / after |");
        println!("|---|---|---|---|---|");
        for l in lines {
            println!("{l}");
        }
        Ok(())
    }
}

mod admission {
    use super::{expect, median, sha256, Res};
    use bonded::trust::envelope::TargetArtifact;
    use bonded::trust::policy::TrustPolicyDocument;
    use bonded::trust::sign::{sign, SignRequest, SigningKey};
    use bonded::trust::store::TrustStores;
    use bonded::trust::verify::{verify_signature, Subject};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use serde_json::json;
    use std::time::{Duration, Instant};
    use time::OffsetDateTime;

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// `C=US, ST=WA, O=Bench, CN=<cn>`
    fn dn(cn: &str) -> rcgen::DistinguishedName {
        let mut d = rcgen::DistinguishedName::new();
        d.push(DnType::CountryName, "US");
        d.push(DnType::StateOrProvinceName, "WA");
        d.push(DnType::OrganizationName, "Bench");
        d.push(DnType::CommonName, cn);
        d
    }

    /// A P-256 root CA valid from yesterday, with `usages`.
    fn root(
        cn: &str,
        usages: Vec<KeyUsagePurpose>,
    ) -> Res<(rcgen::Certificate, Issuer<'static, KeyPair>)> {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut rp = CertificateParams::new(Vec::<String>::new())?;
        rp.distinguished_name = dn(cn);
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = usages;
        rp.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        let root = rp.self_signed(&root_key)?;
        Ok((root, Issuer::new(rp, root_key)))
    }

    struct Pki {
        root_pem: String,
        root_der: Vec<u8>,
        signers: Vec<(SigningKey, Vec<Vec<u8>>)>,
    }

    fn pki(n: usize) -> Res<Pki> {
        let (root, issuer) = root("Bench Root", vec![KeyUsagePurpose::KeyCertSign])?;
        let mut signers = Vec::new();
        for i in 0..n {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut lp = CertificateParams::new(Vec::<String>::new())?;
            lp.distinguished_name = dn(&format!("signer-{i}"));
            lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
            lp.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
            let leaf = lp.signed_by(&key, &issuer)?;
            signers.push((
                SigningKey::from_pkcs8(&key.serialize_der()).map_err(|e| e.to_string())?,
                vec![leaf.der().to_vec(), root.der().to_vec()],
            ));
        }
        Ok(Pki {
            root_pem: root.pem(),
            root_der: root.der().to_vec(),
            signers,
        })
    }

    /// Full verification rates in process when the signer's certificate names a CRL
    /// distribution point whose list (already fetched, as the server keeps it) revokes
    /// `n` other certificates, for each `n` of `sizes`: how revocation's cost grows with the
    /// list.
    fn crl_growth(
        sizes: &[usize],
        rate: &dyn Fn(&mut dyn FnMut()) -> f64,
    ) -> Res<Vec<(usize, usize, f64)>> {
        use bonded::trust::revocation::{Evidence, Fetched};
        let url = "http://crl.bench/root.crl";
        let (root, issuer) = root(
            "CRL Root",
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        )?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut lp = CertificateParams::new(Vec::<String>::new())?;
        lp.distinguished_name = dn("signer");
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        lp.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        lp.serial_number = Some(rcgen::SerialNumber::from(u64::MAX / 3));
        lp.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![url.into()],
        }];
        let leaf = lp.signed_by(&key, &issuer)?;
        let signing = SigningKey::from_pkcs8(&key.serialize_der()).map_err(|e| e.to_string())?;
        let chain = vec![leaf.der().to_vec(), root.der().to_vec()];
        let digest = sha256(b"subject");
        let env = envelope(&signing, &chain, &digest, 7)?;
        let subject = Subject {
            media_type: OCI_MANIFEST.into(),
            digest,
            size: 7,
        };
        let mut stores = TrustStores::default();
        stores.insert(
            "ca:crl".parse().map_err(|e: String| e)?,
            vec![root.der().to_vec()],
        );
        let doc = TrustPolicyDocument::parse(
            json!({"version": "1.0", "trustPolicies": [{"name": "crl", "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"}, "trustStores": ["ca:crl"],
                "trustedIdentities": ["*"]}]})
            .to_string()
            .as_bytes(),
        )?;
        let policy = &doc.policies[0];
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        for &n in sizes {
            let crl = rcgen::CertificateRevocationListParams {
                this_update: now - time::Duration::hours(1),
                next_update: now + time::Duration::days(1),
                crl_number: rcgen::SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: (0..n as u64)
                    .map(|i| rcgen::RevokedCertParams {
                        serial_number: rcgen::SerialNumber::from(1_000_000 + i),
                        revocation_time: now - time::Duration::hours(2),
                        reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            }
            .signed_by(&issuer)?;
            let der = crl.der().to_vec();
            let bytes = der.len();
            let mut evidence = Evidence::new();
            // Read once, as the server's fetcher keeps it.
            let parsed = bonded::trust::revocation::Crl::parse(std::sync::Arc::new(der))?;
            evidence.insert_crl(url, Fetched::Crl(std::sync::Arc::new(parsed)));
            let r = rate(&mut || {
                let v = verify_signature(
                    policy,
                    &stores,
                    &env,
                    "application/jose+json",
                    &subject,
                    now,
                    &evidence,
                );
                assert!(v.accepted(), "{v:?}");
            });
            out.push((n, bytes, r));
        }
        Ok(out)
    }

    fn envelope(key: &SigningKey, chain: &[Vec<u8>], digest: &str, size: usize) -> Res<Vec<u8>> {
        let target = TargetArtifact {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: size as u64,
            annotations: None,
            artifact_type: None,
        };
        Ok(sign(
            key,
            &SignRequest {
                target: &target,
                chain,
                signing_time: OffsetDateTime::now_utc(),
                expiry: None,
                signing_agent: "bonded-bench",
            },
        )
        .map_err(|e| e.to_string())?)
    }

    async fn blob(c: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> Res<String> {
        let d = sha256(bytes);
        let res = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(bytes.to_vec())
            .send()
            .await?;
        expect(res, 201, "push blob").await?;
        Ok(d)
    }

    async fn manifest(
        c: &reqwest::Client,
        base: &str,
        repo: &str,
        reference: &str,
        body: Vec<u8>,
    ) -> Res<reqwest::Response> {
        Ok(c.put(format!("{base}/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(body)
            .send()
            .await?)
    }

    /// A simple-signing payload for `digest`, as cosign writes it.
    fn cosign_payload(digest: &str, repo: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"critical": {"identity": {"docker-reference": repo},
            "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"},
            "optional": null}))
        .expect("json")
    }

    /// `bundle` as a Sigstore bundle referrer of `digest` (cosign's new bundle format), its
    /// blob and config pushed; returns the referrer manifest's bytes.
    async fn bundle_referrer(
        c: &reqwest::Client,
        base: &str,
        repo: &str,
        bundle: &[u8],
        digest: &str,
        size: usize,
    ) -> Res<Vec<u8>> {
        use bonded::trust::sigstore::BUNDLE_ARTIFACT;
        let layer = blob(c, base, repo, bundle).await?;
        let config = blob(c, base, repo, b"{}").await?;
        Ok(serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_ARTIFACT,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": BUNDLE_ARTIFACT, "digest": layer, "size": bundle.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}
        }))?)
    }

    /// A cosign signature of `digest` by `key`, its payload and config pushed; returns the
    /// referrer manifest's bytes.
    async fn cosign_signature(
        c: &reqwest::Client,
        base: &str,
        repo: &str,
        key: &KeyPair,
        digest: &str,
        size: usize,
    ) -> Res<Vec<u8>> {
        use base64::Engine as _;
        let payload = cosign_payload(digest, repo);
        let sig = rcgen::SigningKey::sign(key, &payload)?;
        let payload_d = blob(c, base, repo, &payload).await?;
        let config = blob(c, base, repo, b"{}").await?;
        Ok(serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": bonded::trust::cosign::COSIGN_ARTIFACT,
            "config": {"mediaType": bonded::trust::cosign::COSIGN_ARTIFACT, "digest": config, "size": 2},
            "layers": [{"mediaType": bonded::trust::cosign::SIMPLE_SIGNING, "digest": payload_d,
                "size": payload.len(), "annotations": {
                    bonded::trust::cosign::SIGNATURE_ANNOTATION:
                        base64::engine::general_purpose::STANDARD.encode(sig)}}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}
        }))?)
    }

    pub async fn run(c: &reqwest::Client, base: &str, token: &str, pushes: usize) -> Res<()> {
        let host = base
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let pki = pki(5)?;
        let res = c
            .put(format!("{base}/bonded/v1/trust/stores/ca/bench"))
            .bearer_auth(token)
            .body(pki.root_pem.clone())
            .send()
            .await?;
        expect(res, 200, "set trust store").await?;
        // cosign keys, one per signer, as the cosign:bench store
        let cosign_keys: Vec<KeyPair> = (0..5)
            .map(|_| KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256))
            .collect::<Result<_, _>>()?;
        let pems: String = cosign_keys.iter().map(|k| k.public_key_pem()).collect();
        let res = c
            .put(format!("{base}/bonded/v1/trust/stores/cosign/bench"))
            .bearer_auth(token)
            .body(pems)
            .send()
            .await?;
        expect(res, 200, "set cosign trust store").await?;
        // a Sigstore of the bench's own, as the sigstore:bench store, and one keyless signer
        // whose signatures are logged a minute into its ten-minute certificate
        let sigstore = super::test_sigstore::Sigstore::new();
        let res = c
            .put(format!("{base}/bonded/v1/trust/stores/sigstore/bench"))
            .bearer_auth(token)
            .body(sigstore.trusted_root())
            .send()
            .await?;
        expect(res, 200, "set sigstore trust store").await?;
        let from = OffsetDateTime::now_utc() - time::Duration::minutes(2);
        let keyless = sigstore.signer("https://issuer.bench.test", "ci@bench.test", from);
        let logged = from + time::Duration::minutes(1);
        let policy = json!({"version": "1.0", "trustPolicies": [
            {"name": "unchecked", "registryScopes": [format!("{host}/bench/plain/*")], "signatureVerification": {"level": "skip"}},
            {"name": "signed", "registryScopes": [format!("{host}/bench/signed/*")], "signatureVerification": {"level": "strict"},
             "trustStores": ["ca:bench"], "trustedIdentities": ["*"], "bonded.unsignedPush": "reject"},
            {"name": "cosign", "registryScopes": [format!("{host}/bench/cosign/*")], "signatureVerification": {"level": "strict"},
             "trustStores": ["cosign:bench"], "trustedIdentities": ["*"]},
            {"name": "sigstore", "registryScopes": [format!("{host}/bench/sigstore/*")], "signatureVerification": {"level": "strict"},
             "trustStores": ["sigstore:bench"], "trustedIdentities": ["*"]}
        ]});
        let res = c
            .put(format!("{base}/bonded/v1/trust/policy"))
            .bearer_auth(token)
            .body(policy.to_string())
            .send()
            .await?;
        expect(res, 200, "set trust policy").await?;
        eprintln!("admission: {pushes} tag pushes per case");

        let mut results: Vec<(String, f64)> = Vec::new();
        for (case, repo, signatures) in [
            ("unchecked (policy level skip)", "bench/plain/app", 0usize),
            ("strict, 0 signatures (refused)", "bench/signed/app", 0),
            ("strict, 1 ES256 signature", "bench/signed/app", 1),
            ("strict, 5 ES256 signatures", "bench/signed/app", 5),
            ("strict, 1 cosign P-256 signature", "bench/cosign/app", 1),
            ("strict, 5 cosign P-256 signatures", "bench/cosign/app", 5),
            ("strict, 1 keyless Sigstore bundle", "bench/sigstore/app", 1),
        ] {
            let cosign = repo.starts_with("bench/cosign/");
            let config = blob(c, base, repo, b"{}").await?;
            let mut lat = Vec::with_capacity(pushes);
            for i in 0..pushes {
                let m = serde_json::to_vec(&json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                    "layers": [], "annotations": {"case": case, "i": i.to_string()}
                }))?;
                let d = sha256(&m);
                if repo.starts_with("bench/sigstore/") {
                    manifest(c, base, repo, &d, m.clone()).await?;
                    let bundle = sigstore.sign_digest_as_bundle(&keyless, &d, logged);
                    let sig = bundle_referrer(c, base, repo, &bundle, &d, m.len()).await?;
                    let res = manifest(c, base, repo, &sha256(&sig), sig).await?;
                    expect(res, 201, "push Sigstore bundle").await?;
                } else if signatures > 0 && cosign {
                    manifest(c, base, repo, &d, m.clone()).await?;
                    for key in cosign_keys.iter().take(signatures) {
                        let sig = cosign_signature(c, base, repo, key, &d, m.len()).await?;
                        let res = manifest(c, base, repo, &sha256(&sig), sig).await?;
                        expect(res, 201, "push cosign signature").await?;
                    }
                } else if signatures > 0 {
                    manifest(c, base, repo, &d, m.clone()).await?;
                    for (key, chain) in pki.signers.iter().take(signatures) {
                        let env = envelope(key, chain, &d, m.len())?;
                        let env_d = blob(c, base, repo, &env).await?;
                        let sig = serde_json::to_vec(&json!({
                            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "artifactType": "application/vnd.cncf.notary.signature",
                            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                            "layers": [{"mediaType": "application/jose+json", "digest": env_d, "size": env.len()}],
                            "subject": {"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()}
                        }))?;
                        let res = manifest(c, base, repo, &sha256(&sig), sig).await?;
                        expect(res, 201, "push signature").await?;
                    }
                }
                let t0 = Instant::now();
                let res = manifest(c, base, repo, &format!("t{i}"), m).await?;
                lat.push(t0.elapsed().as_secs_f64() * 1e3);
                let want = if case.contains("refused") { 403 } else { 201 };
                expect(res, want, case).await?;
            }
            results.push((case.to_string(), median(&lat)));
        }

        // How a tag push's cost grows with the signatures stored for its digest: one subject
        // per count, its signatures pushed once, then tags pushed onto it.
        let mut growth: Vec<(usize, f64)> = Vec::new();
        for &n in &[1usize, 10, 100, 1000] {
            let repo = format!("bench/signed/many-{n}");
            let config = blob(c, base, &repo, b"{}").await?;
            let m = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                "layers": [], "annotations": {"signatures": n.to_string()}
            }))?;
            let d = sha256(&m);
            manifest(c, base, &repo, &d, m.clone()).await?;
            let mut stored = 0;
            for i in 0..n {
                let (key, chain) = &pki.signers[i % pki.signers.len()];
                let env = envelope(key, chain, &d, m.len())?;
                let env_d = blob(c, base, &repo, &env).await?;
                let sig = serde_json::to_vec(&json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "artifactType": "application/vnd.cncf.notary.signature",
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                    "layers": [{"mediaType": "application/jose+json", "digest": env_d, "size": env.len()}],
                    "subject": {"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()},
                    "annotations": {"n": i.to_string()}
                }))?;
                let res = manifest(c, base, &repo, &sha256(&sig), sig).await?;
                match res.status().as_u16() {
                    201 => stored += 1,
                    // the registry's cap on signatures per subject
                    403 => break,
                    other => return Err(format!("push signature: {other}").into()),
                }
            }
            if stored < n {
                eprintln!("admission: the registry kept {stored} of {n} signatures of one subject (its cap); skipping {n}");
                continue;
            }
            let mut lat = Vec::with_capacity(pushes);
            for i in 0..pushes {
                let t0 = Instant::now();
                let res = manifest(c, base, &repo, &format!("t{i}"), m.clone()).await?;
                lat.push(t0.elapsed().as_secs_f64() * 1e3);
                expect(res, 201, "tag push").await?;
            }
            growth.push((n, median(&lat)));
        }

        // verification in process: the full check (envelope, chain, webpki path, ES256)
        let stores = {
            let mut s = TrustStores::default();
            s.insert(
                "ca:bench".parse().map_err(|e: String| e)?,
                vec![pki.root_der.clone()],
            );
            s
        };
        let doc = TrustPolicyDocument::parse(policy.to_string().as_bytes())?;
        let signed = &doc.policies[1];
        let (key, chain) = &pki.signers[0];
        let digest = sha256(b"subject");
        let env = envelope(key, chain, &digest, 7)?;
        let subject = Subject {
            media_type: OCI_MANIFEST.into(),
            digest,
            size: 7,
        };
        let now = OffsetDateTime::now_utc();
        let rate = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(2) {
                f();
                n += 1;
            }
            n as f64 / start.elapsed().as_secs_f64()
        };
        let full = rate(&mut || {
            let v = verify_signature(
                signed,
                &stores,
                &env,
                "application/jose+json",
                &subject,
                now,
                &bonded::trust::revocation::Evidence::new(),
            );
            assert!(v.accepted());
        });
        let raw = {
            use ring::signature::{
                EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
                ECDSA_P256_SHA256_FIXED_SIGNING,
            };
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| "keygen")?;
            let kp =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|_| "key")?;
            let msg = b"message";
            let sig = kp.sign(&rng, msg).map_err(|_| "sign")?;
            let public =
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, kp.public_key().as_ref().to_vec());
            rate(&mut || public.verify(msg, sig.as_ref()).expect("verifies"))
        };

        // a cosign layer in process: payload binding and one ECDSA P-256 (DER) verify
        let cosign_full = {
            use bonded::trust::cosign;
            let key = &cosign_keys[0];
            let payload = cosign_payload(&subject.digest, "bench/cosign/app");
            let sig = rcgen::SigningKey::sign(key, &payload)?;
            use base64::Engine as _;
            let layer = cosign::CosignLayer {
                payload: bonded::oci::Descriptor {
                    media_type: cosign::SIMPLE_SIGNING.into(),
                    digest: sha256(&payload).parse().map_err(|e| format!("{e}"))?,
                    size: payload.len() as u64,
                },
                form: cosign::LayerForm::SimpleSigning,
                rekor_bundle: None,
                signature: base64::engine::general_purpose::STANDARD.encode(sig),
                certificate: None,
                chain: None,
            };
            let mut stores = stores.clone();
            stores.insert(
                "cosign:bench".parse().map_err(|e: String| e)?,
                vec![rcgen::PublicKeyData::subject_public_key_info(key)],
            );
            let doc = TrustPolicyDocument::parse(policy.to_string().as_bytes())?;
            let cosign_policy = doc.policies[2].clone();
            rate(&mut || {
                let v = cosign::verify_layer(
                    &cosign_policy,
                    &stores,
                    &layer,
                    &payload,
                    &subject.digest,
                    now,
                );
                assert!(v.accepted());
            })
        };

        // a keyless Sigstore bundle in process: SET, body binding, Fulcio path at the log's
        // time, ECDSA over the digest
        let bundle_full = {
            use bonded::trust::cosign;
            let bundle = sigstore.sign_digest_as_bundle(&keyless, &subject.digest, logged);
            let layer = cosign::CosignLayer {
                payload: bonded::oci::Descriptor {
                    media_type: bonded::trust::sigstore::BUNDLE_ARTIFACT.into(),
                    digest: sha256(&bundle).parse().map_err(|e| format!("{e}"))?,
                    size: bundle.len() as u64,
                },
                form: cosign::LayerForm::Bundle,
                rekor_bundle: None,
                signature: String::new(),
                certificate: None,
                chain: None,
            };
            let mut stores = stores.clone();
            stores.insert(
                "sigstore:bench".parse().map_err(|e: String| e)?,
                vec![sigstore.trusted_root().into_bytes()],
            );
            let sigstore_policy = doc.policies[3].clone();
            rate(&mut || {
                let v = cosign::verify_layer(
                    &sigstore_policy,
                    &stores,
                    &layer,
                    &bundle,
                    &subject.digest,
                    now,
                );
                assert!(v.accepted(), "{v:?}");
            })
        };

        let base_ms = results[0].1;
        println!("\n## Admission (median of {pushes} tag pushes each, c=1)\n");
        println!("| case | median latency (ms) | overhead vs unchecked (ms) |");
        println!("|---|---|---|");
        for (case, ms) in &results {
            println!("| {case} | {ms:.3} | {:+.3} |", ms - base_ms);
        }
        if let Some((_, one)) = growth.first().copied() {
            println!("\n## Admission as signatures accumulate (median of {pushes} tag pushes onto one digest)\n");
            println!(
                "| signatures stored for the digest | median latency (ms) | ratio to 1 signature |"
            );
            println!("|---|---|---|");
            for (n, ms) in &growth {
                println!("| {n} | {ms:.3} | {:.2}x |", ms / one);
            }
        }
        println!("\n- full signature verification in process (envelope, certificate rules, webpki path, ES256): {full:.0}/s");
        println!("- raw ES256 verify (ring): {raw:.0}/s");
        let crl = crl_growth(&[0, 10, 10_000, 100_000], &rate)?;
        println!("\n## Verification with a CRL (in process, the list already fetched)\n");
        println!("| revoked entries in the list | list size (bytes) | verifications/s | ratio to an empty list |");
        println!("|---|---|---|---|");
        for (n, bytes, r) in &crl {
            println!("| {n} | {bytes} | {r:.0} | {:.3}x |", r / crl[0].2);
        }
        println!("- cosign layer verification in process (payload binding, key lookup, ECDSA P-256 DER): {cosign_full:.0}/s ({:.1}x Notary's)", cosign_full / full);
        println!("- keyless Sigstore bundle verification in process (trusted root parse, SET, body binding, Fulcio path at the log time, ECDSA prehash): {bundle_full:.0}/s ({:.2}x Notary's)", bundle_full / full);
        // leave the server as it was: no policy
        super::remove_policy(c, base, token).await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    bonded::install_crypto_provider();
    let args = Args::parse();
    let mut targets = Vec::new();
    for t in &args.targets {
        let (name, url) = t.split_once('=').ok_or("--target takes NAME=URL")?;
        targets.push(Target {
            name: name.into(),
            url: url.trim_end_matches('/').into(),
            pid: None,
        });
    }
    for p in &args.pids {
        let (name, pid) = p.split_once('=').ok_or("--pid takes NAME=PID")?;
        let t = targets
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("--pid names unknown target {name}"))?;
        t.pid = Some(pid.parse()?);
    }
    let baseline = args
        .baseline
        .clone()
        .unwrap_or_else(|| targets.last().expect("a target").name.clone());
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(600))
        .build()?;
    let run_id = std::process::id() as u64 * 1_000_003 + Instant::now().elapsed().as_nanos() as u64;
    let mut samples = Samples::new();
    let mut lat_notes = Latencies::new();
    let only = |t: &str| args.only.iter().any(|o| o == t);
    let mib = 1024.0 * 1024.0;

    if only("blobs") {
        let size = args.blob_mib << 20;
        eprintln!(
            "blob tests: {} MiB blobs, {} rounds",
            args.blob_mib, args.rounds
        );
        for round in 0..args.rounds {
            for (ti, t) in targets.iter().enumerate() {
                for (mode, chunked) in [("monolithic", false), ("chunked", true)] {
                    let seed = run_id ^ ((round * 16 + ti * 2 + chunked as usize) as u64 + 1);
                    let data = random_bytes(size, seed);
                    let digest = sha256(&data);
                    let t0 = Instant::now();
                    if chunked {
                        push_chunked(
                            &c,
                            t,
                            &args.repo,
                            data.clone(),
                            &digest,
                            args.chunk_mib << 20,
                        )
                        .await?;
                    } else {
                        push_monolithic(&c, t, &args.repo, data.clone(), &digest).await?;
                    }
                    let push = size as f64 / mib / t0.elapsed().as_secs_f64();
                    record(
                        &mut samples,
                        &format!("blob push {mode} (MiB/s)"),
                        &t.name,
                        push,
                    );
                    if !chunked {
                        let t0 = Instant::now();
                        let n = pull(&c, t, &args.repo, &digest).await?;
                        assert_eq!(n as usize, size, "pulled size");
                        let pull = size as f64 / mib / t0.elapsed().as_secs_f64();
                        record(&mut samples, "blob pull (MiB/s)", &t.name, pull);
                    }
                    eprintln!("  round {round} {}: {mode} push {push:.0} MiB/s", t.name);
                }
            }
        }
    }

    if only("manifests") {
        eprintln!(
            "manifest tests: {:.0} s per run, concurrency {:?}",
            args.duration, args.concurrency
        );
        let mut bases = Vec::new();
        for (ti, t) in targets.iter().enumerate() {
            let config = random_bytes(512, run_id ^ (1000 + ti as u64));
            let layer = random_bytes(4096, run_id ^ (2000 + ti as u64));
            let (cd, ld) = (sha256(&config), sha256(&layer));
            push_monolithic(&c, t, &args.repo, config.clone(), &cd).await?;
            push_monolithic(&c, t, &args.repo, layer.clone(), &ld).await?;
            let cfg = (cd, config.len());
            let lyr = (ld, layer.len());
            let m = manifest_for(&cfg, &lyr, u64::MAX);
            let res = c
                .put(format!("{}/v2/{}/manifests/get-target", t.url, args.repo))
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(m)
                .send()
                .await?;
            expect(res, 201, "put manifest").await?;
            bases.push((cfg, lyr));
        }
        let duration = Duration::from_secs_f64(args.duration);
        for round in 0..args.rounds {
            for &conc in &args.concurrency {
                for (ti, t) in targets.iter().enumerate() {
                    let url = format!("{}/v2/{}/manifests/get-target", t.url, args.repo);
                    let c2 = c.clone();
                    let get = load(conc, duration, move |_| {
                        let (c, url) = (c2.clone(), url.clone());
                        async move {
                            let res = c
                                .get(&url)
                                .header("Accept", "application/vnd.oci.image.manifest.v1+json")
                                .send()
                                .await?;
                            let res = expect(res, 200, "get manifest").await?;
                            res.bytes().await?;
                            Ok(())
                        }
                    })
                    .await?;
                    let name = format!("manifest GET c={conc} (req/s)");
                    record(&mut samples, &name, &t.name, get.rps);
                    let e = lat_notes
                        .entry(name)
                        .or_default()
                        .entry(t.name.clone())
                        .or_default();
                    e.0.push(get.p50.as_secs_f64() * 1e3);
                    e.1.push(get.p99.as_secs_f64() * 1e3);

                    let (cfg, lyr) = bases[ti].clone();
                    let (c2, base, repo) = (c.clone(), t.url.clone(), args.repo.clone());
                    let offset = (round as u64) << 40 | (conc as u64) << 32;
                    let put = load(conc, duration, move |n| {
                        let (c, base, repo) = (c2.clone(), base.clone(), repo.clone());
                        let body = manifest_for(&cfg, &lyr, offset + n);
                        async move {
                            let res = c
                                .put(format!("{base}/v2/{repo}/manifests/put-{}", offset + n))
                                .header(
                                    "Content-Type",
                                    "application/vnd.oci.image.manifest.v1+json",
                                )
                                .body(body)
                                .send()
                                .await?;
                            expect(res, 201, "put manifest").await?;
                            Ok(())
                        }
                    })
                    .await?;
                    let name = format!("manifest PUT c={conc} (req/s)");
                    record(&mut samples, &name, &t.name, put.rps);
                    let e = lat_notes
                        .entry(name)
                        .or_default()
                        .entry(t.name.clone())
                        .or_default();
                    e.0.push(put.p50.as_secs_f64() * 1e3);
                    e.1.push(put.p99.as_secs_f64() * 1e3);
                    eprintln!(
                        "  round {round} {} c={conc}: GET {:.0}/s PUT {:.0}/s",
                        t.name, get.rps, put.rps
                    );
                }
            }
        }
    }

    if only("admission") {
        let t = targets.first().expect("a target");
        let token = args
            .admin_token
            .as_deref()
            .ok_or("admission needs --admin-token (or BONDED_ADMIN_TOKEN) for the bonded target")?;
        admission::run(&c, &t.url, token, args.admission_pushes).await?;
    }

    if only("compliance") {
        let t = targets.first().expect("a target");
        let token = args.admin_token.as_deref().ok_or(
            "compliance needs --admin-token (or BONDED_ADMIN_TOKEN) for the bonded target",
        )?;
        compliance::run(&c, &t.url, token, &args.compliance_tags, args.rounds).await?;
    }

    if only("gc") {
        let t = targets.first().expect("a target");
        let token = args
            .admin_token
            .as_deref()
            .ok_or("gc needs --admin-token (or BONDED_ADMIN_TOKEN) for the bonded target")?;
        gc::run(&c, &t.url, token, &args.gc_manifests, args.rounds).await?;
    }

    let mut rss_lines = Vec::new();
    if only("rss") && args.rss_blob_mib > 0 {
        let size = args.rss_blob_mib << 20;
        for (ti, t) in targets.iter().enumerate() {
            let Some(pid) = t.pid else { continue };
            let data = random_bytes(size, run_id ^ (5000 + ti as u64));
            let digest = sha256(&data);
            let before = rss_kib(pid).unwrap_or(0);
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = sample_rss(pid, stop.clone());
            push_monolithic(&c, t, &args.repo, data.clone(), &digest).await?;
            drop(data);
            pull(&c, t, &args.repo, &digest).await?;
            stop.store(true, Ordering::Relaxed);
            let peak = sampler.join().expect("sampler");
            rss_lines.push(format!(
                "{}: peak RSS {:.1} MiB while pushing and pulling a {} MiB blob (idle before: {:.1} MiB)",
                t.name,
                peak as f64 / 1024.0,
                args.rss_blob_mib,
                before as f64 / 1024.0
            ));
        }
        // A burst: 200 concurrent 1 MiB blob pushes, then what the server keeps once idle
        // (sampled 2 s and 12 s after the burst).
        for (ti, t) in targets.iter().enumerate() {
            let Some(pid) = t.pid else { continue };
            let before = rss_kib(pid).unwrap_or(0);
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = sample_rss(pid, stop.clone());
            let pushes = (0..200u64).map(|i| {
                let data = random_bytes(1 << 20, run_id ^ (9000 + 1000 * ti as u64 + i));
                let digest = sha256(&data);
                let (c, t, repo) = (&c, t, &args.repo);
                async move { push_monolithic(c, t, repo, data, &digest).await }
            });
            for r in futures_util::future::join_all(pushes).await {
                r?;
            }
            stop.store(true, Ordering::Relaxed);
            let peak = sampler.join().expect("sampler");
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after2 = rss_kib(pid).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(10)).await;
            let after12 = rss_kib(pid).unwrap_or(0);
            rss_lines.push(format!(
                "{}: 200 concurrent 1 MiB pushes: RSS {:.1} MiB before, peak {:.1} MiB, {:.1} MiB 2 s after, {:.1} MiB 12 s after",
                t.name,
                before as f64 / 1024.0,
                peak as f64 / 1024.0,
                after2 as f64 / 1024.0,
                after12 as f64 / 1024.0
            ));
        }
    }

    println!(
        "\n## Results (median of {} rounds; ratio = target / {baseline})\n",
        args.rounds
    );
    print!("| test |");
    for t in &targets {
        print!(" {} |", t.name);
    }
    for t in targets.iter().filter(|t| t.name != baseline) {
        print!(" {} / {baseline} |", t.name);
    }
    println!();
    println!("|---|{}", "---|".repeat(targets.len() * 2 - 1));
    for (test, per_target) in &samples {
        print!("| {test} |");
        for t in &targets {
            let m = per_target
                .get(&t.name)
                .map(|v| median(v))
                .unwrap_or(f64::NAN);
            let lat = lat_notes
                .get(test)
                .and_then(|l| l.get(&t.name))
                .map(|(p50, p99)| {
                    format!(" (p50 {:.2} ms, p99 {:.2} ms)", median(p50), median(p99))
                })
                .unwrap_or_default();
            print!(" {m:.0}{lat} |");
        }
        let base = per_target
            .get(&baseline)
            .map(|v| median(v))
            .unwrap_or(f64::NAN);
        for t in targets.iter().filter(|t| t.name != baseline) {
            let m = per_target
                .get(&t.name)
                .map(|v| median(v))
                .unwrap_or(f64::NAN);
            print!(" {:.2}x |", m / base);
        }
        println!();
    }
    if !rss_lines.is_empty() {
        println!();
        for l in rss_lines {
            println!("- {l}");
        }
    }
    Ok(())
}
