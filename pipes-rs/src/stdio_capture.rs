//! Forwards the process's own stdout and stderr to Dagster as `log_external_stream` chunks
//! (`include_stdio_in_messages: true`). File descriptors 1 and 2 are pointed at pipes; a thread
//! per stream copies everything through to the original descriptor (so local output is kept)
//! and hands the text to the session about once a second.

use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::message::Stream;

const FORWARD_EVERY: Duration = Duration::from_secs(1);
const FORWARD_BYTES: usize = 64 * 1024;

type Forward = Arc<dyn Fn(Stream, String) + Send + Sync>;

/// Active capture of fds 1 and 2.
pub(crate) struct StdioCapture {
    streams: Vec<Captured>,
    stopping: Arc<AtomicBool>,
}

struct Captured {
    fd: RawFd,
    saved: RawFd,
    thread: Option<JoinHandle<()>>,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

impl StdioCapture {
    pub(crate) fn start(forward: impl Fn(Stream, String) + Send + Sync + 'static) -> io::Result<Self> {
        let forward: Forward = Arc::new(forward);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut capture = Self { streams: Vec::new(), stopping: stopping.clone() };
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        for (fd, stream) in [(1, Stream::Stdout), (2, Stream::Stderr)] {
            // If one stream fails, restore the other on drop of `capture`.
            capture.streams.push(redirect(fd, stream, forward.clone(), stopping.clone())?);
        }
        Ok(capture)
    }

    /// Restores the descriptors and forwards what is left.
    pub(crate) fn stop(mut self) {
        self.restore();
    }

    fn restore(&mut self) {
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        self.stopping.store(true, Ordering::SeqCst);
        for c in &mut self.streams {
            // SAFETY: plain descriptor calls on descriptors this struct owns.
            unsafe {
                libc::dup2(c.saved, c.fd);
            }
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
            // SAFETY: `saved` was created by `dup` in `redirect` and is closed only here.
            unsafe {
                libc::close(c.saved);
            }
        }
        self.streams.clear();
    }
}

impl Drop for StdioCapture {
    fn drop(&mut self) {
        self.restore();
    }
}

/// A pipe whose ends close on exec. Linux creates it so atomically (`pipe2`); elsewhere
/// (macOS has no `pipe2`) the flag is set right after creation.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn pipe_cloexec() -> io::Result<[libc::c_int; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid two-element array; the caller owns both descriptors.
    unsafe {
        cvt(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
    }
    Ok(fds)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn pipe_cloexec() -> io::Result<[libc::c_int; 2]> {
    pipe_then_cloexec()
}

/// The portable way: `pipe`, then `FD_CLOEXEC` on each end. Compiled everywhere so that it is
/// built and tested on Linux too.
#[cfg_attr(any(target_os = "linux", target_os = "android", target_os = "freebsd"), allow(dead_code))]
fn pipe_then_cloexec() -> io::Result<[libc::c_int; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid two-element array; both descriptors are closed on failure and
    // owned by the caller on success.
    unsafe {
        cvt(libc::pipe(fds.as_mut_ptr()))?;
        for fd in fds {
            if let Err(e) = cvt(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)) {
                libc::close(fds[0]);
                libc::close(fds[1]);
                return Err(e);
            }
        }
    }
    Ok(fds)
}

fn redirect(fd: RawFd, stream: Stream, forward: Forward, stopping: Arc<AtomicBool>) -> io::Result<Captured> {
    let [read_end, write_end] = pipe_cloexec()?;
    // SAFETY: duplicating a standard descriptor; the copy is owned by `Captured`.
    let saved = match unsafe { cvt(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3)) } {
        Ok(s) => s,
        Err(e) => {
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
            return Err(e);
        }
    };
    // SAFETY: points `fd` at the pipe; the original lives on in `saved`.
    let redirected = unsafe { cvt(libc::dup2(write_end, fd)) };
    unsafe {
        libc::close(write_end);
    }
    if let Err(e) = redirected {
        unsafe {
            libc::close(read_end);
            libc::close(saved);
        }
        return Err(e);
    }
    let thread = std::thread::Builder::new()
        .name(format!("dagster-pipes-{stream:?}").to_lowercase())
        .spawn(move || pump(read_end, saved, stream, &*forward, &stopping))?;
    Ok(Captured { fd, saved, thread: Some(thread) })
}

fn pump(
    read_end: RawFd,
    tee: RawFd,
    stream: Stream,
    forward: &(dyn Fn(Stream, String) + Send + Sync),
    stopping: &AtomicBool,
) {
    crate::session::mark_pipes_thread();
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut last = Instant::now();
    loop {
        let mut pfd = libc::pollfd { fd: read_end, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 200) };
        let mut eof = false;
        if ready > 0 {
            // SAFETY: reading into an owned buffer of the stated length.
            let n = unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                eof = n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted;
            } else {
                let chunk = &buf[..n as usize];
                write_all_fd(tee, chunk);
                pending.extend_from_slice(chunk);
            }
        } else if stopping.load(Ordering::SeqCst) {
            // Descriptors are restored and nothing is left to read. A child process may still
            // hold the pipe open, so don't wait for end-of-file.
            eof = true;
        }
        if !pending.is_empty() && (eof || last.elapsed() >= FORWARD_EVERY || pending.len() >= FORWARD_BYTES) {
            let cut = utf8_boundary(&pending, eof);
            let text = String::from_utf8_lossy(&pending[..cut]).into_owned();
            pending.drain(..cut);
            if !text.is_empty() {
                forward(stream, text);
            }
            last = Instant::now();
        }
        if eof {
            break;
        }
    }
    // SAFETY: the read end is owned by this thread.
    unsafe {
        libc::close(read_end);
    }
}

fn write_all_fd(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// How much of `bytes` can be decoded now: a multi-byte character split across reads waits
/// for its tail, unless the stream has ended.
fn utf8_boundary(bytes: &[u8], eof: bool) -> usize {
    if eof {
        return bytes.len();
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_characters_wait_for_their_tail() {
        let s = "aé".as_bytes();
        assert_eq!(super::utf8_boundary(&s[..2], false), 1);
        assert_eq!(super::utf8_boundary(&s[..2], true), 2);
        assert_eq!(super::utf8_boundary(s, false), 3);
    }

    #[test]
    fn the_portable_pipe_closes_on_exec_and_carries_bytes() {
        for fds in [super::pipe_cloexec().unwrap(), super::pipe_then_cloexec().unwrap()] {
            for fd in fds {
                // SAFETY: reading the flags of a descriptor this test owns.
                let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC, "fd {fd} closes on exec");
            }
            let mut got = [0u8; 2];
            // SAFETY: writing to and reading from the pipe's own ends, then closing them.
            unsafe {
                assert_eq!(libc::write(fds[1], b"ok".as_ptr().cast(), 2), 2);
                assert_eq!(libc::read(fds[0], got.as_mut_ptr().cast(), 2), 2);
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            assert_eq!(&got, b"ok");
        }
    }
}
