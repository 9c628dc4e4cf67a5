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
            store.rekey_cases(s, ESCROW, &batch, NOW),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(store.member_cases(s, b.id, None, 10).unwrap().len(), 3);

        // The whole batch: B loses every row of every case, the cases are at epoch 2.
        batch[2].parent = head.clone();
        let rows = store.rekey_cases(s, ESCROW, &batch, NOW).unwrap();
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
            store.rekey_cases(s, ESCROW, &batch, NOW),
            Err(StorageError::Conflict(_))
        ));
    });
}
