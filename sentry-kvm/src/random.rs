//! Random bytes from the host, for everything in the sandbox that wants them: /dev/random and
//! /dev/urandom, getrandom(2) and the AT_RANDOM bytes of a new program.

/// Fills `buf` with random bytes from the host.
pub fn fill(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writing into the unfilled tail of `buf`.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n <= 0 {
            continue;
        }
        done += n as usize;
    }
}
