//! `bonded push`: copies an image or multi-platform index from an OCI layout directory to a
//! registry. With `--sign`, manifests go in by digest, then the signatures, then the tag, so
//! an enforcing registry admits the image in one command.

use super::sign::Signer;
use crate::client::{ClientOptions, ImageRef, RegistryClient};
use crate::oci::manifest::{self, ParsedManifest};
use crate::oci::{Descriptor, Digest, Reference};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// OCI layout directory, optionally with the tag to push: DIR or DIR:TAG
    pub source: String,
    /// Destination: REGISTRY/REPOSITORY:TAG (or @DIGEST to push without a tag)
    pub reference: String,
    /// Sign with this private key (repeat for several signers; pairs with --cert by order)
    #[arg(long = "sign")]
    pub keys: Vec<PathBuf>,
    /// The certificate chain of the matching --sign key
    #[arg(long = "cert")]
    pub certs: Vec<PathBuf>,
    /// An RFC 3161 time-stamping authority to countersign each signature with (as
    /// `bonded sign --timestamp-url`)
    #[arg(long, requires = "timestamp_root_cert")]
    pub timestamp_url: Option<String>,
    /// The root certificate (PEM) the authority's timestamps must lead to
    #[arg(long, requires = "timestamp_url")]
    pub timestamp_root_cert: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientOptions,
}

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn read(&self, d: &Digest) -> Result<Vec<u8>, String> {
        let path = self.blob_path(d);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if Digest::of(d.algorithm(), &bytes) != *d {
            return Err(format!("{} does not hash to its name", path.display()));
        }
        Ok(bytes)
    }

    /// The manifest of `index.json` for `tag`, or the only one.
    fn root(&self, tag: Option<&str>) -> Result<Descriptor, String> {
        let path = self.dir.join("index.json");
        let index: Value = serde_json::from_slice(
            &std::fs::read(&path)
                .map_err(|e| format!("{} is not an OCI layout: {e}", self.dir.display()))?,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let name = |m: &Value| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        };
        let chosen = match tag {
            Some(t) => entries.iter().find(|m| name(m).as_deref() == Some(t)),
            None if entries.len() == 1 => entries.first(),
            None => entries
                .iter()
                .find(|m| name(m).as_deref() == Some("latest")),
        };
        let m = chosen.ok_or_else(|| {
            let tags: Vec<String> = entries.iter().filter_map(name).collect();
            format!(
                "{} has no image {}; its tags: {}",
                self.dir.display(),
                tag.unwrap_or("(untagged)"),
                tags.join(", ")
            )
        })?;
        Ok(Descriptor {
            media_type: m["mediaType"].as_str().unwrap_or_default().to_string(),
            digest: m["digest"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("index.json: {e}"))?,
            size: m["size"].as_u64().unwrap_or_default(),
        })
    }
}

/// A manifest of the layout, parsed by the same code the registry uses.
fn read_manifest(layout: &Layout, d: &Descriptor) -> Result<(Vec<u8>, ParsedManifest), String> {
    let bytes = layout.read(&d.digest)?;
    let parsed =
        manifest::parse(Some(&d.media_type), &bytes).map_err(|e| format!("{}: {e}", d.digest))?;
    Ok((bytes, parsed))
}

/// The blobs a push uploads for an image manifest: its config and distributable layers.
pub(super) fn uploaded_blobs(parsed: &ParsedManifest) -> impl Iterator<Item = &Descriptor> {
    parsed
        .config
        .iter()
        .chain(&parsed.layers)
        .filter(|b| parsed.blobs.contains(&b.digest))
}

/// Blobs (digest, size) below a manifest, for the progress bar's totals.
fn blobs_below(
    layout: &Layout,
    d: &Descriptor,
    out: &mut Vec<(Digest, u64)>,
) -> Result<(), String> {
    let (_, parsed) = read_manifest(layout, d)?;
    for child in &parsed.manifests {
        blobs_below(layout, child, out)?;
    }
    for b in uploaded_blobs(&parsed) {
        if !out.iter().any(|(d, _)| d == &b.digest) {
            out.push((b.digest.clone(), b.size));
        }
    }
    Ok(())
}

