//! Rotating the society escrow key (society admins; `rfl society rotate-escrow`): every case key of
//! the society, every key epoch, is re-wrapped from the old escrow key to a new one, on the admin's
//! machine (the server holds neither identity).
//!
//! The job is safe to interrupt anywhere and resumes when run again:
//! - the server keeps the job record: the new key (its identity wrapped to the recovery key, so a
//!   resumed run opens it again with the same recovery identity) and how many wrappings there were;
//! - each batch of new wrappings is one transaction, and replaces only rows still under the old key;
//! - every new wrapping is opened with the new identity and compared with the key before it is sent;
//! - the old key stays the society's until the server finds no wrapping of it left, checked in the
//!   same transaction that switches to the new one (wrappings that caseworkers made meanwhile for the
//!   old key are found by another pass). The old key's certificate is then revoked, so a host that
//!   serves it again is caught by every client.
//!
//! The client's view cannot be stale or incomplete: it holds no list of cases of its own; what is
//! left is what the server counts, and the server refuses to finish while anything is left.

use std::collections::HashMap;
use std::sync::Arc;

use rfl_crypto::{
    escrow_batch_certified, escrow_wrap_info, issue_escrow_cert, unwrap_escrow_identity,
    verify_chain, wrap_escrow_identity, AgeIdentity, AgeRecipient, CertifiedRole, DataKey,
    EscrowBatch, KeyCertificate, RevocationReason, SocietyRootKey, VerifiedKeys,
};
use rfl_domain::api::{
    wire, CompleteEscrowRotation, EscrowCompletionDto, EscrowRotationDto, EscrowWrapDto,
    EscrowWrapsResponse, RotateEscrowWraps, RotatedEscrowWraps, StartEscrowRotation,
};
use serde::Serialize;
use uuid::Uuid;

use crate::session::{tampered, Session};
use crate::trust::{now_secs, validity, ROOT_CERT_DAYS};
use crate::{ClientError, Result};

/// Wrappings per page and per batch (the server's most): about 2 MB in the binary framing (each
/// wrapping carries its batch header), which both directions use.
pub const ROTATION_PAGE: usize = 5_000;
/// Passes over what is left before giving up (wrappings written meanwhile for the old key).
const MAX_PASSES: u32 = 5;

/// Where a rotation is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct EscrowProgress {
    /// Wrappings moved to the new key so far (this run and earlier ones).
    pub done: u64,
    /// Wrappings under the old key when the job started.
    pub total: u64,
}

/// A wrapping that the old escrow identity does not open (corrupt, or not what the server served
/// before): left under the old key, which therefore is not retired.
#[derive(Debug, Clone, Serialize)]
pub struct UnopenedWrap {
    pub case: Uuid,
    pub key_epoch: u32,
    pub reason: String,
}

/// What [`Session::rotate_escrow`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EscrowRotationReport {
    /// The new key's generation.
    pub new_gen: u32,
    /// The new escrow key (age recipient).
    pub recipient: String,
    /// Whether this run resumed a job an earlier run started.
    pub resumed: bool,
    /// Wrappings under the old key when the job started.
    pub total: u64,
    /// Wrappings moved to the new key by this run.
    pub moved: u64,
    /// Wrappings moved by the whole job.
    pub done: u64,
    /// Escrow batch headers opened with the old identity (one X25519 operation each).
    pub old_batches: usize,
    /// Escrow batches made for the new key (one X25519 operation each, and one more to verify).
    pub new_batches: usize,
    /// Whether the new key is the society's now (the old one retired).
    pub completed: bool,
    /// The revocation list that revoked the old key's certificate (none if listed already).
    pub revocation_list: Option<u64>,
    /// Wrappings the old identity did not open: the job stays open and the old key the society's.
    pub unopened: Vec<UnopenedWrap>,
}

/// The old and new escrow keys of a running job, opened.
struct Keys {
    society: Uuid,
    gen: u32,
    old: AgeIdentity,
    new: AgeIdentity,
    new_certified: VerifiedKeys,
}

