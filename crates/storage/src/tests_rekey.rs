//! Re-keying in the store, on both backends: a batch moves every case to its next epoch, drops the
//! removed holders' rows of every epoch, and is all or nothing when one case moved meanwhile.

use super::*;
use crate::tests::{commit, each_backend, enrol, escrowed, new_case, society, ESCROW, NOW};
use rfl_domain::CaseId;

fn rekey(case: CaseId, seq: u64, parent: &[u8], keep: Uuid, removed: Uuid) -> RekeyWrite {
    RekeyWrite {
        case,
        parent: parent.to_vec(),
        commit: commit(seq, CaseStatus::Open),
        key_epoch: 2,
        keys: vec![WrappedKey {
            recipient_id: keep,
            wrapped: vec![9; 200],
        }],
        removed: vec![removed],
        older: vec![],
    }
}

#[test]
fn a_rekey_batch_moves_every_case_or_none() {
    each_backend(|store| {
        let s = escrowed(store, "Red Cross K");
        let a = enrol(store, s, Role::Caseworker, 61);
        let b = enrol(store, s, Role::Caseworker, 62);
        let cases: Vec<NewCase> = (0..3).map(|_| new_case(s, &b, 2)).collect();
        store.create_cases(&cases, ESCROW, NOW).unwrap();
        let head = commit(1, CaseStatus::Open).hash;
        let ids: Vec<CaseId> = cases.iter().map(|c| c.id).collect();
        let society_key = *s.as_uuid();
        let b_id = *b.id.as_uuid();

        // One case's parent is not its head: nothing is written.
        let mut batch: Vec<RekeyWrite> = ids
            .iter()
            .map(|id| rekey(*id, 2, &head, society_key, b_id))
            .collect();
        batch[2].parent = vec![7; 32];
        assert!(matches!(
            store.rekey_cases(s, ESCROW, &batch, &[], NOW),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(store.member_cases(s, b.id, None, 10).unwrap().len(), 3);

        // The whole batch: B loses every row of every case, the cases are at epoch 2.
        batch[2].parent = head.clone();
        let rows = store.rekey_cases(s, ESCROW, &batch, &[], NOW).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.key_epoch == 2 && r.version == 2));
        assert!(store.member_cases(s, b.id, None, 10).unwrap().is_empty());
        assert!(store.get_case(b.id, ids[0], None).unwrap().is_none());
        let heads = store.case_heads(s, &ids).unwrap();
        assert_eq!(heads.len(), 3);
        for h in &heads {
            let holders: Vec<Uuid> = h.holders.iter().map(|h| h.recipient).collect();
            assert_eq!(holders, vec![society_key]);
        }
        // Another society's admin sees none of them.
        let other = society(store, "Cruz Roja L");
        assert!(store.case_heads(other, &ids).unwrap().is_empty());
        assert!(store.member_cases(s, a.id, None, 10).unwrap().is_empty());
        // The same batch again is stale.
        assert!(matches!(
            store.rekey_cases(s, ESCROW, &batch, &[], NOW),
            Err(StorageError::Conflict(_))
        ));
    });
}

