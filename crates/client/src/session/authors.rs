//! Whose signature counts: the certified keys of this society's members and, through the Movement
//! root, of other societies' members who hold a case; the society escrow key as its root certifies it.

use super::*;

impl Session {
    pub(crate) fn foreign_trust(&self, society: SocietyId) -> Option<Arc<crate::trust::Trust>> {
        self.foreign.read().ok()?.get(&society).cloned()
    }

    /// Every other society's keys this session verified.
    pub(crate) fn foreign_trusts(&self) -> Vec<Arc<crate::trust::Trust>> {
        self.foreign
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Loads, through the Movement root, the keys of the societies of `holders` this session does
    /// not know (a case shared by transfer): asks which society each unknown one belongs to.
    pub(crate) async fn load_holder_societies(&self, holders: &[Holder]) -> Result<()> {
        self.load_member_societies(holders.iter().map(|h| h.member_id))
            .await
    }

    /// Loads, through the Movement root, the keys of the societies of `members` this session does
    /// not know: asks which society each unknown one belongs to.
    pub(crate) async fn load_member_societies(
        &self,
        members: impl IntoIterator<Item = uuid::Uuid>,
    ) -> Result<()> {
        let unknown: Vec<uuid::Uuid> = self.with_trust(|t| {
            members
                .into_iter()
                .filter(|m| {
                    *m != *self.me.member_id.as_uuid() && t.get(*m).is_none() && !t.is_revoked(*m)
                })
                .collect()
        })?;
        let mut societies = HashSet::new();
        for m in unknown {
            if self
                .foreign_trusts()
                .iter()
                .any(|f| f.get(m).is_some() || f.is_revoked(m))
            {
                continue;
            }
            // A member answered for before (an uncertified one of this society, or one whose
            // society's keys were loaded then) is not asked about again.
            if self
                .asked_society
                .lock()
                .is_ok_and(|asked| asked.contains(&m))
            {
                continue;
            }
            let hint: Result<MemberSocietyDto> =
                self.api.get(&format!("/v1/members/{m}/society")).await;
            if let Ok(h) = hint {
                if h.society_id != self.me.society_id && societies.insert(h.society_id) {
                    self.society_trust(h.society_id).await?;
                }
                if let Ok(mut asked) = self.asked_society.lock() {
                    asked.insert(m);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn keep_foreign_trust(&self, society: SocietyId, trust: Arc<crate::trust::Trust>) {
        if let Ok(mut m) = self.foreign.write() {
            m.insert(society, trust);
        }
    }

    pub(crate) fn with_trust<T>(&self, f: impl FnOnce(&crate::trust::Trust) -> T) -> Result<T> {
        let t = self
            .trust
            .read()
            .map_err(|_| ClientError::Invalid("trust lock poisoned".into()))?;
        Ok(f(&t))
    }

    /// The certified key of `author` for a commit dated `created_at_ms`: none if the author is not
    /// certified, or if their keys were revoked before that time. A revocation is dated to the
    /// second (as certificates are), so a commit dated within the second of the revocation still
    /// counts: it may have been made just before it.
    pub(super) fn author_keys(&self, author: MemberId, created_at_ms: i64) -> Vec<DeviceVerifier> {
        let Ok(dir) = self.directory.read() else {
            return Vec::new();
        };
        dir.get(&author)
            .map(|keys| {
                keys.iter()
                    .filter(|(_, revoked_at)| {
                        rfl_crypto::signature_counts(*revoked_at, created_at_ms)
                    })
                    .map(|(k, _)| *k)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The keys of `author`, a member of another society whose keys this session verified through
    /// the Movement root, that count for a commit dated `created_at_ms`.
    pub(super) fn foreign_author_keys(
        &self,
        author: uuid::Uuid,
        created_at_ms: i64,
    ) -> Vec<DeviceVerifier> {
        let Ok(foreign) = self.foreign.read() else {
            return Vec::new();
        };
        foreign
            .values()
            .flat_map(|t| t.author_keys(author, created_at_ms))
            .collect()
    }

    /// `commit` verified under a certified key of its author that counts at its date: `Err(true)`
    /// if the author has none, `Err(false)` if none verifies it.
    pub(super) fn verify_author(
        &self,
        commit: &Commit,
    ) -> std::result::Result<rfl_crypto::VerifiedCommit, bool> {
        let b = commit.body();
        let mut keys = self.author_keys(MemberId::from_uuid(b.author), b.created_at);
        if keys.is_empty() {
            keys = self.foreign_author_keys(b.author, b.created_at);
        }
        if keys.is_empty() {
            return Err(true);
        }
        keys.iter()
            .find_map(|k| commit.clone().verify_by(k).ok())
            .ok_or(false)
    }

    /// The society escrow key as the pinned root certifies it; cases cannot be created without it.
    pub(crate) fn escrow(&self) -> Result<rfl_crypto::VerifiedKeys> {
        if self.pinned_root.is_none() {
            return Err(ClientError::Invalid(
                "pin your society's root key fingerprint first (you were given it with your enrolment code)"
                    .into(),
            ));
        }
        let society = *self.me.society_id.as_uuid();
        let escrow = self
            .with_trust(|t| t.get(society).cloned())?
            .ok_or_else(|| {
                ClientError::Tampered(
                "your society has no escrow key certified by its root (a society admin must run \
                 `rfl society init`), or the server altered it"
                    .into(),
            )
            })?;
        escrow.expect(society, rfl_crypto::CertifiedRole::Escrow)?;
        Ok(escrow)
    }
}
