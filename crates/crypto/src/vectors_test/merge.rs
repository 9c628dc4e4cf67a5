//! The merge commit (format 4) vector, `merge_commit.json`.

use super::*;

/// The merge commit (format 4) of the vector: `commit.json`'s body as a merge on that commit, with
/// a fixed second parent, signed by the same key.
fn merge_vector_body(commit: &Value, env: &[u8], key: &DataKey, aad: &RecordAad) -> CommitBody {
    CommitBody {
        op: CommitOp::Merge,
        seq: 3,
        parent: CommitHash::from_hex(commit["commit_hash"].as_str().unwrap()).unwrap(),
        status: 2,
        created_at: 1_764_590_460_000,
        ..commit_vector_body(env, key, aad)
    }
}

const MERGE_SECOND_PARENT: CommitHash = CommitHash([0x6b; 32]);

/// Writes `merge_commit.json` (needs `commit.json`):
/// `cargo test -p rfl-crypto generate_merge_commit_vector -- --ignored`.
#[test]
#[ignore = "regenerates committed vectors"]
fn generate_merge_commit_vector() {
    let r = load("record_envelope.json");
    let c = load("commit.json");
    let key = DataKey::from_bytes(arr32(&hx(&r, "data_key")));
    let signer = DeviceSigningKey::from_pkcs8(&hx(&c, "signer_pkcs8")).unwrap();
    let body = merge_vector_body(&c, &hx(&r, "envelope"), &key, &aad_of(&r));
    let merge = body.sign_merge(MERGE_SECOND_PARENT, &signer).unwrap();
    let v = json!({
        "description": "rfl merge commit v4 (op 7, seq 3): commit.json's state on commit.json, status 2, second parent 6b..6b, signed by commit.json's signer. Ed25519 is deterministic: signing this body with this key gives these bytes.",
        "parent": body.parent.to_hex(),
        "second_parent": MERGE_SECOND_PARENT.to_hex(),
        "status": body.status,
        "created_at": body.created_at,
        "commit": hex::encode(merge.as_bytes()),
        "commit_hash": merge.hash().to_hex(),
    });
    let s = serde_json::to_string_pretty(&v).unwrap() + "\n";
    std::fs::write(format!("{DIR}/merge_commit.json"), s).unwrap();
}

#[test]
fn check_merge_commit_vector() {
    let r = load("record_envelope.json");
    let c = load("commit.json");
    let v = load("merge_commit.json");
    let key = DataKey::from_bytes(arr32(&hx(&r, "data_key")));
    let env = hx(&r, "envelope");
    let signer = DeviceSigningKey::from_pkcs8(&hx(&c, "signer_pkcs8")).unwrap();
    let body = merge_vector_body(&c, &env, &key, &aad_of(&r));
    let expected = hx(&v, "commit");
    assert_eq!(expected.len(), crate::MERGE_LEN);
    let merge = body.sign_merge(MERGE_SECOND_PARENT, &signer).unwrap();
    assert_eq!(
        merge.as_bytes(),
        &expected[..],
        "merge bytes changed: format break"
    );
    let parsed = parse_commit(&expected).unwrap();
    assert_eq!(parsed.hash().to_hex(), v["commit_hash"].as_str().unwrap());
    assert_eq!(*parsed.body(), body);
    assert_eq!(parsed.second_parent(), Some(MERGE_SECOND_PARENT));
    let verified = parsed.verify(&signer.public_key()).unwrap();
    assert!(verified.commits_to_key(&key));
    assert_eq!(verified.check_records(&[&env[..]]).unwrap().len(), 1);
}
