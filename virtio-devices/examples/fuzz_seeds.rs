//! Writes the fuzz targets' starting inputs into a corpus directory, as `CORPUS/<target>/
//! seed-<name>` (`scripts/fuzz` runs it before fuzzing):
//! `cargo run -p virtio-devices --features testing --example fuzz_seeds -- CORPUS`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(corpus) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds CORPUS_DIR");
        std::process::exit(2);
    };
    let dir = corpus.join("vsock");
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in virtio_devices::fuzz_seeds::vsock_seeds() {
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    Ok(())
}
