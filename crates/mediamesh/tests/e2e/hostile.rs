//! End to end, hostile input while another stream plays: garbage and truncated RTMP
//! handshakes, oversized chunk sizes, thousands of chunk stream ids, oversized
//! messages, huge HTTP headers, malformed requests and path traversal. The server must
//! stay up, the demo stream must keep advancing and memory must stay bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Completes the RTMP handshake as a client.
fn handshake(port: u16) -> TcpStream {
    let mut s = connect(port);
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| (i * 7 % 251) as u8));
    s.write_all(&c0c1).expect("C0C1");
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s0s1s2).expect("S0S1S2");
    assert_eq!(s0s1s2[0], 3);
    s.write_all(&s0s1s2[1..1537]).expect("C2");
    s
}

/// True when the server closes the connection (EOF or reset) within the read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

/// Chunk basic header (fmt 0) + message header for `csid`.
fn chunk_header(csid: u32, type_id: u8, len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    if csid < 64 {
        h.push(csid as u8);
    } else {
        let rest = csid - 64;
        h.extend([1u8, (rest & 0xff) as u8, (rest >> 8) as u8]);
    }
    h.extend([0, 0, 0]); // timestamp
    h.extend(&len.to_be_bytes()[1..]);
    h.push(type_id);
    h.extend([0, 0, 0, 0]); // message stream id
    h
}

fn demo_msn(server: &Server) -> u64 {
    let (_, text) = get_text(&server.url("/live/demo/src/index.m3u8"));
    let pl = media::hls::MediaPlaylist::parse(&text).expect("demo playlist parses");
    pl.media_sequence + pl.segments.len() as u64
}

#[test]
fn hostile_clients_do_not_hurt_the_server_or_other_streams() {
    let mut server = Server::start("serve", &["--demo"]);
    wait_for_200(
        &server.url("/live/demo/index.m3u8"),
        Duration::from_secs(15),
    );
    let before = demo_msn(&server);
    let rss_before = server.rss_kib();

    // 1. Garbage instead of a handshake.
    let mut s = connect(server.rtmp);
    let garbage: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&garbage);
    assert!(
        closed_by_server(&mut s),
        "garbage must close the connection"
    );

    // 2. Truncated handshakes: C0 only, half a C1, then hang up.
    for cut in [1usize, 700, 1536] {
        let mut s = connect(server.rtmp);
        let mut c0c1 = vec![3u8];
        c0c1.extend(std::iter::repeat_n(9u8, 1536));
        let _ = s.write_all(&c0c1[..cut]);
        drop(s);
    }

    // 3. Oversized chunk size.
    let mut s = handshake(server.rtmp);
    let mut msg = chunk_header(2, 1, 4);
    msg.extend(0x7fff_ffffu32.to_be_bytes());
    let _ = s.write_all(&msg);
    assert!(
        closed_by_server(&mut s),
        "an oversized chunk size must close the connection"
    );

    // 4. Thousands of chunk stream ids, each with a message left half-sent.
    let mut s = handshake(server.rtmp);
    let mut burst = Vec::new();
    for csid in 3..5000u32 {
        burst.extend(chunk_header(csid, 9, 1000));
        burst.extend([0u8; 64]);
    }
    let _ = s.write_all(&burst);
    assert!(
        closed_by_server(&mut s),
        "too many chunk streams must close the connection"
    );

    // 5. A declared message length far past the limit.
    let mut s = handshake(server.rtmp);
    let _ = s.write_all(&chunk_header(4, 9, 0x00ff_ffff));
    assert!(
        closed_by_server(&mut s),
        "an oversized message must close the connection"
    );

    // 6. Huge HTTP headers: refused, the server lives on.
    let mut s = connect(server.http);
    let mut req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend(b"\r\n\r\n");
    let _ = s.write_all(&req);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "a 1 MiB header must not be served: {answer}"
    );

    // 7. Malformed HTTP.
    for junk in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let mut s = connect(server.http);
        let _ = s.write_all(junk);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }

    // 8. Path traversal and nonsense paths.
    for path in [
        "/live/../../etc/passwd",
        "/live/demo/..%2F..%2FCargo.toml",
        "/live/demo/src/..%2Finit.mp4",
        "/live/%2e%2e/src/index.m3u8",
        "/vod/..%2F..%2Fetc%2Fpasswd/index.m3u8",
        "/static/..%2F..%2FCargo.toml",
        "/live/demo/src/seg99999999999999999999999.m4s",
        "/live/demo/src/part1.99999999999999.m4s",
    ] {
        let (status, body) = get_text(&server.url(path));
        assert!(status == 404 || status == 400, "{path}: {status} {body}");
        assert!(!body.contains("root:"), "{path} leaked a file");
    }

    // 9. Many idle connections at once.
    let idle: Vec<TcpStream> = (0..200).map(|_| connect(server.rtmp)).collect();

    // The server is up, the demo stream kept advancing, memory stayed bounded.
    std::thread::sleep(Duration::from_secs(3));
    assert!(server.alive(), "server died:\n{}", server.log_text());
    assert_eq!(get(&server.url("/healthz")).0, 200);
    let until = Instant::now() + Duration::from_secs(10);
    while demo_msn(&server) <= before {
        assert!(Instant::now() < until, "demo stream stopped advancing");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(idle);
    let rss = server.rss_kib();
    assert!(
        rss < 300 * 1024,
        "RSS {rss} KiB (was {rss_before} KiB before the attack)"
    );
    let log = server.log_text();
    assert!(
        log.contains("rtmp connection ended"),
        "errors are logged:\n{log}"
    );
}
