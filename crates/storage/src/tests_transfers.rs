//! The Movement root and transfers in the store, on both backends: the root is set once; an offer
//! is at the case's version, to the receiving society's escrow key, one pending per case; only the
//! receiving society reads the offer with the case; accepting moves the case in one transaction
//! (a new epoch without the sender, or the same one with the sender kept), and a transfer ends once.

use super::*;
use crate::tests::{commit, each_backend, enrol, escrowed, new_case, society, ESCROW, NOW};
use rfl_domain::{CaseId, CaseStatus, MemberId, Role, SocietyId};

pub(crate) fn offer(
    case: &NewCase,
    from: SocietyId,
    to: SocietyId,
    by: MemberId,
    keep: bool,
) -> TransferOffer {
    TransferOffer {
        id: Uuid::now_v7(),
        case: case.id,
        from,
        to,
        by,
        case_version: 1,
        key_epoch: 1,
        keep_access: keep,
        escrow_recipient: ESCROW.into(),
        keys: vec![(1, vec![3; 200])],
    }
}

pub(crate) fn acceptance(
    t: &TransferRow,
    to: SocietyId,
    by: MemberId,
    assignee: MemberId,
    epoch: u32,
) -> TransferAcceptance {
    TransferAcceptance {
        transfer: t.id,
        society: to,
        by,
        parent: commit(1, CaseStatus::Open).hash,
        commit: commit(2, CaseStatus::Open),
        key_epoch: epoch,
        assignee,
        member_keys: (1..=epoch).map(|e| (e, vec![4; 200])).collect(),
        escrow_keys: (1..=epoch).map(|e| (e, vec![5; 200])).collect(),
        escrow_recipient: ESCROW.into(),
        wrapped_for: vec![],
    }
}

fn recipients(store: &Store, member: MemberId, case: CaseId) -> Vec<Uuid> {
    store
        .case_holders(member, case)
        .unwrap()
        .unwrap()
        .holders
        .iter()
        .map(|h| h.recipient)
        .collect()
}

