//! The item process's own memory: its resident set, its peak, and giving freed memory back to
//! the OS. A warm item process measures these between items to decide whether to keep going.

/// The resident set of this process (Linux `/proc`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// The peak resident set since the process started or since [`reset_peak`].
pub fn peak_rss_bytes() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Starts a new peak: Linux resets `VmHWM` to the current resident set when "5" is written to
/// `clear_refs` (since 4.0). Where it can't, the peak stays the process's.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Gives every freed page back to the OS now, rather than after jemalloc's decay.
pub fn release() {
    #[cfg(not(target_env = "msvc"))]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty and muzzy pages.
        const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
        // SAFETY: a NUL-terminated mallctl name that takes and returns nothing.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                PURGE_ALL.as_ptr().cast(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }
}
