//! The agent as an ordinary process (`--unix`), driven through the real gRPC API: exits,
//! signals, large output, stdin, and bad requests answered without harm.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use guest_agent::client::{self, AgentClient};
use guest_agent::exit::Exit;
use guest_agent::proto;

struct Agent {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_ringfence-agent"))
        .arg("--unix")
        .arg(&socket)
        .spawn()
        .unwrap();
    Agent { child, _dir: dir, socket }
}

async fn connect(path: &Path) -> AgentClient {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client::connect_unix(path).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("agent never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn sh(script: &str) -> proto::ExecRequest {
    proto::ExecRequest {
        args: vec!["/bin/busybox".into(), "sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

async fn run(c: &mut AgentClient, req: proto::ExecRequest) -> (Exit, Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit = client::run(c, req, &mut out, &mut err).await.unwrap();
    (exit, out, err)
}

#[tokio::test]
async fn exits_signals_and_large_output_are_reported_exactly() {
    let agent = start();
    let mut c = connect(&agent.socket).await;
    let h = c.health(proto::HealthRequest {}).await.unwrap().into_inner();
    assert_eq!(h.version, guest_agent::VERSION);
    assert!(!h.kernel_release.is_empty());

    let (exit, out, err) = run(&mut c, sh("echo hello; echo oops >&2; exit 7")).await;
    assert_eq!(
        (exit, out.as_slice(), err.as_slice()),
        (Exit::Code(7), &b"hello\n"[..], &b"oops\n"[..])
    );

    let (exit, _, _) = run(&mut c, sh("kill -SEGV $$")).await;
    assert_eq!(exit, Exit::Signal(libc::SIGSEGV));

    // 10 MiB through stdout, byte-exact.
    let (exit, out, _) = run(&mut c, sh("head -c 10485760 /dev/zero | tr '\\0' 'x'")).await;
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(out.len(), 10 << 20);
    assert!(out.iter().all(|&b| b == b'x'));

    // Still serving after all of that.
    assert!(c.health(proto::HealthRequest {}).await.is_ok());
}

#[tokio::test]
async fn a_process_runs_as_its_user_groups_and_directory() {
    let agent = start();
    let mut c = connect(&agent.socket).await;
    let req = proto::ExecRequest {
        uid: 65534,
        gid: 65533,
        groups: vec![65532, 65531],
        cwd: "/tmp".into(),
        env: vec!["GREETING=hi".into()],
        security: Some(proto::Security {
            capabilities: 1 << 10, // CAP_NET_BIND_SERVICE
            no_new_privs: true,
            seccomp_filter: Vec::new(),
        }),
        ..sh("echo $(id -u) $(id -g) $(id -G) $(pwd) $GREETING")
    };
    // The child shares the agent's memory until its exec: a libc call that waits for the
    // agent's threads would hang it, so a watchdog.
    let ran = tokio::time::timeout(Duration::from_secs(30), run(&mut c, req)).await;
    let (exit, out, err) = ran.expect("the process did not start or end within 30 s");
    assert_eq!(exit, Exit::Code(0), "{}", String::from_utf8_lossy(&err));
    assert_eq!(String::from_utf8_lossy(&out), "65534 65533 65533 65531 65532 /tmp hi\n");

    // A program that is not there: a clear error, and the agent goes on.
    let missing = proto::ExecRequest { args: vec!["no-such-program".into()], ..Default::default() };
    let e = client::run(&mut c, missing, &mut Vec::new(), &mut Vec::new()).await.unwrap_err();
    assert!(e.to_string().contains("no-such-program"), "{e}");
    assert!(c.health(proto::HealthRequest {}).await.is_ok());
}

#[tokio::test]
async fn stdin_signal_and_wait_by_exec_id() {
    let agent = start();
    let mut c = connect(&agent.socket).await;
    let mut req = sh("read line; echo got:$line; sleep 1000");
    req.exec_id = "reader".into();
    req.stdin = true;
    let mut events = c.exec(req).await.unwrap().into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(proto::exec_event::Event::Started(pid)) if pid > 0));
    c.write_stdin(proto::WriteStdinRequest {
        exec_id: "reader".into(),
        data: b"abc\n".to_vec(),
        close: true,
    })
    .await
    .unwrap();
    let ev = events.message().await.unwrap().unwrap();
    assert_eq!(ev.event, Some(proto::exec_event::Event::Stdout(b"got:abc\n".to_vec())));
    // A second process with the same id is refused while the first is known.
    let mut dup = sh("true");
    dup.exec_id = "reader".into();
    assert_eq!(c.exec(dup).await.unwrap_err().code(), tonic::Code::AlreadyExists);

    c.signal(proto::SignalRequest { exec_id: "reader".into(), signal: libc::SIGTERM })
        .await
        .unwrap();
    let w = c.wait(proto::WaitRequest { exec_id: "reader".into() }).await.unwrap().into_inner();
    assert_eq!(Exit::try_from(&w.status.unwrap()), Ok(Exit::Signal(libc::SIGTERM)));
    // Wait after the end answers at once; signalling an ended process is refused.
    let w = c.wait(proto::WaitRequest { exec_id: "reader".into() }).await.unwrap().into_inner();
    assert_eq!(Exit::try_from(&w.status.unwrap()), Ok(Exit::Signal(libc::SIGTERM)));
    let e =
        c.signal(proto::SignalRequest { exec_id: "reader".into(), signal: 9 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_process_on_a_terminal_has_a_tty_its_size_and_echo() {
    let agent = start();
    let mut c = connect(&agent.socket).await;
    let mut req = sh("stty size; read line; tty; stty size; echo got:$line");
    (req.exec_id, req.stdin, req.terminal, req.rows, req.cols) =
        ("term".into(), true, true, 20, 50);
    let mut events = c.exec(req).await.unwrap().into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(proto::exec_event::Event::Started(_))));
    // Started at the size asked for.
    let sized = tokio::time::timeout(Duration::from_secs(20), events.message()).await;
    let ev = sized.expect("no output within 20 s").unwrap().unwrap();
    assert_eq!(ev.event, Some(proto::exec_event::Event::Stdout(b"20 50\r\n".to_vec())));
    // Resized while the shell waits for its line, which it then gets echoed.
    c.resize(proto::ResizeRequest { exec_id: "term".into(), rows: 33, cols: 101 }).await.unwrap();
    let data = b"abc\n".to_vec();
    c.write_stdin(proto::WriteStdinRequest { exec_id: "term".into(), data, close: false })
        .await
        .unwrap();
    let collect = async {
        let (mut shown, mut exit) = (Vec::new(), None);
        while let Some(ev) = events.message().await.unwrap() {
            match ev.event {
                Some(proto::exec_event::Event::Stdout(b)) => shown.extend(b),
                Some(proto::exec_event::Event::Stderr(b)) => panic!("stderr on a terminal: {b:?}"),
                Some(proto::exec_event::Event::Exited(s)) => exit = Exit::try_from(&s).ok(),
                _ => {}
            }
        }
        (String::from_utf8_lossy(&shown).into_owned(), exit)
    };
    let (shown, exit) = tokio::time::timeout(Duration::from_secs(20), collect)
        .await
        .expect("the terminal process did not end within 20 s");
    assert_eq!(exit, Some(Exit::Code(0)), "{shown}");
    assert!(shown.starts_with("abc\r\n/dev/pts/"), "{shown}");
    assert!(shown.ends_with("\r\n33 101\r\ngot:abc\r\n"), "{shown}");
    // A process on pipes has no terminal to resize.
    let mut plain = sh("true");
    plain.exec_id = "plain".into();
    run(&mut c, plain).await;
    let e = c
        .resize(proto::ResizeRequest { exec_id: "plain".into(), rows: 1, cols: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
}

fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> tonic::Status {
    match r {
        Ok(_) => panic!("a bad request was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let agent = start();
    let mut c = connect(&agent.socket).await;

    let e = code(c.exec(proto::ExecRequest::default()).await);
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let e = code(
        c.exec(proto::ExecRequest { args: vec!["/no/such/program".into()], ..Default::default() })
            .await,
    );
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert!(e.message().contains("/no/such/program"), "{e:?}");
    let mut bad_env = sh("true");
    bad_env.env = vec!["NOEQUALS".into()];
    assert_eq!(code(c.exec(bad_env).await).code(), tonic::Code::InvalidArgument);
    let mut no_container = sh("true");
    no_container.container_id = "ghost".into();
    assert_eq!(code(c.exec(no_container).await).code(), tonic::Code::NotFound);
    let e = code(
        c.create_container(proto::CreateContainerRequest {
            id: "../../etc".into(),
            device: "/dev/vda".into(),
            fstype: "ext4".into(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let e = code(c.signal(proto::SignalRequest { exec_id: "nobody".into(), signal: 9 }).await);
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = code(
        c.configure_interface(proto::ConfigureInterfaceRequest {
            name: "eth0".into(),
            address: "300.1.1.1/24".into(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = code(
        c.configure_interface(proto::ConfigureInterfaceRequest {
            name: "eth0".into(),
            address: "10.0.2.15/24".into(),
            mac: "01:00:5e:00:00:01".into(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("01:00:5e:00:00:01"), "{e:?}");
    // Refresh checks every field before it touches anything (this agent runs on the test's
    // host, so only requests that must be refused are sent).
    let refresh = proto::RefreshRequest {
        entropy: vec![0x5a; 32],
        hostname: "clone-1".into(),
        generation: 1,
        ..Default::default()
    };
    for (bad, what) in [
        (proto::RefreshRequest { entropy: vec![0x5a; 31], ..refresh.clone() }, "31 bytes"),
        (proto::RefreshRequest { entropy: Vec::new(), ..refresh.clone() }, "0 bytes"),
        (proto::RefreshRequest { hostname: "bad_name".into(), ..refresh.clone() }, "bad_name"),
        (proto::RefreshRequest { share_tag: "two words".into(), ..refresh.clone() }, "two words"),
        (proto::RefreshRequest { unix_time_ns: -5, ..refresh.clone() }, "-5"),
        (proto::RefreshRequest { generation: 0, ..refresh.clone() }, "generation 0"),
    ] {
        let e = code(c.refresh(bad).await);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(what), "{what}: {e:?}");
    }
    let mut long = sh("sleep 100");
    long.exec_id = "long".into();
    let _events = c.exec(long).await.unwrap();
    let e = code(c.signal(proto::SignalRequest { exec_id: "long".into(), signal: 999 }).await);
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let h = c.health(proto::HealthRequest {}).await.unwrap().into_inner();
    assert_eq!((h.containers, h.processes, h.generation), (0, 1, 0));
    let s = c.stats(proto::StatsRequest::default()).await.unwrap().into_inner();
    assert!(s.guest_memory_total_bytes > 0);
    c.signal(proto::SignalRequest { exec_id: "long".into(), signal: 9 }).await.unwrap();
}

#[tokio::test]
async fn a_client_over_one_stream_keeps_to_it() {
    let agent = start();
    connect(&agent.socket).await;
    let stream = tokio::net::UnixStream::connect(&agent.socket).await.unwrap();
    let mut c = client::over_stream(stream).await.unwrap();
    c.health(proto::HealthRequest {}).await.unwrap();
    let (exit, out, _) = run(&mut c, sh("echo one")).await;
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(out, b"one\n");
}
