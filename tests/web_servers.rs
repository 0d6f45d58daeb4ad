//! nginx and Apache httpd in Sentry pods, configured the way their official images are: nginx
//! writes its access log to `/var/log/nginx/access.log -> /dev/stdout` and its error log to
//! `-> /dev/stderr`; httpd logs to `/proc/self/fd/1` and `/proc/self/fd/2`. Both reopen their
//! inherited stdio through those paths (the runtime's log pipes), which is what the Sentry
//! must allow. Each serves through a ClusterIP Service and a hostPort, and `kubectl logs`
//! shows what each wrote. The programs are Debian's (nginx, apache2-bin), unpacked from the
//! packages `scripts/setup` downloads, with their libraries from this machine.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/node.rs"]
mod node;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, eventually};

const LIMIT: Duration = Duration::from_secs(420);

/// Where `scripts/setup` puts the packages.
fn debs() -> PathBuf {
    std::env::var_os("RINGFENCE_DEBS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ringfence/debs")
    })
}

/// Unpacks Debian package `name` (as downloaded by scripts/setup) into `root`.
fn unpack(name: &str, root: &Path) {
    let prefix = format!("{name}_");
    let deb = std::fs::read_dir(debs())
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        .unwrap_or_else(|| panic!("no {name} package in {}: run scripts/setup", debs().display()));
    let out = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Copies the host libraries `binary` (inside `root`) needs, finding the ones its packages
/// brought in `root`'s own library directory.
fn host_libraries(root: &Path, binary: &str) {
    let own = root.join("usr/lib/x86_64-linux-gnu");
    let ldd = Command::new("ldd")
        .arg(root.join(binary.trim_start_matches('/')))
        .env("LD_LIBRARY_PATH", &own)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ldd.stdout);
    assert!(!text.contains("not found"), "{binary}: {text}");
    // glibc loads libgcc_s itself when a thread exits (httpd's workers do).
    let dlopened = "/lib/x86_64-linux-gnu/libgcc_s.so.1";
    for lib in text.split_whitespace().filter(|w| w.starts_with('/')).chain([dlopened]) {
        if Path::new(lib).starts_with(root) {
            continue;
        }
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
}

/// A root with busybox (for the probes' and the test's shell) and the users the servers
/// switch to.
fn base_root(dir: &Path) -> PathBuf {
    let root = common::sentry::busybox_rootfs(&dir.join("root"));
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/nonexistent:/bin/false\nwww-data:x:33:33::/var/www:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnginx:x:101:\nwww-data:x:33:\n").unwrap();
    root
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn symlink(target: &str, root: &Path, path: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&p);
    std::os::unix::fs::symlink(target, p).unwrap();
}

const NGINX_CONF: &str = "user nginx;
worker_processes 2;
error_log /var/log/nginx/error.log notice;
pid /var/run/nginx.pid;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    server {
        listen 80;
        root /usr/share/nginx/html;
    }
}
";

/// The nginx image: Debian's nginx with the official image's configuration and log links.
fn nginx_image(dir: &Path) -> PathBuf {
    let root = base_root(dir);
    unpack("nginx", &root);
    unpack("nginx-common", &root);
    host_libraries(&root, "/usr/sbin/nginx");
    write(&root, "/etc/nginx/nginx.conf", NGINX_CONF);
    write(&root, "/usr/share/nginx/html/index.html", "served by nginx\n");
    symlink("/dev/stdout", &root, "/var/log/nginx/access.log");
    symlink("/dev/stderr", &root, "/var/log/nginx/error.log");
    for d in ["var/run", "var/cache/nginx", "var/lib/nginx"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    node::image_layout_of(dir, &root)
}

const HTTPD_CONF: &str = r#"ServerRoot "/usr/local/apache2"
Listen 80
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
User www-data
Group www-data
ServerName localhost
DocumentRoot "/usr/local/apache2/htdocs"
<Directory "/usr/local/apache2/htdocs">
    Require all granted
</Directory>
DirectoryIndex index.html
PidFile logs/httpd.pid
ErrorLog /proc/self/fd/2
LogLevel info
LogFormat "%h %l %u %t \"%r\" %>s %b" common
CustomLog /proc/self/fd/1 common
TypesConfig /dev/null
"#;

/// The httpd image: Debian's apache2 binary and modules with the official image's logging.
fn httpd_image(dir: &Path) -> PathBuf {
    let root = base_root(dir);
    for p in ["apache2-bin", "libapr1", "libaprutil1"] {
        unpack(p, &root);
    }
    host_libraries(&root, "/usr/sbin/apache2");
    write(&root, "/usr/local/apache2/conf/httpd.conf", HTTPD_CONF);
    write(&root, "/usr/local/apache2/htdocs/index.html", "served by httpd\n");
    std::fs::create_dir_all(root.join("usr/local/apache2/logs")).unwrap();
    node::image_layout_of(dir, &root)
}

/// A Deployment of `name` (one replica) with a hostPort on the node's loopback, and its
/// Service.
fn workload(name: &str, command: &str, host_port: u16) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      runtimeClassName: sentry
      terminationGracePeriodSeconds: 5
      containers:
      - name: {name}
        image: {name}:deb
        imagePullPolicy: Never
        command: {command}
        ports: [{{containerPort: 80, hostPort: {host_port}, hostIP: 127.0.0.1}}]
        readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80}}]
