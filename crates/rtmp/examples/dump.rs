//! Minimal blocking RTMP ingest for interop checks: accepts one publisher,
//! accepts every publish request and prints what arrives.
//!
//! ```text
//! cargo run -p rtmp --example dump -- 127.0.0.1:1935
//! ffmpeg -re -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine -t 4 \
//!     -c:v libx264 -g 50 -c:a aac -f flv rtmp://127.0.0.1:1935/live/cam
//! ```

use std::io::{Read, Write};
use std::net::TcpListener;

use rtmp::{ServerConfig, ServerEvent, ServerSession};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1935".into());
    let listener = TcpListener::bind(&addr)?;
    println!("listening on {}", listener.local_addr()?);
    let (mut sock, peer) = listener.accept()?;
    println!("connection from {peer}");

    let mut session = ServerSession::new(ServerConfig::default());
    let mut buf = vec![0u8; 64 * 1024];
    let (mut video, mut keyframes, mut audio, mut metadata) = (0u64, 0u64, 0u64, 0u64);
    let (mut media_bytes, mut first_ts, mut last_ts) = (0u64, None, 0u32);
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            println!("peer closed the connection");
            break;
        }
        if let Err(e) = session.handle_input(&buf[..n]) {
            println!("protocol error: {e}");
            break;
        }
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::Connect { app, tc_url } => {
                    println!("connect app={app:?} tcUrl={tc_url:?}")
                }
                ServerEvent::PublishRequest {
                    stream_id,
                    app,
                    name,
                    query,
                } => {
                    println!(
                        "publish stream={stream_id} app={app:?} name={name:?} query={query:?}"
                    );
                    session.accept_publish(stream_id);
                }
                ServerEvent::Metadata { stream_id, values } => {
                    metadata += 1;
                    println!("metadata stream={stream_id}: {values:?}");
                }
                ServerEvent::Video {
                    timestamp, data, ..
                } => {
                    video += 1;
                    // FLV video tag: frame type in the high nibble, 1 = key.
                    if data.first().is_some_and(|b| b >> 4 == 1) {
                        keyframes += 1;
                    }
                    media_bytes += data.len() as u64;
                    first_ts.get_or_insert(timestamp);
                    last_ts = timestamp;
                }
                ServerEvent::Audio {
                    timestamp, data, ..
                } => {
                    audio += 1;
                    media_bytes += data.len() as u64;
                    first_ts.get_or_insert(timestamp);
                    last_ts = last_ts.max(timestamp);
                }
                ServerEvent::Unpublish { stream_id } => println!("unpublish stream={stream_id}"),
            }
        }
        let out = session.take_output();
        if !out.is_empty() {
            sock.write_all(&out)?;
        }
    }
    println!(
        "video={video} (keyframes={keyframes}) audio={audio} metadata={metadata} \
         media_bytes={media_bytes} timestamps={}..{last_ts} ms",
        first_ts.unwrap_or(0)
    );
    Ok(())
}
