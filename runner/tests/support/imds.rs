//! A stand-in for one instance's metadata service (IMDSv2): a token, the instance's identity,
//! and a spot interruption notice once `armed` (served once, as one instance is reclaimed).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Who the instance is.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub instance_id: String,
    pub instance_type: String,
    pub availability_zone: String,
}

/// Serves until the process ends; returns the endpoint (`http://127.0.0.1:PORT`).
pub fn serve(identity: Identity, armed: Arc<AtomicBool>, served: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let found =
                |v: &str| if v.is_empty() { ("404 Not Found", String::new()) } else { ("200 OK", v.to_string()) };
            let (status, body) = match path.as_str() {
                "/latest/api/token" if request.starts_with("PUT") => ("200 OK", "stand-in-token".to_string()),
                "/latest/meta-data/instance-id" => found(&identity.instance_id),
                "/latest/meta-data/instance-type" => found(&identity.instance_type),
                "/latest/meta-data/placement/availability-zone" => found(&identity.availability_zone),
                "/latest/meta-data/placement/region" => {
                    let az = &identity.availability_zone;
                    found(az.strip_suffix(|c: char| c.is_ascii_lowercase()).unwrap_or(az))
                }
                "/latest/meta-data/spot/instance-action"
                    if armed.load(Ordering::SeqCst) && !served.swap(true, Ordering::SeqCst) =>
                {
                    ("200 OK", r#"{"action": "terminate", "time": "2030-01-01T00:00:00Z"}"#.to_string())
                }
                _ => ("404 Not Found", String::new()),
            };
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}
