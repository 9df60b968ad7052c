//! The S3 message writer against an endpoint that accepts connections and never answers: a
//! write waits for room and then fails once the buffer is full, and the close gives up within
//! its bound. (Its own process: it sets the AWS endpoint in the environment.)
#![cfg(feature = "s3")]

use std::time::{Duration, Instant};

use dagster_pipes::S3Options;
use dagster_pipes::writer::{MessageSink, S3ChunkSink};

/// A listener that accepts connections and never answers: the S3 that hangs.
fn silent_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_silent_s3_fails_the_writer_within_its_bounds_and_holds_memory_to_its_limit() {
    let endpoint = silent_endpoint();
    // SAFETY: the only other thread (the listener) never reads the environment.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    let options = S3Options {
        upload_interval: Duration::from_millis(50),
        response_timeout: Duration::from_millis(300),
        close_timeout: Duration::from_secs(3),
        max_pending_bytes: 1024,
        ..S3Options::default()
    };
    let mut sink = S3ChunkSink::start(options, "bucket", "pipes/messages").unwrap();
    let started = Instant::now();
    // Far more than the bound holds: a write must fail, not grow for ever.
    let line = vec![b'x'; 100];
    let mut refused = None;
    for i in 0..5_000 {
        if let Err(e) = sink.send(&line) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("writes wait, then fail, once the buffer is full");
    assert!(i * line.len() <= 1024 + line.len(), "at most the byte bound (and one line) was taken: {i} lines");
    assert!(e.to_string().contains("buffer is full"), "{e}");
    let closed = sink.finish();
    assert!(closed.is_err(), "the close reports that the messages did not reach S3");
    assert!(started.elapsed() < Duration::from_secs(20), "bounded: {:?}", started.elapsed());
}
