//! Unit tests of commits: format 3 and 4, chain shape, digests, records.
use super::*;
use uuid::Uuid;

fn body(seq: u64, parent: CommitHash) -> CommitBody {
    let key = DataKey::from_bytes([7; 32]);
    let case_id = Uuid::from_bytes([1; 16]);
    CommitBody {
        op: if seq == 1 {
            CommitOp::Create
        } else {
            CommitOp::Records
        },
        case_id,
        seq,
        parent,
        key_epoch: 1,
        key_commitment: key_commitment(&key, case_id, 1),
        status: 0,
        author: Uuid::from_bytes([2; 16]),
        created_at: 1_764_000_000_000,
        state: state_digest(&[]).unwrap(),
        holders: holders_digest(&[Holder {
            member_id: Uuid::from_bytes([2; 16]),
            keys_digest: [3; 32],
        }])
        .unwrap(),
    }
}

#[test]
fn holders_digest_is_order_free_and_refuses_a_member_twice() {
    let h = |n: u8, k: u8| Holder {
        member_id: Uuid::from_bytes([n; 16]),
        keys_digest: [k; 32],
    };
    let a = holders_digest(&[h(1, 1), h(2, 2)]).unwrap();
    assert_eq!(a, holders_digest(&[h(2, 2), h(1, 1)]).unwrap());
    assert_ne!(a, holders_digest(&[h(1, 1)]).unwrap());
    assert_ne!(a, holders_digest(&[h(1, 1), h(2, 3)]).unwrap());
    assert_ne!(a, holders_digest(&[h(1, 1), h(3, 2)]).unwrap());
    assert!(holders_digest(&[h(1, 1), h(1, 2)]).is_err());
}

#[test]
fn a_merge_is_format_4_names_another_second_parent_and_signs_it() {
    let k = DeviceSigningKey::generate().unwrap();
    let first = body(1, CommitHash::ZERO).sign(&k).unwrap();
    let merge = CommitBody {
        op: CommitOp::Merge,
        ..body(2, first.hash())
    };
    let other = CommitHash([9; 32]);
    // Only sign_merge signs a merge, and only a merge has a second parent, another commit.
    assert!(merge.sign(&k).is_err());
    assert!(body(2, first.hash()).sign_merge(other, &k).is_err());
    assert!(merge.sign_merge(CommitHash::ZERO, &k).is_err());
    assert!(merge.sign_merge(first.hash(), &k).is_err());
    let m = merge.sign_merge(other, &k).unwrap();
    assert_eq!(m.as_bytes().len(), MERGE_LEN);
    assert_eq!(m.as_bytes()[4], MERGE_VERSION);
    let p = parse_commit(m.as_bytes()).unwrap();
    assert_eq!(p, m);
    assert_eq!(p.second_parent(), Some(other));
    assert_eq!(
        parse_commit(first.as_bytes()).unwrap().second_parent(),
        None
    );
    p.clone().verify(&k.public_key()).unwrap();
    // The second parent is signed: another one fails verification (its bytes are the
    // commit's, so its hash changes too).
    let mut moved = m.as_bytes().to_vec();
    moved[BODY_LEN] ^= 1;
    let moved = parse_commit(&moved).unwrap();
    assert_ne!(moved.hash(), m.hash());
    assert!(moved.verify(&k.public_key()).is_err());
    // A merge op in format 3, or another op in format 4, does not parse; nor does a format
    // 4 commit cut to format 3's length.
    let mut op_in_3 = first.as_bytes().to_vec();
    op_in_3[5] = CommitOp::Merge as u8;
    assert!(parse_commit(&op_in_3).is_err());
    let mut records_in_4 = m.as_bytes().to_vec();
    records_in_4[5] = CommitOp::Records as u8;
    assert!(parse_commit(&records_in_4).is_err());
    assert!(parse_commit(&m.as_bytes()[..COMMIT_LEN]).is_err());
    // A merge's first commit is never a merge.
    let mut create = m.as_bytes().to_vec();
    create[22..30].copy_from_slice(&1u64.to_be_bytes());
    assert!(parse_commit(&create).is_err());
}

#[test]
fn sign_parse_verify_round_trip() {
    let k = DeviceSigningKey::generate().unwrap();
    let c = body(1, CommitHash::ZERO).sign(&k).unwrap();
    assert_eq!(c.as_bytes().len(), COMMIT_LEN);
    let p = parse_commit(c.as_bytes()).unwrap();
    assert_eq!(p, c);
    assert_eq!(p.hash(), CommitHash(sha256(c.as_bytes())));
    let v = p.verify(&k.public_key()).unwrap();
    assert_eq!(v.body().seq, 1);
    let other = DeviceSigningKey::generate().unwrap();
    assert!(matches!(
        parse_commit(c.as_bytes())
            .unwrap()
            .verify(&other.public_key()),
        Err(CryptoError::BadSignature)
    ));
}

