//! A society's certificates, root and revocation lists in the store, on both backends: stored per
//! society, lists numbered without gaps, and a root rotation applied whole or not at all.

use super::*;
use crate::tests::{each_backend, enrol, society, NOW};

#[test]
fn certificates_and_the_root_are_stored_per_society() {
    each_backend(|store| {
        let s = society(store, "Cruz Roja C");
        let other = society(store, "Dansk Rode Kors");
        let m = enrol(store, s, Role::Caseworker, 70);
        let cert = |subject: Uuid, b: u8| CertificateRow {
            subject_id: subject,
            certificate: vec![b; 40],
            issued_at: NOW,
        };
        assert_eq!(
            store.society_certificates(s).unwrap(),
            SocietyTrust {
                root: None,
                certificates: vec![],
                retired: vec![],
                revocations: None,
                successions: vec![],
                movement_certificates: vec![],
            }
        );
        store
            .put_certificates(s, Some(&[1; 32]), &[cert(*s.as_uuid(), 1)], NOW)
            .unwrap();
        // The root is set once; the same root again is fine, another is a conflict and stores nothing.
        store
            .put_certificates(s, Some(&[1; 32]), &[cert(*m.id.as_uuid(), 2)], NOW)
            .unwrap();
        assert!(matches!(
            store.put_certificates(s, Some(&[9; 32]), &[cert(*m.id.as_uuid(), 3)], NOW),
            Err(StorageError::Conflict(_))
        ));
        // A newer certificate replaces the subject's earlier one.
        store
            .put_certificates(s, None, &[cert(*m.id.as_uuid(), 4)], NOW + 1)
            .unwrap();
        let SocietyTrust {
            root,
            certificates: certs,
            ..
        } = store.society_certificates(s).unwrap();
        assert_eq!(root, Some([1; 32]));
        assert_eq!(certs.len(), 2, "{certs:?}");
        let mine: Vec<_> = certs
            .iter()
            .filter(|c| c.subject_id == *m.id.as_uuid())
            .collect();
        assert_eq!(mine.len(), 1);
        assert!(certs.contains(&CertificateRow {
            subject_id: *m.id.as_uuid(),
            certificate: vec![4; 40],
            issued_at: NOW
        }));
        // Another society cannot overwrite this society's subject, and sees none of them.
        assert!(matches!(
            store.put_certificates(other, None, &[cert(*m.id.as_uuid(), 5)], NOW),
            Err(StorageError::NotFound)
        ));
        assert_eq!(
            store.society_certificates(other).unwrap(),
            SocietyTrust {
                root: None,
                certificates: vec![],
                retired: vec![],
                revocations: None,
                successions: vec![],
                movement_certificates: vec![],
            }
        );
    });
}

#[test]
fn revocation_lists_are_numbered_from_one_without_gaps_and_the_latest_is_served() {
    each_backend(|store| {
        let s = society(store, "Magen David Adom");
        let other = society(store, "Croix-Rouge D");
        assert_eq!(store.latest_revocation_list(s).unwrap(), None);
        // Not the first: refused, nothing stored.
        assert!(matches!(
            store.add_revocation_list(s, 2, &[2; 10], NOW),
            Err(StorageError::Conflict(_))
        ));
        store.add_revocation_list(s, 1, &[1; 10], NOW).unwrap();
        // The same number twice (two admins at once): one wins.
        assert!(matches!(
            store.add_revocation_list(s, 1, &[9; 10], NOW),
            Err(StorageError::Conflict(_))
        ));
        store.add_revocation_list(s, 2, &[2; 10], NOW + 1).unwrap();
        assert_eq!(store.latest_revocation_list(s).unwrap(), Some(vec![2; 10]));
        assert_eq!(
            store.society_certificates(s).unwrap().revocations,
            Some(vec![2; 10])
        );
        // Each society has its own numbering.
        assert_eq!(store.latest_revocation_list(other).unwrap(), None);
        store.add_revocation_list(other, 1, &[7; 10], NOW).unwrap();
        assert_eq!(store.latest_revocation_list(s).unwrap(), Some(vec![2; 10]));
    });
}

#[test]
fn a_root_rotation_replaces_root_and_certificates_together_or_not_at_all() {
    each_backend(|store| {
        let s = society(store, "Red Cross Root");
        let cert = |subject: Uuid, b: u8| CertificateRow {
            subject_id: subject,
            certificate: vec![b; 40],
            issued_at: NOW,
        };
        let escrow = *s.as_uuid();
        store
            .put_certificates(s, Some(&[1; 32]), &[cert(escrow, 1)], NOW)
            .unwrap();
        let rotation = |old: [u8; 32], subject: Uuid| RootRotation {
            old_root: old,
            new_root: [2; 32],
            succession: vec![7; 236],
            certificates: vec![cert(subject, 2)],
            list_number: 1,
            list: vec![9; 100],
        };
        // Not the current root, or a certificate that replaces none: nothing stored.
        for bad in [rotation([3; 32], escrow), rotation([1; 32], Uuid::new_v4())] {
            assert!(matches!(
                store.rotate_society_root(s, &bad, NOW),
                Err(StorageError::Conflict(_))
            ));
            let t = store.society_certificates(s).unwrap();
            assert_eq!(t.root, Some([1; 32]));
            assert!(t.successions.is_empty() && t.revocations.is_none());
            assert_eq!(t.certificates[0].certificate, vec![1; 40]);
        }
        store
            .rotate_society_root(s, &rotation([1; 32], escrow), NOW)
            .unwrap();
        let t = store.society_certificates(s).unwrap();
        assert_eq!(t.root, Some([2; 32]));
        assert_eq!(t.successions, vec![vec![7; 236]]);
        assert_eq!(t.certificates[0].certificate, vec![2; 40]);
        assert_eq!(t.revocations, Some(vec![9; 100]));
        // The same rotation again: the root moved on.
        assert!(store
            .rotate_society_root(s, &rotation([1; 32], escrow), NOW)
            .is_err());
    });
}