/// A write wrapping to a member whose keys changed since the caller's directory was read (they
/// rotated them meanwhile) is refused whole, so no row claims the new keys while wrapped to the old.
#[test]
fn rows_wrapped_to_keys_a_member_no_longer_has_are_refused() {
    each_backend(|store| {
        let s = escrowed(store, "Red Cross G");
        let a = enrol(store, s, Role::Caseworker, 71);
        let b = enrol(store, s, Role::Caseworker, 72);
        let c = new_case(s, &a, 0);
        store
            .create_cases(std::slice::from_ref(&c), ESCROW, NOW)
            .unwrap();
        let grant = |keys: &RecipientKeys| {
            store.write_commit(
                a.id,
                c.id,
                &[1; 32],
                &commit(2, CaseStatus::Open),
                &[],
                &[(
                    1,
                    WrappedKey {
                        recipient_id: *b.id.as_uuid(),
                        wrapped: vec![8; 200],
                    },
                )],
                std::slice::from_ref(keys),
                NOW,
            )
        };
        let read_before = RecipientKeys {
            member: b.id,
            signing_key: b.signing_key.clone(),
            age_recipient: b.age_recipient.clone(),
        };
        let rotated = RecipientKeys {
            signing_key: vec![99; 32],
            ..read_before.clone()
        };
        assert!(matches!(grant(&rotated), Err(StorageError::Conflict(_))));
        assert!(
            store.get_case(b.id, c.id, None).unwrap().is_none(),
            "nothing written"
        );
        let row = grant(&read_before).unwrap();
        assert_eq!(row.version, 2);
        assert!(store.get_case(b.id, c.id, None).unwrap().is_some());

        // The same for a re-key.
        let mut w = rekey(
            c.id,
            3,
            &commit(2, CaseStatus::Open).hash,
            *b.id.as_uuid(),
            *a.id.as_uuid(),
        );
        w.keys.push(WrappedKey {
            recipient_id: *s.as_uuid(),
            wrapped: vec![9; 200],
        });
        assert!(matches!(
            store.rekey_cases(s, ESCROW, std::slice::from_ref(&w), &[rotated], NOW),
            Err(StorageError::Conflict(_))
        ));
        store
            .rekey_cases(s, ESCROW, std::slice::from_ref(&w), &[read_before], NOW)
            .unwrap();
    });
}

/// The owning society's admin finds the members of other societies, suspended there, who still
/// hold a current key of its cases; not those who are active, not keys of an earlier epoch, and not
/// the society's own suspended members (its own revocation re-keys those).
#[test]
fn suspended_holders_of_other_societies_are_listed_with_their_cases() {
    each_backend(|store| {
        let s = escrowed(store, "Florence Red Crescent");
        let a = escrowed(store, "Eastern Red Cross");
        let own = enrol(store, s, Role::Caseworker, 81);
        let gone = enrol(store, a, Role::Caseworker, 82);
        let active = enrol(store, a, Role::Caseworker, 83);
        let earlier = enrol(store, a, Role::Caseworker, 84);
        let shared = |holders: &[&Member]| {
            let mut c = new_case(s, &own, 1);
            for h in holders {
                c.keys.push(WrappedKey {
                    recipient_id: *h.id.as_uuid(),
                    wrapped: vec![3; 200],
                });
            }
            c
        };
        let cases = vec![
            shared(&[&gone, &active]),
            shared(&[&gone]),
            shared(&[&earlier]),
            shared(&[]),
        ];
        store.create_cases(&cases, ESCROW, NOW).unwrap();
        // A's own case held by the member A suspends: not S's business.
        store
            .create_cases(&[new_case(a, &gone, 1)], ESCROW, NOW)
            .unwrap();
        // `earlier` held case 3 only in epoch 1: re-keyed without them.
        let head = commit(1, CaseStatus::Open).hash;
        let mut w = rekey(
            cases[2].id,
            2,
            &head,
            *own.id.as_uuid(),
            *earlier.id.as_uuid(),
        );
        w.keys.push(WrappedKey {
            recipient_id: *s.as_uuid(),
            wrapped: vec![4; 200],
        });
        w.removed.clear();
        store.rekey_cases(s, ESCROW, &[w], &[], NOW).unwrap();
        assert!(store.suspended_foreign_holders(s).unwrap().is_empty());

        for m in [&gone, &earlier] {
            store.set_suspended(a, m.id, true).unwrap();
        }
        store.set_suspended(s, own.id, true).unwrap();
        let listed = store.suspended_foreign_holders(s).unwrap();
        assert_eq!(
            listed,
            vec![ForeignHolder {
                member: gone.id,
                society: a,
                cases: 2
            }]
        );
        // Society A owns no case of S's: nothing to list for it.
        assert!(store.suspended_foreign_holders(a).unwrap().is_empty());
        // A, revoking `gone`, learns that S holds two cases of theirs; `earlier` holds none now.
        assert_eq!(
            store.member_cases_elsewhere(a, gone.id).unwrap(),
            vec![(s, 2)]
        );
        assert!(store
            .member_cases_elsewhere(a, earlier.id)
            .unwrap()
            .is_empty());
        assert!(store.member_cases_elsewhere(s, own.id).unwrap().is_empty());
    });
}
