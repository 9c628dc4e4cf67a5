//! The server's token-signing keys as the API nodes on one database agree on them: which keys exist,
//! what each may do, and which key files each running node holds. The private keys themselves are
//! files on the nodes, never here (docs/threat-model.md §3.9).

use diesel::prelude::*;

use crate::schema::*;
use crate::{Millis, Pools, Result, StorageError, Store};

/// What a token key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKeyState {
    /// Added: every node verifies tokens it signs; none signs with it yet.
    Next,
    /// Signs every new token, and verifies.
    Primary,
    /// Replaced by a newer primary: verifies until `verify_until` (its last token's expiry), then is
    /// retired.
    Previous,
}

impl TokenKeyState {
    fn as_str(self) -> &'static str {
        match self {
            TokenKeyState::Next => "next",
            TokenKeyState::Primary => "primary",
            TokenKeyState::Previous => "previous",
        }
    }

    fn parse(s: &str) -> Result<TokenKeyState> {
        match s {
            "next" => Ok(TokenKeyState::Next),
            "primary" => Ok(TokenKeyState::Primary),
            "previous" => Ok(TokenKeyState::Previous),
            _ => Err(StorageError::Invalid(format!(
                "unknown token key state {s:?}"
            ))),
        }
    }
}

/// One token key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenKeyRow {
    /// `ed25519-` and the first 8 bytes of SHA-256 of the public key, in hex.
    pub kid: String,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    pub state: TokenKeyState,
    pub added_at: Millis,
    pub promoted_at: Option<Millis>,
    /// For a previous key: until when it verifies.
    pub verify_until: Option<Millis>,
}

impl TokenKeyRow {
    /// Whether a node should accept tokens signed with this key at `now`.
    pub fn verifies_at(&self, now: Millis) -> bool {
        match self.state {
            TokenKeyState::Next | TokenKeyState::Primary => true,
            TokenKeyState::Previous => self.verify_until.is_some_and(|t| now < t),
        }
    }
}

/// A running API node as it last reported itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenKeyNode {
    /// Random per process start.
    pub node_id: String,
    /// The kids whose private key file the node holds (and the database lists).
    pub kids: Vec<String>,
    pub seen_at: Millis,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = token_keys)]
#[diesel(treat_none_as_default_value = false)]
struct TokenKeyDb {
    kid: String,
    public_key: Vec<u8>,
    state: String,
    added_at: i64,
    promoted_at: Option<i64>,
    verify_until: Option<i64>,
}

impl TokenKeyDb {
    fn into_row(self) -> Result<TokenKeyRow> {
        Ok(TokenKeyRow {
            state: TokenKeyState::parse(&self.state)?,
            kid: self.kid,
            public_key: self.public_key,
            added_at: self.added_at,
            promoted_at: self.promoted_at,
            verify_until: self.verify_until,
        })
    }
}

macro_rules! all_token_keys {
    ($conn:ident) => {{
        let rows: Vec<TokenKeyDb> = token_keys::table
            .order(token_keys::added_at.asc())
            .select(TokenKeyDb::as_select())
            .load($conn)?;
        rows.into_iter()
            .map(TokenKeyDb::into_row)
            .collect::<Result<Vec<_>>>()
    }};
}

impl Store {
    /// Every token key, oldest first.
    pub fn token_keys(&self) -> Result<Vec<TokenKeyRow>> {
        read!(self, conn => { all_token_keys!(conn) })
    }

    /// Makes `kid` the primary key if the database has no token key yet (a new installation, or one
    /// from before key rotation, whose one key file every node already shares); every token key
    /// either way. Two nodes starting on an empty database with different key files: one wins, and the
    /// other finds it does not hold the primary key.
    pub fn adopt_first_token_key(
        &self,
        kid: &str,
        public_key: &[u8],
        now: Millis,
    ) -> Result<Vec<TokenKeyRow>> {
        write_tx!(self, conn => {
            let any: i64 = token_keys::table.count().get_result(conn)?;
            if any == 0 {
                diesel::insert_into(token_keys::table)
                    .values(TokenKeyDb {
                        kid: kid.to_owned(),
                        public_key: public_key.to_vec(),
                        state: TokenKeyState::Primary.as_str().to_owned(),
                        added_at: now,
                        promoted_at: Some(now),
                        verify_until: None,
                    })
                    .execute(conn)?;
            }
            all_token_keys!(conn)
        })
    }

