//! Debian's `docker-registry` (the reference distribution server) on loopback, and pushes to it
//! over its HTTP API.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use images::Digest;
use tempfile::TempDir;

pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: TempDir,
}

impl Registry {
    /// Starts a registry; `auth` is an extra YAML `auth:` section (or empty).
    pub async fn start(auth: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/setup)");
        let registry = Registry { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start: {}", registry.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes over the distribution API: blobs by monolithic upload, then a manifest under `reference`.
pub struct Pusher {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Pusher {
    pub fn new(registry: &Registry) -> Pusher {
        Pusher {
            http: reqwest::Client::new(),
            base: format!("http://{}", registry.addr),
            token: None,
        }
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn blob(&self, repo: &str, bytes: &[u8]) {
        let resp = self
            .auth(self.http.post(format!("{}/v2/{repo}/blobs/uploads/", self.base)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let resp = self
            .auth(self.http.put(format!("{url}{sep}digest={}", Digest::of(bytes))))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    }

    pub async fn manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let resp = self
            .auth(self.http.put(format!("{}/v2/{repo}/manifests/{reference}", self.base)))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    }

    /// Pushes a whole test image; returns its manifest's bytes.
    pub async fn image(&self, repo: &str, tag: &str, image: &super::TestImage) -> Vec<u8> {
        let (manifest, blobs) = image.manifest();
        for b in &blobs {
            self.blob(repo, b).await;
        }
        self.manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &manifest).await;
        manifest
    }
}