#[test]
fn the_movement_root_is_set_once_and_its_certificates_are_served_with_the_society() {
    each_backend(|store| {
        let s = society(store, "Red Cross M");
        let by = MemberId::new();
        assert_eq!(store.movement_root().unwrap(), None);
        store.set_movement_root(&[1; 32], by, NOW).unwrap();
        store.set_movement_root(&[1; 32], by, NOW).unwrap();
        assert!(matches!(
            store.set_movement_root(&[2; 32], by, NOW),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(store.movement_root().unwrap(), Some([1; 32]));
        store
            .put_society_certificate(s, &[7; 32], &[8; 177], NOW)
            .unwrap();
        // A newer certificate of the same root replaces it.
        store
            .put_society_certificate(s, &[7; 32], &[9; 177], NOW + 1)
            .unwrap();
        assert_eq!(
            store.society_certificates(s).unwrap().movement_certificates,
            vec![vec![9; 177]]
        );
    });
}

#[test]
fn a_case_moves_to_the_society_that_accepts_it_once() {
    each_backend(|store| {
        let a_soc = escrowed(store, "Andorran Red Cross");
        let b_soc = escrowed(store, "Bahrain Red Crescent");
        let c_soc = escrowed(store, "Chilean Red Cross");
        let a = enrol(store, a_soc, Role::Caseworker, 81);
        let b = enrol(store, b_soc, Role::Caseworker, 82);
        let b_admin = enrol(store, b_soc, Role::SocietyAdmin, 83);
        let gone = new_case(a_soc, &a, 2);
        let kept = new_case(a_soc, &a, 2);
        store
            .create_cases(&[gone.clone(), kept.clone()], ESCROW, NOW)
            .unwrap();

        // Refused: not a holder, another version, another escrow key.
        assert!(matches!(
            store.offer_transfer(&offer(&gone, a_soc, b_soc, b.id, false), NOW),
            Err(StorageError::NotFound)
        ));
        let mut stale = offer(&gone, a_soc, b_soc, a.id, false);
        stale.case_version = 2;
        assert!(matches!(
            store.offer_transfer(&stale, NOW),
            Err(StorageError::Conflict(_))
        ));
        let mut other_key = offer(&gone, a_soc, b_soc, a.id, false);
        other_key.escrow_recipient = "age1someone-else".into();
        assert!(matches!(
            store.offer_transfer(&other_key, NOW),
            Err(StorageError::Conflict(_))
        ));

        let t = store
            .offer_transfer(&offer(&gone, a_soc, b_soc, a.id, false), NOW)
            .unwrap();
        assert_eq!(t.state, TransferState::Pending);
        // One pending offer per case.
        assert!(matches!(
            store.offer_transfer(&offer(&gone, a_soc, c_soc, a.id, false), NOW),
            Err(StorageError::Conflict(_))
        ));
        // Both societies see it; a third does not; only the receiver reads it with the case.
        assert_eq!(
            store.society_transfers(a_soc, true).unwrap(),
            vec![t.clone()]
        );
        assert_eq!(
            store.society_transfers(b_soc, false).unwrap(),
            vec![t.clone()]
        );
        assert!(store.society_transfers(c_soc, false).unwrap().is_empty());
        assert!(store.transfer_case(a_soc, t.id).unwrap().is_none());
        let tc = store.transfer_case(b_soc, t.id).unwrap().unwrap();
        assert_eq!(tc.keys, vec![(1, vec![3; 200])]);
        assert_eq!(tc.records.len(), 2);
        assert_eq!(
            tc.holders.len(),
            2,
            "the sender and its society's escrow key"
        );
        assert!(matches!(
            store.close_transfer(c_soc, t.id, b_admin.id, NOW),
            Err(StorageError::NotFound)
        ));

        // Given up: a new epoch that only the assignee and B's escrow key hold.
        let row = store
            .accept_transfer(&acceptance(&t, b_soc, b_admin.id, b.id, 2), NOW)
            .unwrap();
        assert_eq!((row.society_id, row.key_epoch, row.version), (b_soc, 2, 2));
        assert!(store.get_case(a.id, gone.id, None).unwrap().is_none());
        let read = store.get_case(b.id, gone.id, None).unwrap().unwrap();
        assert_eq!(read.older_keys, vec![(1, vec![4; 200])]);
        let mut holders = recipients(store, b.id, gone.id);
        holders.sort();
        let mut expected = vec![*b.id.as_uuid(), *b_soc.as_uuid()];
        expected.sort();
        assert_eq!(holders, expected);
        let done = store.transfer_of(a_soc, t.id).unwrap().unwrap();
        assert_eq!(
            (done.state, done.assigned_to),
            (TransferState::Accepted, Some(b.id))
        );
        assert!(matches!(
            store.accept_transfer(&acceptance(&t, b_soc, b_admin.id, b.id, 2), NOW),
            Err(StorageError::Conflict(_))
        ));

        // Kept: the same epoch, the sender holds it still, A's escrow row gives way to B's.
        let t = store
            .offer_transfer(&offer(&kept, a_soc, b_soc, a.id, true), NOW)
            .unwrap();
        let row = store
            .accept_transfer(&acceptance(&t, b_soc, b_admin.id, b.id, 1), NOW)
            .unwrap();
        assert_eq!((row.society_id, row.key_epoch), (b_soc, 1));
        let holders = recipients(store, a.id, kept.id);
        assert!(holders.contains(a.id.as_uuid()) && holders.contains(b.id.as_uuid()));
        assert!(holders.contains(b_soc.as_uuid()) && !holders.contains(a_soc.as_uuid()));

        // Rejected by the receiver, cancelled by the sender; either ends it once.
        let third = new_case(a_soc, &a, 1);
        store
            .create_cases(std::slice::from_ref(&third), ESCROW, NOW)
            .unwrap();
        let t = store
            .offer_transfer(&offer(&third, a_soc, b_soc, a.id, false), NOW)
            .unwrap();
        let closed = store.close_transfer(b_soc, t.id, b_admin.id, NOW).unwrap();
        assert_eq!(closed.state, TransferState::Rejected);
        assert!(matches!(
            store.close_transfer(a_soc, t.id, a.id, NOW),
            Err(StorageError::Conflict(_))
        ));
        let t = store
            .offer_transfer(&offer(&third, a_soc, b_soc, a.id, false), NOW)
            .unwrap();
        assert_eq!(
            store.close_transfer(a_soc, t.id, a.id, NOW).unwrap().state,
            TransferState::Cancelled
        );
        assert!(store.get_case(a.id, third.id, None).unwrap().is_some());
    });
}
