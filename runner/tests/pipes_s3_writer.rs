//! The Pipes S3 message writer (pipes-rs) against moto's S3: a writer that outpaces the upload
//! interval is not held back by it, and every line arrives once, in order, in contiguous chunks
//! that each stay within the memory bound. (Its own process: it sets the AWS endpoint in the
//! environment, which the writer reads through the standard chain.)

mod support;

use std::time::Duration;

use dagster_pipes::S3Options;
use dagster_pipes::writer::{MessageSink, S3ChunkSink};
use runner_backends::aws::AwsClients;

const BOUND: usize = 64 * 1024;

async fn chunks(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<(u64, Vec<u8>)> {
    let listed = s3.list_objects_v2().bucket("pipes").prefix(prefix).send().await.unwrap();
    let mut out = Vec::new();
    for object in listed.contents() {
        let key = object.key().unwrap();
        let n: u64 = key.rsplit('/').next().unwrap().trim_end_matches(".json").parse().unwrap();
        let body = s3.get_object().bucket("pipes").key(key).send().await.unwrap().body.collect().await.unwrap();
        out.push((n, body.into_bytes().to_vec()));
    }
    out.sort();
    out
}

#[test]
fn a_writer_faster_than_the_upload_interval_is_not_held_back_and_loses_nothing() {
    let moto = support::Moto::start();
    // SAFETY: no other thread of this process exists yet.
    unsafe {
        for (key, value) in moto.env() {
            std::env::set_var(key, value);
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(async {
        let s3 = AwsClients::for_endpoint(&moto.endpoint, "us-east-1").await.s3().await;
        s3.create_bucket().bucket("pipes").send().await.unwrap();
        s3
    });
    // An interval far longer than the test: only a full buffer can make the writer upload.
    let options = S3Options {
        upload_interval: Duration::from_secs(3600),
        max_pending_bytes: BOUND,
        close_timeout: Duration::from_secs(60),
        ..S3Options::default()
    };
    let mut sink = S3ChunkSink::start(options, "pipes", "run/messages").unwrap();
    // About 20 times the bound.
    let lines: Vec<Vec<u8>> =
        (0..20_000).map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(50)).into_bytes()).collect();
    for line in &lines {
        sink.send(line).expect("the writer is not held back by the interval");
    }
    // Once the last write returns, the writer holds at most the bound and one line: all the
    // rest is in S3 already, an hour before the interval would have sent any of it.
    let before_close = rt.block_on(chunks(&s3, "run/messages/"));
    let written: usize = lines.iter().map(Vec::len).sum();
    let longest = lines.iter().map(Vec::len).max().unwrap();
    // Each chunk dropped one line's newline at its end.
    let in_s3: usize = before_close.iter().map(|(_, body)| body.len() + 1).sum();
    assert!(
        in_s3 + BOUND + longest >= written,
        "{in_s3} of {written} bytes in S3 before the close, in {} chunks",
        before_close.len()
    );
    sink.finish().expect("the close uploads the rest");

    let all = rt.block_on(chunks(&s3, "run/messages/"));
    let numbers: Vec<u64> = all.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=all.len() as u64).collect::<Vec<_>>(), "contiguous chunk numbers");
    for (n, body) in &all {
        assert!(!body.is_empty() && !body.ends_with(b"\n"), "chunk {n}: non-empty, no trailing newline");
        assert!(body.len() <= BOUND + longest, "chunk {n} holds {} bytes, over the bound", body.len());
    }
    let received: Vec<&[u8]> = all.iter().flat_map(|(_, body)| body.split(|b| *b == b'\n')).collect();
    let sent: Vec<&[u8]> = lines.iter().map(|l| &l[..l.len() - 1]).collect();
    assert_eq!(received.len(), sent.len(), "every line arrives once");
    assert!(received == sent, "in the order written");
}
