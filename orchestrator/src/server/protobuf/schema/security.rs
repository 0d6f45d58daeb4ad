//! Security contexts of pods and containers: users, capabilities, SELinux, seccomp,
//! AppArmor, sysctls.

use super::Ty::*;
use super::{Field, Msg};

pub static SECURITY_CONTEXT: Msg = Msg {
    name: "SecurityContext",
    fields: &[
        f!(1 "capabilities" Msg(&CAPABILITIES)),
        f!(2 "privileged" Bool),
        f!(3 "seLinuxOptions" Msg(&SE_LINUX_OPTIONS)),
        f!(10 "windowsOptions" Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        f!(4 "runAsUser" Int),
        f!(8 "runAsGroup" Int),
        f!(5 "runAsNonRoot" Bool),
        f!(6 "readOnlyRootFilesystem" Bool),
        f!(7 "allowPrivilegeEscalation" Bool),
        f!(9 "procMount" Str),
        f!(11 "seccompProfile" Msg(&SECCOMP_PROFILE)),
        f!(12 "appArmorProfile" Msg(&APP_ARMOR_PROFILE)),
    ],
};

pub static CAPABILITIES: Msg =
    Msg { name: "Capabilities", fields: &[f!(1 "add" [Str]), f!(2 "drop" [Str])] };

pub static SE_LINUX_OPTIONS: Msg = Msg {
    name: "SELinuxOptions",
    fields: &[f!(1 "user" Str), f!(2 "role" Str), f!(3 "type" Str), f!(4 "level" Str)],
};

pub static WINDOWS_SECURITY_CONTEXT_OPTIONS: Msg = Msg {
    name: "WindowsSecurityContextOptions",
    fields: &[
        f!(1 "gmsaCredentialSpecName" Str),
        f!(2 "gmsaCredentialSpec" Str),
        f!(3 "runAsUserName" Str),
        f!(4 "hostProcess" Bool),
    ],
};

pub static SECCOMP_PROFILE: Msg =
    Msg { name: "SeccompProfile", fields: &[f!(1 "type" Str), f!(2 "localhostProfile" Str)] };

pub static APP_ARMOR_PROFILE: Msg =
    Msg { name: "AppArmorProfile", fields: &[f!(1 "type" Str), f!(2 "localhostProfile" Str)] };

pub static POD_SECURITY_CONTEXT: Msg = Msg {
    name: "PodSecurityContext",
    fields: &[
        f!(1 "seLinuxOptions" Msg(&SE_LINUX_OPTIONS)),
        f!(8 "windowsOptions" Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        f!(2 "runAsUser" Int),
        f!(6 "runAsGroup" Int),
        f!(3 "runAsNonRoot" Bool),
        f!(4 "supplementalGroups" [Int]),
        f!(12 "supplementalGroupsPolicy" Str),
        f!(5 "fsGroup" Int),
        f!(7 "sysctls" [Msg(&SYSCTL)]),
        f!(9 "fsGroupChangePolicy" Str),
        f!(10 "seccompProfile" Msg(&SECCOMP_PROFILE)),
        f!(11 "appArmorProfile" Msg(&APP_ARMOR_PROFILE)),
        f!(13 "seLinuxChangePolicy" Str),
    ],
};

pub static SYSCTL: Msg = Msg { name: "Sysctl", fields: &[f!(1 "name" Str), f!(2 "value" Str)] };
