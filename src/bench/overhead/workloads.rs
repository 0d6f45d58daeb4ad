//! What each job runs inside a sandbox (paths as the sandbox sees them), and how big: the sizes
//! of a quick and of a full run.

use std::time::Duration;

use super::model::Job;

/// How much work a run does.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Sandboxes per job (samples per metric).
    pub reps: usize,
    /// Sandboxes for the jobs that move a file's worth of data (file I/O, CPU).
    pub heavy_reps: usize,
    /// Start-to-exit samples.
    pub starts: usize,
    /// Time budget of each timed loop inside a sandbox.
    pub seconds: f64,
    /// The sequential file, the data hashed (gzip takes 1/64 of it), the bytes sent over TCP.
    pub file_mib: u64,
    pub cpu_mib: u64,
    pub net_mib: u64,
    /// Rows of the sqlite workload's table.
    pub sqlite_rows: u64,
    /// How long an idle sandbox settles before its memory is read.
    pub settle: Duration,
    /// Longest one sandbox may take before the job is failed.
    pub job_timeout: Duration,
}

impl Sizes {
    pub fn quick() -> Sizes {
        Sizes {
            reps: 3,
            heavy_reps: 2,
            starts: 10,
            seconds: 0.15,
            file_mib: 16,
            cpu_mib: 16,
            net_mib: 32,
            sqlite_rows: 10_000,
            settle: Duration::from_secs(1),
            job_timeout: Duration::from_secs(90),
        }
    }

    pub fn full() -> Sizes {
        Sizes {
            reps: 5,
            heavy_reps: 3,
            starts: 30,
            seconds: 1.0,
            file_mib: 1024,
            cpu_mib: 1024,
            net_mib: 1024,
            sqlite_rows: 50_000,
            settle: Duration::from_secs(3),
            job_timeout: Duration::from_secs(600),
        }
    }

    /// Sandboxes `job` starts.
    pub fn reps_of(&self, job: Job) -> usize {
        match job {
            Job::Start => self.starts,
            Job::FileRoot | Job::FileVolume | Job::Cpu => self.heavy_reps,
            Job::Memory => self.reps.min(3),
            _ => self.reps,
        }
    }
}

/// Where the network job's client finds the host's peer, from inside the sandbox.
pub struct PeerAddr {
    pub ip: String,
    pub port: u16,
}

/// The program and arguments of `job`, and whether it wants the volume at /vol. `Http` and
/// `Memory` start a server or an idle program; `http_listen` is what httpd binds.
pub fn command(job: Job, s: &Sizes, peer: &PeerAddr, http_listen: &str) -> (Vec<String>, bool) {
    let secs = format!("{}", s.seconds);
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match job {
        Job::Start => (v(&["/bin/true"]), false),
        Job::Http => (v(&["/bin/httpd", "-f", "-p", http_listen, "-h", "/www"]), false),
        Job::Memory => (v(&["/bin/sleep", "3600"]), false),
        Job::Syscalls => (v(&["/bin/work", "syscalls", &secs, "/etc/hostname"]), false),
        Job::Fork => (v(&["/bin/work", "fork", &secs, "/bin/true"]), false),
        Job::FileRoot => {
            (v(&["/bin/work", "files", "root", "/data", &s.file_mib.to_string(), &secs]), false)
        }
        Job::FileVolume => {
            (v(&["/bin/work", "files", "vol", "/vol", &s.file_mib.to_string(), &secs]), true)
        }
        Job::Network => (
            v(&[
                "/bin/work",
                "net",
                &peer.ip,
                &peer.port.to_string(),
                &s.net_mib.to_string(),
                &secs,
            ]),
            false,
        ),
        Job::Cpu => (v(&["/bin/work", "cpu", &s.cpu_mib.to_string(), "/bin/gzip", "/data"]), false),
        Job::App => (
            v(&[
                "/bin/work",
                "sqlite",
                super::rootfs::SQLITE3,
                "/data",
                &s.sqlite_rows.to_string(),
            ]),
            false,
        ),
    }
}

/// The `RESULT <id> <value>` lines of a workload's output.
pub fn parse_results(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("RESULT ")?.split_whitespace();
            let id = w.next()?.to_owned();
            let v = w.next()?.parse::<f64>().ok()?;
            v.is_finite().then_some((id, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_parsed_and_junk_ignored() {
        let out = "noise\nRESULT getpid_us 0.05\nRESULT bad x\nRESULT nan_one NaN\nRESULT a 3";
        assert_eq!(parse_results(out), vec![("getpid_us".to_owned(), 0.05), ("a".to_owned(), 3.0)]);
    }
}
