//! System information: uname, sysinfo, getrandom, hostnames, syslog.

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::creds::caps::Capability;

pub fn uname(c: &mut Call) -> SysResult {
    let info = c.task.kernel.info();
    let mut b = vec![0u8; 65 * 6];
    let fields: [&[u8]; 6] = [
        b"Linux",
        &info.hostname,
        info.release.as_bytes(),
        info.version.as_bytes(),
        b"x86_64",
        b"(none)",
    ];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(64);
        b[i * 65..i * 65 + n].copy_from_slice(&f[..n]);
    }
    c.write_bytes(c.args[0], &b)?;
    Ok(0)
}

pub fn sysinfo(c: &mut Call) -> SysResult {
    let k = &c.task.kernel;
    let info = k.info();
    let mut b = [0u8; 112];
    let uptime = k.boot.elapsed().as_secs() as i64;
    let free = info.mem_bytes.saturating_sub(k.phys.frames.in_use() * 4096);
    b[0..8].copy_from_slice(&uptime.to_le_bytes());
    b[32..40].copy_from_slice(&info.mem_bytes.to_le_bytes());
    b[40..48].copy_from_slice(&free.to_le_bytes());
    let procs = k.tasks().threads.len() as u16;
    b[80..82].copy_from_slice(&procs.to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes());
    c.write_bytes(c.args[0], &b)?;
    Ok(0)
}

pub fn getrandom(c: &mut Call) -> SysResult {
    const GRND_NONBLOCK: u32 = 1;
    const GRND_RANDOM: u32 = 2;
    const GRND_INSECURE: u32 = 4;
    if c.arg_u32(2) & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0 {
        return Err(Errno::EINVAL);
    }
    let n = (c.args[1] as usize).min(1 << 20);
    let mut buf = vec![0u8; n];
    crate::random::fill(&mut buf);
    c.write_bytes(c.args[0], &buf)?;
    Ok(n as u64)
}

pub fn sethostname(c: &mut Call) -> SysResult {
    if !c.task.creds().has_cap(Capability::SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let n = c.args[1] as usize;
    if n > 64 {
        return Err(Errno::EINVAL);
    }
    let name = c.read_bytes(c.args[0], n)?;
    c.task.kernel.info.lock().unwrap_or_else(|e| e.into_inner()).hostname = name;
    Ok(0)
}

pub fn setdomainname(c: &mut Call) -> SysResult {
    if !c.task.creds().has_cap(Capability::SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    if c.args[1] > 64 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

pub fn syslog(c: &mut Call) -> SysResult {
    // No kernel log inside a sandbox: reading returns nothing.
    match c.arg_i32(0) {
        2..=4 => Ok(0),
        10 => Ok(0),
        _ => Err(Errno::EPERM),
    }
}