#[test]
fn every_bit_of_a_commit_is_covered() {
    let k = DeviceSigningKey::generate().unwrap();
    let c = body(2, CommitHash([9; 32])).sign(&k).unwrap();
    for i in 0..COMMIT_LEN * 8 {
        let mut b = c.as_bytes().to_vec();
        b[i / 8] ^= 1 << (i % 8);
        let ok = parse_commit(&b).and_then(|p| p.verify(&k.public_key()));
        assert!(ok.is_err(), "bit {i} flipped and still accepted");
    }
}

#[test]
fn only_the_very_commit_verified_before_skips_verification() {
    let k = DeviceSigningKey::generate().unwrap();
    let c = body(2, CommitHash([9; 32])).sign(&k).unwrap();
    let seen = c.hash();
    assert_eq!(c.clone().verified_before(&seen).unwrap().hash(), seen);
    // Any changed bit changes the hash, so it is never taken as the commit seen.
    for i in 0..COMMIT_LEN * 8 {
        let mut b = c.as_bytes().to_vec();
        b[i / 8] ^= 1 << (i % 8);
        if let Ok(p) = parse_commit(&b) {
            assert!(
                p.verified_before(&seen).is_err(),
                "bit {i} flipped and still accepted"
            );
        }
    }
    let other = body(2, CommitHash([8; 32])).sign(&k).unwrap();
    assert!(matches!(
        other.verified_before(&seen),
        Err(CryptoError::BadSignature)
    ));
}

#[test]
fn chain_shape_is_enforced() {
    let k = DeviceSigningKey::generate().unwrap();
    assert!(body(0, CommitHash::ZERO).sign(&k).is_err());
    assert!(body(2, CommitHash::ZERO).sign(&k).is_err());
    let mut b = body(1, CommitHash([1; 32]));
    assert!(b.sign(&k).is_err());
    b.parent = CommitHash::ZERO;
    b.op = CommitOp::Status;
    assert!(b.sign(&k).is_err());
}

#[test]
fn state_digest_is_order_free_and_refuses_duplicates() {
    let e = |n: u8, v: u64| StateEntry {
        record_id: Uuid::from_bytes([n; 16]),
        kind: RecordKind::Note,
        version: v,
        envelope_hash: [n; 32],
    };
    let a = state_digest(&[e(1, 1), e(2, 1), e(3, 1)]).unwrap();
    let b = state_digest(&[e(3, 1), e(1, 1), e(2, 1)]).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.count, 3);
    assert_ne!(a, state_digest(&[e(1, 1), e(2, 2), e(3, 1)]).unwrap());
    assert_ne!(a, state_digest(&[e(1, 1), e(2, 1)]).unwrap());
    assert!(state_digest(&[e(1, 1), e(1, 2)]).is_err());
}

#[test]
fn key_commitment_binds_key_case_and_epoch() {
    let k1 = DataKey::from_bytes([1; 32]);
    let k2 = DataKey::from_bytes([2; 32]);
    let c = Uuid::from_bytes([5; 16]);
    let base = key_commitment(&k1, c, 1);
    assert_ne!(base, key_commitment(&k2, c, 1));
    assert_ne!(base, key_commitment(&k1, Uuid::nil(), 1));
    assert_ne!(base, key_commitment(&k1, c, 2));
}

#[test]
fn records_of_earlier_epochs_are_listed_later_ones_refused() {
    use crate::{seal_record, RecordAad};
    let k = DeviceSigningKey::generate().unwrap();
    let case_id = Uuid::from_bytes([1; 16]);
    let seal = |epoch: u32| {
        let aad = RecordAad {
            case_id,
            record_id: Uuid::from_bytes([4; 16]),
            kind: RecordKind::Note,
            version: 1,
            key_epoch: epoch,
        };
        seal_record(&DataKey::from_bytes([epoch as u8; 32]), &aad, b"x").unwrap()
    };
    let at = |head_epoch: u32, env: &[u8]| {
        let mut b = body(2, CommitHash([9; 32]));
        b.op = CommitOp::Rekey;
        b.key_epoch = head_epoch;
        b.state = state_digest(&[StateEntry::of_envelope(env).unwrap()]).unwrap();
        b.sign(&k).unwrap()
    };
    let old = seal(1);
    assert_eq!(at(2, &old).check_records(&[&old[..]]).unwrap().len(), 1);
    let new = seal(3);
    assert!(at(2, &new).check_records(&[&new[..]]).is_err());
    let zero = seal(0);
    assert!(at(2, &zero).check_records(&[&zero[..]]).is_err());
}

#[test]
fn hex_round_trip() {
    let h = CommitHash([0xab; 32]);
    assert_eq!(CommitHash::from_hex(&h.to_hex()).unwrap(), h);
    assert!(CommitHash::from_hex("zz").is_err());
}

#[test]
fn format_1_is_refused_with_its_version() {
    let k = DeviceSigningKey::generate().unwrap();
    let mut b = body(1, CommitHash::ZERO)
        .sign(&k)
        .unwrap()
        .as_bytes()
        .to_vec();
    b[4] = 1;
    assert!(matches!(
        parse_commit(&b),
        Err(CryptoError::UnsupportedVersion(1))
    ));
}
