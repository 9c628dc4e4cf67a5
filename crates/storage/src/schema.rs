//! The diesel schema, shared by both backends (the migrations keep the column types compatible).

diesel::table! {
    societies (id) {
        id -> Binary,
        name -> Text,
        escrow_recipient -> Nullable<Text>,
        escrow_wrapped -> Nullable<Binary>,
        created_at -> BigInt,
        escrow_gen -> Integer,
    }
}

diesel::table! {
    members (id) {
        id -> Binary,
        society_id -> Binary,
        role -> Text,
        signing_key -> Binary,
        age_recipient -> Text,
        suspended -> Bool,
        created_at -> BigInt,
        security_stamp -> BigInt,
        next_signing_key -> Nullable<Binary>,
        next_age_recipient -> Nullable<Text>,
    }
}

diesel::table! {
    enrolment_codes (code_hash) {
        code_hash -> Binary,
        society_id -> Binary,
        role -> Text,
        created_by -> Nullable<Binary>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        used_by -> Nullable<Binary>,
        for_member -> Nullable<Binary>,
    }
}

diesel::table! {
    auth_challenges (id) {
        id -> Binary,
        member_id -> Binary,
        challenge -> Binary,
        expires_at -> BigInt,
    }
}

diesel::table! {
    instance (singleton) {
        singleton -> Integer,
        id -> Binary,
    }
}

diesel::table! {
    society_seq (society_id) {
        society_id -> Binary,
        value -> BigInt,
    }
}

diesel::table! {
    cases (id) {
        id -> Binary,
        society_id -> Binary,
        status -> Text,
        key_epoch -> Integer,
        version -> BigInt,
        seq -> BigInt,
        created_by -> Binary,
        created_at -> BigInt,
        updated_at -> BigInt,
        head_hash -> Nullable<Binary>,
    }
}

diesel::table! {
    case_commits (case_id, seq) {
        case_id -> Binary,
        seq -> BigInt,
        body -> Binary,
        created_at -> BigInt,
        society_id -> Binary,
        change_seq -> BigInt,
    }
}

diesel::table! {
    case_keys (recipient_id, case_id, key_epoch) {
        case_id -> Binary,
        recipient_id -> Binary,
        key_epoch -> Integer,
        wrapped -> Binary,
        created_at -> BigInt,
        escrow_gen -> Integer,
        keys_digest -> Nullable<Binary>,
    }
}

diesel::table! {
    records (case_id, id) {
        id -> Binary,
        case_id -> Binary,
        kind -> SmallInt,
        version -> BigInt,
        key_epoch -> Integer,
        author_id -> Binary,
        envelope -> Binary,
        seq -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    attachment_chunks (attachment_id, idx) {
        attachment_id -> Binary,
        idx -> Integer,
        case_id -> Binary,
        data -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Binary,
        member_id -> Binary,
        passkey -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        key_wrap -> Nullable<Binary>,
    }
}

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Binary,
        kind -> Text,
        member_id -> Nullable<Binary>,
        code_hash -> Nullable<Binary>,
        state -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(case_keys -> cases (case_id));
diesel::joinable!(records -> cases (case_id));
diesel::joinable!(case_commits -> cases (case_id));
diesel::joinable!(members -> societies (society_id));
diesel::joinable!(society_seq -> societies (society_id));
diesel::table! {
    society_roots (society_id) {
        society_id -> Binary,
        root_public_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    key_certificates (subject_id) {
        subject_id -> Binary,
        society_id -> Binary,
        certificate -> Binary,
        issued_at -> BigInt,
    }
}

diesel::table! {
    revocation_lists (society_id, number) {
        society_id -> Binary,
        number -> BigInt,
        list -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    retired_certificates (subject_id, keys_digest) {
        subject_id -> Binary,
        keys_digest -> Binary,
        society_id -> Binary,
        certificate -> Binary,
        retired_at -> BigInt,
    }
}

diesel::table! {
    escrow_rotations (society_id, new_gen) {
        society_id -> Binary,
        new_gen -> Integer,
        old_recipient -> Text,
        new_recipient -> Text,
        new_wrapped -> Binary,
        new_certificate -> Binary,
        total -> BigInt,
        done -> BigInt,
        started_by -> Binary,
        started_at -> BigInt,
        completed_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(passkeys -> members (member_id));

diesel::table! {
    token_keys (kid) {
        kid -> Text,
        public_key -> Binary,
        state -> Text,
        added_at -> BigInt,
        promoted_at -> Nullable<BigInt>,
        verify_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    token_key_nodes (node_id) {
        node_id -> Text,
        kids -> Text,
        seen_at -> BigInt,
    }
}

diesel::table! {
    root_successions (society_id, number) {
        society_id -> Binary,
        number -> Integer,
        succession -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    movement_root (id) {
        id -> Integer,
        public_key -> Binary,
        set_by -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    society_certificates (society_id, society_root) {
        society_id -> Binary,
        society_root -> Binary,
        certificate -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    transfers (id) {
        id -> Binary,
        case_id -> Binary,
        from_society -> Binary,
        to_society -> Binary,
        offered_by -> Binary,
        offered_at -> BigInt,
        case_version -> BigInt,
        key_epoch -> Integer,
        keep_access -> Bool,
        escrow_recipient -> Text,
        state -> Text,
        decided_by -> Nullable<Binary>,
        decided_at -> Nullable<BigInt>,
        assigned_to -> Nullable<Binary>,
    }
}

diesel::table! {
    transfer_keys (transfer_id, key_epoch) {
        transfer_id -> Binary,
        key_epoch -> Integer,
        wrapped -> Binary,
    }
}

diesel::table! {
    sync_pushes (society_id, idempotency_key) {
        society_id -> Binary,
        idempotency_key -> Text,
        request_digest -> Binary,
        answer -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    sync_checkpoints (society_id, source_instance) {
        society_id -> Binary,
        source_instance -> Binary,
        seq -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    case_branches (case_id) {
        case_id -> Binary,
        fork_seq -> BigInt,
        head_seq -> BigInt,
        head_hash -> Binary,
        created_at -> BigInt,
        updated_at -> BigInt,
        merged_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    case_branch_commits (case_id, seq) {
        case_id -> Binary,
        seq -> BigInt,
        body -> Binary,
    }
}

diesel::table! {
    case_branch_records (case_id, id) {
        case_id -> Binary,
        id -> Binary,
        kind -> SmallInt,
        version -> BigInt,
        key_epoch -> Integer,
        author_id -> Binary,
        envelope -> Binary,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    case_branch_keys (case_id, recipient_id, key_epoch) {
        case_id -> Binary,
        recipient_id -> Binary,
        key_epoch -> Integer,
        escrow_gen -> Integer,
        wrapped -> Binary,
        keys_digest -> Nullable<Binary>,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    societies,
    society_roots,
    key_certificates,
    retired_certificates,
    revocation_lists,
    escrow_rotations,
    members,
    enrolment_codes,
    auth_challenges,
    society_seq,
    instance,
    cases,
    case_keys,
    records,
    case_commits,
    attachment_chunks,
    passkeys,
    webauthn_ceremonies,
    society_certificates,
    transfers,
    transfer_keys,
    sync_pushes,
    sync_checkpoints,
    case_branches,
    case_branch_commits,
    case_branch_records,
    case_branch_keys,
);