/// Wrappings re-wrapped between two offers of the core to other threads (about 100 µs).
const YIELD_EVERY: usize = 32;

impl Keys {
    /// Re-wraps one page: each wrapping opened with the old identity (a batch header once per
    /// batch), wrapped again in one new batch, and the new wrapping opened with the new identity
    /// and compared with the key before anything is sent.
    fn rewrap(
        &self,
        page: &[EscrowWrapDto],
        opened: &mut HashMap<Uuid, Arc<EscrowBatch>>,
        unopened: &mut Vec<UnopenedWrap>,
    ) -> Result<(Vec<EscrowWrapDto>, usize)> {
        let batch = escrow_batch_certified(&self.new_certified)?;
        let mut out = Vec::with_capacity(page.len());
        let mut keys: Vec<DataKey> = Vec::with_capacity(page.len());
        let mut new_headers = 0;
        for (i, w) in page.iter().enumerate() {
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                crate::idle::let_others_run();
            }
            let key = match self.open_old(w, opened) {
                Ok(k) => k,
                Err(reason) => {
                    unopened.push(UnopenedWrap {
                        case: w.case_id,
                        key_epoch: w.key_epoch,
                        reason,
                    });
                    continue;
                }
            };
            let wrapped = batch.wrap(&key, w.case_id, w.key_epoch)?;
            keys.push(key);
            out.push(EscrowWrapDto {
                case_id: w.case_id,
                key_epoch: w.key_epoch,
                wrapped: wrapped.into(),
            });
        }
        // Verify with the new identity, as recovery would open them.
        if let Some(first) = out.first() {
            new_headers += 1;
            let check = EscrowBatch::open(&first.wrapped.0, self.society, self.new.as_age())
                .map_err(|_| {
                    ClientError::Invalid(
                        "a new escrow wrapping does not open with the new escrow identity".into(),
                    )
                })?;
            for (i, (w, key)) in out.iter().zip(&keys).enumerate() {
                if i % YIELD_EVERY == YIELD_EVERY - 1 {
                    crate::idle::let_others_run();
                }
                let back = check.unwrap(&w.wrapped.0, w.case_id, w.key_epoch)?;
                if !back.same_as(key) {
                    return Err(ClientError::Invalid(format!(
                        "case {}: the new escrow wrapping does not give back its key",
                        w.case_id
                    )));
                }
            }
        }
        Ok((out, new_headers))
    }

    /// The key one old wrapping holds, or why it does not open.
    fn open_old(
        &self,
        w: &EscrowWrapDto,
        opened: &mut HashMap<Uuid, Arc<EscrowBatch>>,
    ) -> std::result::Result<DataKey, String> {
        let info =
            escrow_wrap_info(&w.wrapped.0).map_err(|_| "not an escrow wrapping".to_owned())?;
        if info.society_id != self.society {
            return Err("an escrow wrapping of another society".into());
        }
        let batch = match opened.get(&info.batch_id) {
            Some(b) => b.clone(),
            None => {
                let b = Arc::new(
                    EscrowBatch::open(&w.wrapped.0, self.society, self.old.as_age()).map_err(
                        |_| "its batch does not open with the old escrow key".to_owned(),
                    )?,
                );
                opened.insert(info.batch_id, b.clone());
                b
            }
        };
        batch
            .unwrap(&w.wrapped.0, w.case_id, w.key_epoch)
            .map_err(|_| "it does not open for its case and key epoch".to_owned())
    }
}

