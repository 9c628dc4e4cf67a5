//! The admin's side of trust: creating the society's escrow key and root, certifying admins and
//! members (a rotation's new keys included), and publishing the signed revocation list.

use super::*;

impl Session {
    /// First admin: creates the society escrow key (wrapped to the offline recovery recipient) and the
    /// society's signing root, which certifies the escrow key and this admin; pins the root. Returns the
    /// root key, to be kept offline by the admins; its fingerprint is what people pin.
    pub async fn init_society(&mut self, recovery: &AgeRecipient) -> Result<SocietyRootKey> {
        let escrow = self.set_society_escrow(recovery).await?;
        let root = self.create_society_root(&escrow).await?;
        self.pin_root(&root.public().fingerprint()).await?;
        Ok(root)
    }

    /// The first step of [`Session::init_society`]: creates the society escrow identity and uploads it
    /// wrapped to `recovery`, and returns its recipient. Once this has succeeded, the recovery key is
    /// the only way to the escrow identity (the server sets it once), so a caller that generated the
    /// recovery key must have kept it before calling this.
    pub async fn set_society_escrow(&self, recovery: &AgeRecipient) -> Result<AgeRecipient> {
        let society = *self.society_id().as_uuid();
        let escrow = AgeIdentity::generate();
        let wrapped = wrap_escrow_identity(&escrow, society, recovery.as_age())?;
        self.api()
            .set_escrow(&EscrowDto {
                recipient: escrow.recipient().to_string(),
                wrapped_identity: wrapped.into(),
            })
            .await?;
        Ok(escrow.recipient())
    }

    /// The second step of [`Session::init_society`]: creates the society root, certifies `escrow` and
    /// this admin with it, and uploads the root and both certificates. Returns the root key without
    /// pinning it, so the caller can keep the key before anything else can fail; then pin it
    /// ([`Session::pin_root`]) to check what the server now serves.
    pub async fn create_society_root(&self, escrow: &AgeRecipient) -> Result<SocietyRootKey> {
        let society = *self.society_id().as_uuid();
        let root = SocietyRootKey::generate()?;
        let v = validity(ROOT_CERT_DAYS)?;
        let escrow_cert = issue_escrow_cert(&root, society, escrow, v)?;
        let admin_cert = issue_admin_cert(
            &root,
            society,
            *self.member_id().as_uuid(),
            self.keys().signing.public_key(),
            &self.keys().age.recipient(),
            v,
        )?;
        self.api()
            .put_no_content(
                "/v1/society/root",
                &SetRoot {
                    root_public_key: root.public().as_bytes().to_vec().into(),
                    certificates: vec![escrow_cert.to_hex(), admin_cert.to_hex()],
                },
            )
            .await?;
        Ok(root)
    }

    /// A member of this society as the server lists them, with the public keys they registered.
    pub(crate) async fn registered_keys(
        &self,
        member: MemberId,
    ) -> Result<(MemberDto, DevicePublicKey, AgeRecipient)> {
        let m = self
            .api()
            .members()
            .await?
            .members
            .into_iter()
            .find(|m| m.id == member)
            .ok_or_else(|| ClientError::Invalid(format!("no member {member} in your society")))?;
        let signing = DevicePublicKey::from_slice(&m.signing_key.0)?;
        let recipient = AgeRecipient::parse(&m.age_recipient)?;
        Ok((m, signing, recipient))
    }

    /// An admin revokes every key of `member` the society knows (their registered keys and any
    /// certified ones) by publishing the next revocation list, signed with this admin's device key,
    /// then suspends the member. Clients stop wrapping case keys to them at once. Running it again
    /// after a failure finishes the job: keys already listed are not listed twice, and a list
    /// published meanwhile by another admin is reloaded and followed.
    pub async fn revoke_member(
        &self,
        member: MemberId,
        reason: RevocationReason,
    ) -> Result<Revoked> {
        if member == self.member_id() {
            return Err(ClientError::Invalid(
                "you cannot revoke your own keys: another admin (or the society root) must".into(),
            ));
        }
        let (m, signing, recipient) = self.registered_keys(member).await?;
        let registered = subject_keys_digest(Some(&signing), &recipient);
        let published = self
            .publish_revocations(
                *member.as_uuid(),
                |t| {
                    std::iter::once(registered)
                        .chain(
                            t.certificates
                                .get(member.as_uuid())
                                .map(|(c, _)| c.keys_digest()),
                        )
                        .collect()
                },
                reason,
            )
            .await?;
        self.reload_members().await?;
        let listed = self.with_trust(|t| {
            t.revocations
                .as_ref()
                .is_some_and(|r| r.is_revoked(*member.as_uuid(), &registered))
        })?;
        if !listed {
            return Err(ClientError::Invalid(
                "the revocation list kept changing while this ran: run the command again".into(),
            ));
        }
        let suspended = if m.suspended {
            false
        } else {
            self.api().suspend(member).await?;
            true
        };
        Ok(Revoked {
            member,
            list_number: published,
            suspended,
        })
    }