"#
    )
}

const RUNTIME_CLASS: &str =
    "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: sentry}\nhandler: sentry\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET `path` at `addr` until it answers with `status` (a Service's rules or a host port's
/// listener may trail the pod's readiness by moments).
fn get(addr: SocketAddr, path: &str, status: u16) -> String {
    let mut last = Err(String::new());
    let ok = eventually(Duration::from_secs(30), || {
        last = node::http_get(addr, path);
        matches!(&last, Ok((s, _)) if *s == status)
    });
    assert!(ok, "GET {path} at {addr}: {last:?}");
    last.map(|(_, body)| body).unwrap_or_default()
}

#[test]
fn nginx_and_httpd_log_to_their_reopened_stdio_and_serve_through_a_service_and_host_port() {
    let _watchdog = common::watchdog("the web server test", LIMIT);
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let c = Cluster::up(&[]);
    node::import_layout(c.data_dir(), &nginx_image(&work.path().join("nginx")), "nginx:deb");
    node::import_layout(c.data_dir(), &httpd_image(&work.path().join("httpd")), "httpd:deb");
    let servers = [
        ("nginx", r#"[/usr/sbin/nginx, -g, "daemon off;"]"#, "served by nginx", free_port()),
        (
            "httpd",
            "[/usr/sbin/apache2, -DFOREGROUND, -f, /usr/local/apache2/conf/httpd.conf]",
            "served by httpd",
            free_port(),
        ),
    ];
    let mut manifest = RUNTIME_CLASS.to_owned();
    for (name, command, _, port) in &servers {
        manifest.push_str("---\n");
        manifest.push_str(&workload(name, command, *port));
    }
    c.apply(&manifest, &[]);
    for (name, ..) in &servers {
        c.ok(&["rollout", "status", &format!("deployment/{name}"), "--timeout=180s"]);
    }
    eprintln!("both servers Ready {:.1} s after the start", started.elapsed().as_secs_f64());

    for (name, _, body, port) in &servers {
        let ip = c.json(&["get", "service", name])["spec"]["clusterIP"]
            .as_str()
            .expect("a cluster IP")
            .parse::<std::net::Ipv4Addr>()
            .expect("IPv4");
        let via_service = get((ip, 80).into(), "/", 200);
        assert_eq!(via_service.trim(), *body, "{name} through its Service");
        let via_host_port = get(([127, 0, 0, 1], *port).into(), "/", 200);
        assert_eq!(via_host_port.trim(), *body, "{name} through its host port");
        get(([127, 0, 0, 1], *port).into(), "/missing", 404);

        // What each wrote to the paths that reopen its stdio reached the container's log.
        let (access, error) = match *name {
            "nginx" => {
                ("\"GET /missing HTTP/1.0\" 404", "open() \"/usr/share/nginx/html/missing\" failed")
            }
            _ => (
                "\"GET /missing HTTP/1.0\" 404",
                "AH00128: File does not exist: /usr/local/apache2/htdocs/missing",
            ),
        };
        let mut logs = String::new();
        let logged = eventually(Duration::from_secs(20), || {
            logs = c.ok(&["logs", &format!("deployment/{name}")]);
            logs.contains(access) && logs.contains(error)
        });
        assert!(logged, "{name}: the access and error lines are not in its log:\n{logs}");
    }
    eprintln!("web servers: whole test {:.1} s", started.elapsed().as_secs_f64());
}
