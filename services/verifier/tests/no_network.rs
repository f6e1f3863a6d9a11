//! The child's limits refuse network sockets but keep local ones. A binary of its own, because
//! the filter and limits apply to the whole test process for good.

use kaiyuan_verifier::Ep;
use kaiyuan_verifier::sandbox::{Limits, apply_limits};

#[test]
fn after_the_limits_no_socket_reaches_the_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_ok(),
        "reachable before"
    );
    apply_limits(
        &Limits {
            memory_bytes: 8 << 30,
            cpu_seconds: 600,
            wall_seconds: 600,
        },
        Ep::Cpu,
    )
    .unwrap();
    let err = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(std::net::UdpSocket::bind("127.0.0.1:0").is_err());
    assert!(std::net::TcpStream::connect("[::1]:1").is_err());
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("local sockets still work");
    drop(a);
}