/// A progress bar (bytes and blobs) on terminals; nothing elsewhere.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    blobs: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl Progress {
    fn new(bytes: u64, blobs: usize) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        let p = Progress {
            bar,
            blobs,
            done: Default::default(),
        };
        p.message();
        p
    }

    fn message(&self) {
        if let Some(bar) = &self.bar {
            let done = self.done.load(std::sync::atomic::Ordering::Relaxed);
            bar.set_message(format!("blobs {done}/{}", self.blobs));
        }
    }

    fn bytes(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn blob_done(&self) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.message();
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Pushes a manifest and everything below it, by digest. Returns (blobs uploaded, manifests).
async fn push_tree(
    client: &RegistryClient,
    image: &ImageRef,
    layout: &Layout,
    d: &Descriptor,
    progress: &Progress,
) -> Result<(usize, usize), String> {
    let repo = &image.repository;
    let (bytes, parsed) = read_manifest(layout, d)?;
    let (mut blobs, mut manifests) = (0, 0);
    for child in &parsed.manifests {
        let (b, m) = Box::pin(push_tree(client, image, layout, child, progress)).await?;
        blobs += b;
        manifests += m;
    }
    for b in uploaded_blobs(&parsed) {
        if client
            .push_blob_file(
                repo,
                &layout.blob_path(&b.digest),
                &b.digest,
                b.size,
                &|n| progress.bytes(n),
            )
            .await
            .map_err(|e| e.to_string())?
        {
            blobs += 1;
        }
        progress.blob_done();
    }
    client
        .put_manifest(repo, &d.digest.to_string(), &d.media_type, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok((blobs, manifests + 1))
}

pub async fn run(args: &PushArgs) -> Result<(), String> {
    let (dir, tag) = match args.source.rsplit_once(':') {
        Some((dir, tag)) if !Path::new(&args.source).is_dir() && !tag.contains('/') => {
            (dir, Some(tag))
        }
        _ => (args.source.as_str(), None),
    };
    let layout = Layout {
        dir: PathBuf::from(dir),
    };
    let image: ImageRef = args.reference.parse()?;
    if args.keys.len() != args.certs.len() {
        return Err(format!(
            "{} --sign key(s) but {} --cert chain(s): give one --cert per --sign",
            args.keys.len(),
            args.certs.len()
        ));
    }
    let signers = args
        .keys
        .iter()
        .zip(&args.certs)
        .map(|(k, c)| {
            let signer = Signer::load(k, c, args.client.password_stdin)?;
            Ok::<_, String>(match (&args.timestamp_url, &args.timestamp_root_cert) {
                (Some(url), Some(root)) => {
                    signer.with_timestamper(super::sign::Timestamper::new(url, root)?)
                }
                _ => signer,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let root = layout.root(tag)?;
    let client =
        RegistryClient::connect(&image.registry, &args.client, Some(&image.repository), true)
            .await
            .map_err(|e| e.to_string())?;
    let mut all_blobs = Vec::new();
    blobs_below(&layout, &root, &mut all_blobs)?;
    let progress = Progress::new(all_blobs.iter().map(|(_, s)| s).sum(), all_blobs.len());
    let pushed = push_tree(&client, &image, &layout, &root, &progress).await;
    progress.finish();
    let (blobs, manifests) = pushed?;
    println!(
        "pushed {}/{}@{} ({manifests} manifest(s), {blobs} blob(s) uploaded)",
        image.registry, image.repository, root.digest
    );
    for s in &signers {
        match s
            .sign_and_push(
                &client,
                &image,
                &root.media_type,
                &root.digest,
                root.size as usize,
                None,
            )
            .await?
        {
            Some(sig) => println!(
                "signed as '{}' ({}); signature {sig}",
                s.subject(),
                s.algorithm()
            ),
            None => println!("already signed by '{}'", s.subject()),
        }
    }
    if let Reference::Tag(t) = &image.reference {
        let bytes = layout.read(&root.digest)?;
        client
            .put_manifest(&image.repository, t.as_str(), &root.media_type, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        println!("tagged {image}");
    }
    Ok(())
}
