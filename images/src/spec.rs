//! The JSON documents of OCI and Docker images: descriptors, manifests, indexes, configs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::ImageError;

pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

    /// What a registry is asked for, best first.
    pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
}

/// How a layer's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of_layer(media_type: &str) -> Result<Compression, ImageError> {
        match media_type {
            media::OCI_LAYER | media::DOCKER_LAYER => Ok(Compression::None),
            media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
            media::OCI_LAYER_ZSTD => Ok(Compression::Zstd),
            other => Err(ImageError::UnsupportedMediaType(other.to_string())),
        }
    }

    /// Tells by the magic bytes at the start of a stream, which is left unconsumed.
    pub fn sniff(reader: &mut impl std::io::BufRead) -> std::io::Result<Compression> {
        let head = reader.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        })
    }

    /// The Docker media type of a layer stored this way (for `docker save` archives).
    pub fn docker_layer_type(self) -> &'static str {
        match self {
            Compression::None => media::DOCKER_LAYER,
            Compression::Gzip => media::DOCKER_LAYER_GZIP,
            Compression::Zstd => media::OCI_LAYER_ZSTD,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema 2: same shape).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index / manifest list: one manifest per platform.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// The image configuration blob; only the parts a runtime needs.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// Parses a manifest or index, telling which one it is by its media type (the document's own
/// field, or the one the registry or the descriptor gave).
pub enum ManifestOrIndex {
    Manifest(Manifest),
    Index(Index),
}

impl ManifestOrIndex {
    pub fn parse(
        bytes: &[u8],
        outer_media_type: Option<&str>,
    ) -> Result<ManifestOrIndex, ImageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            media_type: Option<String>,
            #[serde(default)]
            schema_version: Option<u32>,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| ImageError::malformed("manifest", e))?;
        if probe.schema_version != Some(2) {
            return Err(ImageError::malformed(
                "manifest",
                "schemaVersion is not 2 (schema 1 images are not supported)",
            ));
        }
        let media_type = probe
            .media_type
            .as_deref()
            .or(outer_media_type.filter(|m| !m.is_empty() && !m.starts_with("application/json")));
        let media_type = match media_type {
            Some(m) => m.to_string(),
            // OCI makes mediaType optional; the shape tells.
            None if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
            None => media::OCI_MANIFEST.to_string(),
        };
        match media_type.as_str() {
            media::OCI_INDEX | media::DOCKER_LIST => Ok(ManifestOrIndex::Index(
                serde_json::from_slice(bytes)
                    .map_err(|e| ImageError::malformed("image index", e))?,
            )),
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => {
                let m: Manifest = serde_json::from_slice(bytes)
                    .map_err(|e| ImageError::malformed("image manifest", e))?;
                if m.config.media_type != media::OCI_CONFIG
                    && m.config.media_type != media::DOCKER_CONFIG
                {
                    return Err(ImageError::UnsupportedMediaType(m.config.media_type));
                }
                for l in &m.layers {
                    Compression::of_layer(&l.media_type)?;
                }
                Ok(ManifestOrIndex::Manifest(m))
            }
            other => Err(ImageError::UnsupportedMediaType(other.to_string())),
        }
    }
}

impl Index {
    /// The linux/amd64 manifest of an index.
    pub fn pick_platform(&self) -> Result<&Descriptor, ImageError> {
        self.manifests
            .iter()
            .find(|d| {
                d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
            })
            .ok_or(ImageError::NoMatchingPlatform)
    }
}