impl Session {
    /// The society's escrow-key rotation job, running or completed, if any.
    pub async fn escrow_rotation(&self) -> Result<Option<EscrowRotationDto>> {
        match self.api().get("/v1/society/escrow/rotation").await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Rotates the society escrow key (society admin): starts a job with a new key (certified with
    /// `root`, which only a new job needs), or resumes the running one, re-wraps every escrow
    /// wrapping still under the old key, finishes the job and revokes the old key's certificate.
    /// `recovery` is the society's recovery identity: it opens the old escrow identity and, on a
    /// resumed run, the new one. Run again after any interruption: nothing is done twice.
    pub async fn rotate_escrow(
        &self,
        recovery: &AgeIdentity,
        root: Option<&SocietyRootKey>,
        progress: impl Fn(EscrowProgress),
    ) -> Result<EscrowRotationReport> {
        self.rotate_escrow_by(recovery, root, ROTATION_PAGE, progress)
            .await
    }

    /// [`Session::rotate_escrow`] in pages (and batches) of `page` wrappings (1 to
    /// [`ROTATION_PAGE`]).
    pub async fn rotate_escrow_by(
        &self,
        recovery: &AgeIdentity,
        root: Option<&SocietyRootKey>,
        page: usize,
        progress: impl Fn(EscrowProgress),
    ) -> Result<EscrowRotationReport> {
        let page = page.clamp(1, ROTATION_PAGE);
        self.reload_members().await?;
        let escrow = self.api().society().await?.escrow.ok_or_else(|| {
            ClientError::Invalid("your society has no escrow key yet (rfl society init)".into())
        })?;
        // The recovery identity must open the society's escrow key before anything starts: a job
        // whose new key were wrapped to another recovery key could never be resumed.
        let old = self.open_old_escrow(&escrow.wrapped_identity.0, recovery)?;
        let (job, resumed) = match self.escrow_rotation().await? {
            Some(job) if job.completed_at.is_none() => (job, true),
            // The last job completed but its run stopped before the old key was revoked.
            Some(job) if job.recipient == escrow.recipient && !self.old_key_revoked(&job)? => {
                return self.finish(job, true, Default::default()).await
            }
            _ => {
                let root = root.ok_or_else(|| {
                    ClientError::Invalid(
                        "a new escrow key must be certified by the society root: give the root key \
                         file (--root-key)"
                            .into(),
                    )
                })?;
                (self.start_escrow_rotation(recovery, root).await?, false)
            }
        };
        let keys = Arc::new(self.open_rotation_keys(&job, old, recovery)?);
        let mut report = EscrowRotationReport {
            new_gen: job.new_gen,
            recipient: job.recipient.clone(),
            resumed,
            total: job.total,
            moved: 0,
            done: job.done,
            old_batches: 0,
            new_batches: 0,
            completed: false,
            revocation_list: None,
            unopened: Vec::new(),
        };
        progress(EscrowProgress {
            done: job.done,
            total: job.total,
        });
        let opened = Arc::new(std::sync::Mutex::new(HashMap::new()));
        for _pass in 0..MAX_PASSES {
            self.rotation_pass(&keys, &opened, page, &mut report, &progress)
                .await?;
            report.old_batches = opened
                .lock()
                .map_err(|_| ClientError::Invalid("batch cache lock poisoned".into()))?
                .len();
            if !report.unopened.is_empty() {
                return Ok(report);
            }
            let c: EscrowCompletionDto = self
                .api()
                .post(
                    "/v1/society/escrow/rotation/complete",
                    &CompleteEscrowRotation { new_gen: keys.gen },
                )
                .await?;
            report.done = c.rotation.done;
            if c.left == 0 {
                return self.finish(c.rotation, resumed, report).await;
            }
        }
        Err(ClientError::Invalid(format!(
            "cases kept being written under the old escrow key through {MAX_PASSES} passes: run the \
             same command again to finish"
        )))
    }

    /// One pass over the wrappings still under the old key: pages fetched in (case, epoch) order,
    /// the next page fetched while the current one is re-wrapped (on a blocking thread) and sent.
    async fn rotation_pass(
        &self,
        keys: &Arc<Keys>,
        opened: &Arc<std::sync::Mutex<HashMap<Uuid, Arc<EscrowBatch>>>>,
        size: usize,
        report: &mut EscrowRotationReport,
        progress: &impl Fn(EscrowProgress),
    ) -> Result<()> {
        let old_gen = keys.gen - 1;
        let mut page = self.escrow_wraps(old_gen, None, size).await?;
        while !page.is_empty() {
            let last = page.last().map(|w| (w.case_id, w.key_epoch));
            let full = page.len() == size;
            let work = async {
                let (k, o) = (keys.clone(), opened.clone());
                // The re-wrapping and the batch's encoding (megabytes) off the runtime's workers,
                // at the idle class: reads on the same machine go first (`idle`).
                let gen = keys.gen;
                let (body, new_headers, unopened) = crate::idle::run(move || {
                    let mut opened = o
                        .lock()
                        .map_err(|_| ClientError::Invalid("batch cache lock poisoned".into()))?;
                    let mut unopened = Vec::new();
                    let (out, h) = k.rewrap(&page, &mut opened, &mut unopened)?;
                    let body = if out.is_empty() {
                        None
                    } else {
                        Some(wire::encode(&RotateEscrowWraps {
                            new_gen: gen,
                            wraps: out,
                        })?)
                    };
                    Ok((body, h, unopened))
                })
                .await?;
                let Some(body) = body else {
                    return Ok((None, new_headers, unopened));
                };
                let r: RotatedEscrowWraps = self
                    .api()
                    .post_wire("/v1/society/escrow/rotation/wraps", body)
                    .await?;
                Ok::<_, ClientError>((Some(r), new_headers, unopened))
            };
            let fetch = async {
                if full {
                    self.escrow_wraps(old_gen, last, size).await
                } else {
                    Ok(Vec::new())
                }
            };
            let (sent, next) = tokio::join!(work, fetch);
            let (sent, new_headers, unopened) = sent?;
            report.new_batches += new_headers;
            report.unopened.extend(unopened);
            if let Some(r) = sent {
                report.moved += r.moved as u64;
                report.done = r.rotation.done;
                progress(EscrowProgress {
                    done: r.rotation.done,
                    total: r.rotation.total,
                });
            }
            page = next?;
        }
        Ok(())
    }

    async fn escrow_wraps(
        &self,
        gen: u32,
        after: Option<(Uuid, u32)>,
        limit: usize,
    ) -> Result<Vec<EscrowWrapDto>> {
        let mut path = format!("/v1/society/escrow/rotation/wraps?gen={gen}&limit={limit}");
        if let Some((c, e)) = after {
            path.push_str(&format!("&after_case={c}&after_epoch={e}"));
        }
        let r: EscrowWrapsResponse = self.api().get_wire_large(&path).await?;
        if r.wraps.len() > limit {
            return Err(tampered("the server sent a longer page than asked for"));
        }
        Ok(r.wraps)
    }

    /// A new escrow key: generated here, wrapped to the recovery key (and opened back with it),
    /// certified with the root, and sent as a new job.
    async fn start_escrow_rotation(
        &self,
        recovery: &AgeIdentity,
        root: &SocietyRootKey,
    ) -> Result<EscrowRotationDto> {
        let society = *self.society_id().as_uuid();
        self.check_root_key(root)?;
        let new = AgeIdentity::generate();
        let wrapped = wrap_escrow_identity(&new, society, recovery.recipient().as_age())?;
        let back = unwrap_escrow_identity(&wrapped, society, recovery.as_age())?;
        if back.recipient() != new.recipient() {
            return Err(ClientError::Invalid(
                "the recovery identity does not open the new escrow key's wrapping".into(),
            ));
        }
        let cert = issue_escrow_cert(root, society, &new.recipient(), validity(ROOT_CERT_DAYS)?)?;
        self.api()
            .post(
                "/v1/society/escrow/rotation",
                &StartEscrowRotation {
                    recipient: new.recipient().to_string(),
                    wrapped_identity: wrapped.into(),
                    certificate: cert.to_hex(),
                },
            )
            .await
    }

    /// The society's escrow identity opened with the recovery identity, and checked to be the key
    /// the pinned root certifies now (a host cannot have the admin re-wrap from a key it swapped in).
    pub(crate) fn open_old_escrow(
        &self,
        wrapped: &[u8],
        recovery: &AgeIdentity,
    ) -> Result<AgeIdentity> {
        let society = *self.society_id().as_uuid();
        let certified = self.escrow()?;
        let old = unwrap_escrow_identity(wrapped, society, recovery.as_age()).map_err(|_| {
            ClientError::Invalid(
                "the recovery identity given does not open the society's escrow key".into(),
            )
        })?;
        if old.recipient() != *certified.age_recipient() {
            return Err(tampered(
                "the escrow key the server keeps wrapped is not the one your society's root certifies",
            ));
        }
        Ok(old)
    }

    /// Opens both escrow identities of a job with the recovery identity, and checks each against
    /// the pinned root: the old one is the key the root certifies now, the new one the key of the
    /// job's root-signed certificate. A host cannot have the admin move every case key to a key of
    /// its own, nor re-wrap from one it swapped in.
    fn open_rotation_keys(
        &self,
        job: &EscrowRotationDto,
        old: AgeIdentity,
        recovery: &AgeIdentity,
    ) -> Result<Keys> {
        let society = *self.society_id().as_uuid();
        if old.recipient().to_string() != job.old_recipient {
            return Err(tampered(
                "the running rotation replaces another escrow key than your society's",
            ));
        }
        let new = unwrap_escrow_identity(&job.wrapped_identity.0, society, recovery.as_age())
            .map_err(|_| {
                ClientError::Invalid(
                    "the recovery identity given does not open the new escrow key of the running \
                     rotation"
                        .into(),
                )
            })?;
        let root = self
            .with_trust(|t| t.root)?
            .ok_or_else(|| ClientError::Invalid("pin your society's root key first".into()))?;
        let cert = KeyCertificate::from_hex(&job.certificate)
            .map_err(|_| tampered("the new escrow key's certificate is malformed"))?;
        let new_certified = verify_chain(&root, society, &[cert], now_secs())
            .map_err(|_| tampered("the new escrow key is not certified by your society's root"))?;
        new_certified.expect(society, CertifiedRole::Escrow)?;
        if *new_certified.age_recipient() != new.recipient()
            || new.recipient().to_string() != job.recipient
        {
            return Err(tampered(
                "the new escrow key the server keeps is not the one its certificate names",
            ));
        }
        Ok(Keys {
            society,
            gen: job.new_gen,
            old,
            new,
            new_certified,
        })
    }

    /// Whether the old key of a completed job is on the society's revocation list.
    fn old_key_revoked(&self, job: &EscrowRotationDto) -> Result<bool> {
        let digest = old_digest(job)?;
        let society = *self.society_id().as_uuid();
        self.with_trust(|t| {
            t.revocations
                .as_ref()
                .is_some_and(|r| r.is_revoked(society, &digest))
        })
    }

    /// After the switch: the old key's certificate revoked (superseded), and the report.
    async fn finish(
        &self,
        job: EscrowRotationDto,
        resumed: bool,
        mut report: EscrowRotationReport,
    ) -> Result<EscrowRotationReport> {
        let digest = old_digest(&job)?;
        let society = *self.society_id().as_uuid();
        report.revocation_list = self
            .publish_revocations(society, |_| vec![digest], RevocationReason::Superseded)
            .await?;
        report.new_gen = job.new_gen;
        report.recipient = job.recipient;
        report.resumed = resumed;
        report.total = job.total;
        report.done = job.done;
        report.completed = true;
        // The new key is the one the root certifies for this session from now on.
        self.reload_members().await?;
        Ok(report)
    }
}

/// The keys digest of a job's old escrow key (its certificate names no signing key).
fn old_digest(job: &EscrowRotationDto) -> Result<[u8; 32]> {
    let old = AgeRecipient::parse(&job.old_recipient)
        .map_err(|_| tampered("the old escrow key of the rotation does not parse"))?;
    Ok(rfl_crypto::subject_keys_digest(None, &old))
}
