//! Who a container's processes run as: the CRI security context's user and groups, else the
//! image's `User`, with names resolved in the image's own `/etc/passwd` and `/etc/group`. Those
//! files are opened inside the image's root, so a symlink in an image never reaches the node's.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use k8s_cri::v1 as cri;

use super::CriError;

/// A process's user, primary group and supplementary groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Larger account files are not read (a hostile image could ship a huge one).
const MAX_ACCOUNT_FILE: u64 = 1 << 20;

/// One line of `/etc/passwd` or `/etc/group` that matters here.
struct Account {
    name: String,
    id: u32,
    /// passwd: the primary group; group: unused.
    gid: u32,
    /// group: its member names; passwd: empty.
    members: Vec<String>,
}

/// The identity of a container of the image at `rootfs` whose config says `image_user`
/// (`user`, `uid`, `user:group`, `uid:gid`, or empty).
pub fn resolve(
    rootfs: &Path,
    image_user: &str,
    security: Option<&cri::LinuxContainerSecurityContext>,
) -> Result<Identity, CriError> {
    let run_as_user = security.and_then(|s| s.run_as_user.as_ref()).map(|u| u.value);
    let run_as_username = security.map(|s| s.run_as_username.as_str()).unwrap_or_default();
    let run_as_group = security.and_then(|s| s.run_as_group.as_ref()).map(|g| g.value);
    if run_as_group.is_some() && run_as_user.is_none() && run_as_username.is_empty() {
        return Err(CriError::Invalid(
            "run_as_group is set without run_as_user or run_as_username".into(),
        ));
    }
    let (user, group) = match (run_as_user, run_as_username) {
        (Some(uid), _) => (numeric_id("run_as_user", uid)?.to_string(), None),
        (None, name) if !name.is_empty() => (name.to_string(), None),
        _ => match image_user.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (image_user.to_string(), None),
        },
    };
    let group = match run_as_group {
        Some(gid) => Some(numeric_id("run_as_group", gid)?.to_string()),
        None => group,
    };

    let passwd = read_accounts(rootfs, "etc/passwd", false)?;
    let (uid, mut gid, name) = if user.is_empty() {
        (0, 0, Some("root".to_string()))
    } else if let Ok(uid) = user.parse::<u32>() {
        match passwd.iter().find(|a| a.id == uid) {
            Some(a) => (uid, a.gid, Some(a.name.clone())),
            None => (uid, 0, None),
        }
    } else {
        let a = passwd.iter().find(|a| a.name == user).ok_or_else(|| {
            CriError::Invalid(format!("user {user:?} is not in the image's /etc/passwd"))
        })?;
        (a.id, a.gid, Some(a.name.clone()))
    };
    let groups_file = read_accounts(rootfs, "etc/group", true)?;
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups_file.iter().find(|a| a.name == g).map(|a| a.id).ok_or_else(|| {
                CriError::Invalid(format!("group {g:?} is not in the image's /etc/group"))
            })?,
        };
    }
    let mut groups: Vec<u32> = Vec::new();
    if let Some(name) = &name {
        groups.extend(groups_file.iter().filter(|a| a.members.contains(name)).map(|a| a.id));
    }
    for g in security.map(|s| s.supplemental_groups.as_slice()).unwrap_or_default() {
        groups.push(numeric_id("supplemental_groups", *g)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    groups.retain(|g| seen.insert(*g));
    Ok(Identity { uid, gid, groups })
}

fn numeric_id(field: &str, v: i64) -> Result<u32, CriError> {
    u32::try_from(v).map_err(|_| CriError::Invalid(format!("{field} {v} is not a valid id")))
}

/// The accounts of `relative` inside `rootfs`; none when the image has no such file.
fn read_accounts(rootfs: &Path, relative: &str, group: bool) -> Result<Vec<Account>, CriError> {
    let Some(text) = read_in_root(rootfs, relative)? else { return Ok(Vec::new()) };
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let name = f.first().filter(|n| !n.is_empty())?.to_string();
            let id = f.get(2)?.parse().ok()?;
            Some(if group {
                let members = f
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default();
                Account { name, id, gid: id, members }
            } else {
                Account { name, id, gid: f.get(3)?.parse().ok()?, members: Vec::new() }
            })
        })
        .collect())
}