    /// Adds `kid` as the next key: nodes that hold its file verify its tokens; none signs with it.
    /// Adding the same key again changes nothing; a conflict while another key is next (promote it
    /// first) or if `kid` is, or was, in another state.
    pub fn add_token_key(&self, kid: &str, public_key: &[u8], now: Millis) -> Result<TokenKeyRow> {
        write_tx!(self, conn => {
            let keys = all_token_keys!(conn)?;
            if let Some(k) = keys.iter().find(|k| k.kid == kid) {
                return if k.state == TokenKeyState::Next && k.public_key == public_key {
                    Ok(k.clone())
                } else {
                    Err(StorageError::Conflict("this token key was added before"))
                };
            }
            if keys.iter().any(|k| k.state == TokenKeyState::Next) {
                return Err(StorageError::Conflict(
                    "another token key is waiting to be promoted: promote it first",
                ));
            }
            let row = TokenKeyDb {
                kid: kid.to_owned(),
                public_key: public_key.to_vec(),
                state: TokenKeyState::Next.as_str().to_owned(),
                added_at: now,
                promoted_at: None,
                verify_until: None,
            };
            diesel::insert_into(token_keys::table)
                .values(&row)
                .execute(conn)?;
            row.into_row()
        })
    }

    /// Promotes the next key `kid` to primary, in one transaction: the current primary becomes
    /// previous and verifies until `verify_until`. A conflict unless `kid` is the next key.
    pub fn promote_token_key(&self, kid: &str, now: Millis, verify_until: Millis) -> Result<()> {
        write_tx!(self, conn => {
            let state: Option<String> = token_keys::table
                .filter(token_keys::kid.eq(kid))
                .select(token_keys::state)
                .get_result(conn)
                .optional()?;
            match state.as_deref().map(TokenKeyState::parse).transpose()? {
                None => return Err(StorageError::NotFound),
                Some(TokenKeyState::Next) => {}
                Some(_) => {
                    return Err(StorageError::Conflict("only the next token key can be promoted"))
                }
            }
            diesel::update(
                token_keys::table.filter(token_keys::state.eq(TokenKeyState::Primary.as_str())),
            )
            .set((
                token_keys::state.eq(TokenKeyState::Previous.as_str()),
                token_keys::verify_until.eq(Some(verify_until)),
            ))
            .execute(conn)?;
            diesel::update(token_keys::table.filter(token_keys::kid.eq(kid)))
                .set((
                    token_keys::state.eq(TokenKeyState::Primary.as_str()),
                    token_keys::promoted_at.eq(Some(now)),
                ))
                .execute(conn)?;
            Ok(())
        })
    }

    /// Records that node `node_id` is running and holds the files of `kids`; forgets nodes not seen
    /// since `forget_before` (stopped ones).
    pub fn token_key_heartbeat(
        &self,
        node_id: &str,
        kids: &[String],
        now: Millis,
        forget_before: Millis,
    ) -> Result<()> {
        let kids = kids.join(" ");
        write_tx!(self, conn => {
            diesel::insert_into(token_key_nodes::table)
                .values((
                    token_key_nodes::node_id.eq(node_id),
                    token_key_nodes::kids.eq(&kids),
                    token_key_nodes::seen_at.eq(now),
                ))
                .on_conflict(token_key_nodes::node_id)
                .do_update()
                .set((
                    token_key_nodes::kids.eq(&kids),
                    token_key_nodes::seen_at.eq(now),
                ))
                .execute(conn)?;
            diesel::delete(token_key_nodes::table.filter(token_key_nodes::seen_at.lt(forget_before)))
                .execute(conn)?;
            Ok(())
        })
    }

