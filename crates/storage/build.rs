//! `embed_migrations!` reads the migrations folders at compile time; without this, cargo would not
//! rebuild the crate when a migration is added or changed (diesel_migrations' documented advice).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