/// Reads `relative` resolved as if `root` were `/` (openat2's RESOLVE_IN_ROOT): symlinks and
/// `..` stay inside it.
fn read_in_root(root: &Path, relative: &str) -> Result<Option<String>, CriError> {
    let dir = std::fs::File::open(root)?;
    let path = std::ffi::CString::new(relative)
        .map_err(|_| CriError::Invalid(format!("bad path {relative:?}")))?;
    // The kernel's `struct open_how` (libc's cannot be built field by field).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 with a valid directory fd, a NUL-terminated path and an open_how that
    // lives across the call, whose size is passed with it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
            _ => Err(e.into()),
        };
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(MAX_ACCOUNT_FILE).read_to_string(&mut text).map_err(|e| {
        CriError::Invalid(format!("the image's /{relative} is not readable text: {e}"))
    })?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(passwd: &str, group: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(dir.path().join("etc/group"), group).unwrap();
        dir
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:102:nginx:/nonexistent:/bin/false\nbroken line\n";
    const GROUP: &str = "root:x:0:\nnginx:x:102:\nwww:x:33:nginx,other\naudio:x:29:nginx\n";

    fn ctx(
        f: impl FnOnce(&mut cri::LinuxContainerSecurityContext),
    ) -> cri::LinuxContainerSecurityContext {
        let mut c = cri::LinuxContainerSecurityContext::default();
        f(&mut c);
        c
    }

    #[test]
    fn the_image_user_by_name_number_or_pair() {
        let d = image(PASSWD, GROUP);
        let root = d.path();
        assert_eq!(resolve(root, "", None).unwrap(), Identity::default());
        assert_eq!(
            resolve(root, "nginx", None).unwrap(),
            Identity { uid: 101, gid: 102, groups: vec![33, 29] }
        );
        assert_eq!(resolve(root, "101", None).unwrap().gid, 102);
        assert_eq!(
            resolve(root, "5000", None).unwrap(),
            Identity { uid: 5000, gid: 0, groups: vec![] }
        );
        assert_eq!(resolve(root, "nginx:www", None).unwrap().gid, 33);
        assert_eq!(
            resolve(root, "1:2", None).unwrap(),
            Identity { uid: 1, gid: 2, groups: vec![] }
        );
        assert!(resolve(root, "nobody", None).unwrap_err().to_string().contains("nobody"));
        assert!(resolve(root, "nginx:nogroup", None).is_err());
    }

    #[test]
    fn the_security_context_overrides_the_image() {
        let d = image(PASSWD, GROUP);
        let root = d.path();
        let by_uid = ctx(|c| {
            c.run_as_user = Some(cri::Int64Value { value: 101 });
            c.supplemental_groups = vec![4000, 33];
        });
        assert_eq!(
            resolve(root, "root", Some(&by_uid)).unwrap(),
            Identity { uid: 101, gid: 102, groups: vec![33, 29, 4000] }
        );
        let by_name = ctx(|c| {
            c.run_as_username = "nginx".into();
            c.run_as_group = Some(cri::Int64Value { value: 7 });
        });
        assert_eq!(resolve(root, "", Some(&by_name)).unwrap().gid, 7);
        let group_only = ctx(|c| c.run_as_group = Some(cri::Int64Value { value: 7 }));
        assert!(resolve(root, "nginx", Some(&group_only)).is_err());
        let negative = ctx(|c| c.run_as_user = Some(cri::Int64Value { value: -1 }));
        assert!(resolve(root, "", Some(&negative)).is_err());
    }

    #[test]
    fn account_files_are_read_inside_the_image() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        // Absolute and climbing symlinks both resolve inside the image.
        std::fs::write(d.path().join("etc/accounts"), "app:x:7:8::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/accounts", d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/gshadow", d.path().join("etc/group"))
            .unwrap();
        assert_eq!(
            resolve(d.path(), "app", None).unwrap(),
            Identity { uid: 7, gid: 8, groups: vec![] }
        );
        assert!(resolve(d.path(), "root", None).is_err(), "the node's root account was used");
        assert!(resolve(d.path(), "app:shadow", None).is_err(), "the node's groups were used");
        assert_eq!(resolve(d.path(), "0", None).unwrap(), Identity::default());
    }
}
