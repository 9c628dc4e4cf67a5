#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! `rfl-bench`: measures bulk import and concurrent reads through the real server and client, once with
//! end-to-end encryption and once with a plaintext baseline that takes the same API path.
//!
//! - [`data`]: the synthetic cases (one header, the persons, exactly one message and one note).
//! - [`baseline`]: the plaintext baseline's fake envelopes (bench-only; never in production crates).
//! - [`setup`]: a fresh database, a real server on port 0, a society with an admin and a caseworker.
//! - [`measure`]: import and read loads, latency percentiles, database size.
//! - [`auth`]: sign-ins per second (passkey ceremony, key login) and the cost of authenticating a
//!   request (token verification alone; `/v1/me` against `/healthz`).
//! - [`revoke`]: revoking a member who holds many cases, and re-keying them, with reads running.
//! - [`sync`]: the national society sync's pull (initial, 515,000 cases) and push (1,000 offline
//!   commits), on one server.
//! - [`primitives`]: the cost of each cryptographic primitive, measured in the same run.
//! - [`report`]: the floors (from those primitives, and the database reference of
//!   `/work/shared/dependencies.md`), the markdown table and JSON.

pub mod auth;
pub mod baseline;
pub mod data;
pub mod measure;
pub mod primitives;
pub mod report;
pub mod revoke;
pub mod rotate;
pub mod setup;
pub mod societies;
pub mod sync;
pub mod sync_e2e;

/// Errors are reported as text: every failure ends the phase (and the run's exit code) without a figure.
pub type BenchResult<T> = Result<T, String>;

/// Adds what was being done to an error.
pub trait Context<T> {
    fn ctx(self, what: &str) -> BenchResult<T>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> BenchResult<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// A small, fast, deterministic PRNG (SplitMix64) for picking cases to read and filling fake wrapped keys.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough index below `n` (n > 0); the modulo bias is irrelevant for picking cases.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
