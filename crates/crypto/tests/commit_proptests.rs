//! Property tests of case commits: the records served with a case must be exactly the ones its head
//! commit lists, and no bit of a commit can change unnoticed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rfl_crypto::*;
use uuid::Uuid;

struct Case {
    key: DataKey,
    signer: DeviceSigningKey,
    case_id: Uuid,
    envelopes: Vec<Vec<u8>>,
    commit: Commit,
}

fn kind_of(i: usize) -> RecordKind {
    RecordKind::from_u8(1 + (i % 5) as u8).unwrap()
}

/// A case of `n` records sealed at `versions[i]`, its envelopes in record-id order, and its commit.
fn case(n: usize, seed: u64) -> Case {
    let key = DataKey::generate().unwrap();
    let signer = DeviceSigningKey::generate().unwrap();
    let case_id = Uuid::from_u64_pair(seed, 7);
    let mut envelopes: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let aad = RecordAad {
                case_id,
                record_id: Uuid::from_u64_pair(seed ^ (i as u64 * 0x9e37), i as u64),
                kind: kind_of(i),
                version: 1 + (i as u64 % 3),
                key_epoch: 1,
            };
            seal_record(&key, &aad, format!("record {i}").as_bytes()).unwrap()
        })
        .collect();
    envelopes.sort_by(|a, b| a[26..42].cmp(&b[26..42]));
    let entries: Vec<StateEntry> = envelopes
        .iter()
        .map(|e| StateEntry::of_envelope(e).unwrap())
        .collect();
    let commit = CommitBody {
        op: CommitOp::Records,
        case_id,
        seq: 3,
        parent: CommitHash([3; 32]),
        key_epoch: 1,
        key_commitment: key_commitment(&key, case_id, 1),
        status: 1,
        author: Uuid::from_u64_pair(1, 1),
        created_at: 1_764_000_000_000,
        state: state_digest(&entries).unwrap(),
        holders: [7; 32],
    }
    .sign(&signer)
    .unwrap();
    Case {
        key,
        signer,
        case_id,
        envelopes,
        commit,
    }
}

fn served(c: &Case, envs: &[Vec<u8>]) -> Result<usize> {
    let refs: Vec<&[u8]> = envs.iter().map(|e| e.as_slice()).collect();
    c.commit.check_records(&refs).map(|h| h.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn exactly_the_listed_records_pass(n in 1usize..8, seed in any::<u64>()) {
        let c = case(n, seed);
        prop_assert_eq!(served(&c, &c.envelopes).unwrap(), n);
        let verified = parse_commit(c.commit.as_bytes()).unwrap().verify(&c.signer.public_key()).unwrap();
        prop_assert!(verified.commits_to_key(&c.key));
    }

    #[test]
    fn a_dropped_record_is_refused(n in 1usize..8, seed in any::<u64>(), which in any::<prop::sample::Index>()) {
        let c = case(n, seed);
        let mut envs = c.envelopes.clone();
        envs.remove(which.index(n));
        prop_assert!(served(&c, &envs).is_err());
    }

    #[test]
    fn a_duplicated_record_is_refused(n in 1usize..8, seed in any::<u64>(), which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>()) {
        let c = case(n, seed);
        let mut envs = c.envelopes.clone();
        let dup = envs[which.index(n)].clone();
        envs.insert(at.index(n + 1), dup);
        prop_assert!(served(&c, &envs).is_err());
    }

    #[test]
    fn reordered_records_are_refused(n in 2usize..8, seed in any::<u64>(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let c = case(n, seed);
        let (i, j) = (a.index(n), b.index(n));
        prop_assume!(i != j);
        let mut envs = c.envelopes.clone();
        envs.swap(i, j);
        prop_assert!(served(&c, &envs).is_err());
    }

    #[test]
    fn a_substituted_record_is_refused(n in 1usize..8, seed in any::<u64>(), which in any::<prop::sample::Index>(), how in 0u8..4) {
        let c = case(n, seed);
        let i = which.index(n);
        let mut envs = c.envelopes.clone();
        let h = parse_envelope_header(&envs[i]).unwrap();
        let aad = match how {
            // the same record resealed (same id, kind and version; other bytes)
            0 => h.aad,
            // an older or newer version of it
            1 => RecordAad { version: h.aad.version + 1, ..h.aad },
            // the same record id moved in from another case
            2 => RecordAad { case_id: Uuid::from_u64_pair(!seed, 9), ..h.aad },
            // sealed under another epoch
            _ => RecordAad { key_epoch: 2, ..h.aad },
        };
        envs[i] = seal_record(&c.key, &aad, b"substitute").unwrap();
        prop_assert!(served(&c, &envs).is_err());
    }

    #[test]
    fn a_record_of_another_case_is_refused(n in 1usize..8, seed in any::<u64>()) {
        let c = case(n, seed);
        let other = case(1, seed.wrapping_add(1));
        let mut envs = c.envelopes.clone();
        envs.push(other.envelopes[0].clone());
        envs.sort_by(|a, b| a[26..42].cmp(&b[26..42]));
        prop_assert!(served(&c, &envs).is_err());
        prop_assert_ne!(c.case_id, other.case_id);
    }

    #[test]
    fn any_bit_of_a_commit_is_covered(n in 0usize..4, seed in any::<u64>(), bit in any::<prop::sample::Index>()) {
        let c = case(n, seed);
        let mut b = c.commit.as_bytes().to_vec();
        let i = bit.index(b.len() * 8);
        b[i / 8] ^= 1 << (i % 8);
        let accepted = parse_commit(&b).and_then(|p| p.verify(&c.signer.public_key()));
        prop_assert!(accepted.is_err(), "bit {} flipped and accepted", i);
    }

    #[test]
    fn another_data_key_is_not_committed_to(n in 0usize..3, seed in any::<u64>()) {
        let c = case(n, seed);
        let fresh = DataKey::generate().unwrap();
        prop_assert!(!c.commit.commits_to_key(&fresh));
        prop_assert!(c.commit.commits_to_key(&c.key));
    }
}
