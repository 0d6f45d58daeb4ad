//! `ringfence image ...`: the image store of a node's data directory (DIR/images), usable while
//! the node runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Args, Subcommand};
use images::guest::agent::AgentSource;
use images::{Digest, ImageStore, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct StoreArgs {
    /// The node's data directory; images live in DIR/images.
    #[arg(long)]
    data_dir: PathBuf,
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<ImageStore> {
        let dir = self.data_dir.join(images::DATA_SUBDIR);
        ImageStore::open(&dir)
            .with_context(|| format!("opening the image store in {}", dir.display()))
    }
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout or a `docker save` archive (a directory or a tarball).
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// The layout or archive.
        path: PathBuf,
        /// The name to give it, NAME:TAG (normalised: `busybox:1` is docker.io/library/busybox:1).
        #[arg(long)]
        name: String,
    },
    /// Pull an image from a registry (HTTPS; HTTP for loopback and --insecure-registry hosts).
    Pull {
        #[command(flatten)]
        store: StoreArgs,
        /// `[registry/]repository[:tag][@sha256:...]`.
        reference: String,
        /// A registry (host[:port]) to reach over plain HTTP; repeatable.
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
    },
    /// List the stored images.
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Build (or find cached) the microVM guest kernel and the initramfs holding the guest
    /// agent; prints the kernel's path, then the initramfs's.
    Kernel {
        /// A statically linked agent binary to use instead of building it from this workspace.
        #[arg(long)]
        agent: Option<PathBuf>,
    },
    /// Turn a directory into an ext4 image for a container disk (`--busybox`: a root holding
    /// busybox-static and its applets).
    Rootfs {
        /// The directory to copy into the image.
        #[arg(required_unless_present = "busybox", conflicts_with = "busybox")]
        dir: Option<PathBuf>,
        /// The image to write (replaced).
        #[arg(long, short)]
        output: PathBuf,
        /// The image size in MiB (default: the content and half again, at least 16).
        #[arg(long, default_value_t = 0)]
        size_mib: u64,
        #[arg(long)]
        busybox: bool,
    },
    /// Remove images (by NAME:TAG, NAME@DIGEST or ID).
    #[command(alias = "remove")]
    Rm {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(required = true)]
        references: Vec<String>,
    },
}

pub fn run(cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Import { store, path, name } => {
            let info = store
                .open()?
                .import(&path, &name)
                .with_context(|| format!("importing {}", path.display()))?;
            println!("{} {}", info.repo_tags.join(" "), info.id);
        }
        ImageCommand::Pull { store, reference, insecure_registries } => {
            let store = store.open()?.with_insecure_registries(insecure_registries);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let bars = Bars::default();
            let info = runtime
                .block_on(store.pull(&reference, &bars))
                .with_context(|| format!("pulling {reference}"))?;
            bars.multi.clear().ok();
            println!("{reference} {}", info.id);
        }
        ImageCommand::List { store } => print_list(&store.open()?)?,
        ImageCommand::Kernel { agent } => {
            let source = match agent {
                Some(p) => AgentSource::Binary(p),
                None => AgentSource::Workspace(workspace()?),
            };
            let bar = BuildBar::new();
            let image = images::guest::build(&source, &bar).context("building the guest kernel")?;
            bar.bar.finish_and_clear();
            println!("{}", image.kernel.display());
            println!("{}", image.initramfs.display());
        }
        ImageCommand::Rootfs { dir, output, size_mib, busybox } => {
            let staged;
            let dir = match dir {
                Some(d) => d,
                None => {
                    debug_assert!(busybox);
                    staged = tempfile::tempdir()?;
                    images::guest::disk::busybox_root(staged.path())?;
                    staged.path().to_owned()
                }
            };
            let size = images::guest::disk::ext4_from_dir(&dir, &output, size_mib)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!("{}: ext4, {size} MiB, from {}", output.display(), dir.display());
        }
        ImageCommand::Rm { store, references } => {
            let store = store.open()?;
            for r in &references {
                store.remove(r).with_context(|| format!("removing {r}"))?;
                println!("removed {r}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(store: &ImageStore) -> anyhow::Result<()> {
    let mut rows =
        vec![["IMAGE".to_string(), "TAG".to_string(), "IMAGE ID".to_string(), "SIZE".to_string()]];
    for image in store.list()? {
        let id = image.id.hex()[..12].to_string();
        let size = human_size(image.size);
        let names: Vec<(String, String)> = if image.repo_tags.is_empty() {
            vec![("<none>".to_string(), "<none>".to_string())]
        } else {
            image
                .repo_tags
                .iter()
                .map(|t| {
                    t.rsplit_once(':')
                        .map_or((t.clone(), String::new()), |(n, t)| (n.to_string(), t.to_string()))
                })
                .collect()
        };
        for (name, tag) in names {
            rows.push([name, tag, id.clone(), size.clone()]);
        }
    }
    let widths: Vec<usize> =
        (0..4).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    for r in rows {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

/// One progress bar per blob being downloaded (drawn on stderr, hidden when it is not a terminal).
#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn started(&self, blob: &Digest, total: u64) {
        let style = ProgressStyle::with_template(
            "{msg:14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = self.multi.add(
            ProgressBar::new(total).with_style(style).with_message(blob.hex()[..12].to_string()),
        );
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(blob.clone(), bar);
        }
    }

    fn advanced(&self, blob: &Digest, bytes: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(blob).cloned()) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, blob: &Digest) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(blob).cloned()) {
            bar.finish();
        }
    }

    fn step(&self, message: &str) {
        tracing::info!("{message}");
    }
}

/// The workspace this binary was built from, which builds the guest agent.
fn workspace() -> anyhow::Result<PathBuf> {
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if !ws.join("guest-agent/Cargo.toml").exists() {
        anyhow::bail!(
            "the Ringfence workspace ({}) is gone, so the guest agent cannot be built: give --agent PATH",
            ws.display()
        );
    }
    Ok(ws)
}

/// A kernel build's progress: a bar over the compile steps, the steps above it.
struct BuildBar {
    bar: ProgressBar,
}

impl BuildBar {
    fn new() -> BuildBar {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        BuildBar { bar }
    }
}

impl images::guest::BuildProgress for BuildBar {
    fn step(&self, message: &str) {
        tracing::info!("{message}");
        self.bar.println(message);
    }
    fn advanced(&self, done: u64, expected: u64) {
        self.bar.set_length(expected);
        self.bar.set_position(done);
        self.bar.set_message("kernel");
    }
}
