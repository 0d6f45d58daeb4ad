//! `ImageStore::pull`: an image from an OCI distribution registry.

use std::io::Write;

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::blobs::check;
use crate::catalog::ImageRecord;
use crate::digest::Digest;
use crate::error::ImageError;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::registry::RegistryClient;
use crate::spec::{Descriptor, Manifest, ManifestOrIndex};
use crate::store::{ImageInfo, ImageStore};

/// Layers downloaded at once.
const PARALLEL_DOWNLOADS: usize = 3;

impl ImageStore {
    /// Pulls `reference` (`busybox`, `host:port/repo:tag`, `repo@sha256:...`): the linux/amd64
    /// manifest, its config and layers (those not already stored), then unpacks it.
    /// Loopback registries and those given to `with_insecure_registries` are spoken to over HTTP.
    pub async fn pull(
        &self,
        reference: &str,
        progress: &dyn Progress,
    ) -> Result<ImageInfo, ImageError> {
        let r = Reference::parse(reference)?;
        let client = RegistryClient::new(&r, &self.insecure_registries)?;
        let wanted = match (&r.digest, &r.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => crate::reference::DEFAULT_TAG.to_string(),
        };
        let (bytes, media_type) = client.manifest(&wanted).await?;
        let top = Digest::of(&bytes);
        if let Some(d) = &r.digest {
            check(d, &top)?;
        }
        let (manifest_bytes, manifest) =
            match ManifestOrIndex::parse(&bytes, media_type.as_deref())? {
                ManifestOrIndex::Manifest(m) => (bytes, m),
                ManifestOrIndex::Index(index) => {
                    let chosen = index.pick_platform()?;
                    let (bytes, _) = client.manifest(&chosen.digest.to_string()).await?;
                    check(&chosen.digest, &Digest::of(&bytes))?;
                    match ManifestOrIndex::parse(&bytes, Some(&chosen.media_type))? {
                        ManifestOrIndex::Manifest(m) => (bytes, m),
                        ManifestOrIndex::Index(_) => {
                            return Err(ImageError::malformed(
                                "image index",
                                "points to another index",
                            ));
                        }
                    }
                }
            };
        tracing::info!(reference = %r, manifest = %Digest::of(&manifest_bytes), layers = manifest.layers.len(), "pulling");
        self.download(&client, &manifest.config, progress).await?;
        let config_bytes = self.blobs.read_document(&manifest.config.digest)?;
        let (id, record) = ImageRecord::new(
            Digest::of(&manifest_bytes),
            &manifest,
            &config_bytes,
            vec![r.with_digest(&top)],
        )?;
        self.download_layers(&client, &manifest, progress).await?;
        self.blobs.write_bytes(&manifest_bytes)?;
        progress.step("unpacking");
        let tags: Vec<String> = r.tagged().into_iter().collect();
        let store = self.clone();
        let info = tokio::task::spawn_blocking(move || store.commit(id, record, &tags))
            .await
            .map_err(|e| ImageError::Io {
                context: "unpacking".to_string(),
                source: std::io::Error::other(e),
            })??;
        tracing::info!(image = %info.id, reference = %r, "pulled");
        Ok(info)
    }

    async fn download_layers(
        &self,
        client: &RegistryClient,
        manifest: &Manifest,
        progress: &dyn Progress,
    ) -> Result<(), ImageError> {
        // Futures made up front (they do nothing until polled): a stream mapping a closure over
        // borrowed layers would make `pull`'s future lose `Send`.
        let downloads: Vec<_> =
            manifest.layers.iter().map(|layer| self.download(client, layer, progress)).collect();
        stream::iter(downloads)
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Downloads one blob into the store unless it is there already; verified before it is visible.
    async fn download(
        &self,
        client: &RegistryClient,
        blob: &Descriptor,
        progress: &dyn Progress,
    ) -> Result<(), ImageError> {
        if self.blobs.contains(&blob.digest) {
            progress.finished(&blob.digest);
            return Ok(());
        }
        progress.started(&blob.digest, blob.size);
        let mut resp = client.blob(&blob.digest).await?;
        let mut writer = self.blobs.writer(&blob.digest, Some(blob.size))?;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| client.error(format!("downloading {}: {e}", blob.digest)))?
        {
            if let Err(e) = writer.write_all(&chunk) {
                return Err(writer.error(e));
            }
            progress.advanced(&blob.digest, chunk.len() as u64);
        }
        writer.commit()?;
        progress.finished(&blob.digest);
        Ok(())
    }
}
