//! OCI seccomp profiles made of fuzzer input (what a node's profile file holds): parsing and
//! compiling never panic, and whatever compiles is a checked program that runs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentry_kvm::kernel::seccomp::filter::seccomp_data;
use sentry_kvm::kernel::seccomp::oci::SeccompProfile;

fuzz_target!(|input: &[u8]| {
    let Ok(profile) = serde_json::from_slice::<SeccompProfile>(input) else { return };
    if let Ok(p) = profile.compile() {
        for nr in [0, 59, 135, 170, 435] {
            let _ = p.run(&seccomp_data(nr, 0, &[u64::MAX, 0, 1 << 32, 0, 0, 0]));
        }
    }
});
