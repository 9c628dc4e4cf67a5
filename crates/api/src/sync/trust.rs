//! `PUT /v1/sync/trust` (`docs/sync.md`, "Trust across instances"): a society's trust material
//! as its own server serves it (`GET /v1/societies/{id}/trust`), carried by its sync agent to
//! another instance (the hub), which takes no commit of the society before it. This server keeps
//! only what it can verify itself: a root the Movement root it holds vouches for (or that root
//! successions lead to from the root it holds), certificates that verify against those roots, and
//! a revocation list that follows the one it holds. The same endpoint serves both ways: the
//! society's own server takes the certificates the hub's admins of the society issued. Nothing the bundle sends can take back what is
//! held: a root is never replaced by one that does not succeed it, a revocation never dropped.

use std::collections::{HashMap, HashSet};

use actix_web::{get, put, web, HttpResponse};
use rfl_crypto::{
    roots_from_pin, KeyCertificate, RevocationList, RootPublicKey, RootSuccession,
    SocietyCertificate, Trust, TrustError,
};
use rfl_domain::api::{EscrowDto, SyncTrustBundle, SyncTrustOutcome};
use rfl_domain::SocietyId;
use rfl_storage::{CertificateRow, SocietyEscrow, SocietyTrust, Store, TrustAdoption};
use uuid::Uuid;

use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, SyncAgents};
use crate::{blocking, State};

/// The caller's society's trust material as its sync agent carries it to the society's other
/// instance (sync agents only): what `GET /v1/societies/{id}/trust` serves, and the escrow key
/// with its identity wrapped to the recovery key.
#[utoipa::path(tag = "sync", security(("bearer" = [])), responses(
    (status = 200, body = SyncTrustBundle), (status = 403, body = Problem)))]
#[get("/sync/trust")]
pub async fn get_trust(
    state: State,
    Authorized(caller, _): Authorized<SyncAgents>,
) -> Result<HttpResponse, ApiError> {
    let (society, trust) =
        crate::movement::society_and_trust(state.store.clone(), caller.society_id).await?;
    let escrow = society.escrow.map(|e| EscrowDto {
        recipient: e.recipient,
        wrapped_identity: e.wrapped_identity.into(),
    });
    Ok(HttpResponse::Ok().json(SyncTrustBundle { trust, escrow }))
}

/// Take the caller's society's trust material from its other instance (sync agents only): the
/// body is what `GET /v1/sync/trust` serves there. The society's root is taken only if
/// a certificate of the Movement root this server holds vouches for it (or for a root whose
/// successions lead to it), or if it is the root held here or succeeds it; certificates count only
/// if they verify against those roots; a revocation list only if it follows the one held (an
/// older one is stale and changes nothing; one that forks from it or drops a revocation is
/// refused). The
/// answer says what was added; the same bundle again adds nothing. The escrow key is taken if its
/// certificate verifies and none is held here.
#[utoipa::path(tag = "sync", security(("bearer" = [])), request_body = SyncTrustBundle, responses(
    (status = 200, body = SyncTrustOutcome),
    (status = 403, description = "Not the caller's society", body = Problem),
    (status = 409, description = "No Movement root is set here; the bundle's root does not continue the one held, or its revocation list forks from the one held or drops a revocation; or the material changed meanwhile (send it again)", body = Problem),
    (status = 422, description = "The bundle does not parse or does not verify", body = Problem)))]
#[put("/sync/trust")]
pub async fn put_trust(
    state: State,
    Authorized(caller, _): Authorized<SyncAgents>,
    body: web::Json<SyncTrustBundle>,
) -> Result<HttpResponse, ApiError> {
    let bundle = body.into_inner();
    if bundle.trust.society_id != caller.society_id {
        return Err(ApiError::Forbidden(
            "a sync agent sends only its own society's trust material",
        ));
    }
    let store = state.store.clone();
    let now = state.now();
    let society = caller.society_id;
    let outcome = blocking(move || adopt(&store, society, &bundle, now)).await?;
    tracing::info!(
        society = %society,
        root_changed = outcome.root_changed,
        successions = outcome.successions,
        certificates = outcome.certificates,
        retired = outcome.retired,
        unverified = outcome.unverified,
        "society trust material taken from another instance"
    );
    Ok(HttpResponse::Ok().json(outcome))
}

