//! Pty pairs driven as host code would: typed input, echo and output, hang-up.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::abi::Errno;
use crate::abi::termios::Winsize;
use crate::kernel::tty::devpts::Devpts;
use crate::vfs::context::TestContext;
use crate::vfs::file::FileOps;

#[test]
fn host_code_drives_a_pair_as_a_terminal() {
    let devpts = Devpts::new(Weak::new());
    let (master, slave) = devpts.open_pair().unwrap();
    let reader = TestContext::default();
    assert_eq!(master.write_from_host(b"ls -l\r").unwrap(), 6);
    let mut buf = [0u8; 64];
    let n = slave.read(&reader, &mut buf, false).unwrap();
    assert_eq!(&buf[..n], b"ls -l\n");
    slave.write(&reader, b"out\n", false).unwrap();
    let n = master.read_from_host(&mut buf, Duration::from_secs(5)).unwrap();
    // The echo of what was typed, then the program's output, newlines as CRLF.
    assert_eq!(&buf[..n], b"ls -l\r\nout\r\n");
    assert_eq!(master.read_from_host(&mut buf, Duration::from_millis(10)), Err(Errno::EAGAIN));
    master.pty().set_winsize(Winsize { rows: 50, cols: 132, ..Default::default() });
    drop(slave);
    assert_eq!(master.read_from_host(&mut buf, Duration::from_secs(5)), Err(Errno::EIO));
}

#[test]
fn a_closed_master_ends_the_slaves_reads() {
    let devpts = Devpts::new(Weak::new());
    let (master, slave) = devpts.open_pair().unwrap();
    let index = master.pty().index();
    drop(master);
    let reader = TestContext::default();
    let mut buf = [0u8; 8];
    assert_eq!(slave.read(&reader, &mut buf, false), Ok(0));
    assert_eq!(slave.write(&reader, b"x", false), Err(Errno::EIO));
    drop(slave);
    // The index is free again.
    let (again, _s) = devpts.open_pair().unwrap();
    assert_eq!(again.pty().index(), index);
}

#[test]
fn the_host_relay_types_input_and_carries_output_until_the_terminal_closes() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use crate::kernel::thread_group::{ThreadGroup, default_rlimits};
    use crate::kernel::tty::host_relay;

    let devpts = Devpts::new(Weak::new());
    let (master, slave) = devpts.open_pair().unwrap();
    let (mut keyboard, input) = UnixStream::pair().unwrap();
    let (mut screen, output) = UnixStream::pair().unwrap();
    screen.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let process = ThreadGroup::new(
        7,
        Default::default(),
        default_rlimits((1024, 4096)),
        crate::kernel::pid_ns::PidNamespace::root(),
    );
    host_relay::spawn(master, input.into(), output.into(), process).unwrap();
    keyboard.write_all(b"hi\r").unwrap();
    let reader = TestContext::default();
    let mut buf = [0u8; 64];
    // Read without blocking, so that a relay that never types fails rather than hangs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let n = loop {
        match slave.read(&reader, &mut buf, true) {
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => break r.unwrap(),
        }
    };
    assert_eq!(&buf[..n], b"hi\n");
    slave.write(&reader, b"out\n", false).unwrap();
    drop(slave);
    // The echo, the output, then the end: the relay lets go of the screen once the terminal's
    // last slave descriptor is closed and its output taken.
    let mut shown = Vec::new();
    screen.read_to_end(&mut shown).unwrap();
    assert_eq!(shown, b"hi\r\nout\r\n");
}
