//! The allocator of every binary built on the runner (its own and users'): jemalloc, returning
//! freed memory to the OS in the background, as the Polars wheel configures it. It lives in the
//! library so a user's binary gets it too; a binary that sets its own global allocator can't
//! link the runner.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:500,muzzy_decay_ms:1000\0";

/// Keeps the configuration linked into every binary (an unreferenced part of a library may be
/// left out by the linker).
pub(crate) fn configured() {
    #[cfg(not(target_env = "msvc"))]
    std::hint::black_box(malloc_conf.as_ptr());
}