fn unprocessable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{what}: {e}"))
}

fn decode(what: &str, hex: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(hex.trim()).map_err(|e| unprocessable(what, e))
}

/// Checks `bundle` against what this server holds of `society` and stores what it adds.
fn adopt(
    store: &Store,
    society: SocietyId,
    SyncTrustBundle {
        trust: bundle,
        escrow,
    }: &SyncTrustBundle,
    now_ms: i64,
) -> Result<SyncTrustOutcome, ApiError> {
    let soc = *society.as_uuid();
    let now = now_ms.div_euclid(1000);
    let movement = store.movement_root()?.map(RootPublicKey::from_bytes);
    let root = bundle
        .root_public_key
        .as_ref()
        .ok_or_else(|| ApiError::Unprocessable("the bundle has no society root".into()))?;
    let root = RootPublicKey::from_slice(&root.0)
        .map_err(|e| unprocessable("the bundle's society root", e))?;
    let succession_bytes = bundle
        .root_successions
        .iter()
        .map(|h| decode("a root succession", h))
        .collect::<Result<Vec<_>, _>>()?;
    let successions = succession_bytes
        .iter()
        .map(|b| RootSuccession::from_bytes(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unprocessable("a root succession", e))?;
    let first = successions.first().map_or(root, RootSuccession::old_root);
    let roots = roots_from_pin(&first.fingerprint(), soc, &root, &successions)
        .map_err(|e| unprocessable("the bundle's root successions", e))?;
    // Every succession must be one of the chain's links: one left unused (its old root the
    // current root, say) would be stored unchecked and break the chain at the next rotation.
    if roots.len() != successions.len() + 1 {
        return Err(ApiError::Unprocessable(
            "the bundle's root successions are not one chain from its first root to its root"
                .into(),
        ));
    }

    let held = store.society_certificates(society)?;
    if held.root.is_none() && movement.is_none() {
        return Err(ApiError::Conflict(
            "no Movement root is set on this server: a Movement admin sets it (`rfl movement \
             init`) before a society's trust material can be taken"
                .into(),
        ));
    }
    // The root held must be one of the bundle's roots, and the successions held the first of its
    // successions: a bundle never replaces a root by one that does not succeed it.
    if let Some(h) = held.root {
        let continues = roots.iter().any(|r| *r.as_bytes() == h)
            && held.successions.len() <= succession_bytes.len()
            && held.successions[..] == succession_bytes[..held.successions.len()];
        if !continues {
            return Err(ApiError::Conflict(
                "the bundle's society root does not continue the root this server holds".into(),
            ));
        }
    }
    let movement_certificates = match &movement {
        Some(m) => movement_certificates(&held, bundle, m, soc, now, &roots),
        None => Default::default(),
    };
    // A root new here counts only if the Movement root vouches for it (when this server holds
    // one): a replaced root that leaked could sign a succession to anyone's root, and a society's
    // own server, which may hold no Movement root, takes successions from the root it holds.
    let root_is_new = held.root != Some(*root.as_bytes());
    let vouched = movement_certificates.1.contains(root.as_bytes());
    if root_is_new && !vouched && (held.root.is_none() || movement.is_some()) {
        return Err(ApiError::Unprocessable(
            "no certificate of the Movement root this server holds vouches for the bundle's \
             society root (the Movement certifies a society's new root before it travels)"
                .into(),
        ));
    }

    let stored = |what: &str| ApiError::Internal(format!("a stored {what} does not parse"));
    let held_list = held
        .revocations
        .as_deref()
        .map(RevocationList::from_bytes)
        .transpose()
        .map_err(|_| stored("revocation list"))?;
    let sent_list = bundle
        .revocations
        .as_deref()
        .map(|h| {
            RevocationList::from_bytes(&decode("the revocation list", h)?)
                .map_err(|e| unprocessable("the revocation list", e))
        })
        .transpose()?;
    // A list older than the one held is stale (the other side has not caught up yet): the held
    // one stands. One numbered alike must be the same list, and a later one must keep every entry
    // (`Trust::verify` checks both).
    let held_number = held_list.as_ref().map_or(0, |l| l.body().number);
    let sent_list = sent_list.filter(|l| l.body().number >= held_number);
    let new_list = sent_list
        .as_ref()
        .filter(|l| l.body().number > held_number)
        .map(|l| (l.body().number, l.to_bytes().to_vec()));
    let list = sent_list.or_else(|| held_list.clone());

    let held_current: HashMap<Uuid, &[u8]> = held
        .certificates
        .iter()
        .map(|c| (c.subject_id, c.certificate.as_slice()))
        .collect();
    let held_retired: HashSet<&[u8]> = held.retired.iter().map(Vec::as_slice).collect();
    let mut certs: Vec<KeyCertificate> = held
        .certificates
        .iter()
        .map(|c| c.certificate.as_slice())
        .chain(held.retired.iter().map(Vec::as_slice))
        .filter_map(|b| KeyCertificate::from_bytes(b).ok())
        .collect();
    let held_count = certs.len();
    // One that does not parse is left out and counted, as one that does not verify.
    let mut unparsed = 0usize;
    for hex in &bundle.certificates {
        match hex::decode(hex.trim()).map(|b| KeyCertificate::from_bytes(&b)) {
            Ok(Ok(c)) => certs.push(c),
            _ => unparsed += 1,
        }
    }
    let sent: HashSet<Vec<u8>> = certs[held_count..].iter().map(|c| c.to_bytes()).collect();
    let trust =
        Trust::verify(&roots, soc, certs, list, held_list.as_ref(), now).map_err(|e| match e {
            TrustError::ListRolledBack(_) | TrustError::ListWithdrawn => ApiError::Conflict(
                format!("the bundle's revocation list does not follow the one held here: {e}"),
            ),
            e => unprocessable("the bundle", e),
        })?;

    let mut counted: HashSet<Vec<u8>> = HashSet::new();
    let mut certificates = Vec::new();
    let mut retired = Vec::new();
    for (subject, (c, _)) in &trust.certificates {
        let bytes = c.to_bytes();
        if held_current.get(subject) != Some(&bytes.as_slice()) {
            // The certificate it replaces stays, retired: commits signed under it before a
            // revocation still verify (as a local key rotation keeps it).
            if let Some(old) = held_current
                .get(subject)
                .and_then(|b| KeyCertificate::from_bytes(b).ok())
            {
                let old_bytes = old.to_bytes();
                if !held_retired.contains(old_bytes.as_slice()) {
                    retired.push((*subject, old.keys_digest(), old_bytes.clone()));
                    counted.insert(old_bytes);
                }
            }
            certificates.push(CertificateRow {
                subject_id: *subject,
                certificate: bytes.clone(),
                issued_at: c.validity().not_before.saturating_mul(1000),
            });
        }
        counted.insert(bytes);
    }
    for (subject, list) in &trust.revoked {
        for (c, _, _) in list {
            let bytes = c.to_bytes();
            if held_current.get(subject) != Some(&bytes.as_slice())
                && !held_retired.contains(bytes.as_slice())
                && !retired.iter().any(|(_, _, b)| *b == bytes)
            {
                retired.push((*subject, c.keys_digest(), bytes.clone()));
            }
            counted.insert(bytes);
        }
    }
    let unverified = sent.iter().filter(|b| !counted.contains(*b)).count() + unparsed;

    let escrow = escrow_to_take(store, society, escrow.as_ref(), &trust)?;
    let adoption = TrustAdoption {
        held: (held.root, held.successions.len(), held_number),
        root: *root.as_bytes(),
        successions: succession_bytes[held.successions.len()..].to_vec(),
        movement_certificates: movement_certificates.0,
        certificates,
        retired,
        list: new_list,
        escrow,
    };
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let outcome = SyncTrustOutcome {
        root_changed: held.root != Some(adoption.root),
        successions: count(adoption.successions.len()),
        movement_certificates: count(adoption.movement_certificates.len()),
        certificates: count(adoption.certificates.len()),
        retired: count(adoption.retired.len()),
        unverified: count(unverified),
        revocation_list: adoption.list.as_ref().map(|(n, _)| *n),
        escrow: adoption.escrow.is_some(),
    };
    if !adoption.is_empty() {
        store.adopt_trust(society, &adoption, now_ms)?;
    }
    Ok(outcome)
}

/// The escrow key sent, if this server should take it: its certificate (the society's, by the
/// root) verifies and names it, and this server holds no escrow key of the society. A key held
/// stays: moving every case to a new escrow key is the rotation's job, not the bundle's.
fn escrow_to_take(
    store: &Store,
    society: SocietyId,
    sent: Option<&EscrowDto>,
    trust: &Trust,
) -> Result<Option<SocietyEscrow>, ApiError> {
    let Some(sent) = sent else {
        return Ok(None);
    };
    if sent.wrapped_identity.0.is_empty() || sent.wrapped_identity.0.len() > 16 * 1024 {
        return Err(ApiError::Unprocessable(
            "the escrow key's wrapped identity must be an age file of at most 16 KiB".into(),
        ));
    }
    let certified = trust.get(*society.as_uuid()).is_some_and(|k| {
        k.role() == rfl_crypto::CertifiedRole::Escrow
            && k.age_recipient().to_string() == sent.recipient
    });
    if !certified {
        return Ok(None);
    }
    // Only where none is held: a bundle never replaces the escrow key nor its wrapping (a
    // recovery-key rotation there is an admin's, with a fresh passkey sign-in, and a stale
    // bundle must not undo it).
    let held = store.society(society)?.ok_or(ApiError::NotFound)?.escrow;
    Ok(held.is_none().then(|| SocietyEscrow {
        recipient: sent.recipient.clone(),
        wrapped_identity: sent.wrapped_identity.0.clone(),
    }))
}

/// A certificate of the Movement root, by the society root it certifies.
type MovementCert = ([u8; 32], Vec<u8>);

/// The bundle's certificates of the Movement root that verify against `movement` and certify one
/// of `roots`, less those held already (or held in a later issue); and the roots that a
/// certificate held or sent vouches for. A society's root is first taken only if the Movement
/// vouches for it, not for an earlier root: a root replaced because it leaked could sign a
/// succession to anyone's.
fn movement_certificates(
    held: &SocietyTrust,
    bundle: &rfl_domain::api::SocietyTrustResponse,
    movement: &RootPublicKey,
    society: Uuid,
    now: i64,
    roots: &[RootPublicKey],
) -> (Vec<MovementCert>, HashSet<[u8; 32]>) {
    let held: HashMap<[u8; 32], SocietyCertificate> = held
        .movement_certificates
        .iter()
        .filter_map(|b| SocietyCertificate::from_bytes(b).ok())
        .map(|c| (*c.society_root().as_bytes(), c))
        .collect();
    let mut vouched: HashSet<[u8; 32]> = held
        .values()
        .filter_map(|c| c.verify(movement, society, now).ok())
        .map(|r| *r.as_bytes())
        .collect();
    let mut add: Vec<MovementCert> = Vec::new();
    for hex in &bundle.movement_certificates {
        // One that does not parse, of another Movement root, expired or not yet valid vouches
        // for nothing here.
        let Some(cert) = hex::decode(hex.trim())
            .ok()
            .and_then(|b| SocietyCertificate::from_bytes(&b).ok())
        else {
            continue;
        };
        let Ok(certified) = cert.verify(movement, society, now) else {
            continue;
        };
        if !roots.contains(&certified) {
            continue;
        }
        let key = *certified.as_bytes();
        vouched.insert(key);
        let newer = held
            .get(&key)
            .is_none_or(|h| h.validity().not_before < cert.validity().not_before);
        if newer && !add.iter().any(|(r, _)| *r == key) {
            add.push((key, cert.to_bytes()));
        }
    }
    (add, vouched)
}