    /// Every node that reported itself, most recent first.
    pub fn token_key_nodes(&self) -> Result<Vec<TokenKeyNode>> {
        let rows: Vec<(String, String, i64)> = read!(self, conn => {
            token_key_nodes::table
                .order(token_key_nodes::seen_at.desc())
                .select((
                    token_key_nodes::node_id,
                    token_key_nodes::kids,
                    token_key_nodes::seen_at,
                ))
                .load(conn)
                .map_err(StorageError::from)
        })?;
        Ok(rows
            .into_iter()
            .map(|(node_id, kids, seen_at)| TokenKeyNode {
                node_id,
                kids: kids.split_whitespace().map(str::to_owned).collect(),
                seen_at,
            })
            .collect())
    }

    /// Forgets node `node_id` (it is stopping).
    pub fn forget_token_key_node(&self, node_id: &str) -> Result<()> {
        write_tx!(self, conn => {
            diesel::delete(token_key_nodes::table.filter(token_key_nodes::node_id.eq(node_id)))
                .execute(conn)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::each_backend;

    #[test]
    fn token_keys_are_adopted_added_and_promoted_one_state_change_per_transaction() {
        each_backend(|store| {
            // An empty database adopts the first node's key; a second node's key does not replace it.
            let rows = store
                .adopt_first_token_key("ed25519-a", &[1; 32], 10)
                .unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].state, TokenKeyState::Primary);
            let rows = store
                .adopt_first_token_key("ed25519-x", &[9; 32], 11)
                .unwrap();
            assert_eq!(
                rows.iter().map(|r| r.kid.as_str()).collect::<Vec<_>>(),
                ["ed25519-a"]
            );

            // Adding: idempotent for the same key, a conflict for a second next key or a known one.
            store.add_token_key("ed25519-b", &[2; 32], 20).unwrap();
            store.add_token_key("ed25519-b", &[2; 32], 21).unwrap();
            assert!(matches!(
                store.add_token_key("ed25519-c", &[3; 32], 22),
                Err(StorageError::Conflict(_))
            ));
            assert!(matches!(
                store.add_token_key("ed25519-a", &[1; 32], 22),
                Err(StorageError::Conflict(_))
            ));

            // Promoting: only the next key; the primary becomes previous until the given time.
            assert!(matches!(
                store.promote_token_key("ed25519-a", 30, 100),
                Err(StorageError::Conflict(_))
            ));
            assert!(matches!(
                store.promote_token_key("ed25519-z", 30, 100),
                Err(StorageError::NotFound)
            ));
            store.promote_token_key("ed25519-b", 30, 100).unwrap();
            let rows = store.token_keys().unwrap();
            let a = rows.iter().find(|r| r.kid == "ed25519-a").unwrap();
            let b = rows.iter().find(|r| r.kid == "ed25519-b").unwrap();
            assert_eq!(
                (a.state, a.verify_until),
                (TokenKeyState::Previous, Some(100))
            );
            assert!(a.verifies_at(99) && !a.verifies_at(100));
            assert_eq!((b.state, b.promoted_at), (TokenKeyState::Primary, Some(30)));
            assert!(matches!(
                store.promote_token_key("ed25519-b", 31, 101),
                Err(StorageError::Conflict(_))
            ));

            // Nodes: a heartbeat replaces the node's row; silent nodes are forgotten.
            store
                .token_key_heartbeat("n1", &["ed25519-a".into()], 40, 0)
                .unwrap();
            store
                .token_key_heartbeat("n1", &["ed25519-a".into(), "ed25519-b".into()], 50, 0)
                .unwrap();
            store.token_key_heartbeat("n2", &[], 60, 0).unwrap();
            let nodes = store.token_key_nodes().unwrap();
            assert_eq!(nodes.len(), 2);
            assert_eq!(nodes[1].kids, vec!["ed25519-a", "ed25519-b"]);
            store.token_key_heartbeat("n2", &[], 70, 55).unwrap();
            let nodes = store.token_key_nodes().unwrap();
            assert_eq!(
                nodes.iter().map(|n| n.node_id.as_str()).collect::<Vec<_>>(),
                ["n2"]
            );
            store.forget_token_key_node("n2").unwrap();
            assert!(store.token_key_nodes().unwrap().is_empty());
        });
    }
}