    /// Publishes the society's next revocation list with the keys `digests` names (given the trust
    /// as reloaded) of `subject` added, signed with this admin's device key; keys listed already are
    /// not listed twice. On 409 (another admin published meanwhile) it reloads and signs again.
    /// Returns the number of the list it published, none if there was nothing to add.
    pub(crate) async fn publish_revocations(
        &self,
        subject: Uuid,
        digests: impl Fn(&crate::trust::Trust) -> Vec<[u8; 32]>,
        reason: RevocationReason,
    ) -> Result<Option<u64>> {
        for _attempt in 0..3 {
            self.reload_members().await?;
            let (previous, wanted) = self.with_trust(|t| (t.revocations.clone(), digests(t)))?;
            let now = now_secs();
            let added: Vec<RevocationEntry> = wanted
                .into_iter()
                .map(|keys_digest| RevocationEntry {
                    subject_id: subject,
                    keys_digest,
                    revoked_at: now,
                    reason,
                })
                .filter(|e| {
                    !previous
                        .as_ref()
                        .is_some_and(|p| p.is_revoked(e.subject_id, &e.keys_digest))
                })
                .collect();
            if added.is_empty() {
                return Ok(None);
            }
            let list = RevocationListBody::next(
                *self.society_id().as_uuid(),
                previous.as_ref(),
                &added,
                now,
            )?
            .sign_by_admin(&self.keys().signing)?;
            match self
                .api()
                .put_no_content(
                    "/v1/society/revocations",
                    &RevocationListRequest {
                        list: list.to_hex(),
                    },
                )
                .await
            {
                Ok(()) => return Ok(Some(list.body().number)),
                // Another admin published a list meanwhile: reload it and sign the next one.
                Err(ClientError::Api { status: 409, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Refused unless `root` is the society root this session pinned (a root key file of another
    /// society, or a forged one, signs nothing here).
    pub(crate) fn check_root_key(&self, root: &SocietyRootKey) -> Result<()> {
        let pinned = self.pinned_root().ok_or_else(|| {
            ClientError::Invalid("pin your society's root key fingerprint first".into())
        })?;
        // The current root, as the pinned one (or a succession from it) leads to.
        let current = self.with_trust(|t| t.root).ok().flatten();
        let ok = match current {
            Some(c) => c == root.public(),
            None => root.public().matches_fingerprint(pinned),
        };
        if !ok {
            return Err(ClientError::Invalid(
                "this root key is not your society's current root (the one you pinned, or the one \
                 its successions lead to)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// An admin certifies another **admin**'s keys with the society root key (only the root issues
    /// admin certificates), after comparing `keys_fingerprint` (read out by the new admin) with the
    /// keys the server lists for them. Refused unless `root` is the root this session pinned, the
    /// member is registered as a society admin, and their keys are not revoked.
    pub async fn certify_admin(
        &self,
        member: MemberId,
        keys_fingerprint_read_out: &str,
        root: &SocietyRootKey,
    ) -> Result<Certification> {
        self.check_root_key(root)?;
        self.reload_members().await?;
        let (m, signing, recipient) = self.registered_keys(member).await?;
        if m.role != Role::SocietyAdmin {
            return Err(ClientError::Invalid(format!(
                "member {member} is not a society admin: certify them with `rfl certify`"
            )));
        }
        if let Some((next_signing, next_recipient)) =
            next_keys_read_out(&m, keys_fingerprint_read_out)?
        {
            self.check_keys_to_certify(
                member,
                &next_signing,
                &next_recipient,
                keys_fingerprint_read_out,
            )?;
            let cert = issue_admin_cert(
                root,
                *self.society_id().as_uuid(),
                *member.as_uuid(),
                next_signing,
                &next_recipient,
                validity(ROOT_CERT_DAYS)?,
            )?;
            let old = subject_keys_digest(Some(&signing), &recipient);
            self.switch_member_keys(member, &cert, old, Some(root))
                .await?;
            return Ok(Certification::Rotated);
        }
        self.check_keys_to_certify(member, &signing, &recipient, keys_fingerprint_read_out)?;
        let cert = issue_admin_cert(
            root,
            *self.society_id().as_uuid(),
            *member.as_uuid(),
            signing,
            &recipient,
            validity(ROOT_CERT_DAYS)?,
        )?;
        self.upload_certificate(&cert).await?;
        Ok(Certification::Certified)
    }

    /// Sends a certificate this admin issued (`POST /v1/certificates`).
    async fn upload_certificate(&self, cert: &KeyCertificate) -> Result<()> {
        self.api()
            .post_no_content(
                "/v1/certificates",
                &Certificates {
                    certificates: vec![cert.to_hex()],
                },
            )
            .await
    }

    /// The checks before any certificate is signed: the keys are not revoked, and they are the ones
    /// the member read out (a server that substituted them is caught here).
    fn check_keys_to_certify(
        &self,
        member: MemberId,
        signing: &DevicePublicKey,
        recipient: &AgeRecipient,
        keys_fingerprint_read_out: &str,
    ) -> Result<()> {
        let digest = subject_keys_digest(Some(signing), recipient);
        if self.with_trust(|t| {
            t.revocations
                .as_ref()
                .is_some_and(|r| r.is_revoked(*member.as_uuid(), &digest))
        })? {
            return Err(ClientError::Invalid(
                "these keys were revoked: the member must enrol new keys before they are certified"
                    .into(),
            ));
        }
        if keys_fingerprint(signing, recipient) != keys_fingerprint_read_out.trim() {
            return Err(ClientError::Tampered(
                "the keys the server lists for this member are not the ones they read out: not certified"
                    .into(),
            ));
        }
        Ok(())
    }

    /// An admin certifies a member's keys, after comparing `keys_fingerprint` (read out by the member,
    /// out of band) with the keys the server lists for them: a server that substituted the keys is
    /// caught here, before anything is signed.
    pub async fn certify_member(
        &self,
        member: MemberId,
        keys_fingerprint_read_out: &str,
    ) -> Result<Certification> {
        let (m, signing, recipient) = self.registered_keys(member).await?;
        let next = next_keys_read_out(&m, keys_fingerprint_read_out)?;
        let (cert_signing, cert_recipient) = match &next {
            Some((s, r)) => (*s, r.clone()),
            None => (signing, recipient.clone()),
        };
        self.check_keys_to_certify(
            member,
            &cert_signing,
            &cert_recipient,
            keys_fingerprint_read_out,
        )?;
        let mine = self
            .with_trust(|t| {
                t.certificates
                    .get(self.member_id().as_uuid())
                    .map(|(c, _)| c.clone())
            })?
            .ok_or_else(|| {
                ClientError::Invalid(
                    "you have no admin certificate that verifies against the pinned root".into(),
                )
            })?;
        let cert = issue_member_cert(
            &self.keys().signing,
            &mine,
            *member.as_uuid(),
            certified_role(m.role)?,
            cert_signing,
            &cert_recipient,
            validity(MEMBER_CERT_DAYS)?,
        )?;
        if next.is_some() {
            // The member is rotating their keys: the certificate of the new ones switches them.
            let old = subject_keys_digest(Some(&signing), &recipient);
            self.switch_member_keys(member, &cert, old, None).await?;
            return Ok(Certification::Rotated);
        }
        self.upload_certificate(&cert).await?;
        Ok(Certification::Certified)
    }
}

/// The keys a member registered to rotate to, if those are the keys whose fingerprint they read out.
fn next_keys_read_out(
    m: &MemberDto,
    keys_fingerprint_read_out: &str,
) -> Result<Option<(DevicePublicKey, AgeRecipient)>> {
    let Some(next) = &m.next_keys else {
        return Ok(None);
    };
    let signing = DevicePublicKey::from_slice(&next.signing_key.0)?;
    let recipient = AgeRecipient::parse(&next.age_recipient)?;
    Ok(
        (keys_fingerprint(&signing, &recipient) == keys_fingerprint_read_out.trim())
            .then_some((signing, recipient)),
    )
}
