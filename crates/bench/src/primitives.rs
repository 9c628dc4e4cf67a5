//! The cost of each cryptographic primitive the case paths use, measured in this run on one thread,
//! so that every floor printed next to a figure comes from this machine at this moment (the machine's
//! speed varies between runs by 2× or more; constants from another day would mislead).

use std::time::Instant;

use rfl_crypto::{
    envelope_hash, key_commitment, open_record, seal_record, unwrap_data_key, unwrap_self_wrapped,
    wrap_data_key, wrap_data_key_to_self, AgeIdentity, CaseWrapKey, CommitBody, CommitHash,
    CommitOp, DataKey, DeviceSigningKey, EscrowBatch, RecordAad, RecordKind, StateDigest,
};
use serde::Serialize;

use crate::{BenchResult, Context};

/// Microseconds per operation, one thread.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Primitives {
    /// Ed25519 signature of a commit.
    pub sign_us: f64,
    /// Ed25519 verification of a commit.
    pub verify_us: f64,
    /// age encryption of a data key to one X25519 recipient (a per-case escrow wrap before format 2's
    /// batches; an escrow batch header now costs the same, once per batch).
    pub age_wrap_us: f64,
    /// Wrapping one data key in an escrow batch (HKDF + AES-256-GCM; the header is made once).
    pub escrow_wrap_us: f64,
    /// age decryption of one X25519 stanza.
    pub age_unwrap_us: f64,
    /// Wrapping a data key to one's own key-wrapping key (HKDF + AES-256-GCM).
    pub self_wrap_us: f64,
    pub self_unwrap_us: f64,
    /// The key commitment (HMAC-SHA-256).
    pub key_commitment_us: f64,
    /// AES-256-GCM seal of one record of the mean plaintext size.
    pub seal_record_us: f64,
    pub open_record_us: f64,
    /// SHA-256 of one envelope of the mean size.
    pub envelope_hash_us: f64,
    /// The mean record plaintext size these were measured at.
    pub record_bytes: usize,
    /// Cases per escrow batch (per import request) the build floor amortises the header over.
    pub escrow_batch: usize,
}

/// Runs `f` repeatedly for about 60 ms and returns µs per call.
fn time(mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<f64> {
    for _ in 0..20 {
        f()?;
    }
    let mut n = 0u64;
    let t = Instant::now();
    while t.elapsed().as_millis() < 60 || n < 50 {
        f()?;
        n += 1;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

impl Primitives {
    /// Measures every primitive at `record_bytes` of plaintext per record.
    pub fn measure(record_bytes: usize, escrow_batch: usize) -> BenchResult<Primitives> {
        let key = DataKey::generate().ctx("data key")?;
        let signer = DeviceSigningKey::generate().ctx("signing key")?;
        let public = signer.public_key();
        let escrow = AgeIdentity::generate();
        let kwk = CaseWrapKey::generate().ctx("key-wrapping key")?;
        let case = uuid::Uuid::now_v7();
        let aad = RecordAad {
            case_id: case,
            record_id: uuid::Uuid::now_v7(),
            kind: RecordKind::Person,
            version: 1,
            key_epoch: 1,
        };
        let plaintext = vec![b'a'; record_bytes];
        let envelope = seal_record(&key, &aad, &plaintext).ctx("seal")?;
        let body = CommitBody {
            op: CommitOp::Create,
            case_id: case,
            seq: 1,
            parent: CommitHash::ZERO,
            key_epoch: 1,
            key_commitment: key_commitment(&key, case, 1),
            status: 0,
            author: uuid::Uuid::now_v7(),
            created_at: 0,
            state: StateDigest {
                count: 6,
                digest: [7; 32],
            },
            holders: [8; 32],
        };
        let commit = body.sign(&signer).ctx("sign")?;
        let age_wrapped =
            wrap_data_key(&key, case, 1, escrow.recipient().as_age()).ctx("age wrap")?;
        let self_wrapped = wrap_data_key_to_self(&key, case, 1, &kwk).ctx("self wrap")?;
        let batch = EscrowBatch::new(uuid::Uuid::now_v7(), escrow.recipient().as_age())
            .ctx("escrow batch")?;
        Ok(Primitives {
            sign_us: time(|| body.sign(&signer).map(drop).ctx("sign"))?,
            verify_us: time(|| {
                rfl_crypto::parse_commit(commit.as_bytes())
                    .and_then(|c| c.verify(&public))
                    .map(drop)
                    .ctx("verify")
            })?,
            age_wrap_us: time(|| {
                wrap_data_key(&key, case, 1, escrow.recipient().as_age())
                    .map(drop)
                    .ctx("age wrap")
            })?,
            age_unwrap_us: time(|| {
                unwrap_data_key(&age_wrapped, case, 1, escrow.as_age())
                    .map(drop)
                    .ctx("age unwrap")
            })?,
            escrow_wrap_us: time(|| batch.wrap(&key, case, 1).map(drop).ctx("escrow batch wrap"))?,
            self_wrap_us: time(|| {
                wrap_data_key_to_self(&key, case, 1, &kwk)
                    .map(drop)
                    .ctx("self wrap")
            })?,
            self_unwrap_us: time(|| {
                unwrap_self_wrapped(&self_wrapped, case, 1, &kwk)
                    .map(drop)
                    .ctx("self unwrap")
            })?,
            key_commitment_us: time(|| {
                std::hint::black_box(key_commitment(&key, case, 1));
                Ok(())
            })?,
            seal_record_us: time(|| seal_record(&key, &aad, &plaintext).map(drop).ctx("seal"))?,
            open_record_us: time(|| open_record(&key, &aad, &envelope).map(drop).ctx("open"))?,
            envelope_hash_us: time(|| {
                std::hint::black_box(envelope_hash(&envelope));
                Ok(())
            })?,
            record_bytes,
            escrow_batch,
        })
    }

    /// Client CPU floor to open one case of `records` records: one commit verification, one
    /// self-unwrap, the key commitment, and per record a hash and an AES-GCM open.
    pub fn open_floor_us(&self, records: f64) -> f64 {
        self.verify_us
            + self.self_unwrap_us
            + self.key_commitment_us
            + records * (self.envelope_hash_us + self.open_record_us)
    }

    /// Client CPU floor to build one new case: per record an AES-GCM seal and a hash, the key
    /// commitment, one self-wrap, one escrow batch wrap and its share of the batch header's age
    /// encryption, one commit signature.
    pub fn build_floor_us(&self, records: f64) -> f64 {
        self.sign_us
            + self.self_wrap_us
            + self.escrow_wrap_us
            + self.age_wrap_us / self.escrow_batch.max(1) as f64
            + self.key_commitment_us
            + records * (self.envelope_hash_us + self.seal_record_us)
    }

    /// Server CPU floor to accept one new case: one commit verification and a hash per record.
    pub fn server_accept_us(&self, records: f64) -> f64 {
        self.verify_us + records * self.envelope_hash_us
    }

    /// The baseline's build floor: one commit signature and a hash per record (the server path needs
    /// them; nothing is encrypted).
    pub fn baseline_build_floor_us(&self, records: f64) -> f64 {
        self.sign_us + records * self.envelope_hash_us
    }
}
