//! Part of [`super::Session`]: members another society revoked who still hold cases of this one
//! (shared with them by a transfer that kept the sender's access). Their society's revocation
//! suspends them there at once, but only this society's holders can re-key its cases: an admin's
//! client checks each one's revocation on their society's signed list, verified through the pinned
//! Movement root, and re-keys the cases they hold without them. The server's word that they are
//! suspended only says where to look; it re-keys nothing by itself.

use super::*;
use crate::trust::Trust;

/// A member of another society whom the server lists as suspended there and as holding cases of
/// this society.
#[derive(Clone, Debug, Serialize)]
pub struct ForeignHolder {
    pub member: MemberId,
    pub society: SocietyId,
    /// Cases of this society they hold, as the server counts them.
    pub cases: u64,
    /// Why this client does not take them as revoked (`None`: their society's signed revocation
    /// list, verified through the Movement root, revokes their keys).
    pub unverified: Option<String>,
}

/// A member whose revocation verified, and what re-keying their cases here did.
#[derive(Clone, Debug, Serialize)]
pub struct RekeyedHolder {
    #[serde(flatten)]
    pub holder: ForeignHolder,
    pub rekey: RekeySummary,
}

/// What [`Session::rekey_revoked_holders`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RevokedHolders {
    /// Members whose revocation verified, with what re-keying their cases here did.
    pub rekeyed: Vec<RekeyedHolder>,
    /// Members left as they are: their revocation did not verify.
    pub unverified: Vec<ForeignHolder>,
}

impl Session {
    /// How many cases of each other society a member of this society holds (admins): cases
    /// transferred with the sender keeping access, which only their owning society can re-key. After
    /// revoking the member, tell those societies' admins to run `rfl society revoked-holders
    /// --rekey`.
    pub async fn member_cases_elsewhere(&self, member: MemberId) -> Result<Vec<CasesElsewhereDto>> {
        let resp: CasesElsewhereResponse = self
            .api
            .get(&format!("/v1/members/{member}/cases-elsewhere"))
            .await?;
        if resp
            .societies
            .iter()
            .any(|s| s.society_id == self.me.society_id)
        {
            return Err(tampered(
                "the server counts your own society's cases as another society's",
            ));
        }
        Ok(resp.societies)
    }

    /// The members of other societies the server lists as suspended and holding cases of this
    /// society (admins), each checked against their society's signed revocation list.
    pub async fn suspended_foreign_holders(&self) -> Result<Vec<ForeignHolder>> {
        let resp: SuspendedHoldersResponse = self.api.get("/v1/society/suspended-holders").await?;
        let mut trusts: HashMap<SocietyId, std::result::Result<Arc<Trust>, String>> =
            HashMap::new();
        let mut out = Vec::with_capacity(resp.holders.len());
        for h in resp.holders {
            if h.society_id == self.me.society_id {
                return Err(tampered(
                    "the server lists a member of your own society as another society's",
                ));
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = trusts.entry(h.society_id) {
                let t = match self.society_trust(h.society_id).await {
                    Ok(t) => Ok(t),
                    // A society this client cannot verify: its members' revocations cannot be
                    // checked, which is said, not fatal for the others.
                    Err(ClientError::Invalid(m) | ClientError::Tampered(m)) => Err(m),
                    Err(e) => return Err(e),
                };
                slot.insert(t);
            }
            let unverified = match trusts.get(&h.society_id) {
                Some(Ok(t)) if t.is_revoked(*h.member_id.as_uuid()) => None,
                Some(Ok(_)) => Some(
                    "their society's signed revocation list does not revoke their keys".to_owned(),
                ),
                Some(Err(m)) => Some(m.clone()),
                None => Some("their society's keys were not loaded".to_owned()),
            };
            out.push(ForeignHolder {
                member: h.member_id,
                society: h.society_id,
                cases: h.cases,
                unverified,
            });
        }
        Ok(out)
    }

    /// Re-keys every case of this society held by a member whose own society revoked them (after
    /// [`Session::suspended_foreign_holders`] verified it): each case gets a new key epoch without
    /// them, as for a member of this society ([`Session::rekey_member_cases`]). Run again after a
    /// crash, it finishes the job. `progress` gets the member and the cases re-keyed so far.
    pub async fn rekey_revoked_holders(
        &self,
        progress: impl Fn(MemberId, usize),
    ) -> Result<RevokedHolders> {
        let mut out = RevokedHolders::default();
        for h in self.suspended_foreign_holders().await? {
            if h.unverified.is_some() {
                out.unverified.push(h);
                continue;
            }
            let m = h.member;
            let rekey = self.rekey_member_cases(m, |n| progress(m, n)).await?;
            out.rekeyed.push(RekeyedHolder { holder: h, rekey });
        }
        Ok(out)
    }
}
